"""The job over Hadoop's S3A filesystem, as on EMR 7.10+ (``s3://`` served by S3A), against
the moto server: the path the boto3 tests never take.

Each job runs as ``spark-submit`` on local Spark with hadoop-aws on its classpath and the
S3A settings the rehearsal uses (:func:`emr.rehearsal.hadoop.s3a_properties`), so the
job finds a Hadoop filesystem for ``s3://`` and reads and writes through it (manifest
``io``: ``spark``). Needs the rehearsal's jars (``make jars``): skipped without them,
except under ``FEATURIZE_REQUIRE_JARS=1`` (CI), where their absence fails.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from emr.rehearsal import hadoop, jars
from featurize.config import FeaturizeConfig
from featurize.extract.job import run
from tests.conftest import REPO
from tests.helpers import assert_same_features, image_bytes, pattern_image
from tests.test_cli import env, spark_submit
from tests.test_job_e2e import make_corpus
from tests.test_s3 import assert_corpus_outcomes, assert_encrypted
from tests.test_s3 import download_prefix as s3_download_prefix

pytestmark = [pytest.mark.rehearsal, pytest.mark.spark]

BUCKET = "featurize-s3a"


def require_jars() -> list:
    missing = jars.missing()
    if missing:
        message = (f"the S3A jars are not in {jars.jar_dir()} (make jars): "
                   + ", ".join(j.coordinates for j in missing))
        if jars.required():
            pytest.fail(message + ", but FEATURIZE_REQUIRE_JARS=1")
        pytest.skip(message)
    return jars.paths("s3a")


def s3a_submit(job: str, *args: str, endpoint: str, truststore: Path | None = None,
               keys: dict | None = None) -> subprocess.CompletedProcess[str]:
    """One job as spark-submit on local Spark, with S3A behind s3:// and s3a://
    (``truststore``: the JVM's, for an https endpoint; ``keys``: an IAM user's access key,
    for S3A and boto3 alike, instead of moto's defaults)."""
    classpath = ":".join(map(str, require_jars()))
    properties = hadoop.s3a_properties(endpoint)
    environment = env()
    if keys:
        properties.update({"fs.s3a.access.key": keys["AccessKeyId"],
                           "fs.s3a.secret.key": keys["SecretAccessKey"],
                           # moto authorizes a DeleteObjects request against the bucket's
                           # ARN, where AWS checks s3:DeleteObject on each key; one
                           # DeleteObject per key lets moto check what AWS checks
                           "fs.s3a.multiobjectdelete.enable": "false"})
        environment.update(AWS_ACCESS_KEY_ID=keys["AccessKeyId"],
                           AWS_SECRET_ACCESS_KEY=keys["SecretAccessKey"])
    confs = ["--conf", f"spark.driver.extraClassPath={classpath}"]
    if truststore:
        confs += ["--conf", f"spark.driver.extraJavaOptions=-Djavax.net.ssl.trustStore="
                            f"{truststore} -Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}"
                            f" -Djavax.net.ssl.trustStoreType=PKCS12"]
    for key, value in properties.items():
        confs += ["--conf", f"spark.hadoop.{key}={value}"]
    proc = subprocess.run(
        [spark_submit(), "--master", "local[2]", "--driver-memory", "2g",
         "--conf", "spark.log.level=WARN", *confs, str(REPO / "jobs" / job), *args],
        capture_output=True, text=True, env=environment, timeout=900, cwd=REPO)
    return proc


STORE_PASSWORD = "changeit"  # a throwaway trust store of one test certificate


@pytest.fixture(scope="module")
def moto_tls(moto_endpoint, tmp_path_factory):
    """A second door to the same moto backends, over TLS, and a Java trust store for it.

    AWS's Java SDK v1 refuses to send a KMS key id over plain HTTP (AmazonS3Client.
    assertHttps), so S3A with ``fs.s3a.encryption.key`` needs an https endpoint; on AWS
    every endpoint is one. The certificate is made here, for 127.0.0.1, each run.
    """
    from threading import Thread

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
    )
    from werkzeug.serving import make_server

    tls = tmp_path_factory.mktemp("tls")
    cert, key, store = tls / "cert.pem", tls / "key.pem", tls / "trust.p12"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "moto", "-file", str(cert),
                    "-keystore", str(store), "-storetype", "PKCS12", "-storepass",
                    STORE_PASSWORD], check=True, capture_output=True)
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                         threaded=True, request_handler=MotoRequestHandler,
                         ssl_context=(str(cert), str(key)))
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_port}", store
    server.shutdown()


