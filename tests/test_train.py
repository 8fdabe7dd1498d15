"""``gesture_rnn.train(cfg)`` end to end on synthetic data, and what it leaves in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT, compose_train_config
from mlflow import MlflowClient

import gesture_rnn
from gesture_rnn.models import GestureClassifier
from gesture_rnn.models.checkpoint import read_checkpoint
from gesture_rnn.models.classifier import load_classifier

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast

FAST = [
    "log_model=false",
    "model.net.hidden=16",
    "trainer.max_epochs=5",
    "data.batch_size=16",
    "model.optimizer.lr=0.01",
]


def mlflow_runs(root: Path):
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("gestures")
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


def test_train_returns_metrics_and_records_the_run_in_mlflow(train_config, tmp_path):
    cfg = train_config(*FAST, "data.val_fraction=0.2", "log_model=true")
    metrics = gesture_rnn.train(cfg)

    assert metrics["test/acc"] > 0.5, "the synthetic gestures are easy to tell apart"
    for name in ("train/loss", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/f1"):
        assert name in metrics
    assert metrics["test/overfit_ratio"] > 0
    # calibrated on the validation part: the tested and the last checkpoint each carry their fit
    temperature = metrics["calibration/temperature"]
    assert temperature > 0 and temperature != 1.0
    assert {"test/ece", "test/ece_calibrated", "test/nll_calibrated"} <= set(metrics)
    checkpoints = tmp_path / "outputs" / "run" / "checkpoints"
    (best,) = [path for path in checkpoints.glob("epoch_*.ckpt")]
    assert float(read_checkpoint(best)["state_dict"]["net.temperature"]) == pytest.approx(temperature)
    assert float(read_checkpoint(checkpoints / "last.ckpt")["state_dict"]["net.temperature"]) != 1.0
    header = (tmp_path / "outputs" / "run" / "evaluation" / "predictions.csv").read_text().splitlines()[0]
    assert header == "file,user,gesture,predicted,probability"

    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.net.hidden"] == "16"
    assert run.data.params["data.val_fraction"] == "0.2"
    assert run.data.params["model.optimizer._target_"] == "torch.optim.Adam"
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 5, "one value per epoch"
    assert len(run.data.tags["data_md5"]) == 32
    assert run.data.tags["mlflow.source.git.commit"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config_resolved.yaml" in artifacts
    checkpoints = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert len(checkpoints) == 1 and checkpoints[0].endswith(".ckpt")
    assert (tmp_path / "outputs" / "mlartifacts").is_dir(), "artifacts live beside the store"
    evaluation = {a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "evaluation")}
    expected = {
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "learning_curves.png",
        "per_class.csv",
        "per_user.csv",
    }
    assert expected <= evaluation
    assert {f"test_user/{u}" for u in ("U01", "U02", "U03")} <= set(run.data.metrics)
    logged = client.search_logged_models([run.info.experiment_id])
    assert [m.source_run_id for m in logged] == [run.info.run_id], "log_model=true: the tested model"
    assert run.info.status == "FINISHED"


def test_without_validation_the_last_epoch_is_tested(train_config, tmp_path):
    metrics = gesture_rnn.train(train_config(*FAST, "data.val_fraction=0"))
    assert "val/acc" not in metrics and "val/acc_best" not in metrics
    assert metrics["calibration/temperature"] == 1.0, "nothing to calibrate on"
    last = torch.load(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 4  # epochs 0..4
    ratio = metrics["test/loss"] / metrics["train/loss"]
    assert metrics["test/overfit_ratio"] == pytest.approx(ratio, rel=1e-4)


def test_weight_averaging_validates_tests_and_saves_the_averaged_weights(train_config, tmp_path):
    """callbacks=ema: the tested (best) checkpoint holds the moving average, and the test metrics
    are that average's — not the raw weights, which Lightning's callback would reload."""
    import lightning as L
    from hydra.utils import instantiate

    from gesture_rnn.tracking.trials import tested_checkpoint

    ema = ["callbacks=ema", "callbacks.ema.decay=0.9"]
    cfg = train_config(*FAST, *ema, "data.val_fraction=0.2", "logger=none")
    metrics = gesture_rnn.train(cfg)
    tested = tested_checkpoint(Path(cfg.paths.output_dir))
    checkpoint = torch.load(tested, weights_only=True)
    weight = "net.gru.weight_hh_l0"
    assert not torch.equal(checkpoint["state_dict"][weight], checkpoint["current_model_state"][weight])
    datamodule = instantiate(cfg.data)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (again,) = trainer.test(load_classifier(tested), datamodule=datamodule, verbose=False)
    assert again["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)


def test_the_checkpoint_loads_back_with_its_normalisation(train_config, tmp_path):
    gesture_rnn.train(train_config(*FAST, "data.val_fraction=0"))
    path = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    model = load_classifier(path)
    assert model.hparams.net["hidden"] == 16
    assert not torch.equal(model.net.std, torch.ones(3)), "trained statistics, not the defaults"
    lightning_loaded = GestureClassifier.load_from_checkpoint(path, weights_only=True)
    assert torch.equal(lightning_loaded.net.gru.weight_hh_l0, model.net.gru.weight_hh_l0)


def test_seed_zero_gives_identical_metrics_and_another_seed_different_ones(synthetic_zip, tmp_path):
    def run(seed: int, name: str) -> dict[str, float]:
        overrides = [f"data.path={synthetic_zip}", *FAST, f"seed={seed}", "logger=none"]
        return gesture_rnn.train(compose_train_config(tmp_path, overrides, f"outputs/{name}"))

    def weights(name: str) -> dict[str, torch.Tensor]:
        return torch.load(tmp_path / "outputs" / name / "checkpoints" / "last.ckpt", weights_only=True)[
            "state_dict"
        ]

    first, second, other = run(0, "first"), run(0, "second"), run(1, "other")
    command = [
        sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={tmp_path / 'new'}",
        f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", *FAST, "seed=0", "logger=none",
        "console=quiet",
    ]  # fmt: skip
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    (record,) = (tmp_path / "new" / "outputs" / "train" / "runs").glob("*/metrics.json")
    new_process = json.loads(record.read_text())["metrics"]
    for name in ("test/acc", "test/loss", "test/f1", "train/loss"):
        assert first[name] == second[name] == new_process[name], name  # bit-identical
    assert first["test/loss"] != other["test/loss"]
    first_weights, second_weights = weights("first"), weights("second")
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)
    assert not torch.equal(weights("first")["net.gru.weight_hh_l0"], weights("other")["net.gru.weight_hh_l0"])


def test_a_run_that_crashes_is_marked_failed(train_config, tmp_path, monkeypatch):
    def explode(self, batch, batch_idx):
        raise RuntimeError("boom in test_step")

    monkeypatch.setattr(GestureClassifier, "test_step", explode)
    with pytest.raises(RuntimeError, match="boom"):
        gesture_rnn.train(train_config(*FAST, "trainer.max_epochs=1"))
    _, runs = mlflow_runs(tmp_path)
    assert [run.info.status for run in runs] == ["FAILED"]


def test_an_invalid_config_fails_before_any_run_is_created(train_config, tmp_path):
    with pytest.raises(gesture_rnn.ConfigError, match=r"model\.net\.layers=0"):
        gesture_rnn.train(train_config("model.net.layers=0"))
    _, runs = mlflow_runs(tmp_path)
    assert runs == []


def test_early_stopping_without_validation_is_refused_with_the_fix(train_config):
    cfg = train_config(*FAST, "callbacks=early_stopping", "data.val_fraction=0")
    with pytest.raises(gesture_rnn.ConfigError, match=r"callbacks.early_stopping .*data.val_fraction > 0"):
        gesture_rnn.train(cfg)


def test_a_run_leaves_no_global_tracking_uri_and_the_next_run_logs_to_its_own_store(synthetic_zip, tmp_path):
    """Lightning's MLFlowLogger sets MLFLOW_TRACKING_URI for the process; a sweep's next trial or
    the next test would then log into this run's store."""
    for name in ("first", "second"):
        root = tmp_path / name
        overrides = [f"data.path={synthetic_zip}", *FAST, "log_model=false"]
        gesture_rnn.train(compose_train_config(root, overrides))
        assert "MLFLOW_TRACKING_URI" not in os.environ
        _, runs = mlflow_runs(root)
        assert len(runs) == 1, f"the {name} run is in its own store"


