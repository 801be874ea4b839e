"""``python -m emr policy``: the nodes' least-privilege policy, offline, and --create-role."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from emr import policy, requests
from emr.requests import JobArgs
from emr.settings import Settings
from featurize.errors import SettingsError
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
    assert lists == {"ListTeamBucket": ["fz/dist", "fz/dist/*", "in", "in/*", "out/run1",
                                        "out/run1/*"]}
    # AWS's semantics, not moto's (which ignores conditions): s3:prefix is a condition key
    # of ListBucket and ListBucketVersions only (Service Authorization Reference, Amazon
    # S3), so a statement it conditions must hold no other action, or that action is
    # never allowed; listing the uploads to clean up after a write gets its own statement
    for st in doc["Statement"]:
        if "s3:prefix" in json.dumps(st.get("Condition", {})):
            assert set(st["Action"]) <= {"s3:ListBucket", "s3:ListBucketVersions"}, st
    assert by_sid["ListUploadsTeamBucket"] == {
        "Sid": "ListUploadsTeamBucket", "Effect": "Allow",
        "Action": ["s3:ListBucketMultipartUploads"], "Resource": "arn:aws:s3:::team-bucket"}
    for st in s3_statements(doc):
        assert st["Effect"] == "Allow" and "s3:*" not in st["Action"]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert all(r.startswith("arn:aws:s3:::team-bucket") and "*" not in r[:-1]
                   for r in resources), st
        if any(a in st["Action"] for a in ("s3:PutObject", "s3:DeleteObject")):
            assert all(r.startswith(("arn:aws:s3:::team-bucket/out/run1",
                                     "arn:aws:s3:::team-bucket/fz/logs")) for r in resources)
    assert not [st for st in doc["Statement"] if st["Action"][0].startswith("kms:")]


def test_an_input_list_reaches_the_featurize_step_and_the_policy():
    """INPUT_LIST: the featurize step gets --input-list, and the nodes may read the
    inventory's folder (its dated manifests and data/), nothing wider."""
    settings = Settings(bucket="team-bucket", prefix="fz")
    manifest = "s3://inv-bucket/inv/team-bucket/daily/2026-12-06T00-00Z/manifest.json"
    args = JobArgs(input="s3://team-bucket/in/", input_list=manifest)
    featurize = requests.steps(settings, ["featurize"], args)[0]
    argv = featurize.request["HadoopJarStep"]["Args"]
    assert argv[argv.index("--input-list") + 1] == manifest
    doc = policy.node_policy(settings, ["featurize"], args)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["ReadInputList"]["Resource"] == [
        "arn:aws:s3:::inv-bucket/inv/team-bucket/daily",
        "arn:aws:s3:::inv-bucket/inv/team-bucket/daily/*"]
    with pytest.raises(SettingsError, match="INPUT_LIST='lists/today.csv'"):
        requests.steps(settings, ["featurize"], JobArgs(input="s3://team-bucket/in/",
                                                         input_list="lists/today.csv"))


