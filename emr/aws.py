"""One small function per AWS call; the client is passed in.

Clients come from :func:`clients`, i.e. boto3's own configuration: the credential chain,
``--profile``/``AWS_PROFILE``, the region, and ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_EMR`` (how the tests reach moto), plus
``AWS_MAX_ATTEMPTS`` for retries. Each function logs a failed call with its context and
re-raises; :func:`featurize.errors.explain_aws` turns the exception into a message.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from featurize.errors import CommandError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clients:
    emr: Any
    s3: Any
    iam: Any
    ec2: Any
    region: str


def clients(profile: str | None = None, region: str | None = None) -> Clients:
    """EMR, S3, IAM and EC2 clients from one fresh boto3 session (no cached default)."""
    import boto3

    session = boto3.session.Session(profile_name=profile or None, region_name=region or None)
    if not session.region_name:
        raise NoRegionError()
    return Clients(emr=session.client("emr"), s3=session.client("s3"),
                   iam=session.client("iam"), ec2=session.client("ec2"),
                   region=session.region_name)


def s3_client(profile: str | None = None, region: str | None = None) -> Any:
    """An S3 client alone (S3 needs no region: the global endpoint answers)."""
    import boto3

    return boto3.session.Session(profile_name=profile or None,
                                 region_name=region or None).client("s3")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _call(what: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError):
        logger.error("%s failed", what)
        raise


# --- S3 --------------------------------------------------------------------------------

def head_bucket(s3: Any, bucket: str) -> None:
    _call(f"head_bucket {bucket}", s3.head_bucket, Bucket=bucket)


def upload_file(s3: Any, path: str, bucket: str, key: str, sha256: str | None = None) -> None:
    """Upload a file; ``sha256`` is kept as the object's metadata (see object_sha256)."""
    # upload_file is boto3's managed (multipart) transfer, not a single API call
    extra = {"Metadata": {"sha256": sha256}} if sha256 else None
    try:
        s3.upload_file(path, bucket, key, ExtraArgs=extra)
    except (ClientError, BotoCoreError):
        logger.error("upload %s -> s3://%s/%s failed", path, bucket, key)
        raise


def head_object(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata (``ContentLength``, ``Metadata`` …), or None when it does
    not exist."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        logger.error("head_object s3://%s/%s failed", bucket, key)
        raise


def object_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 an object was uploaded with (its metadata), or None (absent, or
    uploaded another way). An ETag is no content hash for multipart uploads."""
    head = head_object(s3, bucket, key)
    return None if head is None else head.get("Metadata", {}).get("sha256")


def prefix_has_objects(s3: Any, bucket: str, prefix: str) -> bool:
    resp = _call(f"list_objects_v2 s3://{bucket}/{prefix}", s3.list_objects_v2,
                 Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return resp.get("KeyCount", 0) > 0


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        return [o["Key"] for page in pages for o in page.get("Contents", [])]
    except (ClientError, BotoCoreError):
        logger.error("list_objects_v2 s3://%s/%s failed", bucket, prefix)
        raise


def delete_unlisted(s3: Any, bucket: str, prefix: str, keep: set[str]) -> list[str]:
    """Delete every key under ``prefix`` that is not in ``keep``; the keys deleted."""
    stale = sorted(set(list_keys(s3, bucket, prefix)) - keep)
    for key in stale:
        _call(f"delete_object s3://{bucket}/{key}", s3.delete_object, Bucket=bucket, Key=key)
    return stale


def get_object_bytes(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist (yet)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        logger.error("get_object s3://%s/%s failed", bucket, key)
        raise


def bucket_region(s3: Any, bucket: str) -> str:
    """The bucket's region (GetBucketLocation answers None for us-east-1, and "EU" for
    the old name of eu-west-1)."""
    where = _call(f"get_bucket_location {bucket}", s3.get_bucket_location,
                  Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(where, where)


def first_key(s3: Any, bucket: str, prefix: str,
              suffixes: tuple[str, ...]) -> tuple[str | None, int]:
    """The first key under a prefix ending in one of ``suffixes`` (any case), and how many
    keys were looked at to find it (all of them when there is none)."""
    seen = 0
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            for obj in page.get("Contents", []):
                seen += 1
                if obj["Key"].lower().endswith(suffixes):
                    return obj["Key"], seen
    except (ClientError, BotoCoreError):
        logger.error("list_objects_v2 s3://%s/%s failed", bucket, prefix)
        raise
    return None, seen


# --- IAM and EC2 (pre-flight) -------------------------------------------------------------

def _iam_exists(call: Any, what: str, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
        return True
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return False
        logger.error("%s failed", what)
        raise


def role_exists(iam: Any, name: str) -> bool:
    return _iam_exists(iam.get_role, f"get_role {name}", RoleName=name)


def instance_profile_exists(iam: Any, name: str) -> bool:
    return _iam_exists(iam.get_instance_profile, f"get_instance_profile {name}",
                       InstanceProfileName=name)


def attached_policies(iam: Any, role: str) -> list[str]:
    """Names of the managed policies attached to a role."""
    pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
    try:
        return [p["PolicyName"] for page in pages for p in page["AttachedPolicies"]]
    except (ClientError, BotoCoreError):
        logger.error("list_attached_role_policies %s failed", role)
        raise


def instance_profile_roles(iam: Any, name: str) -> list[dict[str, Any]]:
    """The roles (``RoleName``, ``Arn`` …) an instance profile holds."""
    return _call(f"get_instance_profile {name}", iam.get_instance_profile,
                 InstanceProfileName=name)["InstanceProfile"].get("Roles", [])


def role_policy_documents(iam: Any, role: str, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The policy documents of a role: its inline policies and the default version of each
    attached managed policy whose name is not in ``skip``."""
    from urllib.parse import unquote

    def document(raw: Any) -> dict[str, Any]:  # IAM returns it URL-encoded JSON or parsed
        return json.loads(unquote(raw)) if isinstance(raw, str) else raw

    docs = []
    for name in _call(f"list_role_policies {role}", iam.list_role_policies,
                      RoleName=role)["PolicyNames"]:
        docs.append(document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]))
    for attached in _call(f"list_attached_role_policies {role}", iam.list_attached_role_policies,
                          RoleName=role)["AttachedPolicies"]:
        if attached["PolicyName"] in skip:
            continue
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        docs.append(document(iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]))
    return docs