def download_prefix(client, prefix: str, dest):
    return s3_download_prefix(client, prefix, dest, BUCKET)


def keys_of(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def keys(client, prefix: str) -> list[str]:
    return keys_of(client, BUCKET, prefix)


@pytest.fixture(scope="module")
def s3a(moto_endpoint, tmp_path_factory):
    require_jars()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    corpus = make_corpus(tmp_path_factory.mktemp("s3a") / "images")
    for path in sorted(corpus.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, "in/" + path.relative_to(corpus).as_posix())
    return client, corpus, moto_endpoint


@pytest.fixture(scope="module")
def s3a_run(spark, s3a, weights_spec, tmp_path_factory):
    """featurize s3://BUCKET/in -> s3://BUCKET/runs/r1 through S3A, and the same images
    featurized from the local disk in this process."""
    client, corpus, endpoint = s3a
    proc = s3a_submit("featurize_images.py", "--input", f"s3://{BUCKET}/in", "--output",
                      f"s3://{BUCKET}/runs/r1", "--weights", weights_spec, "--pca-k", "3",
                      "--batch-size", "4", endpoint=endpoint)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    local = download_prefix(client, "runs/r1/", tmp_path_factory.mktemp("fromS3A"))
    reference = tmp_path_factory.mktemp("local") / "run"
    run(spark, FeaturizeConfig(input=str(corpus), output=str(reference), weights=weights_spec,
                               pca_k=3, batch_size=4))
    return local, reference


def test_s3a_run_reads_and_writes_through_hadoop(spark, s3a, s3a_run):
    local, _ = s3a_run
    # Spark's own listing names each object once, by its s3:// path
    assert_corpus_outcomes(spark, local, f"s3://{BUCKET}/in/", "spark")
    # the v1 commit leaves no temporary keys behind on the object store
    written = keys(s3a[0], "runs/r1/")
    assert not [k for k in written if "_temporary" in k or k.endswith(".crc")]
    assert "runs/r1/features/_SUCCESS" in written


def test_s3a_features_equal_the_local_run(spark, s3a_run):
    local, reference = s3a_run
    assert_same_features(spark, local, f"s3://{BUCKET}/in/", reference, "/images/", 9)


def test_s3a_resume_featurizes_only_the_new_image(spark, s3a, s3a_run, weights_spec,
                                                  tmp_path):
    client, _, endpoint = s3a
    client.put_object(Bucket=BUCKET, Key="in/cats/new.jpg",
                      Body=image_bytes(pattern_image(77), "JPEG"))
    try:
        proc = s3a_submit("featurize_images.py", "--input", f"s3://{BUCKET}/in", "--output",
                          f"s3://{BUCKET}/runs/r1", "--weights", weights_spec, "--pca-k", "3",
                          "--batch-size", "4", "--resume", endpoint=endpoint)
    finally:
        client.delete_object(Bucket=BUCKET, Key="in/cats/new.jpg")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    local = download_prefix(client, "runs/r1/", tmp_path / "resumed")
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["io"] == {"input": "spark", "output": "spark"}
    assert manifest["counts"]["featurized"] == 10 and manifest["counts"]["failed"] == 3
    assert manifest["counts"]["model_images"] == 1  # only the new one went through the model
    paths = [r["path"] for r in spark.read.parquet(str(local / "features")).collect()]
    assert len(paths) == len(set(paths)) == 10
    assert f"s3://{BUCKET}/in/cats/new.jpg" in paths
    assert spark.read.parquet(str(local / "pca")).count() == 10


def test_s3a_overwrite_leaves_no_old_key(s3a, weights_spec):
    client, corpus, endpoint = s3a
    for key in ("runs/r2/manifest.json", "runs/r2/features/part-old.parquet",
                "runs/r2/old-folder/x.bin"):
        client.put_object(Bucket=BUCKET, Key=key, Body=b"from an earlier run")
    before = set(keys(client, "runs/r2/"))
    proc = s3a_submit("featurize_images.py", "--input", f"s3a://{BUCKET}/in/dogs", "--output",
                      f"s3a://{BUCKET}/runs/r2", "--weights", weights_spec, "--pca-k", "2",
                      "--overwrite", endpoint=endpoint)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = set(keys(client, "runs/r2/"))
    assert not (after & (before - {"runs/r2/manifest.json"}))
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key="runs/r2/manifest.json")
                          ["Body"].read())
    assert manifest["status"] == "complete" and manifest["counts"]["featurized"] == 4


