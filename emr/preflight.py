"""Pre-flight: what a first cluster needs from the account, checked before one exists.

Each check reads (never writes) and fails with a :class:`SettingsError` (exit 2) that
names what to change: the bucket exists and is in the region; the service role and the
instance profile exist; the network (the subnet, or a default VPC when no subnet is
given; with a V2 service role, subnets tagged for EMR's managed policies); the input
prefix holds images. ``--skip-preflight`` (``SKIP_PREFLIGHT=1``) is for callers who may
launch clusters but not read IAM or EC2.

Below them, the checks ``up``, ``submit`` and ``run`` always make (``CommandError``, exit 1):
the uploaded artifacts a request names are in S3, the first step's input holds objects,
and no remembered cluster is still running; and ``submit``'s engine must fit the Python
memory the cluster was sized with (``SettingsError``).
"""
from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Sequence

from botocore.exceptions import ClientError

from emr import aws, package, state
from emr.logs import out
from emr.settings import Settings
from featurize.config import DEFAULT_EXTENSIONS
from featurize.errors import CommandError, SettingsError
from featurize.storage.s3 import S3Uri

logger = logging.getLogger(__name__)

#: The managed policy of EMR's v2 service role (EMR_DefaultRole_V2). It lets EMR launch
#: instances only into subnets and security groups tagged MANAGED_TAG: the
#: "CreateInTaggedNetwork" statement of AmazonEMRServicePolicy_v2, and "You must manually
#: tag EC2 security groups and EC2 subnets" (Amazon EMR Management Guide, "Tagging
#: resources to use managed policies",
#: https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-managed-iam-policies.html).
V2_POLICY = "AmazonEMRServicePolicy_v2"
MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")
#: The one instance-profile role AmazonEMRServicePolicy_v2 lets EMR pass to the nodes: its
#: "PassRoleForEC2" statement allows iam:PassRole on arn:aws:iam::*:role/EMR_EC2_DefaultRole
#: only (iam:PassedToService ec2.amazonaws.com*); the EMR Management Guide ("Securing
#: iam:PassRole") gives the v2 policy "iam:PassRole permissions only for specific default
#: Amazon EMR roles". Another role needs a PassRole grant of the service role's own.
V2_PASSABLE_ROLE = "EMR_EC2_DefaultRole"


def _tagged(subnet: dict) -> bool:
    return any((t["Key"], t["Value"]) == MANAGED_TAG for t in subnet.get("Tags", []))


def check_bucket(c: aws.Clients, settings: Settings) -> str:
    try:
        region = aws.bucket_region(c.s3, settings.bucket)
    except ClientError as exc:
        if aws._code(exc) in ("NoSuchBucket", "404"):
            raise SettingsError(f"BUCKET={settings.bucket} does not exist (or is not "
                                f"yours): create it in {c.region}, or fix BUCKET") from exc
        raise
    if region != c.region:
        raise SettingsError(
            f"BUCKET={settings.bucket} is in {region}, the cluster would be in {c.region}: "
            f"give REGION={region}, or a bucket in {c.region} (EMR reads its bootstrap "
            f"script and writes its logs there)")
    return f"bucket {settings.bucket} in {region}"


def check_roles(c: aws.Clients, settings: Settings) -> str:
    if not aws.role_exists(c.iam, settings.service_role):
        raise SettingsError(
            f"SERVICE_ROLE={settings.service_role}: no such IAM role in this account. Create "
            f"EMR's default roles once (`aws emr create-default-roles`), or name yours")
    if not aws.instance_profile_exists(c.iam, settings.instance_profile):
        raise SettingsError(
            f"INSTANCE_PROFILE={settings.instance_profile}: no such instance profile. Create "
            f"EMR's default roles once (`aws emr create-default-roles`), or name yours")
    if V2_POLICY in aws.attached_policies(c.iam, settings.service_role):
        _check_v2_can_pass(c, settings)
    return f"roles {settings.service_role}, {settings.instance_profile}"


