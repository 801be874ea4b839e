"""A YARN of several nodes on this machine: Hadoop's MiniYARNCluster behind a small launcher.

:class:`LocalYarn` compiles ``MiniYarn.java`` once (into the jar cache, keyed by the
source's sha256), starts it in its own JVM with ``nodes`` NodeManagers of the given memory
and vcores (YARN's physical-memory check on, as on EMR), and answers questions about an
application: how many attempts YARN made, its final status with YARN's diagnostics, where
its containers' logs are, which containers ran on which node at what size; it can also
stop one NodeManager, as a reclaimed Spot instance goes.
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
class Container:
    """A YARN container: its id, the index of the NodeManager that ran it, its size."""

    id: str
    node: int
    mb: int

    def of(self, app_id: str) -> bool:
        """Whether it belongs to the application ``app_id`` (``application_T_N`` ->
        ``container_T_N_…``)."""
        return self.id.startswith("container_" + app_id.split("_", 1)[1] + "_")

    @property
    def is_master(self) -> bool:
        """The ApplicationMaster's (container 1 of an attempt): in cluster mode, the driver."""
        return self.id.endswith("_000001")


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
                 env: dict[str, str] | None = None, nodes: int = 1,
                 pmem_check: bool = True) -> None:
        self.workdir = Path(workdir)
        self.conf_dir = self.workdir / "conf"
        self.node_mb, self.vcores, self.nodes = node_mb, vcores, nodes
        self.pmem_check = pmem_check
        self.env = env
        self.log_dirs: list[Path] = []
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
                 "MiniYarn", str(self.conf_dir), str(self.node_mb), str(self.vcores),
                 str(self.nodes), str(self.pmem_check).lower()],
                cwd=self.workdir, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True, bufsize=1)
        try:
            self.log_dirs = [Path(d) for d in self._await_ready().split(",")]
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

    def _ask(self, command: str, until_end: bool) -> tuple[str, list[str]]:
        """One command to the launcher: its first answer line, and the lines up to END."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdout is None:
                raise CommandError("YARN is not running")
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            head = proc.stdout.readline()
            lines = []
            if until_end and head.rstrip("\n") != "END":
                for line in proc.stdout:
                    if line.rstrip("\n") == "END":
                        break
                    lines.append(line.rstrip("\n"))
        return head.rstrip("\n"), lines

    def report(self, app_id: str) -> AppReport:
        """Attempts, state, final status and diagnostics, from the ResourceManager."""
        head, lines = self._ask(f"report {app_id}", until_end=True)
        m = re.match(r"REPORT attempts=(\d+) state=(\S+) final=(\S+)", head)
        if not m:
            raise CommandError(f"unexpected answer from the YARN launcher: {head!r}")
        return AppReport(int(m.group(1)), m.group(2), m.group(3), "\n".join(lines).strip())

    def containers(self) -> list[Container]:
        """Every container any NodeManager has held since YARN started (sampled every
        100 ms by the launcher, so even a short-lived one is seen)."""
        head, lines = self._ask("containers", until_end=True)
        found = []
        for line in [head, *lines]:
            words = line.split()
            if len(words) == 4 and words[0] == "CONTAINER":
                found.append(Container(words[1], int(words[2]), int(words[3])))
        return found

    def stop_node(self, index: int) -> None:
        """Stop NodeManager ``index``: its containers die with it and its heartbeats stop,
        so the ResourceManager declares it LOST once the expiry passes (a Spot reclaim,
        without the two minutes' notice)."""
        head, _ = self._ask(f"stop {index}", until_end=False)
        if head != f"STOPPED {index}":
            raise CommandError(f"the YARN launcher could not stop node {index}: {head!r}")

    def lost_nodes(self) -> int:
        """NodeManagers the ResourceManager no longer counts as active."""
        head, _ = self._ask("nodes", until_end=False)
        m = re.match(r"NODES active=(\d+) lost=(\d+)", head)
        if not m:
            raise CommandError(f"unexpected answer from the YARN launcher: {head!r}")
        return int(m.group(2))

    def container_log(self, app_id: str, attempt: int = 1, container: int = 1,
                      name: str = "stderr") -> Path | None:
        """A container's log file, on whichever node ran it; container 1 of an attempt is
        its ApplicationMaster, which in cluster deploy mode runs the driver."""
        for log_dir in self.log_dirs:
            found = glob.glob(str(log_dir / app_id /
                                  f"container_*_{attempt:02d}_{container:06d}" / name))
            if found:
                return Path(found[0])
        return None

