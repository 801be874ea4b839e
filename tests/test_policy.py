"""``python -m emr policy``: the nodes' least-privilege policy, offline, and --create-role."""
from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from emr import policy
from emr.requests import JobArgs
from emr.settings import Settings
from tests.conftest import REPO
from tests.test_cli import env

KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def emr_policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emr", "policy", *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=120)


def s3_statements(doc: dict) -> list[dict]:
    return [st for st in doc["Statement"] if any(a.startswith("s3:") for a in st["Action"])]


def test_the_printed_policy_names_only_the_steps_prefixes():
    proc = emr_policy("--bucket", "team-bucket", "--prefix", "fz", "--input",
                      "s3://team-bucket/in/", "--output", "s3://team-bucket/out/run1")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["ReadFeaturizeInput"] == {
        "Sid": "ReadFeaturizeInput", "Effect": "Allow", "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::team-bucket/in", "arn:aws:s3:::team-bucket/in/*"]}
    assert by_sid["WriteRunDirectory"]["Resource"] == [
        "arn:aws:s3:::team-bucket/out/run1", "arn:aws:s3:::team-bucket/out/run1/*"]
    assert set(by_sid["WriteRunDirectory"]["Action"]) == {
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts"}
    assert by_sid["WriteClusterLogs"]["Action"] == ["s3:PutObject"]
    assert by_sid["WriteClusterLogs"]["Resource"][-1] == "arn:aws:s3:::team-bucket/fz/logs/*"
    assert by_sid["ReadWeights"]["Resource"] == [
        "arn:aws:s3:::team-bucket/fz/weights/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"]
    # listing only under the named prefixes; writing only under the output
    lists = {st["Sid"]: st["Condition"]["StringLike"]["s3:prefix"]
             for st in doc["Statement"] if "s3:ListBucket" in st["Action"]}
    assert lists == {"ListTeamBucket": ["fz/dist", "fz/dist/*", "in", "in/*"],
                     "ListAndUploadTeamBucket": ["out/run1", "out/run1/*"]}
    for st in s3_statements(doc):
        assert st["Effect"] == "Allow" and "s3:*" not in st["Action"]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert all(r.startswith("arn:aws:s3:::team-bucket") and "*" not in r[:-1]
                   for r in resources), st
        if any(a in st["Action"] for a in ("s3:PutObject", "s3:DeleteObject")):
            assert all(r.startswith(("arn:aws:s3:::team-bucket/out/run1",
                                     "arn:aws:s3:::team-bucket/fz/logs")) for r in resources)
    assert not [st for st in doc["Statement"] if st["Action"][0].startswith("kms:")]


def test_predict_and_a_kms_key_add_their_statements():
    doc = policy.node_policy(
        Settings(bucket="team-bucket"), ["featurize", "train", "predict"],
        JobArgs(input="s3://team-bucket/in/", output="s3://team-bucket/out/run1",
                predict_input="s3://other-bucket/new/"), KEY)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["ReadPredictInput"]["Resource"] == ["arn:aws:s3:::other-bucket/new",
                                                      "arn:aws:s3:::other-bucket/new/*"]
    assert by_sid["WritePredictions"]["Resource"][0] == "arn:aws:s3:::team-bucket/out/run1-predictions"
    assert by_sid["ListOtherBucket"]["Condition"]["StringLike"]["s3:prefix"] == ["new", "new/*"]
    # train writes the run directory that predict reads: one statement, the wider one
    assert "ReadRunDirectory" not in by_sid
    assert by_sid["UseTheKmsKey"] == {"Sid": "UseTheKmsKey", "Effect": "Allow",
                                      "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                                      "Resource": KEY}


def test_create_role_is_idempotent_and_leaves_foreign_roles_alone(moto_endpoint):
    iam = boto3.client("iam")
    doc = policy.node_policy(Settings(bucket="team-bucket"), ["featurize"],
                             JobArgs(input="s3://team-bucket/in/"))
    assert policy.create_role(iam, "fz-nodes", doc) == "created"
    assert policy.create_role(iam, "fz-nodes", doc) == "updated"
    stored = iam.get_role_policy(RoleName="fz-nodes", PolicyName=policy.INLINE_POLICY)
    assert stored["PolicyDocument"] == doc
    trust = iam.get_role(RoleName="fz-nodes")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    profile = iam.get_instance_profile(InstanceProfileName="fz-nodes")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["fz-nodes"]
    iam.create_role(RoleName="someone-elses", AssumeRolePolicyDocument=json.dumps(
        policy.EC2_TRUST))
    from featurize.errors import CommandError

    with pytest.raises(CommandError, match="not created by `python -m emr policy`"):
        policy.create_role(iam, "someone-elses", doc)
    assert iam.list_role_policies(RoleName="someone-elses")["PolicyNames"] == []
