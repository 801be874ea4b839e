"""EMR tooling against moto's S3 + EMR server on 127.0.0.1, over real HTTP.

The code under test (``make`` targets -> ``python -m emr``, in subprocesses) reaches moto
only through ``AWS_ENDPOINT_URL``. What it created is read back from moto with boto3 and
compared with literal values written out here, never with the request builder's output.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

from featurize.model.weights import keras_cache_dir
from tests.conftest import REPO
from tests.helpers import image_bytes, pattern_image

BUCKET = "featurize-emr-test"
PREFIX = "team/fz"
REGION = "us-east-1"
INPUT = f"s3://{BUCKET}/input images"  # a space: arguments must stay one argv element
OUTPUT = f"s3://{BUCKET}/runs/r1"
DIST_URI = f"s3://{BUCKET}/{PREFIX}/dist"
WEIGHTS_KEY = f"{PREFIX}/weights/"
NODE_PY = "/opt/featurize/venv/bin/python"


def make(target: str, *assignments: str, env: dict | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), target,
                           *assignments], capture_output=True, text=True,
                          env={**os.environ, "AWS_MAX_ATTEMPTS": "2", **(env or {})},
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"make {target} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def emr_cli(*args: str, state_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emr", "--state-dir", str(state_dir), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "AWS_MAX_ATTEMPTS": "2"})


def backend():
    """moto's in-process EMR state (the server runs in this process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return emr_backends[DEFAULT_ACCOUNT_ID][REGION]


def create_default_roles(service_role: str = "EMR_DefaultRole",
                         policy: str = "AmazonEMRServicePolicy") -> None:
    """What `aws emr create-default-roles` creates, in moto's IAM (idempotent)."""
    iam = boto3.client("iam", region_name=REGION)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "elasticmapreduce.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    if service_role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]:
        iam.create_role(RoleName=service_role, AssumeRolePolicyDocument=trust)
        arn = iam.create_policy(PolicyName=policy, PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*",
                                                    "Resource": "*"}]}))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=service_role, PolicyArn=arn)
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
    if "EMR_EC2_DefaultRole" not in profiles:
        iam.create_role(RoleName="EMR_EC2_DefaultRole", AssumeRolePolicyDocument=trust)
        iam.create_instance_profile(InstanceProfileName="EMR_EC2_DefaultRole")
        iam.add_role_to_instance_profile(InstanceProfileName="EMR_EC2_DefaultRole",
                                         RoleName="EMR_EC2_DefaultRole")


def make_subnet(tags: dict[str, str] | None = None, region: str = REGION) -> str:
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    if tags:
        ec2.create_tags(Resources=[subnet], Tags=[{"Key": k, "Value": v}
                                                  for k, v in tags.items()])
    return subnet


@pytest.fixture(scope="module")
def aws(moto_endpoint, tmp_path_factory, weights_spec):
    s3 = boto3.client("s3", region_name=REGION)
    emr = boto3.client("emr", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    # 2 classes x 3 images under a prefix with a space in it
    for label in ("cat", "dog"):
        for i in range(3):
            seed = (7 if label == "cat" else 70) + i
            s3.put_object(Bucket=BUCKET, Key=f"input images/{label}/{label} {i}.jpg",
                          Body=image_bytes(pattern_image(seed)))
    create_default_roles()
    tmp = tmp_path_factory.mktemp("emr")
    common = (f"BUCKET={BUCKET}", f"PREFIX={PREFIX}", f"REGION={REGION}",
              f"DIST={tmp / 'dist'}", f"EMR_STATE={tmp / 'state'}", f"WEIGHTS={weights_spec}")
    return s3, emr, tmp, common


@pytest.fixture(scope="module")
def subnet(aws):
    return make_subnet()


@pytest.fixture(scope="module")
def cluster(aws, subnet):
    s3, emr, tmp, common = aws
    proc = make("cluster", *common, "CORE_COUNT=3", "SPOT=1", f"SUBNET_ID={subnet}",
                "KEY_NAME=my-key", "IDLE_TIMEOUT=1800")
    cluster_id = json.loads((tmp / "state" / "state.json").read_text())["cluster_id"]
    assert f"cluster {cluster_id} starting" in proc.stdout
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("pre-flight")] == [
        f"pre-flight: bucket {BUCKET} in {REGION}",
        "pre-flight: roles EMR_DefaultRole, EMR_EC2_DefaultRole",
        f"pre-flight: subnet {subnet}"]
    return cluster_id


def test_make_cluster_without_bucket_names_bucket(aws):
    _, emr, tmp, _ = aws
    before = len(emr.list_clusters()["Clusters"])
    proc = make("cluster", f"DIST={tmp / 'nodist'}", env={"BUCKET": ""}, check=False)
    assert proc.returncode == 2
    assert "BUCKET is required" in proc.stderr and "BUCKET=my-bucket" in proc.stderr
    assert not (tmp / "nodist").exists()  # failed before packaging or any AWS call
    assert len(emr.list_clusters()["Clusters"]) == before


@pytest.mark.parametrize("instance_type", ["m7g.xlarge", "c6gn.2xlarge", "r8g.large"])
def test_graviton_refused_before_any_call(aws, instance_type):
    _, emr, tmp, _ = aws
    before = len(emr.list_clusters()["Clusters"])
    proc = emr_cli("up", "--bucket", BUCKET, "--instance-type", instance_type,
                   state_dir=tmp / "graviton")
    assert proc.returncode == 2
    assert f"INSTANCE_TYPE={instance_type} is a Graviton (arm64) type" in proc.stderr
    assert len(emr.list_clusters()["Clusters"]) == before


