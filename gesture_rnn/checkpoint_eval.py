"""``evaluate(cfg)``: test a saved checkpoint on a chosen split, with the same artifacts as training."""

from __future__ import annotations

import time
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from gesture_rnn import tracking
from gesture_rnn.config_checks import validate_config
from gesture_rnn.models.checkpoint import load_checkpoint
from gesture_rnn.training import instantiate_all, run_tags, test_artifacts


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test ``ckpt_path`` on the split that ``data.*`` and ``seed`` describe (use the training run's
    seed and split to get its own test part) and write the test artifacts; nothing is trained."""
    started = time.perf_counter()
    validate_config(cfg)
    model = load_checkpoint(cfg.get("ckpt_path"))
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    loggers: list[Logger] = instantiate_all(cfg.get("logger"))
    output_dir = Path(cfg.paths.output_dir)
    tracking.add_tags(
        loggers,
        {**run_tags(cfg, datamodule.checksum, output_dir), "evaluated_checkpoint": str(cfg.ckpt_path)},
    )
    trainer = instantiate(cfg.trainer, callbacks=[], logger=loggers or False)
    with tracking.marks_failures(loggers):
        tracking.log_run_config(loggers, cfg, output_dir / "config_resolved.yaml")
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        metrics.update(test_artifacts(model, datamodule, loggers, output_dir))
        metrics["time/wall_s"] = time.perf_counter() - started
        for logger in loggers:
            logger.log_metrics({k: v for k, v in metrics.items() if not k.startswith("test/")})
    print(f"  test accuracy  {metrics['test/acc']:.4f}    macro-F1 {metrics['test/f1']:.4f}")
    print(f"  checkpoint     {cfg.ckpt_path}")
    print(f"  artifacts      {output_dir / 'evaluation'}")
    return metrics
