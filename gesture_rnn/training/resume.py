"""Resolve ``ckpt_path`` for a resumed run and move the run back into its own folder.

Exactness rests on three things: training randomness is re-derived from (seed, epoch) at every
epoch start (``callbacks.SeedEachEpoch``), checkpoints are written at the very end of an epoch
(``save_on_train_epoch_end``), and a resumed run continues in the folder, MLflow run and data
split of the checkpoint it resumes.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import check_shape, data_state, read_checkpoint
from gesture_rnn.tracking.runs import RUN_ID_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path
    run_dir: Path | None  # the run folder the checkpoint belongs to (None: a loose file)
    mlflow_run_id: str | None
    datamodule_state: dict[str, Any]  # the checkpoint's data seed and checksum


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


def plan_resume(cfg: DictConfig) -> ResumePlan | None:
    """Resolve ``ckpt_path`` (a file, or ``last`` = newest run's last.ckpt) and check it fits."""
    name = cfg.get("ckpt_path")
    if not name:
        return None
    if name == "last":
        checkpoint = _newest_last_checkpoint(Path(cfg.paths.log_dir), cfg.get("task_name", "train"))
    else:
        checkpoint = Path(str(name)).expanduser().resolve()
    content = read_checkpoint(checkpoint if name == "last" else name)
    check_shape(content, cfg.model.net, f"ckpt_path={name}")
    check_same_split(content, cfg.data, f"ckpt_path={name}")
    # a checkpoint of a train.py run lives in <run dir>/checkpoints/: continue in that run
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    run_file = run_dir / RUN_ID_FILE if run_dir is not None else None
    run_id = run_file.read_text().strip() if run_file is not None and run_file.is_file() else None
    return ResumePlan(checkpoint, run_dir, run_id or None, data_state(content))


# the data settings that decide which recordings train, select and test a model
SPLIT_SETTINGS = (
    "split", "test_users", "val_users", "val_fraction", "test_fraction", "stratify",
    "drop_conflicting_duplicates", "folds", "fold",
)  # fmt: skip


def check_same_split(content: dict[str, Any], data_cfg: DictConfig, key: str) -> None:
    """A resumed run continues the checkpoint's record: not a personalised model (its shots are
    one person's), not another split (it would train on the checkpoint's held-out users and keep
    its old tags in the same MLflow run). One line before anything is loaded or logged."""
    if personalization := content.get("personalization"):
        raise ConfigError(
            f"{key} is a personalised model (personalize.py, user {personalization.get('user')}); "
            f"resume its base model's run ({personalization.get('base_checkpoint')}), or personalise again"
        )
    saved = content.get("datamodule_hyper_parameters") or {}
    given = OmegaConf.to_container(data_cfg, resolve=True)
    names = [n for n in SPLIT_SETTINGS if n in saved and n in given]
    if given.get("seed") is not None and saved.get("seed") is not None:
        names.append("seed")
    differ = [f"data.{n}={given[n]!r} (checkpoint: {saved[n]!r})" for n in names if given[n] != saved[n]]
    if differ:
        raise ConfigError(
            f"{key} was trained on another split: {', '.join(differ)}; resume with the run's own data "
            "settings, or start a new run without ckpt_path"
        )


def check_same_data(plan: ResumePlan, checksum: str | None, source: object) -> None:
    """The data found now is the data the checkpoint was trained on (its md5 recorded with it)."""
    saved = plan.datamodule_state.get("checksum")
    if saved and checksum and saved != checksum:
        raise ConfigError(
            f"ckpt_path={plan.checkpoint} was trained on data with md5 {saved}; {source} has md5 "
            f"{checksum}: resume with the same data (data.path), or start a new run"
        )


def _move_log_files(new_dir: Path, run_dir: Path) -> None:
    """Hydra opened this command's log file in ``new_dir``: append it to the run's own log, on
    every logger that writes to it (the root, and those Hydra's job_logging gave it, e.g.
    ``lightning``)."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    moved: dict[int, logging.FileHandler] = {}
    for logger in loggers:
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.FileHandler) or Path(handler.baseFilename).parent != new_dir:
                continue
            if id(handler) not in moved:
                handler.close()
                opened = Path(handler.baseFilename)
                target = run_dir / opened.name
                if opened.is_file():
                    with target.open("a") as out:  # what was logged before the move
                        out.write(opened.read_text())
                    opened.unlink()
                replacement = logging.FileHandler(target, mode="a")
                replacement.setFormatter(handler.formatter)
                replacement.setLevel(handler.level)
                moved[id(handler)] = replacement
            logger.removeHandler(handler)
            logger.addHandler(moved[id(handler)])


def continue_in_run_folder(cfg: DictConfig, plan: ResumePlan) -> None:
    """A resumed run writes into the checkpoint's run folder (checkpoints, log, metrics.json),
    continues its MLflow run, and leaves no second, orphaned folder behind."""
    if plan.run_dir is None:
        return
    new_dir = Path(cfg.paths.output_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(plan.run_dir)
    if new_dir.resolve() == plan.run_dir.resolve():
        return
    _move_log_files(new_dir, plan.run_dir)
    if (new_dir / ".hydra").is_dir():  # this command's composed config, kept beside the original
        shutil.move(str(new_dir / ".hydra"), str(plan.run_dir / ".hydra" / f"resumed-{new_dir.name}"))
    if new_dir.is_dir() and not any(new_dir.iterdir()):
        new_dir.rmdir()
    log.info("Resuming %s in %s", plan.checkpoint, plan.run_dir)


@contextmanager
def in_own_checkpoint_folder(plan: ResumePlan | None) -> Iterator[None]:
    """Fit a resumed run without Lightning's "Checkpoint directory ... exists and is not empty":
    the run continues in its own folder, whose checkpoints are meant to be there. A new run
    keeps the warning (a folder of another run's checkpoints)."""
    with warnings.catch_warnings():
        if plan is not None:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        yield