def test_cluster_as_created(aws, cluster, subnet):
    s3, emr, tmp, _ = aws
    c = emr.describe_cluster(ClusterId=cluster)["Cluster"]
    assert c["Status"]["State"] == "WAITING"
    assert c["Name"] == "featurize-images"
    assert c["ReleaseLabel"] == "emr-7.13.0"
    assert [a["Name"] for a in c["Applications"]] == ["Spark"]
    assert c["LogUri"] == "s3://featurize-emr-test/team/fz/logs/"
    assert c["ServiceRole"] == "EMR_DefaultRole"
    assert c["AutoTerminate"] is False
    assert c["EbsRootVolumeSize"] == 30  # the venv and EMR's applications (emr.settings)
    assert c["Ec2InstanceAttributes"]["IamInstanceProfile"] == "EMR_EC2_DefaultRole"
    assert c["Ec2InstanceAttributes"]["Ec2SubnetId"] == subnet
    assert c["Ec2InstanceAttributes"]["Ec2KeyName"] == "my-key"
    assert {t["Key"]: t["Value"] for t in c["Tags"]} == {
        "project": "featurize-images", "for-use-with-amazon-emr-managed-policies": "true"}
    assert c["Configurations"] == [
        {"Classification": "spark-env", "Properties": {}, "Configurations": [
            {"Classification": "export", "Properties": {
                "PYSPARK_PYTHON": NODE_PY, "PYSPARK_DRIVER_PYTHON": NODE_PY}}]},
        {"Classification": "spark-defaults", "Properties": {
            "spark.pyspark.python": NODE_PY, "spark.pyspark.driver.python": NODE_PY,
            "spark.executor.instances": "3", "spark.executor.cores": "4",
            "spark.task.cpus": "1", "spark.executor.memory": "6144m",
            "spark.executor.memoryOverhead": "3072m", "spark.driver.memory": "1024m",
            "spark.driver.memoryOverhead": "2048m",
            "spark.python.worker.reuse": "true",
            "spark.dynamicAllocation.enabled": "false",
            # EMR's node decommissioning, at its documented defaults (emr.requests)
            "spark.blacklist.decommissioning.enabled": "true",
            "spark.blacklist.decommissioning.timeout": "1h",
            "spark.decommissioning.timeout.threshold": "20",
            "spark.resourceManager.cleanupExpiredHost": "true",
            "spark.stage.attempt.ignoreOnDecommissionFetchFailure": "true"}},
    ]
    groups = sorted((g["InstanceGroupType"], g["InstanceType"], g["RequestedInstanceCount"],
                     g["Market"]) for g in emr.list_instance_groups(ClusterId=cluster)
                    ["InstanceGroups"])
    assert groups == [("CORE", "m5.xlarge", 3, "SPOT"), ("MASTER", "m5.xlarge", 1, "ON_DEMAND")]
    actions = emr.list_bootstrap_actions(ClusterId=cluster)["BootstrapActions"]
    assert [(a["Name"], a["ScriptPath"], a["Args"]) for a in actions] == [
        ("install pinned Python dependencies",
         "s3://featurize-emr-test/team/fz/dist/bootstrap/install-python-deps.sh",
         ["s3://featurize-emr-test/team/fz/dist/bootstrap",
          "s3://featurize-emr-test/team/fz/dist/wheels"])]
    # the uploaded script and its pins are the repository's, byte for byte
    for name, local in [("install-python-deps.sh", "bootstrap/install-python-deps.sh"),
                        ("requirements.txt", "bootstrap/requirements.txt"),
                        ("constraints.txt", "constraints.txt")]:
        body = s3.get_object(Bucket=BUCKET, Key=f"team/fz/dist/bootstrap/{name}")["Body"].read()
        assert body == (REPO / local).read_bytes(), name


@pytest.fixture(scope="module")
def submitted(aws, cluster):
    """``make submit`` of featurize + train to the module's cluster, once: the steps as
    EMR lists them, oldest first (the replay test runs the first; it must not depend on
    another test having submitted, since it runs in make integration-test alone)."""
    _, emr, _, common = aws
    make("submit", *common, f"INPUT={INPUT}", f"OUTPUT={OUTPUT}",
         "JOB_ARGS=--pca-k 3 --batch-size 4", "TRAIN_ARGS=--test-fraction=0.25")
    return list(reversed(emr.list_steps(ClusterId=cluster)["Steps"]))


def test_submit_steps_and_artifacts(aws, cluster, submitted, weights_spec):
    s3, emr, tmp, common = aws
    steps = submitted
    weights = ("s3://featurize-emr-test/team/fz/weights/"
               + ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
                  if weights_spec == "imagenet" else Path(weights_spec).name))
    head = ["spark-submit", "--deploy-mode", "cluster", "--master", "yarn",
            "--conf", "spark.yarn.submit.waitAppCompletion=true",
            "--conf", "spark.yarn.maxAppAttempts=1",
            "--py-files", "s3://featurize-emr-test/team/fz/dist/featurize.zip"]
    assert [(s["Name"], s["ActionOnFailure"], s["Config"]["Jar"], s["Config"]["Args"])
            for s in steps] == [
        ("featurize-images featurize", "CANCEL_AND_WAIT", "command-runner.jar", head + [
            "s3://featurize-emr-test/team/fz/dist/jobs/featurize_images.py",
            "--input", "s3://featurize-emr-test/input images",
            "--output", "s3://featurize-emr-test/runs/r1",
            "--weights", weights, "--engine", "openvino", "--pca-k", "3", "--batch-size", "4"]),
        ("featurize-images train", "CANCEL_AND_WAIT", "command-runner.jar", head + [
            "s3://featurize-emr-test/team/fz/dist/jobs/train_classifier.py",
            "--run", "s3://featurize-emr-test/runs/r1", "--test-fraction=0.25"]),
    ]
    # every artifact a step names is in S3, with the bytes of the local build
    dist = tmp / "dist"
    for uri, local in [(head[-1], dist / "featurize.zip"),
                       (steps[0]["Config"]["Args"][11], dist / "jobs/featurize_images.py"),
                       (steps[1]["Config"]["Args"][11], dist / "jobs/train_classifier.py")]:
        key = uri.split("/", 3)[3]
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == local.read_bytes()
    uploaded = s3.get_object(Bucket=BUCKET, Key=weights.split("/", 3)[3])["Body"].read()
    source = (Path(keras_cache_dir()) / "models" / Path(weights).name
              if weights_spec == "imagenet" else Path(weights_spec))
    assert uploaded == source.read_bytes()  # from the Keras cache (or the file given)
    saved = json.loads((tmp / "state" / "state.json").read_text())
    assert saved["cluster_id"] == cluster
    assert [s["id"] for s in saved["steps"]] == [s["Id"] for s in steps]


