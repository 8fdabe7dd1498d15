"""Finding a sweep's best trial from the trials' metrics.json files."""

from __future__ import annotations

import json

from gesture_rnn.tracking.trials import best_trial, find_trials


def write_trial(sweep_dir, job: str, value: float, test_acc: float) -> None:
    (sweep_dir / job / ".hydra").mkdir(parents=True)
    (sweep_dir / job / ".hydra" / "overrides.yaml").write_text(f"- model.net.hidden={job}\n")
    metrics = {"val/acc_best": value, "test/acc": test_acc}
    (sweep_dir / job / "metrics.json").write_text(json.dumps({"metrics": metrics, "mlflow_run_ids": [job]}))


def test_ties_go_to_the_earliest_trial_in_numeric_order(tmp_path):
    for job, value in [("0", 0.9), ("2", 1.0), ("10", 1.0), ("11", 0.5)]:
        write_trial(tmp_path, job, value, test_acc=0.5)
    trials = find_trials(tmp_path)
    assert [t["job"] for t in trials] == ["0", "2", "10", "11"]
    assert best_trial(trials, "val/acc_best", "maximize")["job"] == "2"
    assert best_trial(trials, "val/acc_best", "minimize")["job"] == "11"
    assert best_trial(trials, "val/acc_best", "maximize")["overrides"] == ["model.net.hidden=2"]


def test_trials_without_the_metric_or_with_nan_are_skipped(tmp_path):
    write_trial(tmp_path, "0", float("nan"), test_acc=0.1)
    write_trial(tmp_path, "1", 0.7, test_acc=0.6)
    trials = find_trials(tmp_path)
    assert best_trial(trials, "val/acc_best", "maximize")["job"] == "1"
    assert best_trial(trials, "val/loss", "minimize") is None
