"""The watch report (make watch): numbers from the files bench/watch.py writes, and a verdict per goal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studies.watch import watch_report

USERS = [f"U0{i}" for i in range(1, 9)]


def _write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def fake_watch(out: Path, teachers: Path) -> None:
    """Two seeds of a 44,756-parameter student (U07 its weakest, 0.93), 100 s and 130 s for the
    8 folds; teachers averaging 0.96 (U07 0.92); MiniRocket 0.95 in 60 s."""
    seeds = {}
    for seed in range(2):
        folds = {}
        for user in USERS:
            acc = 0.96 - (0.03 if user == "U07" else 0)
            folds[user] = {
                "wall_s": 11.0,
                "parameters": 44_756,
                "float": {"acc": acc, "bytes": 190_000, "p50_ms": 0.09},
                "int8": {"acc": acc - 0.002, "bytes": 60_000, "p50_ms": 0.12},
            }
        seeds[str(seed)] = folds
        _write(out / f"seed{seed}" / "timing.json", {"seconds": 100.0 + 30 * seed})
    _write(out / "evaluation.json", {"seeds": seeds})
    _write(out / "teachers.json", {"logits_s": 20.0})
    fold = {"accuracy": 0.95, "fit_s": 7.0, "size_bytes": 1_088_151, "one_gesture_ms": 1.2}
    peer = {user: fold for user in USERS}
    _write(out / "minirocket.json", {"folds": peer, "total_s": 60.0})
    for seed in range(3):
        for i, user in enumerate(USERS):
            config = {"data.test_users": [user], "data.split": "users"}
            metrics = {"test/acc": 0.96 - (0.04 if user == "U07" else 0), "time/wall_s": 80.0}
            job = teachers / f"seed{seed}" / "part0" / str(i)
            _write(job / "metrics.json", {"config": config, "metrics": metrics})
    _write(teachers / "evaluation.json", {"users": {u: {"ensemble": 0.98} for u in USERS}})


@pytest.mark.integration  # creates an MLflow store
def test_the_report_shows_every_model_and_a_verdict_per_goal(tmp_path):
    import mlflow

    out, teachers, report = tmp_path / "watch", tmp_path / "teachers", tmp_path / "watch.md"
    fake_watch(out, teachers)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = watch_report(out, teachers, report, "make watch", uri)
    text = report.read_text()
    mean = 0.96 - 0.03 / 8
    row = f"| experiment=watch, float | 44,756 | 190.0 KB | {mean:.4f} ± 0.0000 | U07 0.9300 | 11.0 "
    assert row + "| 100 s, 130 s | 0.090 |" in text
    assert (
        "| MiniRocket (aeon, 10k kernels, ridge) | – | 1.1 MB pickled | 0.9500 | U01 0.9500 | 7.0 | 60 s"
        in text
    )
    goals = text.split("## Goals")[1]
    best = 0.96 - 0.04 / 8
    assert f"LOSO mean {mean:.4f} vs the best model's {best:.4f} (within 0.01: **met**)" in goals
    assert "worst user U07 0.9300 vs its worst 0.9200 (within 0.02: **met**)" in goals
    assert (
        "int8 file 60.0 KB (≤ 100 KB: **met**)" in goals and "change -0.0020 (within 0.005: **met**)" in goals
    )
    assert "float **met**, int8 **missed** by 0.02 ms" in goals
    assert "(≤ 120 s: **missed** by 10 s)" in goals  # the slowest seed counts
    assert f"(≥ 0.96: **missed** by {0.96 - mean:.4g})" in goals
    assert "time ratio 2.17×, within 2×: **missed** by 0.1667×" in goals
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loso_seconds/seed1"] == 130.0
    assert run.data.metrics["loso_mean/float"] == mean
