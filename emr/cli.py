"""``python -m emr <command>``: the EMR lifecycle the Makefile drives.

::

    package   build dist/ (code zip, entry points, bootstrap + pins)
    upload    put dist/ and the weights file under s3://BUCKET/PREFIX/
    up        start a long-lived cluster (bootstrap action, Spark configuration)
    submit    add featurize/train/predict steps to it
    wait      follow the steps (or the cluster start); on failure print stderr's tail
    status    the cluster and its steps
    logs      print a step's log from LogUri
    down      terminate the cluster
    run       a transient cluster that runs the steps and terminates itself

``up``, ``submit`` and ``run`` take ``--dry-run``: print the exact request, call nothing.
Exit status: 0 done, 1 AWS failure or a failed step, 2 bad settings.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from emr import aws, package, requests, state
from emr.settings import (DEFAULT_CORE_COUNT, DEFAULT_EXECUTOR_CORES, DEFAULT_IDLE_TIMEOUT,
                          DEFAULT_INSTANCE_PROFILE, DEFAULT_INSTANCE_TYPE, DEFAULT_PREFIX,
                          DEFAULT_RELEASE_LABEL, DEFAULT_SERVICE_ROLE, Settings,
                          SettingsError)

logger = logging.getLogger("emr")

ACTIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")


class CommandError(RuntimeError):
    """A command cannot go on; the message says what to do. Exit status 1."""


def _out(line: str) -> None:
    print(line, flush=True)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%H:%M:%S")


# --- argument parsing -------------------------------------------------------------------

def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where and what (make variables in capitals)")
    g.add_argument("--bucket", help="BUCKET: S3 bucket for artifacts, logs and default "
                                    "outputs (required)")
    g.add_argument("--prefix", default=DEFAULT_PREFIX, help="PREFIX: key prefix in BUCKET")
    g.add_argument("--release-label", default=DEFAULT_RELEASE_LABEL, help="RELEASE_LABEL")
    g.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE, help="INSTANCE_TYPE "
                   "(core nodes, and the master unless --master-instance-type)")
    g.add_argument("--master-instance-type", default=None, help="MASTER_INSTANCE_TYPE")
    g.add_argument("--core-count", type=int, default=DEFAULT_CORE_COUNT, help="CORE_COUNT")
    g.add_argument("--task-count", type=int, default=0, help="TASK_COUNT: task nodes")
    g.add_argument("--spot", action="store_true", help="SPOT=1: core and task nodes on spot")
    g.add_argument("--subnet-id", default=None, help="SUBNET_ID")
    g.add_argument("--key-name", default=None, help="KEY_NAME: EC2 key pair for ssh")
    g.add_argument("--service-role", default=DEFAULT_SERVICE_ROLE, help="SERVICE_ROLE")
    g.add_argument("--instance-profile", default=DEFAULT_INSTANCE_PROFILE,
                   help="INSTANCE_PROFILE")
    g.add_argument("--idle-timeout", type=int, default=DEFAULT_IDLE_TIMEOUT,
                   help="IDLE_TIMEOUT seconds before an idle cluster terminates itself")
    g.add_argument("--executor-cores", type=int, default=DEFAULT_EXECUTOR_CORES,
                   help="EXECUTOR_CORES: Spark executor cores (= vCPUs of a core node)")
    g.add_argument("--name", default="featurize-images", help="cluster name")


def _job_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("steps")
    g.add_argument("--steps", default="featurize train",
                   help="STEPS: any of 'featurize train predict' (default: featurize train)")
    g.add_argument("--input", default=None, help="INPUT: s3:// folder of images")
    g.add_argument("--output", default=None,
                   help="OUTPUT: s3:// run directory (default s3://BUCKET/PREFIX/runs/"
                        "<last folder of INPUT>)")
    g.add_argument("--weights", default="imagenet",
                   help="WEIGHTS as given to `upload` (imagenet, a file, s3://..., random)")
    g.add_argument("--job-args", default="", help="JOB_ARGS: extra featurize arguments")
    g.add_argument("--train-args", default="", help="TRAIN_ARGS: extra train arguments")
    g.add_argument("--predict-input", default=None, help="PREDICT_INPUT: s3:// images")
    g.add_argument("--predict-output", default=None, help="PREDICT_OUTPUT: s3:// folder")


def _cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-id", default=None,
                   help="CLUSTER_ID (default: the last cluster, from .emr/state.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="PROFILE: AWS profile")
    parser.add_argument("--region", default=None, help="REGION: AWS region")
    parser.add_argument("--dist", default="dist", help="DIST: the package folder")
    parser.add_argument("--state-dir", default=state.DEFAULT_DIR,
                        help="EMR_STATE: where the last cluster id is remembered")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("package", help="build dist/")
    p = sub.add_parser("upload", help="upload dist/ and the weights")
    _settings_args(p)
    p.add_argument("--weights", default="imagenet",
                   help="WEIGHTS: imagenet (from the Keras cache, downloaded once if "
                        "needed), a local weights file, s3://... or random (no upload)")
    p = sub.add_parser("up", help="start a long-lived cluster")
    _settings_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    p = sub.add_parser("submit", help="add steps to the cluster")
    _settings_args(p)
    _job_args(p)
    _cluster_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    p = sub.add_parser("run", help="transient cluster: run the steps, then terminate")
    _settings_args(p)
    _job_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    p = sub.add_parser("wait", help="wait for the submitted steps (or the cluster start)")
    _cluster_arg(p)
    p.add_argument("--step-id", action="append", default=None, help="step(s) to wait for")
    p.add_argument("--poll", type=int, default=30, help="seconds between polls")
    p.add_argument("--log-wait", type=int, default=300,
                   help="seconds to wait for a failed step's stderr.gz to reach LogUri")
    p.add_argument("--tail", type=int, default=40, help="log lines to print on failure")
    p = sub.add_parser("status", help="the cluster and its steps")
    _cluster_arg(p)
    p = sub.add_parser("logs", help="print a step's log from LogUri")
    _cluster_arg(p)
    p.add_argument("--step-id", default=None, help="default: the last step")
    p.add_argument("--file", default="stderr", choices=("stderr", "stdout", "controller"))
    p.add_argument("--tail", type=int, default=0, help="last N lines (0: all)")
    p = sub.add_parser("down", help="terminate the cluster")
    _cluster_arg(p)
    p.add_argument("--no-wait", action="store_true", help="do not wait for TERMINATED")
    p.add_argument("--poll", type=int, default=30, help="seconds between polls")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        bucket=args.bucket, prefix=args.prefix, release_label=args.release_label,
        instance_type=args.instance_type, master_instance_type=args.master_instance_type,
        core_count=args.core_count, task_count=args.task_count, spot=args.spot,
        subnet_id=args.subnet_id or None, key_name=args.key_name or None,
        service_role=args.service_role,
        instance_profile=args.instance_profile, idle_timeout=args.idle_timeout,
        executor_cores=args.executor_cores, name=args.name)


def job_args_from(args: argparse.Namespace) -> requests.JobArgs:
    return requests.JobArgs(
        input=args.input or None, output=args.output or None, weights=args.weights,
        featurize_args=tuple(shlex.split(args.job_args)),
        train_args=tuple(shlex.split(args.train_args)),
        predict_input=args.predict_input or None, predict_output=args.predict_output or None)


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


# --- commands ---------------------------------------------------------------------------

def cmd_package(args: argparse.Namespace) -> int:
    written = package.build(args.dist)
    for rel in written:
        _out(f"{os.path.join(args.dist, rel)}  {os.path.getsize(os.path.join(args.dist, rel))} B")
    return 0


def local_weights_file(spec: str) -> str | None:
    """The local file ``upload`` puts under PREFIX/weights/, or None (random, s3://)."""
    if spec == "random" or spec.startswith(("s3://", "s3a://")):
        return None
    if spec == "imagenet":
        from featurize.weights import imagenet_weights_file

        return imagenet_weights_file()  # Keras' cache; downloads once when online
    if not os.path.isfile(spec):
        raise SettingsError(f"WEIGHTS={spec!r}: no such file (give imagenet, a Keras "
                            f"weights file, s3://... or random)")
    return spec


def cmd_upload(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    missing = [r for r in package.artifacts(args.dist)
               if not os.path.isfile(os.path.join(args.dist, r))]
    if missing:
        raise CommandError(f"{args.dist}/ lacks {', '.join(missing)}: run `make package` "
                           f"(python -m emr package) first")
    weights_file = local_weights_file(args.weights)
    c = aws.clients(args.profile, args.region)
    aws.head_bucket(c.s3, settings.bucket)
    uploads = [(os.path.join(args.dist, r), settings.key("dist", r))
               for r in package.artifacts(args.dist)]
    if weights_file:
        uploads.append((weights_file,
                        requests.weights_uri(settings, args.weights).split("/", 3)[3]))
    for path, key in uploads:
        aws.upload_file(c.s3, path, settings.bucket, key)
        _out(f"uploaded {path} -> s3://{settings.bucket}/{key}")
    return 0


def _check_artifacts(c: aws.Clients, uris: Sequence[str]) -> None:
    missing = []
    for uri in uris:
        bucket, key = uri.split("/", 3)[2:]
        if aws.object_size(c.s3, bucket, key) is None:
            missing.append(uri)
    if missing:
        raise CommandError("not in S3: " + ", ".join(missing)
                           + ". Run `make upload BUCKET=...` (same BUCKET, PREFIX and "
                             "WEIGHTS) first")


def _check_inputs(c: aws.Clients, step_list: Sequence[dict]) -> None:
    """The featurize/predict ``--input`` of the first steps must hold objects."""
    for s in step_list:
        a = s["HadoopJarStep"]["Args"]
        if "--input" in a:
            uri = a[a.index("--input") + 1]
            bucket, _, prefix = uri.split("://", 1)[1].partition("/")
            if not aws.prefix_has_objects(c.s3, bucket, prefix):
                raise CommandError(f"{uri} holds no objects: check INPUT / PREDICT_INPUT")


def _refuse_second_cluster(c: aws.Clients, args: argparse.Namespace) -> None:
    """Starting a cluster forgets the remembered one: refuse while that one still runs
    (and bills)."""
    saved = state.load(args.state_dir).get("cluster_id")
    if not saved:
        return
    try:
        st = aws.describe_cluster(c.emr, saved)["Status"]["State"]
    except ClientError:  # unknown in this account/region: nothing to protect
        return
    if st in ACTIVE:
        raise CommandError(
            f"cluster {saved} (remembered in {args.state_dir}/state.json) is still {st}: "
            f"`make down` first, or use it (`make submit`); give another EMR_STATE= to run "
            f"two clusters at once")


def _bootstrap_uris(settings: Settings) -> list[str]:
    return [f"{settings.dist_uri}/bootstrap/{name}" for name in
            (package.BOOTSTRAP_SCRIPT, "requirements.txt", "constraints.txt")]


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    request = requests.run_job_flow(settings)
    if args.dry_run:
        _out(_dump(request))
        return 0
    c = aws.clients(args.profile, args.region)
    _refuse_second_cluster(c, args)
    _check_artifacts(c, _bootstrap_uris(settings))
    cluster_id = aws.run_job_flow(c.emr, request)
    state.save({"cluster_id": cluster_id, "region": c.region, "steps": []}, args.state_dir)
    _out(f"cluster {cluster_id} starting ({settings.release_label}, 1 x {settings.master} "
         f"+ {settings.core_count} core"
         f"{f' + {settings.task_count} task' if settings.task_count else ''} x "
         f"{settings.instance_type}{' spot' if settings.spot else ''}); logs under "
         f"{settings.log_uri}")
    _out(f"it terminates itself after {settings.idle_timeout} s idle; `make down` ends it now")
    return 0


def _cluster_id(args: argparse.Namespace, required: bool = True) -> str | None:
    cluster_id = args.cluster_id or state.load(args.state_dir).get("cluster_id")
    if not cluster_id and required:
        raise CommandError(f"no cluster: give CLUSTER_ID=j-... or start one with `make "
                           f"cluster` (nothing remembered in {args.state_dir}/state.json)")
    return cluster_id


def _clients(args: argparse.Namespace) -> aws.Clients:
    """Clients for an existing cluster: REGION/--region, else the region it was started
    in (remembered), else boto3's own default."""
    return aws.clients(args.profile, args.region or state.load(args.state_dir).get("region"))


def _jobs(args: argparse.Namespace) -> list[str]:
    return args.steps.replace(",", " ").split()


def cmd_submit(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    step_list = requests.steps(settings, _jobs(args), job_args_from(args))
    cluster_id = _cluster_id(args, required=not args.dry_run) or "CLUSTER_ID"
    if args.dry_run:
        _out(_dump({"JobFlowId": cluster_id, "Steps": step_list}))
        return 0
    c = _clients(args)
    cluster = aws.describe_cluster(c.emr, cluster_id)
    if cluster["Status"]["State"] not in ACTIVE:
        raise CommandError(f"cluster {cluster_id} is {cluster['Status']['State']}: start one "
                           f"with `make cluster`, or give CLUSTER_ID= of a running one")
    _check_artifacts(c, requests.s3_artifacts(step_list))
    _check_inputs(c, step_list[:1])
    step_ids = aws.add_job_flow_steps(c.emr, cluster_id, step_list)
    saved = state.load(args.state_dir)
    if saved.get("cluster_id") != cluster_id:
        saved = {"cluster_id": cluster_id, "region": c.region}
    saved["steps"] = [{"id": i, "name": s["Name"]} for i, s in zip(step_ids, step_list)]
    state.save(saved, args.state_dir)
    for i, s in zip(step_ids, step_list):
        _out(f"step {i} {s['Name']}: {requests.command_line(s)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    step_list = requests.steps(settings, _jobs(args), job_args_from(args),
                               action_on_failure="TERMINATE_CLUSTER")
    request = requests.run_job_flow(settings, step_list, keep_alive=False)
    if args.dry_run:
        _out(_dump(request))
        return 0
    c = aws.clients(args.profile, args.region)
    _refuse_second_cluster(c, args)
    _check_artifacts(c, _bootstrap_uris(settings) + requests.s3_artifacts(step_list))
    _check_inputs(c, step_list[:1])
    cluster_id = aws.run_job_flow(c.emr, request)
    steps_now = aws.list_steps(c.emr, cluster_id)
    state.save({"cluster_id": cluster_id, "region": c.region,
                "steps": [{"id": s["Id"], "name": s["Name"]} for s in steps_now]},
               args.state_dir)
    _out(f"transient cluster {cluster_id}: {len(step_list)} step(s), terminates when they "
         f"end; logs under {settings.log_uri}")
    return 0


def _elapsed(step: dict[str, Any]) -> str:
    start = step.get("Status", {}).get("Timeline", {}).get("StartDateTime")
    if not isinstance(start, datetime):
        return ""
    seconds = int((datetime.now(timezone.utc) - start).total_seconds())
    return f" {seconds // 60}m{seconds % 60:02d}s"


def _log_location(cluster: dict[str, Any], cluster_id: str, step_id: str,
                  name: str) -> tuple[str, str] | None:
    log_uri = cluster.get("LogUri")
    if not log_uri:
        return None
    # EMR reports s3n:// for LogUri; the bucket and key are what matter
    rest = log_uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, f"{prefix}{cluster_id}/steps/{step_id}/{name}.gz"


def fetch_step_log(c: aws.Clients, cluster: dict[str, Any], cluster_id: str, step_id: str,
                   name: str = "stderr", wait_s: int = 0, poll: int = 15) -> str | None:
    """A step's log text from LogUri, waiting up to ``wait_s`` for it to arrive (EMR
    copies step logs there a few minutes after the step ends)."""
    where = _log_location(cluster, cluster_id, step_id, name)
    if where is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        data = aws.get_object_bytes(c.s3, *where)
        if data is not None:
            return gzip.decompress(data).decode("utf-8", "replace")
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(poll, max(1, deadline - time.monotonic())))


def _tail(text: str, n: int) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:] if n > 0 else lines)


