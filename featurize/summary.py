"""One-screen summary of a run directory, from its manifest (local runs)::

    python -m featurize.summary runs/local
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from featurize.manifest import MANIFEST_NAME


def load_manifest(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, MANIFEST_NAME)
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
        f"images        : {c.get('inputs')} listed, {c.get('featurized')} featurized, "
        f"{c.get('failed')} failed {c.get('failed_by_reason') or ''}",
    ]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m featurize.summary RUN_DIR", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(args[0])
    except FileNotFoundError:
        print(f"no {MANIFEST_NAME} in {args[0]}: the run did not finish", file=sys.stderr)
        return 1
    print(format_summary(manifest, args[0]))
    return 0 if manifest.get("status") == "complete" else 1


if __name__ == "__main__":
    raise SystemExit(main())