def _check_v2_can_pass(c: aws.Clients, settings: Settings) -> None:
    """A v2 service role passes EMR_EC2_DefaultRole only: another instance-profile role
    needs a PassRole grant of the service role's own, or the cluster ends with a vague
    EC2 permissions error (the denial shows only in CloudTrail)."""
    docs = aws.role_policy_documents(c.iam, settings.service_role, skip=(V2_POLICY,))
    for role in aws.instance_profile_roles(c.iam, settings.instance_profile):
        if role["RoleName"] == V2_PASSABLE_ROLE or _allows_pass_role(docs, role["Arn"]):
            continue
        grant = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": role["Arn"],
            "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}}]})
        raise SettingsError(
            f"SERVICE_ROLE={settings.service_role} carries {V2_POLICY}, which lets EMR pass "
            f"only the role {V2_PASSABLE_ROLE} to the nodes; INSTANCE_PROFILE="
            f"{settings.instance_profile} holds {role['RoleName']}, so EMR could not launch "
            f"them (the cluster would end with an EC2 permissions error). Let the service "
            f"role pass it: aws iam put-role-policy --role-name {settings.service_role} "
            f"--policy-name pass-{role['RoleName']} --policy-document '{grant}'; or use "
            f"INSTANCE_PROFILE={V2_PASSABLE_ROLE}")


def _allows_pass_role(docs: Sequence[dict], role_arn: str) -> bool:
    """Whether an Allow statement of ``docs`` names iam:PassRole (or a wildcard of it) on
    ``role_arn`` (or a wildcard of it). Deny statements and conditions are not weighed:
    this is a pre-flight hint, not IAM's evaluation."""
    for doc in docs:
        statements = doc.get("Statement", [])
        for st in statements if isinstance(statements, list) else [statements]:
            actions = st.get("Action", [])
            resources = st.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if st.get("Effect") == "Allow" and \
                    any(fnmatch.fnmatchcase("iam:passrole", a.lower()) for a in actions) and \
                    any(fnmatch.fnmatchcase(role_arn, r) for r in resources):
                return True
    return False


def check_network(c: aws.Clients, settings: Settings) -> str:
    v2 = V2_POLICY in aws.attached_policies(c.iam, settings.service_role)
    tag = "=".join(MANAGED_TAG)
    if settings.subnet_id:
        found = aws.subnets(c.ec2, subnet_id=settings.subnet_id)
        if not found:
            raise SettingsError(f"SUBNET_ID={settings.subnet_id}: no such subnet in "
                                f"{c.region}")
        if v2 and not _tagged(found[0]):
            raise SettingsError(
                f"SUBNET_ID={settings.subnet_id} is not tagged {tag}, and SERVICE_ROLE="
                f"{settings.service_role} ({V2_POLICY}) may only launch into tagged "
                f"subnets: tag it (aws ec2 create-tags --resources {settings.subnet_id} "
                f"--tags Key={MANAGED_TAG[0]},Value=true), and its security groups")
        return f"subnet {settings.subnet_id}" + (" (tagged for v2)" if v2 else "")
    vpc = aws.default_vpc(c.ec2)
    if vpc is None:
        raise SettingsError(f"no default VPC in {c.region} and no SUBNET_ID: give SUBNET_ID= "
                            f"of a subnet whose route table reaches S3")
    if v2:
        untagged = [s["SubnetId"] for s in aws.subnets(c.ec2, vpc_id=vpc) if not _tagged(s)]
        if untagged:
            raise SettingsError(
                f"SERVICE_ROLE={settings.service_role} ({V2_POLICY}) may only launch into "
                f"subnets tagged {tag}; EMR would pick one of the default VPC's subnets, and "
                f"{', '.join(sorted(untagged))} are not tagged. Give SUBNET_ID= of a tagged "
                f"subnet, or tag them")
    return f"default VPC {vpc}"


def check_input(c: aws.Clients, input_uri: str, extensions: tuple[str, ...]) -> str:
    loc = S3Uri.parse(input_uri)
    key, seen = aws.first_key(c.s3, loc.bucket, loc.prefix,
                              tuple("." + e for e in extensions))
    if key is None:
        exts = ", ".join("." + e for e in extensions)
        raise SettingsError(
            f"INPUT={input_uri} holds no {exts} files ({seen} object(s) under it): check "
            f"INPUT, or pass JOB_ARGS=\"--extensions ...\"")
    return f"input {input_uri} holds images (e.g. {key.rsplit('/', 1)[-1]})"


