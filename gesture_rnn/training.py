"""``train(cfg)``: the whole run — data, model, fit, test, MLflow — from one composed config."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from gesture_rnn import deploy, evaluation, resume, tracking
from gesture_rnn.config_checks import validate_config
from gesture_rnn.errors import ConfigError, Interrupted
from gesture_rnn.parallel import fair_thread_share, processes_per_run

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Build every entry of a name -> {_target_: ...} group; entries set to null are skipped."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def _build_callbacks(cfg: DictConfig, has_validation: bool) -> list[Callback]:
    callbacks_cfg = cfg.get("callbacks")
    if not has_validation and callbacks_cfg:
        with open_dict(callbacks_cfg):
            for name, node in callbacks_cfg.items():
                monitor = node.get("monitor") if node is not None else None
                if not (isinstance(monitor, str) and monitor.startswith("val/")):
                    continue
                if node._target_.endswith("ModelCheckpoint"):
                    node.monitor = None  # no validation: keep the latest (= last) epoch
                else:
                    raise ConfigError(
                        f"callbacks.{name} monitors {monitor}, which needs validation data; "
                        "set data.val_fraction > 0 (allowed range [0, 1)) or remove the callback"
                    )
    return instantiate_all(callbacks_cfg)


def _checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    return trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None


def _metrics_of(trainer: L.Trainer) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def _collect_metrics(trainer: L.Trainer, fit_metrics: dict[str, float], elapsed_s: float) -> dict[str, float]:
    """Last-epoch fit metrics (train/*, val/*), then the test metrics of the tested model."""
    metrics = {**fit_metrics, **_metrics_of(trainer)}
    checkpoint = _checkpoint_callback(trainer)
    if checkpoint is not None and checkpoint.monitor and checkpoint.best_model_score is not None:
        metrics[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
    metrics["time/wall_s"] = elapsed_s
    return metrics


def _summary(metrics: dict[str, float], loggers: list[Logger], show_test: bool) -> str:
    def fmt(name: str, digits: int = 4) -> str:
        value = metrics.get(name, math.nan)
        return f"{value:.{digits}f}"

    if show_test:
        lines = [
            "",
            f"  test accuracy  {fmt('test/acc')}    macro-F1 {fmt('test/f1')}",
            f"  loss           train {fmt('train/loss')}  test {fmt('test/loss')}  "
            f"overfit ratio {fmt('test/overfit_ratio', 2)}x",
        ]
    else:  # a sweep trial: the test set is reported once, for the best trial, at the end
        lines = ["", f"  loss           train {fmt('train/loss')}"]
    lines.append(f"  wall time      {metrics['time/wall_s']:.1f} s")
    if "val/acc_best" in metrics:
        lines.insert(2, f"  best val acc   {fmt('val/acc_best')} (model selection; test data unused)")
    for logger in tracking.mlflow_loggers(loggers):
        lines.append(f"  MLflow run     {logger.run_id}: {tracking.run_location(logger)}")
    return "\n".join(lines)


def run_tags(cfg: DictConfig, data_md5: str, output_dir: Path) -> dict[str, str]:
    tags = {
        "mlflow.source.git.commit": tracking.git_commit(),
        "data_md5": data_md5,
        "data_split": str(cfg.data.split),
        # MLflow's random run names repeat under a fixed seed; name runs after their folder instead
        "mlflow.runName": output_dir.name,
    }
    if parent_run_id := os.environ.get(tracking.PARENT_RUN_ENV):
        tags["mlflow.parentRunId"] = parent_run_id  # a trial of a sweep: nest under its parent run
        tags["mlflow.runName"] = f"trial {output_dir.name}"
    return tags


def test_artifacts(model, datamodule, loggers: list[Logger], output_dir: Path) -> dict[str, float]:
    """Write and log the test-set plots and tables; return per-user accuracies as metrics."""
    per_user = evaluation.write_artifacts(
        model,
        datamodule.test_dataloader(),
        datamodule.records.users[datamodule.split.test],
        model.history,
        output_dir / "evaluation",
    )
    tracking.log_artifact(loggers, output_dir / "evaluation", "evaluation")
    return {f"test_user/{user}": accuracy for user, accuracy in per_user.items()}


def _continue_in(cfg: DictConfig, plan: resume.ResumePlan) -> None:
    """A resumed run writes into the checkpoint's run folder and its MLflow run."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(plan.run_dir)
        mlflow_cfg = (cfg.get("logger") or {}).get("mlflow")
        if plan.mlflow_run_id and mlflow_cfg is not None:
            mlflow_cfg.run_id = plan.mlflow_run_id
    log.info("Resuming %s in %s", plan.checkpoint, plan.run_dir)


def _log_mlflow_model(model, loggers: list[Logger]) -> None:
    """The tested model as an MLflow model (``mlflow.pyfunc.load_model(runs:/<id>/model)``)."""
    if model.hparams.bidirectional:
        log.info("log_model: a bidirectional GRU does not run unpacked; no MLflow model logged")
        return
    for logger in tracking.mlflow_loggers(loggers):
        uri = deploy.log_mlflow_model(model, logger.run_id, logger._tracking_uri)
        log.info("MLflow model: %s", uri)


def _interrupted(err: BaseException, output_dir: Path, loggers: list[Logger]) -> Interrupted:
    what = "SIGTERM" if isinstance(err, SIGTERMException) else "Ctrl-C"
    last = output_dir / "checkpoints" / "last.ckpt"
    runs = ", ".join(logger.run_id for logger in tracking.mlflow_loggers(loggers) if logger._run_id)
    marked = f"MLflow run {runs} marked KILLED; " if runs else ""
    if last.is_file():
        hint = f"resume with the same overrides plus ckpt_path={last} (or ckpt_path=last)"
    else:
        hint = f"no epoch was completed; {last.parent / resume.INTERRUPTED_CHECKPOINT} holds the partial one"
    return Interrupted(f"training stopped by {what}; {marked}{hint}")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test one model as configured; return its metrics (test/acc, val/acc_best, ...)."""
    started = time.perf_counter()
    validate_config(cfg)
    tracking.check_tracking_servers(cfg)
    plan = resume.plan_resume(cfg)
    if plan is not None:
        _continue_in(cfg, plan)
    if cfg.get("seed") is not None:  # seed=0 is a seed like any other
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    threads = cfg.get("num_threads") or fair_thread_share(processes_per_run(cfg))
    if threads:
        torch.set_num_threads(threads)
        log.info("Using %d CPU thread(s)", threads)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")

    model = instantiate(cfg.model)
    model.set_normalization(datamodule.mean, datamodule.std)

    callbacks = _build_callbacks(cfg, datamodule.has_validation)
    callbacks += [resume.SeedEachEpoch(datamodule.sampling_seed), resume.CheckpointOnInterrupt()]
    loggers: list[Logger] = instantiate_all(cfg.get("logger"))
    output_dir = Path(cfg.paths.output_dir)
    tracking.add_tags(loggers, run_tags(cfg, datamodule.checksum, output_dir))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    main_process = trainer.is_global_zero  # under DDP, only rank 0 writes files and reports

    with tracking.marks_failures(loggers):
        if main_process:
            tracking.log_run_config(loggers, cfg, output_dir / "config_resolved.yaml")
            tracking.remember_run_ids(loggers, output_dir / resume.MLFLOW_RUN_FILE)
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(plan.checkpoint) if plan else None)
        except (KeyboardInterrupt, SIGTERMException, SystemExit) as err:
            raise _interrupted(err, output_dir, loggers) from None
        fit_metrics = _metrics_of(trainer)  # trainer.test() resets callback_metrics
        checkpoint = _checkpoint_callback(trainer)
        use_best = datamodule.has_validation and checkpoint is not None and checkpoint.best_model_path
        # Without validation the study's protocol applies: test the last epoch's weights.
        trainer.test(model, datamodule=datamodule, ckpt_path="best" if use_best else None, verbose=False)
        metrics = _collect_metrics(trainer, fit_metrics, time.perf_counter() - started)
        if not main_process:
            return metrics
        metrics.update(test_artifacts(model, datamodule, loggers, output_dir))
        summary_only = {
            k: v
            for k, v in metrics.items()
            if k == "time/wall_s" or k.endswith("_best") or k.startswith("test_user/")
        }
        for logger in loggers:
            logger.log_metrics(summary_only)
        if checkpoint is not None and checkpoint.best_model_path:
            tracking.log_artifact(loggers, Path(checkpoint.best_model_path), "checkpoints")
        if cfg.get("log_model"):
            _log_mlflow_model(model, loggers)
        run_ids = [logger.run_id for logger in tracking.mlflow_loggers(loggers)]
        # read by the sweep callback to report the best trial's test accuracy once, at the end
        resolved = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
        record = {"metrics": metrics, "mlflow_run_ids": run_ids, "config": resolved}
        (output_dir / "metrics.json").write_text(json.dumps(record, default=str))
    print(_summary(metrics, loggers, show_test=not cfg.get("optimized_metric")))
    return metrics


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweep optimises; a clear error if the run did not produce it."""
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name!r} was not produced by this run; available: {sorted(metrics)}"
        )
    return metrics[name]
