"""``evaluate(cfg)``: test a saved checkpoint on a chosen split, through the same data, trainer
and run-record path as ``train(cfg)``; nothing is trained."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from gesture_rnn.config.checks import validate_config
from gesture_rnn.models.checkpoint import checkpoint_file
from gesture_rnn.models.classifier import load_classifier
from gesture_rnn.tracking import runs
from gesture_rnn.tracking.registry import model_checkpoint
from gesture_rnn.training.callbacks import LearningCurves, MetricsProgressBar, RunRecord


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test ``ckpt_path`` on the split that ``data.*`` and ``seed`` describe (the training run's
    seed and split give back its own test part) and write the test artifacts."""
    with runs.keeps_global_tracking_uri():
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict[str, float]:
    validate_config(cfg)
    runs.check_tracking_servers(cfg)
    path, registered = model_checkpoint(cfg)
    checkpoint = checkpoint_file(path)
    model = load_classifier(checkpoint)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    output_dir = Path(cfg.paths.output_dir)
    record = RunRecord(output_dir, runs.run_params(cfg), upload_checkpoint=False)
    tags = {
        **runs.run_tags(cfg, datamodule.checksum, net=model.hparams["net"]),
        "evaluated_checkpoint": str(checkpoint),
    }
    if registered is not None:
        tags.update({f"evaluated_{k}": str(v) for k, v in registered.describe().items()})
    loggers = runs.build_loggers(cfg, tags)
    with runs.marks_failures(loggers, interrupted=lambda: False):
        callbacks = [MetricsProgressBar(), LearningCurves(), record]
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        runs.log_run_config(loggers, cfg, output_dir / "config_resolved.yaml")
        # the weights are loaded (above): a ckpt_path here would have Lightning ask for the
        # training run's callbacks, which testing does not use
        trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = record.metrics
    print(f"  test accuracy  {metrics['test/acc']:.4f}    macro-F1 {metrics['test/f1']:.4f}")
    if registered is not None:
        print(f"  model          {registered.uri} = {registered.model_name or 'run'} version "
              f"{registered.version or '-'} (run {registered.run_id})")  # fmt: skip
    print(f"  checkpoint     {checkpoint}")
    print(f"  artifacts      {output_dir / 'evaluation'}")
    uri = str((cfg.get("logger") or {}).get("mlflow", {}).get("tracking_uri", ""))
    for line in runs.run_lines(loggers, uri):
        print(line)
    return metrics
