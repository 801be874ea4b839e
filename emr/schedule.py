"""The Airflow DAG's requests: DAG params → the same requests as ``python -m emr up/submit``.

``dags/featurize_images_emr.py`` only wires operators; what they send comes from
:func:`plan`, which builds it the way the CLI does. The params become the CLI's own flags
(:func:`argv`), :mod:`emr.args` parses them into :class:`~emr.settings.Settings` and
:class:`~emr.requests.JobArgs`, and :mod:`emr.requests` builds the ``run_job_flow`` request
(as ``up``: a cluster that waits for steps, which the DAG terminates itself) and the steps
(as ``submit``). Same settings, same request: ``tests/dag`` checks it against the
``--dry-run`` output of both commands.

No Airflow import here: the module is plain Python, like the rest of ``emr``.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from emr import preflight, requests
from emr.args import build_parser, job_args_from, jobs, settings_from
from featurize.errors import SettingsError


@dataclass(frozen=True)
class Param:
    """One DAG param: the ``python -m emr`` flag it becomes, its JSON-schema type, help."""

    flag: str
    type: str
    help: str
    #: ``up``'s flags (the cluster) also go to ``submit``; the rest are ``submit``'s only.
    cluster: bool = True


#: Every param of the DAG, in the order of the trigger form. None of them has an
#: account-specific default: a param left empty (null) keeps the CLI's default. Their
#: make-variable names are the same in capitals (docs/emr.md, "Scheduling with Airflow").
PARAMS: dict[str, Param] = {
    "bucket": Param("--bucket", "string", "S3 bucket of the uploaded dist/, the logs and the "
                                          "default outputs (required)"),
    "prefix": Param("--prefix", "string", "key prefix in the bucket (default "
                                          "featurize-images)"),
    "release_label": Param("--release-label", "string", "EMR release (default: the one "
                                                        "the pyspark pin matches)"),
    "instance_type": Param("--instance-type", "string", "core/task node type (default "
                                                        "m5.xlarge)"),
    "master_instance_type": Param("--master-instance-type", "string", "master node type "
                                                                      "(default: instance_type)"),
    "core_count": Param("--core-count", "integer", "core nodes (default 2)"),
    "task_count": Param("--task-count", "integer", "task nodes (default 0)"),
    "spot": Param("--spot", "boolean", "core and task nodes on spot"),
    "task_market": Param("--task-market", "string", "the task nodes' market alone: SPOT or "
                                                     "ON_DEMAND (default: as spot says)"),
    "subnet_id": Param("--subnet-id", "string", "subnet of the cluster (default: EMR's "
                                                "choice in the default VPC)"),
    "key_name": Param("--key-name", "string", "EC2 key pair for ssh (default: none)"),
    "service_role": Param("--service-role", "string", "EMR service role (default "
                                                      "EMR_DefaultRole)"),
    "instance_profile": Param("--instance-profile", "string", "the nodes' instance profile "
                                                              "(default EMR_EC2_DefaultRole; "
                                                              "`make iam-policy` writes a "
                                                              "least-privilege one)"),
    "idle_timeout": Param("--idle-timeout", "integer", "seconds idle before the cluster ends "
                                                       "itself, a backstop to the DAG's own "
                                                       "terminate (default 3600)"),
    "root_volume_gb": Param("--root-volume-gb", "integer", "each node's root EBS volume in "
                                                           "GiB (default 30)"),
    "executor_cores": Param("--executor-cores", "integer", "cores per executor (default: "
                                                           "from the instance type)"),
    "executor_memory": Param("--executor-memory", "string", "heap per executor, e.g. 4g "
                                                            "(default: from the instance "
                                                            "type)"),
    "engine": Param("--engine", "string", "inference engine: openvino (default) or "
                                          "tensorflow"),
    "sse": Param("--sse", "string", "AES256 or aws:kms: every step's --sse and a security "
                                    "configuration for the cluster"),
    "sse_kms_key_id": Param("--sse-kms-key-id", "string", "the KMS key ARN of sse aws:kms"),
    "name": Param("--name", "string", "cluster name (default featurize-images)"),
    "steps": Param("--steps", "string", "any of 'featurize train predict' (default "
                                        "'featurize train')", cluster=False),
    "input": Param("--input", "string", "s3:// folder of images; {{ ds }}, {{ ds_nodash }} "
                                        "and {{ yesterday_ds }} become the run's date",
                   cluster=False),
    "input_list": Param("--input-list", "string", "s3:// list of the images under input "
                                                  "(CSV, Parquet, text or an S3 Inventory "
                                                  "manifest.json); dates as input",
                        cluster=False),
    "output": Param("--output", "string", "s3:// run directory (default s3://BUCKET/PREFIX/"
                                          "runs/<last folder of input>); dates as input",
                    cluster=False),
    "weights": Param("--weights", "string", "weights as given to `make upload` (default "
                                            "imagenet)", cluster=False),
    "job_args": Param("--job-args", "string", "extra featurize arguments, one string",
                      cluster=False),
    "train_args": Param("--train-args", "string", "extra train arguments, one string",
                        cluster=False),
    "index_args": Param("--index-args", "string", "extra index arguments, one string "
                                                  "(e.g. --duplicates 0.95)", cluster=False),
    "predict_input": Param("--predict-input", "string", "s3:// images for the predict step; "
                                                        "dates as input", cluster=False),
    "predict_output": Param("--predict-output", "string", "s3:// folder of the predictions "
                                                          "(default OUTPUT-predictions); "
                                                          "dates as input", cluster=False),
}
#: Params that may name the run's date: ``{{ ds }}`` (YYYY-MM-DD), ``{{ ds_nodash }}``,
#: ``{{ yesterday_ds }}`` (the day before: the day that just ended, for a daily run
#: triggered at midnight).
DATED = ("input", "input_list", "output", "predict_input", "predict_output")
_DATE = re.compile(r"\{\{\s*(ds|ds_nodash|yesterday_ds)\s*\}\}")


def argv(command: str, params: dict[str, Any]) -> list[str]:
    """The ``python -m emr`` command line of ``up`` or ``submit`` for ``params``.

    Empty params (None, "", False) are left out, as the Makefile leaves out unset
    variables, so the CLI's defaults apply. Unknown params are refused: a misspelt name
    would otherwise be dropped without a word.

    >>> argv("up", {"bucket": "b", "core_count": 3, "spot": True, "input": "s3://b/i"})
    ['up', '--bucket', 'b', '--core-count', '3', '--spot']
    >>> argv("submit", {"bucket": "b", "job_args": "--crop 0.9"})
    ['submit', '--bucket', 'b', '--job-args=--crop 0.9']
    """
    unknown = sorted(set(params) - set(PARAMS) - {"aws_conn_id", "region"})
    if unknown:
        raise SettingsError(f"unknown DAG param(s) {', '.join(unknown)}: choose from "
                            f"{', '.join(PARAMS)}")
    out = [command]
    for name, p in PARAMS.items():
        value = params.get(name)
        if value is None or value == "" or value is False or (command == "up" and not p.cluster):
            continue
        if p.type == "boolean":
            out.append(p.flag)
        elif name in ("job_args", "train_args", "index_args"):
            out.append(f"{p.flag}={value}")  # a value that starts with "--" stays a value
        else:
            out += [p.flag, str(value)]
    return out


def dated(params: dict[str, Any], ds: str) -> dict[str, Any]:
    """``params`` with ``{{ ds }}``, ``{{ ds_nodash }}`` and ``{{ yesterday_ds }}`` in the
    paths replaced by the run's date (``ds`` = YYYY-MM-DD).

    >>> p = dated({"input": "s3://b/images/{{ yesterday_ds }}/",
    ...            "output": "s3://b/runs/{{ds_nodash}}"}, "2026-12-01")
    >>> p["input"], p["output"]
    ('s3://b/images/2026-11-30/', 's3://b/runs/20261201')
    """
    day = datetime.date.fromisoformat(ds)
    values = {"ds": ds, "ds_nodash": ds.replace("-", ""),
              "yesterday_ds": (day - datetime.timedelta(days=1)).isoformat()}
    out = dict(params)
    for name in DATED:
        if isinstance(out.get(name), str):
            out[name] = _DATE.sub(lambda m: values[m.group(1)], out[name])
    return out


@dataclass(frozen=True)
class Plan:
    """What the DAG's operators send, and what must exist in S3 first."""

    job_flow: dict[str, Any]
    steps: list[dict[str, Any]]
    region: str | None
    #: Uploaded artifacts the cluster and the steps name (checked before the cluster starts).
    artifacts: list[str]
    #: The images the first step reads, or None.
    first_input: str | None
    #: ``(name, document)`` of the security configuration SSE asks for, or None.
    security_configuration: tuple[str, dict[str, Any]] | None

    def xcom(self) -> dict[str, Any]:
        """JSON-able, for Airflow's XCom (one key per field)."""
        return {"job_flow": self.job_flow, "steps": self.steps, "region": self.region,
                "artifacts": self.artifacts, "first_input": self.first_input,
                "security_configuration": (list(self.security_configuration)
                                           if self.security_configuration else None)}


