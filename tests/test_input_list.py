"""``--input-list``: the inputs named by a file (CSV, Parquet, text, S3 Inventory), the
same outputs as listing the folder, and the list's own refusals."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import pytest

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.extract.job import run
from tests.helpers import image_bytes, pattern_image, write
from tests.test_job_e2e import EXPECTED, NOT_READ, corpus, run_dir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.spark

#: what the folder run reads or reports: everything but the hidden file
LISTED = sorted(list(EXPECTED) + [r for r in NOT_READ if "/." not in r])


def rows(spark, table: Path) -> dict:
    return {r["path"]: r.asDict() for r in spark.read.parquet(str(table)).collect()}


def assert_same_run(spark, a: Path, b: Path) -> None:
    fa, fb = rows(spark, a / "features"), rows(spark, b / "features")
    assert sorted(fa) == sorted(fb)
    for path, ra in fa.items():
        rb = fb[path]
        assert {k: v for k, v in ra.items() if k != "features"} == {
            k: v for k, v in rb.items() if k != "features"}
        np.testing.assert_allclose(ra["features"], rb["features"], rtol=1e-5, atol=1e-6)
    assert rows(spark, a / "errors") == rows(spark, b / "errors")


def test_a_csv_list_gives_the_folder_runs_outputs(spark, corpus, run_dir, weights_spec,
                                                  tmp_path):
    """Relative paths, absolute paths and file: URIs, one path twice: the same rows,
    labels, errors and counts as listing the folder."""
    out, folder_manifest = run_dir  # the folder run of tests/test_job_e2e.py's corpus
    forms = [rel if i % 3 == 0 else str(corpus / rel) if i % 3 == 1
             else "file://" + str(corpus / rel) for i, rel in enumerate(LISTED)]
    lines = ["path"] + [f'"{p}"' for p in forms] + [f'"{forms[0]}"']
    listing = tmp_path / "inputs.csv"
    listing.write_text("\n".join(lines) + "\n")
    manifest = run(spark, FeaturizeConfig(
        input=str(corpus), output=str(tmp_path / "run"), weights=weights_spec, pca_k=3,
        batch_size=4, input_list=str(listing)))
    assert manifest["io"]["input"] == "list" and manifest["input"]["list"] == str(listing)
    assert manifest["counts"] == {**folder_manifest["counts"],
                                  "model_images": manifest["counts"]["model_images"]}
    assert manifest["counts"]["inputs"] == len(EXPECTED)
    assert_same_run(spark, tmp_path / "run", out)


def test_text_and_parquet_lists_labels_and_missing_files(spark, corpus, weights_spec,
                                                         tmp_path):
    images = [r for r, (_, why) in EXPECTED.items() if why is None][:4]
    text = tmp_path / "inputs.txt"
    text.write_text("# my photos\n\n" + "\n".join(images + ["cats/gone.jpg"]) + "\n")
    manifest = run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "t"),
                                          weights=weights_spec, pca_k=2, input_list=str(text)))
    c = manifest["counts"]
    assert (c["inputs"], c["featurized"], c["failed_by_reason"]) == (5, 4, {"not_read": 1})
    gone = rows(spark, tmp_path / "t" / "errors")["file:" + str(corpus / "cats/gone.jpg")]
    assert (gone["error"], gone["label"]) == ("not_read", "cats")
    assert "no such file" in gone["detail"]

    pq = tmp_path / "inputs.parquet"
    spark.createDataFrame([(str(corpus / r), f"L{i % 2}") for i, r in enumerate(images)],
                          "path string, label string").coalesce(1).write.parquet(str(pq))
    run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "p"),
                               weights=weights_spec, pca_k=2, input_list=str(pq)))
    labels = {p.rsplit("/", 1)[1]: r["label"]
              for p, r in rows(spark, tmp_path / "p" / "features").items()}
    assert labels == {r.rsplit("/", 1)[1]: f"L{i % 2}" for i, r in enumerate(images)}


def test_list_refusals(spark, corpus, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text(str(corpus / "cats/a1.jpg") + "\n/elsewhere/x.jpg\n")
    with pytest.raises(ConfigError, match=r"1 listed path\(s\) are not under --input .* "
                                          r"\(first: file:/elsewhere/x.jpg\)"):
        run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o1"),
                                   weights="random", input_list=str(outside)))
    no_path = tmp_path / "cols.csv"
    no_path.write_text("file,label\na.jpg,x\n")
    with pytest.raises(ConfigError, match="no 'path' column \\(it has file, label\\)"):
        run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o2"),
                                   weights="random", input_list=str(no_path)))
    none = tmp_path / "none.txt"
    none.write_text("cats/nope1.jpg\ncats/nope2.jpg\n")
    with pytest.raises(ConfigError, match="none of its 2 image path\\(s\\) exists"):
        run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o3"),
                                   weights="random", input_list=str(none)))
    with pytest.raises(ConfigError, match="no such file or folder"):
        run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o4"),
                                   weights="random", input_list=str(tmp_path / "absent.csv")))
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def test_an_s3_inventory_report_lists_the_inputs(spark, moto_endpoint, weights_spec, tmp_path):
    """A CSV inventory (gzipped, no header, URL-encoded keys, an old version and a
    delete marker) of a moto bucket: the current objects under --input are featurized,
    as listing the prefix does."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="inv-src")
    s3.create_bucket(Bucket="inv-dest")
    keys = {"in/cats/a 1.jpg": 1, "in/cats/ü+2.jpg": 2, "in/dogs/b1.png": 3}
    for key, seed in keys.items():
        fmt = "PNG" if key.endswith(".png") else "JPEG"
        s3.put_object(Bucket="inv-src", Key=key, Body=image_bytes(pattern_image(seed), fmt))
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size"
    lines = [f'"inv-src","{quote_plus(k)}","v1","true","false","1"' for k in keys]
    lines += ['"inv-src","in%2Fcats%2Fold.jpg","v0","false","false","1"',
              '"inv-src","in%2Fcats%2Fdeleted.jpg","v2","true","true","0"']
    s3.put_object(Bucket="inv-dest", Key="inv/data/part-1.csv.gz",
                  Body=gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    manifest = {"sourceBucket": "inv-src", "destinationBucket": "arn:aws:s3:::inv-dest",
                "version": "2016-11-30", "fileFormat": "CSV", "fileSchema": schema,
                "files": [{"key": "inv/data/part-1.csv.gz", "size": 1, "MD5checksum": "x"}]}
    s3.put_object(Bucket="inv-dest", Key="inv/2026-12-06T00-00Z/manifest.json",
                  Body=json.dumps(manifest).encode("utf-8"))
    out = tmp_path / "run"
    result = run(spark, FeaturizeConfig(
        input="s3://inv-src/in", output=str(out), weights=weights_spec, pca_k=2,
        input_list="s3://inv-dest/inv/2026-12-06T00-00Z/manifest.json"))
    assert result["counts"]["inputs"] == result["counts"]["featurized"] == 3
    got = {p: r["label"] for p, r in rows(spark, out / "features").items()}
    assert got == {f"s3://inv-src/{k}": k.split("/")[1] for k in keys}
    folder = tmp_path / "listed"
    run(spark, FeaturizeConfig(input="s3://inv-src/in", output=str(folder),
                               weights=weights_spec, pca_k=2))
    assert_same_run(spark, out, folder)


def test_a_deleted_listed_file_between_stat_and_read_is_not_read(spark, tmp_path,
                                                                weights_spec, monkeypatch):
    """A file that exists when the list is checked but is gone when its bytes are
    fetched becomes a not_read row; the counts still add up."""
    from featurize.extract import job as job_module

    root = tmp_path / "images"
    for i in range(4):
        write(root / "a" / f"{i}.jpg", image_bytes(pattern_image(i)))
    listing = tmp_path / "l.txt"
    listing.write_text("\n".join(f"a/{i}.jpg" for i in range(4)) + "\n")
    listed = job_module.list_inputs

    def listed_then_deleted(*args, **kwargs):
        result = listed(*args, **kwargs)
        (root / "a" / "2.jpg").unlink()
        return result

    monkeypatch.setattr(job_module, "list_inputs", listed_then_deleted)
    manifest = run(spark, FeaturizeConfig(input=str(root), output=str(tmp_path / "run"),
                                          weights=weights_spec, pca_k=2,
                                          input_list=str(listing)))
    c = manifest["counts"]
    assert (c["inputs"], c["featurized"], c["failed_by_reason"]) == (4, 3, {"not_read": 1})


def test_resume_with_a_longer_list_reads_only_the_new_paths(spark, tmp_path, weights_spec):
    root = tmp_path / "images"
    for i in range(5):
        write(root / "a" / f"{i}.jpg", image_bytes(pattern_image(i)))
    listing = tmp_path / "l.txt"
    listing.write_text("a/0.jpg\na/1.jpg\na/2.jpg\n")
    config = FeaturizeConfig(input=str(root), output=str(tmp_path / "run"),
                             weights=weights_spec, pca_k=2, input_list=str(listing))
    first = run(spark, config)
    assert (first["counts"]["featurized"], first["counts"]["model_images"]) == (3, 3)
    listing.write_text("a/0.jpg\na/1.jpg\na/2.jpg\na/3.jpg\na/4.jpg\n")
    from dataclasses import replace

    again = run(spark, replace(config, resume=True))
    assert again["resume"]["kept_features"] == 3
    assert (again["counts"]["featurized"], again["counts"]["model_images"]) == (5, 2)
    assert len(rows(spark, tmp_path / "run" / "features")) == 5
