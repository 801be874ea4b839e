"""Rehearse the EMR steps before paying for a cluster (``python -m emr rehearse``).

The same step command lines, on this machine: a YARN of several nodes with its memory
check on (Hadoop's MiniYARNCluster, :mod:`emr.rehearsal.yarn`), S3 served by a moto server
and reached through Hadoop's S3A connector behind ``s3://`` as on EMR 7.10+
(:mod:`emr.rehearsal.hadoop`), and the nodes' Python built by the bootstrap script from
the uploaded wheelhouse (:mod:`emr.rehearsal.node`). Each step (:mod:`emr.rehearsal.steps`)
reports its containers' peak memory (:mod:`emr.rehearsal.memory`) and can lose a node
(:mod:`emr.rehearsal.lose`). The jars come from Maven Central, pinned and checked
(:mod:`emr.rehearsal.jars`); :mod:`emr.rehearsal.run` puts it together. docs/emr.md,
"Rehearse before you pay", says what is the same as on EMR and what is not.
"""
