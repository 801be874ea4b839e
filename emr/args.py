"""The command line of ``python -m emr``: flags → :class:`Settings` and :class:`JobArgs`.

No default of a :class:`Settings` or :class:`JobArgs` field is set here: a flag the user
did not give is left out and the dataclass's default applies (the Makefile likewise
passes only the variables that were set). The CLI's own options (``--dist``,
``--state-dir``, ``--poll``, ``--tail`` …) keep their defaults here.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any

from emr import requests, state
from emr.estimate import RATE_FILE
from emr.settings import Settings
from featurize.config import DEFAULT_EXTENSIONS
from featurize.encryption import ALGORITHMS


def _settings_args(p: argparse.ArgumentParser) -> None:
    """Flags of :class:`Settings`; each default is the dataclass's (none is set here)."""
    g = p.add_argument_group("where and what (make variables in capitals)")
    g.add_argument("--bucket", help="BUCKET: S3 bucket for artifacts, logs and default "
                                    "outputs (required)")
    g.add_argument("--prefix", help="PREFIX: key prefix in BUCKET")
    g.add_argument("--release-label", help="RELEASE_LABEL")
    g.add_argument("--instance-type", help="INSTANCE_TYPE (core and task nodes, and the "
                                           "master unless --master-instance-type)")
    g.add_argument("--master-instance-type", help="MASTER_INSTANCE_TYPE")
    g.add_argument("--core-count", type=int, help="CORE_COUNT")
    g.add_argument("--task-count", type=int, help="TASK_COUNT: task nodes")
    g.add_argument("--spot", action="store_true", default=None,
                   help="SPOT=1: core and task nodes on spot")
    g.add_argument("--task-market", type=str.upper, choices=("SPOT", "ON_DEMAND"),
                   help="TASK_MARKET: the task nodes' market alone (default: as SPOT says)")
    g.add_argument("--subnet-id", help="SUBNET_ID")
    g.add_argument("--key-name", help="KEY_NAME: EC2 key pair for ssh")
    g.add_argument("--service-role", help="SERVICE_ROLE")
    g.add_argument("--instance-profile", help="INSTANCE_PROFILE")
    g.add_argument("--idle-timeout", type=int,
                   help="IDLE_TIMEOUT seconds before an idle cluster terminates itself")
    g.add_argument("--root-volume-gb", type=int,
                   help="ROOT_VOLUME_GB: each node's root EBS volume in GiB (default 30)")
    g.add_argument("--executor-cores", type=int,
                   help="EXECUTOR_CORES: cores per executor (default: from the instance type)")
    g.add_argument("--executor-memory",
                   help="EXECUTOR_MEMORY: heap per executor, e.g. 4g (default: from the "
                        "instance type; required for a type not in emr/sizing.py)")
    g.add_argument("--engine", help="ENGINE: the featurize step's inference engine, openvino "
                                     "(default) or tensorflow; executors are sized for it")
    g.add_argument("--sse", choices=ALGORITHMS,
                   help="SSE: every step's --sse (AES256 or aws:kms); `up`/`run` also give "
                        "the cluster a security configuration with S3 encryption at rest "
                        "(and, with a key, local-disk encryption)")
    g.add_argument("--sse-kms-key-id", help="SSE_KMS_KEY_ID: the KMS key ARN of --sse "
                                            "aws:kms (the policy's kms statement names it)")
    g.add_argument("--name", help="cluster name")


