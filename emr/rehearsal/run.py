"""``python -m emr rehearse``: the EMR steps on a local YARN against a moto S3.

In order: a moto server; ``make upload`` against it (package, wheelhouse, bootstrap, weights)
and the input images; the bootstrap script run for real into the node venv; a YARN of
NODES NodeManagers, each sized like one core node of INSTANCE_TYPE (scaled down to fit
this machine, and saying so), with YARN's physical-memory check on; then each step's own
command line, built by :func:`emr.requests.steps` exactly as ``make submit`` sends it, one
after the other as on a cluster (a failed step cancels the later ones), each step's line
with the peak memory of its driver and executors against their container sizes; with
LOSE_NODE, one node stopped mid-featurize (:mod:`emr.rehearsal.lose`); finally the run
directory copied to OUT. YARN and moto are stopped on every path. Nothing here can reach
AWS: boto3, the AWS CLI shim and S3A are all pointed at the moto server with moto's dummy
credentials.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from emr import package, requests, upload
from emr.args import job_args_from, jobs, settings_from
from emr.logs import out
from emr.rehearsal import aws_shim, hadoop, jars, node
from emr.rehearsal.steps import StepResult, run_step
from emr.rehearsal.yarn import LocalYarn, spark_home
from emr.settings import Settings
from featurize.errors import CommandError, SettingsError
from featurize.storage.s3 import S3Uri

DEFAULT_BUCKET = "featurize-rehearsal"
#: Memory left to everything outside YARN's containers here: moto (which holds the
#: uploaded wheelhouse in memory), YARN's own JVM, spark-submit.
RESERVED_MB = 4096


def machine_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise CommandError("cannot read this machine's memory from /proc/meminfo")


def node_size(settings: Settings, node_mb: int | None, node_vcores: int | None,
              nodes: int = 1) -> tuple[int, int, list[str], bool]:
    """Each NodeManager's memory and vcores: INSTANCE_TYPE's EMR values unless given,
    scaled down only where this machine cannot hold ``nodes`` of them; with the notes to
    print, and whether it was scaled (the executors are then sized for the smaller node)."""
    sz = settings.sizing
    mb = node_mb or sz.yarn_mb
    vcores = node_vcores or sz.vcpus or sz.executor_cores
    if mb is None:
        raise SettingsError(f"INSTANCE_TYPE={settings.instance_type} is not in emr/sizing.py's "
                            f"table: give NODE_MB= (its yarn.nodemanager.resource.memory-mb)")
    notes = []
    if node_mb and sz.yarn_mb and node_mb != sz.yarn_mb:
        notes.append(f"NODE_MB={node_mb}; EMR gives {settings.instance_type} {sz.yarn_mb} MB")
    room = machine_mb() - RESERVED_MB
    scaled = mb * nodes > room
    if scaled:
        notes.append(f"scaled down from {mb} MB: {nodes} node(s) share this machine's "
                     f"{room + RESERVED_MB} MB, {RESERVED_MB} MB kept outside YARN")
        mb = room // nodes // 32 * 32
    cpus = os.cpu_count() or 1
    if vcores > cpus:
        notes.append(f"{vcores} vcores on {cpus} CPUs: YARN schedules by memory (EMR's "
                     f"default resource calculator), the CPUs are shared")
    return mb, vcores, notes, scaled


def cluster_shape(settings: Settings, args: argparse.Namespace
                  ) -> tuple[Settings, int, int, int, list[str]]:
    """(settings for the rehearsal's nodes, nodes, node MB, vcores, notes). NODES defaults
    to the cluster's core + task nodes; on nodes scaled down to fit this machine the
    executors are sized for the smaller node, as :mod:`emr.sizing` would size such a type.

    Raises
    ------
    SettingsError
        NODES below 1, LOSE_NODE outside (0, 1) or with fewer than two nodes, or nodes
        too small here for the driver and an executor.
    """
    nodes = (args.nodes if args.nodes is not None
             else settings.core_count + settings.task_count)
    if nodes < 1:
        raise SettingsError(f"NODES={nodes}: give at least 1")
    if args.lose_node is not None:
        if not 0 < args.lose_node < 1:
            raise SettingsError(f"LOSE_NODE={args.lose_node}: give the fraction of the "
                                f"images after which a node is stopped, between 0 and 1")
        if nodes < 2:
            raise SettingsError(f"LOSE_NODE with NODES={nodes}: a node can only be lost "
                                f"where another one goes on; give NODES=2 or more")
    node_mb, vcores, notes, scaled = node_size(settings, args.node_mb, args.node_vcores, nodes)
    try:
        shaped = replace(settings, core_count=nodes, task_count=0,
                         yarn_mb=node_mb if scaled else None)
    except SettingsError as exc:
        raise SettingsError(f"NODES={nodes}: {node_mb} MB per node on this machine is too "
                            f"small ({exc}); give fewer NODES") from exc
    return shaped, nodes, node_mb, vcores, notes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """A moto server on 127.0.0.1, and the environment that points everything at it: this
    process's boto3 (os.environ, restored after), the bootstrap, spark-submit, YARN."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # an empty AWS config: no profile of this machine's is read (the Java SDK wants a file)
    empty = tempfile.NamedTemporaryFile(prefix="featurize-rehearsal-aws-", delete=False)
    empty.close()
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": hadoop.MOTO_ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": hadoop.MOTO_SECRET_KEY,
           "AWS_DEFAULT_REGION": hadoop.MOTO_REGION, "AWS_REGION": hadoop.MOTO_REGION,
           # no profile, session or config file of this machine's can be used by mistake
           "AWS_CONFIG_FILE": empty.name, "AWS_SHARED_CREDENTIALS_FILE": empty.name}
    dropped = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
               "AWS_DEFAULT_PROFILE")
    saved = dict(os.environ)
    for name in dropped:
        os.environ.pop(name, None)
    os.environ.update(env)
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
        os.environ.pop(name)
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
        os.unlink(empty.name)


