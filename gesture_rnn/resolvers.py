"""OmegaConf resolvers used by ``conf/`` (registered on import of the package)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from gesture_rnn.tracking import PROJECT_ROOT


def project_root() -> str:
    """The checkout that holds ``conf/`` (so outputs land there whatever the working directory)."""
    return str(PROJECT_ROOT if (PROJECT_ROOT / "conf").is_dir() else Path.cwd())


def unless_env(variable: str, value: object) -> object:
    """``value`` unless the environment variable is set (then ``None``: let that setting decide)."""
    return None if os.environ.get(variable) else value


def register() -> None:
    OmegaConf.register_new_resolver("project_root", project_root, replace=True)
    OmegaConf.register_new_resolver("unless_env", unless_env, replace=True)
