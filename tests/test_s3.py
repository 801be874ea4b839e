"""S3 input and output over real HTTP against moto's server (boto3 path: this pyspark has
no S3 filesystem), checked exactly as the local end-to-end test and against a local run
of the same images."""
from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from featurize.config import FeaturizeConfig
from featurize.encryption import Encryption
from featurize.errors import ConfigError
from featurize.extract.job import run
from featurize.storage import s3
from tests.helpers import assert_pca_model_reproduces, assert_same_features
from tests.test_job_e2e import ERRORS_SCHEMA, EXPECTED, FEATURES_SCHEMA, make_corpus

pytestmark = pytest.mark.spark

BUCKET = "featurize-test-images"


@pytest.fixture(scope="module")
def bucket(moto_endpoint, tmp_path_factory):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    corpus = make_corpus(tmp_path_factory.mktemp("s3corpus") / "images")
    for path in corpus.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, "in/" + path.relative_to(corpus).as_posix())
    return client, corpus


def download_prefix(client, prefix: str, dest: Path, bucket: str = BUCKET) -> Path:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
    return dest


@pytest.fixture(scope="module")
def kms_key(moto_endpoint) -> str:
    return boto3.client("kms").create_key(Description="featurize runs")["KeyMetadata"]["Arn"]


def assert_encrypted(client, prefix: str, key_arn: str, bucket: str = BUCKET) -> int:
    """Every object under ``prefix`` reads back as SSE-KMS with ``key_arn``; returns how
    many there are."""
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
    assert keys, f"nothing under {prefix}"
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == (
            "aws:kms", key_arn), key
    return len(keys)


#: what s3_run's writes asked for (``object_writes``), filled by the fixture
S3_RUN_WRITES: list[tuple[str, dict[str, str]]] = []


def object_writes(encryption: list[tuple[str, str, dict[str, str]]], prefix: str
                  ) -> list[tuple[str, dict[str, str]]]:
    """The requests (recorded by RefusingProxy) that create an object under ``prefix``
    (PutObject, CreateMultipartUpload: the two that carry SSE-S3/SSE-KMS headers; a part
    upload or a completion inherits the upload's), as ``(path, its SSE headers)``."""
    creates = []
    for method, path, sse in encryption:
        key, _, query = path.partition("?")
        if not key.startswith(f"/{BUCKET}/{prefix}"):
            continue
        if (method == "PUT" and "partNumber=" not in query) or (
                method == "POST" and query.split("&")[0] in ("uploads", "uploads=")):
            creates.append((key, sse))
    return creates


@pytest.fixture(scope="module")
def s3_run(spark, bucket, weights_spec, kms_key, tmp_path_factory):
    """The corpus from S3 to S3 (boto3 both ways), every output object under a KMS key,
    through a proxy that records the encryption each write asked for."""
    from tests.refusing_proxy import RefusingProxy

    client, corpus = bucket
    with RefusingProxy(os.environ["AWS_ENDPOINT_URL"], BUCKET, "runs/r1") as proxy, \
            pytest.MonkeyPatch.context() as m:
        m.setenv("AWS_ENDPOINT_URL", proxy.url)
        manifest = run(spark, FeaturizeConfig(
            input=f"s3://{BUCKET}/in", output=f"s3://{BUCKET}/runs/r1", weights=weights_spec,
            pca_k=3, batch_size=4, encryption=Encryption("aws:kms", kms_key)))
    S3_RUN_WRITES[:] = object_writes(proxy.encryption, "runs/r1/")
    local = download_prefix(client, "runs/r1/", tmp_path_factory.mktemp("fromS3"))
    reference = tmp_path_factory.mktemp("local") / "run"
    run(spark, FeaturizeConfig(input=str(corpus), output=str(reference), weights=weights_spec,
                               pca_k=3, batch_size=4))
    return manifest, local, reference


