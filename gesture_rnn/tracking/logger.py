"""Lightning's MLFlowLogger that keeps training when the tracking server goes away.

A server lost mid-training used to stall every logging call in MLflow's retries (minutes each),
then end the run with a traceback and leave it RUNNING on the server. Here the first call that
fails marks the logger ``lost`` (step and reason); training goes on, later calls are skipped,
and the run's summary says what was not logged — everything is still in the run folder
(``metrics.json``, ``evaluation/``, checkpoints). Use ``logger.guard(what)`` around other calls
to the run (artifacts, the model, registration) so they obey the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

from gesture_rnn.errors import GestureRNNError

log = logging.getLogger(__name__)


class ResilientMLFlowLogger(MLFlowLogger):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost: str | None = None  # what failed first, and why
        self.skipped: list[str] = []  # what was not logged since

    @contextmanager
    def guard(self, what: str) -> Iterator[bool]:
        """``with logger.guard("the checkpoint") as live: if live: ...`` — a failure (or a server
        already lost) is recorded instead of raised."""
        if self.lost is not None:
            self.skipped.append(what)
            yield False
            return
        try:
            yield True
        except GestureRNNError:  # the user's error, not the server's
            raise
        except Exception as err:  # a dead or unreachable server: MlflowException, requests errors
            reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            self.lost = f"{what}: {reason}"
            self.skipped.append(what)
            log.warning(
                "MLflow run %s: the tracking server failed while logging %s (%s); training goes on, "
                "and nothing more is logged to it (the run folder has everything)",
                self._run_id,
                what,
                reason,
            )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        with self.guard(f"metrics at step {step}") as live:
            if live:
                super().log_metrics(metrics, step)

    def log_hyperparams(self, params: Any) -> None:
        with self.guard("the parameters") as live:
            if live:
                super().log_hyperparams(params)

    def finalize(self, status: str = "success") -> None:
        with self.guard("the run's end status") as live:
            if live:
                super().finalize(status)

    def not_logged(self) -> str | None:
        """One line for the summary, or None when everything was logged."""
        if self.lost is None:
            return None
        skipped = sorted(set(self.skipped) - {s for s in self.skipped if s.startswith("metrics at step")})
        metrics = sum(s.startswith("metrics at step") for s in self.skipped)
        parts = ([f"{metrics} metric update(s)"] if metrics else []) + skipped
        return f"server lost ({self.lost}); not logged: {', '.join(parts)}"
