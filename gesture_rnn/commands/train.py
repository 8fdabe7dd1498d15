"""``train(cfg)``: one run — data, model, fit, test — from one composed config.

Bookkeeping (seeding, curves, artifacts, MLflow model, ``metrics.json``) is done by callbacks
(``gesture_rnn.training.callbacks``); this module wires the pieces together and handles the run's end.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from gesture_rnn.config.checks import validate_config
from gesture_rnn.errors import ConfigError, Interrupted
from gesture_rnn.tracking import runs
from gesture_rnn.tracking.trials import tested_checkpoint
from gesture_rnn.training import distillation, resume
from gesture_rnn.training.callbacks import (
    INTERRUPTED_CHECKPOINT,
    CheckpointOnInterrupt,
    LearningCurves,
    RegisterModel,
    RunRecord,
    SeedEachEpoch,
    TemperatureScaling,
)
from gesture_rnn.training.checkpoint_io import AtomicCheckpointIO
from gesture_rnn.utils.parallel import fair_thread_share, processes_per_run

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test one model as configured; return its metrics (test/acc, val/acc_best, ...)."""
    with runs.keeps_global_tracking_uri():
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    # 1. check the config and where it resumes from, before anything is loaded or logged
    validate_config(cfg)
    runs.check_tracking_servers(cfg)
    plan = resume.plan_resume(cfg)
    if plan is not None:
        runs.check_resumable_run(cfg, plan.mlflow_run_id, plan.checkpoint)
    set_up_process(cfg)

    # 2. data (with the teachers' soft targets when distilling) and model (the network
    #    normalises with the training part's statistics)
    datamodule = instantiate(cfg.data)
    if plan is not None:
        datamodule.load_state_dict(plan.datamodule_state)  # seed=null: the checkpoint's split
    datamodule.setup("fit")
    if plan is not None:  # checked: the run continues in the checkpoint's folder
        resume.check_same_data(plan, datamodule.checksum, datamodule.source)
        resume.continue_in_run_folder(cfg, plan)
    if teachers := OmegaConf.select(cfg, "model.distillation.teachers"):
        distillation.attach_soft_targets(datamodule, list(teachers), cfg.model.distillation.temperature)
    model = instantiate(cfg.model)
    model.net.set_normalization(datamodule.mean, datamodule.std)
    size = sum(p.numel() for p in model.net.parameters())
    log.info("Network %s: %s parameters", type(model.net).__name__, f"{size:,}")  # Lightning's table: off

    # 3. trainer, callbacks and loggers (the MLflow run is created here, with its tags)
    output_dir = Path(cfg.paths.output_dir)
    interrupt = CheckpointOnInterrupt()
    record = RunRecord(
        output_dir,
        runs.run_params(cfg),
        log_model=bool(cfg.get("log_model")),
        figures=cfg.get("figures", True),
    )
    callbacks = build_callbacks(cfg, datamodule.has_validation)
    callbacks += [SeedEachEpoch(), interrupt, LearningCurves(), TemperatureScaling(), record]
    # a sweep's trial leaves registering to the sweep, which registers its best trial
    in_sweep = bool(os.environ.get(runs.PARENT_RUN_ENV))
    registrar = (
        RegisterModel(record, cfg.registry.model_name, cfg.registry.alias)
        if cfg.get("register") and not in_sweep
        else None
    )
    if registrar is not None:
        callbacks.append(registrar)
    loggers = runs.build_loggers(cfg, runs.run_tags(cfg, datamodule.checksum), plan_run_id(plan))
    with runs.marks_failures(loggers, interrupted=lambda: interrupt.interrupted_by is not None):
        trainer: L.Trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
        )

        # 4. fit, then test the best checkpoint (without validation, the last epoch's weights)
        if trainer.is_global_zero:
            runs.log_run_config(loggers, cfg, output_dir / config_file_name(plan))
            runs.remember_run_id(loggers, output_dir / runs.RUN_ID_FILE)
        try:
            with resume.in_own_checkpoint_folder(plan):
                trainer.fit(model, datamodule=datamodule, ckpt_path=str(plan.checkpoint) if plan else None)
        except BaseException as err:
            if interrupt.interrupted_by is None:
                raise
            raise _interrupted(interrupt.interrupted_by, output_dir, loggers) from err
        best = trainer.checkpoint_callback
        tested = "best" if datamodule.has_validation and getattr(best, "best_model_path", "") else None
        trainer.test(model, datamodule=datamodule, ckpt_path=tested, verbose=False, weights_only=True)

    # 5. report (the run record has logged and written everything else)
    if trainer.is_global_zero and cfg.get("print_summary", True):  # a cv fold: its line in cv's table
        show_test = not cfg.get("optimized_metric")
        print(format_summary(record.metrics, loggers, cfg, output_dir, show_test=show_test))
        if registrar is not None and registrar.versions:
            print(registrar.summary())
    return record.metrics


