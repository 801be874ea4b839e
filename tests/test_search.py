"""Similar images (featurize/search/): the index and the neighbour table against NumPy's
brute force, the duplicate groups against SciPy's connected components, a planted
near-duplicate found."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from featurize.errors import ConfigError
from featurize.search import index as ix
from featurize.search.job import IndexConfig


def clustered(n: int, dim: int, centres: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    return (c[rng.integers(0, centres, n)] + noise * rng.normal(size=(n, dim))).astype(
        np.float32)


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k most similar other rows by cosine (float64), most similar first."""
    u = x.astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def build(x: np.ndarray, exact_max: int, chunk: int = 700, sample: int = 4000):
    rng = np.random.default_rng(1)
    builder = ix.IndexBuilder(len(x), x.shape[1],
                              x[rng.choice(len(x), min(sample, len(x)), replace=False)],
                              exact_max=exact_max)
    for start in range(0, len(x), chunk):
        builder.add(x[start:start + chunk])
    return builder, builder.finish()


def test_the_exact_index_is_numpy_brute_force():
    x = clustered(3000, 24, 40, 0.6, seed=0)
    builder, record = build(x, exact_max=10_000)
    assert (record["kind"], record["size"], record["recall_at_10"]) == ("flat", 3000, 1.0)
    sims, ids = ix.search(builder.index, x[:200], 11)
    want, want_sims = brute_force(x, 10)
    assert (ids[:, 0] == np.arange(200)).all()  # each finds itself first
    assert (ids[:, 1:] == want[:200]).mean() > 0.999  # ties aside
    np.testing.assert_allclose(sims[:, 1:], want_sims[:200], atol=1e-5)