def test_predict_and_a_kms_key_add_their_statements():
    doc = policy.node_policy(
        Settings(bucket="team-bucket", sse="aws:kms", sse_kms_key_id=KEY),
        ["featurize", "train", "predict"],
        JobArgs(input="s3://team-bucket/in/", output="s3://team-bucket/out/run1",
                predict_input="s3://other-bucket/new/"))
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["ReadPredictInput"]["Resource"] == ["arn:aws:s3:::other-bucket/new",
                                                      "arn:aws:s3:::other-bucket/new/*"]
    assert by_sid["WritePredictions"]["Resource"][0] == "arn:aws:s3:::team-bucket/out/run1-predictions"
    assert by_sid["ListOtherBucket"]["Condition"]["StringLike"]["s3:prefix"] == ["new", "new/*"]
    # train writes the run directory that predict reads: one statement, the wider one
    assert "ReadRunDirectory" not in by_sid
    assert by_sid["UseTheKmsKey"] == {"Sid": "UseTheKmsKey", "Effect": "Allow",
                                      "Action": ["kms:Encrypt", "kms:Decrypt",
                                                 "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                                 "kms:DescribeKey"],
                                      "Resource": KEY}
    # S3 needs GenerateDataKey to write and Decrypt to read; local-disk encryption needs
    # the role to be a key user: the default key policy's key-user actions



def test_aws_semantics_refuse_what_moto_would_allow():
    """tests/s3_iam.py, the reading the enforced-IAM runs are checked with, refuses what
    S3 refuses: a conditioned listing outside its prefixes, HeadBucket (no s3:prefix) under
    a prefix condition, and ListBucketMultipartUploads under one (the statement this
    project used to print); and allows what the printed policy means to allow."""
    from tests.s3_iam import Authorization, allowed, authorizations

    doc = policy.node_policy(Settings(bucket="team-bucket", prefix="fz"), ["featurize"],
                             JobArgs(input="s3://team-bucket/in/",
                                     output="s3://team-bucket/out/run1"))

    def ok(method, path, *extra):
        return all(allowed(doc, a) for a in authorizations(method, path, *extra))

    assert ok("GET", "/team-bucket?list-type=2&prefix=in%2Fcats%2F")
    assert not ok("GET", "/team-bucket?list-type=2&prefix=other%2F")
    assert not ok("GET", "/team-bucket?list-type=2")  # the whole bucket
    assert not ok("HEAD", "/team-bucket")
    assert ok("GET", "/team-bucket?uploads&prefix=out%2Frun1%2F")
    assert ok("PUT", "/team-bucket/out/run1/features/part-0.parquet?partNumber=1&uploadId=x")
    assert ok("POST", "/team-bucket?delete", None, ["out/run1/a", "out/run1/b"])
    assert not ok("POST", "/team-bucket?delete", None, ["out/run1/a", "in/x.jpg"])
    assert not ok("PUT", "/team-bucket/in/x.jpg")
    assert ok("GET", "/team-bucket/in/cats/1.jpg") and not ok("GET", "/other/in/1.jpg")
    old = {"Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket",
                                                         "s3:ListBucketMultipartUploads"],
                          "Resource": "arn:aws:s3:::team-bucket",
                          "Condition": {"StringLike": {"s3:prefix": ["out/run1/*"]}}}]}
    assert allowed(old, Authorization("s3:ListBucket", "arn:aws:s3:::team-bucket",
                                      {"s3:prefix": "out/run1/features/"}))
    assert not allowed(old, Authorization("s3:ListBucketMultipartUploads",
                                          "arn:aws:s3:::team-bucket"))


def test_a_kms_key_the_policy_cannot_name_is_refused():
    proc = emr_policy("--bucket", "team-bucket", "--input", "s3://team-bucket/in/",
                      "--sse", "aws:kms", "--sse-kms-key-id", "alias/runs")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "SSE_KMS_KEY_ID=alias/runs: give the key's ARN" in proc.stderr
    proc = emr_policy("--bucket", "team-bucket", "--input", "s3://team-bucket/in/",
                      "--sse-kms-key-id", KEY)
    assert proc.returncode == 2
    assert "SSE_KMS_KEY_ID is only used with SSE=aws:kms" in proc.stderr


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


def run_featurize(keys: dict, weights: str, output: str, tmp_path,
                  endpoint: str | None = None) -> subprocess.CompletedProcess:
    from tests.test_cli import JOB, spark_submit

    e = {**env(), "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
         "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
         **({"AWS_ENDPOINT_URL": endpoint} if endpoint else {})}
    return subprocess.run(
        [spark_submit(), "--master", "local[2]", JOB, "--input", "s3://iam-team/in",
         "--output", output, "--weights", weights, "--pca-k", "2"],
        capture_output=True, text=True, env=e, timeout=600, cwd=tmp_path)