def assert_corpus_outcomes(spark, local: Path, prefix: str, io: str,
                           model_images: int = 9) -> dict:
    """The run of make_corpus's images under ``prefix``, downloaded to ``local``: every
    file's outcome, the schemas and the counts, exactly; returns its manifest.
    ``model_images``: 0 for a resume that featurized nothing."""
    on_s3 = json.loads((local / "manifest.json").read_text())
    assert on_s3["status"] == "complete" and on_s3["io"] == {"input": io, "output": io}
    counts = on_s3["counts"]
    assert counts["inputs"] == len(EXPECTED) and counts["model_images"] == model_images
    assert counts["featurized"] == 9 and counts["failed"] == 3
    assert counts["failed_by_reason"] == {"empty": 1, "not_an_image": 1, "truncated": 1}
    # cats/notes.txt, dogs/pic.gif, dogs/jpg (no extension); dogs/.hidden.jpg is hidden
    assert counts["skipped_by_extension"] == {"(none)": 1, ".gif": 1, ".txt": 1}
    feats = spark.read.parquet(str(local / "features"))
    errs = spark.read.parquet(str(local / "errors"))
    assert feats.schema.simpleString() == FEATURES_SCHEMA
    assert errs.schema.simpleString() == ERRORS_SCHEMA
    got = [(r["path"], r["label"]) for r in feats.collect()]
    assert sorted(got) == sorted((f"{prefix}{rel}", label) for rel, (label, reason)
                                 in EXPECTED.items() if reason is None)  # each file once
    got_errors = {r["path"]: (r["label"], r["error"]) for r in errs.collect()}
    assert got_errors == {f"{prefix}{rel}": (label, reason)
                          for rel, (label, reason) in EXPECTED.items() if reason}
    pca = spark.read.parquet(str(local / "pca"))
    assert pca.count() == 9 and len(pca.first()["pca_features"]) == 3
    assert assert_pca_model_reproduces(spark, local) == 9
    assert not list(local.rglob("*.crc"))
    return on_s3


def test_s3_run_matches_expectations_exactly(spark, s3_run):
    manifest, local, _ = s3_run
    on_s3 = assert_corpus_outcomes(spark, local, f"s3://{BUCKET}/in/", "boto3")
    assert manifest["counts"] == on_s3["counts"]


def test_every_object_of_an_s3_run_is_encrypted_with_the_given_key(bucket, s3_run, kms_key):
    client, _ = bucket
    manifest, local, _ = s3_run
    written = sum(1 for p in local.rglob("*") if p.is_file())
    assert assert_encrypted(client, "runs/r1/", kms_key) == written
    assert manifest["config"]["encryption"] == {"algorithm": "aws:kms", "kms_key_id": kms_key}
    # every write asked for it, the write probe (made before any work) first of all
    asked = {"x-amz-server-side-encryption": "aws:kms",
             "x-amz-server-side-encryption-aws-kms-key-id": kms_key}
    assert S3_RUN_WRITES[0][0].endswith("/runs/r1/_featurize_write_probe")
    assert len(S3_RUN_WRITES) >= written and all(sse == asked for _, sse in S3_RUN_WRITES), [
        w for w in S3_RUN_WRITES if w[1] != asked]


@pytest.mark.parametrize("sse", [None, "AES256"], ids=["no-sse", "AES256"])
def test_sse_s3_or_nothing_is_what_every_write_asks_for(spark, bucket, weights_spec,
                                                        monkeypatch, sse):
    """--sse AES256: every write (the probe first) asks for SSE-S3 and every object reads
    back so. No --sse: no write asks for any encryption (the bucket's default applies)."""
    from tests.refusing_proxy import RefusingProxy

    client, _ = bucket
    prefix = f"runs/sse-{sse or 'none'}/"
    with RefusingProxy(os.environ["AWS_ENDPOINT_URL"], BUCKET, prefix) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        manifest = run(spark, FeaturizeConfig(
            input=f"s3://{BUCKET}/in", output=f"s3://{BUCKET}/{prefix.rstrip('/')}",
            weights=weights_spec, pca_k=2, encryption=Encryption(sse)))
    assert manifest["status"] == "complete"
    writes = object_writes(proxy.encryption, prefix)
    keys = s3.list_keys(client, f"s3://{BUCKET}/{prefix}")
    assert writes[0][0].endswith("/_featurize_write_probe") and len(writes) > len(keys) > 10
    expected = {"x-amz-server-side-encryption": sse} if sse else {}
    assert all(headers == expected for _, headers in writes), writes
    if sse:
        for key in keys:
            head = client.head_object(Bucket=BUCKET, Key=key)
            assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == (sse, None)


def test_s3_features_equal_the_local_run(spark, s3_run):
    _, local, reference = s3_run
    assert_same_features(spark, local, f"s3://{BUCKET}/in/", reference, "/images/", 9)


