"""Cross-validation's folds and its summary: leave-one-user-out (``cv=users``: each user held out
once, model selection and calibration on one other whole user) or stratified k-fold on the random
protocol (``cv=kfold cv.folds=5``), on one seed or repeated over ``cv.seeds`` — a choice made on the
mean over several seeds does not ride one seed's luck (Bouthillier et al. 2021). Plain data and
numbers; ``commands/cross_validate.py`` runs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gesture_rnn.data.facts import USERS
from gesture_rnn.errors import ConfigError
from gesture_rnn.streaming.events import CONSTRUCTIONS, STREAM_METRICS

KINDS = ("users", "kfold")
USER = re.compile(r"U[0-9]{2}")  # a user as the dataset names them
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
    unit: str  # the held-out user (U03) or fold<i>
    data: dict[str, Any]  # the data.* settings that make this fold
    seed: int | None = None  # cv.seeds: this repetition's seed (None: the run's own seed)

    @property
    def name(self) -> str:
        """Its folder below ``folds/`` and its key in the summary: ``U03`` or ``seed1/U03``."""
        return self.unit if self.seed is None else f"seed{self.seed}/{self.unit}"


def seeds(cv: Mapping[str, Any]) -> list[int] | None:
    """``cv.seeds``: distinct integers >= 0 (an integer alone is one seed), or None (the run's seed)."""
    value = cv.get("seeds")
    if value is None:
        return None
    listed = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        isinstance(listed, str | bytes)
        or not isinstance(listed, Sequence)
        or not listed
        or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in listed)
        or len(set(listed)) != len(listed)
    ):
        raise ConfigError(
            f"cv.seeds={value!r} is invalid: it must be a list of distinct integers >= 0, "
            "e.g. cv.seeds=[0,1,2], or null (the run's seed)"
        )
    return [int(s) for s in listed]


def folds(cv: Mapping[str, Any]) -> list[Fold]:
    """The folds ``cv`` asks for, each as the data settings of one train.py run; with ``cv.seeds``
    every fold once per seed, seed after seed (the first seed's folds finish first)."""
    units = _units(cv)
    repeats = seeds(cv)
    if repeats is None:
        return units
    return [Fold(fold.unit, fold.data, seed) for seed in repeats for fold in units]


