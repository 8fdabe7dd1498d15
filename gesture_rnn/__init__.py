"""gesture_rnn: gesture recognition on smartwatch accelerometer data with recurrent networks.

Importing the package is cheap (config resolvers and errors only); ``train`` imports Lightning
when first used.
"""

from __future__ import annotations

from typing import Any

from gesture_rnn.config import resolvers
from gesture_rnn.errors import ConfigError, DataError, GestureRNNError

resolvers.register()

__all__ = ["ConfigError", "DataError", "GestureRNNError", "metric_value", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from gesture_rnn.commands.train import train

        return train
    if name == "metric_value":
        from gesture_rnn.tracking.trials import metric_value

        return metric_value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
