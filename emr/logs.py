"""Where EMR puts a step's logs under the cluster's LogUri, and what ``wait`` prints when a
step fails.

::

    LogUri/<cluster-id>/steps/<step-id>/{stderr,stdout,controller}.gz
    LogUri/<cluster-id>/containers/<application-id>/<container-id>/stderr.gz

EMR copies them there a few minutes after a step ends. In cluster deploy mode the step's
stderr is spark-submit's YARN client; the job's own log and Python traceback are in the
driver's container ``stdout`` (the application master's first container, ``…_000001``),
its JVM's log in that container's ``stderr``.
"""
from __future__ import annotations

import gzip
import re
import time
from dataclasses import dataclass
from typing import Any

from emr import aws
from featurize.storage.s3 import S3Uri


def out(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class ClusterLogs:
    """The log locations of one cluster (None when it has no LogUri)."""

    root: S3Uri | None
    cluster_id: str

    @classmethod
    def of(cls, cluster: dict[str, Any], cluster_id: str) -> "ClusterLogs":
        log_uri = cluster.get("LogUri")
        # EMR reports s3n:// for LogUri; the bucket and key are what matter
        return cls(S3Uri.parse(log_uri) if log_uri else None, cluster_id)

    def _key(self, *parts: str) -> str:
        assert self.root is not None
        return self.root.prefix + "/".join((self.cluster_id, *parts))

    def step_log(self, step_id: str, name: str = "stderr") -> str | None:
        """``s3://`` URI of a step's log file, or None without a LogUri."""
        if self.root is None:
            return None
        return f"s3://{self.root.bucket}/{self._key('steps', step_id, f'{name}.gz')}"

    def containers(self, application_id: str) -> tuple[str, str]:
        """(bucket, prefix) of a YARN application's container logs."""
        assert self.root is not None
        return self.root.bucket, self._key("containers", application_id) + "/"


def read_gzip(c: aws.Clients, uri: str) -> str | None:
    """A ``.gz`` log object as text, or None when it is not there (yet)."""
    loc = S3Uri.parse(uri)
    data = aws.get_object_bytes(c.s3, loc.bucket, loc.key)
    return None if data is None else gzip.decompress(data).decode("utf-8", "replace")


def fetch_step_log(c: aws.Clients, logs: ClusterLogs, step_id: str, name: str = "stderr",
                   wait_s: int = 0, poll: int = 15) -> str | None:
    """A step's log text, waiting up to ``wait_s`` for it to reach LogUri."""
    uri = logs.step_log(step_id, name)
    if uri is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        text = read_gzip(c, uri)
        if text is not None or time.monotonic() >= deadline:
            return text
        time.sleep(min(poll, max(1, deadline - time.monotonic())))


def tail(text: str, n: int) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:] if n > 0 else lines)


def print_tail(title: str, text: str, n: int) -> None:
    out(f"--- last {n} lines of {title} ---")
    out(tail(text, n))
    out("--- end ---")


def cluster_reason(cluster: dict[str, Any]) -> str:
    st = cluster.get("Status", {})
    reason = st.get("StateChangeReason", {})
    return f"{st.get('State')}: {reason.get('Code', '')} {reason.get('Message', '')}".strip()


#: The driver's container logs: the first container of an application attempt
#: (``container_<cluster ts>_<app>_<attempt>_000001``).
_DRIVER_LOG = re.compile(r"container_(?:e\d+_)?\d+_\d+_(\d+)_000001/(stdout|stderr)\.gz$")
#: What each of the driver's files holds. In cluster deploy mode Spark runs the job's
#: Python with its stderr merged into its stdout (PythonRunner), so the job's log and
#: traceback are in ``stdout``; ``stderr`` is the ApplicationMaster's JVM (YARN, Spark).
DRIVER_FILES = {"stdout": "the driver's output (the job's log)", "stderr": "the driver's log"}


def print_driver_attempts(found: dict[int, dict[str, tuple[str, str | None]]], n: int) -> None:
    """Print the tails of the driver's files, ``found[attempt][file] = (where, text)``:
    the first attempt first (its error is the real one; a retry fails for its own
    reasons), each labelled when there are several; per attempt, the job's output, then
    the JVM's log."""
    for attempt in sorted(found):
        label = f" (attempt {attempt} of {len(found)})" if len(found) > 1 else ""
        for name, title in DRIVER_FILES.items():
            where, text = found[attempt].get(name, ("", None))
            if text is not None:
                print_tail(f"{title}{label} {where}", text, n)


def print_driver_log(c: aws.Clients, logs: ClusterLogs, step_stderr: str, n: int) -> None:
    """The tails of the driver's container logs of the application the step ran."""
    apps = re.findall(r"application_\d+_\d+", step_stderr)
    if not apps or logs.root is None:
        return
    bucket, prefix = logs.containers(apps[-1])
    found: dict[int, dict[str, tuple[str, str | None]]] = {}
    for key in aws.list_keys(c.s3, bucket, prefix):
        if m := _DRIVER_LOG.search(key):
            uri = f"s3://{bucket}/{key}"
            found.setdefault(int(m.group(1)), {})[m.group(2)] = (uri, read_gzip(c, uri))
    if not found:
        out(f"(the driver's logs s3://{bucket}/{prefix}container_..._000001/ are not there "
            f"yet; `make logs` later, or look under that prefix)")
        return
    print_driver_attempts(found, n)


def report_failure(c: aws.Clients, cluster_id: str, step: dict[str, Any], *,
                   log_wait: int, n: int) -> None:
    """Why a step failed: EMR's reason, the cluster's, and the tails of the step's and
    the driver's logs."""
    status = step.get("Status", {})
    details = status.get("FailureDetails") or {}
    reason = " / ".join(x for x in (details.get("Reason"), details.get("Message"),
                                    status.get("StateChangeReason", {}).get("Message")) if x)
    out(f"step {step['Id']} {step.get('Name', '')} {status.get('State')}: "
        f"{reason or 'no reason given'}")
    if details.get("LogFile"):
        out(f"EMR's log file: {details['LogFile']}")
    cluster = aws.describe_cluster(c.emr, cluster_id)
    if cluster["Status"]["State"].startswith("TERMINAT"):
        out(f"cluster {cluster_id} {cluster_reason(cluster)}")
    if status.get("State") == "CANCELLED":
        out("the step never ran (an earlier step failed, or the cluster went away)")
        return
    logs = ClusterLogs.of(cluster, cluster_id)
    uri = logs.step_log(step["Id"])
    if uri is None:
        out("the cluster has no LogUri, so there is no stderr.gz to show")
        return
    text = fetch_step_log(c, logs, step["Id"], "stderr", log_wait)
    if text is None:
        out(f"{uri} did not arrive within {log_wait} s; try `make logs` later")
        return
    print_tail(uri, text, n)
    print_driver_log(c, logs, text, n)
