"""The one input contract: which recordings a model accepts, whichever way they arrive — a file
for ``predict.py`` (either backend) or a request to the served model.

Checked on the values as the model sees them (float32), so a value beyond float32's range is
refused as infinite instead of reaching the network and coming out as ``p=nan``. Numpy only: the
served model and the ONNX backend import neither torch nor Lightning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from gesture_rnn.data.facts import NUM_CHANNELS
from gesture_rnn.errors import DataError

MIN_SAMPLES = 2  # one row is no motion
MAX_SAMPLES = 1000  # about 110 s at the dataset's ~9 Hz; its longest gesture has 51
# about 100 g: watch sensors saturate at 8-16 g (the dataset peaks at 78 m/s², its sensor's 8 g)
MAX_ABS_ACCEL = 1000.0
MAX_RECORDINGS = 1024  # per request to the served model
# a number in a file: a plain ASCII decimal (float() would also take 1_000, full-width or Arabic
# digits); nan and inf are read, to be refused by check_values with the row's own message
DECIMAL = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)", re.I)


def decimal(field: str) -> float:
    """``field`` as a float if it is a plain ASCII decimal (``-0.49``, ``9.8e0``); else ValueError."""
    if not DECIMAL.fullmatch(field):
        raise ValueError(f"{field[:40]!r} is not a plain decimal number (ASCII digits, a point, an exponent)")
    return float(field)


def check_recording(values: object, name: str, lines: Sequence[int] | None = None) -> np.ndarray:
    """``values`` as the float32 [time, 3] array a model reads, or a DataError naming the first
    bad row (``lines``: the file's line number of each row, for messages)."""
    array = as_acceleration(values, name, "recording")
    if not MIN_SAMPLES <= len(array) <= MAX_SAMPLES:
        raise DataError(
            f"{name}: a recording has {MIN_SAMPLES}..{MAX_SAMPLES} rows (x y z at ~9 Hz), found {len(array)}"
        )
    return check_values(array, name, lines)


def as_acceleration(values: object, name: str, what: str) -> np.ndarray:
    """``values`` as float32 [time, 3], or a DataError saying the shape is wrong."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by check_values, per row
        array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != NUM_CHANNELS:
        raise DataError(f"{name}: a {what} is rows of {NUM_CHANNELS} values (x y z), got shape {array.shape}")
    return array


def check_values(array: np.ndarray, name: str, lines: Sequence[int] | None = None) -> np.ndarray:
    """``array`` [time, 3] float32 if every value is finite and within ±``MAX_ABS_ACCEL``; else a
    DataError naming the first bad row — for recordings and streams alike."""
    bad = ~np.isfinite(array).all(axis=1)
    too_large = ~bad & (np.abs(array) > MAX_ABS_ACCEL).any(axis=1)
    for rows, what in (
        (bad, "is null, NaN or infinite (as float32)"),
        (too_large, f"is beyond ±{MAX_ABS_ACCEL:g} m/s²"),
    ):
        if rows.any():
            row = int(np.argmax(rows))
            where = f"line {lines[row]}" if lines is not None else f"row {row + 1}"
            raise DataError(f"{name}, {where}: acceleration {what}")
    return array


def unpad(batch: object) -> list[np.ndarray]:
    """The recordings of a request batch [n, time, 3] padded with all-null (NaN) rows after each
    recording's end (the served model's convention), each checked by ``check_recording``.

    A NaN anywhere but in whole rows after the end — inside a row, or followed by values — is
    refused, rather than silently shifting which rows are read."""
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.asarray(batch, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != NUM_CHANNELS:
        raise DataError(
            f"the request's inputs are [recordings, time, {NUM_CHANNELS}] (x y z rows, null-padded), "
            f"got shape {array.shape}"
        )
    if not 1 <= len(array) <= MAX_RECORDINGS:
        raise DataError(f"a request holds 1..{MAX_RECORDINGS} recordings, found {len(array)}")
    recordings = []
    for index, recording in enumerate(array):
        padding = np.isnan(recording).all(axis=1)
        length = int(np.argmax(padding)) if padding.any() else len(recording)
        name = f"recording {index + 1}"
        if not padding[length:].all():
            raise DataError(
                f"{name}, row {length + 1 + int(np.argmin(padding[length:]))}: values after a null row; "
                "null rows only pad a recording's end"
            )
        recordings.append(check_recording(recording[:length], name))
    return recordings