def test_submit_refuses_an_engine_the_cluster_was_not_sized_for(aws, cluster):
    """(Before test_make_down_terminates, which ends the cluster.) The cluster was sized for OpenVINO workers (768 MB per core); TensorFlow's need
    twice that, and YARN would kill the executors: refused before any step, exit 2,
    with both ways out. OpenVINO steps on a TensorFlow-sized cluster fit."""
    _, emr, _, common = aws
    before = len(emr.list_steps(ClusterId=cluster)["Steps"])
    props = next(c["Properties"] for c in emr.describe_cluster(ClusterId=cluster)["Cluster"][
        "Configurations"] if c["Classification"] == "spark-defaults")
    assert (props["spark.executor.cores"], props["spark.executor.memoryOverhead"]) == (
        "4", "3072m")  # m5.xlarge, openvino (emr.sizing)
    proc = make("submit", *common, f"INPUT={INPUT}", f"OUTPUT={OUTPUT}", "ENGINE=tensorflow",
                check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (f"ENGINE=tensorflow: cluster {cluster} was sized for ENGINE=openvino (3072m of "
            f"Python memory per 4-core executor); tensorflow workers need 6144m") in proc.stderr
    assert "`make cluster ENGINE=tensorflow`" in proc.stderr
    assert len(emr.list_steps(ClusterId=cluster)["Steps"]) == before

    from emr.preflight import check_engine_fits
    from emr.settings import Settings

    heavy = {"Id": "j-TF", "Configurations": [{"Classification": "spark-defaults", "Properties": {
        "spark.executor.cores": "4", "spark.executor.memoryOverhead": "6144m"}}]}
    check_engine_fits(heavy, Settings(bucket=BUCKET))  # openvino in a tensorflow size: fits
    check_engine_fits({"Id": "j-OTHER"}, Settings(bucket=BUCKET, engine="tensorflow"))


def test_code_zip_imports_the_jobs(aws, cluster):
    """The zip on --py-files alone provides every module the entry points import."""
    _, _, tmp, _ = aws
    zip_path = tmp / "dist" / "featurize.zip"
    names = zipfile.ZipFile(zip_path).namelist()
    assert "featurize/extract/job.py" in names and all(n.startswith("featurize/") for n in names)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
            "import featurize_images, train_classifier, predict_images, featurize;"
            "print(featurize.__file__)")
    proc = subprocess.run([sys.executable, "-c", code, str(zip_path), str(tmp / "dist/jobs")],
                          capture_output=True, text=True, cwd=tmp, check=True)
    assert proc.stdout.strip() == str(zip_path / "featurize" / "__init__.py")


def test_the_index_step_runs_after_train_with_its_args():
    """STEPS with index and INDEX_ARGS (the flag the Makefile passes): the index job on
    the run, after featurize whatever order the steps are named in."""
    import shlex

    from emr import requests
    from emr.args import build_parser, job_args_from
    from emr.settings import Settings

    args = build_parser("emr").parse_args(shlex.split(
        f"submit --bucket {BUCKET} --input s3://{BUCKET}/in "
        f"--output s3://{BUCKET}/runs/r1 --index-args='--k 5 --duplicates 0.9'"))
    built = requests.steps(Settings(bucket=BUCKET), ["index", "featurize"], job_args_from(args))
    assert [s.request["Name"] for s in built] == ["featurize-images featurize",
                                                  "featurize-images index"]
    tail = built[1].request["HadoopJarStep"]["Args"][-7:]
    assert tail[0].endswith("/dist/jobs/index_features.py")
    assert tail[1:] == ["--run", f"s3://{BUCKET}/runs/r1", "--k", "5", "--duplicates", "0.9"]


def _set_steps(cluster_id: str, *states: str) -> list[str]:
    steps = backend().clusters[cluster_id].steps
    for step, st in zip(steps, states):
        step.state = st
    return [s.id for s in steps]


def test_wait_completed(aws, cluster):
    _, _, tmp, common = aws
    _set_steps(cluster, "COMPLETED", "COMPLETED")
    proc = make("wait", *common)
    lines = [ln for ln in proc.stdout.splitlines() if "step s-" in ln]
    assert len(lines) == 2 and all(ln.endswith("COMPLETED") for ln in lines)
    assert "all 2 step(s) completed" in proc.stdout


