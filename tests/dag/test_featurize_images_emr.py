"""dags/featurize_images_emr.py, in the Airflow venv of ``make dag-test``.

(a) the DAG imports, from dags/ and from the zip ``make dag-package`` writes, with the
task graph of its docstring; (b) the cluster request and the steps its operators send are
exactly what ``python -m emr up/submit --dry-run`` print for the same settings (and that
comparison notices a field changed on one side only); (c) ``dag.test()`` against moto:
cluster created, steps added, steps COMPLETED (set in moto, whose steps never end by
themselves), cluster terminated; a FAILED step still terminates the cluster and fails the
run; a missing upload fails the run before any cluster exists.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from emr import schedule
from tests.dag.conftest import REPO

REGION = "us-east-1"
BUCKET = "dag-bucket"
DS = "2026-01-02"
LOGICAL_DATE = datetime(2026, 1, 2, tzinfo=timezone.utc)
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GRAPH = {  # task -> its upstream tasks (the plan's outputs feed every AWS task)
    "plan": [],
    "prepare": ["plan"],
    "create_cluster": ["plan", "prepare"],
    "add_steps": ["create_cluster", "plan"],
    "watch_step": ["add_steps", "create_cluster", "plan"],
    "terminate_cluster": ["create_cluster", "plan", "watch_step"],
    "succeeded": ["terminate_cluster", "watch_step"],
}

# Each case: the DAG params, and the same settings written by hand as the CLI's flags
# (cluster flags for `up`; `submit` takes those and the step flags).
MINIMAL = ({"bucket": BUCKET, "input": "s3://dag-bucket/images/"},
           ["--bucket", BUCKET], ["--input", "s3://dag-bucket/images/"])
EVERY_PARAM = (
    {"aws_conn_id": "aws_team", "region": REGION,
     "bucket": BUCKET, "prefix": "team/featurize", "release_label": "emr-7.12.0",
     "instance_type": "m5.2xlarge", "master_instance_type": "m5.xlarge", "core_count": 3,
     "task_count": 2, "spot": True, "task_market": "ON_DEMAND", "subnet_id": "subnet-0abc", "key_name": "ops-key",
     "service_role": "TeamEmrService", "instance_profile": "FeaturizeNodes",
     "idle_timeout": 1800, "root_volume_gb": 50, "executor_cores": 2, "executor_memory": "1g",
     "engine": "tensorflow", "sse": "aws:kms", "sse_kms_key_id": KMS_KEY,
     "name": "nightly featurize", "steps": "featurize train predict index",
     "input": "s3://dag-bucket/images/{{ ds }}/", "output": "s3://dag-bucket/runs/{{ds_nodash}}",
     "input_list": "s3://dag-bucket/inventory/images/daily/{{ ds }}T00-00Z/manifest.json",
     "weights": "s3://dag-bucket/weights/team.weights.h5", "job_args": "--extensions jpg,png",
     "train_args": "--reg-param 0.01", "index_args": "--duplicates 0.9",
     "predict_input": "s3://dag-bucket/new/{{ ds }}/",
     "predict_output": "s3://dag-bucket/predictions/{{ ds }}"},
    ["--bucket", BUCKET, "--prefix", "team/featurize", "--release-label", "emr-7.12.0",
     "--instance-type", "m5.2xlarge", "--master-instance-type", "m5.xlarge",
     "--core-count", "3", "--task-count", "2", "--spot", "--task-market", "ON_DEMAND", "--subnet-id", "subnet-0abc",
     "--key-name", "ops-key", "--service-role", "TeamEmrService",
     "--instance-profile", "FeaturizeNodes", "--idle-timeout", "1800", "--root-volume-gb", "50",
     "--executor-cores", "2", "--executor-memory", "1g", "--engine", "tensorflow",
     "--sse", "aws:kms",
     "--sse-kms-key-id", KMS_KEY, "--name", "nightly featurize"],
    ["--steps", "featurize train predict index", "--input", "s3://dag-bucket/images/2026-01-02/",
     "--input-list", "s3://dag-bucket/inventory/images/daily/2026-01-02T00-00Z/manifest.json",
     "--output", "s3://dag-bucket/runs/20260102",
     "--weights", "s3://dag-bucket/weights/team.weights.h5",
     "--job-args=--extensions jpg,png", "--train-args=--reg-param 0.01",
     "--index-args=--duplicates 0.9",
     "--predict-input", "s3://dag-bucket/new/2026-01-02/",
     "--predict-output", "s3://dag-bucket/predictions/2026-01-02"])


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert bag.import_errors == {}
    assert list(bag.dags) == ["featurize_images_emr"]
    return bag.dags["featurize_images_emr"]


def planned(dag, params: dict[str, Any], dag_run: Any = None, ds: str | None = DS
            ) -> dict[str, Any]:
    """What the DAG's ``plan`` task hands its operators (through XCom) for ``params``."""
    return dag.get_task("plan").python_callable(params, dag_run, ds)


