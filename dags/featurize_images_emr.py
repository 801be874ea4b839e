"""featurize-images on a transient EMR cluster, from Airflow 3 (docs/emr.md, "Scheduling
with Airflow").

    plan -> prepare -> create_cluster -> add_steps -> watch_step[i] -> terminate_cluster
                                                           \\________________\\-> succeeded

- ``plan`` turns the params into the cluster request and the steps with the same
  builders ``python -m emr up`` and ``submit`` use (``emr.schedule``): one source of truth.
  The params are the run's own over the JSON object in the Airflow Variable
  ``featurize_images_emr_params`` (what scheduled runs use).
- ``prepare`` checks that ``make upload`` put every artifact the request names in S3 and
  that the input has objects, and creates the security configuration ``sse`` asks for:
  the run fails there, before a cluster is paid for.
- ``watch_step`` is one deferrable ``EmrStepSensor`` per added step.
- ``terminate_cluster`` runs whatever happened before it (trigger rule ``all_done``);
  it skips itself when no cluster was created.
- ``succeeded`` is the one leaf: it fails (upstream_failed) when a step or the
  termination failed, so the DAG run fails too, although the cluster was terminated.

Deploy: this file and the ``emr`` and ``featurize`` packages (``make dag-package`` zips
the three) in the DAGs folder; the Airflow environment needs
``apache-airflow-providers-amazon[aiobotocore]`` and numpy, pandas and pillow
(``dags/requirements.txt``). Nothing account-specific has a default. AWS access is the
connection the ``aws_conn_id`` param names (default ``aws_default``). Environment, read
when the file is parsed: ``FEATURIZE_IMAGES_SCHEDULE`` (a cron or preset such as
``@daily``; unset: manual runs only), ``FEATURIZE_IMAGES_POLL_SECONDS`` (how often a
step is polled, default 60) and ``FEATURIZE_IMAGES_STEP_TIMEOUT_SECONDS`` (how long a
step may run, default 24 hours).
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, Variable, task
from airflow.sdk.exceptions import AirflowSkipException

from emr import aws, preflight, schedule

DAG_ID = "featurize_images_emr"
SCHEDULE = os.environ.get("FEATURIZE_IMAGES_SCHEDULE") or None
POLL_SECONDS = int(os.environ.get("FEATURIZE_IMAGES_POLL_SECONDS", "60"))
#: A step may run this long before its sensor gives up (the deferral's timeout).
STEP_TIMEOUT_SECONDS = int(os.environ.get("FEATURIZE_IMAGES_STEP_TIMEOUT_SECONDS", 24 * 3600))
#: Airflow Variable: a JSON object of params; the run's non-null params override it.
VARIABLE = "featurize_images_emr_params"
DEFAULT_CONN_ID = "aws_default"


class CreateCluster(EmrCreateJobFlowOperator):
    """``EmrCreateJobFlowOperator`` that never leaves a cluster behind: after
    ``run_job_flow`` the provider still calls ``describe_cluster`` (for its links), and
    when anything fails there, the task fails without pushing the cluster id, so
    ``terminate_cluster`` could not find it. Here that cluster is terminated first."""

    def execute(self, context: Any) -> str | None:
        try:
            return super().execute(context)
        except Exception:
            created = getattr(self, "_job_flow_id", None)
            if created:
                self.log.error("terminating %s: the task failed after creating it", created)
                self.hook.conn.terminate_job_flows(JobFlowIds=[created])
            raise


class TerminateCluster(EmrTerminateJobFlowOperator):
    """Terminates the run's cluster; skipped when none was created (an earlier task
    failed), so the run's failure shows in that task alone."""

    def execute(self, context: Any) -> None:
        if not self.job_flow_id:
            raise AirflowSkipException("no cluster was created: nothing to terminate")
        super().execute(context)


