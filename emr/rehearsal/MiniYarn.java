// The rehearsal's YARN: Hadoop's MiniYARNCluster (one ResourceManager and NODES
// NodeManagers in this JVM), each NodeManager sized like one EMR core node, with YARN's
// physical-memory check on (PMEM_CHECK true) so a container over its size is killed.
//
//   java MiniYarn CONF_DIR NODE_MB NODE_VCORES NODES PMEM_CHECK
//
// Writes CONF_DIR/yarn-site.xml (what `spark-submit --master yarn` reads through
// HADOOP_CONF_DIR), prints "READY <log dir of node 0>,<of node 1>,...", then answers one
// command per line on stdin until stdin closes (then it stops YARN):
//
//   report APPLICATION_ID  ->  "REPORT attempts=N state=S final=F" and the diagnostics
//                              on the following lines, ended by "END"
//   containers             ->  "CONTAINER <id> <node index> <MB>" for every container any
//                              NodeManager has held (sampled every 100 ms), then "END"
//   stop NODE_INDEX        ->  stops that NodeManager (its containers die with it, as on
//                              a reclaimed instance); "STOPPED <index>"
//   nodes                  ->  "NODES active=A lost=L": the ResourceManager's view
import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.api.records.ApplicationId;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.nodemanager.NodeManager;
import org.apache.hadoop.yarn.server.nodemanager.containermanager.container.Container;
import org.apache.hadoop.yarn.server.resourcemanager.rmapp.RMApp;

public class MiniYarn {
  // container id -> "<node index> <MB>", for every container seen on any NodeManager
  private static final Map<String, String> SEEN = new ConcurrentHashMap<>();