def _job_args(p: argparse.ArgumentParser) -> None:
    """Flags of :class:`requests.JobArgs`; defaults are the dataclass's."""
    g = p.add_argument_group("steps")
    g.add_argument("--steps", help="STEPS: any of 'featurize train predict' (default: "
                                   f"{' '.join(requests.DEFAULT_STEPS)})")
    g.add_argument("--input", help="INPUT: s3:// folder of images")
    g.add_argument("--input-list", help="INPUT_LIST: s3:// list of the images under INPUT "
                                        "(CSV, Parquet, text or an S3 Inventory "
                                        "manifest.json) instead of listing INPUT")
    g.add_argument("--output", help="OUTPUT: s3:// run directory (default s3://BUCKET/"
                                    "PREFIX/runs/<last folder of INPUT>)")
    g.add_argument("--weights", help="WEIGHTS as given to `upload` (imagenet, a file, "
                                     "s3://..., random; default imagenet)")
    g.add_argument("--job-args", help="JOB_ARGS: extra featurize arguments")
    g.add_argument("--train-args", help="TRAIN_ARGS: extra train arguments")
    g.add_argument("--index-args", help="INDEX_ARGS: extra index arguments (--k, --duplicates)")
    g.add_argument("--predict-input", help="PREDICT_INPUT: s3:// images")
    g.add_argument("--predict-output", help="PREDICT_OUTPUT: s3:// folder")


def _preflight_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-preflight", action="store_true",
                   help="SKIP_PREFLIGHT=1: do not check the bucket, roles, network and input "
                        "first (for credentials that may not read IAM or EC2)")