def test_the_approximate_index_reaches_its_recall_and_says_how():
    x = clustered(20_000, 32, 200, 0.9, seed=2)
    builder, record = build(x, exact_max=1_000, sample=20_000)
    # ~4·√n cells, fewer when the training sample is short of 39 a cell (faiss' minimum)
    assert record["kind"] == "ivf_flat" and record["cells"] == min(ix.cells_for(20_000), 20_000 // 39)
    assert record["recall_at_10"] >= ix.TARGET_RECALL and record["nprobe"] >= 1
    # independently: other queries, the index as it will be searched
    queries = np.arange(5_000, 20_000, 50)
    found = ix.search(builder.index, x[queries], 11)[1]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u[queries] @ u.T
    s[np.arange(len(queries)), queries] = -np.inf
    exact = np.argsort(-s, axis=1)[:, :10]
    recall = np.mean([len(set(f[f != q][:10]) & set(e)) / 10
                      for q, f, e in zip(queries, found, exact)])
    assert recall >= 0.93, recall


def test_index_options_are_checked():
    for kw, message in (({"k": 0}, "--k 0"), ({"duplicates": 1.5}, "--duplicates 1.5"),
                        ({"exact_max": -1}, "--exact-max -1"),
                        ({"run": "s3://KEY:SECRET@b/run"}, "credentials")):
        with pytest.raises(ConfigError, match=message):
            IndexConfig(**{"run": "runs/x", **kw})


def write_run(spark, root, x, labels):
    """A finished run of these PCA features: pca/ and a complete manifest."""
    rows = [(f"file:/photos/{labels[i]}/{i:04d}.jpg", labels[i], [float(v) for v in x[i]])
            for i in range(len(x))]
    spark.createDataFrame(rows, "path string, label string, pca_features array<float>") \
        .repartition(3).write.parquet(str(root / "pca"))
    (root / "manifest.json").write_text(json.dumps({"status": "complete"}))
    return sorted(r[0] for r in rows)


def planted(seed: int = 5) -> tuple[np.ndarray, list[str], list[list[int]]]:
    """120 images in 6 classes, 4 groups of near-duplicates planted (2 to 5 shots)."""
    x = clustered(120, 16, 6, 1.0, seed=seed)
    rng = np.random.default_rng(seed)
    groups, at = [], 120
    for size, src in ((5, 3), (3, 40), (2, 77), (2, 100)):
        groups.append([src] + list(range(at, at + size - 1)))
        copies = x[src] + 0.01 * rng.normal(size=(size - 1, 16)).astype(np.float32)
        x = np.vstack([x, copies.astype(np.float32)])
        at += size - 1
    labels = [f"c{i % 6}" for i in range(len(x))]
    return x, labels, groups


@pytest.mark.spark
@pytest.mark.parametrize("exact_max", [1_000, 40])
def test_neighbours_and_duplicates_against_numpy_and_scipy(spark, tmp_path, exact_max):
    from featurize.rundir import RunDir
    from featurize.search import job

    x, labels, planted_groups = planted()
    paths = write_run(spark, tmp_path, x, labels)
    summary = job.run(spark, IndexConfig(run=str(tmp_path), k=5, duplicates=0.99,
                                         exact_max=exact_max))
    run_dir = RunDir(str(tmp_path))
    record = json.loads((tmp_path / "index" / "index.json").read_text())
    assert record == json.loads(json.dumps(summary))
    assert record["index"]["kind"] == ("flat" if exact_max > len(x) else "ivf_flat")
    assert record["index"]["recall_at_10"] >= 0.95

    # rows are numbered in path order; the path of input i
    path_of = {i: f"file:/photos/{labels[i]}/{i:04d}.jpg" for i in range(len(x))}
    rows = spark.read.parquet(run_dir.index_rows).orderBy("row").collect()
    assert [r["path"] for r in rows] == paths and [r["row"] for r in rows] == list(range(len(x)))

    want, want_sims = brute_force(x, 5)
    got = {r["path"]: r["neighbours"] for r in spark.read.parquet(run_dir.neighbours).collect()}
    assert len(got) == len(x)
    agree = 0
    for i in range(len(x)):
        mine = got[path_of[i]]
        assert len(mine) == 5 and all(a["similarity"] >= b["similarity"] - 1e-6
                                      for a, b in zip(mine, mine[1:]))
        agree += len({n["path"] for n in mine} & {path_of[j] for j in want[i]})
        if exact_max > len(x):
            np.testing.assert_allclose([n["similarity"] for n in mine], want_sims[i], atol=1e-5)
    assert agree / (5 * len(x)) >= (0.999 if exact_max > len(x) else 0.95)

    # duplicates: SciPy's components of the pairs >= 0.99 among each image's 5 nearest
    i, j = np.nonzero(want_sims >= 0.99)
    graph = coo_matrix((np.ones(len(i)), (i, want[i, j])), shape=(len(x), len(x)))
    _, comp = connected_components(graph, directed=False)
    expected = sorted(sorted(path_of[m] for m in np.flatnonzero(comp == c))
                      for c in set(comp[np.unique(np.concatenate([i, want[i, j]]))]))
    dups = spark.read.parquet(run_dir.duplicates).collect()
    mine = {}
    for r in dups:
        mine.setdefault(r["group"], []).append(r)
    assert sorted(sorted(r["path"] for r in g) for g in mine.values()) == expected
    # every planted group is found whole, and the groups are numbered largest first
    assert sorted(sorted(path_of[m] for m in g) for g in planted_groups) == expected
    assert [len(mine[g]) for g in sorted(mine)] == [5, 3, 2, 2]
    for g in mine.values():
        first = min(g, key=lambda r: r["path"])
        a = x[int(first["path"][-8:-4])]
        for r in g:
            b = x[int(r["path"][-8:-4])]
            cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            assert r["similarity"] == pytest.approx(cos, abs=1e-5)
    assert summary["duplicates"] == {"threshold": 0.99, "groups": 4, "images": 12}


@pytest.mark.spark
def test_an_unfinished_run_is_refused(spark, tmp_path):
    from featurize.search import job

    with pytest.raises(ConfigError, match="no manifest.json"):
        job.run(spark, IndexConfig(run=str(tmp_path / "nowhere")))


@pytest.mark.spark
def test_leakage_counts_test_images_with_a_near_duplicate_in_train(spark):
    """A near-duplicate planted in the test split is found; the counts and the median
    against NumPy's brute force."""
    from featurize.search.leakage import leakage

    x, labels, _ = planted(seed=9)
    rows = [(f"file:/p/{labels[i]}/{i:04d}.jpg", labels[i], [float(v) for v in x[i]])
            for i in range(len(x))]
    test_ids = {3, 40, 7, 11, 15, 19, 23}  # 3 and 40 have near-copies in the training split
    frame = spark.createDataFrame(rows, "path string, label string, pca_features array<float>")
    test_paths = [rows[i][0] for i in sorted(test_ids)]
    train = frame.where(~F.col("path").isin(test_paths))
    test = frame.where(F.col("path").isin(test_paths))
    got = leakage(spark, train, test, threshold=0.99)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    train_ids = [i for i in range(len(x)) if i not in test_ids]
    best = (u[sorted(test_ids)] @ u[train_ids].T).max(axis=1)
    assert got["test_images"] == len(test_ids)
    assert got["leaked"] == int((best >= 0.99).sum()) == 2
    assert got["median_nearest"] == pytest.approx(float(np.median(best)), abs=0.02)
    assert {e["test"][-8:] for e in got["examples"]} == {"0003.jpg", "0040.jpg"}


@pytest.mark.spark
def test_near_duplicate_groups_stay_in_one_fold(spark):
    """duplicate_roots against SciPy's components of NumPy's pairs; grouped_folds puts
    every member in its root's fold and leaves the other images where they were."""
    from featurize.classifier.classify import grouped_folds
    from featurize.classifier.split import FOLD, with_folds
    from featurize.search.groups import duplicate_roots

    x, labels, planted_groups = planted(seed=11)
    rows = [(f"file:/p/{labels[i]}/{i:04d}.jpg", labels[i], [float(v) for v in x[i]])
            for i in range(len(x))]
    frame = spark.createDataFrame(rows, "path string, label string, pca_features array<float>")
    roots = {r["path"]: r["root"] for r in duplicate_roots(spark, frame, 0.99).collect()}
    want, want_sims = brute_force(x, 10)
    i, j = np.nonzero(want_sims >= 0.99)
    graph = coo_matrix((np.ones(len(i)), (i, want[i, j])), shape=(len(x), len(x)))
    _, comp = connected_components(graph, directed=False)
    expected = {}
    for c in set(comp[i]):
        members = sorted(rows[m][0] for m in np.flatnonzero(comp == c))
        expected.update({m: members[0] for m in members})
    assert roots == expected and len(roots) == sum(len(g) for g in planted_groups)

    folds = with_folds(frame, 3, seed=0)
    before = {r["path"]: r[FOLD] for r in folds.collect()}
    after = {r["path"]: r[FOLD] for r in grouped_folds(
        folds, spark.createDataFrame(list(roots.items()), "path string, root string"))
        .collect()}
    assert set(after) == set(before)
    for path, fold in after.items():
        assert fold == (before[roots[path]] if path in roots else before[path])


@pytest.fixture(scope="module")
def indexed_run(spark, trained_sample_run, tmp_path_factory):
    """A copy of the trained sample with its index (k=5)."""
    import shutil

    from featurize.search import job

    run = shutil.copytree(trained_sample_run[0], tmp_path_factory.mktemp("indexed") / "run")
    job.run(spark, IndexConfig(run=str(run), k=5))
    return run


@pytest.mark.spark
def test_one_photo_finds_the_runs_most_similar_images(trained_sample_run, indexed_run,
                                                      tmp_path):
    """predict_one --similar: the run's own photo, through the exported chain and the
    index, against NumPy's cosines over RUN/pca; an index of another PCA is refused."""
    import shutil
    from pathlib import Path

    import pyarrow.parquet as pq

    from featurize.photo.predict_one import Predictor, main

    with pytest.raises(ConfigError, match="no similar-images index"):
        Predictor(str(trained_sample_run[0]), similar=True)
    run = shutil.copytree(indexed_run, tmp_path / "run")
    pca = pq.read_table(run / "pca").to_pandas().sort_values("path").reset_index(drop=True)
    x = np.stack(pca["pca_features"].to_numpy()).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    predictor = Predictor(str(run), similar=True)
    for at in (7, 300):
        local = pca["path"][at][len("file:"):]
        answer = predictor.predict(Path(local).read_bytes(), local, similar=4)
        cos = x @ x[at]
        want = np.sort(cos)[::-1][:4]
        got = answer["similar"]
        assert len(got) == 4 and got[0]["similarity"] > 0.9999  # itself first
        np.testing.assert_allclose([g["similarity"] for g in got], want, atol=1e-4)
        index_of = {p: i for i, p in enumerate(pca["path"])}
        for g in got:  # each named image is that similar
            assert cos[index_of[g["path"]]] == pytest.approx(g["similarity"], abs=1e-4)
    assert "similar" not in predictor.predict(Path(local).read_bytes(), local)
    # the command line: one JSON line with `similar`
    import contextlib
    import io
    import json as js

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--run", str(run), "--json", "--similar", "2", local]) == 0
    line = js.loads(out.getvalue())
    assert [s["path"] for s in line["similar"]] == [g["path"] for g in got[:2]]
    # an index of another PCA model is refused
    record = js.loads((run / "index" / "index.json").read_text())
    (run / "index" / "index.json").write_text(js.dumps({**record, "pca_model_id": "0" * 64}))
    with pytest.raises(ConfigError, match="another PCA model"):
        Predictor(str(run), similar=True)


@pytest.mark.spark
def test_the_page_shows_similar_photos_by_row_and_reads_no_other_file(indexed_run):
    """/api/predict's similar photos link thumbnails by index row; a thumbnail is the
    run's image downscaled on the server; any other name, ../ or absolute paths
    included, is 404 and reads nothing."""
    import io
    from pathlib import Path

    import pyarrow.parquet as pq
    from PIL import Image

    from featurize.photo.predict_one import Predictor
    from featurize.photo.serve import create_app

    app = create_app(Predictor(str(indexed_run), similar=True), default_similar=3)
    client = app.test_client()
    rows = pq.read_table(indexed_run / "index" / "rows").to_pandas().sort_values("row")
    local = rows["path"].iloc[11][len("file:"):]
    answer = client.post("/api/predict", content_type="multipart/form-data",
                         data={"image": (io.BytesIO(Path(local).read_bytes()), "x.png")}).json
    assert [s["thumbnail"] for s in answer["similar"]] == [
        f"api/thumbnail/{s['row']}" for s in answer["similar"]]
    assert answer["similar"][0]["row"] == 11 and len(answer["similar"]) == 3
    got = client.get("/" + answer["similar"][0]["thumbnail"])
    assert got.status_code == 200 and got.content_type == "image/jpeg"
    thumb = Image.open(io.BytesIO(got.data))
    original = Image.open(local).convert("RGB")
    assert max(thumb.size) <= 160
    expected = original.resize(thumb.size, Image.BILINEAR)
    diff = np.abs(np.asarray(thumb, np.float64) - np.asarray(expected, np.float64)).mean()
    assert diff < 12, diff  # the same picture (JPEG, another filter), not another one
    none = client.post("/api/predict?similar=0", content_type="multipart/form-data",
                       data={"image": (io.BytesIO(Path(local).read_bytes()), "x.png")}).json
    assert "similar" not in none
    secret = indexed_run / "manifest.json"
    for bad in ("/api/thumbnail/../../etc/passwd", "/api/thumbnail/..%2F..%2Fetc%2Fpasswd",
                f"/api/thumbnail/{secret}", f"/api/thumbnail/%2F{str(secret)[1:]}",
                "/api/thumbnail/-1", f"/api/thumbnail/{len(rows)}", "/api/thumbnail/1.5",
                "/api/thumbnail/", f"/api/thumbnail?path={secret}"):
        r = client.get(bad)
        assert r.status_code == 404, (bad, r.status_code)
        assert b"status" not in r.data  # no file's content came back


@pytest.mark.spark
def test_the_report_shows_the_largest_duplicate_groups(spark, indexed_run, tmp_path):
    """make report after index --duplicates: duplicates.png, linked from the page, one
    row per group (largest first), each row's images the group's, in path order."""
    import shutil

    import pyarrow.parquet as pq

    from featurize.review.report import write_report
    from featurize.review.report_duplicates import load_duplicates, plot_duplicate_groups
    from featurize.search import job

    run = shutil.copytree(indexed_run, tmp_path / "run")
    assert load_duplicates(str(run)) is None
    # a threshold that groups the sample's digits (their own near-duplicates)
    summary = job.run(spark, IndexConfig(run=str(run), k=5, duplicates=0.8))
    groups = pq.read_table(run / "duplicates").to_pandas()
    assert summary["duplicates"]["groups"] == groups["group"].nunique() >= 2
    sizes = groups.groupby("group").size()
    assert list(sizes.sort_index()) == sorted(sizes, reverse=True)
    fig = plot_duplicate_groups(groups, n_groups=3, per_group=4)
    axes = np.array(fig.axes).reshape(3, 4)
    for g, row in zip(sorted(sizes.index)[:3], axes):
        shown = sum(len(ax.images) for ax in row)
        assert shown == min(4, sizes[g])
        assert row[0].get_title(loc="left").startswith(f"group {g}: {sizes[g]} images")
    written = write_report(str(run))
    assert str(run / "report" / "duplicates.png") in written
    assert "duplicates.png" in (run / "report" / "index.html").read_text()


def test_a_thumbnail_is_read_from_s3_as_the_job_reads_it(moto_endpoint, tmp_path):
    """An s3:// input through boto3 (moto), downscaled to 160 px on its long side; a
    missing object or a non-image is None, never an exception."""
    import io

    import boto3
    from PIL import Image

    from featurize.photo.predict_one import thumbnail_of

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="thumbs")
    buf = io.BytesIO()
    Image.new("RGB", (640, 320), (200, 30, 30)).save(buf, "PNG")
    s3.put_object(Bucket="thumbs", Key="in/a/1.png", Body=buf.getvalue())
    s3.put_object(Bucket="thumbs", Key="in/a/2.png", Body=b"not an image")
    thumb = Image.open(io.BytesIO(thumbnail_of("s3://thumbs/in/a/1.png")))
    assert thumb.format == "JPEG" and thumb.size == (160, 80)
    assert np.abs(np.asarray(thumb, np.float64) - [200, 30, 30]).max() < 6
    assert thumbnail_of("s3://thumbs/in/a/2.png") is None
    assert thumbnail_of("s3://thumbs/in/a/missing.png") is None