def test_wait_failed_prints_step_and_driver_log_tails(aws, cluster):
    """Cluster deploy mode: the step's stderr.gz is spark-submit's YARN client output;
    the job's log and traceback are in the driver container's stdout.gz (Spark runs the
    Python with stderr merged into stdout: seen on the local YARN of `make emr-rehearse`),
    its JVM's in stderr.gz; both are found through the application id, stdout first."""
    s3, _, tmp, _ = aws
    first, second = _set_steps(cluster, "FAILED", "CANCELLED")
    app = "application_1700000000000_0007"
    client_log = "\n".join([f"client line {i}" for i in range(50)]
                           + [f"Exception in thread main: Application {app} finished with "
                              f"failed status"])
    job_log = "\n".join([f"job line {i}" for i in range(100)]
                        + ["Traceback (most recent call last):",
                           "featurize.config.ConfigError: input s3://x/y holds no images"])
    jvm_log = "\n".join([f"jvm line {i}" for i in range(100)]
                        + ["ERROR ApplicationMaster: User application exited with status 2"])
    logs = f"team/fz/logs/{cluster}"
    s3.put_object(Bucket=BUCKET, Key=f"{logs}/steps/{first}/stderr.gz",
                  Body=gzip.compress(client_log.encode()))
    s3.put_object(Bucket=BUCKET, Key=f"{logs}/containers/{app}/container_1700000000000_0007_01"
                  f"_000002/stderr.gz", Body=gzip.compress(b"an executor's log"))
    driver = f"{logs}/containers/{app}/container_1700000000000_0007_01_000001"
    s3.put_object(Bucket=BUCKET, Key=f"{driver}/stderr.gz", Body=gzip.compress(jvm_log.encode()))
    s3.put_object(Bucket=BUCKET, Key=f"{driver}/stdout.gz", Body=gzip.compress(job_log.encode()))
    proc = emr_cli("wait", "--poll", "1", "--log-wait", "0", "--tail", "3",
                   state_dir=tmp / "state")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert f"step {first} featurize-images featurize: FAILED" in out
    step_tail = out.split(f"--- last 3 lines of s3://{BUCKET}/{logs}/steps/{first}/stderr.gz "
                          f"---\n")[1].split("\n--- end ---")[0]
    assert step_tail.splitlines() == [
        "client line 48", "client line 49",
        f"Exception in thread main: Application {app} finished with failed status"]
    job_head = (f"--- last 3 lines of the driver's output (the job's log) "
                f"s3://{BUCKET}/{driver}/stdout.gz ---\n")
    jvm_head = f"--- last 3 lines of the driver's log s3://{BUCKET}/{driver}/stderr.gz ---\n"
    assert out.index(job_head) < out.index(jvm_head)
    assert out.split(job_head)[1].split("\n--- end ---")[0].splitlines() == [
        "job line 99", "Traceback (most recent call last):",
        "featurize.config.ConfigError: input s3://x/y holds no images"]
    assert out.split(jvm_head)[1].split("\n--- end ---")[0].splitlines() == [
        "jvm line 98", "jvm line 99",
        "ERROR ApplicationMaster: User application exited with status 2"]
    logs_out = make("logs", *aws[3], f"STEP_ID={first}")
    assert logs_out.stdout.rstrip().endswith("finished with failed status")


def test_wait_shows_the_first_attempt_first(aws, cluster):
    """Should YARN run the driver twice (a cluster whose own settings allow it), the first
    attempt's log is the one with the real error: it comes first, each one labelled."""
    s3, _, tmp, _ = aws
    first, _ = _set_steps(cluster, "FAILED", "CANCELLED")
    app = "application_1700000000000_0009"
    logs = f"team/fz/logs/{cluster}"
    s3.put_object(Bucket=BUCKET, Key=f"{logs}/steps/{first}/stderr.gz",
                  Body=gzip.compress(f"Application {app} finished with failed status".encode()))
    for attempt, last in [(2, "output already exists"), (1, "the real error")]:
        s3.put_object(Bucket=BUCKET, Key=f"{logs}/containers/{app}/container_e03_1700000000000"
                      f"_0009_0{attempt}_000001/stderr.gz", Body=gzip.compress(last.encode()))
    proc = emr_cli("wait", "--poll", "1", "--log-wait", "0", "--tail", "1",
                   state_dir=tmp / "state")
    assert proc.returncode == 1, proc.stderr
    heads = [ln for ln in proc.stdout.splitlines() if "the driver's log" in ln]
    assert heads == [
        f"--- last 1 lines of the driver's log (attempt {n} of 2) s3://{BUCKET}/{logs}/"
        f"containers/{app}/container_e03_1700000000000_0009_0{n}_000001/stderr.gz ---"
        for n in (1, 2)]
    assert proc.stdout.index("the real error") < proc.stdout.index("output already exists")


@pytest.mark.integration
def test_local_replay_of_the_featurize_step(aws, submitted, tmp_path):
    """Run the featurize step's spark-submit arguments here. Swapped, and only these:
    ``spark-submit`` -> the venv's, ``--deploy-mode cluster`` -> ``client``,
    ``--master yarn`` -> ``local[2]``, and the two ``s3://`` artifacts (the --py-files zip
    and the entry point) -> the same files in the local dist/. Input, output and
    ``--weights`` stay ``s3://`` on the moto endpoint."""
    s3, emr, tmp, _ = aws
    args = list(submitted[0]["Config"]["Args"])
    swaps = {"spark-submit": str(Path(sys.executable).parent / "spark-submit"),
             "cluster": "client", "yarn": "local[2]",
             f"{DIST_URI}/featurize.zip": str(tmp / "dist" / "featurize.zip"),
             f"{DIST_URI}/jobs/featurize_images.py": str(tmp / "dist/jobs/featurize_images.py")}
    replay = [swaps.get(a, a) for a in args]
    assert sum(a != b for a, b in zip(args, replay)) == 5
    assert args[args.index("spark.yarn.maxAppAttempts=1") - 1] == "--conf"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(replay + ["--overwrite"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/r1/manifest.json")
                          ["Body"].read())
    assert manifest["status"] == "complete"
    assert manifest["input"]["uri"] == INPUT
    assert manifest["counts"]["featurized"] == 6 and manifest["counts"]["failed"] == 0
    assert manifest["weights"]["spec"].startswith(f"s3://{BUCKET}/team/fz/weights/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/r1/")["Contents"]]
    assert any(k.startswith("runs/r1/features/") and k.endswith(".parquet") for k in keys)


