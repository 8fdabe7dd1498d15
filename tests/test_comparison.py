"""make compare: a continued comparison runs only what is missing; the report's table, picks,
plot and MLflow run come from the runs' metrics.json files."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from studies import compare, multirun
from studies.compare import models_report

GRU = {
    "model.net._target_": "gesture_rnn.models.nets.GRUNet",
    "model.net.layers": 1,
    "model.net.dropout": 0.1,
}
GRU.update({"model.net.bidirectional": False, "model.net.packed": True, "trainer.max_epochs": 20})
GRU.update({"model.optimizer.lr": 0.003, "data.batch_size": 32, "data.val_fraction": 0.0})


def write_run(job_dir: Path, config: dict, acc: float, overfit: float = 1.5) -> None:
    job_dir.mkdir(parents=True)
    metrics = {"test/acc": acc, "test/overfit_ratio": overfit}
    (job_dir / "metrics.json").write_text(json.dumps({"config": config, "metrics": metrics}))


def fake_comparison(out: Path) -> None:
    """gru at hidden 8 (default) and 256 (large): random split, all eight LOSO folds, timing."""
    for size, hidden, base in (("default", 8, 0.90), ("large", 256, 0.95)):
        config = {**GRU, "model.net.hidden": hidden, "trainer.accelerator": "cpu"}
        for seed in range(3):
            write_run(
                out / "random" / f"gru-{size}" / "part0" / str(seed),
                {**config, "seed": seed},
                base + seed / 100,
            )
        for i, user in enumerate(compare.USERS):
            acc = base - 0.1 - (0.2 if user == "U04" else 0) + i / 1000
            write_run(
                out / "loso" / f"gru-{size}" / "part0" / str(i), {**config, "data.test_users": [user]}, acc
            )
        timing = out / "timing" / f"gru-{size}" / "timing.json"
        timing.parent.mkdir(parents=True)
        timing.write_text(
            json.dumps({"epoch_s": hidden / 10, "onnx_p50_ms": hidden / 100, "params": 0, "machine": "m"})
        )


@pytest.mark.integration  # creates an MLflow store
def test_the_report_tables_picks_plots_and_logs_the_comparison(tmp_path):
    from mlflow import MlflowClient

    fake_comparison(tmp_path / "cmp")
    report = tmp_path / "reports" / "models.md"
    models_report(tmp_path / "cmp", report, "make compare", f"sqlite:///{tmp_path}/mlflow.db")
    text = report.read_text()
    # parameters counted from the config: GRU 8 = 3*(8*3 + 8*8 + 2*8) + 8*20 + 20
    assert "| gru | default | 492 | 0.9100 ± 0.0100 | 0.7785 | U04 0.6030 | 1.5 | 0.80 | 0.080 |" in text
    assert "Trainings: 22 with accelerator=cpu" in text
    assert "Protocol: 20 epochs, learning rate 0.003, batch 32, no validation" in text
    assert "**Known users** (highest random-split accuracy): **gru large**" in text
    assert (
        "**New wearers** (highest leave-one-user-out mean): **gru large**, 0.8285 (worst user U04 0.6530)"
        in text
    )
    # the large network (205,588 parameters) is over the watch budget
    assert (
        "**The watch** (highest leave-one-user-out mean with at most 50,000 parameters): **gru default**"
        in text
    )
    assert "| gru | large | 205,588 |" in text
    assert report.with_suffix(".png").stat().st_size > 10_000
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("gestures-compare").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loso_worst/gru-default"] == pytest.approx(0.603)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"models.md", "models.png"}


def test_a_continued_comparison_trains_each_missing_fold_once_with_cv(tmp_path, monkeypatch):
    """Leave-one-user-out runs are one ``train.py cv=users`` in the study's folder. An interrupted
    cv is asked for every user (it keeps its finished folds, so its summary covers all); users an
    older multirun in the folder finished are not asked again."""
    legacy, interrupted = tmp_path / "loso" / "gru-default", tmp_path / "loso" / "gru-large"
    for i, user in enumerate(compare.USERS[:6]):
        write_run(legacy / "part0" / str(i), {**GRU, "data.test_users": [user]}, 0.8)
    (legacy / "part0" / "6").mkdir()  # stopped during the seventh fold: no metrics.json
    for user in compare.USERS[:5]:
        write_run(interrupted / "folds" / user, {**GRU, "data.test_users": [user]}, 0.8)
    commands = []

    def fake_cv(command, **kwargs):  # what train.py cv=users does: trains the folds not finished
        commands.append(command)
        run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        users = next(a for a in command if a.startswith("cv.users=")).split("=", 1)[1].strip("[]").split(",")
        for user in users:
            if not (run_dir / "folds" / user / "metrics.json").is_file():
                write_run(run_dir / "folds" / user, {**GRU, "data.test_users": [user]}, 0.9)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(multirun.subprocess, "run", fake_cv)
    args = argparse.Namespace(out=tmp_path, jobs=1, trainer="cpu", overrides=[])
    line = compare.run_multirun("loso", "gru", "default", args)
    assert "cv=users" in commands[0] and "cv.users=[U07,U08]" in commands[0]
    assert f"hydra.run.dir={legacy}" in commands[0] and "cv.val_users=0" in commands[0]
    assert "over 8" in line and "FAILED" not in line
    assert len(list((legacy / "part0").glob("*/metrics.json"))) == 6, "finished jobs are never overwritten"
    assert compare.run_multirun("loso", "gru", "default", args).endswith("done before")
    assert len(commands) == 1
    compare.run_multirun("loso", "gru", "large", args)
    assert f"cv.users=[{','.join(compare.USERS)}]" in commands[1]
    assert {run["metrics"]["test/acc"] for run in multirun.finished_runs(interrupted)} == {0.8, 0.9}
    assert len(multirun.finished_runs(interrupted)) == 8
