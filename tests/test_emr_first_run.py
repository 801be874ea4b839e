"""What a first EMR run needs: sizes from the instance type, pre-flight refusals before any
cluster exists (against moto's S3, IAM and EC2 over HTTP), and the time and cost estimate.
"""
from __future__ import annotations

import io
import json
import math

import boto3
import pytest

from emr import sizing
from emr.settings import DEFAULT_CORE_COUNT
from featurize.errors import SettingsError
from tests.test_emr import BUCKET, REGION, create_default_roles, emr_cli, make, make_subnet

# --- sizes -------------------------------------------------------------------------------

#: Amazon EMR Release Guide, "Task configuration": yarn.nodemanager.resource.memory-mb,
#: and the EC2 vCPUs of each type, for types the page lists.
DOCUMENTED = {"m5.xlarge": (4, 12288), "m5.2xlarge": (8, 24576), "m5.4xlarge": (16, 57344),
              "m5.24xlarge": (96, 385024), "c5.xlarge": (4, 6144), "c5.9xlarge": (36, 65536),
              "c5.18xlarge": (72, 139264), "r5.xlarge": (4, 24576),
              "r5.24xlarge": (96, 778240)}


def test_table_holds_the_documented_values():
    for instance_type, expected in DOCUMENTED.items():
        assert sizing.NODE_TYPES[instance_type] == expected, instance_type
    # the newer families of the same memory read the same value
    assert sizing.NODE_TYPES["m6i.xlarge"] == sizing.NODE_TYPES["m7i.xlarge"] == (4, 12288)
    assert sizing.NODE_TYPES["c7i.4xlarge"] == (16, 24576)
    assert all(f"{f}.xlarge" in sizing.NODE_TYPES
               for f in ("m5", "m6i", "m7i", "c5", "c6i", "c7i", "r5", "r6i", "r7i"))


@pytest.mark.parametrize("instance_type", sorted(sizing.NODE_TYPES))
def test_every_type_fits_its_node_with_the_driver(instance_type):
    vcpus, yarn_mb = sizing.NODE_TYPES[instance_type]
    s = sizing.size(instance_type)
    assert s.executors_per_node * s.executor_container_mb + sizing.DRIVER_CONTAINER_MB \
        <= yarn_mb
    assert s.executors_per_node * s.executor_cores <= vcpus
    assert s.executor_overhead_mb == sizing.PYTHON_MB_PER_CORE * s.executor_cores
    assert s.executor_memory_mb >= sizing.MIN_HEAP_MB