class Recorder:
    """The RunJobFlow and AddJobFlowSteps calls the operators make (in this process,
    under ``dag.test()``), as botocore receives them."""

    def __init__(self, monkeypatch):
        from botocore.client import BaseClient

        self.calls: dict[str, list[dict[str, Any]]] = {}
        real = BaseClient._make_api_call

        def record(client, operation, api_params):
            self.calls.setdefault(operation, []).append(json.loads(json.dumps(api_params)))
            return real(client, operation, api_params)

        monkeypatch.setattr(BaseClient, "_make_api_call", record)


def dry_run(command: str, *flags: str) -> Any:
    proc = subprocess.run([sys.executable, "-m", "emr", command, "--dry-run", *flags],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The paths at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "."]


# --- (a) the DAG ---------------------------------------------------------------------------

def test_task_graph_operators_and_params(dag):
    from airflow.providers.amazon.aws.operators.emr import (
        EmrAddStepsOperator, EmrCreateJobFlowOperator, EmrTerminateJobFlowOperator)
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == GRAPH
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["succeeded"]
    rules = {t.task_id: str(t.trigger_rule.value) for t in dag.tasks}
    assert rules == {**{t: "all_success" for t in GRAPH}, "terminate_cluster": "all_done"}
    assert isinstance(dag.get_task("create_cluster"), EmrCreateJobFlowOperator)
    assert dag.get_task("create_cluster").emr_conn_id is None  # nothing merged in
    assert isinstance(dag.get_task("add_steps"), EmrAddStepsOperator)
    assert isinstance(dag.get_task("terminate_cluster"), EmrTerminateJobFlowOperator)
    watch = dag.get_task("watch_step")  # one sensor per added step
    assert watch.is_mapped and issubclass(watch.operator_class, EmrStepSensor)
    assert watch.partial_kwargs["deferrable"] is True
    assert watch.partial_kwargs["poke_interval"] == 1  # FEATURIZE_IMAGES_POLL_SECONDS
    assert watch.partial_kwargs["max_attempts"] == 120  # ..._STEP_TIMEOUT_SECONDS / poll
    # pinned, whatever the environment's [operators] default_deferrable or OpenLineage
    # settings say; no retry can start a second cluster
    create, add = dag.get_task("create_cluster"), dag.get_task("add_steps")
    assert (create.deferrable, create.wait_for_completion, create.retries) == (False, False, 0)
    assert (add.deferrable, add.wait_for_completion, add.retries) == (False, False, 0)
    assert add.openlineage_inject_parent_job_info is False
    assert dag.get_task("terminate_cluster").deferrable is False
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual unless scheduled
    assert dag.max_active_runs == 1
    # nothing has a default (a required param would stop Airflow from scheduling the DAG)
    assert {k: dag.params.get_param(k).value for k in dag.params} == {
        k: None for k in ["aws_conn_id", "region", *schedule.PARAMS]}


