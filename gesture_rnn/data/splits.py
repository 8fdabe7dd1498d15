"""Deterministic train/validation/test index splits.

The test part is always decided first and from the seed alone, so nothing that happens during
training or model selection can change which sequences are held out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gesture_rnn.data.facts import NUM_CLASSES
from gesture_rnn.errors import ConfigError

SPLITS = ("random", "users", "kfold")
MIN_TRAINING = NUM_CLASSES  # at least one training sequence per gesture could exist


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def hold_out(
    indices: np.ndarray, labels: np.ndarray, fraction: float, stratify: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held out) with ``fraction`` held out, per class if stratified."""
    if fraction == 0 or len(indices) == 0:
        return np.sort(indices), indices[:0]
    groups = [indices[labels[indices] == c] for c in np.unique(labels[indices])] if stratify else [indices]
    held = []
    for group in groups:
        shuffled = rng.permutation(group)
        held.append(shuffled[: round(len(group) * fraction)])
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(indices, held_out)
    return kept, held_out


def kfold_part(
    indices: np.ndarray, labels: np.ndarray, folds: int, fold: int, stratify: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(the rest, fold ``fold`` of ``folds``): each class shuffled by seed and dealt round the
    folds, so the folds of one seed partition the data and keep the class balance."""
    if not (isinstance(folds, int) and 2 <= folds <= 20):
        raise ConfigError(f"data.folds={folds!r} is invalid: it must be an integer in [2, 20]")
    if not (isinstance(fold, int) and 0 <= fold < folds):
        raise ConfigError(f"data.fold={fold!r} is invalid: it must be an integer in [0, {folds - 1}]")
    groups = [indices[labels[indices] == c] for c in np.unique(labels[indices])] if stratify else [indices]
    dealt = np.concatenate([rng.permutation(group) for group in groups])
    test = np.sort(dealt[np.arange(len(dealt)) % folds == fold])
    return np.setdiff1d(indices, test), test


def split_indices(
    labels: np.ndarray,
    users: np.ndarray,
    split: str,
    test_fraction: float,
    val_fraction: float,
    stratify: bool,
    test_users: Sequence[str],
    seed: int,
    val_users: int = 0,
    folds: int = 5,
    fold: int = 0,
) -> SplitIndices:
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    if split == "random":
        train_val, test = hold_out(everything, labels, test_fraction, stratify, rng)
    elif split == "kfold":
        train_val, test = kfold_part(everything, labels, folds, fold, stratify, rng)
    elif split == "users":
        known = sorted(set(users.tolist()))
        unknown = sorted(set(test_users) - set(known))
        if not test_users:
            raise ConfigError("data.test_users is empty; name at least one user to hold out, e.g. [U08]")
        if unknown:
            raise ConfigError(f"data.test_users: unknown user(s) {unknown}; the data has users {known}")
        if set(test_users) == set(known):
            raise ConfigError("data.test_users holds out every user; leave at least one for training")
        is_test = np.isin(users, list(test_users))
        train_val, test = everything[~is_test], everything[is_test]
    else:
        raise ConfigError(f"data.split={split!r} is unknown; choose one of {list(SPLITS)}")
    if val_users:
        train, val = _hold_out_users(train_val, users, split, val_fraction, val_users, rng)
    else:
        train, val = hold_out(train_val, labels, val_fraction, stratify, rng)
    if len(test) == 0:
        raise ConfigError(
            "data split leaves no test sequences; raise data.test_fraction (allowed range (0, 1))"
        )
    if len(train) < MIN_TRAINING:
        raise ConfigError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave {len(train)} "
            f"training sequences, fewer than {MIN_TRAINING} (one per gesture); lower them"
        )
    return SplitIndices(train=train, val=val, test=test)


def _hold_out_users(
    indices: np.ndarray,
    users: np.ndarray,
    split: str,
    val_fraction: float,
    count: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Validation = every sequence of ``count`` training users drawn by seed: model selection and
    calibration on people the model is not trained on, as the test users are."""
    if split != "users":
        raise ConfigError(f"data.val_users={count} needs data.split=users (validation on whole users)")
    if val_fraction:
        raise ConfigError(
            f"data.val_users={count} and data.val_fraction={val_fraction} both ask for validation data; "
            "set data.val_fraction=0 to validate on whole users"
        )
    remaining = sorted(set(users[indices].tolist()))
    if count >= len(remaining):
        raise ConfigError(
            f"data.val_users={count} leaves no training user; it must be at most {len(remaining) - 1}"
        )
    chosen = rng.choice(remaining, size=count, replace=False)
    is_val = np.isin(users[indices], chosen)
    return indices[~is_val], indices[is_val]


def keep_groups_together(split: SplitIndices, groups: list[list[int]]) -> SplitIndices:
    """Move every member of a group into the same part (test first, then validation), so an
    exact duplicate never sits on both sides of the split."""
    parts = {"train": set(split.train), "val": set(split.val), "test": set(split.test)}
    for group in groups:
        target = next((name for name in ("test", "val") if parts[name] & set(group)), "train")
        for name in parts:
            parts[name] -= set(group)
        parts[target] |= set(group)
    return SplitIndices(
        **{name: np.array(sorted(members), dtype=np.int64) for name, members in parts.items()}
    )
