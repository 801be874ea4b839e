"""The least-privilege IAM policy for the cluster nodes' instance profile (``python -m emr
policy``): only the S3 prefixes the steps touch, built offline from the same settings and
job arguments as the steps themselves.

What the nodes do with S3, and so what the policy allows (each statement's ``Sid`` says
which):

* read the code, the wheelhouse and the bootstrap (``PREFIX/dist/``) and the weights
  (``PREFIX/weights/``, or the ``s3://`` weights URI given);
* list and read the input prefix (featurize) and the predict input;
* list, read, write and delete under the output prefix (the run directory) and the
  predictions prefix, with the multipart-upload actions large objects need;
* write the cluster's logs under ``PREFIX/logs/`` (EMR's log pusher runs on the nodes);
* use the KMS key, when one is given for SSE-KMS.

Listing is allowed on a bucket only for the named prefixes (``s3:prefix`` conditions); every
object ARN ends in a prefix. The prefix's own key (``in`` beside ``in/*``) is in the
resources because Hadoop's S3A probes it with HEAD, which S3 answers with 403 instead of 404
without ``s3:GetObject`` on it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emr import requests
from emr.settings import Settings, SettingsError
from featurize.storage.s3 import S3Uri

READ = ("s3:GetObject",)
WRITE = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
         "s3:ListMultipartUploadParts")
APPEND = ("s3:PutObject",)
LIST = ["s3:ListBucket"]
#: Listing a bucket's in-progress multipart uploads (S3A's cleanup of a write). Its own
#: statement: ``s3:prefix`` is a condition key of ListBucket and ListBucketVersions only,
#: not of this action (Service Authorization Reference, "Actions, resources, and
#: condition keys for Amazon S3"), so under the listing statement's condition it would
#: never be allowed. It lists upload ids and keys, no object data.
LIST_UPLOADS = ["s3:ListBucketMultipartUploads"]
#: A KMS key user's actions (AWS KMS Developer Guide, "Default key policy": the "Allow use
#: of the key" statement). S3 itself needs kms:GenerateDataKey to write and kms:Decrypt to
#: read SSE-KMS objects (S3 User Guide, "Using server-side encryption with AWS KMS
#: keys"); the security configuration's local-disk encryption also needs the instance
#: profile's role "added as a key user" (EMR Management Guide, "Providing keys for
#: encrypting data at rest", emr-encryption-enable.html).
KMS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
       "kms:DescribeKey"]


@dataclass(frozen=True)
class Grant:
    """One S3 prefix and what the nodes do there."""

    sid: str
    uri: str
    actions: tuple[str, ...] = READ
    #: False: objects are only read or written by name (weights, logs): no listing.
    listed: bool = True
    #: One object (the weights file), not a prefix.
    single: bool = False

    @property
    def write(self) -> bool:
        return "s3:DeleteObject" in self.actions

    @property
    def loc(self) -> S3Uri:
        return S3Uri.parse(self.uri)

    @property
    def prefix(self) -> str:
        return self.loc.key.strip("/")


def list_prefix(uri: str) -> str:
    """What reading an input list needs: its folder; for an S3 Inventory manifest, the
    inventory's own folder, which holds the dated manifests and ``data/``.

    >>> list_prefix("s3://inv/dest/src-bucket/daily/2026-12-06T00-00Z/manifest.json")
    's3://inv/dest/src-bucket/daily/'
    >>> list_prefix("s3://team/lists/today.csv")
    's3://team/lists/'
    """
    folder = uri.rsplit("/", 1)[0]
    if uri.endswith("/manifest.json"):
        folder = folder.rsplit("/", 1)[0]
    return folder + "/"


def grants(settings: Settings, jobs: Sequence[str], args: requests.JobArgs) -> list[Grant]:
    """The prefixes the steps of ``jobs`` touch, from the same builders as the steps."""
    built = requests.steps(settings, jobs, args)
    # the bootstrap copies the wheelhouse folder (a listing); EMR's log pusher only puts
    out = [Grant("ReadCodeAndWheelhouse", settings.dist_uri),
           Grant("WriteClusterLogs", settings.uri("logs"), APPEND, listed=False)]
    weights = requests.weights_uri(settings, args.weights)
    if weights.startswith(("s3://", "s3a://")):
        out.append(Grant("ReadWeights", weights, listed=False, single=True))
    for step in built:
        argv = step.request["HadoopJarStep"]["Args"]
        flag = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
        if step.job in ("featurize", "predict"):
            out.append(Grant(f"Read{step.job.capitalize()}Input", flag["--input"]))
        if "--input-list" in flag:
            out.append(Grant("ReadInputList", list_prefix(flag["--input-list"])))
        if step.job == "featurize":
            out.append(Grant("WriteRunDirectory", flag["--output"], WRITE))
        elif step.job == "train":
            out.append(Grant("WriteRunDirectory", flag["--run"], WRITE))
        else:
            out.append(Grant("ReadRunDirectory", flag["--run"]))
            out.append(Grant("WritePredictions", flag["--output"], WRITE))
    # one statement per prefix: the widest grant wins (train writes what predict reads)
    unique: dict[str, Grant] = {}
    for g in out:
        key = g.uri.rstrip("/")
        if key not in unique or len(g.actions) > len(unique[key].actions):
            unique[key] = g
    return list(unique.values())


def _object_arns(g: Grant) -> list[str]:
    base = f"arn:aws:s3:::{g.loc.bucket}"
    if g.single:
        return [f"{base}/{g.loc.key}"]
    return [f"{base}/{g.prefix}", f"{base}/{g.prefix}/*"] if g.prefix else [f"{base}/*"]


def node_policy(settings: Settings, jobs: Sequence[str], args: requests.JobArgs) -> dict[str, Any]:
    """The policy document (a dict; :func:`to_json` prints it); with SSE_KMS_KEY_ID, the
    use of that key too.

    Raises
    ------
    SettingsError
        SSE_KMS_KEY_ID is not a key ARN: an IAM statement on a KMS key names the key's
        ARN (an alias or a bare id grants nothing).
    """
    kms_key_arn = settings.sse_kms_key_id
    if kms_key_arn and not re.match(r"^arn:aws[-a-z]*:kms:[-a-z0-9]+:\d{12}:key/.+$",
                                    kms_key_arn):
        raise SettingsError(f"SSE_KMS_KEY_ID={kms_key_arn}: give the key's ARN "
                            f"(arn:aws:kms:REGION:ACCOUNT:key/ID), which the policy names")
    statements: list[dict[str, Any]] = []
    listing: dict[str, list[str]] = {}
    written: set[str] = set()
    for g in grants(settings, jobs, args):
        statements.append({"Sid": g.sid, "Effect": "Allow", "Action": list(g.actions),
                           "Resource": _object_arns(g)})
        if g.listed:
            listing.setdefault(g.loc.bucket, []).extend(
                [g.prefix, f"{g.prefix}/*"] if g.prefix else ["*"])
            if g.write:
                written.add(g.loc.bucket)
    for bucket, prefixes in sorted(listing.items()):
        statements.append({
            "Sid": f"List{_camel(bucket)}", "Effect": "Allow", "Action": LIST,
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": sorted(set(prefixes))}}})
    for bucket in sorted(written):
        statements.append({"Sid": f"ListUploads{_camel(bucket)}", "Effect": "Allow",
                           "Action": LIST_UPLOADS, "Resource": f"arn:aws:s3:::{bucket}"})
    if kms_key_arn:
        statements.append({"Sid": "UseTheKmsKey", "Effect": "Allow", "Action": KMS,
                           "Resource": kms_key_arn})
    return {"Version": "2012-10-17", "Statement": statements}


def _camel(bucket: str) -> str:
    return "".join(part.capitalize() for part in bucket.replace(".", "-").split("-"))


def to_json(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2)


#: The tag that marks a role as this tool's: --create-role updates only roles carrying it.
OWNER_TAG = {"Key": "created-by", "Value": "featurize-images emr policy"}
INLINE_POLICY = "featurize-images-nodes"
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}


def create_role(iam: Any, name: str, doc: dict[str, Any]) -> str:
    """Create (or bring up to date) role ``name`` with ``doc`` as its only inline policy,
    and the instance profile of the same name holding it; ``created`` or ``updated``.

    Raises
    ------
    CommandError
        ``name`` exists without this tool's tag: it is left untouched.
    """
    from emr import aws
    from featurize.errors import CommandError

    if aws.role_exists(iam, name):
        tags = iam.list_role_tags(RoleName=name).get("Tags", [])
        if OWNER_TAG not in tags:
            raise CommandError(
                f"role {name} exists and was not created by `python -m emr policy` (no tag "
                f"{OWNER_TAG['Key']}={OWNER_TAG['Value']!r}): not touching it; choose another "
                f"ROLE_NAME, or attach the printed policy to it yourself")
        outcome = "updated"
    else:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                        Description="EMR nodes of featurize-images: least privilege",
                        Tags=[OWNER_TAG, {"Key": "project", "Value": requests.PROJECT_TAG}])
        outcome = "created"
    iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(doc))
    if not aws.instance_profile_exists(iam, name):
        iam.create_instance_profile(InstanceProfileName=name,
                                    Tags=[OWNER_TAG, {"Key": "project",
                                                      "Value": requests.PROJECT_TAG}])
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if name not in [r["RoleName"] for r in profile.get("Roles", [])]:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return outcome
