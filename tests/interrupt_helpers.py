"""Callbacks that stop their own training run: Ctrl-C, a scheduler's SIGTERM, sys.exit, a SIGKILL."""

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


def kill_during_the_nth_write(module, n: int) -> None:
    """Make ``module.atomic_write`` write half of its ``n``-th file, then SIGKILL this process:
    a hard kill in the middle of writing a checkpoint or the parse cache."""
    from contextlib import contextmanager

    real = module.atomic_write
    count = [0]

    @contextmanager
    def dying(path, mode="w", what=""):
        count[0] += 1
        with real(path, mode, what) as handle:
            if count[0] == n:
                real_write = handle.write

                def write_half_then_die(data):
                    real_write(bytes(data)[: len(data) // 2])
                    handle.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

                handle.write = write_half_then_die
            yield handle

    module.atomic_write = dying


class KillDuringCheckpointWrite(Callback):
    """SIGKILL while the ``n``-th checkpoint file is being written."""

    def __init__(self, n: int) -> None:
        from gesture_rnn.training import checkpoint_io

        kill_during_the_nth_write(checkpoint_io, n)
