"""A single-node YARN on this machine: Hadoop's MiniYARNCluster behind a small launcher.

:class:`LocalYarn` compiles ``MiniYarn.java`` once (into the jar cache, keyed by the
source's sha256), starts it in its own JVM with one NodeManager of the given memory and
vcores, and answers three questions about an application: how many attempts YARN made,
its final status with YARN's diagnostics, and where its containers' logs are.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from emr.logs import tail
from emr.rehearsal import jars
from featurize.errors import CommandError

SOURCE = Path(__file__).with_name("MiniYarn.java")
#: The module openings Spark itself passes to Java 17 (pyspark's launcher adds the same).
JAVA_OPENS = tuple(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
    "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch",
    "sun.nio.cs", "sun.security.action", "sun.util.calendar"))
START_TIMEOUT_S = 180


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _java(tool: str) -> str:
    home = os.environ.get("JAVA_HOME")
    path = os.path.join(home, "bin", tool) if home else shutil.which(tool)
    if not path or not os.path.exists(path):
        raise CommandError(f"`{tool}` not found: the rehearsal needs a JDK 17 (JAVA_HOME or "
                           f"PATH)")
    return path


def classpath() -> str:
    """The launcher's classpath: the minicluster jars, then the Hadoop client, logging and
    everything else pyspark ships (so YARN runs on the very Hadoop client Spark uses)."""
    return os.pathsep.join([*map(str, jars.paths("yarn")), str(spark_home() / "jars" / "*")])


def compiled() -> Path:
    """The folder holding ``MiniYarn.class``, compiled on first use."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = jars.cache_dir() / "launcher" / digest
    if not (out / "MiniYarn.class").is_file():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        proc = subprocess.run([_java("javac"), "-cp", classpath(), "-d", str(tmp), str(SOURCE)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CommandError(f"javac {SOURCE.name} failed:\n{proc.stderr[-2000:]}")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    return out


@dataclass(frozen=True)
class AppReport:
    attempts: int
    state: str
    final: str
    diagnostics: str


class LocalYarn:
    """``with LocalYarn(workdir, node_mb, vcores, env) as yarn:`` a running YARN whose
    client configuration is in ``yarn.conf_dir`` (point HADOOP_CONF_DIR at it)."""

    def __init__(self, workdir: Path, node_mb: int, vcores: int,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.conf_dir = self.workdir / "conf"
        self.node_mb, self.vcores = node_mb, vcores
        self.env = env
        self.log_dir: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LocalYarn:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        launcher = compiled()
        self.jvm_log = self.workdir / "yarn.log"
        with open(self.jvm_log, "w") as log:
            self._proc = subprocess.Popen(
                [_java("java"), *JAVA_OPENS, "-Xmx1g",
                 "-cp", os.pathsep.join([str(launcher), classpath()]),
                 "MiniYarn", str(self.conf_dir), str(self.node_mb), str(self.vcores)],
                cwd=self.workdir, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True, bufsize=1)
        try:
            self.log_dir = Path(self._await_ready())
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        timer = threading.Timer(START_TIMEOUT_S, self._proc.kill)
        timer.start()
        try:
            line = self._proc.stdout.readline()
        finally:
            timer.cancel()
        if not line.startswith("READY "):
            raise CommandError(f"YARN did not start (see {self.jvm_log}):\n"
                               + tail(self.jvm_log.read_text(errors="replace"), 15))
        return line.split(" ", 1)[1].strip()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()  # the launcher stops YARN when its stdin closes
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, OSError):
            proc.kill()
            proc.wait()

    def report(self, app_id: str) -> AppReport:
        """Attempts, state, final status and diagnostics, from the ResourceManager."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdout is None:
                raise CommandError("YARN is not running")
            proc.stdin.write(f"report {app_id}\n")
            proc.stdin.flush()
            head = proc.stdout.readline()
            lines = []
            for line in proc.stdout:
                if line.rstrip("\n") == "END":
                    break
                lines.append(line.rstrip("\n"))
        m = re.match(r"REPORT attempts=(\d+) state=(\S+) final=(\S+)", head)
        if not m:
            raise CommandError(f"unexpected answer from the YARN launcher: {head!r}")
        return AppReport(int(m.group(1)), m.group(2), m.group(3), "\n".join(lines).strip())

    def container_log(self, app_id: str, attempt: int = 1, container: int = 1,
                      name: str = "stderr") -> Path | None:
        """A container's log file; container 1 of an attempt is its ApplicationMaster,
        which in cluster deploy mode runs the driver."""
        if self.log_dir is None:
            return None
        found = glob.glob(str(self.log_dir / app_id /
                              f"container_*_{attempt:02d}_{container:06d}" / name))
        return Path(found[0]) if found else None