def test_a_resumed_run_with_seed_null_keeps_the_checkpoints_split(synthetic_zip, tmp_path):
    """seed=null draws a seed once; resuming must test on the same recordings, not a new split."""

    def run(*overrides: str) -> list[str]:
        cfg = compose_train_config(
            tmp_path, [f"data.path={synthetic_zip}", *FAST, "seed=null", "logger=none", *overrides]
        )
        gesture_rnn.train(cfg)
        lines = (tmp_path / "outputs" / "run" / "evaluation" / "predictions.csv").read_text().splitlines()
        return sorted(line.split(",")[0] for line in lines[1:])

    first = run("trainer.max_epochs=2")
    checkpoint = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    resumed = run("trainer.max_epochs=3", f"ckpt_path={checkpoint}")
    assert len(first) > 0 and resumed == first


def test_a_trainer_that_cannot_be_built_leaves_its_run_failed_not_running(train_config, tmp_path):
    """The MLflow run exists before the Trainer does: no error after it may leave it RUNNING."""
    with pytest.raises(Exception, match="no_such_argument"):
        gesture_rnn.train(train_config(*FAST, "+trainer.no_such_argument=1"))
    _, runs = mlflow_runs(tmp_path)
    assert [run.info.status for run in runs] == ["FAILED"]


