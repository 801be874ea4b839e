"""Where bytes live: S3 objects through boto3 (:mod:`.s3`), any URI through Spark's
Hadoop FileSystem (:mod:`.filesystem`), and a run's output written, staged, uploaded and
read back (:mod:`.output`).

May import only the root vocabulary (errors, run directory, manifest, encryption, cache).
"""