def test_weights_from_s3(spark, bucket, resolved_weights, tmp_path):
    from featurize.model.backbone import build_backbone

    client, _ = bucket
    model = build_backbone()
    model.set_weights(resolved_weights.arrays)
    local = tmp_path / "w.weights.h5"
    model.save_weights(str(local))
    client.upload_file(str(local), BUCKET, "weights/w.weights.h5")
    out = tmp_path / "run"
    manifest = run(spark, FeaturizeConfig(
        input=f"s3://{BUCKET}/in/dogs", output=str(out),
        weights=f"s3://{BUCKET}/weights/w.weights.h5", pca_k=2))
    w = manifest["weights"]
    assert w["source"] == "file" and w["path"] == f"s3://{BUCKET}/weights/w.weights.h5"
    from featurize.model.weights import sha256_file

    assert w["sha256"] == sha256_file(str(local))
    assert w["arrays_sha256"] == resolved_weights.digest
    assert manifest["io"] == {"input": "boto3", "output": "spark"}


def test_output_prefix_in_use_needs_overwrite(spark, bucket, s3_run, weights_spec):
    with pytest.raises(ConfigError, match="--overwrite"):
        run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in", output=f"s3://{BUCKET}/runs/r1",
                                   weights=weights_spec))


@pytest.mark.parametrize("uri, message", [
    ("s3://no-such-bucket-here/in", "the bucket does not exist"),
    (f"s3://{BUCKET}/nothing/here", "no objects under this prefix"),
])
def test_input_problems_are_explained(spark, bucket, tmp_path, uri, message):
    with pytest.raises(ConfigError, match=message):
        run(spark, FeaturizeConfig(input=uri, output=str(tmp_path / "o"), weights="random"))
    assert not (tmp_path / "o").exists()


def test_missing_credentials_are_explained(spark, bucket, tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="no AWS credentials found"):
        run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in", output=str(tmp_path / "o"),
                                   weights="random"))


@pytest.mark.parametrize("code, message", [
    ("NoSuchBucket", "does not exist"),
    ("NoSuchKey", "not found"),
    ("404", "not found"),
    ("AccessDenied", "access denied"),
    ("AllAccessDisabled", "access denied"),
    ("InvalidAccessKeyId", "credentials were rejected"),
    ("ExpiredToken", "credentials were rejected"),
    ("SlowDown", "throttled by AWS"),
    ("InternalError", "listing s3://b/p: ListObjectsV2 failed: InternalError: x"),
])
def test_client_errors_become_messages(code, message):
    exc = ClientError({"Error": {"Code": code, "Message": "x"}}, "ListObjectsV2")
    assert message in str(s3.explain(exc, "listing s3://b/p"))


def test_s3_errors_before_and_after_the_run_have_their_own_exit_status():
    from featurize.errors import RunFailure, S3AccessError, S3WriteError, UsageError

    exc = ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, "PutObject")
    read, written = s3.explain(exc, "listing"), s3.explain(exc, "uploading", S3WriteError)
    assert isinstance(read, S3AccessError) and isinstance(read, UsageError)
    assert read.exit_status == 2
    assert isinstance(written, RunFailure) and not isinstance(written, UsageError)
    assert written.exit_status == 1


def test_no_credentials_becomes_a_message():
    assert "no AWS credentials found" in str(s3.explain(NoCredentialsError(), "x"))


def test_bucket_root_output_is_refused(spark):
    from featurize.storage.output import RunOutput

    with pytest.raises(ConfigError, match="not a bucket root"):
        RunOutput(spark, f"s3://{BUCKET}", overwrite=True)


def test_other_schemes_without_a_filesystem_fail_with_what_to_add(spark, tmp_path):
    with pytest.raises(ConfigError, match="add a Hadoop FileSystem implementation for 'gs'"):
        run(spark, FeaturizeConfig(input="gs://bucket/x", output=str(tmp_path / "o")))