RECIPES = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_shipped_recipe_trains_on_a_fresh_clone(recipe, train_config, tmp_path):
    """experiment=<recipe> with nothing but the data: no teachers, sweeps or outputs of earlier
    runs (the run's root is an empty folder); a few batches each."""
    cfg = train_config(f"experiment={recipe}", "debug=fast", "data.test_users=[U03]")
    metrics = gesture_rnn.train(cfg)
    headline = "test/event_f1" if recipe == "spotter" else "test/acc"  # the spotter's: on streams
    assert 0.0 <= metrics[headline] <= 1.0
    assert list((tmp_path / "outputs" / "run" / "checkpoints").glob("*.ckpt")), "a tested checkpoint"


def test_last_ckpt_is_the_last_complete_epoch_even_when_validation_stopped_improving(synthetic_zip, tmp_path):
    """With a learning rate too small to move validation, the tested checkpoint stays at epoch 0
    while last.ckpt follows every epoch: ckpt_path=last never resumes from an older epoch."""
    overrides = [f"data.path={synthetic_zip}", *FAST, "trainer.max_epochs=3", "model.optimizer.lr=1e-12",
                 "logger=none"]  # fmt: skip
    gesture_rnn.train(compose_train_config(tmp_path, overrides))
    checkpoints = tmp_path / "outputs" / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch_*.ckpt")) == ["epoch_000.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True, map_location="cpu")["epoch"] == 2


def test_the_progress_bar_shows_the_loss_and_validation_accuracy_not_the_loggers_version():
    """What a user watches while a run trains: train/loss and val/acc of the last epoch; not
    ``v_num`` (the end of an MLflow run id)."""
    from types import SimpleNamespace

    from lightning.pytorch.loggers import CSVLogger

    from gesture_rnn.training.callbacks import MetricsProgressBar

    trainer = SimpleNamespace(
        loggers=[CSVLogger("unused", version="e806")],
        progress_bar_metrics={},
        callback_metrics={"train/loss": torch.tensor(0.51234), "val/acc": torch.tensor(0.9), "val/f1": 0.8},
    )
    assert MetricsProgressBar().get_metrics(trainer, None) == {"train/loss": "0.512", "val/acc": "0.900"}


def test_the_summary_of_a_run_on_people_never_seen_names_them(tmp_path):
    from omegaconf import OmegaConf

    from gesture_rnn.commands.train import format_summary

    cfg = OmegaConf.create({"data": {"split": "users", "test_users": ["U07"]}, "logger": None})
    text = format_summary({"test/acc": 0.9, "test/f1": 0.9}, [], cfg, tmp_path, show_test=True)
    assert "held out: U07 (never seen in training)" in text
    random = OmegaConf.create({"data": {"split": "random", "test_users": []}, "logger": None})
    assert "held out" not in format_summary({"test/acc": 0.9}, [], random, tmp_path, show_test=True)
