"""The boto3 request dicts for EMR, built from :class:`emr.settings.Settings`.

Pure functions: ``--dry-run`` prints exactly what they return, and the CLI sends exactly
that. Steps are ``command-runner.jar`` running ``spark-submit --deploy-mode cluster``
(a packed environment or ``--py-files`` from S3 is only reliable in cluster mode,
SPARK-36088). Step arguments are an argv list, never a shell string: command-runner.jar
executes them without a shell, so an input path with spaces or ``$`` stays one argument.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emr.package import BOOTSTRAP_SCRIPT, CODE_ZIP, JOB_FILES, WHEELS
from emr.settings import NODE_PYTHON, Settings, SettingsError, check_s3_uri
from emr.sizing import DRIVER_MEMORY_MB, DRIVER_OVERHEAD_MB

PROJECT_TAG = "featurize-images"
#: The steps ``submit`` and ``run`` add unless STEPS says otherwise.
DEFAULT_STEPS = ("featurize", "train")


def weights_uri(settings: Settings, spec: str) -> str:
    """What the EMR job gets as ``--weights`` for a local ``--weights`` spec.

    ``imagenet`` and local files are uploaded under ``PREFIX/weights/`` (clusters in
    private subnets cannot download from the internet); ``s3://`` URIs and ``random``
    pass through.
    """
    from featurize.model.weights import IMAGENET_FILE

    if spec == "random" or spec.startswith(("s3://", "s3a://")):
        return spec
    if spec == "imagenet":
        return settings.uri("weights", IMAGENET_FILE)
    return settings.uri("weights", posixpath.basename(spec.rstrip("/")))


def configurations(settings: Settings) -> list[dict[str, Any]]:
    """spark-env (PYSPARK_PYTHON) and spark-defaults (interpreter + CNN sizing).

    One task per core and one model per task; sizes from the instance type
    (:mod:`emr.sizing`); a fixed set of executors (executors that come and go rebuild
    the model), since without dynamic allocation Spark would otherwise start only 2.
    """
    sz = settings.sizing
    nodes = settings.core_count + settings.task_count
    return [
        {"Classification": "spark-env", "Properties": {}, "Configurations": [
            {"Classification": "export",
             "Properties": {"PYSPARK_PYTHON": NODE_PYTHON,
                            "PYSPARK_DRIVER_PYTHON": NODE_PYTHON}}]},
        {"Classification": "spark-defaults", "Properties": {
            "spark.pyspark.python": NODE_PYTHON,
            "spark.pyspark.driver.python": NODE_PYTHON,
            "spark.executor.instances": str(sz.executors_per_node * nodes),
            "spark.executor.cores": str(sz.executor_cores),
            "spark.task.cpus": "1",
            "spark.executor.memory": f"{sz.executor_memory_mb}m",
            "spark.executor.memoryOverhead": f"{sz.executor_overhead_mb}m",
            "spark.driver.memory": f"{DRIVER_MEMORY_MB}m",
            "spark.driver.memoryOverhead": f"{DRIVER_OVERHEAD_MB}m",
            "spark.python.worker.reuse": "true",
            "spark.dynamicAllocation.enabled": "false",
            **DECOMMISSIONING,
        }},
    ] + ([{"Classification": "yarn-site", "Properties": AM_ON_CORE_NODES}]
         if settings.task_count else [])


#: Spark's node decommissioning on EMR, written out at EMR's documented defaults so a
#: reader sees them and a release that changed one would not change the job (Amazon EMR
#: Release Guide, "Configure Spark", "Configuring node decommissioning behavior":
#: https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark-configure.html#spark-decommissioning).
#: A node YARN decommissions gets no new tasks (its running ones finish) for up to the
#: timeout; a Spot node, which decommissions within 20 s (the threshold), also has its
#: cached blocks and shuffle outputs dropped at once, and fetch failures from it do not
#: count toward failing a stage. These keys are EMR's Spark's own: open-source Spark
#: (the rehearsal) ignores them. docs/emr.md, "Spot task nodes", says what a reclaim costs.
DECOMMISSIONING = {
    "spark.blacklist.decommissioning.enabled": "true",
    "spark.blacklist.decommissioning.timeout": "1h",
    "spark.decommissioning.timeout.threshold": "20",
    "spark.resourceManager.cleanupExpiredHost": "true",
    "spark.stage.attempt.ignoreOnDecommissionFetchFailure": "true",
}

#: With task nodes, YARN's ApplicationMasters (in cluster deploy mode: the driver) stay
#: on core nodes, so a task node lost (a Spot reclaim) costs executors, never the step.
#: From EMR 6.x node labels are off and "application master processes can run on both core
#: and task nodes by default"; these two properties turn the CORE label back on for them
#: (EMR Management Guide, "Understand node types": core nodes and node labels).
AM_ON_CORE_NODES = {"yarn.node-labels.enabled": "true",
                    "yarn.node-labels.am.default-node-label-expression": "CORE"}


def security_configuration(settings: Settings) -> tuple[str, dict[str, Any]] | None:
    """``(name, document)`` of the EMR security configuration SSE asks for, or None.

    S3 encryption at rest as the steps' ``--sse`` (SSE-S3 or SSE-KMS with the key), and
    with a key, local-disk and EBS encryption under the same key. The document's shape is
    AWS's ("Create a security configuration with the Amazon EMR console or with the AWS
    CLI", Amazon EMR Management Guide: EncryptionConfiguration.AtRestEncryptionConfiguration
    with S3EncryptionConfiguration {EncryptionMode, AwsKmsKey} and
    LocalDiskEncryptionConfiguration {EncryptionKeyProviderType: AwsKms, AwsKmsKey,
    EnableEbsEncryption}); moto stores it without checking it. The name carries a digest
    of the document, so the same settings find the same configuration and other settings
    never change one a running cluster uses.

    Raises
    ------
    SettingsError
        SSE=aws:kms without SSE_KMS_KEY_ID: EMR's SSE-KMS mode names its key.
    """
    enc = settings.encryption
    if enc.algorithm is None:
        return None
    if enc.algorithm == "aws:kms" and not enc.kms_key_id:
        raise SettingsError("SSE=aws:kms on a cluster needs SSE_KMS_KEY_ID=<key ARN>: the "
                            "security configuration's S3 and local-disk encryption name it")
    at_rest: dict[str, Any] = {"S3EncryptionConfiguration": (
        {"EncryptionMode": "SSE-S3"} if enc.algorithm == "AES256"
        else {"EncryptionMode": "SSE-KMS", "AwsKmsKey": enc.kms_key_id})}
    if enc.kms_key_id:
        at_rest["LocalDiskEncryptionConfiguration"] = {
            "EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": enc.kms_key_id,
            "EnableEbsEncryption": True}
    document = {"EncryptionConfiguration": {"EnableInTransitEncryption": False,
                                            "EnableAtRestEncryption": True,
                                            "AtRestEncryptionConfiguration": at_rest}}
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:12]
    mode = at_rest["S3EncryptionConfiguration"]["EncryptionMode"].lower()
    return f"{PROJECT_TAG}-{mode}-{digest}", document


def _instance_groups(settings: Settings) -> list[dict[str, Any]]:
    master = {"Name": "master", "InstanceRole": "MASTER", "Market": "ON_DEMAND",
              "InstanceType": settings.master, "InstanceCount": 1}
    core = {"Name": "core", "InstanceRole": "CORE",
            "Market": "SPOT" if settings.spot else "ON_DEMAND",
            "InstanceType": settings.instance_type, "InstanceCount": settings.core_count}
    groups = [master, core]
    if settings.task_count:
        # task nodes hold no HDFS data: the natural place for spot capacity
        groups.append({"Name": "task", "InstanceRole": "TASK",
                       "Market": settings.task_market or ("SPOT" if settings.spot
                                                          else "ON_DEMAND"),
                       "InstanceType": settings.instance_type,
                       "InstanceCount": settings.task_count})
    return groups


def run_job_flow(settings: Settings, steps: Sequence[Step] = (),
                 keep_alive: bool = True) -> dict[str, Any]:
    """``run_job_flow`` kwargs: a long-lived cluster (``up``), or a transient one that
    runs ``steps`` and terminates itself (``run``: ``keep_alive=False``)."""
    instances: dict[str, Any] = {
        "InstanceGroups": _instance_groups(settings),
        "KeepJobFlowAliveWhenNoSteps": keep_alive,
        "TerminationProtected": False,
    }
    if settings.subnet_id:
        instances["Ec2SubnetId"] = settings.subnet_id
    if settings.key_name:
        instances["Ec2KeyName"] = settings.key_name
    tags = {"project": PROJECT_TAG,
            # the v2 service role's managed policy only acts on clusters tagged so
            "for-use-with-amazon-emr-managed-policies": "true", **settings.tags}
    request: dict[str, Any] = {
        "Name": settings.name,
        "ReleaseLabel": settings.release_label,
        "LogUri": settings.log_uri,
        "Applications": [{"Name": "Spark"}],
        "Instances": instances,
        "BootstrapActions": [{
            "Name": "install pinned Python dependencies",
            "ScriptBootstrapAction": {
                "Path": f"{settings.dist_uri}/bootstrap/{BOOTSTRAP_SCRIPT}",
                "Args": [f"{settings.dist_uri}/bootstrap", f"{settings.dist_uri}/{WHEELS}"],
            },
        }],
        "Configurations": configurations(settings),
        "ServiceRole": settings.service_role,
        "JobFlowRole": settings.instance_profile,
        "VisibleToAllUsers": True,
        "AutoTerminationPolicy": {"IdleTimeout": settings.idle_timeout},
        # top-level RunJobFlow parameter, GiB (EMR API Reference, RunJobFlow)
        "EbsRootVolumeSize": settings.root_volume_gb,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    secured = security_configuration(settings)
    if secured:
        request["SecurityConfiguration"] = secured[0]
    if steps:
        request["Steps"] = [s.request for s in steps]
    return request


@dataclass(frozen=True)
class JobArgs:
    """The job-level arguments of the steps ``submit`` builds."""

    input: str | None = None
    #: ``--input-list`` of the featurize step (a list file, or an S3 Inventory
    #: ``manifest.json``): INPUT is then the root the listed objects are under.
    input_list: str | None = None
    output: str | None = None
    weights: str = "imagenet"
    featurize_args: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()
    index_args: tuple[str, ...] = ()
    predict_input: str | None = None
    predict_output: str | None = None


def spark_submit_args(settings: Settings, job: str, job_args: Sequence[str]) -> list[str]:
    """``spark-submit`` argv for one job, every artifact an ``s3://`` URI under dist/."""
    return ["spark-submit", "--deploy-mode", "cluster", "--master", "yarn",
            "--conf", "spark.yarn.submit.waitAppCompletion=true",
            # One attempt. YARN's default is 2 (yarn.resourcemanager.am.max-attempts), and
            # Spark's ApplicationMaster unregisters only on success or on the last attempt:
            # a failed first attempt leaves a "failed" manifest in --output, so the second
            # always fails with "output already exists" and the real error is buried in the
            # first attempt's log. A transient failure is better retried by the user
            # (--resume keeps the finished work) than by YARN.
            "--conf", "spark.yarn.maxAppAttempts=1",
            "--py-files", f"{settings.dist_uri}/{CODE_ZIP}",
            f"{settings.dist_uri}/jobs/{JOB_FILES[job]}", *job_args]


