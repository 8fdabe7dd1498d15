"""MLflow helpers around Lightning's MLFlowLogger: tags, params, artifacts, run status."""

from __future__ import annotations

import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gesture_rnn.errors import TrackingError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Set by the sweep callback: every trial's run becomes a child (mlflow.parentRunId) of this run.
PARENT_RUN_ENV = "GESTURE_RNN_PARENT_RUN_ID"


def git_commit(cwd: Path = PROJECT_ROOT) -> str:
    """The checked-out commit (with a ``-dirty`` suffix for uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": 64}}`` -> ``{"model.hidden": 64}``; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def mlflow_loggers(loggers: Iterable[Logger]) -> list[MLFlowLogger]:
    return [logger for logger in loggers if isinstance(logger, MLFlowLogger)]


def add_tags(loggers: Iterable[Logger], tags: Mapping[str, str]) -> None:
    """Tags must be set before the run is created, which MLFlowLogger does lazily."""
    for logger in mlflow_loggers(loggers):
        logger.tags = {**(logger.tags or {}), **tags}


def _params_to_log(logger: Logger, params: dict[str, Any]) -> dict[str, Any]:
    """All of them for a new run; for a resumed MLflow run only those it lacks (MLflow params are
    immutable: a resumed run keeps the values it started with, e.g. ckpt_path=null)."""
    if not isinstance(logger, MLFlowLogger) or logger._run_id is None:
        return params
    existing = logger.experiment.get_run(logger.run_id).data.params
    return {key: value for key, value in params.items() if key not in existing}


def log_run_config(loggers: Iterable[Logger], cfg: DictConfig, config_file: Path) -> None:
    """Log every resolved hyperparameter (flattened) and the resolved config as an artifact."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(OmegaConf.to_yaml(resolved))
    for logger in loggers:
        logger.log_hyperparams(_params_to_log(logger, flatten(resolved)))
    for logger in mlflow_loggers(loggers):
        logger.experiment.log_artifact(logger.run_id, str(config_file))


def remember_run_ids(loggers: Iterable[Logger], path: Path) -> None:
    """Write the MLflow run id into the run folder: a resumed run continues that MLflow run."""
    run_ids = [logger.run_id for logger in mlflow_loggers(loggers) if logger.run_id]
    if run_ids:
        path.write_text(run_ids[0] + "\n")


def log_artifact(loggers: Iterable[Logger], path: Path, artifact_dir: str) -> None:
    """Log a file, or every file of a folder, under ``artifact_dir`` of each MLflow run."""
    for logger in mlflow_loggers(loggers):
        if path.is_dir():
            logger.experiment.log_artifacts(logger.run_id, str(path), artifact_dir)
        else:
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_dir)


def terminate_runs(loggers: Iterable[Logger], status: str, replace: tuple[str, ...] = ("RUNNING",)) -> None:
    """Mark each started MLflow run whose status is in ``replace`` as ``status`` (FAILED, KILLED)."""
    for logger in mlflow_loggers(loggers):
        if logger._run_id is None:  # the run was never created: nothing to mark
            continue
        try:
            run = logger.experiment.get_run(logger.run_id)
            if run.info.status in replace:
                logger.experiment.set_terminated(logger.run_id, status)
        except Exception as err:  # never hide the original error behind a tracking error
            log.warning("Could not mark MLflow run %s as %s: %s", logger._run_id, status, err)


@contextmanager
def marks_failures(loggers: Iterable[Logger]) -> Iterator[None]:
    """Leave no run RUNNING: an interrupt marks it KILLED, any other error FAILED.

    Lightning finalises its loggers as FAILED on any exception, an interrupt included (and turns
    Ctrl-C into ``sys.exit(1)``), so KILLED replaces FAILED here.
    """
    try:
        yield
    except (KeyboardInterrupt, SIGTERMException, SystemExit):
        terminate_runs(loggers, "KILLED", replace=("RUNNING", "FAILED"))
        raise
    except BaseException:
        terminate_runs(loggers, "FAILED")
        raise


def check_tracking_servers(cfg: DictConfig, timeout_s: float = 5.0) -> None:
    """Fail before any work if a configured MLflow server does not answer (MLflow itself would
    retry for minutes, then fail after training)."""
    for name, node in (cfg.get("logger") or {}).items():
        if node is None or not str(node.get("_target_", "")).endswith("MLFlowLogger"):
            continue
        uri = str(node.get("tracking_uri") or "")
        if not uri.startswith(("http://", "https://")):
            continue
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            pass  # it answered: a server (perhaps behind a proxy without /health)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(
                f"MLflow tracking server {uri} (logger.{name}.tracking_uri) is unreachable: {reason}; "
                "start it, fix MLFLOW_TRACKING_URI, or unset it to log to the local store"
            ) from None


def run_location(logger: MLFlowLogger) -> str:
    """Where to look at a run: the UI address for a local store, else the server's."""
    uri = logger._tracking_uri
    path = f"#/experiments/{logger.experiment_id}/runs/{logger.run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{path}"
    return f"`make ui`, then http://127.0.0.1:5000/{path} (store {uri})"