def _cluster_reason(cluster: dict[str, Any]) -> str:
    st = cluster.get("Status", {})
    reason = st.get("StateChangeReason", {})
    return f"{st.get('State')}: {reason.get('Code', '')} {reason.get('Message', '')}".strip()


def _driver_log(c: aws.Clients, cluster: dict, cluster_id: str, step_stderr: str,
                tail: int) -> None:
    """In cluster deploy mode the step's stderr is spark-submit's YARN client; the
    Python traceback is in the driver's container log (the application master's first
    container) under LogUri/<cluster-id>/containers/<application-id>/."""
    apps = re.findall(r"application_\d+_\d+", step_stderr)
    where = _log_location(cluster, cluster_id, "x", "stderr")
    if not apps or where is None:
        return
    bucket = where[0]
    prefix = where[1].split(f"{cluster_id}/steps/")[0] + f"{cluster_id}/containers/{apps[-1]}/"
    keys = sorted(k for k in aws.list_keys(c.s3, bucket, prefix)
                  if re.search(r"container_[^/]*_000001/stderr\.gz$", k))
    if not keys:
        _out(f"(the driver's log s3://{bucket}/{prefix}container_..._000001/stderr.gz is not "
             f"there yet; `make logs` later, or look under that prefix)")
        return
    data = aws.get_object_bytes(c.s3, bucket, keys[-1])
    if data is None:
        return
    _out(f"--- last {tail} lines of the driver's log s3://{bucket}/{keys[-1]} ---")
    _out(_tail(gzip.decompress(data).decode("utf-8", "replace"), tail))
    _out("--- end ---")


