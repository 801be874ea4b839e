"""Reliability: a generated corpus of every kind of input a real bucket holds, with the
exact outcome expected of each file; configuration failures; --resume."""
from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.extract.job import run
from featurize.inputs.listing import LISTING_JOB_GROUP
from tests.helpers import image_bytes, pattern_image, write

pytestmark = pytest.mark.spark

MAX_FILE_BYTES = 1_000_000
SPARSE_BYTES = 3 * 1024 ** 3  # over Java's 2 GiB array limit: reading it would fail the job


def _png(img: Image.Image) -> bytes:
    return image_bytes(img, "PNG")


def _rgb_png_of(data: bytes, transpose=None) -> bytes:
    """The plain 8-bit RGB equivalent of an image file, made independently of the
    package: Pillow decode, optional transpose, RGB, PNG (lossless)."""
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGB")
    return _png(img.transpose(transpose) if transpose is not None else img)


def _exif_rotated_jpeg(base: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return image_bytes(base, "JPEG", quality=95, exif=exif.tobytes())


def _bomb_png(width: int, height: int) -> bytes:
    """A well-formed PNG header claiming width x height, with a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 256)) + chunk(b"IEND", b""))


def build_corpus(root: Path) -> dict:
    """Write the corpus; return {relative path: expected reason or None}, the pairs
    (odd image, its plain RGB equivalent) and the files the extension filter skips."""
    expected: dict[str, str | None] = {}
    pairs: dict[str, str] = {}

    def add(rel: str, data: bytes, reason: str | None = None) -> None:
        write(root / rel, data)
        expected[rel] = reason

    def odd(name: str, data: bytes, reference: bytes) -> None:
        add(f"odd/{name}", data)
        ref = f"ref/{Path(name).stem}.png"
        add(ref, reference)
        pairs[f"odd/{name}"] = ref

    base = pattern_image(11, (120, 90))
    gray = base.convert("L")
    odd("gray.png", _png(gray), _png(Image.merge("RGB", (gray, gray, gray))))
    cmyk = image_bytes(base.convert("CMYK"), "JPEG", quality=95)
    odd("cmyk.jpg", cmyk, _rgb_png_of(cmyk))
    rgba = base.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    odd("rgba.png", _png(rgba), _png(base))
    la = gray.copy()
    la.putalpha(128)
    odd("la.png", _png(la), _png(Image.merge("RGB", (gray, gray, gray))))
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    odd("palette.png", _png(palette), _png(palette.convert("RGB")))
    arr16 = np.asarray(gray, dtype=np.uint16) * 257  # full 16-bit range, same picture
    sixteen = Image.fromarray(arr16)
    assert sixteen.mode.startswith("I;16")
    odd("sixteen.png", _png(sixteen),
        _png(Image.merge("RGB", (gray, gray, gray))))
    rotated = _exif_rotated_jpeg(base)
    odd("exif_rotated.jpg", rotated, _rgb_png_of(rotated, Image.Transpose.ROTATE_270))
    tiny = image_bytes(pattern_image(12, (3, 3)), "JPEG", quality=95)
    odd("tiny.JPG", tiny, _rgb_png_of(tiny))
    wide = image_bytes(pattern_image(13, (2000, 20)), "JPEG", quality=95)
    odd("wide.jpg", wide, _rgb_png_of(wide))
    odd("naïve café 01.JPEG", image_bytes(pattern_image(14), "JPEG"),
        _rgb_png_of(image_bytes(pattern_image(14), "JPEG")))
    add("plain/deep/er/nested.png", _png(pattern_image(15)))
    add("plain/UPPER.PNG", _png(pattern_image(16)))
    for i in range(4):
        add(f"plain/good{i}.jpg", image_bytes(pattern_image(20 + i), "JPEG"))

    good_jpeg = image_bytes(pattern_image(30), "JPEG")
    good_png = _png(pattern_image(31))
    add("bad/truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "truncated")
    add("bad/header_only.png", good_png[:33], "truncated")  # signature + IHDR, no data
    add("bad/zero.jpg", b"", "empty")
    add("bad/random.png", bytes(np.random.default_rng(5).integers(0, 256, 5000, np.uint8)),
        "not_an_image")
    add("bad/text.jpg", b"<html><body>404 Not Found</body></html>\n" * 20, "not_an_image")
    add("bad/bomb.png", _bomb_png(100_000, 100_000), "too_many_pixels")
    big = root / "bad" / "huge.jpg"
    with open(big, "wb") as fh:  # sparse: 3 GiB of length, no disk
        fh.truncate(SPARSE_BYTES)
    expected["bad/huge.jpg"] = "too_large"

    skipped = {"a.webp": b"RIFF", "b.tif": b"II*\x00", "c.HEIC": b"x", "d.gif": b"GIF89a",
               "README": b"notes"}
    for name, data in skipped.items():
        write(root / "other" / name, data)
    write(root / "other" / ".hidden.jpg", good_jpeg)   # hidden: not an input at all
    write(root / "_SUCCESS", b"")
    return {"expected": expected, "pairs": pairs,
            "skipped": {".webp": 1, ".tif": 1, ".heic": 1, ".gif": 1, "(none)": 1}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability") / "images"
    return root, build_corpus(root)


@pytest.fixture(scope="module")
def corpus_run(spark, corpus, weights_spec, tmp_path_factory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("reliability_runs") / "run"
    manifest = run(spark, FeaturizeConfig(input=str(root), output=str(out), weights=weights_spec,
                                          pca_k=3, batch_size=4,
                                          max_file_bytes=MAX_FILE_BYTES))
    return out, manifest


def _uri(root: Path, rel: str) -> str:
    return "file:" + str(root / rel)


def test_every_file_has_exactly_its_expected_outcome(spark, corpus, corpus_run):
    root, spec = corpus
    out, manifest = corpus_run
    features = spark.read.parquet(str(out / "features")).select("path", "label").collect()
    errors = spark.read.parquet(str(out / "errors")).collect()
    feature_paths = [r["path"] for r in features]
    error_paths = [r["path"] for r in errors]
    assert len(feature_paths) == len(set(feature_paths))
    assert len(error_paths) == len(set(error_paths))
    assert not set(feature_paths) & set(error_paths)
    expected = spec["expected"]
    assert set(feature_paths) == {_uri(root, r) for r, why in expected.items() if why is None}
    assert {r["path"]: r["error"] for r in errors} == {
        _uri(root, r): why for r, why in expected.items() if why}
    assert all(r["detail"] for r in errors)
    huge = next(r for r in errors if r["error"] == "too_large")
    assert huge["length"] == SPARSE_BYTES and huge["label"] == "bad"
    assert {r["path"]: r["label"] for r in features}[_uri(root, "plain/deep/er/nested.png")] == "er"

    counts = manifest["counts"]
    assert counts["inputs"] == len(expected) == 33
    assert counts["featurized"] == 26 and counts["failed"] == 7
    assert counts["failed_by_reason"] == {"empty": 1, "not_an_image": 2, "too_large": 1,
                                          "too_many_pixels": 1, "truncated": 2}
    assert counts["skipped_by_extension"] == spec["skipped"]
    assert json.loads((out / "manifest.json").read_text())["counts"] == counts


def test_odd_images_match_their_plain_rgb_equivalents(spark, corpus, corpus_run):
    root, spec = corpus
    out, _ = corpus_run
    rows = {r["path"]: np.asarray(r["features"], dtype=np.float32)
            for r in spark.read.parquet(str(out / "features")).collect()}
    assert len(spec["pairs"]) == 10
    for odd, ref in spec["pairs"].items():
        assert (root / odd).read_bytes() != (root / ref).read_bytes()
        a, b = rows[_uri(root, odd)], rows[_uri(root, ref)]
        err = np.abs(a - b).max()
        assert err <= 1e-4 * np.abs(b).max(), f"{odd}: max|a-b| = {err}"
    # and the pairs are not all alike: the comparison can fail
    gray, wide = rows[_uri(root, "ref/gray.png")], rows[_uri(root, "ref/wide.png")]
    assert np.abs(gray - wide).max() > 1e-2 * np.abs(gray).max()


# --- configuration failures: before any Spark work, with what to change -----------------

def test_config_failures_say_what_to_change(spark, corpus, corpus_run, weights_spec, tmp_path):
    root, _ = corpus
    out, _ = corpus_run
    tracker = spark.sparkContext.statusTracker()
    # job ids only grow; the tracker forgets the oldest (100 at a time past 1,000 jobs),
    # so what counts is the jobs after the last one seen now
    last = max(tracker.getJobIdsForGroup(None) + tracker.getJobIdsForGroup(
        LISTING_JOB_GROUP), default=-1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no files ending in .jpg, .jpeg, .png"):
        run(spark, FeaturizeConfig(input=str(empty), output=str(tmp_path / "o1"),
                                   weights="random"))
    with pytest.raises(ConfigError, match=r"it holds 5 other file\(s\): 1 \(none\), 1 \.gif, "
                                          r"1 \.heic, 1 \.tif, 1 \.webp"):
        run(spark, FeaturizeConfig(input=str(root / "other"), output=str(tmp_path / "o2"),
                                   weights="random"))
    with pytest.raises(ConfigError, match="pass --overwrite to replace it, --resume to "):
        run(spark, FeaturizeConfig(input=str(root), output=str(out), weights=weights_spec))
    with pytest.raises(ConfigError, match="--overwrite and --resume contradict"):
        FeaturizeConfig(input=str(root), output=str(out), overwrite=True, resume=True)
    with pytest.raises(ConfigError, match="--max-file-bytes -1"):
        FeaturizeConfig(input=str(root), output=str(out), max_file_bytes=-1)
    not_a_run = tmp_path / "not_a_run"
    write(not_a_run / "notes.txt", b"mine")
    with pytest.raises(ConfigError, match="holds files but no manifest.json"):
        run(spark, FeaturizeConfig(input=str(root), output=str(not_a_run), weights="random",
                                   resume=True))
    with pytest.raises(ConfigError, match="that run used --max-file-bytes 1000000, this one "
                                          "2000000"):
        run(spark, FeaturizeConfig(input=str(root), output=str(out), weights=weights_spec,
                                   resume=True, max_file_bytes=2_000_000))
    with pytest.raises(ConfigError, match="--pca-k 40 is larger than the 33 input images"):
        run(spark, FeaturizeConfig(input=str(root), output=str(tmp_path / "o3"),
                                   weights="random", pca_k=40))
    # all of the above failed before Spark ran any job but the listing's metadata scans
    # (no content read), which the empty-folder, other-files and --pca-k cases needed
    assert [j for j in tracker.getJobIdsForGroup(None) if j > last] == []
    assert len([j for j in tracker.getJobIdsForGroup(LISTING_JOB_GROUP) if j > last]) >= 3
    with pytest.raises(ConfigError, match="made with another weights"):
        run(spark, FeaturizeConfig(input=str(root), output=str(out), weights="random",
                                   resume=True, max_file_bytes=MAX_FILE_BYTES))
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert (not_a_run / "notes.txt").read_bytes() == b"mine"


def test_no_limit_still_stops_at_what_binaryfile_can_hold(spark, weights_spec, tmp_path):
    images = tmp_path / "images"
    write(images / "a" / "ok.jpg", image_bytes(pattern_image(3), "JPEG"))
    with open(images / "a" / "huge.png", "wb") as fh:
        fh.truncate(SPARSE_BYTES)
    out = tmp_path / "run"
    manifest = run(spark, FeaturizeConfig(input=str(images), output=str(out), pca_k=1,
                                          weights=weights_spec, max_file_bytes=0))
    assert manifest["counts"]["failed_by_reason"] == {"too_large": 1}
    [row] = spark.read.parquet(str(out / "errors")).collect()
    assert row["length"] == SPARSE_BYTES
    assert "more than Spark's binaryFile reader can hold (2147483647 bytes)" in row["detail"]


def test_resume_into_s3_without_a_filesystem_or_staged_run_is_refused(
        spark, moto_endpoint, corpus, tmp_path, monkeypatch):
    from featurize.storage.output import staging_dir

    monkeypatch.setenv("FEATURIZE_CACHE", str(tmp_path / "cache"))
    root, _ = corpus
    with pytest.raises(ConfigError, match="--resume s3://bucket/run: this Spark has no "
                                          "filesystem for s3://, so a run is resumed from "
                                          "the copy it keeps in .*, and there is none"):
        run(spark, FeaturizeConfig(input=str(root), output="s3://bucket/run", weights="random",
                                   resume=True))
    assert staging_dir("s3://bucket/run") == staging_dir("s3://bucket/run/")
    assert staging_dir("s3://bucket/run").parent == tmp_path / "cache" / "staging"


# --- --resume ------------------------------------------------------------------------------

def _images(root: Path, n_per_class: int, classes=("a", "b"), seed0: int = 0) -> list[Path]:
    files = []
    for c, label in enumerate(classes):
        for i in range(n_per_class):
            files.append(write(root / label / f"{label}{i:03d}.jpg",
                               image_bytes(pattern_image(seed0 + 100 * c + i), "JPEG")))
    return files


def _features(spark, run_dir: Path) -> dict[str, np.ndarray]:
    rows = spark.read.parquet(str(run_dir / "features")).collect()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "an input appears twice in features/"
    return {r["path"]: np.asarray(r["features"], dtype=np.float32) for r in rows}


def _assert_close(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for path, ref in want.items():
        err = np.abs(got[path] - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{path}: max|a-b| = {err}"


def test_resume_after_a_run_stopped_partway(spark, weights_spec, tmp_path):
    """spark-submit the job, SIGKILL it (driver, JVM, workers) once the first tasks'
    features are committed, then --resume: only the rest is featurized, and the result
    equals a clean run's."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    images = tmp_path / "images"
    _images(images, 30)
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
           "--conf", "spark.ui.enabled=false", str(REPO / "jobs" / "featurize_images.py"),
           "--input", str(images), "--output", str(out), "--weights", weights_spec,
           "--batch-size", "2", "--files-per-partition", "2", "--pca-k", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    parts: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        parts = list((out / "features").glob("part-*.parquet"))
        if parts:
            break
        time.sleep(0.05)
    assert parts, "no features were committed before the job ended or timed out"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running"  # stopped: it does not look complete
    committed = spark.read.parquet(str(out / "features")).count()
    assert 0 < committed < 60, committed

    resumed = run(spark, FeaturizeConfig(input=str(images), output=str(out),
                                         weights=weights_spec, batch_size=2, pca_k=3,
                                         resume=True))
    assert resumed["status"] == "complete"
    r = resumed["resume"]
    assert r["previous_status"] == "running" and r["dropped"] == 0
    assert r["kept_features"] == committed and r["featurized_now"] == 60 - committed
    assert resumed["counts"]["featurized"] == 60 and resumed["counts"]["failed"] == 0
    assert resumed["counts"]["model_images"] == 60 - committed  # the CNN ran only for the rest
    clean = tmp_path / "clean"
    run(spark, FeaturizeConfig(input=str(images), output=str(clean), weights=weights_spec,
                               batch_size=2, pca_k=3))
    _assert_close(_features(spark, out), _features(spark, clean))
    assert spark.read.parquet(str(out / "pca")).count() == 60


def test_resume_with_new_changed_and_removed_inputs(spark, weights_spec, tmp_path):
    from featurize.classifier.train import TrainConfig
    from featurize.classifier.train import run as train
    from featurize.model.run_checks import check_compatible
    from featurize.reduce.pca import model_fingerprint

    images = tmp_path / "images"
    files = _images(images, 12)
    write(images / "a" / "broken.jpg", b"not an image")
    out = tmp_path / "run"
    config = FeaturizeConfig(input=str(images), output=str(out), weights=weights_spec,
                             batch_size=4, pca_k=3)
    first = run(spark, config)
    assert first["counts"]["featurized"] == 24 and first["counts"]["failed"] == 1
    train(spark, TrainConfig(run=str(out), reg_param=1e-3, calibrate=False))
    assert "stale" not in json.loads((out / "metrics.json").read_text())

    # nothing changed: nothing is done, nothing is rewritten
    before = (out / "manifest.json").stat().st_mtime_ns
    again = run(spark, FeaturizeConfig(**{**config.to_dict(), "extensions": config.extensions,
                                          "resume": True}))
    assert again == json.loads((out / "manifest.json").read_text())
    assert (out / "manifest.json").stat().st_mtime_ns == before

    # two new images, one changed (new bytes), one removed
    _images(images, 1, classes=("c",), seed0=900)
    new_c = images / "c" / "c000.jpg"
    extra = write(images / "b" / "b_new.jpg", image_bytes(pattern_image(901), "JPEG"))
    changed, removed, touched = files[0], files[1], files[13]
    changed.write_bytes(image_bytes(pattern_image(902, (90, 90)), "JPEG"))
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    removed.unlink()
    os.utime(touched, (1_700_000_500, 1_700_000_500))  # same bytes, new mtime

    resumed = run(spark, FeaturizeConfig(input=str(images), output=str(out),
                                         weights=weights_spec, batch_size=4, pca_k=3,
                                         resume=True))
    r = resumed["resume"]
    assert (r["kept_features"], r["kept_errors"], r["dropped"]) == (21, 1, 3)
    assert (r["featurized_now"], r["failed_now"]) == (4, 0)
    assert r["classifier_marked_stale"] is True
    counts = resumed["counts"]
    assert (counts["inputs"], counts["featurized"], counts["failed"]) == (26, 25, 1)
    assert counts["model_images"] == 4
    got = _features(spark, out)
    uri = {p: "file:" + str(p) for p in (new_c, extra, changed, removed)}
    assert uri[removed] not in got and {uri[new_c], uri[extra], uri[changed]} <= set(got)
    errors = spark.read.parquet(str(out / "errors")).collect()
    assert [(e["path"], e["error"]) for e in errors] == [
        ("file:" + str(images / "a" / "broken.jpg"), "not_an_image")]
    clean = tmp_path / "clean"
    run(spark, FeaturizeConfig(input=str(images), output=str(clean), weights=weights_spec,
                               batch_size=4, pca_k=3))
    _assert_close(got, _features(spark, clean))
    assert spark.read.parquet(str(out / "pca")).count() == 25
    assert not (out / "_features_next").exists()

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stale"]["pca_model_id_now"] == resumed["pca"]["model_id"]
    from pyspark.ml import PipelineModel

    from featurize.model.weights import resolve_weights
    with pytest.raises(ConfigError, match="the classifier is stale"):
        check_compatible(resumed, metrics,
                         model_fingerprint(PipelineModel.load(str(out / "models" / "pca"))),
                         resolve_weights(weights_spec))

    # other PCA settings: nothing to featurize, but PCA is rebuilt
    repca = run(spark, FeaturizeConfig(input=str(images), output=str(out), weights=weights_spec,
                                       batch_size=4, pca_k=2, resume=True))
    assert repca["pca"]["k"] == 2 and repca["counts"]["model_images"] == 0
    assert repca["resume"]["kept_features"] == 25 and repca["counts"]["featurized"] == 25
    assert len(spark.read.parquet(str(out / "pca")).first()["pca_features"]) == 2


def test_resume_recovers_from_writes_stopped_at_any_point(spark, weights_spec, tmp_path):
    """States a stopped run or a stopped resume can leave, built by hand: a features/
    write killed before its first task committed (only _temporary/), and a resume killed
    between deleting features/ and renaming _features_next/ into its place."""
    import shutil

    images = tmp_path / "images"
    _images(images, 4)
    out = tmp_path / "run"
    config = FeaturizeConfig(input=str(images), output=str(out), weights=weights_spec,
                             batch_size=4, pca_k=2)
    manifest = run(spark, config)
    want = _features(spark, out)
    resume = FeaturizeConfig(**{**config.to_dict(), "extensions": config.extensions,
                                "resume": True})

    # 1. killed before any features were committed
    stopped = json.loads((out / "manifest.json").read_text())
    stopped["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(stopped))
    shutil.rmtree(out / "features")
    shutil.rmtree(out / "errors")
    write(out / "features" / "_temporary" / "0" / "_temporary" / "attempt_1" / "part-0.parquet",
          b"half a file")
    write(out / "errors" / "_temporary" / "0" / "junk", b"x")
    first = run(spark, resume)
    assert first["resume"]["kept_features"] == 0 and first["counts"]["model_images"] == 8
    _assert_close(_features(spark, out), want)
    assert not (out / "features" / "_temporary").exists()

    # 2. a resume killed mid-swap: its manifest says running, features/ is gone, the
    # complete _features_next/ is beside it
    stopped = json.loads((out / "manifest.json").read_text())
    stopped["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(stopped))
    shutil.move(str(out / "features"), str(out / "_features_next"))
    second = run(spark, resume)
    assert second["resume"]["kept_features"] == 8 and second["counts"]["model_images"] == 0
    _assert_close(_features(spark, out), want)
    assert not (out / "_features_next").exists()
    assert manifest["counts"]["featurized"] == second["counts"]["featurized"] == 8


# --- outcomes only a changing input or a corrupt stream produce ---------------------------

def _garbled_jpeg(seed: int) -> bytes:
    """A JPEG whose entropy-coded scan is overwritten in places: its header reads, and its
    decoding fails midway (Pillow: "broken data stream")."""
    data = bytearray(image_bytes(pattern_image(seed), "JPEG"))
    sos = data.index(b"\xff\xda")
    for k in range(sos + 30, len(data) - 10, 7):
        data[k] = 0xFF if data[k] != 0xFF else 0x00
    return bytes(data)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_file_deleted_after_listing_is_not_read_and_resume_retries_it(
        spark, moto_endpoint, weights_spec, tmp_path, monkeypatch, where):
    """decode_error from a garbled scan, and not_read from a file deleted between the
    listing and the read (Spark's scan locally, boto3's fetch on S3); then, with the file
    back, --resume featurizes that one file and nothing else."""
    import boto3

    from featurize.extract import job as job_module

    images = tmp_path / "images"
    victim = _images(images, 3)[0]
    write(images / "b" / "garbled.jpg", _garbled_jpeg(5))
    data = victim.read_bytes()
    if where == "s3":
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="featurize-not-read")
        for path in sorted(images.rglob("*.jpg")):
            s3.upload_file(str(path), "featurize-not-read",
                           "in/" + path.relative_to(images).as_posix())
        source = "s3://featurize-not-read/in"
        key = "in/" + victim.relative_to(images).as_posix()
        delete = lambda: s3.delete_object(Bucket="featurize-not-read", Key=key)  # noqa: E731
        restore = lambda: s3.put_object(Bucket="featurize-not-read", Key=key,  # noqa: E731
                                        Body=data)
    else:
        source = str(images)
        delete, restore = victim.unlink, lambda: victim.write_bytes(data)  # noqa: E731
    listed = job_module.list_inputs

    def listed_then_deleted(*args, **kwargs):
        listing = listed(*args, **kwargs)
        delete()
        return listing

    monkeypatch.setattr(job_module, "list_inputs", listed_then_deleted)
    config = FeaturizeConfig(input=source, output=str(tmp_path / "run"),
                             weights=weights_spec, pca_k=2, batch_size=4)
    first = run(spark, config)
    c = first["counts"]
    assert (c["inputs"], c["featurized"], c["model_images"]) == (7, 5, 5)
    assert c["failed_by_reason"] == {"decode_error": 1, "not_read": 1}
    errors = {r["path"].rsplit("/", 1)[1]: r for r in
              spark.read.parquet(str(tmp_path / "run" / "errors")).collect()}
    assert errors["garbled.jpg"]["error"] == "decode_error"
    assert "broken data stream" in errors["garbled.jpg"]["detail"]
    assert errors[victim.name]["error"] == "not_read"
    assert errors[victim.name]["label"] == victim.parent.name
    monkeypatch.setattr(job_module, "list_inputs", listed)
    restore()
    from dataclasses import replace

    resumed = run(spark, replace(config, resume=True))
    c = resumed["counts"]
    assert (c["inputs"], c["featurized"], c["model_images"]) == (7, 6, 1)
    assert c["failed_by_reason"] == {"decode_error": 1}
    assert resumed["resume"]["kept_features"] == 5 and resumed["resume"]["featurized_now"] == 1



@pytest.mark.parametrize("planted", ["duplicated", "missing"])
def test_the_counts_guard_catches_a_row_planted_in_features(spark, weights_spec, tmp_path,
                                                            monkeypatch, planted):
    """A row written twice or lost in features/ (planted after the pass wrote it, before
    the PCA reads it back) fails the run: exit status 1, a failed manifest that says
    how many rows it found against how many were counted."""
    import pyarrow.parquet as pq

    from featurize.errors import ReducerError
    from featurize.extract import job as job_module

    images = tmp_path / "images"
    _images(images, 3)
    real_fit = job_module.fit_pca

    def plant_then_fit(spark_, config, run_dir, manifest, **kwargs):
        part = sorted((tmp_path / "run" / "features").glob("part-*.parquet"))[0]
        table = pq.read_table(part)
        if planted == "duplicated":
            pq.write_table(table.slice(0, 1), part.with_name("part-99999-planted.parquet"))
        else:
            pq.write_table(table.slice(1), part)
            # Hadoop's local checksum of the old file would refuse the new one
            part.with_name(f".{part.name}.crc").unlink(missing_ok=True)
        return real_fit(spark_, config, run_dir, manifest, **kwargs)

    monkeypatch.setattr(job_module, "fit_pca", plant_then_fit)
    found = 7 if planted == "duplicated" else 5
    with pytest.raises(ReducerError, match=f"features/ holds {found} rows but the featurize "
                                           f"pass counted 6 featurized images") as failed:
        run(spark, FeaturizeConfig(input=str(images), output=str(tmp_path / "run"),
                                   weights=weights_spec, pca_k=2))
    assert failed.value.exit_status == 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["counts"]["featurized"] == 6
    assert manifest["error"].startswith(f"ReducerError: features/ holds {found} rows")


def test_the_counts_guard_fails_the_run_with_a_failed_manifest(spark, weights_spec, tmp_path,
                                                               monkeypatch):
    """Every input is featurized or failed exactly once, or the run fails: an error row
    the counts do not see (forced here) gives exit status 1 and a failed manifest."""
    from featurize.errors import JobError
    from featurize.extract import job as job_module

    images = tmp_path / "images"
    _images(images, 3)
    write(images / "a" / "broken.jpg", b"not an image")
    written = job_module.write_errors
    monkeypatch.setattr(job_module, "write_errors",
                        lambda *a, **k: (written(*a, **k)[0], {}))
    out = tmp_path / "run"
    with pytest.raises(JobError, match="7 inputs were listed but 6 featurized \\+ 0 failed "
                                       "were written") as failed:
        run(spark, FeaturizeConfig(input=str(images), output=str(out), weights=weights_spec,
                                   pca_k=2))
    assert failed.value.exit_status == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("JobError: 7 inputs were listed but 6 featurized")