def test_a_scheduled_dag_parses(airflow_db):
    """With FEATURIZE_IMAGES_SCHEDULE=@daily the file still parses (Airflow refuses to
    schedule a DAG with a required param) and runs daily."""
    script = ("from airflow.dag_processing.dagbag import DagBag\n"
              f"b = DagBag({str(REPO / 'dags')!r})\n"
              "assert b.import_errors == {}, b.import_errors\n"
              "print(type(b.dags['featurize_images_emr'].timetable).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "FEATURIZE_IMAGES_SCHEDULE": "@daily"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "CronTriggerTimetable"


def test_the_packaged_dag_imports_from_its_zip_alone(airflow_db, tmp_path):
    """``make dag-package``'s zip is the whole deployment: a DAGs folder holding only it
    parses, in a process where neither emr nor featurize is importable otherwise."""
    proc = subprocess.run([sys.executable, "-m", "emr", "--dist", str(tmp_path / "dist"),
                           "dag-package"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    zipped = tmp_path / "dist" / "airflow" / "featurize_images_emr.zip"
    names = zipfile.ZipFile(zipped).namelist()
    assert "featurize_images_emr.py" in names
    assert {"emr/schedule.py", "emr/requests.py", "featurize/encryption.py"} <= set(names)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / zipped.name).write_bytes(zipped.read_bytes())
    script = ("import importlib.util as u, json\n"
              "assert u.find_spec('emr') is None and u.find_spec('featurize') is None\n"
              "from airflow.dag_processing.dagbag import DagBag\n"
              f"b = DagBag({str(folder)!r})\n"
              "print(json.dumps({'errors': b.import_errors, 'dags': sorted(b.dags),\n"
              "                  'tasks': len(b.dags['featurize_images_emr'].tasks)}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "errors": {}, "dags": ["featurize_images_emr"], "tasks": len(GRAPH)}


# --- (b) one source of truth ---------------------------------------------------------------

@pytest.mark.parametrize("case", [MINIMAL, EVERY_PARAM], ids=["minimal", "every-param"])
def test_requests_equal_the_cli_dry_run(dag, case):
    params, cluster_flags, step_flags = case
    got = planned(dag, params)
    assert got["job_flow"] == dry_run("up", *cluster_flags)
    assert got["steps"] == dry_run("submit", *cluster_flags, *step_flags)["Steps"]


def test_every_param_reaches_the_requests(dag):
    """The every-param case sets each param to a value that is not its default: dropped
    in turn, each one changes what the plan hands the operators (or, for a param another
    one needs, fails the plan), so no param is ignored or mapped to a default."""
    from featurize.errors import SettingsError

    params = EVERY_PARAM[0]
    assert set(params) == {"aws_conn_id", "region", *schedule.PARAMS}
    full = planned(dag, params)
    unchanged, refused = [], {}
    for name in params:
        try:
            without = planned(dag, {k: v for k, v in params.items() if k != name})
        except SettingsError as exc:
            refused[name] = str(exc)
            continue
        if without == full:
            unchanged.append(name)
    assert unchanged == [], f"dropping these params changes nothing: {unchanged}"
    # the rest are needed: required, or needed by another param set here
    needed = {"bucket": "BUCKET is required", "input": "INPUT is required",
              "predict_input": "PREDICT_INPUT is required",  # the predict step
              "sse": "SSE_KMS_KEY_ID is only used with SSE=aws:kms",
              "sse_kms_key_id": "SSE=aws:kms on a cluster needs SSE_KMS_KEY_ID",
              "task_count": "TASK_MARKET=ON_DEMAND without task nodes"}
    assert set(refused) == set(needed), refused
    for name, message in needed.items():
        assert message in refused[name], (name, refused[name])


def test_connection_region_and_undated_runs(dag):
    got = planned(dag, EVERY_PARAM[0])
    assert (got["aws_conn_id"], got["region"]) == ("aws_team", REGION)
    got = planned(dag, MINIMAL[0])
    assert (got["aws_conn_id"], got["region"]) == ("aws_default", None)
    # a manual run without a logical date is dated by when it was triggered
    undated = planned(dag, {"bucket": BUCKET, "input": "s3://b/in/{{ yesterday_ds }}/"},
                      dag_run=type("Run", (), {"run_after": LOGICAL_DATE})(), ds=None)
    assert undated["first_input"] == "s3://b/in/2026-01-01/"


def test_the_comparison_notices_a_field_changed_on_one_side(dag, monkeypatch):
    """The equality above is not vacuous: one field changed in the DAG's requests only
    (here by patching the builders in this process, not in the CLI's) is found, by path."""
    import emr.requests

    params, cluster_flags, step_flags = MINIMAL
    cli_up = dry_run("up", *cluster_flags)
    cli_steps = dry_run("submit", *cluster_flags, *step_flags)["Steps"]
    run_job_flow, step = emr.requests.run_job_flow, emr.requests.step
    monkeypatch.setattr(emr.requests, "run_job_flow", lambda *a, **k: {
        **run_job_flow(*a, **k), "AutoTerminationPolicy": {"IdleTimeout": 60}})
    monkeypatch.setattr(emr.requests, "step", lambda *a, **k: emr.requests.Step(
        **{**step(*a, **k).__dict__,
           "request": {**step(*a, **k).request, "ActionOnFailure": "CONTINUE"}}))
    got = planned(dag, params)
    assert differences(got["job_flow"], cli_up) == [".AutoTerminationPolicy.IdleTimeout"]
    assert differences(got["steps"], cli_steps) == ["[0].ActionOnFailure", "[1].ActionOnFailure"]


def test_bad_params_fail_the_plan_with_the_cli_message(dag):
    from featurize.errors import SettingsError

    with pytest.raises(SettingsError, match="BUCKET is required"):
        planned(dag, {k: None for k in dag.params})
    with pytest.raises(SettingsError, match="INPUT=.*cannot read a path on this machine"):
        planned(dag, {"bucket": BUCKET, "input": "/home/me/images"})
    with pytest.raises(SettingsError, match="STEPS='featurize classify'"):
        planned(dag, {"bucket": BUCKET, "input": "s3://b/i/", "steps": "featurize classify"})
    with pytest.raises(SettingsError, match="unknown DAG param.*instance_count"):
        planned(dag, {"bucket": BUCKET, "input": "s3://b/i/", "instance_count": 3})


# --- (c) whole runs against moto -----------------------------------------------------------

def emr_backend():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return emr_backends[DEFAULT_ACCOUNT_ID][REGION]


class StepDriver:
    """Plays EMR's part: a step moves to its outcome a few seconds after it was added,
    so each sensor pokes, defers and is woken by its trigger. Step ``i`` of every new
    cluster gets ``outcomes[i]``."""

    def __init__(self, outcomes: list[str], after: float = 2.5):
        self.outcomes, self.after = outcomes, after
        self.known = set(emr_backend().clusters)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

        self.error: BaseException | None = None

    def new_clusters(self) -> list[Any]:
        # copies: moto's server thread adds clusters and steps while this one reads
        return [c for cid, c in list(emr_backend().clusters.items()) if cid not in self.known]

    def _run(self) -> None:
        seen: dict[str, float] = {}
        try:
            while not self._stop.is_set():
                for cluster in self.new_clusters():
                    for i, st in enumerate(list(cluster.steps)):
                        if st.state in ("PENDING", "RUNNING"):
                            since = seen.setdefault(st.id, time.monotonic())
                            if time.monotonic() - since >= self.after:
                                st.state = self.outcomes[min(i, len(self.outcomes) - 1)]
                time.sleep(0.2)
        except BaseException as exc:  # re-raised in the test by __exit__
            self.error = exc

    def __enter__(self) -> StepDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


def upload_for(dag, s3, params: dict[str, Any]) -> dict[str, Any]:
    """What `make upload` puts in S3 for these params (stand-ins), and one image."""
    plan = planned(dag, params)
    for uri in plan["artifacts"] + [plan["first_input"] + "cat/1.jpg"]:
        bucket, key = uri[len("s3://"):].split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=b"stand-in")
    return plan


def run(dag, params: dict[str, Any], outcomes: list[str]) -> tuple[Any, dict[str, str], list]:
    # every param given: dag.test() keeps the DAG object, and a param one run set would
    # otherwise stay for the next (a scheduler parses the file afresh for each task)
    conf = {**{k: None for k in dag.params}, **params}
    with StepDriver(outcomes) as driver:
        dag_run = dag.test(run_conf=conf, logical_date=LOGICAL_DATE)
        clusters = driver.new_clusters()
    states = {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): ti.state
              for ti in dag_run.get_task_instances()}
    return dag_run, states, clusters


def test_a_run_creates_runs_and_terminates_the_cluster(dag, s3, monkeypatch):
    params = {"bucket": BUCKET, "prefix": "dag-ok", "input": "s3://dag-bucket/in/{{ ds }}/",
              "steps": "featurize train predict", "predict_input": "s3://dag-bucket/in/new/",
              "sse": "AES256"}
    cluster_flags = ["--bucket", BUCKET, "--prefix", "dag-ok", "--sse", "AES256"]
    step_flags = ["--steps", "featurize train predict", "--input", f"s3://dag-bucket/in/{DS}/",
                  "--predict-input", "s3://dag-bucket/in/new/"]
    plan = upload_for(dag, s3, params)
    recorder = Recorder(monkeypatch)
    dag_run, states, clusters = run(dag, params, ["COMPLETED"])

    assert dag_run.state == "success"
    # what the operators sent is what the CLI's dry runs print for the same settings
    assert recorder.calls["RunJobFlow"] == [dry_run("up", *cluster_flags)]
    assert recorder.calls["AddJobFlowSteps"] == [{
        "JobFlowId": clusters[0].id,
        "Steps": dry_run("submit", *cluster_flags, *step_flags)["Steps"]}]
    assert recorder.calls["TerminateJobFlows"] == [{"JobFlowIds": [clusters[0].id]}]
    assert states == {**{t: "success" for t in GRAPH if t != "watch_step"},
                      "watch_step[0]": "success", "watch_step[1]": "success",
                      "watch_step[2]": "success"}
    assert len(clusters) == 1 and clusters[0].state == "TERMINATED"
    emr = boto3.client("emr", region_name=REGION)
    cluster = emr.describe_cluster(ClusterId=clusters[0].id)["Cluster"]
    request = plan["job_flow"]
    assert cluster["Name"] == request["Name"] and cluster["ReleaseLabel"] == "emr-7.13.0"
    assert cluster["LogUri"] == request["LogUri"]
    assert cluster["ServiceRole"] == request["ServiceRole"]
    assert cluster["SecurityConfiguration"] == plan["security_configuration"][0]
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]} == {
        t["Key"]: t["Value"] for t in request["Tags"]}
    bootstrap = emr.list_bootstrap_actions(ClusterId=clusters[0].id)["BootstrapActions"]
    assert [(b["ScriptPath"], b["Args"]) for b in bootstrap] == [
        (b["ScriptBootstrapAction"]["Path"], b["ScriptBootstrapAction"]["Args"])
        for b in request["BootstrapActions"]]
    steps = emr.list_steps(ClusterId=clusters[0].id)["Steps"][::-1]  # newest first
    assert [(s["Name"], s["ActionOnFailure"], s["Config"]["Args"], s["Status"]["State"])
            for s in steps] == [
        (s["Name"], s["ActionOnFailure"], s["HadoopJarStep"]["Args"], "COMPLETED")
        for s in plan["steps"]]
    name, document = plan["security_configuration"]  # created by `prepare`
    assert json.loads(emr.describe_security_configuration(Name=name)[
        "SecurityConfiguration"]) == document


