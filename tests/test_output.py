"""The recorded run: the one way a job's manifest is written (running → complete/failed)."""
from __future__ import annotations

import json

import pytest

from featurize.errors import JobError
from featurize.manifest import StageTimer, header, utc_now
from featurize.rundir import RunDir
from featurize.storage.output import RunOutput

pytestmark = pytest.mark.spark


def _manifest(timer: StageTimer) -> dict:
    return {**header("test_job", {"a": 1}, utc_now()), "timings_seconds": timer.seconds}


def test_running_first_then_complete(spark, tmp_path):
    out = RunOutput(spark, str(tmp_path / "run"), overwrite=False)
    timer = StageTimer()
    with out.recorded(_manifest(timer), timer) as run_dir:
        assert run_dir == RunDir(str(tmp_path / "run"))
        during = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert during["status"] == "running" and during["finished_at"] is None
    after = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert after["status"] == "complete" and after["finished_at"] is not None
    assert after["timings_seconds"]["total"] >= 0 and "error" not in after
    assert (after["job"], after["config"]) == ("test_job", {"a": 1})


def test_any_exception_leaves_a_failed_manifest_with_its_first_line(spark, tmp_path):
    out = RunOutput(spark, str(tmp_path / "run"), overwrite=False)
    timer = StageTimer()
    with pytest.raises(JobError, match="inputs changed"):
        with out.recorded(_manifest(timer), timer):
            raise JobError("inputs changed\n  a second line that stays in the log")
    after = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert after["status"] == "failed"
    assert after["error"] == "JobError: inputs changed"
    assert after["finished_at"] is not None


def test_overwrite_removes_the_markers_and_the_old_run(spark, tmp_path):
    old = tmp_path / "run"
    (old / "features").mkdir(parents=True)
    (old / "features" / "part-0.parquet").write_bytes(b"old")
    (old / "metrics.json").write_text("{}")
    out = RunOutput(spark, str(old), overwrite=True)
    timer = StageTimer()
    with out.recorded(_manifest(timer), timer):
        assert sorted(p.name for p in old.iterdir()) == ["manifest.json"]