def _cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-id", default=None,
                   help="CLUSTER_ID (default: the last cluster, from .emr/state.json)")


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emr", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="PROFILE: AWS profile")
    parser.add_argument("--region", default=None, help="REGION: AWS region")
    parser.add_argument("--dist", default="dist", help="DIST: the package folder")
    parser.add_argument("--state-dir", default=state.DEFAULT_DIR,
                        help="EMR_STATE: where the last cluster id is remembered")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("package", help="build dist/")
    sub.add_parser("dag-package", help="zip the Airflow DAG with the emr and featurize "
                                       "packages into dist/airflow/")
    p = sub.add_parser("upload", help="upload dist/ and the weights")
    _settings_args(p)
    p.add_argument("--weights", default=requests.JobArgs.weights,
                   help="WEIGHTS: imagenet (from the Keras cache, downloaded once if "
                        "needed), a local weights file, s3://... or random (no upload)")
    p = sub.add_parser("up", help="start a long-lived cluster")
    _settings_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    _preflight_arg(p)
    p = sub.add_parser("submit", help="add steps to the cluster")
    _settings_args(p)
    _job_args(p)
    _cluster_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    p = sub.add_parser("run", help="transient cluster: run the steps, then terminate")
    _settings_args(p)
    _job_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, call nothing")
    _preflight_arg(p)
    p = sub.add_parser("wait", help="wait for the submitted steps (or the cluster start)")
    _cluster_arg(p)
    p.add_argument("--step-id", action="append", default=None, help="step(s) to wait for")
    p.add_argument("--poll", type=int, default=30, help="seconds between polls")
    p.add_argument("--log-wait", type=int, default=300,
                   help="seconds to wait for a failed step's stderr.gz to reach LogUri")
    p.add_argument("--tail", type=int, default=40, help="log lines to print on failure")
    p = sub.add_parser("estimate", help="time and cost of featurizing INPUT on a cluster")
    p.add_argument("--input", required=True, help="INPUT: s3:// folder of images")
    p.add_argument("--instance-type", default=Settings.instance_type, help="INSTANCE_TYPE")
    p.add_argument("--core-count", type=int, default=Settings.core_count, help="CORE_COUNT")
    p.add_argument("--task-count", type=int, default=Settings.task_count, help="TASK_COUNT")
    p.add_argument("--executor-cores", type=int, help="EXECUTOR_CORES")
    p.add_argument("--executor-memory", help="EXECUTOR_MEMORY")
    p.add_argument("--price-per-hour", type=float,
                   help="PRICE_PER_HOUR: USD per instance-hour, EC2 + EMR (default: the "
                        "dated table in emr/estimate.py)")
    p.add_argument("--spot-price-per-hour", type=float,
                   help="SPOT_PRICE_PER_HOUR: the EC2 Spot price per instance-hour, to price "
                        "the task nodes (or, without any, the core nodes) on Spot")
    p.add_argument("--target-minutes", type=float,
                   help="TARGET_MINUTES: also print the CORE_COUNT that featurizes within it")
    p.add_argument("--extensions", default=",".join(DEFAULT_EXTENSIONS),
                   help="which files are images (as the job's --extensions)")
    p.add_argument("--rate-file", default=str(RATE_FILE),
                   help="the images/second per core by kind of image that `make bench` and "
                        "`make bench-photos` recorded (default: build/bench-rate.json; kinds "
                        "it lacks: the rates in emr/estimate.py)")
    p = sub.add_parser("status", help="the cluster and its steps")
    _cluster_arg(p)
    p = sub.add_parser("logs", help="print a step's log from LogUri")
    _cluster_arg(p)
    p.add_argument("--step-id", default=None, help="default: the last step")
    p.add_argument("--file", default="stderr", choices=("stderr", "stdout", "controller"))
    p.add_argument("--tail", type=int, default=0, help="last N lines (0: all)")
    p = sub.add_parser("policy", help="print the least-privilege IAM policy of the nodes' "
                                      "instance profile (offline)")
    _settings_args(p)
    _job_args(p)
    p.add_argument("--create-role", metavar="NAME",
                   help="ROLE_NAME: also create (or update) the role and instance profile "
                        "NAME with that policy; refuses a role this tool did not create")
    p = sub.add_parser("jars", help="fetch the rehearsal's jars from Maven Central (once)")
    p = sub.add_parser("rehearse", help="the steps on a local YARN against a moto S3 "
                                        "(docs/emr.md, \"Rehearse before you pay\")")
    _settings_args(p)
    _job_args(p)
    p.add_argument("--input-from", help="INPUT_FROM: a local folder uploaded to the s3:// "
                                        "INPUT first (a local INPUT is uploaded by itself)")
    p.add_argument("--predict-from", help="PREDICT_FROM: a local folder uploaded to "
                                          "PREDICT_INPUT first")
    p.add_argument("--out", help="OUT: a local folder that receives the run directory")
    p.add_argument("--node-mb", type=int, help="NODE_MB: the NodeManager's memory (default: "
                                               "INSTANCE_TYPE's EMR value)")
    p.add_argument("--node-vcores", type=int, help="NODE_VCORES (default: INSTANCE_TYPE's)")
    p.add_argument("--nodes", type=int, help="NODES: NodeManagers (default: CORE_COUNT + "
                                             "TASK_COUNT, scaled to fit this machine)")
    p.add_argument("--lose-node", type=float, metavar="FRACTION",
                   help="LOSE_NODE: stop a node running executors but not the driver once "
                        "this fraction of the images is featurized (a Spot reclaim)")
    p.add_argument("--drop-conf", action="append", default=[], metavar="KEY",
                   help="DROP_CONF: remove a step's --conf KEY=... (to see what it does, e.g. "
                        "spark.yarn.maxAppAttempts)")
    p.add_argument("--workdir", default="build/rehearsal",
                   help="YARN's folders and logs, and each step's spark-submit log")
    p.add_argument("--tail", type=int, default=40, help="log lines to print on failure")
    p = sub.add_parser("down", help="terminate the cluster")
    _cluster_arg(p)
    p.add_argument("--no-wait", action="store_true", help="do not wait for TERMINATED")
    p.add_argument("--poll", type=int, default=30, help="seconds between polls")
    return parser


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The dataclass fields the user gave a flag for: the rest keep the class defaults."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def settings_from(args: argparse.Namespace) -> Settings:
    # no bucket: Settings refuses it with the "BUCKET is required" message
    return Settings(**{"bucket": getattr(args, "bucket", None), **_given(args, Settings)})


def job_args_from(args: argparse.Namespace) -> requests.JobArgs:
    given = _given(args, requests.JobArgs)
    if args.job_args:
        given["featurize_args"] = tuple(shlex.split(args.job_args))
    if args.train_args:
        given["train_args"] = tuple(shlex.split(args.train_args))
    if getattr(args, "index_args", None):
        given["index_args"] = tuple(shlex.split(args.index_args))
    return requests.JobArgs(**given)


def jobs(args: argparse.Namespace) -> list[str]:
    if args.steps is None:
        return list(requests.DEFAULT_STEPS)
    return args.steps.replace(",", " ").split()
