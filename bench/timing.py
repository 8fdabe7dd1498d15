"""Lightning callbacks the benchmark injects through the config (``+callbacks.x._target_=...``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class EpochTimer(Callback):
    """Seconds per training epoch (training loop only), appended to a JSON file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)
        self.path.write_text(json.dumps(self.times))


class FirstStepTimer(Callback):
    """Wall-clock time of the first training step, for start-up measurements."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0 and trainer.current_epoch == 0:
            self.path.write_text(str(time.time()))
