"""Entry-point glue: show user errors as one line and a non-zero exit, not a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gesture_rnn.console import USER_ERROR_EXIT_CODE, release_stderr
from gesture_rnn.errors import GestureRNNError, Interrupted
from gesture_rnn.training import metric_value, train

T = TypeVar("T")
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a Ctrl-C'd command


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def exit_on_user_error(task: Callable[..., T]) -> Callable[..., T]:
    """Turn a GestureRNNError into ``error: <message>`` and exit 2, an interrupt into
    ``interrupted: <how to resume>`` and exit 130.

    ``HYDRA_FULL_ERROR=1`` keeps the traceback; in a multirun the error propagates so the
    launcher/sweeper can record the failed job (an interrupt stops the sweep).
    """

    @functools.wraps(task)
    def wrapper(*args, **kwargs) -> T:
        release_stderr()
        try:
            return task(*args, **kwargs)
        except GestureRNNError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)
        except Interrupted as err:
            if _in_multirun():
                raise
            print(f"interrupted: {err}", file=sys.stderr)
            sys.exit(INTERRUPTED_EXIT_CODE)

    return wrapper


@exit_on_user_error
def run_task(cfg: DictConfig) -> float | None:
    """What train.py and tune.py run: one training; returns ``optimized_metric`` for sweepers."""
    return metric_value(train(cfg), cfg.get("optimized_metric"))