def test_a_failed_step_still_terminates_the_cluster_and_fails_the_run(dag, s3):
    params = {"bucket": BUCKET, "prefix": "dag-fail", "input": "s3://dag-bucket/in/{{ ds }}/"}
    upload_for(dag, s3, params)
    # what EMR does under CANCEL_AND_WAIT: the failed step's successors are cancelled
    dag_run, states, clusters = run(dag, params, ["FAILED", "CANCELLED"])

    assert dag_run.state == "failed"
    assert states == {"plan": "success", "prepare": "success", "create_cluster": "success",
                      "add_steps": "success", "watch_step[0]": "failed",
                      "watch_step[1]": "failed", "terminate_cluster": "success",
                      "succeeded": "upstream_failed"}
    assert len(clusters) == 1 and clusters[0].state == "TERMINATED"
    assert [s.state for s in clusters[0].steps] == ["FAILED", "CANCELLED"]


def test_a_missing_upload_fails_the_run_before_any_cluster(dag, s3):
    params = {"bucket": BUCKET, "prefix": "never-uploaded", "input": "s3://dag-bucket/in/x/"}
    dag_run, states, clusters = run(dag, params, ["COMPLETED"])

    assert dag_run.state == "failed"
    assert clusters == []
    assert states["prepare"] == "failed"
    assert states["create_cluster"] == "upstream_failed"
    assert states["terminate_cluster"] == "skipped"  # nothing to terminate
    assert states["succeeded"] == "upstream_failed"