def default_vpc(ec2: Any) -> str | None:
    vpcs = _call("describe_vpcs isDefault", ec2.describe_vpcs,
                 Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    return vpcs[0]["VpcId"] if vpcs else None


def subnets(ec2: Any, *, subnet_id: str | None = None,
            vpc_id: str | None = None) -> list[dict[str, Any]]:
    """One subnet by id ([] when it does not exist), or the default subnets of a VPC."""
    if subnet_id:
        try:
            return ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        except ClientError as exc:
            if _code(exc) == "InvalidSubnetID.NotFound":
                return []
            logger.error("describe_subnets %s failed", subnet_id)
            raise
    return _call(f"describe_subnets {vpc_id}", ec2.describe_subnets,
                 Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                          {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]


# --- EMR -------------------------------------------------------------------------------

def ensure_security_configuration(emr: Any, name: str, document: dict[str, Any]) -> str:
    """Create the security configuration ``name`` unless it exists; ``created`` or
    ``reused``.

    Raises
    ------
    CommandError
        One of that name exists with another document (its name carries the digest of
        what this tool writes, so someone else made it).
    """
    try:
        found = emr.describe_security_configuration(Name=name)
    except ClientError as exc:
        # EMR's API reference lists InvalidRequestException for DescribeSecurityConfiguration
        # (no other "not found" code); moto raises ResourceNotFoundException.
        if exc.response.get("Error", {}).get("Code") not in ("InvalidRequestException",
                                                             "ResourceNotFoundException"):
            logger.error("describe_security_configuration %s failed", name)
            raise
    else:
        if json.loads(found["SecurityConfiguration"]) != document:
            raise CommandError(f"security configuration {name} exists with another "
                               f"document: not made by this tool; delete or rename it")
        return "reused"
    _call(f"create_security_configuration {name}", emr.create_security_configuration,
          Name=name, SecurityConfiguration=json.dumps(document))
    return "created"


def run_job_flow(emr: Any, request: dict[str, Any]) -> str:
    return _call("run_job_flow", emr.run_job_flow, **request)["JobFlowId"]


def add_job_flow_steps(emr: Any, cluster_id: str, steps: list[dict[str, Any]]) -> list[str]:
    return _call(f"add_job_flow_steps {cluster_id}", emr.add_job_flow_steps,
                 JobFlowId=cluster_id, Steps=steps)["StepIds"]


def describe_cluster(emr: Any, cluster_id: str) -> dict[str, Any]:
    return _call(f"describe_cluster {cluster_id}", emr.describe_cluster,
                 ClusterId=cluster_id)["Cluster"]


def describe_step(emr: Any, cluster_id: str, step_id: str) -> dict[str, Any]:
    return _call(f"describe_step {cluster_id} {step_id}", emr.describe_step,
                 ClusterId=cluster_id, StepId=step_id)["Step"]


def list_steps(emr: Any, cluster_id: str) -> list[dict[str, Any]]:
    """All steps of the cluster, oldest first."""
    pages = emr.get_paginator("list_steps").paginate(ClusterId=cluster_id)
    try:
        found = [s for page in pages for s in page["Steps"]]
    except (ClientError, BotoCoreError):
        logger.error("list_steps %s failed", cluster_id)
        raise
    return list(reversed(found))


def terminate_job_flows(emr: Any, cluster_id: str) -> None:
    _call(f"terminate_job_flows {cluster_id}", emr.terminate_job_flows,
          JobFlowIds=[cluster_id])


def wait_once(emr: Any, waiter_name: str, **kwargs: Any) -> dict[str, Any] | None:
    """One poll of a boto3 waiter (the caller sleeps between polls and prints progress).

    Returns None when the waiter's success state was reached (botocore returns no
    response then); otherwise the describe response the waiter saw, in a pending state
    or one of its failure states. API errors are re-raised.
    """
    from botocore.exceptions import WaiterError

    waiter = emr.get_waiter(waiter_name)
    try:
        waiter.wait(**kwargs, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
        return None
    except WaiterError as exc:
        if exc.last_response and "Error" not in exc.last_response:
            return exc.last_response
        raise