def _units(cv: Mapping[str, Any]) -> list[Fold]:
    kind = cv.get("kind")
    if kind == "users":
        listed = cv.get("users")
        users = list(USERS) if listed is None else [listed] if isinstance(listed, str) else list(listed)
        if (
            not users
            or len(set(users)) != len(users)
            or not all(isinstance(u, str) and USER.fullmatch(u) for u in users)
        ):
            raise ConfigError(
                f"cv.users={listed!r} is invalid: it must name distinct users, at least one, e.g. "
                "cv.users=[U01,U07], or be null (all of them)"
            )
        val_users = cv.get("val_users", 1)
        most = len(USERS) - 2  # one user held out, at least one to train on
        if not isinstance(val_users, int) or isinstance(val_users, bool) or not 0 <= val_users <= most:
            raise ConfigError(f"cv.val_users={val_users!r} is invalid: it must be an integer in [0, {most}]")
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
    """Each fold's metrics (None: the fold failed, with its error) and what they add up to. With
    ``cv.seeds`` a unit (a held-out user, or fold<i>) is scored by its mean over the seeds."""

    results: dict[str, dict[str, float] | None]
    errors: dict[str, str] = field(default_factory=dict)
    plan: dict[str, Fold] = field(default_factory=dict)  # name -> fold, when known

    @property
    def failed(self) -> list[str]:
        return [name for name, metrics in self.results.items() if metrics is None]

    @property
    def finished(self) -> dict[str, dict[str, float]]:
        return {name: metrics for name, metrics in self.results.items() if metrics is not None}

    @property
    def seeds(self) -> list[int]:
        """The seeds of cv.seeds, in order; [] for one run's seed."""
        return list(dict.fromkeys(f.seed for f in self.plan.values() if f.seed is not None))

    def _fold(self, name: str) -> Fold:
        return self.plan.get(name) or Fold(name, {})

    def over_finished(self, key: str) -> np.ndarray:
        return np.array([m[key] for m in self.finished.values() if isinstance(m.get(key), int | float)])

    def by_unit(self, key: str) -> dict[str, float]:
        """Each unit's mean of ``key`` over its finished seeds (its one value with one seed)."""
        grouped: dict[str, list[float]] = {}
        for name, m in self.finished.items():
            if isinstance(m.get(key), int | float):
                grouped.setdefault(self._fold(name).unit, []).append(float(m[key]))
        return {unit: float(np.mean(values)) for unit, values in grouped.items()}

    def by_seed(self, key: str) -> dict[int, float]:
        """Each seed's mean of ``key`` over its folds (cv.seeds only)."""
        grouped: dict[int, list[float]] = {}
        for name, m in self.finished.items():
            seed = self._fold(name).seed
            if seed is not None and isinstance(m.get(key), int | float):
                grouped.setdefault(seed, []).append(float(m[key]))
        return {seed: float(np.mean(values)) for seed, values in grouped.items()}

    def metrics(self) -> dict[str, float]:
        """The run's metrics: the mean of each summarised metric under its own name (so
        ``optimized_metric`` works unchanged), its standard deviation over the units and its
        worst unit (each unit averaged over the seeds), and with ``cv.seeds`` each seed's mean and
        the spread of those means. With a failed fold every mean is NaN: never an average of fewer
        folds. ``cv/mean_and_worst/<val metric>``, the mean of the two, is an objective that weighs
        the hardest validation user as much as all of them together."""
        out: dict[str, float] = {"cv/folds": float(len(self.results)), "cv/failed": float(len(self.failed))}
        complete = not self.failed
        key = self.headline
        ranked = {key, *(k for k in VALIDATION_SCORES if len(self.over_finished(k)))}
        for metric in SUMMARISED:
            values = self.over_finished(metric)
            if len(values) == 0:
                continue
            units = np.array(list(self.by_unit(metric).values()))
            out[metric] = float(values.mean()) if complete else math.nan
            out[f"cv/{metric}/std"] = float(units.std()) if complete else math.nan
            out[f"cv/{metric}/finished_mean"] = float(values.mean())
            if metric in ranked and complete:
                out[f"cv/worst/{metric}"] = float(units.min())
                if metric != key:
                    out[f"cv/mean_and_worst/{metric}"] = float((values.mean() + units.min()) / 2)
            if self.seeds and metric in ranked:
                per_seed = self.by_seed(metric)
                out.update({f"cv/seed/{seed}/{metric}": value for seed, value in per_seed.items()})
                if complete:
                    out[f"cv/seeds/{metric}/std"] = float(np.std(list(per_seed.values())))
        for unit, value in self.by_unit(key).items():
            out[f"cv/fold/{unit}/{key}"] = value
        if self.seeds:
            out["cv/seeds"] = float(len(self.seeds))
        return out

    @property
    def headline(self) -> str:
        """``test/acc``, or ``test/event_f1`` for spotter folds."""
        present = {k for m in self.finished.values() for k in m}
        return next((k for k in HEADLINES if k in present), HEADLINES[0])

    def table(self) -> str:
        """Markdown: one row per fold (with cv.seeds: per unit, a column per seed), then the mean ±
        std over the units and the worst unit."""
        key = self.headline
        if self.seeds:
            return self._seeds_table(key)
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
        return "\n".join(rows + self._closing_rows(key, "", blank))

    def _seeds_table(self, key: str) -> str:
        label = dict(COLUMNS[key])[key]
        seeds = self.seeds
        rows = [
            f"| fold | {' | '.join(f'seed {s}' for s in seeds)} | {label}, mean of seeds | status |",
            "|---|" + "---|" * (len(seeds) + 2),
        ]
        units = list(dict.fromkeys(self._fold(name).unit for name in self.results))
        means = self.by_unit(key)
        for unit in units:
            names = [n for n in self.results if self._fold(n).unit == unit]
            cells = [
                f"{self.results[n][key]:.4f}"
                if self.results[n] is not None and isinstance(self.results[n].get(key), int | float)
                else "FAILED"
                for n in names
            ]
            failed = [n for n in names if self.results[n] is None]
            status = "; ".join(f"{n} FAILED: {self.errors.get(n, '')[:80]}" for n in failed) or "finished"
            mean = f"{means[unit]:.4f}" if unit in means else ""
            rows.append(f"| {unit} | {' | '.join(cells)} | {mean} | {status} |")
        per_seed = self.by_seed(key)
        rows.append("| mean of the folds | " + " | ".join(
            f"{per_seed[s]:.4f}" if s in per_seed else "" for s in seeds) + " | | |")  # fmt: skip
        return "\n".join(rows + self._closing_rows(key, " |" * len(seeds), ""))

    def _closing_rows(self, key: str, before: str, after: str) -> list[str]:
        """The mean ± std over the units and the worst unit, in the column of the units' scores."""
        units = self.by_unit(key)
        if not units:
            return []
        values = np.array(list(units.values()))
        label = (
            "mean ± std"
            if not self.failed
            else f"mean ± std of {len(self.finished)} of {len(self.results)} folds"
        )
        worst = min(units, key=units.get)
        return [
            f"| {label} |{before} {values.mean():.4f} ± {values.std():.4f} |{after} |",
            f"| worst |{before} {units[worst]:.4f} ({worst}) |{after} |",
        ]


# the validation scores whose worst unit is logged (cv/worst/..., cv/mean_and_worst/...)
VALIDATION_SCORES = ("val/acc_best", "val/event_f1")


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