def test_train_and_predict_read_an_s3a_run(s3a, moto_tls, weights_spec, tmp_path):
    """The whole chain on S3A: featurize labelled digits, train, predict new ones; each
    job with --sse aws:kms and a key (so over TLS), every object it writes under that key."""
    from featurize.inputs.sample import write_sample

    client, _, _ = s3a
    endpoint, truststore = moto_tls
    write_sample(str(tmp_path / "digits"), per_class=3, with_broken=False)
    write_sample(str(tmp_path / "new"), per_class=1, with_broken=False, offset=40)
    for folder, prefix in ((tmp_path / "digits", "digits/"), (tmp_path / "new", "new/")):
        for path in sorted(folder.rglob("*.png")):
            client.upload_file(str(path), BUCKET, prefix + path.relative_to(folder).as_posix())
    run_uri = f"s3://{BUCKET}/runs/digits"
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    sse = ("--sse", "aws:kms", "--sse-kms-key-id", key)
    steps = [("featurize_images.py", "--input", f"s3://{BUCKET}/digits", "--output", run_uri,
              "--weights", weights_spec, "--pca-k", "8"),
             ("train_classifier.py", "--run", run_uri, "--test-fraction", "0.34",
              "--reg-param", "0.001", "--no-calibrate"),
             ("predict_images.py", "--run", run_uri, "--input", f"s3://{BUCKET}/new",
              "--output", f"{run_uri}-predictions")]
    for job, *args in steps:
        proc = s3a_submit(job, *args, *sse, endpoint=endpoint, truststore=truststore)
        assert proc.returncode == 0, f"{job}: {proc.stdout[-3000:] + proc.stderr[-3000:]}"
    metrics = json.loads(client.get_object(Bucket=BUCKET, Key="runs/digits/metrics.json")
                         ["Body"].read())
    assert metrics["split"]["train"] + metrics["split"]["test"] == 30
    assert any(k.startswith("runs/digits/models/classifier/") for k in
               keys(client, "runs/digits/"))
    local = download_prefix(client, "runs/digits-predictions/", tmp_path / "predictions")
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["io"] == {"input": "spark", "output": "spark"}
    import pyarrow.parquet as pq

    rows = pq.read_table(local / "predictions").to_pylist()
    assert sorted(r["path"].rsplit("/", 2)[-2] for r in rows) == [str(d) for d in range(10)]
    assert all(0.0 < r["confidence"] <= 1.0 for r in rows)
    # every object the three jobs wrote through S3A, under the key they were given
    assert assert_encrypted(client, "runs/digits", key, BUCKET) == len(keys(client, "runs/digits"))