def reference_size(vcpus: int, yarn_mb: int, engine: str = "openvino"
                   ) -> tuple[int, int, int, int]:
    """The rule of emr/sizing.py's docstring, searched over every (executors, cores) pair
    on a node's documented YARN memory: ``(executors per node, cores, heap MB, Python
    overhead MB)``. The most cores per node, then the fewest (larger) executors; each
    core's worker gets the engine's Python memory, the driver's container is kept free,
    and the heaps take what is left (rounded down to 256 MB)."""
    python = sizing.PYTHON_MB_BY_ENGINE[engine]
    room = yarn_mb - sizing.DRIVER_CONTAINER_MB
    fits = [(n * c, c, n) for c in range(1, sizing.MAX_AUTO_CORES + 1)
            for n in range(1, vcpus + 1)
            if n * c <= vcpus and n * (python * c + sizing.MIN_HEAP_MB) <= room]
    _, cores, executors = max(fits)
    heap = (room // executors - python * cores) // 256 * 256
    return executors, cores, heap, python * cores


@pytest.mark.parametrize("engine", ["openvino", "tensorflow"])
@pytest.mark.parametrize("instance_type", sorted(DOCUMENTED))
def test_sizes_follow_from_the_documented_yarn_memory(instance_type, engine):
    vcpus, yarn_mb = DOCUMENTED[instance_type]
    s = sizing.size(instance_type, engine=engine)
    expected = reference_size(vcpus, yarn_mb, engine)
    assert (s.executors_per_node, s.executor_cores, s.executor_memory_mb,
            s.executor_overhead_mb) == expected
    # nothing idle: less than 256 MB per executor of the node's YARN memory unused
    left = yarn_mb - sizing.DRIVER_CONTAINER_MB - s.executors_per_node * s.executor_container_mb
    assert 0 <= left < 256 * s.executors_per_node


def test_the_driver_container_and_memory_poor_types():
    assert sizing.DRIVER_CONTAINER_MB >= 2560  # at least 2.5 GiB: docs/emr.md
    # memory-poor (2 GiB per vCPU): fewer cores than vCPUs rather than containers YARN
    # would kill, and fewer still for the heavier engine
    ov, tf = sizing.size("c5.xlarge"), sizing.size("c5.xlarge", engine="tensorflow")
    assert tf.executor_cores < ov.executor_cores < DOCUMENTED["c5.xlarge"][0]
    m5 = sizing.size("m5.xlarge")
    assert m5.executors_per_node * m5.executor_cores == DOCUMENTED["m5.xlarge"][0]


def test_unknown_types_and_cores_that_do_not_fit_are_refused():
    with pytest.raises(SettingsError, match="x2iedn.xlarge: its YARN memory is not in the "
                                            "table.*m5.xlarge.*EXECUTOR_MEMORY="):
        sizing.size("x2iedn.xlarge")
    given = sizing.size("x2iedn.xlarge", executor_cores=2, executor_memory="8g")
    assert (given.executors_per_node, given.executor_cores, given.executor_memory_mb,
            given.executor_overhead_mb) == (1, 2, 8192, 1536)
    with pytest.raises(SettingsError, match="EXECUTOR_CORES=8 does not fit c6i.2xlarge"):
        sizing.size("c6i.2xlarge", executor_cores=8, engine="tensorflow")
    with pytest.raises(SettingsError, match="EXECUTOR_MEMORY=20g"):
        sizing.size("m5.xlarge", executor_memory="20g")


def test_dry_run_shows_the_sizes_and_one_attempt(moto_endpoint, tmp_path):
    dead = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    sizes = {}
    for instance_type in ("m5.xlarge", "m5.4xlarge"):
        proc = make("cluster", f"BUCKET={BUCKET}", f"REGION={REGION}", "DRY_RUN=1",
                    f"INSTANCE_TYPE={instance_type}", f"EMR_STATE={tmp_path}", env=dead)
        props = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])["Configurations"][1][
            "Properties"]
        sizes[instance_type] = props
        assert f"sizing: {instance_type}" in proc.stderr
    for instance_type, props in sizes.items():
        n, cores, heap, overhead = reference_size(*DOCUMENTED[instance_type])
        assert {k: v for k, v in props.items() if "memory" in k.lower()
                or "instances" in k or k.endswith("cores")} == {
            "spark.executor.instances": str(n * DEFAULT_CORE_COUNT),
            "spark.executor.cores": str(cores),
            "spark.executor.memory": f"{heap}m", "spark.executor.memoryOverhead": f"{overhead}m",
            "spark.driver.memory": f"{sizing.DRIVER_MEMORY_MB}m",
            "spark.driver.memoryOverhead": f"{sizing.DRIVER_OVERHEAD_MB}m"}, instance_type
    proc = make("submit", f"BUCKET={BUCKET}", "INPUT=s3://b/images", "DRY_RUN=1",
                "CLUSTER_ID=j-X", env=dead)
    steps = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])["Steps"]
    for step in steps:
        args = step["HadoopJarStep"]["Args"]
        assert args[args.index("spark.yarn.maxAppAttempts=1") - 1] == "--conf"


# --- pre-flight --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def account(moto_endpoint, tmp_path_factory):
    """A bucket with images, EMR's default roles, and a tagged and an untagged subnet."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="preflight-bucket")
    for i in range(3):
        s3.put_object(Bucket="preflight-bucket", Key=f"images/a/{i}.jpg", Body=b"x" * (i + 1))
    s3.put_object(Bucket="preflight-bucket", Key="notes/readme.txt", Body=b"hello")
    s3.create_bucket(Bucket="preflight-elsewhere",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    create_default_roles()
    create_default_roles("EMR_DefaultRole_V2", "AmazonEMRServicePolicy_v2")
    tagged = make_subnet({"for-use-with-amazon-emr-managed-policies": "true"})
    untagged = make_subnet()
    return {"tagged": tagged, "untagged": untagged,
            "state": tmp_path_factory.mktemp("preflight")}


def up(account, *args: str):
    """`python -m emr up` with the pre-flight's own settings; returns the process."""
    return emr_cli("--region", REGION, "up", "--bucket", "preflight-bucket", *args,
                   state_dir=account["state"])