def test_small_files_are_read_from_s3_and_from_spark_filesystems(spark, bucket, tmp_path):
    """--split-file (and any small file) comes through boto3 for s3:// here, through
    Spark's filesystem for local paths (and for s3:// on EMR)."""
    from featurize.storage import filesystem

    client, _ = bucket
    client.put_object(Bucket=BUCKET, Key="splits/split.csv", Body=b"Training,a,1.jpg\n")
    assert filesystem.fetch_text(spark, f"s3://{BUCKET}/splits/split.csv",
                              "--split-file") == "Training,a,1.jpg\n"
    (tmp_path / "s.csv").write_text("Test,b,2.jpg\n")
    assert filesystem.fetch_text(spark, str(tmp_path / "s.csv"), "--split-file") == "Test,b,2.jpg\n"
    with pytest.raises(ConfigError, match="--split-file .*: no such file"):
        filesystem.fetch_text(spark, str(tmp_path / "absent.csv"), "--split-file")
    with pytest.raises(ConfigError, match="not found"):
        filesystem.fetch_text(spark, f"s3://{BUCKET}/splits/absent.csv", "--split-file")


def test_s3a_without_hadoop_aws_is_s3_through_boto3(spark):
    """pyspark's Hadoop config maps s3a:// to a class it does not bundle; that is "no
    filesystem", not a crash."""
    from featurize.storage import filesystem

    assert filesystem.io_mode(spark, f"s3a://{BUCKET}/in", "--input") == "boto3"
    with pytest.raises(ConfigError, match="no filesystem for the 'gs://' scheme"):
        filesystem.io_mode(spark, "gs://b/in", "--input")


def test_resume_refuses_another_encryption(spark, tmp_path):
    """One run, one encryption: the manifest's config.encryption must match."""
    from featurize.extract.resume import previous_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "config": {
        "encryption": {"algorithm": "aws:kms", "kms_key_id": "alias/runs"}}}))
    common = dict(input=str(tmp_path), output=str(run_dir), resume=True)
    with pytest.raises(ConfigError, match="written with --sse aws:kms --sse-kms-key-id "
                                          "alias/runs; resume with the same"):
        previous_run(spark, FeaturizeConfig(**common))
    assert previous_run(spark, FeaturizeConfig(
        **common, encryption=Encryption("aws:kms", "alias/runs")))["status"] == "complete"


@pytest.mark.integration
def test_a_failed_upload_keeps_the_run_and_resume_finishes_it(spark, bucket, weights_spec,
                                                              tmp_path, monkeypatch):
    """Over real HTTP, through a proxy in front of moto that answers 503 SlowDown to the
    output prefix's writes: a few refusals are absorbed by the retries; refusals that
    last fail the run with exit 1, keep it staged and print the command that finishes it;
    that command, once S3 takes writes again, uploads it without featurizing anything."""
    import shlex
    import subprocess

    from featurize.storage.output import staging_dir
    from tests.refusing_proxy import RefusingProxy
    from tests.test_cli import JOB, env, spark_submit

    client, _ = bucket
    out = f"s3://{BUCKET}/runs/upload"
    monkeypatch.setenv("FEATURIZE_CACHE", str(tmp_path / "cache"))  # for staging_dir here
    with RefusingProxy(os.environ["AWS_ENDPOINT_URL"], BUCKET, "runs/upload") as proxy:
        e = {**env(), "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2",
             "FEATURIZE_UPLOAD_BACKOFF_SECONDS": "0.05"}

        def submit(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([spark_submit(), "--master", "local[2]", *argv],
                                  capture_output=True, text=True, env=e, timeout=600,
                                  cwd=tmp_path)

        # refusals for a while: botocore's 2 attempts per call and the whole-file retries
        # absorb them (in this process: the driver uploads, through the proxy)
        proxy.refusals = 5
        with monkeypatch.context() as m:
            m.setenv("AWS_ENDPOINT_URL", proxy.url)
            m.setenv("AWS_MAX_ATTEMPTS", "2")
            m.setenv("FEATURIZE_UPLOAD_BACKOFF_SECONDS", "0.05")
            run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in", output=f"{out}-transient",
                                       weights=weights_spec, pca_k=3, batch_size=4))
        assert proxy.refused == 5
        # refusals that last: exit 1, the run kept, nothing that looks finished in S3
        proxy.refusals, proxy.refused = -1, 0
        failed = submit(JOB, "--input", f"s3://{BUCKET}/in", "--output", out, "--weights",
                        weights_spec, "--pca-k", "3", "--batch-size", "4")
        log = failed.stdout + failed.stderr
        assert failed.returncode == 1, log[-3000:]
        staged = staging_dir(out)
        assert str(staged).startswith(str(tmp_path / "cache" / "staging"))
        assert f"run failed: the run is complete, but its upload to {out} failed" in log
        assert "SlowDown" in log and "Traceback" not in log
        assert f"Nothing is lost: the run is kept in {staged}." in log
        assert json.loads((staged / "manifest.json").read_text())["status"] == "complete"
        assert "manifest.json" not in {k.rsplit("/", 1)[-1] for k in s3.list_keys(client, out)}
        command = log.split("This command resumes it (nothing already featurized is "
                            "featurized again) and uploads it: ", 1)[1].splitlines()[0]
        argv = shlex.split(command)
        assert argv[0] == "spark-submit" and argv[-1] == "--resume"
        # S3 takes writes again: the printed command finishes the job
        proxy.refusals = 0
        finished = submit(*argv[1:])
        assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert not staged.exists()
    local = download_prefix(client, "runs/upload/", tmp_path / "fromS3")
    manifest = assert_corpus_outcomes(spark, local, f"s3://{BUCKET}/in/", "boto3",
                                      model_images=0)
    assert manifest["resume"]["kept_features"] == manifest["counts"]["featurized"]
    transient = download_prefix(client, "runs/upload-transient/", tmp_path / "transient")
    assert assert_corpus_outcomes(spark, transient, f"s3://{BUCKET}/in/", "boto3")[
        "counts"] == manifest["counts"] | {"model_images": manifest["counts"]["featurized"]}


