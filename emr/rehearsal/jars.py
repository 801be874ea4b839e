"""The Java pieces of a rehearsal, fetched once from Maven Central and checked by sha256.

Pinned to the Hadoop that pyspark 3.5.6 bundles (3.3.4: ``hadoop-client-api`` and
``-runtime`` in ``pyspark/jars``), so the S3A connector and the MiniYARNCluster run against
the same Hadoop client as Spark itself. None of this is needed by ``make run-local`` or
``make test``: ``make jars`` (and the targets that need them) fetch them into
:func:`cache_dir`, outside git.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emr.package import sha256_file
from featurize.cache import cache_root
from featurize.errors import CommandError

#: Maven's own plugin, pinned, so ``mvn`` needs no project file to copy one artifact.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


@dataclass(frozen=True)
class Jar:
    coordinates: str  # group:artifact:version
    sha256: str
    #: ``s3a``: Spark's classpath for S3A; ``yarn``: the MiniYARNCluster's JVM;
    #: ``bench``: the committer benchmark.
    role: str

    @property
    def filename(self) -> str:
        _, artifact, version = self.coordinates.split(":")
        return f"{artifact}-{version}.jar"


#: Every jar, with the sha256 of the file Maven Central served (checked after download).
JARS = (
    # S3A: hadoop-aws and the AWS SDK v1 bundle it was built against (its pom's version).
    Jar("org.apache.hadoop:hadoop-aws:3.3.4",
        "53f9ae03c681a30a50aa17524bd9790ab596b28481858e54efd989a826ed3a4a", "s3a"),
    Jar("com.amazonaws:aws-java-sdk-bundle:1.12.262",
        "873fe7cf495126619997bec21c44de5d992544aea7e632fdc77adb1a0915bae5", "s3a"),
    # MiniYARNCluster (a real ResourceManager and NodeManager in one JVM) and what its
    # ResourceManager loads beyond the Hadoop client jars pyspark ships: BouncyCastle
    # (1.68, Hadoop 3.3.4's version) and JUnit (MiniYARNCluster's test helpers).
    Jar("org.apache.hadoop:hadoop-client-minicluster:3.3.4",
        "cd8a1703393946c302bb3a52d0fcd23f6f8ded4554bc0dac5d2ee673dbe2b40e", "yarn"),
    Jar("org.bouncycastle:bcprov-jdk15on:1.68",
        "f732a46c8de7e2232f2007c682a21d1f4cc8a8a0149b6b7bd6aa1afdc65a0f8d", "yarn"),
    Jar("org.bouncycastle:bcpkix-jdk15on:1.68",
        "fb8d0f8f673ad6e16c604732093d7aa31b26ff4e0bd9cae1d7f99984c06b8a0f", "yarn"),
    Jar("junit:junit:4.13.2",
        "8e495b634469d64fb8acfa3495a065cbacc8a0fff55ce1e31007be4c16dc57d3", "yarn"),
    # Spark's bindings for the S3A committers (PathOutputCommitProtocol), for
    # bench/committers.py only: 3.5.6 is not on Maven Central, 3.5.5 is the nearest.
    Jar("org.apache.spark:spark-hadoop-cloud_2.12:3.5.5",
        "7984bfbd83e8dff0d7ee0aed79e6cb916e651ba28b4ecce8a43b97cb669fbe28", "bench"),
)


def cache_dir() -> Path:
    """Jars, the compiled YARN launcher and the rehearsal's node venvs live in the
    project's cache folder (:func:`featurize.cache.cache_root`)."""
    return cache_root()


def required() -> bool:
    """``FEATURIZE_REQUIRE_JARS=1`` (CI): tests that need the jars fail without them."""
    return os.environ.get("FEATURIZE_REQUIRE_JARS") == "1"


def jar_dir() -> Path:
    return cache_dir() / "jars"


def missing() -> list[Jar]:
    """The jars not yet in the cache (present ones were checked when they arrived)."""
    return [j for j in JARS if not (jar_dir() / j.filename).is_file()]


def fetch(log=print) -> list[Path]:
    """Download the missing jars with ``mvn`` and check each one's sha256.

    Raises
    ------
    CommandError
        No ``mvn``, a download that fails, or a file whose sha256 is not the pinned one
        (it is deleted, so the next try downloads again).
    """
    todo = missing()
    if todo and not shutil.which("mvn"):
        raise CommandError("the rehearsal's jars come from Maven Central through `mvn`, "
                           "which is not on PATH: install Maven (apt-get install maven)")
    out = jar_dir()
    out.mkdir(parents=True, exist_ok=True)
    for jar in todo:
        log(f"fetching {jar.coordinates} from Maven Central")
        partial = out / ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        proc = subprocess.run(
            ["mvn", "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={jar.coordinates}",
             f"-DoutputDirectory={partial}"],
            capture_output=True, text=True, check=False)
        got = partial / jar.filename
        if proc.returncode != 0 or not got.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-5:])
            raise CommandError(f"mvn could not fetch {jar.coordinates}:\n{tail}")
        digest = sha256_file(got)
        if digest != jar.sha256:
            shutil.rmtree(partial, ignore_errors=True)
            raise CommandError(f"{jar.coordinates}: sha256 {digest}, expected {jar.sha256}; "
                               f"not used")
        os.replace(got, out / jar.filename)
        shutil.rmtree(partial, ignore_errors=True)
    return paths()


def paths(role: str | None = None) -> list[Path]:
    """The cached jars (of one role), in the pinned order.

    Raises
    ------
    CommandError
        Some are missing: run ``make jars``.
    """
    if missing():
        raise CommandError(f"the rehearsal's jars are not in {jar_dir()}: run `make jars` "
                           f"(python -m emr jars) first")
    return [jar_dir() / j.filename for j in JARS if role in (None, j.role)]