  public static void main(String[] args) throws Exception {
    File confDir = new File(args[0]);
    int nodeMb = Integer.parseInt(args[1]);
    int vcores = Integer.parseInt(args[2]);
    int nodes = Integer.parseInt(args[3]);
    boolean pmemCheck = Boolean.parseBoolean(args[4]);
    YarnConfiguration conf = new YarnConfiguration();
    conf.setInt(YarnConfiguration.NM_PMEM_MB, nodeMb);
    // MiniYARNCluster gives its NodeManagers this size instead (4096 MB by default)
    conf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, nodeMb);
    conf.setInt(YarnConfiguration.NM_VCORES, vcores);
    // the largest container YARN grants: the whole node, as on EMR
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, nodeMb);
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_VCORES, vcores);
    // one queue, as EMR's capacity scheduler has by default
    conf.set("yarn.scheduler.capacity.root.queues", "default");
    conf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    // containers rounded up to 32 MB, as EMR sets yarn.scheduler.minimum-allocation-mb
    // (Amazon EMR Release Guide, "Task configuration": 32 for current instance types)
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 32);
    // a container whose process tree's resident memory outgrows its size is killed, as on
    // EMR (Hadoop's default); the virtual-memory check is off there as here
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, pmemCheck);
    // and the monitor that enforces it, every 3 s (Hadoop's default interval): a
    // MiniYARNCluster turns the monitor off unless told it controls it itself
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, true);
    conf.setBoolean(YarnConfiguration.NM_CONTAINER_MONITOR_ENABLED, pmemCheck);
    conf.setLong(YarnConfiguration.NM_CONTAINER_MON_INTERVAL_MS, 3000);
    // Hadoop 3.3.4's monitor skips that check when cgroups' strict enforcement is on, and
    // yarn.nodemanager.resource.memory.enforced defaults to true even without cgroups: off,
    // so the check kills as EMR's NodeManagers do ("Container killed by YARN for exceeding
    // memory limits", Amazon EMR's troubleshooting guide)
    conf.setBoolean(YarnConfiguration.NM_MEMORY_RESOURCE_ENFORCED, false);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    // a node whose heartbeats stop is declared LOST (its containers completed as "released
    // on a lost node", which Spark does not count against a task) after this long: 20 s
    // here so a run sees YARN's verdict, Hadoop's default (and EMR's) 10 minutes
    conf.setLong(YarnConfiguration.RM_NM_EXPIRY_INTERVAL_MS, 20000);
    MiniYARNCluster cluster = new MiniYARNCluster("rehearsal", nodes, 1, 1);
    cluster.init(conf);
    cluster.start();
    Configuration live = cluster.getConfig();
    while (live.get(YarnConfiguration.RM_ADDRESS, "").endsWith(":0")) {
      Thread.sleep(100);
    }
    // only YARN's own keys: a full dump would also carry core-default.xml's values and
    // override the client's core-site.xml (the S3A settings) with them
    Configuration yarnOnly = new Configuration(false);
    for (Map.Entry<String, String> e : live) {
      if (e.getKey().startsWith("yarn.")) {
        yarnOnly.set(e.getKey(), live.get(e.getKey()));
      }
    }
    File tmp = new File(confDir, "yarn-site.xml.tmp");
    try (OutputStream os = new FileOutputStream(tmp)) {
      yarnOnly.writeXml(os);
    }
    if (!tmp.renameTo(new File(confDir, "yarn-site.xml"))) {
      throw new IllegalStateException("cannot write " + confDir + "/yarn-site.xml");
    }
    StringBuilder logs = new StringBuilder();
    for (int i = 0; i < nodes; i++) {
      logs.append(i == 0 ? "" : ",")
          .append(cluster.getNodeManager(i).getConfig().get(YarnConfiguration.NM_LOG_DIRS));
    }
    Thread sampler = new Thread(() -> sample(cluster, nodes), "container-sampler");
    sampler.setDaemon(true);
    sampler.start();
    System.out.println("READY " + logs);
    System.out.flush();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    String line;
    while ((line = in.readLine()) != null) {
      String[] words = line.trim().split("\\s+");
      if (words.length == 2 && words[0].equals("report")) {
        report(cluster, words[1]);
      } else if (words.length == 1 && words[0].equals("containers")) {
        for (Map.Entry<String, String> e : SEEN.entrySet()) {
          System.out.println("CONTAINER " + e.getKey() + " " + e.getValue());
        }
        System.out.println("END");
      } else if (words.length == 2 && words[0].equals("stop")) {
        int index = Integer.parseInt(words[1]);
        cluster.getNodeManager(index).stop();
        System.out.println("STOPPED " + index);
      } else if (words.length == 1 && words[0].equals("nodes")) {
        System.out.println("NODES active="
            + cluster.getResourceManager().getRMContext().getRMNodes().size() + " lost="
            + cluster.getResourceManager().getRMContext().getInactiveRMNodes().size());
      } else {
        System.out.println("UNKNOWN " + line);
      }
      System.out.flush();
    }
    cluster.stop();
  }

  private static void sample(MiniYARNCluster cluster, int nodes) {
    while (true) {
      for (int i = 0; i < nodes; i++) {
        NodeManager nm = cluster.getNodeManager(i);
        try {
          for (Container c : nm.getNMContext().getContainers().values()) {
            SEEN.putIfAbsent(c.getContainerId().toString(),
                i + " " + c.getResource().getMemorySize());
          }
        } catch (RuntimeException e) {
          // a NodeManager stopping under us: sampled again next round, or gone
        }
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  private static void report(MiniYARNCluster cluster, String id) {
    RMApp app = cluster.getResourceManager().getRMContext().getRMApps()
        .get(ApplicationId.fromString(id));
    if (app == null) {
      System.out.println("REPORT attempts=0 state=UNKNOWN final=UNDEFINED");
    } else {
      System.out.println("REPORT attempts=" + app.getAppAttempts().size() + " state="
          + app.getState() + " final=" + app.getFinalApplicationStatus());
      System.out.println(app.getDiagnostics());
    }
    System.out.println("END");
    System.out.flush();
  }
}