def _report_failure(c: aws.Clients, cluster_id: str, step: dict,
                    args: argparse.Namespace) -> None:
    status = step.get("Status", {})
    details = status.get("FailureDetails") or {}
    reason = " / ".join(x for x in (details.get("Reason"), details.get("Message"),
                                    status.get("StateChangeReason", {}).get("Message")) if x)
    _out(f"step {step['Id']} {step.get('Name', '')} {status.get('State')}: "
         f"{reason or 'no reason given'}")
    if details.get("LogFile"):
        _out(f"EMR's log file: {details['LogFile']}")
    cluster = aws.describe_cluster(c.emr, cluster_id)
    if cluster["Status"]["State"].startswith("TERMINAT"):
        _out(f"cluster {cluster_id} {_cluster_reason(cluster)}")
    if status.get("State") == "CANCELLED":
        _out("the step never ran (an earlier step failed, or the cluster went away)")
        return
    where = _log_location(cluster, cluster_id, step["Id"], "stderr")
    if where is None:
        _out("the cluster has no LogUri, so there is no stderr.gz to show")
        return
    text = fetch_step_log(c, cluster, cluster_id, step["Id"], "stderr", args.log_wait)
    uri = f"s3://{where[0]}/{where[1]}"
    if text is None:
        _out(f"{uri} did not arrive within {args.log_wait} s; try `make logs` later")
        return
    _out(f"--- last {args.tail} lines of {uri} ---")
    _out(_tail(text, args.tail))
    _out("--- end ---")
    _driver_log(c, cluster, cluster_id, text, args.tail)