@pytest.mark.spark
@pytest.mark.integration
def test_the_job_runs_with_exactly_the_printed_policy(spark, weights_spec, tmp_path,
                                                       monkeypatch):
    """moto with IAM enforced (real HTTP, signed requests): the featurize job, boto3 path,
    as an IAM user holding only the printed policy; then without its output statements."""
    from moto.core.authorization import enable_iam_authentication

    from emr import requests, upload
    from tests.helpers import image_bytes, pattern_image

    s3, iam = boto3.client("s3"), boto3.client("iam")
    s3.create_bucket(Bucket="iam-team")
    for i in range(4):
        s3.put_object(Bucket="iam-team", Key=f"in/c{i % 2}/{i}.png",
                      Body=image_bytes(pattern_image(i), "PNG"))
    settings = Settings(bucket="iam-team", prefix="fz")
    weights = requests.weights_uri(settings, weights_spec)
    s3.upload_file(upload.local_weights_file(weights_spec), "iam-team",
                   weights.split("iam-team/", 1)[1])
    inputs_before = s3.list_objects_v2(Bucket="iam-team", Prefix="in/")["Contents"]
    doc = policy.node_policy(settings, ["featurize"], JobArgs(
        input="s3://iam-team/in", output="s3://iam-team/out/run1", weights=weights_spec))
    iam.create_user(UserName="nodes")
    keys = iam.create_access_key(UserName="nodes")["AccessKey"]
    iam.put_user_policy(UserName="nodes", PolicyName="p", PolicyDocument=json.dumps(doc))
    from tests.refusing_proxy import RefusingProxy
    from tests.s3_iam import allowed, authorizations

    # through a proxy that records every request the job, its workers included, sends
    with enable_iam_authentication(), \
            RefusingProxy(os.environ["AWS_ENDPOINT_URL"], "iam-team", "none/") as proxy:
        ok = run_featurize(keys, weights, "s3://iam-team/out/run1", tmp_path, proxy.url)
    assert ok.returncode == 0, ok.stderr[-3000:]
    # moto ignores conditions: every request must also be allowed as S3 would read the
    # policy (s3:prefix on listings, StringLike)
    checked = [a for method, path, source, deleted in proxy.authorized
               for a in authorizations(method, path, source, deleted)]
    assert {a.action for a in checked} >= {"s3:ListBucket", "s3:GetObject", "s3:PutObject",
                                            "s3:DeleteObject"}, checked
    refused = [a for a in checked if not allowed(doc, a)]
    assert refused == [], refused
    manifest = json.loads(s3.get_object(Bucket="iam-team", Key="out/run1/manifest.json")
                          ["Body"].read())
    assert manifest["status"] == "complete" and manifest["counts"]["featurized"] == 4
    # the policy is what allowed it: outside the named prefixes the same user is refused
    with enable_iam_authentication():
        user = boto3.client("s3", aws_access_key_id=keys["AccessKeyId"],
                            aws_secret_access_key=keys["SecretAccessKey"])
        with pytest.raises(Exception, match="AccessDenied"):
            user.put_object(Bucket="iam-team", Key="elsewhere/x", Body=b"x")
    # without the output statements: refused by the write probe, before featurizing
    doc["Statement"] = [st for st in doc["Statement"]
                        if st["Sid"] not in ("WriteRunDirectory", "ListUploadsIamTeam")]
    iam.put_user_policy(UserName="nodes", PolicyName="p", PolicyDocument=json.dumps(doc))
    # (in this process: the probe runs on the driver, before Spark does any work)
    from featurize.config import FeaturizeConfig
    from featurize.errors import S3AccessError
    from featurize.extract.job import run

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
    with enable_iam_authentication(), pytest.raises(S3AccessError) as denied:
        run(spark, FeaturizeConfig(input="s3://iam-team/in", output="s3://iam-team/out/run2",
                                   weights=weights, pca_k=2))
    assert denied.value.exit_status == 2
    assert str(denied.value).startswith(
        "writing under s3://iam-team/out/run2 (a probe before the run)")
    assert "AccessDenied" in str(denied.value)
    assert s3.list_objects_v2(Bucket="iam-team", Prefix="out/run2").get("KeyCount") == 0
    assert s3.list_objects_v2(Bucket="iam-team", Prefix="in/")["Contents"] == inputs_before
