"""Cross-validation's folds and its summary: leave-one-user-out (``cv=users``: each user held out
once, model selection and calibration on one other whole user) or stratified k-fold on the random
protocol (``cv=kfold cv.folds=5``). Plain data and numbers; ``commands/cross_validate.py`` runs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gesture_rnn.data.facts import USERS
from gesture_rnn.errors import ConfigError

KINDS = ("users", "kfold")
# what the summary averages over the folds (each fold's own metrics stay in its run)
SUMMARISED = ("test/acc", "test/f1", "test/loss", "val/acc_best", "train/loss", "calibration/temperature")


@dataclass(frozen=True)
class Fold:
    name: str  # the held-out user (U03) or fold<i>
    data: dict[str, Any]  # the data.* settings that make this fold


def folds(cv: Mapping[str, Any]) -> list[Fold]:
    """The folds ``cv`` asks for, each as the data settings of one train.py run."""
    kind = cv.get("kind")
    if kind == "users":
        users = [str(u) for u in (cv.get("users") or USERS)]
        val_users = cv.get("val_users", 1)
        if not users or len(set(users)) != len(users):
            raise ConfigError(f"cv.users={users} is invalid: it must name distinct users, at least one")
        if not isinstance(val_users, int) or isinstance(val_users, bool) or val_users < 0:
            raise ConfigError(f"cv.val_users={val_users!r} is invalid: it must be an integer >= 0")
        settings = {"split": "users", "val_users": val_users}
        if val_users:
            settings["val_fraction"] = 0.0  # validation on whole other users, never the held-out one
        return [Fold(user, {**settings, "test_users": [user]}) for user in users]
    if kind == "kfold":
        count = cv.get("folds")
        if not isinstance(count, int) or isinstance(count, bool) or not 2 <= count <= 20:
            raise ConfigError(f"cv.folds={count!r} is invalid: it must be an integer in [2, 20]")
        return [Fold(f"fold{i}", {"split": "kfold", "folds": count, "fold": i}) for i in range(count)]
    raise ConfigError(f"cv.kind={kind!r} is invalid: it must be one of {list(KINDS)}")


@dataclass
class Summary:
    """Each fold's metrics (None: the fold failed, with its error) and what they add up to."""

    results: dict[str, dict[str, float] | None]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name, metrics in self.results.items() if metrics is None]

    @property
    def finished(self) -> dict[str, dict[str, float]]:
        return {name: metrics for name, metrics in self.results.items() if metrics is not None}

    def over_finished(self, key: str) -> np.ndarray:
        return np.array([m[key] for m in self.finished.values() if isinstance(m.get(key), int | float)])

    def metrics(self) -> dict[str, float]:
        """The run's metrics: the mean of each summarised metric under its own name (so
        ``optimized_metric`` works unchanged), its standard deviation and worst fold, every fold's
        test accuracy. With a failed fold every mean is NaN: never an average of fewer folds."""
        out: dict[str, float] = {"cv/folds": float(len(self.results)), "cv/failed": float(len(self.failed))}
        for key in SUMMARISED:
            values = self.over_finished(key)
            if len(values) == 0:
                continue
            out[key] = float(values.mean()) if not self.failed else math.nan
            out[f"cv/{key}/std"] = float(values.std()) if not self.failed else math.nan
            out[f"cv/{key}/finished_mean"] = float(values.mean())
        accuracies = {name: m.get("test/acc") for name, m in self.finished.items()}
        for name, value in accuracies.items():
            if isinstance(value, int | float):
                out[f"cv/fold/{name}/test/acc"] = float(value)
        if accuracies and not self.failed:
            out["cv/worst/test/acc"] = float(min(accuracies.values()))
        return out

    def table(self) -> str:
        """Markdown: one row per fold, then the mean ± std and the worst fold."""
        rows = ["| fold | test acc | test macro-F1 | best val acc | status |", "|---|---|---|---|---|"]
        for name, metrics in self.results.items():
            if metrics is None:
                rows.append(f"| {name} | | | | FAILED: {self.errors.get(name, '')[:120]} |")
                continue
            cells = [f"{metrics[k]:.4f}" if isinstance(metrics.get(k), int | float) else "" for k in
                     ("test/acc", "test/f1", "val/acc_best")]  # fmt: skip
            rows.append(f"| {name} | {' | '.join(cells)} | finished |")
        acc = self.over_finished("test/acc")
        if len(acc):
            label = (
                "mean ± std" if not self.failed else f"mean ± std of {len(acc)} of {len(self.results)} folds"
            )
            rows.append(f"| {label} | {acc.mean():.4f} ± {acc.std():.4f} | | | |")
            worst = min(self.finished, key=lambda n: self.finished[n].get("test/acc", math.inf))
            rows.append(f"| worst | {self.finished[worst]['test/acc']:.4f} ({worst}) | | | |")
        return "\n".join(rows)
