"""No credential in anything the project writes or prints.

The three jobs run as ``spark-submit`` processes against moto's S3 (real HTTP) with
recognisable fake credentials in the environment, a session token among them: a
featurize from S3 with broken images (error rows, their messages), train, a predict to
S3, a run that fails on a missing bucket, and URIs with credentials in them. Then every
byte they wrote (the run directory, the objects in S3) and every line they printed is
searched for each secret.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO
from tests.test_cli import env, spark_submit

pytestmark = [pytest.mark.spark, pytest.mark.integration]

ACCESS_KEY = "AKIAFEATURIZEFAKE7Q2X"
SECRET_KEY = "fAkeSecret/Featurize+0123456789abcdefGHIJ"
SESSION_TOKEN = "FwoGZXIvYXdzEFakeFeaturizeSessionToken0123456789"
URI_PASSWORD = "uriPassw0rdFeaturize"
SECRETS = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, URI_PASSWORD)
BUCKET = "featurize-secrets"


def job(script: str, *args: str, cwd: Path, spark: bool = True) -> subprocess.CompletedProcess[str]:
    """A job with the fake credentials; ``spark=False``: as plain Python, for a refusal
    that comes before any Spark (no JVM to start)."""
    e = {**env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
         "AWS_SESSION_TOKEN": SESSION_TOKEN}
    launcher = ([spark_submit(), "--master", "local[2]", "--driver-memory", "2g"] if spark
                else [sys.executable])
    return subprocess.run([*launcher, str(REPO / "jobs" / script), *args],
                          capture_output=True, text=True, env=e, timeout=600, cwd=cwd)


def test_no_output_log_or_message_carries_a_credential(moto_endpoint, weights_spec, tmp_path):
    from featurize.inputs.sample import write_sample

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    write_sample(str(tmp_path / "digits"), per_class=2, with_broken=True)
    write_sample(str(tmp_path / "new"), per_class=1, with_broken=False, offset=40)
    for folder, prefix in ((tmp_path / "digits", "in/"), (tmp_path / "new", "new/")):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            s3.upload_file(str(path), BUCKET, prefix + path.relative_to(folder).as_posix())
    run = tmp_path / "run"
    runs = {
        "featurize": job("featurize_images.py", "--input", f"s3://{BUCKET}/in", "--output",
                         str(run), "--weights", weights_spec, "--pca-k", "4", cwd=tmp_path),
        "train": job("train_classifier.py", "--run", str(run), "--test-fraction", "0.5",
                     "--reg-param", "0.001", "--no-calibrate",
                     cwd=tmp_path),
        "predict": job("predict_images.py", "--run", str(run), "--input",
                       f"s3://{BUCKET}/new", "--output", f"s3://{BUCKET}/predictions",
                       "--sse", "AES256", cwd=tmp_path),
        "missing bucket": job("featurize_images.py", "--input", f"s3://{BUCKET}/in",
                              "--output", "s3://featurize-no-such-bucket/run", "--weights",
                              weights_spec, cwd=tmp_path),
        "key in the input URI": job(
            "featurize_images.py", "--input", f"s3://{ACCESS_KEY}:{SECRET_KEY}@{BUCKET}/in",
            "--output", str(tmp_path / "other"), cwd=tmp_path, spark=False),
        "password in the weights URI": job(
            "featurize_images.py", "--input", f"s3://{BUCKET}/in", "--output",
            str(tmp_path / "other"), "--weights",
            f"https://someone:{URI_PASSWORD}@weights.example.com/w.h5", cwd=tmp_path,
            spark=False),
    }
    status = {what: p.returncode for what, p in runs.items()}
    assert status == {"featurize": 0, "train": 0, "predict": 0, "missing bucket": 2,
                      "key in the input URI": 2, "password in the weights URI": 2}, {
        what: p.stderr[-2000:] for what, p in runs.items()}
    printed = {what: p.stdout + p.stderr for what, p in runs.items()}
    assert "NoSuchBucket" in printed["missing bucket"]
    assert f"--input s3://***@{BUCKET}/in: the URI carries credentials" in \
        printed["key in the input URI"]
    assert "--weights https://***@weights.example.com/w.h5" in \
        printed["password in the weights URI"]
    assert not (tmp_path / "other").exists()
    # what they wrote: the run directory here, and everything in the bucket
    written = {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert any(name.endswith("manifest.json") for name in written)
    assert any("/errors/" in name for name in written)  # the broken images' messages
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(("in/", "new/")):
                written[f"s3://{BUCKET}/{obj['Key']}"] = s3.get_object(
                    Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    assert f"s3://{BUCKET}/predictions/manifest.json" in written
    for secret in SECRETS:
        assert [what for what, text in printed.items() if secret in text] == [], secret
        assert [name for name, data in written.items() if secret.encode() in data] == [], \
            secret