@dataclass(frozen=True)
class Step:
    """One step: the ``add_job_flow_steps`` entry, and what must exist before it is sent."""

    job: str
    request: dict[str, Any]
    #: ``s3://`` artifacts the step names: the code zip, the entry point, the weights.
    artifacts: tuple[str, ...]
    #: The images it reads (featurize and predict), or None.
    input: str | None = None

    @property
    def command_line(self) -> str:
        """The step as one shell-quoted line, to paste on the master node."""
        return shlex.join(self.request["HadoopJarStep"]["Args"])


def step(settings: Settings, job: str, job_args: Sequence[str], action_on_failure: str, *,
         weights: str | None = None, input_uri: str | None = None) -> Step:
    code = (f"{settings.dist_uri}/{CODE_ZIP}", f"{settings.dist_uri}/jobs/{JOB_FILES[job]}")
    s3_weights = (weights,) if weights and weights.startswith(("s3://", "s3a://")) else ()
    request = {
        "Name": f"featurize-images {job}",
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar",
                          "Args": spark_submit_args(settings, job, job_args)},
    }
    return Step(job, request, code + s3_weights, input_uri)


def default_output(settings: Settings, input_uri: str) -> str:
    """``s3://BUCKET/PREFIX/runs/<last folder of INPUT>`` when OUTPUT is not given."""
    name = posixpath.basename(input_uri.rstrip("/")) or "run"
    return settings.uri("runs", name)