def format_summary(
    metrics: dict[str, float], loggers: list[Logger], cfg: DictConfig, output_dir: Path, show_test: bool
) -> str:
    def fmt(name: str, digits: int = 4) -> str:
        return f"{metrics.get(name, math.nan):.{digits}f}"

    if show_test and "test/event_f1" in metrics:  # the spotter (gesture_rnn.streaming.evaluation)
        lines = [
            "",
            f"  event F1       {fmt('test/event_f1', 3)} (streams of a construction never trained on; lowest "
            f"user {fmt('test/event_f1_worst', 3)}), {fmt('test_builder/event_f1', 3)} on the training "
            "builder's",
            f"  false / h      rest {fmt('test/false_per_h_rest', 1)}  non-target movement "
            f"{fmt('test/false_per_h_movement', 1)}  everyday motion {fmt('test/false_per_h_everyday', 1)}",
            f"  median delay   {fmt('test/delay_s', 2)} s    decision rule chosen on validation: event F1 "
            f"{fmt('val/event_f1', 3)}",
        ]
    elif show_test:
        held_out = (
            OmegaConf.select(cfg, "data.test_users")
            if OmegaConf.select(cfg, "data.split") == "users"
            else None
        )
        who = f"    held out: {', '.join(held_out)} (never seen in training)" if held_out else ""
        lines = [
            "",
            f"  test accuracy  {fmt('test/acc')}    macro-F1 {fmt('test/f1')}{who}",
            f"  loss           train {fmt('train/loss')}  test {fmt('test/loss')}  "
            f"overfit ratio {fmt('test/overfit_ratio', 2)}x",
        ]
    else:  # a sweep trial: the test set is reported once, for the best trial, at the end
        lines = ["", f"  loss           train {fmt('train/loss')}"]
    lines.append(f"  wall time      {metrics.get('time/wall_s', math.nan):.1f} s")
    lines.append(f"  run folder     {output_dir}")
    lines.append(
        f"  checkpoint     {tested_checkpoint(output_dir)} (tested; ckpt_path= of evaluate, predict, export)"
    )
    if "val/acc_best" in metrics:
        lines.insert(2, f"  best val acc   {fmt('val/acc_best')} (model selection; test data unused)")
    uri = str((cfg.get("logger") or {}).get("mlflow", {}).get("tracking_uri", ""))
    return "\n".join(lines + runs.run_lines(loggers, uri))


def set_up_process(cfg: DictConfig) -> None:
    """Seed everything (seed=0 is a seed like any other) and take a fair share of the CPU."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    threads = cfg.get("num_threads") or fair_thread_share(processes_per_run(cfg))
    cores = os.cpu_count() or 1
    if threads and threads > cores:
        log.warning(
            "num_threads=%d is more than the %d CPU cores: expect it to be slower, not faster", threads, cores
        )
    if threads:
        torch.set_num_threads(threads)
        log.info("Using %d CPU thread(s)", threads)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Build every entry of a name -> {_target_: ...} group; entries set to null are skipped."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build_callbacks(cfg: DictConfig, has_validation: bool) -> list[Callback]:
    """``cfg.callbacks``; without validation a checkpoint keeps the latest epoch, and a callback
    that needs validation is refused with the fix."""
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


def plan_run_id(plan: resume.ResumePlan | None) -> str | None:
    return plan.mlflow_run_id if plan is not None else None


def config_file_name(plan: resume.ResumePlan | None) -> str:
    """A resumed run keeps the config it started with and records the resumed one beside it."""
    return "config_resolved.yaml" if plan is None else "config_resolved.resumed.yaml"


def _interrupted(what: str, output_dir: Path, loggers: list[Logger]) -> Interrupted:
    last = output_dir / "checkpoints" / "last.ckpt"
    run_list = ", ".join(runs.run_ids(loggers))
    marked = f"MLflow run {run_list} marked KILLED; " if run_list else ""
    if last.is_file():
        hint = f"resume with the same overrides plus ckpt_path={last} (or ckpt_path=last)"
    else:
        hint = f"no epoch was completed; {last.parent / INTERRUPTED_CHECKPOINT} holds the partial one"
    return Interrupted(f"training stopped by {what}; {marked}{hint}")