def _wait_cluster(c: aws.Clients, cluster_id: str, poll: int) -> int:
    while True:
        seen = aws.wait_once(c.emr, "cluster_running", ClusterId=cluster_id)
        cluster = seen["Cluster"] if seen else aws.describe_cluster(c.emr, cluster_id)
        st = cluster["Status"]
        _out(f"[{_stamp()}] cluster {cluster_id}: {st['State']}")
        if seen is None:
            return 0
        if st["State"].startswith("TERMINAT"):
            _out(f"cluster {cluster_id} {st['State']}: "
                 f"{st.get('StateChangeReason', {}).get('Message', '')}")
            return 1
        time.sleep(poll)


def cmd_wait(args: argparse.Namespace) -> int:
    cluster_id = _cluster_id(args)
    c = _clients(args)
    step_ids = args.step_id
    if not step_ids:
        saved = state.load(args.state_dir)
        step_ids = [s["id"] for s in saved.get("steps", [])
                    if saved.get("cluster_id") == cluster_id]
    if not step_ids:
        _out(f"no steps submitted to {cluster_id}: waiting for the cluster to be ready")
        return _wait_cluster(c, cluster_id, args.poll)
    for step_id in step_ids:
        last = None
        while True:
            seen = aws.wait_once(c.emr, "step_complete", ClusterId=cluster_id, StepId=step_id)
            step = seen["Step"] if seen else aws.describe_step(c.emr, cluster_id, step_id)
            st = step["Status"]["State"]
            line = f"[{_stamp()}] step {step_id} {step.get('Name', '')}: {st}{_elapsed(step)}"
            if line != last:
                _out(line)
                last = line
            if st == "COMPLETED":
                break
            if st in ("FAILED", "CANCELLED", "INTERRUPTED"):
                _report_failure(c, cluster_id, step, args)
                return 1
            time.sleep(args.poll)
    _out(f"all {len(step_ids)} step(s) completed")
    return 0