def test_run_transient_cluster(aws):
    s3, emr, tmp, _ = aws
    proc = emr_cli("run", "--bucket", BUCKET, "--prefix", PREFIX, "--input", INPUT,
                   "--steps", "featurize", "--weights", "random", state_dir=tmp / "transient")
    assert proc.returncode == 0, proc.stderr
    cluster_id = json.loads((tmp / "transient" / "state.json").read_text())["cluster_id"]
    c = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert c["AutoTerminate"] is True
    steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
    assert [(s["Name"], s["ActionOnFailure"], s["Config"]["Args"][-8:]) for s in steps] == [
        ("featurize-images featurize", "TERMINATE_CLUSTER",
         ["--input", "s3://featurize-emr-test/input images",
          "--output", "s3://featurize-emr-test/team/fz/runs/input images",
          "--weights", "random", "--engine", "openvino"])]
    emr.terminate_job_flows(JobFlowIds=[cluster_id])


KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
#: What `make cluster SSE=aws:kms SSE_KMS_KEY_ID=KMS_KEY` must ask EMR for, written out
#: from AWS's "Create a security configuration" reference (S3 SSE-KMS + local disk and
#: EBS under the same key).
SECURITY_CONFIGURATION = {"EncryptionConfiguration": {
    "EnableInTransitEncryption": False, "EnableAtRestEncryption": True,
    "AtRestEncryptionConfiguration": {
        "S3EncryptionConfiguration": {"EncryptionMode": "SSE-KMS", "AwsKmsKey": KMS_KEY},
        "LocalDiskEncryptionConfiguration": {"EncryptionKeyProviderType": "AwsKms",
                                             "AwsKmsKey": KMS_KEY,
                                             "EnableEbsEncryption": True}}}}


def test_sse_gives_the_cluster_a_security_configuration_and_every_step_the_flags(aws, cluster):
    _, emr, tmp, _ = aws
    sse = ("--sse", "aws:kms", "--sse-kms-key-id", KMS_KEY)
    clusters = []
    for attempt in ("first", "second"):
        proc = emr_cli("run", "--bucket", BUCKET, "--prefix", PREFIX, "--input", INPUT,
                       "--steps", "featurize train predict", "--predict-input", INPUT,
                       "--weights", "random", *sse, state_dir=tmp / f"sse-{attempt}")
        assert proc.returncode == 0, proc.stderr
        clusters.append(json.loads((tmp / f"sse-{attempt}" / "state.json").read_text())
                        ["cluster_id"])
        emr.terminate_job_flows(JobFlowIds=[clusters[-1]])
    assert "created" in proc.stderr or "reused" in proc.stderr
    names = {emr.describe_cluster(ClusterId=c)["Cluster"]["SecurityConfiguration"]
             for c in clusters}
    assert len(names) == 1  # the second cluster reuses the first one's configuration
    name = names.pop()
    assert name.startswith("featurize-images-sse-kms-")
    # moto has no ListSecurityConfigurations: its backend holds them by name
    assert [n for n in backend().security_configurations if n.startswith(
        "featurize-images-")] == [name]
    stored = emr.describe_security_configuration(Name=name)["SecurityConfiguration"]
    assert json.loads(stored) == SECURITY_CONFIGURATION
    for step in emr.list_steps(ClusterId=clusters[-1])["Steps"]:
        args = step["Config"]["Args"]
        at = args.index("--sse")
        assert args[at:at + 4] == list(sse), step["Name"]
    # a configuration of that name with another document is someone else's: refused
    emr.delete_security_configuration(Name=name)
    emr.create_security_configuration(Name=name, SecurityConfiguration=json.dumps(
        {"EncryptionConfiguration": {"EnableInTransitEncryption": False,
                                     "EnableAtRestEncryption": False}}))
    proc = emr_cli("run", "--bucket", BUCKET, "--prefix", PREFIX, "--input", INPUT,
                   "--steps", "featurize", "--weights", "random", *sse,
                   state_dir=tmp / "sse-foreign")
    assert proc.returncode == 1
    assert f"security configuration {name} exists with another document" in proc.stderr
    emr.delete_security_configuration(Name=name)