def run_checks(c: aws.Clients, settings: Settings, input_uri: str | None = None,
               extensions: tuple[str, ...] | None = DEFAULT_EXTENSIONS) -> None:
    """Every check, in order; prints one line per check that passed.

    ``extensions`` None: the input's files are not matched by extension (the featurize
    step was given its own ``--extensions``), only required to exist.
    """
    checks: list[Callable[[], str]] = [
        lambda: check_bucket(c, settings), lambda: check_roles(c, settings),
        lambda: check_network(c, settings)]
    if input_uri:
        checks.append(lambda: check_input(c, input_uri, extensions or ("",)))
    for check in checks:
        try:
            out(f"pre-flight: {check()}")
        except ClientError as exc:
            if aws._code(exc) in ("AccessDenied", "AccessDeniedException",
                                  "UnauthorizedOperation", "403"):
                raise SettingsError(
                    f"pre-flight could not read what it checks ({exc.operation_name}: "
                    f"{aws._code(exc)}); give SKIP_PREFLIGHT=1 (--skip-preflight) if these "
                    f"credentials may launch clusters but not read IAM, EC2 or the "
                    f"bucket") from exc
            raise


# --- before a cluster starts or a step is added: what must already be in S3 ---------------

#: Cluster states that bill.
ACTIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")


def bootstrap_uris(settings: Settings) -> list[str]:
    """The bootstrap action's files the cluster request names."""
    return [f"{settings.dist_uri}/bootstrap/{name}" for name in
            (package.BOOTSTRAP_SCRIPT, "requirements.txt", "constraints.txt")] + [
                f"{settings.dist_uri}/{package.HASHED_REQUIREMENTS}",
                f"{settings.dist_uri}/{package.WHEEL_SUMS}"]


def check_artifacts(c: aws.Clients, uris: Sequence[str]) -> None:
    """Every uploaded artifact a request names is in S3."""
    locs = [S3Uri.parse(uri) for uri in uris]
    missing = [loc.uri(loc.key) for loc in locs
               if aws.head_object(c.s3, loc.bucket, loc.key) is None]
    if missing:
        raise CommandError("not in S3: " + ", ".join(missing)
                           + ". Run `make upload BUCKET=...` (same BUCKET, PREFIX and "
                             "WEIGHTS) first")


def check_first_input(c: aws.Clients, input_uri: str | None) -> None:
    """The images the first step reads must be there."""
    if input_uri is None:
        return
    loc = S3Uri.parse(input_uri)
    if not aws.prefix_has_objects(c.s3, loc.bucket, loc.prefix):
        raise CommandError(f"{input_uri} holds no objects: check INPUT / PREDICT_INPUT")


def refuse_second_cluster(c: aws.Clients, state_dir: str) -> None:
    """Starting a cluster forgets the remembered one: refuse while that one still runs
    (and bills)."""
    saved = state.load(state_dir).get("cluster_id")
    if not saved:
        return
    try:
        st = aws.describe_cluster(c.emr, saved)["Status"]["State"]
    except ClientError:  # unknown in this account/region: nothing to protect
        return
    if st in ACTIVE:
        raise CommandError(
            f"cluster {saved} (remembered in {state_dir}/state.json) is still {st}: "
            f"`make down` first, or use it (`make submit`); give another EMR_STATE= to run "
            f"two clusters at once")


def check_engine_fits(cluster: dict, settings: Settings) -> None:
    """The steps' engine must fit the Python memory per executor that ``make cluster``
    sized the cluster for (its spark-defaults, which DescribeCluster returns in
    ``Cluster.Configurations``: Amazon EMR API Reference, "Cluster" data type): TensorFlow workers in an overhead sized for OpenVINO outgrow
    their containers and YARN kills the executors. Clusters this tool did not size
    (no such properties) are not checked."""
    from emr.sizing import PYTHON_MB_BY_ENGINE, parse_mb

    props = next((c.get("Properties", {}) for c in cluster.get("Configurations", [])
                  if c.get("Classification") == "spark-defaults"), {})
    overhead, cores = props.get("spark.executor.memoryOverhead"), props.get("spark.executor.cores")
    if not (overhead and cores):
        return
    have, cores = parse_mb(overhead, "spark.executor.memoryOverhead"), int(cores)
    need = PYTHON_MB_BY_ENGINE[settings.engine] * cores
    if need <= have:
        return
    fits = " or ".join(f"ENGINE={e}" for e, mb in PYTHON_MB_BY_ENGINE.items()
                       if mb * cores <= have)
    raise SettingsError(
        f"ENGINE={settings.engine}: cluster {cluster.get('Id')} was sized for "
        f"{fits or 'less Python memory than any engine needs'} ({have}m of Python memory per "
        f"{cores}-core executor); {settings.engine} workers need {need}m, and YARN would "
        f"kill the executors. " + (f"Submit with {fits}, or start" if fits else "Start")
        + f" a cluster with ENGINE={settings.engine} (`make down`, then "
          f"`make cluster ENGINE={settings.engine}`)")