def _described(args: argparse.Namespace) -> tuple[str, aws.Clients, dict[str, Any]]:
    """The cluster a command is about: its id, clients in its region, its description."""
    cluster_id = _cluster_id(args)
    c = _clients(args)
    return cluster_id, c, aws.describe_cluster(c.emr, cluster_id)


def cmd_status(args: argparse.Namespace) -> int:
    cluster_id, c, cluster = _described(args)
    st = cluster["Status"]
    _out(f"cluster {cluster_id} {cluster.get('Name', '')}: {st['State']}"
         f" {st.get('StateChangeReason', {}).get('Message', '')}".rstrip())
    _out(f"  release {cluster.get('ReleaseLabel')}, logs {cluster.get('LogUri')}, "
         f"master {cluster.get('MasterPublicDnsName', '-')}")
    for s in aws.list_steps(c.emr, cluster_id):
        _out(f"  step {s['Id']} {s['Name']}: {s['Status']['State']}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    cluster_id, c, cluster = _described(args)
    step_id = args.step_id
    if not step_id:
        found = aws.list_steps(c.emr, cluster_id)
        if not found:
            raise CommandError(f"cluster {cluster_id} has no steps")
        step_id = found[-1]["Id"]
    text = fetch_step_log(c, cluster, cluster_id, step_id, args.file)
    if text is None:
        where = _log_location(cluster, cluster_id, step_id, args.file)
        raise CommandError(
            f"no {args.file} log for step {step_id}"
            + (f" at s3://{where[0]}/{where[1]} yet (EMR copies step logs a few minutes "
               f"after the step ends)" if where else " (the cluster has no LogUri)"))
    _out(_tail(text, args.tail))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster_id = _cluster_id(args)
    c = _clients(args)
    aws.terminate_job_flows(c.emr, cluster_id)
    _out(f"terminating {cluster_id}")
    if not args.no_wait:
        while True:
            seen = aws.wait_once(c.emr, "cluster_terminated", ClusterId=cluster_id)
            cluster = seen["Cluster"] if seen else aws.describe_cluster(c.emr, cluster_id)
            st = cluster["Status"]["State"]
            _out(f"[{_stamp()}] cluster {cluster_id}: {st}")
            if st.startswith("TERMINATED"):  # TERMINATED, or the waiter's failure state
                break
            time.sleep(args.poll)
    if state.load(args.state_dir).get("cluster_id") == cluster_id:
        state.clear(args.state_dir)
    return 0


COMMANDS = {"package": cmd_package, "upload": cmd_upload, "up": cmd_up, "submit": cmd_submit,
            "run": cmd_run, "wait": cmd_wait, "status": cmd_status, "logs": cmd_logs,
            "down": cmd_down}


def main(argv: Sequence[str] | None = None) -> int:
    from featurize.weights import WeightsError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (SettingsError, WeightsError) as exc:
        print(f"emr {args.command}: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"emr {args.command}: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"emr {args.command}: {aws.explain(exc)}", file=sys.stderr)
        return 1
