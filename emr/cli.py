"""``python -m emr <command>``: the EMR lifecycle the Makefile drives.

::

    package   build dist/ (code zip, entry points, bootstrap + pins)
    dag-package  dist/airflow/featurize_images_emr.zip: the Airflow DAG and its packages
    upload    put dist/ and the weights file under s3://BUCKET/PREFIX/
    up        start a long-lived cluster (bootstrap action, Spark configuration)
    submit    add featurize/train/predict steps to it
    wait      follow the steps (or the cluster start); on failure print stderr's tail
    status    the cluster and its steps
    logs      print a step's log from LogUri
    down      terminate the cluster
    run       a transient cluster that runs the steps and terminates itself
    policy    the least-privilege IAM policy of the nodes (offline), or --create-role
    jars      fetch the rehearsal's jars from Maven Central (once, sha256-checked)
    rehearse  the steps on a local YARN against a moto S3, before paying for a cluster

``up``, ``submit`` and ``run`` take ``--dry-run``: print the exact request, call nothing.
Exit status: 0 done, 1 AWS failure or a failed step, 2 bad settings.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from emr import aws, estimate, logs, package, preflight, requests, sizing, state, upload
from emr.args import build_parser, job_args_from, jobs, settings_from
from emr.follow import follow
from emr.logs import out as _out
from emr.settings import Settings, check_instance_type, check_s3_uri
from featurize.errors import CommandError, FeaturizeError, SettingsError, explain_aws
from featurize.storage.s3 import list_images

logger = logging.getLogger("emr")

def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


# --- commands ---------------------------------------------------------------------------

def cmd_package(args: argparse.Namespace) -> int:
    written = package.build(args.dist)
    for rel in written:
        _out(f"{os.path.join(args.dist, rel)}  {os.path.getsize(os.path.join(args.dist, rel))} B")
    return 0


def cmd_dag_package(args: argparse.Namespace) -> int:
    zipped = package.dag_bundle(args.dist)
    _out(f"{zipped}  {zipped.stat().st_size} B: copy it into the DAGs folder (docs/emr.md, "
         f"\"Scheduling with Airflow\")")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    upload.upload(args)
    return 0


def _secure(c: aws.Clients, settings: Settings) -> None:
    """The security configuration SSE asks for, created once and reused after."""
    secured = requests.security_configuration(settings)
    if secured:
        name, document = secured
        how = aws.ensure_security_configuration(c.emr, name, document)
        logger.info("security configuration %s %s: %s", name, how, json.dumps(document))


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    logger.info("%s", settings.sizing.summary())
    request = requests.run_job_flow(settings)
    if args.dry_run:
        _out(_dump(request))
        return 0
    c = aws.clients(args.profile, args.region)
    preflight.refuse_second_cluster(c, args.state_dir)
    if not args.skip_preflight:
        preflight.run_checks(c, settings)
    preflight.check_artifacts(c, preflight.bootstrap_uris(settings))
    _secure(c, settings)
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


def cmd_submit(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    built = requests.steps(settings, jobs(args), job_args_from(args))
    cluster_id = _cluster_id(args, required=not args.dry_run) or "CLUSTER_ID"
    if args.dry_run:
        _out(_dump({"JobFlowId": cluster_id, "Steps": [s.request for s in built]}))
        return 0
    c = _clients(args)
    cluster = aws.describe_cluster(c.emr, cluster_id)
    if cluster["Status"]["State"] not in preflight.ACTIVE:
        raise CommandError(f"cluster {cluster_id} is {cluster['Status']['State']}: start one "
                           f"with `make cluster`, or give CLUSTER_ID= of a running one")
    preflight.check_engine_fits(cluster, settings)
    preflight.check_artifacts(c, requests.s3_artifacts(built))
    preflight.check_first_input(c, built[0].input)
    step_ids = aws.add_job_flow_steps(c.emr, cluster_id, [s.request for s in built])
    saved = state.load(args.state_dir)
    if saved.get("cluster_id") != cluster_id:
        saved = {"cluster_id": cluster_id, "region": c.region}
    saved["steps"] = [{"id": i, "name": s.request["Name"]} for i, s in zip(step_ids, built)]
    state.save(saved, args.state_dir)
    for i, s in zip(step_ids, built):
        _out(f"step {i} {s.request['Name']}: {s.command_line}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    logger.info("%s", settings.sizing.summary())
    job_args = job_args_from(args)
    built = requests.steps(settings, jobs(args), job_args,
                           action_on_failure="TERMINATE_CLUSTER")
    request = requests.run_job_flow(settings, built, keep_alive=False)
    if args.dry_run:
        _out(_dump(request))
        return 0
    c = aws.clients(args.profile, args.region)
    preflight.refuse_second_cluster(c, args.state_dir)
    if args.skip_preflight:
        preflight.check_first_input(c, built[0].input)
    else:
        # the featurize step's own --extensions decide which files are images
        own = any(a.startswith("--extensions") for a in job_args.featurize_args)
        preflight.run_checks(c, settings, built[0].input,
                             None if own else preflight.DEFAULT_EXTENSIONS)
    preflight.check_artifacts(c, preflight.bootstrap_uris(settings) + requests.s3_artifacts(built))
    _secure(c, settings)
    cluster_id = aws.run_job_flow(c.emr, request)
    steps_now = aws.list_steps(c.emr, cluster_id)
    state.save({"cluster_id": cluster_id, "region": c.region,
                "steps": [{"id": s["Id"], "name": s["Name"]} for s in steps_now]},
               args.state_dir)
    _out(f"transient cluster {cluster_id}: {len(built)} step(s), terminates when they "
         f"end; logs under {settings.log_uri}")
    return 0


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
        cluster = follow(c, "cluster_running", {"ClusterId": cluster_id}, args.poll)
        if cluster["Status"]["State"].startswith("TERMINAT"):
            _out(f"cluster {cluster_id} {logs.cluster_reason(cluster)}")
            return 1
        return 0
    for step_id in step_ids:
        step = follow(c, "step_complete", {"ClusterId": cluster_id, "StepId": step_id},
                      args.poll)
        if step["Status"]["State"] != "COMPLETED":
            logs.report_failure(c, cluster_id, step, log_wait=args.log_wait, n=args.tail)
            return 1
    _out(f"all {len(step_ids)} step(s) completed")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    check_instance_type(args.instance_type, "INSTANCE_TYPE")
    check_s3_uri(args.input, "INPUT")
    if args.core_count < 1 or args.task_count < 0:
        raise SettingsError("CORE_COUNT must be at least 1 and TASK_COUNT at least 0")
    sz = sizing.size(args.instance_type, args.executor_cores, args.executor_memory)
    s3 = aws.s3_client(args.profile, args.region)
    objects = list_images(s3, args.input,
                          tuple(e for e in args.extensions.split(",") if e))
    if not objects:
        raise SettingsError(f"INPUT={args.input} holds no images ({args.extensions})")
    sample = estimate.sample_input(s3, objects)
    rate, rate_source = estimate.rate_for(estimate.load_rates(Path(args.rate_file)), sample)
    price, price_source = estimate.price(args.instance_type, sz.vcpus, args.price_per_hour)
    e = estimate.Estimate(images=len(objects), input_bytes=sum(o[1] for o in objects),
                          sizing=sz, core_count=args.core_count, task_count=args.task_count,
                          rate=rate, price=price, spot_price=args.spot_price_per_hour)
    for line in estimate.report(e, rate_source, price_source=price_source,
                                target_minutes=args.target_minutes, sample=sample):
        _out(line)
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
    where = logs.ClusterLogs.of(cluster, cluster_id)
    text = logs.fetch_step_log(c, where, step_id, args.file)
    if text is None:
        uri = where.step_log(step_id, args.file)
        raise CommandError(
            f"no {args.file} log for step {step_id}"
            + (f" at {uri} yet (EMR copies step logs a few minutes after the step ends)"
               if uri else " (the cluster has no LogUri)"))
    _out(logs.tail(text, args.tail))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster_id = _cluster_id(args)
    c = _clients(args)
    aws.terminate_job_flows(c.emr, cluster_id)
    _out(f"terminating {cluster_id}")
    if not args.no_wait:
        follow(c, "cluster_terminated", {"ClusterId": cluster_id}, args.poll)
    if state.load(args.state_dir).get("cluster_id") == cluster_id:
        state.clear(args.state_dir)
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    """The policy JSON on stdout (no AWS call), or the role created with it."""
    from emr import policy

    settings = settings_from(args)
    doc = policy.node_policy(settings, jobs(args), job_args_from(args))
    if not args.create_role:
        _out(policy.to_json(doc))
        return 0
    c = aws.clients(args.profile, args.region)
    created = policy.create_role(c.iam, args.create_role, doc)
    _out(f"role and instance profile {args.create_role} {created}: use INSTANCE_PROFILE="
         f"{args.create_role}")
    return 0


def cmd_jars(args: argparse.Namespace) -> int:
    from emr.rehearsal import jars

    for path in jars.fetch(log=_out):
        _out(f"{path}  {path.stat().st_size} B")
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from emr.rehearsal import run

    if args.profile:
        raise SettingsError("PROFILE: a rehearsal never reaches AWS; leave PROFILE unset")
    return run.rehearse(args)


COMMANDS = {"package": cmd_package, "dag-package": cmd_dag_package, "upload": cmd_upload,
            "up": cmd_up, "submit": cmd_submit, "run": cmd_run, "wait": cmd_wait,
            "status": cmd_status, "logs": cmd_logs, "down": cmd_down, "estimate": cmd_estimate,
            "jars": cmd_jars, "rehearse": cmd_rehearse, "policy": cmd_policy}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status comes from the error's base class (2 usage,
    1 failure) or is 1 for a failed AWS call."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    args = build_parser(__doc__).parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FeaturizeError as exc:
        print(f"emr {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except (ClientError, BotoCoreError) as exc:
        print(f"emr {args.command}: {explain_aws(exc)}", file=sys.stderr)
        return 1