def test_the_three_jobs_run_on_s3a_with_exactly_the_printed_policy(s3a, weights_spec,
                                                                    tmp_path, monkeypatch):
    """moto with IAM enforced: featurize, train and predict through S3A as an IAM user
    holding only `python -m emr policy`'s document for those steps; without its output
    statements featurize stops at the write probe (exit 2) and writes nothing."""
    from moto.core.authorization import enable_iam_authentication

    from emr import policy, requests, upload
    from emr.settings import Settings
    from featurize.inputs.sample import write_sample

    _, _, endpoint = s3a
    s3, iam = boto3.client("s3"), boto3.client("iam")
    bucket = "iam-s3a"
    s3.create_bucket(Bucket=bucket)
    write_sample(str(tmp_path / "digits"), per_class=2, with_broken=False)
    write_sample(str(tmp_path / "new"), per_class=1, with_broken=False, offset=40)
    for folder, prefix in ((tmp_path / "digits", "in/"), (tmp_path / "new", "new/")):
        for path in sorted(folder.rglob("*.png")):
            s3.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
    settings = Settings(bucket=bucket, prefix="fz")
    weights = requests.weights_uri(settings, weights_spec)
    s3.upload_file(upload.local_weights_file(weights_spec), bucket, weights.split(f"{bucket}/", 1)[1])
    run_uri = f"s3://{bucket}/out/run1"
    doc = policy.node_policy(settings, ["featurize", "train", "predict"], requests.JobArgs(
        input=f"s3://{bucket}/in", output=run_uri, weights=weights_spec,
        predict_input=f"s3://{bucket}/new"))
    iam.create_user(UserName="s3a-nodes")
    keys = iam.create_access_key(UserName="s3a-nodes")["AccessKey"]
    iam.put_user_policy(UserName="s3a-nodes", PolicyName="p", PolicyDocument=json.dumps(doc))
    inputs_before = s3.list_objects_v2(Bucket=bucket, Prefix="in/")["Contents"]
    steps = [("featurize_images.py", "--input", f"s3://{bucket}/in", "--output", run_uri,
              "--weights", weights, "--pca-k", "4"),
             ("train_classifier.py", "--run", run_uri, "--test-fraction", "0.5",
              "--reg-param", "0.001", "--no-calibrate"),
             ("predict_images.py", "--run", run_uri, "--input", f"s3://{bucket}/new",
              "--output", f"{run_uri}-predictions")]
    # moto checks a signature by signing the request again with botocore's rules for
    # which headers count; AWS's Java SDK v1 (S3A) signs others, so every S3A request
    # would fail as SignatureDoesNotMatch. The access key still names the user, and the
    # policy is still enforced on every request: only the signature is taken as good.
    from moto.iam import access_control

    monkeypatch.setattr(access_control.S3IAMRequest, "check_signature", lambda self: None)
    from tests.refusing_proxy import RefusingProxy
    from tests.s3_iam import allowed, authorizations

    # through a proxy that records every request S3A and boto3 send
    with enable_iam_authentication(), RefusingProxy(endpoint, bucket, "none/") as proxy, \
            monkeypatch.context() as m:
        m.setenv("AWS_ENDPOINT_URL", proxy.url)
        for job, *args in steps:
            proc = s3a_submit(job, *args, endpoint=proxy.url, keys=keys)
            assert proc.returncode == 0, f"{job}: {proc.stdout[-3000:] + proc.stderr[-3000:]}"
    # moto ignores conditions: each request must also be allowed as S3 reads the policy.
    # The one refusal S3A meets and skips: deleting the directory marker above the output
    # (Hadoop's assumed_roles.md: such a marker "will not be deleted")
    checked = [a for method, path, source, deleted in proxy.authorized
               for a in authorizations(method, path, source, deleted)]
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= {
        a.action for a in checked}, checked
    refused = [a for a in checked if not allowed(doc, a)]
    assert all(a.action == "s3:DeleteObject" and a.resource.endswith("/") and
               run_uri.replace("s3://", "arn:aws:s3:::").startswith(a.resource)
               for a in refused), refused
    predicted = json.loads(s3.get_object(Bucket=bucket, Key="out/run1-predictions/manifest.json")
                           ["Body"].read())
    assert predicted["status"] == "complete" and predicted["counts"]["predicted"] == 10
    assert predicted["io"] == {"input": "spark", "output": "spark"}
    # without the output statements: refused before featurizing, nothing written
    doc["Statement"] = [st for st in doc["Statement"]
                        if st["Sid"] not in ("WriteRunDirectory", "ListUploadsIamS3a")]
    iam.put_user_policy(UserName="s3a-nodes", PolicyName="p", PolicyDocument=json.dumps(doc))
    run1 = keys_of(s3, bucket, "out/run1/")
    with enable_iam_authentication():
        proc = s3a_submit("featurize_images.py", "--input", f"s3://{bucket}/in", "--output",
                          f"s3://{bucket}/out/run1", "--overwrite", "--weights", weights,
                          endpoint=endpoint, keys=keys)
    log = proc.stdout + proc.stderr  # the job logs to stdout under spark-submit
    assert proc.returncode == 2, log[-3000:]
    assert f"writing under s3://{bucket}/out/run1 (a probe before the run)" in log
    assert "AccessDenied" in log and "access denied: the credentials in use need" in log
    assert "featurize:" not in log  # no progress line: nothing was featurized
    assert s3.list_objects_v2(Bucket=bucket, Prefix="in/")["Contents"] == inputs_before
    assert keys_of(s3, bucket, "out/run1/") == run1  # --overwrite deleted nothing either
