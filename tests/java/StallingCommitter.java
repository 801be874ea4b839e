// A test-only Parquet output committer: the first task to commit into an output whose
// path contains "features" writes its JVM's pid to STALL_DIR/stalled and waits (up to 5
// minutes), so a test can kill that executor inside the commit window. Every other
// commit goes straight through. Where it waits is FEATURIZE_STALL_WHEN:
//   "before" (the default): inside commitTask, before any file moves;
//   "after": once commitTask has moved the task's files (with the v2 algorithm the job
//     uses on local and HDFS outputs: into the output itself, as part-<partition>-...;
//     the partition is written on the second line of STALL_DIR/stalled), before the
//     task's result reaches the driver, which never learns that it committed.
// Compiled by tests/test_fault.py with javac against pyspark's jars; selected with
// spark.sql.parquet.output.committer.class and the executor's FEATURIZE_STALL_DIR.
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import org.apache.hadoop.mapreduce.TaskAttemptContext;
import org.apache.parquet.hadoop.ParquetOutputCommitter;

public class StallingCommitter extends ParquetOutputCommitter {
  private final String output;

  public StallingCommitter(org.apache.hadoop.fs.Path outputPath, TaskAttemptContext context)
      throws IOException {
    super(outputPath, context);
    this.output = String.valueOf(outputPath);
  }

  @Override
  public void commitTask(TaskAttemptContext context) throws IOException {
    String dir = System.getenv("FEATURIZE_STALL_DIR");
    boolean after = "after".equals(System.getenv("FEATURIZE_STALL_WHEN"));
    boolean stall = dir != null && output.contains("features") && claim(dir);
    if (stall && !after) {
      hold(dir, "");
    }
    super.commitTask(context);
    if (stall && after) {
      hold(dir, "\n" + context.getTaskAttemptID().getTaskID().getId());
    }
  }

  private static boolean claim(String dir) throws IOException {
    try {
      Files.write(Paths.get(dir, "claimed"), new byte[0], StandardOpenOption.CREATE_NEW);
      return true;
    } catch (java.nio.file.FileAlreadyExistsException e) {
      return false;
    }
  }

  private static void hold(String dir, String detail) throws IOException {
    Files.write(Paths.get(dir, "stalled"),
        (ProcessHandle.current().pid() + detail).getBytes());
    long until = System.currentTimeMillis() + 300_000;
    while (System.currentTimeMillis() < until) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
  }
}
