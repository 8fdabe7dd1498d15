"""Load a train.py checkpoint back as a model, or fail with one clear message."""

from __future__ import annotations

from pathlib import Path

from gesture_rnn.errors import ConfigError
from gesture_rnn.models.gru import GRUClassifier


def load_checkpoint(path: str | None) -> GRUClassifier:
    """The model of a checkpoint written by train.py, or one clear error."""
    if not path:
        raise ConfigError(
            "ckpt_path is required: python evaluate.py ckpt_path=outputs/.../checkpoints/last.ckpt"
        )
    checkpoint = Path(path).expanduser()
    if not checkpoint.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist")
    try:
        return GRUClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"ckpt_path={path} is not a checkpoint of this project's GRUClassifier ({err})"
        ) from None
