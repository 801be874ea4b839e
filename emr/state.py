"""The last cluster and its steps, remembered in ``.emr/state.json`` (git-ignored), so
``submit``, ``wait``, ``status``, ``logs`` and ``down`` work without re-typing the id.
``CLUSTER_ID=`` / ``--cluster-id`` always wins over the file."""
from __future__ import annotations

import json
import os
from typing import Any

DEFAULT_DIR = ".emr"


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "state.json")


def load(state_dir: str = DEFAULT_DIR) -> dict[str, Any]:
    try:
        with open(_path(state_dir)) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def save(state: dict[str, Any], state_dir: str = DEFAULT_DIR) -> None:
    os.makedirs(state_dir, exist_ok=True)
    tmp = _path(state_dir) + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, _path(state_dir))


def clear(state_dir: str = DEFAULT_DIR) -> None:
    try:
        os.remove(_path(state_dir))
    except FileNotFoundError:
        pass