def _params() -> dict[str, Param]:
    """Every param is null by default. A required param would stop Airflow from
    scheduling the DAG; ``plan`` refuses a run without a bucket with the CLI's message."""
    params = {"aws_conn_id": Param(None, type=["null", "string"],
                                   description=f"Airflow connection for AWS (default "
                                               f"{DEFAULT_CONN_ID}): credentials, and the "
                                               f"region unless region is given"),
              "region": Param(None, type=["null", "string"],
                              description="AWS region (default: the connection's)")}
    for name, p in schedule.PARAMS.items():
        params[name] = Param(None, type=["null", p.type], description=p.help)
    return params


with DAG(
    dag_id=DAG_ID,
    description="featurize -> train (-> predict) on a transient EMR cluster",
    doc_md=__doc__,
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one transient cluster at a time
    params=_params(),
    tags=["featurize-images", "emr"],
) as dag:

    @task(multiple_outputs=True)
    def plan(params: dict[str, Any], dag_run: Any = None, ds: str | None = None
             ) -> dict[str, Any]:
        """The cluster request and the steps, as `python -m emr up/submit` build them.
        A manual run without a logical date is dated by when it was triggered."""
        defaults = Variable.get(VARIABLE, default=None, deserialize_json=True) or {}
        given = {**defaults, **{k: v for k, v in params.items() if v is not None}}
        conn_id = given.pop("aws_conn_id", None) or DEFAULT_CONN_ID
        day = ds or dag_run.run_after.date().isoformat()
        return {**schedule.plan(given, day).xcom(), "aws_conn_id": conn_id}

    @task
    def prepare(artifacts: list[str], first_input: str | None,
                security_configuration: list[Any] | None, aws_conn_id: str,
                region: str | None) -> None:
        """What the request names is in S3; the security configuration exists."""

        def client(service: str) -> Any:
            return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service,
                               region_name=region).conn

        c = aws.Clients(emr=client("emr"), s3=client("s3"), iam=None, ec2=None,
                        region=region or "")
        preflight.check_artifacts(c, artifacts)
        preflight.check_first_input(c, first_input)
        if security_configuration:
            name, document = security_configuration
            aws.ensure_security_configuration(c.emr, name, document)

    planned = plan()
    conn, region = planned["aws_conn_id"], planned["region"]
    prepared = prepare(planned["artifacts"], planned["first_input"],
                       planned["security_configuration"], conn, region)
    # Every behaviour is pinned here, not left to the environment's [operators]
    # default_deferrable or OpenLineage settings (which would make add_steps wait for the
    # steps itself, or add --conf to them), and no retry may start a second cluster.
    create_cluster = CreateCluster(
        task_id="create_cluster", job_flow_overrides=planned["job_flow"],
        emr_conn_id=None,  # the request is complete: nothing merged from a connection
        aws_conn_id=conn, region_name=region, wait_for_completion=False, deferrable=False,
        retries=0)
    add_steps = EmrAddStepsOperator(
        task_id="add_steps", job_flow_id=create_cluster.output, steps=planned["steps"],
        aws_conn_id=conn, region_name=region, wait_for_completion=False, deferrable=False,
        openlineage_inject_parent_job_info=False, retries=0)
    watch_step = EmrStepSensor.partial(
        task_id="watch_step", job_flow_id=create_cluster.output, aws_conn_id=conn,
        region_name=region, deferrable=True, poke_interval=POLL_SECONDS,
        max_attempts=STEP_TIMEOUT_SECONDS // POLL_SECONDS,
    ).expand(step_id=add_steps.output)
    terminate_cluster = TerminateCluster(
        task_id="terminate_cluster", job_flow_id=create_cluster.output, aws_conn_id=conn,
        region_name=region, trigger_rule="all_done", deferrable=False)
    succeeded = EmptyOperator(task_id="succeeded")

    prepared >> create_cluster
    watch_step >> terminate_cluster
    [watch_step, terminate_cluster] >> succeeded