def _parse(command: str, params: dict[str, Any]) -> Any:
    parser = build_parser(__doc__ or "")
    try:
        return parser.parse_args(argv(command, params))
    except SystemExit as exc:  # argparse has printed the reason to stderr
        raise SettingsError(f"DAG params do not make a valid `python -m emr {command}` "
                            f"command line: {' '.join(argv(command, params))}") from exc


def plan(params: dict[str, Any], ds: str) -> Plan:
    """The cluster request (``up``) and the steps (``submit``) for the DAG run's params,
    dated ``ds`` (YYYY-MM-DD).

    Raises
    ------
    SettingsError
        Params the CLI would refuse (no bucket, a local input, an unknown step, ...):
        the DAG run fails in this first task, before anything is created.
    """
    params = dated({k: v for k, v in params.items()}, ds)
    up, submit = _parse("up", params), _parse("submit", params)
    settings = settings_from(up)
    built = requests.steps(settings_from(submit), jobs(submit), job_args_from(submit))
    return Plan(job_flow=requests.run_job_flow(settings),
                steps=[s.request for s in built],
                region=params.get("region") or None,
                artifacts=preflight.bootstrap_uris(settings) + requests.s3_artifacts(built),
                first_input=built[0].input,
                security_configuration=requests.security_configuration(settings))
