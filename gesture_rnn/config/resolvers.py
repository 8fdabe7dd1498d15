"""OmegaConf resolvers used by ``conf/`` (registered on import of the package; light imports only)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # gesture_rnn/config/resolvers.py


ROOT_VARIABLE = "GESTURE_RNN_ROOT"  # the folder whose outputs/ every command writes to


def project_root() -> str:
    """Where ``outputs/`` goes: ``$GESTURE_RNN_ROOT`` if set (the test suite points it at a
    temporary folder), else the checkout that holds ``conf/`` (so outputs land there whatever the
    working directory)."""
    if chosen := os.environ.get(ROOT_VARIABLE):
        return str(Path(chosen).expanduser())
    return str(PROJECT_ROOT if (PROJECT_ROOT / "conf").is_dir() else Path.cwd())


def artifact_location(tracking_uri: str, local: str) -> str | None:
    """Artifacts of a local store (sqlite, file) go to ``local`` (under outputs/, whatever the
    working directory); a tracking server decides for itself (null)."""
    return None if str(tracking_uri).startswith(("http://", "https://", "databricks")) else local


def register() -> None:
    OmegaConf.register_new_resolver("project_root", project_root, replace=True)
    OmegaConf.register_new_resolver("artifact_location", artifact_location, replace=True)
