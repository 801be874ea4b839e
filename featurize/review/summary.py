"""One-screen summary of a run directory, from its manifest (local runs)::

    python -m featurize.review.summary runs/local [--predictions runs/local-predictions]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from featurize.rundir import MANIFEST, RunDir


def engine_line(engine: dict | None) -> str:
    """The engine as the summary shows it.

    >>> engine_line({"name": "openvino", "version": "2026.4.1", "precision": "f32",
    ...              "ir_sha256": "390d31fd5d9538ef00", "ir_cache": {"status": "hit"}})
    'engine        : openvino 2026.4.1, f32 (IR sha256 390d31fd5d9538ef..., cache hit)'
    >>> engine_line(None)
    'engine        : tensorflow, f32 (not recorded: a run from before engines)'
    """
    if not engine:
        return "engine        : tensorflow, f32 (not recorded: a run from before engines)"
    line = f"engine        : {engine['name']} {engine['version']}, {engine['precision']}"
    if engine.get("ir_sha256"):
        line += (f" (IR sha256 {engine['ir_sha256'][:16]}..., cache "
                 f"{(engine.get('ir_cache') or {}).get('status')})")
    return line


def load_manifest(run_dir: str) -> dict[str, Any]:
    path = RunDir(run_dir).manifest
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def format_summary(m: dict[str, Any], run_dir: str) -> str:
    c = m.get("counts", {})
    pca = m.get("pca") or {}
    w = m.get("weights", {})
    t = m.get("timings_seconds", {})
    ips = m.get("images_per_second", {})
    lines = [
        f"run directory : {os.path.abspath(run_dir)}",
        f"status        : {m.get('status')}",
        f"input         : {m.get('input', {}).get('root')}",
        f"weights       : {w.get('source')} (sha256 {str(w.get('sha256'))[:16]}...)"
        if w.get("source") != "random" else f"weights       : RANDOM (seed {w.get('seed')})",
        engine_line(m.get("engine")),
        f"images        : {c.get('inputs')} listed, {c.get('featurized')} featurized, "
        f"{c.get('failed')} failed {c.get('failed_by_reason') or ''}",
    ]
    if c.get("skipped_by_extension"):
        lines.append("not read      : " + ", ".join(
            f"{n} {e}" for e, n in c["skipped_by_extension"].items())
            + " (extension not in --extensions)")
    r = m.get("resume")
    if r:
        lines.append(f"resumed       : kept {r.get('kept_features')} features + "
                     f"{r.get('kept_errors')} errors rows, dropped {r.get('dropped')}, "
                     f"featurized {r.get('featurized_now')} now"
                     + (" (classifier marked stale)" if r.get("classifier_marked_stale") else ""))
    if pca:
        lines.append(f"pca           : k={pca.get('k')} explaining "
                     f"{pca.get('total_explained_variance', 0):.3f} of the variance")
    lines.append("timings (s)   : " + ", ".join(f"{k} {v}" for k, v in t.items()))
    lines.append(f"images/second : featurize {ips.get('featurize')}, "
                 f"end to end {ips.get('end_to_end')}")
    lines.append("outputs       : " + ", ".join(
        os.path.join(run_dir, v) for v in m.get("outputs", {}).values()))
    if m.get("error"):
        lines.append(f"error         : {m['error']}")
    return "\n".join(lines)


def format_metrics(metrics: dict[str, Any]) -> str:
    """Accuracy and the per-class scores of the test split."""
    test = metrics["test"]
    split = metrics["split"]
    lines = [f"classifier    : test accuracy {metrics['accuracy']:.4f}, macro-F1 "
             f"{metrics['macro_f1']:.4f} ({split['train']} train / {split['test']} test images, "
             f"{split['method']} split)"]
    if metrics.get("stale"):
        lines.append(f"classifier    : STALE: {metrics['stale'].get('reason')}")
    lines.extend(format_confidence(metrics))
    worst = sorted(test["per_class"].items(), key=lambda kv: kv[1]["f1"])[:3]
    lines.append("weakest labels: " + ", ".join(
        f"{label} (F1 {v['f1']:.2f}, {v['support']} images)" for label, v in worst))
    return "\n".join(lines)


def format_confidence(metrics: dict[str, Any]) -> list[str]:
    """The regularisation as chosen, the temperature, and the test split's calibration
    scores (absent from runs trained before calibration)."""
    lines = []
    search = metrics.get("reg_param_search")
    reg = metrics["model"]["reg_param"]
    if search and search.get("auto"):
        grid = [s["reg_param"] for s in search["scores"]]
        lines.append(f"regParam      : {reg:g}, chosen by {search['folds']}-fold "
                     f"cross-validation over {', '.join(f'{g:g}' for g in grid)}")
    elif reg is not None:
        lines.append(f"regParam      : {reg:g} (given)")
    cal = metrics.get("calibration")
    if metrics.get("ece"):
        if cal and cal["method"] == "temperature":
            t = f"temperature {cal['temperature']:.3f}"
        elif cal and cal.get("reason"):
            t = "temperature 1 (the held-out logits do not determine one)"
        else:
            t = "not calibrated"
        ece, brier = metrics["ece"], metrics["brier"]
        line = (f"confidence    : {t}; test ECE {ece['before']:.4f} -> {ece['after']:.4f}, "
                f"Brier {brier['before']:.4f} -> {brier['after']:.4f}")
        if metrics.get("top5_accuracy") is not None:
            line += f"; top-5 accuracy {metrics['top5_accuracy']:.4f}"
        lines.append(line)
    leak = metrics.get("leakage")
    if leak:
        lines.append(f"leakage       : {leak['leaked']} of {leak['test_images']} test images "
                     f"({leak['share']:.1%}) have a training image at cosine >= "
                     f"{leak['threshold']:g}; median best cosine {leak['median_nearest']:.3f}")
    return lines


def format_predictions(pred_dir: str, n: int = 8) -> str:
    """Counts and the first ``n`` predictions of a predict output."""
    import pyarrow.parquet as pq

    m = load_manifest(pred_dir)
    where = RunDir(pred_dir).predictions
    table = pq.read_table(where).to_pandas()
    table = table.sort_values("path").head(n)
    c = m["counts"]
    lines = [f"predictions   : {c['predicted']} predicted, {c['failed']} failed "
             f"{c.get('failed_by_reason') or ''} -> {where}"]
    for row in table.itertuples():
        name = "/".join(row.path.split("/")[-2:])
        lines.append(f"  {name:<32} {row.predicted_label:<16} confidence {row.confidence:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One-screen summary of a run directory.")
    p.add_argument("run_dir")
    p.add_argument("--predictions", default=None, help="a predict_images output to show")
    args = p.parse_args(argv)
    try:
        manifest = load_manifest(args.run_dir)
    except FileNotFoundError:
        print(f"no {MANIFEST} in {args.run_dir}: the run did not finish", file=sys.stderr)
        return 1
    print(format_summary(manifest, args.run_dir))
    metrics_path = RunDir(args.run_dir).metrics
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as fh:
            print(format_metrics(json.load(fh)))
    if args.predictions:
        print(format_predictions(args.predictions))
    return 0 if manifest.get("status") == "complete" else 1


if __name__ == "__main__":
    raise SystemExit(main())
