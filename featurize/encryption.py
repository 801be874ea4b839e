"""Server-side encryption of what a job writes to S3 (``--sse``, ``--sse-kms-key-id``).

One setting, applied on both S3 paths: as boto3 ``ExtraArgs`` for every object the job
uploads itself (the write probe, the staged run directory), and as S3A's
``fs.s3a.encryption.*`` Hadoop properties for everything Spark writes (``s3a://`` here,
``s3://`` on EMR 7.10+). Without ``--sse`` nothing is asked for and the bucket's default
encryption applies (SSE-S3 on every bucket since January 2023).

Reading needs no setting: S3 decrypts SSE-S3 and SSE-KMS objects for any caller that
may use the key.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from featurize.errors import ConfigError

#: ``--sse`` values, as S3 names them in ``x-amz-server-side-encryption``.
ALGORITHMS = ("AES256", "aws:kms")

#: The same two as S3A names them (``fs.s3a.encryption.algorithm``; hadoop-aws 3.3.4's
#: S3AEncryptionMethods: "AES256" is SSE-S3).
_S3A_ALGORITHM = {"AES256": "AES256", "aws:kms": "SSE-KMS"}


@dataclass(frozen=True)
class Encryption:
    """How the job's S3 writes are encrypted; ``algorithm`` None: as the bucket says.

    >>> Encryption("aws:kms", "alias/runs").boto3_args()
    {'ServerSideEncryption': 'aws:kms', 'SSEKMSKeyId': 'alias/runs'}
    >>> Encryption().boto3_args(), Encryption().hadoop_properties()
    ({}, {})
    """

    algorithm: str | None = None
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise ConfigError(f"--sse {self.algorithm}: choose AES256 (S3-managed keys) or "
                              f"aws:kms (a KMS key; --sse-kms-key-id names it).")
        if self.kms_key_id and self.algorithm != "aws:kms":
            raise ConfigError("--sse-kms-key-id is only used with --sse aws:kms; add it, or "
                              "drop the key.")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Encryption":
        return cls(args.sse, args.sse_kms_key_id or None)

    def boto3_args(self) -> dict[str, str]:
        """``put_object`` keyword arguments / ``upload_file`` ``ExtraArgs``."""
        if self.algorithm is None:
            return {}
        args = {"ServerSideEncryption": self.algorithm}
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def hadoop_properties(self) -> dict[str, str]:
        """S3A's properties for the same encryption (unset ones are left alone)."""
        if self.algorithm is None:
            return {}
        props = {"fs.s3a.encryption.algorithm": _S3A_ALGORITHM[self.algorithm]}
        if self.kms_key_id:
            props["fs.s3a.encryption.key"] = self.kms_key_id
        return props

    def apply(self, spark: Any) -> None:
        """Set the S3A properties on the session's Hadoop configuration.

        Called before the job touches any path: S3A reads them when a filesystem
        instance is created, and instances are cached per bucket for the JVM's life.
        The configuration travels with every Spark job, so executors' writes get them too.
        """
        conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        for key, value in self.hadoop_properties().items():
            conf.set(key, value)

    def argv(self) -> list[str]:
        """The flags that ask a job for this encryption (for EMR steps).

        >>> Encryption("AES256").argv(), Encryption().argv()
        (['--sse', 'AES256'], [])
        """
        if self.algorithm is None:
            return []
        return ["--sse", self.algorithm, *(["--sse-kms-key-id", self.kms_key_id]
                                           if self.kms_key_id else [])]


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--sse`` and ``--sse-kms-key-id``, the same on every job."""
    parser.add_argument("--sse", choices=ALGORITHMS, default=None,
                        help="server-side encryption of every S3 object the job writes: "
                             "AES256 (S3-managed keys) or aws:kms (default: the bucket's "
                             "default encryption)")
    parser.add_argument("--sse-kms-key-id", default=None,
                        help="with --sse aws:kms: the KMS key (id, ARN or alias/NAME; "
                             "default: the account's aws/s3 key)")