def _upload_folder(s3, folder: Path, uri: str) -> int:
    loc = S3Uri.parse(uri)
    prefix = loc.key.rstrip("/") + "/"
    n = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), loc.bucket, prefix + path.relative_to(folder).as_posix())
        n += 1
    return n


def _prepare_out(out_dir: Path) -> None:
    """OUT must be new, empty, or a previous copy of a run directory (replaced)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "manifest.json").exists():
            raise SettingsError(f"OUT={out_dir} holds files but no run directory: give a new "
                                f"or empty folder")
        shutil.rmtree(out_dir)


def _local_folders(settings: Settings, job_args: requests.JobArgs, input_from: str | None,
                   predict_from: str | None) -> tuple[requests.JobArgs, list[tuple[Path, str]]]:
    """Local INPUT / PREDICT_INPUT folders become ``s3://BUCKET/PREFIX/input/<name>`` and
    ``…/predict-input/<name>``; an
    ``s3://`` one is filled from INPUT_FROM / PREDICT_FROM. Returns the job arguments the
    steps get and the (folder, s3 URI) uploads. moto's S3 starts empty: an ``s3://`` input
    without a folder to fill it is refused."""
    uploads = []
    changes = {}
    for field, variable, source, folder_name in (
            ("input", "INPUT", input_from, "input"),
            ("predict_input", "PREDICT_INPUT", predict_from, "predict-input")):
        value = getattr(job_args, field)
        if not value:
            continue
        if value.startswith(("s3://", "s3a://")):
            if not source:
                raise SettingsError(
                    f"{variable}={value}: the rehearsal's S3 is a moto server and starts "
                    f"empty; give {variable}_FROM=<local folder> to upload there, or a local "
                    f"folder as {variable}")
            folder, uri = Path(source), value
        else:
            folder = Path(value)
            uri = settings.uri(folder_name, folder.resolve().name or "images")
            changes[field] = uri
        if not folder.is_dir():
            raise SettingsError(f"{variable}: {folder} is not a folder of images")
        uploads.append((folder, uri))
    return replace(job_args, **changes), uploads


def rehearse(args: argparse.Namespace) -> int:
    """The whole rehearsal; 0 only when every step succeeded.

    Long because it is the rehearsal's order, read top to bottom: settings and uploads
    validated, moto, upload, bootstrap, YARN, the steps, the copy to OUT; each stage is
    a call into this package or into ``emr``.
    """
    given_bucket = args.bucket
    args.bucket = args.bucket or DEFAULT_BUCKET
    settings = settings_from(args)
    # NODES core nodes here: the cluster's configurations (executor count) for them
    settings, nodes, node_mb, vcores, notes = cluster_shape(settings, args)
    job_args = job_args_from(args)
    wanted = jobs(args)
    if args.lose_node is not None and "featurize" not in wanted:
        raise SettingsError("LOSE_NODE stops a node during the featurize step: add featurize "
                            "to STEPS")
    out_dir = Path(args.out) if args.out else None
    job_args, uploads = _local_folders(settings, job_args, args.input_from, args.predict_from)
    built = requests.steps(settings, wanted, job_args)  # validated before anything starts
    if out_dir:
        _prepare_out(out_dir)
    dist = Path(args.dist)
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    s3a_jars = jars.paths("s3a")  # and refuses to start when any jar is missing
    out(f"rehearsal in {workdir}: S3 is a moto server, bucket {settings.bucket}"
        + ("" if given_bucket else " (BUCKET not given: a name for the rehearsal)"))
    with moto_s3() as env:
        import boto3

        s3 = boto3.client("s3")
        buckets = {settings.bucket} | {S3Uri.parse(u).bucket for u in
                                       (job_args.input, job_args.output, job_args.predict_input,
                                        job_args.predict_output) if u}
        for b in sorted(buckets):
            s3.create_bucket(Bucket=b)
        upload.upload(argparse.Namespace(**{**vars(args), "bucket": settings.bucket,
                                              "weights": job_args.weights}))
        for folder, uri in uploads:
            n = _upload_folder(s3, folder, uri)
            out(f"uploaded {n} files from {folder} -> {uri}")
        python = node.bootstrap(
            dist, f"{settings.dist_uri}/bootstrap/{package.BOOTSTRAP_SCRIPT}",
            [f"{settings.dist_uri}/bootstrap", f"{settings.dist_uri}/{package.WHEELS}"],
            env, log=out)
        out(f"YARN: {nodes} node(s) of {node_mb} MB, {vcores} vcores, physical-memory check "
            f"on ({settings.instance_type}"
            + (f"; {'; '.join(notes)})" if notes else "'s EMR values)"))
        out(settings.sizing.summary())
        yarn_env = {**env, "HADOOP_CONF_DIR": str(workdir / "conf"),
                    "YARN_CONF_DIR": str(workdir / "conf"), "SPARK_CONF_DIR": str(workdir / "conf"),
                    "SPARK_HOME": str(spark_home())}
        with LocalYarn(workdir, node_mb, vcores, env=yarn_env, nodes=nodes) as yarn:
            hadoop.write_client_conf(yarn.conf_dir, env["AWS_ENDPOINT_URL"],
                                     requests.configurations(settings), str(python), s3a_jars,
                                     {**hadoop.container_env(env),
                                      **node_caches(workdir, args.lose_node)})
            results = []
            for step in built:
                if results and results[-1].final != "SUCCEEDED":
                    results.append(StepResult(step.job, None, 0, "CANCELLED", 0.0))
                    out(results[-1].line())
                    continue
                results.append(run_step(yarn, step, yarn_env, workdir, args.drop_conf,
                                        args.tail, args.lose_node))
        if out_dir:
            for uri, dest in _copies(built, out_dir):
                n = aws_shim.cp(uri, str(dest), recursive=True)
                out(f"OUT: {n} files of {uri} -> {dest}")
    return 0 if all(r.final == "SUCCEEDED" for r in results) else 1


def node_caches(workdir: Path, lose_node: float | None) -> dict[str, str]:
    """Spark confs giving the containers an empty project cache, as on a new cluster (the
    driver converts the model to OpenVINO IR there: its memory peak is part of the step's);
    with LOSE_NODE, a progress line every second for :class:`NodeLoss` to follow."""
    cache = str(workdir / "node-cache")
    confs = {"spark.yarn.appMasterEnv.FEATURIZE_CACHE": cache,
             "spark.executorEnv.FEATURIZE_CACHE": cache}
    if lose_node is not None:
        confs["spark.yarn.appMasterEnv.FEATURIZE_PROGRESS_SECONDS"] = "1"
    return confs


def _flag(step: requests.Step, flag: str) -> str:
    argv = step.request["HadoopJarStep"]["Args"]
    return argv[argv.index(flag) + 1]


def _copies(built: Sequence[requests.Step], out_dir: Path) -> list[tuple[str, Path]]:
    """(s3 URI, local folder): the run directory to OUT, predictions to OUT-predictions."""
    first = built[0]
    run_uri = _flag(first, "--output" if first.job == "featurize" else "--run")
    copies = [(run_uri, out_dir)]
    copies += [(_flag(s, "--output"), out_dir.with_name(out_dir.name + "-predictions"))
               for s in built if s.job == "predict"]
    return copies