def test_sse_kms_on_a_cluster_needs_the_key(aws):
    _, emr, tmp, common = aws
    before = len(emr.list_clusters()["Clusters"])
    proc = make("cluster", *common, "SSE=aws:kms", check=False)
    assert proc.returncode == 2
    assert "SSE=aws:kms on a cluster needs SSE_KMS_KEY_ID=<key ARN>" in proc.stderr
    proc = make("cluster", *common, "DRY_RUN=1", "SSE=AES256",
                env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    request = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    assert request["SecurityConfiguration"].startswith("featurize-images-sse-s3-")
    assert len(emr.list_clusters()["Clusters"]) == before


def test_dry_run_calls_nothing(aws):
    _, emr, tmp, common = aws
    before = len(emr.list_clusters()["Clusters"])
    proc = make("cluster", *common, "DRY_RUN=1", "INSTANCE_TYPE=c6i.2xlarge", "SPOT=0",
                "TASK_COUNT=4", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    request = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    assert request["Instances"]["InstanceGroups"][1]["InstanceType"] == "c6i.2xlarge"
    # 12,288 MB of YARN memory on 8 vCPUs: two 4-core executors of openvino workers
    # (768 MB each, emr/sizing.py)
    assert request["Configurations"][1]["Properties"]["spark.executor.memoryOverhead"] == \
        "3072m"
    assert "spark.executor.instances" in request["Configurations"][1]["Properties"]
    assert request["Instances"]["InstanceGroups"][1]["Market"] == "ON_DEMAND"  # SPOT=0
    assert request["Instances"]["InstanceGroups"][2] == {
        "Name": "task", "InstanceRole": "TASK", "Market": "ON_DEMAND",
        "InstanceType": "c6i.2xlarge", "InstanceCount": 4}
    # (2 core + 4 task nodes) x 2 executors
    assert request["Configurations"][1]["Properties"]["spark.executor.instances"] == "12"
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    proc = make("submit", *common, "DRY_RUN=1", f"INPUT={INPUT}", "STEPS=featurize",
                "CLUSTER_ID=j-EXAMPLE", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    request = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    assert request["JobFlowId"] == "j-EXAMPLE"
    assert request["Steps"][0]["HadoopJarStep"]["Args"][-8:] == [
        "--input", "s3://featurize-emr-test/input images",
        "--output", "s3://featurize-emr-test/team/fz/runs/input images",
        "--weights", request["Steps"][0]["HadoopJarStep"]["Args"][-3], "--engine", "openvino"]
    assert len(emr.list_clusters()["Clusters"]) == before


def test_make_emr_run_waits_for_the_steps(aws):
    """make emr-run: upload, transient cluster, wait. moto never ends a step, so this
    test marks them COMPLETED in moto's backend once the cluster exists."""
    import time

    _, emr, tmp, common = aws
    known = {c["Id"] for c in emr.list_clusters()["Clusters"]}
    cmd = ["make", "--no-print-directory", "-C", str(REPO), "emr-run", *common,
           f"EMR_STATE={tmp / 'emr-run'}", f"INPUT={INPUT}", "POLL=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "AWS_MAX_ATTEMPTS": "2"})
    deadline = time.monotonic() + 300
    new = set()
    while not new and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        new = set(backend().clusters) - known
    assert len(new) == 1, proc.communicate()
    cluster_id = new.pop()
    assert backend().clusters[cluster_id].keep_job_flow_alive_when_no_steps is False
    time.sleep(2)
    _set_steps(cluster_id, "COMPLETED", "COMPLETED")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "all 2 step(s) completed" in out
    assert [s.args[11].rsplit("/", 1)[1] for s in backend().clusters[cluster_id].steps] == \
        ["featurize_images.py", "train_classifier.py"]


def test_second_cluster_refused_while_the_first_runs(aws, cluster):
    _, emr, tmp, common = aws
    before = len(emr.list_clusters()["Clusters"])
    proc = make("cluster", *common, check=False)
    assert proc.returncode == 2  # make's status for a failed recipe (the CLI exited 1)
    state = emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"]
    assert f"cluster {cluster} (remembered in" in proc.stderr
    assert f"is still {state}: `make down` first" in proc.stderr
    assert len(emr.list_clusters()["Clusters"]) == before


def test_make_down_terminates(aws, cluster):
    _, emr, tmp, common = aws
    make("down", *common)
    assert emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert not (tmp / "state" / "state.json").exists()
    proc = make("status", *common, check=False)
    assert proc.returncode != 0 and "no cluster: give CLUSTER_ID=" in proc.stderr


FAKE_AWS = '''#!{python}
# Stand-in for the AWS CLI on an EMR node: only `aws s3 cp [--only-show-errors]
# [--recursive] SRC DEST`, downloading with boto3 (so from moto, through AWS_ENDPOINT_URL).
import os, sys, boto3
args = [a for a in sys.argv[1:] if a not in ("--only-show-errors", "--recursive")]
assert args[:2] == ["s3", "cp"], args
bucket, key = args[2][len("s3://"):].split("/", 1)
s3 = boto3.client("s3")
if "--recursive" in sys.argv:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            dest = os.path.join(args[3], obj["Key"][len(key):].lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            s3.download_file(bucket, obj["Key"], dest)
else:
    s3.download_file(bucket, key, args[3])
'''


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.slow
@pytest.mark.integration
def test_bootstrap_script_installs_the_pins_idempotently(aws, cluster, tmp_path):
    """The uploaded bootstrap script, run as EMR runs it (its arguments, the s3://
    bootstrap and wheelhouse prefixes), with the AWS CLI swapped for a boto3 stand-in,
    Python 3.11 as the base interpreter and the venv in a temporary folder. pip really
    installs, from the uploaded wheelhouse alone: the package index is a dead address."""
    s3, emr, tmp, _ = aws
    script = tmp_path / "install-python-deps.sh"
    script.write_bytes(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/dist/bootstrap/"
                                     "install-python-deps.sh")["Body"].read())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS.format(python=sys.executable))
    (bin_dir / "aws").chmod(0o755)
    venv = tmp_path / "opt" / "venv"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FEATURIZE_NODE_VENV": str(venv), "FEATURIZE_BASE_PYTHON": "python3.11",
           # any index or find-links lookup would fail: only --find-links WHEELS serves
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
           "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    env.pop("PYTHONPATH", None)
    args = ["bash", str(script), f"{DIST_URI}/bootstrap", f"{DIST_URI}/wheels"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "imports ok: tensorflow 2.21.0" in first.stdout
    assert "openvino 2026.4.1" in first.stdout
    assert "every wheel matches wheels.sha256" in first.stdout
    assert "hashes required, no index" in first.stdout
    freeze = subprocess.run([str(venv / "bin/python"), "-m", "pip", "freeze", "--all"],
                            capture_output=True, text=True, check=True).stdout
    installed = _pins(freeze)
    pinned = _pins((REPO / "constraints.txt").read_text())
    wanted = [ln.strip() for ln in (REPO / "bootstrap/requirements.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert wanted == ["numpy", "pandas", "pyarrow", "pillow", "h5py", "tensorflow-cpu",
                      "keras", "openvino", "boto3", "faiss-cpu"]
    for name in wanted + ["pip", "setuptools", "wheel"]:
        assert installed[name] == pinned[name], name
    # every installed package at the project's pin, nothing unpinned
    assert {n: v for n, v in installed.items() if pinned.get(n) != v} == {}
    assert "pyspark" not in installed  # EMR's own Spark provides it
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0
    assert "already installed" in second.stdout and "installing" not in second.stdout


def test_bootstrap_requirements_are_the_package_requirements():
    import ast

    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and any(k.arg == "install_requires" for k in n.keywords))
    install_requires = ast.literal_eval(
        next(k.value for k in call.keywords if k.arg == "install_requires"))
    wanted = [ln.strip() for ln in (REPO / "bootstrap/requirements.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert wanted == install_requires
    pinned = _pins((REPO / "constraints.txt").read_text())
    assert all(name in pinned for name in wanted)


def test_package_builds_a_wheelhouse_for_the_nodes(aws, cluster):
    """dist/wheels/: a cp311 manylinux x86_64 (or pure-Python) wheel of every pinned
    package the nodes install, listed with its sha256; uploaded beside the code."""
    import hashlib
    import re

    s3, _, tmp, _ = aws
    dist = tmp / "dist"
    wheels = sorted((dist / "wheels").glob("*.whl"))
    sums = dict(reversed(line.split()) for line in
                (dist / "bootstrap" / "wheels.sha256").read_text().splitlines())
    assert sorted(sums) == [w.name for w in wheels] and len(wheels) > 30
    pinned = _pins((REPO / "constraints.txt").read_text())
    for wheel in wheels:
        name, version, *_, python, abi, platform = wheel.name[:-len(".whl")].split("-")
        assert pinned[name.lower().replace("_", "-")] == version, wheel.name
        assert abi in {"cp311", "abi3", "none"}, wheel.name
        assert python in {"cp311", "py3", "py2.py3"} or abi == "abi3", wheel.name
        assert platform == "any" or all(re.fullmatch(r"manylinux\w*_x86_64", p)
                                         for p in platform.split(".")), wheel.name
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == sums[wheel.name]
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    assert {"numpy", "pandas", "pyarrow", "pillow", "h5py", "tensorflow-cpu", "keras",
            "boto3", "pip", "setuptools", "wheel"} <= names
    # the same hashes for pip's --require-hashes: one line per wheel, name==version
    hashed = [ln for ln in (dist / "bootstrap" / "requirements-hashed.txt").read_text()
              .splitlines() if ln and not ln.startswith("#")]
    expected = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        expected.append(f"{name.lower().replace('_', '-')}=={version} --hash=sha256:"
                        f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}")
    assert sorted(hashed) == sorted(expected)
    key = f"{PREFIX}/dist/wheels/{wheels[0].name}"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == wheels[0].stat().st_size
    assert head["Metadata"]["sha256"] == sums[wheels[0].name]


def test_bootstrap_refuses_a_wheel_that_is_not_the_one_built(aws, cluster, tmp_path):
    """A wheel whose bytes differ from wheels.sha256 fails the node before any install."""
    import shutil

    _, _, tmp, _ = aws
    wheels = tmp_path / "wheels"
    shutil.copytree(tmp / "dist" / "wheels", wheels, copy_function=os.link)
    victim = min(wheels.glob("*.whl"), key=lambda p: p.stat().st_size)
    victim.unlink()
    victim.write_bytes(b"not the wheel that was built")
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["bash", str(REPO / "bootstrap" / "install-python-deps.sh"),
         str(tmp / "dist" / "bootstrap"), str(wheels)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "FEATURIZE_NODE_VENV": str(venv)})
    assert proc.returncode != 0
    assert f"{victim.name}: FAILED" in proc.stdout + proc.stderr
    assert not venv.exists()


@pytest.mark.slow
def test_pip_refuses_a_wheel_whose_hash_is_not_the_built_one(aws, cluster, tmp_path):
    """The second check: wheels.sha256 rewritten to match a tampered wheel (the first
    check passes), requirements-hashed.txt as built. pip's --require-hashes refuses the
    wheel, and the node is not marked installed."""
    import hashlib
    import shutil

    _, _, tmp, _ = aws
    wheels, bootstrap = tmp_path / "wheels", tmp_path / "bootstrap"
    shutil.copytree(tmp / "dist" / "wheels", wheels, copy_function=os.link)
    shutil.copytree(tmp / "dist" / "bootstrap", bootstrap)
    victim = next(w for w in wheels.glob("six-*.whl"))  # a small one
    data = bytearray(victim.read_bytes())
    victim.unlink()
    victim.write_bytes(bytes(data) + b"\0")  # still a readable zip, other bytes
    sums = (bootstrap / "wheels.sha256").read_text().splitlines()
    (bootstrap / "wheels.sha256").write_text("\n".join(
        f"{hashlib.sha256(victim.read_bytes()).hexdigest()}  {victim.name}"
        if line.endswith(f"  {victim.name}") else line for line in sums) + "\n")
    venv = tmp_path / "venv"
    env = {**os.environ, "FEATURIZE_NODE_VENV": str(venv), "PIP_INDEX_URL":
           "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", str(REPO / "bootstrap" / "install-python-deps.sh"),
                           str(bootstrap), str(wheels)],
                          capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert "every wheel matches wheels.sha256" in out  # the first check was fooled
    assert "DO NOT MATCH THE HASHES" in out and victim.name.split("-")[0] in out
    assert not (venv / ".featurize-installed").exists()


def test_the_rehearsals_aws_cp_skips_directory_markers(moto_endpoint, tmp_path):
    """S3A leaves empty `folder/` keys under a failed run's output; copying OUT must skip
    them as `aws s3 cp --recursive` does (they used to end the rehearsal with
    NotADirectoryError instead of its step summary)."""
    from emr.rehearsal import aws_shim

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="marker-bucket")
    for key, body in (("runs/x/", b""), ("runs/x/features/", b""), ("runs/x/manifest.json", b"{}"),
                      ("runs/x/features/part-0.parquet", b"PAR1"), ("runs/x/pca", b"")):
        s3.put_object(Bucket="marker-bucket", Key=key, Body=body)
    n = aws_shim.cp("s3://marker-bucket/runs/x", str(tmp_path / "out"), recursive=True)
    got = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                 if p.is_file())
    assert n == 3 and got == ["features/part-0.parquet", "manifest.json", "pca"]
    assert (tmp_path / "out" / "features" / "part-0.parquet").read_bytes() == b"PAR1"


def test_an_upload_after_a_pin_change_leaves_only_the_listed_wheels(aws, cluster):
    """A wheel an earlier upload left (its pin since changed) would make every bootstrap
    refuse the wheelhouse (more wheels than wheels.sha256 lists): upload deletes it, and
    the wheelhouse in S3 is exactly the list again."""
    s3, _, tmp, common = aws
    prefix = f"{PREFIX}/dist/wheels/"
    stale = f"{prefix}numpy-1.25.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    s3.put_object(Bucket=BUCKET, Key=stale, Body=b"an old pin's wheel")
    proc = make("upload", *common)
    assert f"removed s3://{BUCKET}/{stale}: not in this wheels.sha256" in proc.stdout
    listed = sorted(line.split()[1] for line in
                    (tmp / "dist" / "bootstrap" / "wheels.sha256").read_text().splitlines())
    in_s3 = sorted(o["Key"][len(prefix):] for page in s3.get_paginator("list_objects_v2")
                   .paginate(Bucket=BUCKET, Prefix=prefix) for o in page.get("Contents", []))
    assert in_s3 == listed and len(listed) > 30
    # nothing else was touched: every listed wheel was already there, same sha256
    assert "uploaded" not in proc.stdout.replace("not uploaded again", "")


def test_root_volume_size_is_given_and_bounded(aws):
    """ROOT_VOLUME_GB reaches RunJobFlow's top-level EbsRootVolumeSize; outside EMR's 15 to
    100 GiB it is refused before any call."""
    _, _, _, common = aws
    proc = make("cluster", *common, "DRY_RUN=1", "ROOT_VOLUME_GB=60")
    assert json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])["EbsRootVolumeSize"] == 60
    for bad in ("14", "101"):
        proc = make("cluster", *common, "DRY_RUN=1", f"ROOT_VOLUME_GB={bad}", check=False)
        assert proc.returncode == 2
        assert f"ROOT_VOLUME_GB={bad}: EMR accepts 15 to 100 GiB" in proc.stderr


