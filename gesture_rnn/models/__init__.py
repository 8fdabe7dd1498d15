"""Networks (plain ``nn.Module``s, ``nets``), the LightningModule (``classifier``), and loading a
checkpoint back (``checkpoint``). Attributes are imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GestureClassifier": "gesture_rnn.models.classifier",
    "GestureNet": "gesture_rnn.models.nets",
    "GRUNet": "gesture_rnn.models.nets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
