"""What a user asks of EMR, validated before any AWS call.

Every value here comes from a flag (the Makefile maps its variables onto them); nothing
names a bucket, account, role ARN, subnet or key pair by default except EMR's own
default role names.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from emr.sizing import PYTHON_MB_BY_ENGINE, Sizing, size
from featurize.encryption import Encryption
from featurize.errors import ConfigError, SettingsError

#: The EMR release whose Spark (3.5.6) the local pyspark pin matches.
DEFAULT_RELEASE_LABEL = "emr-7.13.0"
DEFAULT_PREFIX = "featurize-images"
DEFAULT_INSTANCE_TYPE = "m5.xlarge"
DEFAULT_CORE_COUNT = 2
#: Idle minutes... in seconds: EMR accepts 60 s to 7 days.
DEFAULT_IDLE_TIMEOUT = 3600
#: GiB of each node's root EBS volume (RunJobFlow's EbsRootVolumeSize). EMR's default is
#: 15 GiB from 6.10.0, up to 100 GiB allowed (EMR Management Guide, "Customizing the
#: Amazon EBS root device volume"); on it live the OS, EMR's applications and what the
#: bootstrap adds: the node venv (2.0 GB, measured: tensorflow-cpu 1.3 GB, openvino
#: 0.18 GB, pyarrow 0.14 GB) under /opt/featurize, and the 0.46 GB wheelhouse in /tmp
#: while it installs. 30 GiB leaves the default's room free for EMR and logs; the extra
#: 15 GiB of gp3 cost about $0.002 an hour per node.
DEFAULT_ROOT_VOLUME_GB = 30
DEFAULT_SERVICE_ROLE = "EMR_DefaultRole"
DEFAULT_INSTANCE_PROFILE = "EMR_EC2_DefaultRole"
#: Where the bootstrap action creates the Python that Spark uses on every node.
NODE_VENV = "/opt/featurize/venv"
NODE_PYTHON = f"{NODE_VENV}/bin/python"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Graviton families: a digit run followed by "g" (m6g, c7gn, r8g, t4g, x2gd, im4gn, ...);
# g4dn/g5 (x86 GPU) do not match.
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.", re.IGNORECASE)
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def is_graviton(instance_type: str) -> bool:
    """True for AWS Graviton (arm64) instance types.

    >>> [is_graviton(t) for t in ("m6g.xlarge", "c7gn.2xlarge", "m5.xlarge", "g4dn.xlarge")]
    [True, True, False, False]
    """
    return bool(_GRAVITON.match(instance_type))


def check_instance_type(instance_type: str, variable: str) -> str:
    if not _INSTANCE_TYPE.match(instance_type or ""):
        raise SettingsError(f"{variable}={instance_type!r} is not an EC2 instance type "
                            f"(like m5.xlarge)")
    if is_graviton(instance_type):
        raise SettingsError(
            f"{variable}={instance_type} is a Graviton (arm64) type: tensorflow-cpu has no "
            f"aarch64 wheel, so the bootstrap could not install the pinned dependencies. "
            f"Choose an x86_64 type such as m5.xlarge, m6i.xlarge or c6i.2xlarge.")
    return instance_type


def check_bucket(bucket: str | None) -> str:
    if not bucket:
        raise SettingsError("BUCKET is required: an S3 bucket you own in REGION, e.g. "
                            "`make cluster BUCKET=my-bucket` (or --bucket my-bucket)")
    if bucket.startswith("s3://") or "/" in bucket:
        raise SettingsError(f"BUCKET={bucket!r}: give the bucket name only (no s3://, no "
                            f"key); put the folder in PREFIX=")
    if not _BUCKET.match(bucket):
        raise SettingsError(f"BUCKET={bucket!r} is not a valid S3 bucket name")
    return bucket


def check_s3_uri(uri: str | None, variable: str) -> str:
    if not uri:
        raise SettingsError(f"{variable} is required: an s3:// URI the cluster can read")
    if not re.match(r"^s3a?://[^/]+", uri):
        raise SettingsError(
            f"{variable}={uri!r}: the cluster cannot read a path on this machine; give an "
            f"s3://bucket/prefix URI (copy local images up first, e.g. "
            f"`aws s3 sync {uri} s3://BUCKET/images/`)")
    return uri


@dataclass(frozen=True)
class Settings:
    """Where artifacts live in S3 and what the cluster looks like."""

    bucket: str
    prefix: str = DEFAULT_PREFIX
    release_label: str = DEFAULT_RELEASE_LABEL
    instance_type: str = DEFAULT_INSTANCE_TYPE
    master_instance_type: str | None = None
    core_count: int = DEFAULT_CORE_COUNT
    task_count: int = 0
    spot: bool = False
    #: The task group's market, SPOT or ON_DEMAND; None: as ``spot`` says.
    task_market: str | None = None
    subnet_id: str | None = None
    key_name: str | None = None
    service_role: str = DEFAULT_SERVICE_ROLE
    instance_profile: str = DEFAULT_INSTANCE_PROFILE
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    root_volume_gb: int = DEFAULT_ROOT_VOLUME_GB
    #: None: chosen from the instance type (emr/sizing.py).
    executor_cores: int | None = None
    #: Executor heap (e.g. ``4g``); None: what the instance type leaves. Needed for a type
    #: that is not in emr/sizing.py's table.
    executor_memory: str | None = None
    #: YARN memory per node when not the instance type's EMR value: only the rehearsal's
    #: nodes, scaled down to fit this machine, set it.
    yarn_mb: int | None = None
    #: The featurize step's --engine; the executors' Python memory is sized for it.
    engine: str = "openvino"
    #: Every step's --sse / --sse-kms-key-id, and the cluster's security configuration.
    sse: str | None = None
    sse_kms_key_id: str | None = None
    name: str = "featurize-images"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_bucket(self.bucket)
        object.__setattr__(self, "prefix", self.prefix.strip("/"))
        check_instance_type(self.instance_type, "INSTANCE_TYPE")
        check_instance_type(self.master, "MASTER_INSTANCE_TYPE")
        if self.core_count < 1:
            raise SettingsError(f"CORE_COUNT={self.core_count}: give at least 1")
        if self.task_count < 0:
            raise SettingsError(f"TASK_COUNT={self.task_count}: give 0 or more")
        if self.task_market is not None:
            object.__setattr__(self, "task_market", self.task_market.upper())
            if self.task_market not in ("SPOT", "ON_DEMAND"):
                raise SettingsError(f"TASK_MARKET={self.task_market}: choose SPOT or "
                                    f"ON_DEMAND")
            if not self.task_count:
                raise SettingsError(f"TASK_MARKET={self.task_market} without task nodes: "
                                    f"give TASK_COUNT= too")
        if not 60 <= self.idle_timeout <= 7 * 24 * 3600:
            raise SettingsError(f"IDLE_TIMEOUT={self.idle_timeout}: EMR accepts 60 s to "
                                f"7 days (604800 s)")
        if not 15 <= self.root_volume_gb <= 100:
            raise SettingsError(f"ROOT_VOLUME_GB={self.root_volume_gb}: EMR accepts 15 to 100 "
                                f"GiB for a release from 6.10.0 (default "
                                f"{DEFAULT_ROOT_VOLUME_GB})")
        if not re.match(r"^emr-\d+\.\d+\.\d+$|^emr-spark-\d+\.\d+\.\d+$", self.release_label):
            raise SettingsError(f"RELEASE_LABEL={self.release_label!r}: expected a label "
                                f"like {DEFAULT_RELEASE_LABEL}")
        if self.executor_cores is not None and self.executor_cores < 1:
            raise SettingsError(f"EXECUTOR_CORES={self.executor_cores}: give at least 1")
        if self.engine not in PYTHON_MB_BY_ENGINE:
            raise SettingsError(f"ENGINE={self.engine}: choose one of "
                                f"{', '.join(PYTHON_MB_BY_ENGINE)}")
        try:
            self.encryption  # noqa: B018 - validated now too
        except ConfigError as exc:
            raise SettingsError(str(exc).replace("--sse-kms-key-id", "SSE_KMS_KEY_ID")
                                .replace("--sse ", "SSE=")) from exc
        self.sizing  # noqa: B018 - validated now, before any AWS call

    @property
    def encryption(self) -> Encryption:
        return Encryption(self.sse, self.sse_kms_key_id)

    @property
    def sizing(self) -> Sizing:
        """Executors and driver for the core/task nodes (emr/sizing.py)."""
        return size(self.instance_type, self.executor_cores, self.executor_memory,
                    self.engine, self.yarn_mb)

    @property
    def master(self) -> str:
        return self.master_instance_type or self.instance_type

    def key(self, *parts: str) -> str:
        """``prefix/parts...`` (the object key under the bucket)."""
        return posixpath.join(*(p for p in (self.prefix, *parts) if p))

    def uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/parts...``"""
        return f"s3://{self.bucket}/{self.key(*parts)}"

    @property
    def log_uri(self) -> str:
        return self.uri("logs") + "/"

    @property
    def dist_uri(self) -> str:
        return self.uri("dist")
