"""A callback that interrupts its own training run, as Ctrl-C or a scheduler's SIGTERM would."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class SignalAtEpoch(Callback):
    """Send ``signal_name`` to this process when epoch ``epoch`` (0-based) starts."""

    def __init__(self, epoch: int, signal_name: str = "SIGTERM") -> None:
        self.epoch = epoch
        self.signal = getattr(signal, signal_name)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), self.signal)


class ExitAtEpoch(Callback):
    """``sys.exit(code)`` when epoch ``epoch`` starts: an exit that is not an interrupt."""

    def __init__(self, epoch: int, code: int) -> None:
        self.epoch, self.code = epoch, code

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise SystemExit(self.code)
