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
from gesture_rnn.streaming.events import CONSTRUCTIONS, STREAM_METRICS

KINDS = ("users", "kfold")
# what the summary averages over the folds (each fold's own metrics stay in its run)
SUMMARISED = (
    "test/acc", "test/f1", "test/loss", "val/acc_best", "train/loss", "calibration/temperature",
    # the spotter's (gesture_rnn.streaming.evaluation)
    "val/event_f1", "val/false_per_h_movement",
    *(f"{prefix}/{metric}" for prefix in CONSTRUCTIONS.values() for metric in STREAM_METRICS),
)  # fmt: skip
# each fold's headline: the classifier's test accuracy, or the spotter's event F1
HEADLINES = ("test/acc", "test/event_f1")


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
        key = self.headline
        scores = {name: m.get(key) for name, m in self.finished.items()}
        for name, value in scores.items():
            if isinstance(value, int | float):
                out[f"cv/fold/{name}/{key}"] = float(value)
        if scores and not self.failed:
            out[f"cv/worst/{key}"] = float(min(scores.values()))
        return out

    @property
    def headline(self) -> str:
        """``test/acc``, or ``test/event_f1`` for spotter folds."""
        present = {k for m in self.finished.values() for k in m}
        return next((k for k in HEADLINES if k in present), HEADLINES[0])

    def table(self) -> str:
        """Markdown: one row per fold, then the mean ± std and the worst fold."""
        key = self.headline
        columns = COLUMNS[key]
        rows = [
            "| fold | " + " | ".join(label for _, label in columns) + " | status |",
            "|---|" + "---|" * (len(columns) + 1),
        ]
        blank = " |" * (len(columns) - 1)
        for name, metrics in self.results.items():
            if metrics is None:
                rows.append(f"| {name} |{blank} | FAILED: {self.errors.get(name, '')[:120]} |")
                continue
            cells = [
                f"{metrics[k]:.4f}" if isinstance(metrics.get(k), int | float) else "" for k, _ in columns
            ]
            rows.append(f"| {name} | {' | '.join(cells)} | finished |")
        values = self.over_finished(key)
        if len(values):
            label = (
                "mean ± std"
                if not self.failed
                else f"mean ± std of {len(values)} of {len(self.results)} folds"
            )
            rows.append(f"| {label} | {values.mean():.4f} ± {values.std():.4f} |{blank} |")
            worst = min(self.finished, key=lambda n: self.finished[n].get(key, math.inf))
            rows.append(f"| worst | {self.finished[worst][key]:.4f} ({worst}) |{blank} |")
        return "\n".join(rows)


# the table's columns for each headline
COLUMNS = {
    "test/acc": [("test/acc", "test acc"), ("test/f1", "test macro-F1"), ("val/acc_best", "best val acc")],
    "test/event_f1": [
        ("test/event_f1", "event F1"),
        ("test/false_per_h_rest", "false / h rest"),
        ("test/false_per_h_movement", "false / h movement"),
        ("test/delay_s", "median delay s"),
        ("test_builder/event_f1", "event F1 (training builder)"),
        ("val/event_f1", "val event F1"),
    ],
}