def steps(settings: Settings, jobs: Sequence[str], args: JobArgs,
          action_on_failure: str = "CANCEL_AND_WAIT") -> list[Step]:
    """Steps for ``jobs`` (in the order featurize, train, predict, index), validated.

    ``CANCEL_AND_WAIT`` (the default for a long-lived cluster) cancels the later steps
    when one fails and keeps the cluster for a look at the logs; ``run`` passes
    ``TERMINATE_CLUSTER``.
    """
    unknown = [j for j in jobs if j not in JOB_FILES]
    if unknown or not jobs:
        raise SettingsError(f"STEPS={' '.join(jobs)!r}: choose from "
                            f"{', '.join(JOB_FILES)} (e.g. STEPS='featurize train')")
    output = args.output
    if "featurize" in jobs:
        check_s3_uri(args.input, "INPUT")
        output = output or default_output(settings, args.input)
    output = check_s3_uri(output, "OUTPUT")
    sse = settings.encryption.argv()  # every job writes: all three get it
    built = []
    for job in JOB_FILES:  # fixed order, whatever order they were asked in
        if job not in jobs:
            continue
        if job == "featurize":
            weights = weights_uri(settings, args.weights)
            listed = (["--input-list", check_s3_uri(args.input_list, "INPUT_LIST")]
                      if args.input_list else [])
            built.append(step(settings, job, ["--input", args.input, *listed, "--output", output,
                                              "--weights", weights, "--engine", settings.engine,
                                              *sse, *args.featurize_args],
                              action_on_failure, weights=weights, input_uri=args.input))
        elif job == "train":
            built.append(step(settings, job, ["--run", output, *sse, *args.train_args],
                              action_on_failure))
        elif job == "index":
            built.append(step(settings, job, ["--run", output, *sse, *args.index_args],
                              action_on_failure))
        else:
            predict_in = check_s3_uri(args.predict_input, "PREDICT_INPUT")
            predict_out = check_s3_uri(args.predict_output or f"{output}-predictions",
                                       "PREDICT_OUTPUT")
            built.append(step(settings, job, ["--run", output, "--input", predict_in,
                                              "--output", predict_out, *sse],
                              action_on_failure, input_uri=predict_in))
    return built


def s3_artifacts(built: Sequence[Step]) -> list[str]:
    """Every artifact the steps name, once each, in order."""
    return list(dict.fromkeys(uri for s in built for uri in s.artifacts))
