// A test-only Parquet output committer: the first task to commit into an output whose
// path contains "features" writes its JVM's pid to STALL_DIR/stalled and waits (up to 5
// minutes) before committing, so a test can kill that executor inside the commit window.
// Every other commit goes straight through. Compiled by tests/test_fault.py with javac
// against pyspark's jars; selected with spark.sql.parquet.output.committer.class and the
// stall folder in the executor's FEATURIZE_STALL_DIR environment variable.
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
    if (dir != null && output.contains("features")) {
      Path claim = Paths.get(dir, "claimed");
      boolean first;
      try {
        Files.write(claim, new byte[0], StandardOpenOption.CREATE_NEW);
        first = true;
      } catch (java.nio.file.FileAlreadyExistsException e) {
        first = false;
      }
      if (first) {
        Files.write(Paths.get(dir, "stalled"),
            String.valueOf(ProcessHandle.current().pid()).getBytes());
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
    super.commitTask(context);
  }
}
