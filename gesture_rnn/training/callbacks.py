"""Side work of a run as Lightning callbacks: per-epoch seeding, weight averaging, saving on
interrupt, learning curves, probability calibration, and the run record (artifacts, summary
metrics, MLflow model, ``metrics.json``)."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gesture_rnn.data.sampling import derived_seed
from gesture_rnn.tracking import runs
from gesture_rnn.training import artifacts
from gesture_rnn.utils.atomic import write_text_atomically

log = logging.getLogger(__name__)

INTERRUPTS = (KeyboardInterrupt, SIGTERMException)
INTERRUPTED_CHECKPOINT = "interrupted.ckpt"


class SeedEachEpoch(Callback):
    """Reseed torch (dropout, augmentation) and the batch order from (seed, epoch, rank) at every
    epoch start: a run resumed from an end-of-epoch checkpoint continues exactly."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule, epoch = trainer.datamodule, trainer.current_epoch
        torch.manual_seed(derived_seed(datamodule.seed, epoch, trainer.global_rank, 2))
        datamodule.set_epoch(epoch)


class EpochModelCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is always the end of the last complete
    epoch: Lightning 2.6 moves it only in a step that also saved a top-k checkpoint (with
    ``monitor=val/acc``: only when validation improved), so ``ckpt_path=last`` resumed from the
    best epoch and lost the epochs after it."""

    _last_saved_step = -1

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if (
            self.save_last
            and self._last_saved_step != trainer.global_step
            and not self._should_skip_saving_checkpoint(trainer)
            and self._should_save_on_train_epoch_end(trainer)
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class MetricsProgressBar(TQDMProgressBar):
    """Lightning's progress bar showing what a user watches — the last epoch's training loss and
    validation accuracy — without ``v_num`` (the logger's version, an MLflow run id prefix).

    With ``lines`` (by default when stdout is not a terminal: a file, a pipe, CI) one line per
    epoch instead — each redraw of a bar would be a line of its own there — opened by ``prefix``
    (``trial 3 · ``, ``fold U07 · ``: whose epoch it is where several runs share a console)."""

    SHOWN = ("train/loss", "val/acc")

    def __init__(self, refresh_rate: int = 1, lines: bool | None = None, prefix: str = "") -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.lines = not sys.stdout.isatty() if lines is None else lines
        self.prefix = prefix
        self._epoch_start = 0.0
        if self.lines:
            self.disable()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        logged = trainer.callback_metrics
        for key in self.SHOWN:
            if key in logged:
                items[key] = f"{float(logged[key]):.3f}"
        return items

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self.lines or not trainer.is_global_zero:
            return
        logged = trainer.callback_metrics
        shown = "  ".join(f"{key} {float(logged[key]):.3f}" for key in self.SHOWN if key in logged)
        took = time.monotonic() - self._epoch_start
        epoch = f"{trainer.current_epoch + 1}/{trainer.max_epochs}"
        print(f"{self.prefix}epoch {epoch}  {shown}  {took:.1f} s", flush=True)


class CheckpointOnInterrupt(Callback):
    """Ctrl-C or SIGTERM: note which, and save ``interrupted.ckpt`` beside the epoch checkpoints.

    ``last.ckpt`` (end of the last complete epoch) is what ``ckpt_path=last`` resumes exactly;
    ``interrupted.ckpt`` keeps the partial epoch for whoever wants it.
    """

    def __init__(self) -> None:
        self.interrupted_by: str | None = None  # "Ctrl-C" or "SIGTERM" once it happened

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, INTERRUPTS):
            return  # any other exception (SystemExit included) is not an interrupt
        self.interrupted_by = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl-C"
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / INTERRUPTED_CHECKPOINT
        trainer.save_checkpoint(path)
        log.warning("Interrupted: saved %s", path)


class LearningCurves(Callback):
    """Train and validation loss/accuracy per epoch, kept in checkpoints (a resumed run keeps its
    earlier epochs) and answering "what was the training loss of the weights being tested?"."""

    KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.tested_epoch: int | None = None  # epoch of the checkpoint a test loaded; None: last

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        row.update({key: float(metrics[key]) for key in self.KEYS if key in metrics})
        self.history = [h for h in self.history if h["epoch"] < row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get("callbacks", {}).get(self.state_key, {})
        if trainer.state.fn == TrainerFn.FITTING:
            self.history = list(state.get("history", []))  # resuming: continue the curves
        else:  # testing a checkpoint: keep the run's whole curves, note which epoch is tested
            self.tested_epoch = int(checkpoint.get("epoch", -1))
            if not self.history:  # evaluate.py: the checkpoint's own curves
                self.history = list(state.get("history", []))

    def tested_train_loss(self) -> float:
        """Training loss of the last epoch of the tested weights (NaN if unknown)."""
        rows = [h for h in self.history if self.tested_epoch is None or h["epoch"] == self.tested_epoch]
        return rows[-1].get("train/loss", math.nan) if rows else math.nan


class TemperatureScaling(Callback):
    """Before testing, calibrate the probabilities: fit a temperature on the validation data
    (``gesture_rnn.models.calibration``) for the tested weights and for ``last.ckpt``'s, and store each in
    the network and its checkpoint file — so the test metrics, predict.py, export.py and the MLflow
    model all give calibrated probabilities. Without validation data the temperature stays 1."""

    def __init__(self) -> None:
        self.temperature: float | None = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from gesture_rnn.models.calibration import fit_temperature, logits_and_labels
        from gesture_rnn.models.checkpoint import net_from_checkpoint, read_checkpoint, write_temperature

        datamodule = trainer.datamodule
        if not hasattr(pl_module.net, "temperature"):
            return  # the spotter: its decision rule is chosen instead (streaming.evaluation)
        if not getattr(datamodule, "has_validation", False):
            log.info("No validation data: probabilities are not calibrated (temperature 1)")
            return
        loader = datamodule.val_dataloader()
        self.temperature = fit_temperature(*logits_and_labels(pl_module.net, loader, pl_module.device))
        pl_module.net.temperature.fill_(self.temperature)
        log.info("Calibration: temperature %.3f (fitted on the validation data)", self.temperature)
        if not trainer.is_global_zero:
            return
        tested = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        if tested is not None and tested.is_file():
            write_temperature(tested, self.temperature)
        checkpoint = trainer.checkpoint_callback
        last = (
            Path(checkpoint.dirpath) / "last.ckpt" if checkpoint is not None and checkpoint.dirpath else None
        )
        if last is not None and last.is_file() and (tested is None or last.resolve() != tested.resolve()):
            net = net_from_checkpoint(read_checkpoint(last))
            write_temperature(last, fit_temperature(*logits_and_labels(net, loader, torch.device("cpu"))))


class AveragedWeights(EMAWeightAveraging):
    """An exponential moving average of the weights (``callbacks=ema``), validated, tested and
    saved as the checkpoint's ``state_dict``.

    Lightning's callback reloads a checkpoint's non-averaged weights whenever it loads one while
    it holds an average, so ``trainer.test(ckpt_path="best")`` after the fit would test the raw
    weights; here only a resumed fit restores them, and testing reads the averaged ones."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class RunRecord(Callback):
    """After testing (rank zero only): evaluation artifacts, the overfit ratio and per-user
    accuracy, summary metrics to the loggers, the tested checkpoint and the MLflow model as
    artifacts, and ``metrics.json`` (read by sweeps and reports). ``metrics`` holds the result."""

    SUMMARY = ("time/wall_s", "test/overfit_ratio", "calibration/temperature")

    def __init__(
        self,
        output_dir: str | Path,
        config: dict[str, Any],
        log_model: bool = False,
        upload_checkpoint: bool = True,
        figures: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.config = config
        self.log_model = log_model
        self.figures = figures
        self.upload_checkpoint = upload_checkpoint
        self.started = time.perf_counter()
        self.fit_metrics: dict[str, float] = {}
        self.metrics: dict[str, float] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the last epoch's train/* and val/*, before trainer.test() resets the logged metrics
        self.fit_metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {**self.fit_metrics, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
        curves = next((cb for cb in trainer.callbacks if isinstance(cb, LearningCurves)), None)
        # the study's overfitting measure: test loss relative to the tested weights' training loss
        train_loss = curves.tested_train_loss() if curves is not None else math.nan
        metrics["test/overfit_ratio"] = metrics.get("test/loss", math.nan) / train_loss
        if hasattr(pl_module.net, "temperature"):
            metrics["calibration/temperature"] = float(pl_module.net.temperature)
        if trainer.is_global_zero:
            metrics.update(self._write_artifacts(trainer, pl_module, curves))
        metrics["time/wall_s"] = time.perf_counter() - self.started
        self.metrics = metrics
        if not trainer.is_global_zero:
            return
        summary = {k: v for k, v in metrics.items() if k in self.SUMMARY or k.startswith("test_user/")}
        for logger in trainer.loggers:
            logger.log_metrics(summary)
        # the tested checkpoint (the best one; without validation the last epoch's)
        checkpoint = trainer.ckpt_path or getattr(trainer.checkpoint_callback, "best_model_path", None)
        if self.upload_checkpoint and checkpoint and Path(checkpoint).is_file():
            runs.log_artifact(trainer.loggers, Path(checkpoint), "checkpoints")
        if self.log_model:
            self._log_mlflow_model(trainer, pl_module)
        record = {
            "metrics": metrics,
            "mlflow_run_ids": runs.run_ids(trainer.loggers),
            "config": self.config,
        }
        write_text_atomically(self.output_dir / "metrics.json", json.dumps(record, default=str), "run record")

    def _write_artifacts(self, trainer: L.Trainer, pl_module: L.LightningModule, curves) -> dict[str, float]:
        if writer := getattr(pl_module, "write_test_artifacts", None):  # the spotter writes its own
            writer(self.output_dir / "evaluation", self.figures)
            if curves is not None and curves.history:
                artifacts.write_csv(curves.history, self.output_dir / "evaluation" / "learning_curves.csv")
            runs.log_artifact(trainer.loggers, self.output_dir / "evaluation", "evaluation")
            return {}
        datamodule = trainer.datamodule
        per_user = artifacts.write_artifacts(
            pl_module.net,
            datamodule.test_dataloader(),
            datamodule.records.users[datamodule.split.test],
            [datamodule.records.files[i] for i in datamodule.split.test],
            curves.history if curves is not None else [],
            self.output_dir / "evaluation",
            figures=self.figures,
        )
        runs.log_artifact(trainer.loggers, self.output_dir / "evaluation", "evaluation")
        return {f"test_user/{user}": accuracy for user, accuracy in per_user.items()}

    def _log_mlflow_model(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from gesture_rnn.tracking.mlflow_model import log_mlflow_model, log_spotter_model

        if hasattr(pl_module, "rule"):  # the spotter: its ONNX step model and sidecar
            for logger in runs.mlflow_loggers(trainer.loggers):
                with runs.guarded(logger, "the MLflow model") as live:
                    if live:
                        uri = log_spotter_model(pl_module.net, pl_module.rule, logger.experiment,
                                                logger.run_id, logger.experiment_id)  # fmt: skip
                        log.info("MLflow model: %s", uri)
            return
        if getattr(pl_module.net, "bidirectional", False):
            log.info("log_model: a bidirectional network does not run unpacked; no MLflow model logged")
            return
        for logger in runs.mlflow_loggers(trainer.loggers):
            with runs.guarded(logger, "the MLflow model") as live:
                if live:
                    uri = log_mlflow_model(
                        pl_module.net, logger.experiment, logger.run_id, logger.experiment_id
                    )
                    log.info("MLflow model: %s", uri)


class RegisterModel(Callback):
    """``register=true``: once ``record`` has logged the tested model, register it in the MLflow
    Model Registry as a new version of ``model_name`` and move ``alias`` to it."""

    TAGGED = ("test/acc", "test/f1", "val/acc_best", "calibration/temperature")

    def __init__(self, record: RunRecord, model_name: str, alias: str) -> None:
        self.record, self.model_name, self.alias = record, model_name, alias
        self.versions: list[str] = []  # what was registered (one per MLflow logger)

    def summary(self) -> str:
        """The summary's line for it."""
        uri = f"models:/{self.model_name}@{self.alias}"
        return f"  registered     {uri} = {self.model_name} version {', '.join(self.versions)}"

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from gesture_rnn.tracking.registry import register_run

        if not trainer.is_global_zero:
            return
        tags = {key: self.record.metrics[key] for key in self.TAGGED if key in self.record.metrics}
        for logger in runs.mlflow_loggers(trainer.loggers):
            if getattr(logger, "lost", None):  # its server is gone: say so, register nothing
                logger.skipped.append("the registration")
                continue
            version = register_run(logger.experiment, logger.run_id, self.model_name, self.alias, tags)
            self.versions.append(version)
            log.info("Registered as %s version %s (alias %s): models:/%s@%s", self.model_name, version,
                     self.alias, self.model_name, self.alias)  # fmt: skip
