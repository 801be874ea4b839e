"""Following a step or a cluster until it settles: one poll loop over boto3's waiters,
printing a line whenever the state changes."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from emr import aws
from emr.logs import out


def _elapsed(step: dict[str, Any]) -> str:
    start = step.get("Status", {}).get("Timeline", {}).get("StartDateTime")
    if not isinstance(start, datetime):
        return ""
    seconds = int((datetime.now(timezone.utc) - start).total_seconds())
    return f" {seconds // 60}m{seconds % 60:02d}s"


#: Waiter name -> (what it follows, key of the describe response, states that end it).
#: Each waiter's own success state ends it too (botocore returns no response then).
FOLLOW = {
    "step_complete": ("Step", {"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"}),
    "cluster_running": ("Cluster", {"RUNNING", "WAITING", "TERMINATING", "TERMINATED",
                                    "TERMINATED_WITH_ERRORS"}),
    "cluster_terminated": ("Cluster", {"TERMINATED", "TERMINATED_WITH_ERRORS"}),
}


def follow(c: aws.Clients, waiter: str, ids: dict[str, str], poll: int) -> dict[str, Any]:
    """Poll a boto3 waiter until its object (a step or a cluster) reaches a state that
    ends it; print a line whenever the state (or a step's elapsed time) changes. Returns
    the object as last described."""
    key, final = FOLLOW[waiter]
    last = None
    while True:
        seen = aws.wait_once(c.emr, waiter, **ids)
        if seen is not None:
            obj = seen[key]
        elif key == "Step":
            obj = aws.describe_step(c.emr, ids["ClusterId"], ids["StepId"])
        else:
            obj = aws.describe_cluster(c.emr, ids["ClusterId"])
        st = obj["Status"]["State"]
        what = (f"step {obj['Id']} {obj.get('Name', '')}: {st}{_elapsed(obj)}" if key == "Step"
                else f"cluster {ids['ClusterId']}: {st}")
        if what != last:
            out(f"[{datetime.now(timezone.utc):%H:%M:%S}] {what}")
            last = what
        if seen is None or st in final:
            return obj
        time.sleep(poll)