def test_spot_task_nodes_keep_the_driver_on_core_nodes(aws):
    """TASK_COUNT=2 TASK_MARKET=SPOT: core nodes on demand, a Spot task group of the same
    type; executors on every node (sizing counts the task nodes); and with task nodes
    YARN's ApplicationMasters (the cluster-mode driver) are kept on CORE-labelled nodes,
    so a reclaim costs executors, not the step."""
    from emr.requests import AM_ON_CORE_NODES

    _, _, _, common = aws
    proc = make("cluster", *common, "DRY_RUN=1", "TASK_COUNT=2", "TASK_MARKET=spot")
    request = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    groups = [(g["InstanceRole"], g["Market"], g["InstanceType"], g["InstanceCount"])
              for g in request["Instances"]["InstanceGroups"]]
    assert groups == [("MASTER", "ON_DEMAND", "m5.xlarge", 1), ("CORE", "ON_DEMAND", "m5.xlarge", 2),
                      ("TASK", "SPOT", "m5.xlarge", 2)]
    confs = {c["Classification"]: c["Properties"] for c in request["Configurations"]}
    assert confs["yarn-site"] == AM_ON_CORE_NODES == {
        "yarn.node-labels.enabled": "true",
        "yarn.node-labels.am.default-node-label-expression": "CORE"}
    assert confs["spark-defaults"]["spark.executor.instances"] == "4"  # 1 per node x 4
    # SPOT=1 alone: both groups on Spot; no task nodes: no yarn-site
    request = json.loads((p := make("cluster", *common, "DRY_RUN=1", "SPOT=1", "TASK_COUNT=1"))
                         .stdout[p.stdout.index("\n{") + 1:])
    assert [g["Market"] for g in request["Instances"]["InstanceGroups"]] == [
        "ON_DEMAND", "SPOT", "SPOT"]
    request = json.loads((p := make("cluster", *common, "DRY_RUN=1"))
                         .stdout[p.stdout.index("\n{") + 1:])
    assert "yarn-site" not in {c["Classification"] for c in request["Configurations"]}
    proc = make("cluster", *common, "DRY_RUN=1", "TASK_MARKET=SPOT", check=False)
    assert proc.returncode == 2 and "TASK_MARKET=SPOT without task nodes" in proc.stderr
