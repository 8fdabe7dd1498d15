"""The few lines a run prints at its end: accuracy, losses, overfit ratio, time, where the run
folder and the tested checkpoint are (what evaluate.py, predict.py and export.py take), MLflow run."""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from gesture_rnn.tracking import runs
from gesture_rnn.tracking.trials import tested_checkpoint


def format_summary(
    metrics: dict[str, float], loggers: list[Logger], cfg: DictConfig, output_dir: Path, show_test: bool
) -> str:
    def fmt(name: str, digits: int = 4) -> str:
        return f"{metrics.get(name, math.nan):.{digits}f}"

    if show_test:
        lines = [
            "",
            f"  test accuracy  {fmt('test/acc')}    macro-F1 {fmt('test/f1')}",
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
    for logger in runs.mlflow_loggers(loggers):
        lines.append(f"  MLflow run     {logger.run_id}: {runs.run_location(logger, uri)}")
    return "\n".join(lines)