def _clusters() -> int:
    return len(boto3.client("emr", region_name=REGION).list_clusters()["Clusters"])


@pytest.mark.parametrize("args, message", [
    (("--bucket", "no-such-bucket-here"), "BUCKET=no-such-bucket-here does not exist"),
    (("--bucket", "preflight-elsewhere"),
     "BUCKET=preflight-elsewhere is in eu-west-1, the cluster would be in us-east-1: give "
     "REGION=eu-west-1"),
    (("--service-role", "NoSuchRole"), "SERVICE_ROLE=NoSuchRole: no such IAM role"),
    (("--instance-profile", "NoSuchProfile"),
     "INSTANCE_PROFILE=NoSuchProfile: no such instance profile"),
    (("--subnet-id", "subnet-00000000deadbeef"),
     "SUBNET_ID=subnet-00000000deadbeef: no such subnet in us-east-1"),
])
def test_preflight_refusals(account, args, message):
    before = _clusters()
    proc = up(account, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert _clusters() == before


def test_v2_role_needs_tagged_subnets(account):
    before = _clusters()
    proc = up(account, "--service-role", "EMR_DefaultRole_V2", "--subnet-id",
              account["untagged"])
    assert proc.returncode == 2
    assert (f"SUBNET_ID={account['untagged']} is not tagged "
            f"for-use-with-amazon-emr-managed-policies=true") in proc.stderr
    proc = up(account, "--service-role", "EMR_DefaultRole_V2")  # the default VPC's subnets
    assert proc.returncode == 2
    assert "EMR would pick one of the default VPC's subnets" in proc.stderr
    assert _clusters() == before
    # the preflight passes with a tagged subnet (the cluster then fails on missing
    # artifacts: nothing was uploaded for this bucket)
    proc = up(account, "--service-role", "EMR_DefaultRole_V2", "--subnet-id",
              account["tagged"])
    assert f"pre-flight: subnet {account['tagged']} (tagged for v2)" in proc.stdout
    assert proc.returncode == 1 and "not in S3:" in proc.stderr
    assert _clusters() == before



def test_v2_role_passes_only_the_default_instance_profile_role(account):
    """AmazonEMRServicePolicy_v2 lets EMR pass EMR_EC2_DefaultRole only: a profile holding
    another role (what `make iam-policy ROLE_NAME=` creates) is refused before any cluster
    with the grant to add, and passes once the service role has that grant."""
    iam = boto3.client("iam", region_name=REGION)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    arn = iam.create_role(RoleName="FeaturizeNodes", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName="FeaturizeNodes")
    iam.add_role_to_instance_profile(InstanceProfileName="FeaturizeNodes",
                                     RoleName="FeaturizeNodes")
    before = _clusters()
    args = ("--service-role", "EMR_DefaultRole_V2", "--subnet-id", account["tagged"],
            "--instance-profile", "FeaturizeNodes")
    proc = up(account, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("SERVICE_ROLE=EMR_DefaultRole_V2 carries AmazonEMRServicePolicy_v2, which lets "
            "EMR pass only the role EMR_EC2_DefaultRole to the nodes; INSTANCE_PROFILE="
            "FeaturizeNodes holds FeaturizeNodes") in proc.stderr
    command = proc.stderr.split("Let the service role pass it: ", 1)[1].split("; or use")[0]
    assert command.startswith("aws iam put-role-policy --role-name EMR_DefaultRole_V2 ")
    grant = json.loads(command.split("--policy-document '", 1)[1].rstrip("'"))
    assert grant["Statement"][0]["Resource"] == arn
    # the v1 service role (AmazonEMRServicePolicy) is not limited this way
    assert "carries" not in up(account, "--instance-profile", "FeaturizeNodes").stderr
    # the grant the message prints, added: the pre-flight passes
    iam.put_role_policy(RoleName="EMR_DefaultRole_V2", PolicyName="pass-FeaturizeNodes",
                        PolicyDocument=json.dumps(grant))
    proc = up(account, *args)
    assert "pre-flight: roles EMR_DefaultRole_V2, FeaturizeNodes" in proc.stdout, proc.stderr
    assert proc.returncode == 1 and "not in S3:" in proc.stderr  # nothing uploaded here
    iam.delete_role_policy(RoleName="EMR_DefaultRole_V2", PolicyName="pass-FeaturizeNodes")
    assert _clusters() == before


def test_no_default_vpc_needs_a_subnet(account):
    """A region whose default VPC was deleted (moto creates one per region)."""
    region = "eu-west-3"
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    for sn in ec2.describe_subnets(Filters=[{"Name": "vpc-id",
                                             "Values": [vpc["VpcId"]]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=sn["SubnetId"])
    ec2.delete_vpc(VpcId=vpc["VpcId"])
    boto3.client("s3", region_name=region).create_bucket(
        Bucket="preflight-paris", CreateBucketConfiguration={"LocationConstraint": region})
    proc = emr_cli("--region", region, "up", "--bucket", "preflight-paris",
                   state_dir=account["state"])
    assert proc.returncode == 2
    assert "no default VPC in eu-west-3 and no SUBNET_ID: give SUBNET_ID=" in proc.stderr


def test_input_without_images_is_refused_and_preflight_can_be_skipped(account):
    run = ("--region", REGION, "run", "--bucket", "preflight-bucket", "--steps", "featurize",
           "--weights", "random")
    proc = emr_cli(*run, "--input", "s3://preflight-bucket/notes", state_dir=account["state"])
    assert proc.returncode == 2
    assert ("INPUT=s3://preflight-bucket/notes holds no .jpg, .jpeg, .png files (1 object(s) "
            "under it)") in proc.stderr
    proc = emr_cli(*run, "--input", "s3://preflight-bucket/images", state_dir=account["state"])
    assert "pre-flight: input s3://preflight-bucket/images holds images (e.g. 0.jpg)" \
        in proc.stdout
    # skipped: no pre-flight line; the artifacts check still runs
    proc = emr_cli(*run, "--input", "s3://preflight-bucket/notes", "--skip-preflight",
                   state_dir=account["state"])
    assert "pre-flight" not in proc.stdout
    assert proc.returncode == 1 and "not in S3:" in proc.stderr


# --- estimate ----------------------------------------------------------------------------

def test_estimate_lists_the_input_and_shows_its_arithmetic(account, tmp_path):
    s3 = boto3.client("s3", region_name=REGION)
    for i in range(40):
        s3.put_object(Bucket="preflight-bucket", Key=f"many/c{i % 4}/{i}.jpg",
                      Body=b"\xff" * 1000)
    s3.put_object(Bucket="preflight-bucket", Key="many/notes.txt", Body=b"skip me")
    rate = tmp_path / "rate.json"
    rate.write_text(json.dumps({"images_per_second_per_core": 0.5, "engine": "tensorflow",
                                "measured": "a test"}))
    proc = emr_cli("estimate", "--input", "s3://preflight-bucket/many", "--instance-type",
                   "m5.xlarge", "--core-count", "2", "--price-per-hour", "0.24",
                   "--target-minutes", "0.5", "--rate-file", str(rate),
                   state_dir=account["state"])
    assert proc.returncode == 0, proc.stderr
    # independently: 40 images, 2 nodes x 1 executor x 4 cores = 8 cores at 0.5/s per core
    seconds = 40 / (0.5 * 8)
    hours = (12 + seconds / 60) / 60
    # the bodies are no images: the rate goes by their size (1 kB: the thumbnails')
    assert proc.stdout.splitlines() == [
        "input        : 40 images, 0.00 GB; sample of 24: no readable image header; "
        "median 0.00 MB",
        "cluster      : 1 master + 2 core x m5.xlarge; 1 executor(s) per node x 4 cores = "
        "8 cores",
        "rate         : 0.5 images/s per core (thumbnails (0.005 MB), tensorflow engine, "
        "a test)",
        f"featurize    : 40 / (0.5 x 8) = {seconds:.0f} s ({seconds / 60:.1f} min)",
        f"cluster time : 12 min start-up (assumed) + {seconds / 60:.1f} min = "
        f"{hours * 60:.1f} min = {hours:.3f} h",
        f"cost         : 3 instances x {hours:.3f} h x $0.2400/h = ${3 * hours * 0.24:.2f} "
        f"(PRICE_PER_HOUR)",
        "spot         : give SPOT_PRICE_PER_HOUR= (the EC2 Spot price of m5.xlarge) to price "
        "the 2 core node(s) on Spot",
        f"target       : CORE_COUNT={math.ceil(40 / (0.5 * 60 * 0.5) / 4)} featurizes within "
        f"0.5 min",
    ]
    # two Spot task nodes at an EC2 Spot price of $0.07/h, plus m5.xlarge's EMR charge
    # ($0.048/h, the table), beside the master and 2 core nodes on demand
    proc = emr_cli("estimate", "--input", "s3://preflight-bucket/many", "--instance-type",
                   "m5.xlarge", "--core-count", "2", "--task-count", "2", "--price-per-hour",
                   "0.24", "--spot-price-per-hour", "0.07", "--rate-file", str(rate),
                   state_dir=account["state"])
    assert proc.returncode == 0, proc.stderr
    seconds = 40 / (0.5 * 16)
    hours = (12 + seconds / 60) / 60
    spot = hours * (3 * 0.24 + 2 * (0.07 + 0.048))
    assert (f"spot         : 2 task x {hours:.3f} h x ($0.0700 Spot + $0.0480 EMR)/h + 3 on "
            f"demand = ${spot:.2f} (on demand ${5 * hours * 0.24:.2f}") in proc.stdout
    # the built-in price table (m5.xlarge: EC2 0.192 + EMR 0.048 per hour)
    proc = emr_cli("estimate", "--input", "s3://preflight-bucket/many", "--rate-file",
                   str(rate), state_dir=account["state"])
    assert f"x $0.2400/h = ${3 * hours * 0.24:.2f} (m5.xlarge us-east-1" in proc.stdout
    proc = emr_cli("estimate", "--input", "s3://preflight-bucket/notes",
                   state_dir=account["state"])
    assert proc.returncode == 2 and "holds no images" in proc.stderr


def test_estimate_reads_what_kind_of_images_it_prices(account, tmp_path):
    """Phone-size JPEGs (one with 100 kB of ICC profile before its frame header, read on
    the second, larger ranged GET) are priced at the rate interpolated between the
    measured kinds by their megapixels, not at the thumbnails' rate."""
    from PIL import Image

    s3 = boto3.client("s3", region_name=REGION)
    for i in range(6):
        buf = io.BytesIO()
        Image.new("RGB", (3000, 2000), (40 * i, 90, 200)).save(
            buf, "JPEG", quality=80, icc_profile=b"\0" * 100_000 if i == 0 else None)
        s3.put_object(Bucket="preflight-bucket", Key=f"photos/c{i % 2}/{i}.jpg",
                      Body=buf.getvalue())
    rate = tmp_path / "rate.json"
    rate.write_text(json.dumps({"rates": {
        "thumbnails": {"megapixels": 0.01, "megabytes": 0.005,
                       "images_per_second_per_core": 2.0, "engine": "openvino",
                       "measured": "a test"},
        "small photos": {"megapixels": 0.15, "megabytes": 0.03,
                         "images_per_second_per_core": 1.5, "engine": "openvino",
                         "measured": "a test"},
        "phone photos": {"megapixels": 12.0, "megabytes": 2.0,
                         "images_per_second_per_core": 0.5, "engine": "openvino",
                         "measured": "a test"}}}))
    proc = emr_cli("estimate", "--input", "s3://preflight-bucket/photos", "--instance-type",
                   "m5.xlarge", "--core-count", "2", "--rate-file", str(rate),
                   state_dir=account["state"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("input        : 6 images") and \
        "sample of 6: median 3000x2000 (6.00 MP)" in lines[0]
    assert "unreadable" not in lines[0]
    # independently: 1/1.5 s at 0.15 MP, 1/0.5 s at 12 MP, linear in between, at 6 MP
    seconds = 1 / 1.5 + (1 / 0.5 - 1 / 1.5) * (6.0 - 0.15) / (12.0 - 0.15)
    assert lines[2].startswith(f"rate         : {1 / seconds:.1f} images/s per core (at "
                               f"6.00 MP from small photos (0.15 MP, 1.5/s) and phone photos "
                               f"(12 MP, 0.5/s)")
    assert lines[3].startswith(f"featurize    : 6 / ({1 / seconds:.1f} x 8) = "
                               f"{6 * seconds / 8:.0f} s")


def test_estimate_rate_below_the_smallest_and_beyond_the_largest_kind(tmp_path):
    from emr.estimate import Sample, load_rates, rate_for

    old = tmp_path / "old.json"  # make bench's file before the kinds: the thumbnails' rate
    old.write_text(json.dumps({"images_per_second_per_core": 4.0, "engine": "openvino"}))
    rates = load_rates(old)
    assert rates["thumbnails"]["images_per_second_per_core"] == 4.0
    assert set(rates) == {"thumbnails", "small photos", "phone photos"}
    tiny = Sample([(32, 32)], 0, [0.001])
    assert rate_for(rates, tiny)[0] == 4.0
    # 24 MP: twice the phone photos' 12.2, along the small → phone segment's slope
    small, phone = rates["small photos"], rates["phone photos"]
    slope = (1 / phone["images_per_second_per_core"] - 1 / small["images_per_second_per_core"]) \
        / (phone["megapixels"] - small["megapixels"])
    big = Sample([(6000, 4000)], 0, [8.0])
    expected = 1 / phone["images_per_second_per_core"] + slope * (24.0 - phone["megapixels"])
    assert rate_for(rates, big)[0] == pytest.approx(1 / expected)


# --- the make targets pass their variables ---------------------------------------------

def _after_the_echo(proc) -> list[str]:
    """make's output without the recipe line it echoes first."""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(".venv/bin/python -m emr "), lines[:1]
    while lines[0].endswith("\\"):  # the recipe's continued lines
        lines.pop(0)
    return lines[1:]


def test_make_iam_policy_and_estimate_run_as_the_readme_shows(account, tmp_path):
    """`make iam-policy` and `make estimate` with their variables print what the CLI
    prints for the same flags (the Makefile maps each variable to its flag)."""
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    proc = make("iam-policy", "BUCKET=my-bucket", "INPUT=s3://data-bucket/images/",
                "OUTPUT=s3://my-bucket/runs/x", "INPUT_LIST=s3://inv/images/manifest.json",
                "SSE=aws:kms", f"SSE_KMS_KEY_ID={key}")
    cli = emr_cli("policy", "--bucket", "my-bucket", "--input", "s3://data-bucket/images/",
                  "--output", "s3://my-bucket/runs/x", "--input-list",
                  "s3://inv/images/manifest.json", "--sse", "aws:kms", "--sse-kms-key-id", key,
                  state_dir=account["state"])
    assert cli.returncode == 0, cli.stderr
    policy = json.loads("\n".join(_after_the_echo(proc)))
    assert policy == json.loads(cli.stdout)
    resources = json.dumps(policy)
    for granted in ("arn:aws:s3:::inv/*", "arn:aws:s3:::my-bucket/runs/x/*", key):
        assert granted in resources, granted

    s3 = boto3.client("s3", region_name=REGION)
    for i in range(12):
        s3.put_object(Bucket="preflight-bucket", Key=f"make-estimate/c{i % 3}/{i}.jpg",
                      Body=b"\xff" * 2000)
    flags = {"INSTANCE_TYPE": "m5.2xlarge", "CORE_COUNT": "3", "TASK_COUNT": "1",
             "PRICE_PER_HOUR": "0.5", "SPOT_PRICE_PER_HOUR": "0.15", "TARGET_MINUTES": "2"}
    proc = make("estimate", "INPUT=s3://preflight-bucket/make-estimate",
                *(f"{k}={v}" for k, v in flags.items()))
    cli = emr_cli("estimate", "--input", "s3://preflight-bucket/make-estimate",
                  "--instance-type", "m5.2xlarge", "--core-count", "3", "--task-count", "1",
                  "--price-per-hour", "0.5", "--spot-price-per-hour", "0.15",
                  "--target-minutes", "2", state_dir=account["state"])
    assert cli.returncode == 0, cli.stderr
    assert _after_the_echo(proc) == cli.stdout.splitlines()
    assert "3 core + 1 task x m5.2xlarge" in cli.stdout and "$0.5000/h" in cli.stdout
    assert "1 task x" in cli.stdout and "($0.1500 Spot + $0.0960 EMR)/h" in cli.stdout
    assert "within 2 min" in cli.stdout