def test_a_scheduled_run_takes_its_params_from_the_variable(dag, s3, monkeypatch):
    """What a scheduled run does: no params of its own, everything from the Variable
    (here through Airflow's environment-variable backend), the input dated by the run."""
    params = {"bucket": BUCKET, "prefix": "dag-daily", "aws_conn_id": "aws_default",
              "input": "s3://dag-bucket/daily/{{ ds }}/"}
    plan = upload_for(dag, s3, params)
    assert plan["first_input"] == f"s3://dag-bucket/daily/{DS}/"
    monkeypatch.setenv("AIRFLOW_VAR_FEATURIZE_IMAGES_EMR_PARAMS", json.dumps(params))
    dag_run, states, clusters = run(dag, {}, ["COMPLETED"])

    assert dag_run.state == "success", states
    assert len(clusters) == 1 and clusters[0].state == "TERMINATED"
    emr = boto3.client("emr", region_name=REGION)
    steps = emr.list_steps(ClusterId=clusters[0].id)["Steps"][::-1]
    assert [s["Config"]["Args"] for s in steps] == [
        s["HadoopJarStep"]["Args"] for s in plan["steps"]]
    assert f"s3://dag-bucket/daily/{DS}/" in steps[0]["Config"]["Args"]


def test_a_failure_after_the_cluster_exists_still_terminates_it(dag, s3, monkeypatch):
    """create_cluster fails after run_job_flow (here its log-link describe_cluster is
    denied): no cluster id reaches XCom, so create_cluster itself terminates it."""
    import airflow.providers.amazon.aws.operators.emr as operators

    def denied(**_: Any) -> None:
        raise RuntimeError("AccessDenied: elasticmapreduce:DescribeCluster")

    monkeypatch.setattr(operators, "get_log_uri", denied)
    params = {"bucket": BUCKET, "prefix": "dag-leak", "input": "s3://dag-bucket/in/{{ ds }}/"}
    upload_for(dag, s3, params)
    dag_run, states, clusters = run(dag, params, ["COMPLETED"])

    assert dag_run.state == "failed"
    assert states["create_cluster"] == "failed" and states["terminate_cluster"] == "skipped"
    assert len(clusters) == 1 and clusters[0].state == "TERMINATED"
