// A single-node YARN for the rehearsal: Hadoop's MiniYARNCluster (one ResourceManager and
// one NodeManager in this JVM), sized like one EMR core node.
//
//   java MiniYarn CONF_DIR NODE_MB NODE_VCORES
//
// Writes CONF_DIR/yarn-site.xml (what `spark-submit --master yarn` reads through
// HADOOP_CONF_DIR), prints "READY <NodeManager log dir>", then answers one command per
// line on stdin until stdin closes (then it stops YARN):
//
//   report APPLICATION_ID  ->  "REPORT attempts=N state=S final=F" and the diagnostics
//                              on the following lines, ended by "END"
import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.api.records.ApplicationId;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.resourcemanager.rmapp.RMApp;

public class MiniYarn {
  public static void main(String[] args) throws Exception {
    File confDir = new File(args[0]);
    int nodeMb = Integer.parseInt(args[1]);
    int vcores = Integer.parseInt(args[2]);
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
    // containers share this machine's memory with everything else here: YARN accounts
    // for their sizes, it does not kill on physical or virtual memory
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    MiniYARNCluster cluster = new MiniYARNCluster("rehearsal", 1, 1, 1);
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
    String logs = cluster.getNodeManager(0).getConfig().get(YarnConfiguration.NM_LOG_DIRS);
    System.out.println("READY " + logs);
    System.out.flush();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    String line;
    while ((line = in.readLine()) != null) {
      String[] words = line.trim().split("\\s+");
      if (words.length == 2 && words[0].equals("report")) {
        report(cluster, words[1]);
      }
    }
    cluster.stop();
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