def test_a_failed_run_uploads_its_failed_manifest_last(spark, bucket, weights_spec,
                                                       monkeypatch):
    """A run that fails after it began (the counts guard, forced) still reaches S3: every
    file it wrote, then manifest.json saying failed, last of all PUTs."""
    from featurize.errors import JobError
    from featurize.extract import job as job_module
    from tests.refusing_proxy import RefusingProxy

    client, _ = bucket
    written = job_module.write_errors
    monkeypatch.setattr(job_module, "write_errors", lambda *a, **k: (written(*a, **k)[0], {}))
    with RefusingProxy(os.environ["AWS_ENDPOINT_URL"], BUCKET, "runs/failing") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with pytest.raises(JobError, match="inputs were listed but"):
            run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in",
                                       output=f"s3://{BUCKET}/runs/failing",
                                       weights=weights_spec, pca_k=3))
    puts = [path for method, path in proxy.requests
            if method == "PUT" and "/runs/failing/" in path and "_featurize_write_probe" not in path]
    assert puts[-1].endswith("/runs/failing/manifest.json") and len(puts) > 1
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key="runs/failing/manifest.json")
                          ["Body"].read())
    assert manifest["status"] == "failed" and manifest["error"].startswith("JobError")


def test_overwrite_on_s3_leaves_no_old_key(spark, bucket, weights_spec, tmp_path):
    """boto3 path: a run over a prefix that holds another, bigger run."""
    client, corpus = bucket
    out = f"s3://{BUCKET}/runs/overwritten"
    run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in", output=out, weights=weights_spec,
                               pca_k=2))
    before = set(s3.list_keys(client, out))
    client.put_object(Bucket=BUCKET, Key="runs/overwritten/features/stray.parquet", Body=b"x")
    manifest = run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in/dogs", output=out,
                                          weights=weights_spec, pca_k=2, overwrite=True))
    after = set(s3.list_keys(client, out))
    assert "runs/overwritten/features/stray.parquet" not in after
    # parquet part files carry a fresh UUID each run: none of the old ones survive
    assert not {k for k in after & before if k.endswith(".parquet")}
    assert any(k.endswith(".parquet") for k in before)
    local = download_prefix(client, "runs/overwritten/", tmp_path / "overwritten")
    assert spark.read.parquet(str(local / "features")).count() == manifest["counts"]["featurized"]
    assert manifest["input"]["uri"].endswith("/in/dogs")


def test_rejected_credentials_over_http_are_explained(spark, bucket, monkeypatch):
    """moto with IAM enforced: an access key it does not know is refused before any work,
    with the message docs/cli.md promises."""
    from moto.core.authorization import enable_iam_authentication

    from featurize.errors import S3AccessError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNFEATURIZE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-known-secret")
    with enable_iam_authentication(), pytest.raises(S3AccessError) as refused:
        run(spark, FeaturizeConfig(input=f"s3://{BUCKET}/in", output=f"s3://{BUCKET}/runs/x",
                                   weights="random"))
    assert refused.value.exit_status == 2
    assert "InvalidAccessKeyId" in str(refused.value)
    assert "the AWS credentials were rejected: refresh or fix them" in str(refused.value)
