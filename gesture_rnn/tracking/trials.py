"""The finished jobs of a multirun or sweep folder (each job's ``metrics.json``): what sweeps pick
the best trial from and reports are written from. Light imports only (no MLflow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gesture_rnn.errors import ConfigError


def find_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished trial of a sweep: its job number and folder, overrides and metrics."""
    trials = []
    # numeric job order (2 before 10), so ties resolve to the earliest trial, as the sweepers do
    files = sorted(sweep_dir.glob("*/metrics.json"), key=lambda f: (len(f.parent.name), f.parent.name))
    for metrics_file in files:
        job_dir = metrics_file.parent
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.exists() else []
        record = json.loads(metrics_file.read_text())
        trials.append({"job": job_dir.name, "dir": job_dir, "overrides": overrides, **record})
    return trials


def best_trial(trials: list[dict[str, Any]], metric: str, direction: str) -> dict[str, Any] | None:
    scored = [t for t in trials if isinstance(t["metrics"].get(metric), float | int)]
    scored = [t for t in scored if not math.isnan(t["metrics"][metric])]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda t: t["metrics"][metric])


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweep optimises; a clear error if the run did not produce it."""
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name!r} was not produced by this run; available: {sorted(metrics)}"
        )
    return metrics[name]


def tested_checkpoint(job_dir: Path) -> Path:
    """A job's tested checkpoint: the best by validation if it kept one, else last.ckpt."""
    best = sorted((job_dir / "checkpoints").glob("epoch_*.ckpt"))
    return best[-1] if best else job_dir / "checkpoints" / "last.ckpt"
