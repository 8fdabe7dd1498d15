"""``cv=users`` / ``cv=kfold``: the folds, their isolation, the summary, a failed fold, resuming."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, SYNTH_USERS, compose_train_config
from mlflow import MlflowClient
from omegaconf import OmegaConf

from gesture_rnn.data.splits import split_indices
from gesture_rnn.errors import ConfigError
from gesture_rnn.training.cross_validation import Summary, folds

USERS = f"cv.users=[{','.join(SYNTH_USERS)}]"
SMALL = ["model.net.hidden=8", "trainer.max_epochs=2", "log_model=false", "console=quiet"]


def test_leave_one_user_out_holds_each_user_out_once_and_selects_on_another():
    plan = folds({"kind": "users", "users": ["U01", "U02", "U03"], "val_users": 1})
    assert [f.name for f in plan] == ["U01", "U02", "U03"]
    assert all(f.data == {"split": "users", "test_users": [f.name], "val_users": 1, "val_fraction": 0.0}
               for f in plan)  # fmt: skip
    assert len(folds({"kind": "users", "users": None, "val_users": 1})) == 8, "the dataset's users"
    assert [f.name for f in folds({"kind": "users", "users": ["U05"], "val_users": 1})] == ["U05"]
    for bad, message in (({"kind": "users", "users": ["U01", "U01"]}, "distinct users, at least one"),
                         ({"kind": "kfold", "folds": 1}, "cv.folds=1 is invalid"),
                         ({"kind": "loso"}, "cv.kind='loso' is invalid")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            folds(bad)


def test_cv_seeds_repeats_every_fold_once_per_seed_in_its_own_folder_and_refuses_what_is_not_seeds():
    from gesture_rnn.commands.cross_validate import fold_config

    plan = folds({"kind": "users", "users": ["U01", "U02"], "val_users": 1, "seeds": [3, 5]})
    assert [(f.name, f.unit, f.seed) for f in plan] == [
        ("seed3/U01", "U01", 3), ("seed3/U02", "U02", 3), ("seed5/U01", "U01", 5), ("seed5/U02", "U02", 5)
    ], "seed after seed: the first seed's folds finish first"  # fmt: skip
    assert [f.name for f in folds({"kind": "kfold", "folds": 2, "seeds": 7})] == [
        "seed7/fold0",
        "seed7/fold1",
    ]
    cfg = OmegaConf.create({"seed": 0, "data": {"seed": "${seed}"}, "paths": {"output_dir": "x"}})
    run = fold_config(cfg, plan[2], Path("out/folds/seed5/U01"))
    assert run.seed == 5 and run.data.seed == 5 and run.data.test_users == ["U01"] and run.cv is None
    assert fold_config(cfg, folds({"kind": "users", "users": ["U01"]})[0], Path("o")).data.seed == 0
    for bad in ("abc", [], [0, 0], [-1], [True], [1.5], "[0,1]"):
        with pytest.raises(
            ConfigError, match=r"cv.seeds=.* is invalid: it must be a list of distinct integers"
        ):
            folds({"kind": "users", "seeds": bad})


def test_over_seeds_each_user_is_scored_by_its_mean_and_each_seed_and_their_spread_are_reported():
    plan = {f.name: f for f in folds({"kind": "users", "users": ["U01", "U02"], "seeds": [0, 1]})}
    scores = {"seed0/U01": (0.90, 0.80), "seed0/U02": (0.96, 0.90),
              "seed1/U01": (0.94, 0.70), "seed1/U02": (1.00, 1.00)}  # fmt: skip
    results = {name: {"test/acc": t, "val/acc_best": v} for name, (t, v) in scores.items()}
    summary = Summary(dict(results), plan=plan)
    metrics = summary.metrics()
    assert metrics["test/acc"] == pytest.approx(0.95) and metrics["cv/seeds"] == 2
    assert metrics["cv/fold/U01/test/acc"] == pytest.approx(0.92) and metrics["cv/fold/U02/test/acc"] == 0.98
    assert metrics["cv/worst/test/acc"] == pytest.approx(0.92), "the worst user of the seeds' means"
    assert metrics["cv/test/acc/std"] == pytest.approx(0.03), "the spread over users, of their means"
    assert metrics["cv/seed/0/test/acc"] == pytest.approx(0.93) and metrics["cv/seed/1/test/acc"] == 0.97
    assert metrics["cv/seeds/test/acc/std"] == pytest.approx(0.02), "the spread of the seeds' means"
    assert metrics["cv/worst/val/acc_best"] == pytest.approx(0.75)
    assert metrics["cv/mean_and_worst/val/acc_best"] == pytest.approx((0.85 + 0.75) / 2)
    table = summary.table()
    assert "| fold | seed 0 | seed 1 | test acc, mean of seeds | status |" in table
    assert (
        "| U01 | 0.9000 | 0.9400 | 0.9200 | finished |" in table and "| worst | | | 0.9200 (U01) | |" in table
    )
    failed = Summary({**results, "seed1/U02": None}, {"seed1/U02": "RuntimeError: boom"}, plan).metrics()
    assert math.isnan(failed["test/acc"]) and "cv/worst/test/acc" not in failed
    assert "cv/seeds/test/acc/std" not in failed


def test_cv_users_reads_one_user_as_a_list_of_one_and_refuses_what_names_no_user():
    assert [f.name for f in folds({"kind": "users", "users": "U07"})] == ["U07"]
    for bad in ([], "U7", ["U01", 3], ["u01"]):
        with pytest.raises(ConfigError, match=r"cv.users=.* is invalid: it must name distinct users"):
            folds({"kind": "users", "users": bad})
    with pytest.raises(ConfigError, match=r"cv.val_users=7 is invalid: it must be an integer in \[0, 6\]"):
        folds({"kind": "users", "users": ["U01"], "val_users": 7})


def test_a_cross_validation_folder_refuses_other_settings_naming_what_changed(tmp_path):
    from gesture_rnn.commands.cross_validate import keep_one_cross_validation

    cfg = compose_train_config(tmp_path, ["cv=users", USERS, *SMALL])
    keep_one_cross_validation(cfg, tmp_path / "cv")
    keep_one_cross_validation(cfg, tmp_path / "cv")  # the same settings: continued
    jobs = compose_train_config(tmp_path, ["cv=users", USERS, *SMALL, "cv.jobs=1"])
    keep_one_cross_validation(jobs, tmp_path / "cv")  # how many at once: the folds' settings stay
    other = compose_train_config(tmp_path, ["cv=users", USERS, *SMALL, "model.net.hidden=16"])
    with pytest.raises(
        ConfigError, match=r"holds a cross-validation with other settings \(model.net.hidden: 8 -> 16\)"
    ):
        keep_one_cross_validation(other, tmp_path / "cv")


def test_a_fold_stopped_before_it_finished_is_marked_killed_and_trained_afresh(tmp_path):
    from gesture_rnn.commands.cross_validate import _discard_unfinished
    from gesture_rnn.tracking.runs import RUN_ID_FILE

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("gestures"))
    fold = tmp_path / "cv" / "folds" / "U01"
    (fold / "checkpoints").mkdir(parents=True)
    (fold / RUN_ID_FILE).write_text(run.info.run_id + "\n")
    cfg = OmegaConf.create({"logger": {"mlflow": {"_target_": "lightning.pytorch.loggers.MLFlowLogger",
                                                  "tracking_uri": uri}}})  # fmt: skip
    _discard_unfinished(cfg, fold)
    assert client.get_run(run.info.run_id).info.status == "KILLED" and not fold.exists()


def test_folds_train_two_at_a_time_on_a_cpu_unless_told_and_one_on_an_accelerator(monkeypatch):
    from gesture_rnn.commands import cross_validate

    monkeypatch.setattr(cross_validate.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(cross_validate, "_accelerator_present", lambda: False)

    def jobs(**settings) -> int:
        trainer = {"accelerator": "auto", "devices": 1, **settings.pop("trainer", {})}
        cfg = OmegaConf.create({"cv": {"jobs": None, **settings}, "trainer": trainer})
        return cross_validate.worker_count(cfg)

    assert jobs() == 2 and jobs(jobs=5) == 5
    assert jobs(trainer={"accelerator": "gpu"}) == 1
    assert jobs(trainer={"accelerator": "cpu", "devices": 4}) == 1
    monkeypatch.setattr(cross_validate, "_accelerator_present", lambda: True)
    assert jobs() == 1 and jobs(trainer={"accelerator": "cpu"}) == 2
    monkeypatch.setattr(cross_validate.os, "cpu_count", lambda: 1)
    assert jobs(trainer={"accelerator": "cpu"}) == 1
    with pytest.raises(ConfigError, match=r"cv.jobs=0 is invalid: it must be an integer in \[1, 64\]"):
        jobs(jobs=0)


def test_kfold_parts_partition_the_data_and_keep_the_class_balance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 10)
    users = rng.choice(["U01", "U02"], size=len(labels))
    tests = [
        split_indices(labels, users, "kfold", 0.2, 0.1, True, [], seed=3, folds=5, fold=i).test
        for i in range(5)
    ]
    together = np.concatenate(tests)
    assert sorted(together.tolist()) == list(range(len(labels))), "each recording tested exactly once"
    assert all(np.bincount(labels[t], minlength=20).tolist() == [2] * 20 for t in tests), "stratified"
    with pytest.raises(ConfigError, match=r"data.fold=5 is invalid: it must be an integer in \[0, 4\]"):
        split_indices(labels, users, "kfold", 0.2, 0.1, True, [], seed=3, folds=5, fold=5)


def test_the_summary_is_computed_from_the_folds_metrics_and_a_failed_fold_is_never_averaged_away():
    fixed = {
        "U01": {"test/acc": 0.90, "val/acc_best": 0.80, "test/f1": 0.88},
        "U02": {"test/acc": 0.80, "val/acc_best": 0.70, "test/f1": 0.78},
        "U03": {"test/acc": 1.00, "val/acc_best": 0.90, "test/f1": 1.00},
    }
    metrics = Summary(dict(fixed)).metrics()
    assert metrics["test/acc"] == pytest.approx(0.9) and metrics["val/acc_best"] == pytest.approx(0.8)
    assert metrics["cv/test/acc/std"] == pytest.approx(np.std([0.9, 0.8, 1.0]))
    assert metrics["cv/worst/test/acc"] == pytest.approx(0.8) and metrics["cv/fold/U03/test/acc"] == 1.0
    failed = Summary({**fixed, "U02": None}, {"U02": "RuntimeError: out of memory"})
    metrics = failed.metrics()
    assert (
        math.isnan(metrics["test/acc"]) and metrics["cv/failed"] == 1.0 and "cv/worst/test/acc" not in metrics
    )
    assert metrics["cv/test/acc/finished_mean"] == pytest.approx(0.95)
    assert "| U02 | | | | FAILED: RuntimeError: out of memory |" in failed.table()
    assert "mean ± std of 2 of 3 folds | 0.9500" in failed.table()


def train_py(tmp_path: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={tmp_path}",
               f"data.path={data}", f"data.cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path / 'cv'}",
               *overrides]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_cv_users_is_one_run_with_its_folds_nested_isolated_and_resumable(synthetic_zip, tmp_path):
    """python train.py cv=users (folds in two processes): one parent MLflow run, a nested run per
    fold; no held-out recording in a fold's training or selection (its checkpoint's record); run
    again in its folder, only a missing fold trains."""
    done = train_py(tmp_path, synthetic_zip, "cv=users", USERS, "cv.jobs=2", *SMALL)  # two folds at once
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"3 folds, 2 at a time \(\d+ thread\(s\) each\)", done.stdout), done.stdout
    assert "Cross-validation, users: 3 folds" in done.stdout and "| mean ± std |" in done.stdout
    assert "(folds nested): `make ui`, then http://127.0.0.1:5000/#/experiments/" in done.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("gestures").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3 and parent.info.status == "FINISHED"
    name = parent.data.tags["mlflow.runName"]  # what it is: every user held out, not one fold's
    assert name.startswith("cv users (3 folds) × seed 0 · ") and "test U" not in name, name
    assert sorted(r.data.params["data.test_users"] for r in children) == ["['U01']", "['U02']", "['U03']"]
    folds_acc = [r.data.metrics["test/acc"] for r in children]
    assert parent.data.metrics["test/acc"] == pytest.approx(np.mean(folds_acc))
    assert parent.data.metrics["cv/worst/test/acc"] == pytest.approx(min(folds_acc))
    assert {"cv.md", "cv.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    from gesture_rnn.data.fingerprints import fingerprints
    from gesture_rnn.data.parsing import load_records

    records = load_records(synthetic_zip, None)
    for user in SYNTH_USERS:  # fold isolation, checked against what each model recorded it saw
        (checkpoint,) = (tmp_path / "cv" / "folds" / user / "checkpoints").glob("epoch_*.ckpt")
        seen = set(torch.load(checkpoint, weights_only=True)["GestureDataModule"]["seen"])
        held_out = fingerprints(records.sequences[i] for i in np.flatnonzero(records.users == user))
        assert not seen & set(held_out), f"fold {user}: a held-out recording trained or selected the model"
        val = torch.load(checkpoint, weights_only=True)["datamodule_hyper_parameters"]
        assert val["val_users"] == 1 and val["val_fraction"] == 0.0
        evaluation = {f.name for f in (tmp_path / "cv" / "folds" / user / "evaluation").iterdir()}
        assert "per_user.csv" in evaluation and not any(name.endswith(".png") for name in evaluation)

    kept = {u: (tmp_path / "cv" / "folds" / u / "metrics.json").stat().st_mtime_ns for u in ("U01", "U02")}
    for path in sorted((tmp_path / "cv" / "folds" / "U03").rglob("*"), reverse=True):  # as if stopped
        path.unlink() if path.is_file() else path.rmdir()
    again = train_py(tmp_path, synthetic_zip, "cv=users", USERS, *SMALL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("\nfold ") == 1, "only the missing fold trained"
    assert kept == {u: (tmp_path / "cv" / "folds" / u / "metrics.json").stat().st_mtime_ns for u in kept}
    runs = client.search_runs([experiment])
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1, "the same parent run"


@pytest.mark.integration
def test_a_failed_fold_is_recorded_failed_and_named(synthetic_zip, tmp_path, monkeypatch, capsys):
    from gesture_rnn.commands import train as train_command
    from gesture_rnn.commands.cross_validate import cross_validate

    real_train = train_command.train

    def failing_for_u02(cfg):
        if list(cfg.data.test_users) == ["U02"]:
            raise RuntimeError("the fold ran out of memory")
        return real_train(cfg)

    monkeypatch.setattr(train_command, "train", failing_for_u02)
    overrides = [f"data.path={synthetic_zip}", "cv=users", USERS, "cv.jobs=1", *SMALL]
    cfg = compose_train_config(tmp_path, overrides)
    metrics = cross_validate(cfg)
    assert math.isnan(metrics["test/acc"]) and metrics["cv/failed"] == 1
    out = capsys.readouterr().out
    assert "FAILED folds: U02" in out and "FAILED: RuntimeError: the fold ran out of memory" in out
    record = json.loads((tmp_path / "outputs" / "run" / "metrics.json").read_text())
    assert record["folds"] == {"U02": "RuntimeError: the fold ran out of memory"}
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    parent = client.get_run(record["mlflow_run_ids"][0])
    assert parent.info.status == "FAILED"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sweeper", "plan"),
    [("hyperopt", ["cv.users=[U01]", "cv.seeds=[3,4]"]), ("optuna", ["cv.users=[U01,U02]"])],
)
def test_tune_optimises_the_cross_validated_mean_with_folds_nested_in_trials(
    sweeper, plan, synthetic_zip, tmp_path
):
    """With either sweeper a trial is a cross-validation (a parent with its folds nested under the
    sweep's run) and the objective is the folds' mean — over seeds with cv.seeds, each fold run on
    its seed."""
    command = [sys.executable, str(PROJECT_ROOT / "tune.py"), "-m", f"paths.root_dir={tmp_path}",
               f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", f"hparams_search={sweeper}",
               f"hydra.sweep.dir={tmp_path}/sweep", "cv=users", *plan, "cv.jobs=1",
               "hydra.sweeper.n_trials=2", "model.hidden=choice(8,16)", "trainer.max_epochs=1",
               "log_model=false"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    by_id = {r.info.run_id: r for r in runs}
    (sweep,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id]
    folds_ = [r for r in runs if by_id.get(r.data.tags.get("mlflow.parentRunId", "")) in trials]
    assert len(trials) == 2 and len(folds_) == 4
    name = sweep.data.tags["mlflow.runName"]  # what the sweep is, not a timestamp
    assert name.startswith(f"sweep · gru · {sweeper} 2 trials · max val/acc_best · ") and "hidden" in name, (
        name
    )
    best = max(t.data.metrics["val/acc_best"] for t in trials)  # the folds' mean: the objective
    assert sweep.data.metrics["best/val/acc_best"] == pytest.approx(best)
    for trial in trials:
        mine = [r for r in folds_ if r.data.tags["mlflow.parentRunId"] == trial.info.run_id]
        assert trial.data.metrics["val/acc_best"] == pytest.approx(np.mean([r.data.metrics["val/acc_best"]
                                                                            for r in mine]))  # fmt: skip
        if "cv.seeds=[3,4]" in plan:
            assert sorted(r.data.params["seed"] for r in mine) == ["3", "4"]
            assert all(r.data.tags["mlflow.runName"].startswith("fold U01 ·") for r in mine)
            assert "cv/seeds/val/acc_best/std" in trial.data.metrics
            assert "× seeds 3,4" in trial.data.tags["mlflow.runName"]
