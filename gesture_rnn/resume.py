"""Interrupt and resume: a killed run continues exactly, in its own folder and MLflow run.

Exactness rests on three things: training randomness is re-derived from (seed, epoch) at every
epoch start (``SeedEachEpoch``; the batch order already is, see ``data.sampling``), checkpoints are
written at the very end of an epoch (``save_on_train_epoch_end``), and a resumed run writes into
the folder of the checkpoint it resumes, so ModelCheckpoint restores its best-so-far state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from gesture_rnn.data.sampling import derived_seed
from gesture_rnn.errors import ConfigError

log = logging.getLogger(__name__)

INTERRUPTS = (KeyboardInterrupt, SIGTERMException)
MLFLOW_RUN_FILE = "mlflow_run_id.txt"
INTERRUPTED_CHECKPOINT = "interrupted.ckpt"
# the model keys a checkpoint's weights depend on
ARCHITECTURE_KEYS = ("hidden", "layers", "bidirectional", "input_size", "num_classes")


class SeedEachEpoch(Callback):
    """Reseed torch (dropout) and the datamodule's batch order from (seed, epoch, rank)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        torch.manual_seed(derived_seed(self.seed, epoch, trainer.global_rank, 2))
        if hasattr(trainer.datamodule, "set_epoch"):
            trainer.datamodule.set_epoch(epoch)


class CheckpointOnInterrupt(Callback):
    """Ctrl-C or SIGTERM: save ``interrupted.ckpt`` beside the epoch checkpoints.

    ``last.ckpt`` (end of the last complete epoch) is what ``ckpt_path=last`` resumes exactly;
    ``interrupted.ckpt`` keeps the partial epoch for whoever wants it.
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        checkpoint = trainer.checkpoint_callback
        if not isinstance(exception, INTERRUPTS) or checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / INTERRUPTED_CHECKPOINT
        trainer.save_checkpoint(path)
        log.warning("Interrupted: saved %s", path)


@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path
    run_dir: Path
    mlflow_run_id: str | None


def _newest_last_checkpoint(log_dir: Path, task_name: str) -> Path:
    candidates = sorted(
        (log_dir / task_name / "runs").glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: no run under {log_dir / task_name / 'runs'} has a checkpoints/last.ckpt "
            "to resume; pass the checkpoint's path instead"
        )
    return candidates[-1]


def _read_checkpoint(path: Path, name: str) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0][:120]
        raise ConfigError(f"ckpt_path={name} is not a checkpoint written by train.py ({reason})") from None


def check_architecture(checkpoint: dict[str, Any], model_cfg: DictConfig, name: str) -> None:
    """A clear error instead of a size-mismatch traceback from load_state_dict."""
    saved = checkpoint.get("hyper_parameters")
    if not isinstance(saved, dict) or "hidden" not in saved:
        raise ConfigError(f"ckpt_path={name} is not a checkpoint of this project's GRUClassifier")
    differ = [
        f"model.{key}={model_cfg.get(key)!r} (checkpoint: {saved.get(key)!r})"
        for key in ARCHITECTURE_KEYS
        if key in model_cfg and key in saved and model_cfg.get(key) != saved.get(key)
    ]
    if differ:
        raise ConfigError(
            f"ckpt_path={name} was trained with another model: {', '.join(differ)}; "
            "resume with the run's own model settings"
        )


def plan_resume(cfg: DictConfig) -> ResumePlan | None:
    """Resolve ``ckpt_path`` (a file, or ``last`` = newest run's last.ckpt) and check it fits."""
    name = cfg.get("ckpt_path")
    if not name:
        return None
    if name == "last":
        checkpoint = _newest_last_checkpoint(Path(cfg.paths.log_dir), cfg.get("task_name", "train"))
    else:
        checkpoint = Path(str(name)).expanduser().resolve()
        if not checkpoint.is_file():
            raise ConfigError(f"ckpt_path={name} does not exist")
    check_architecture(_read_checkpoint(checkpoint, str(name)), cfg.model, str(name))
    # a checkpoint of a train.py run lives in <run dir>/checkpoints/: continue in that run
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    run_file = run_dir / MLFLOW_RUN_FILE if run_dir is not None else None
    run_id = run_file.read_text().strip() if run_file is not None and run_file.is_file() else None
    return ResumePlan(checkpoint, run_dir or Path(cfg.paths.output_dir), run_id or None)
