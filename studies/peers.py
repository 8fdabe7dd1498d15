"""MiniRocket (aeon), the peer a time-series practitioner tries first, and MultiRocket-Hydra, the
most accurate of the convolution family (Dempster et al. 2023), on this project's folds.

Optional: ``pip install -e '.[peers]'``. Both need equal lengths, so every recording is
resampled (linear interpolation) to the longest recording's 51 steps; the classifiers are aeon's
``MiniRocketClassifier`` (10,000 kernels, ridge regression with cross-validated penalty) and
``MultiRocketHydraClassifier`` (its defaults), their transforms on every core (what this project's
training uses too).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass

import numpy as np

from gesture_rnn.data.facts import LONGEST_SEQUENCE
from gesture_rnn.data.parsing import GestureRecords


def available() -> bool:
    try:
        import aeon  # noqa: F401
    except ImportError:
        return False
    return True


def resampled(sequences: list[np.ndarray], steps: int = LONGEST_SEQUENCE) -> np.ndarray:
    """[n, 3, steps]: each [time, 3] recording linearly resampled to ``steps``."""
    out = np.empty((len(sequences), sequences[0].shape[1], steps), dtype=np.float32)
    target = np.linspace(0.0, 1.0, steps)
    for row, sequence in enumerate(sequences):
        source = np.linspace(0.0, 1.0, len(sequence))
        for channel in range(sequence.shape[1]):
            out[row, channel] = np.interp(target, source, sequence[:, channel])
    return out


@dataclass(frozen=True)
class PeerFold:
    accuracy: float
    fit_s: float  # resampling + transform + ridge fit of the training part
    size_bytes: int  # the fitted classifier, pickled (measured only; never loaded)
    one_gesture_ms: float  # p50 of predict on one recording, after a warm-up


MINIROCKET, MULTIROCKET_HYDRA = "MiniRocket", "MultiRocket-Hydra"
# the peer's name -> its aeon classifier in aeon.classification.convolution_based
CLASSIFIERS = {MINIROCKET: "MiniRocketClassifier", MULTIROCKET_HYDRA: "MultiRocketHydraClassifier"}


def minirocket_fold(
    records: GestureRecords,
    train: np.ndarray,
    test: np.ndarray,
    seed: int = 0,
    n_jobs: int = -1,
    latency: bool = True,
    peer: str = MINIROCKET,
) -> PeerFold:
    """Fit ``peer`` (MiniRocket unless told) on ``train`` indices of ``records``, score it on
    ``test``; ``latency``: also time one gesture's prediction (p50; NaN without)."""
    from aeon.classification import convolution_based

    from bench.inference import timings

    started = time.perf_counter()
    x_train = resampled([records.sequences[i] for i in train])
    model = getattr(convolution_based, CLASSIFIERS[peer])(random_state=seed, n_jobs=n_jobs)
    model.fit(x_train, records.labels[train])
    fit_s = time.perf_counter() - started
    test_sequences = [records.sequences[i] for i in test]
    predicted = model.predict(resampled(test_sequences))
    accuracy = int((predicted == records.labels[test]).sum()) / len(test)
    if not latency:
        return PeerFold(accuracy, fit_s, len(pickle.dumps(model)), float("nan"))
    one = timings(lambda seq: model.predict(resampled([seq])), test_sequences, repeats=120, warmup=20)
    return PeerFold(accuracy, fit_s, len(pickle.dumps(model)), one["p50"])


def minirocket_loso(
    records: GestureRecords, users: list[str], latency: bool = True, peer: str = MINIROCKET, seed: int = 0
) -> tuple[dict[str, PeerFold], float]:
    """Each user held out in turn -> (user -> fold, wall seconds for all folds: with ``latency``
    that includes timing one gesture per fold). numba compiles the kernels on first use: a tiny
    fit first, so that is not timed."""
    minirocket_fold(records, np.arange(40), np.arange(40, 45), peer=peer)
    started, folds = time.perf_counter(), {}
    for user in users:
        held = records.users == user
        train, test = np.flatnonzero(~held), np.flatnonzero(held)
        folds[user] = minirocket_fold(records, train, test, seed, latency=latency, peer=peer)
        print(f"  {peer} {user}: {folds[user].accuracy:.4f} (fit {folds[user].fit_s:.1f} s)", flush=True)
    return folds, time.perf_counter() - started
