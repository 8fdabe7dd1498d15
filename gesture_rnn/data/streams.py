"""Continuous streams: one person's gestures among rest and everyday arm movement, as a watch
sees them, and the stream file format.

A ``Stream`` is acceleration at the dataset's rate with every gesture marked by the samples where
it starts and ends. ``build_stream`` makes the evaluation streams, seeded (one seed, one stream):

- the person's recordings, in random order: those of the vocabulary (targets) and those of the
  gestures kept out of it (``NON_TARGET``: movement the recognizer must ignore);
- between and around them, rest — the watch still. Its gravity vector drifts from where the
  previous recording ended to where the next one starts (a smooth turn over 2–6 s), with sensor
  noise and the sensor's quantisation step, both measured in the data (``RestModel.from_records``:
  the dataset has no rest, so the noise is the spread of its stillest moments).

``rest_stream`` is rest alone (false activations per hour of a still watch). A stream file has one
row per sample, ``t_ms x y z`` — or the dataset's own six columns, whose first is milliseconds — in
time order; ``read_stream`` refuses anything else in one line that names the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesture_rnn.data.contract import as_acceleration, check_values, decimal
from gesture_rnn.data.facts import GESTURES, NUM_COLUMNS, SAMPLING_RATE_HZ
from gesture_rnn.data.no_gesture import EVERYDAY, NoGesture, varied_gap
from gesture_rnn.data.parsing import GestureRecords
from gesture_rnn.data.reading import decode_text, read_regular_file
from gesture_rnn.errors import DataError
from gesture_rnn.utils.atomic import write_text_atomically

# Gestures kept out of the vocabulary as everyday movement: 1-4 are the straight swipes (right,
# left, up, down), the strokes of reaching, lifting and lowering an arm; the 16 drawn shapes
# (5-20: circles, squares, corners, V, S) are what a wearer would choose as commands.
NON_TARGET = (1, 2, 3, 4)
VOCABULARY = tuple(g for g in GESTURES if g not in NON_TARGET)
REST_SECONDS = (2.0, 6.0)  # rest between two recordings, drawn uniformly
MAX_GAP_S = 1.0  # a stream file with a longer pause between rows is not continuous
RATE_RANGE_HZ = (4.5, 18.0)  # the models read ~9 Hz; a stream far from it must be resampled first
MAX_STREAM_HOURS = 24  # a day on the wrist; longer streams are split
MAX_STREAM_ROWS = int(MAX_STREAM_HOURS * 3600 * RATE_RANGE_HZ[1])
MAX_STREAM_BYTES = 96 << 20  # MAX_STREAM_ROWS rows of `t_ms x y z` at about 60 characters each


@dataclass(frozen=True)
class GestureEvent:
    start: int  # the gesture's first sample in the stream
    end: int  # one past its last sample
    gesture: int  # the dataset's gesture number (1..20); 0: everyday movement (no_gesture.EVERYDAY)
    target: bool  # in the vocabulary; False: non-target movement, to be ignored


@dataclass(frozen=True)
class Stream:
    samples: np.ndarray  # float32 [N, 3], m/s²
    events: tuple[GestureEvent, ...]
    rate_hz: float = float(SAMPLING_RATE_HZ)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate_hz

    def times_ms(self) -> np.ndarray:
        return np.round(np.arange(len(self.samples)) * 1000.0 / self.rate_hz).astype(np.int64)


@dataclass(frozen=True)
class RestModel:
    """The watch at rest: per-axis sensor noise (m/s²), the sensor's quantisation step and the
    gravity it reads (m/s²)."""

    noise: tuple[float, float, float]
    step: float
    gravity: float

    @classmethod
    def from_records(cls, records: GestureRecords, percentile: float = 5.0) -> RestModel:
        """Measured in the data: ``noise`` is the ``percentile``-th percentile, per axis, of the
        standard deviation of every 3 consecutive samples (the stillest moments); ``step`` the
        smallest change between consecutive samples; ``gravity`` the median length of the first
        and last samples (where a gesture starts and ends, the wrist nearly still)."""
        windows = np.concatenate(
            [np.lib.stride_tricks.sliding_window_view(s, 3, axis=0).std(axis=2) for s in records.sequences]
        )
        changes = np.abs(np.concatenate([np.diff(s, axis=0) for s in records.sequences]).ravel())
        ends = np.concatenate([s[[0, -1]] for s in records.sequences])
        noise = np.percentile(windows, percentile, axis=0)
        return cls(
            noise=(float(noise[0]), float(noise[1]), float(noise[2])),
            step=float(changes[changes > 1e-4].min()),
            gravity=float(np.median(np.linalg.norm(ends, axis=1))),
        )


def rest_samples(
    start: np.ndarray, end: np.ndarray, count: int, rest: RestModel, rng: np.random.Generator
) -> np.ndarray:
    """``count`` samples of a still watch whose gravity vector turns smoothly from ``start`` to
    ``end`` (direction interpolated, length ``rest.gravity``), plus noise, on the sensor's step."""
    if count <= 0:
        return np.empty((0, 3), dtype=np.float32)
    a, b = start / np.linalg.norm(start), end / np.linalg.norm(end)
    t = np.linspace(0.0, 1.0, count)[:, None]
    weight = t * t * (3 - 2 * t)  # smoothstep: still at both ends
    direction = (1 - weight) * a + weight * b
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    values = rest.gravity * direction + rng.normal(0.0, rest.noise, size=(count, 3))
    return (np.round(values / rest.step) * rest.step).astype(np.float32)


def _rest_count(rng: np.random.Generator, rate_hz: float, seconds: tuple[float, float]) -> int:
    return round(rng.uniform(*seconds) * rate_hz)


def build_stream(
    records: GestureRecords,
    user: str,
    seed: int,
    rest: RestModel,
    non_target: Sequence[int] = NON_TARGET,
    rest_seconds: tuple[float, float] = REST_SECONDS,
    variety: NoGesture | None = None,
    clips: Sequence[np.ndarray] = (),
) -> Stream:
    """Every recording of ``user``, in an order drawn from ``seed``, separated by rest; gestures in
    ``non_target`` are marked as movement to ignore. With an active ``variety`` each gap holds the
    no-gesture variety of a day (``gesture_rnn.data.no_gesture``; ``clips``: everyday motion)."""
    rng = np.random.default_rng(seed)
    mine = np.flatnonzero(records.users == user)
    if len(mine) == 0:
        raise DataError(f"user={user} has no recordings in these data")
    order = mine[rng.permutation(len(mine))]
    rate = float(SAMPLING_RATE_HZ)
    pieces, events, position = [], [], 0
    previous = records.sequences[order[0]][0]  # the stream starts still, as the first gesture does
    varied = variety is not None and variety.active
    for index in order:
        sequence = records.sequences[index]
        count = _rest_count(rng, rate, rest_seconds)
        if varied:
            gap, moves = varied_gap(previous, sequence[0], count, rest.gravity, rest.noise, rest.step,
                                    variety, rng, clips)  # fmt: skip
            events += [GestureEvent(position + a, position + b, EVERYDAY, False) for a, b in moves]
        else:
            gap = rest_samples(previous, sequence[0], count, rest, rng)
        pieces += [gap, sequence.astype(np.float32)]
        position += len(gap)
        gesture = int(records.labels[index]) + 1
        events.append(GestureEvent(position, position + len(sequence), gesture, gesture not in non_target))
        position += len(sequence)
        previous = sequence[-1]
    pieces.append(rest_samples(previous, previous, _rest_count(rng, rate, rest_seconds), rest, rng))
    return Stream(np.concatenate(pieces), tuple(events), rate)


def rest_stream(records: GestureRecords, user: str, seconds: float, seed: int, rest: RestModel) -> Stream:
    """``seconds`` of a still watch: its orientation drifts between the poses ``user`` starts their
    gestures in (one every 5–30 s), with no gesture at all."""
    rng = np.random.default_rng(seed)
    poses = [records.sequences[i][0] for i in np.flatnonzero(records.users == user)]
    if not poses:
        raise DataError(f"user={user} has no recordings in these data")
    rate, total = float(SAMPLING_RATE_HZ), round(seconds * SAMPLING_RATE_HZ)
    pieces, filled, current = [], 0, poses[rng.integers(len(poses))]
    while filled < total:
        target = poses[rng.integers(len(poses))]
        count = min(total - filled, _rest_count(rng, rate, (5.0, 30.0)))
        pieces.append(rest_samples(current, target, count, rest, rng))
        filled, current = filled + count, target
    return Stream(np.concatenate(pieces), (), rate)


def write_stream(stream: Stream, path: Path) -> None:
    """``t_ms x y z`` rows, and the marked gestures beside it (``<name>.events.csv``)."""
    times = stream.times_ms()
    rows = (f"{t} {x:.6f} {y:.6f} {z:.6f}" for t, (x, y, z) in zip(times, stream.samples, strict=True))
    write_text_atomically(path, "\n".join(rows) + "\n", "stream")
    events = ["start_ms,end_ms,gesture,target"] + [
        f"{times[e.start]},{round(e.end * 1000.0 / stream.rate_hz)},{e.gesture},{int(e.target)}"
        for e in stream.events
    ]
    write_text_atomically(events_path(path), "\n".join(events) + "\n", "stream events")


def events_path(path: Path) -> Path:
    return path.with_name(path.stem + ".events.csv")


def read_stream(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(samples float32 [N, 3], times in ms int64 [N]) of a stream file, or a DataError naming the
    file, the line and the problem: a row that is not ``t_ms x y z`` (or the dataset's 6 columns),
    a value that is not a finite number, time that does not move forward, a pause of more than
    ``MAX_GAP_S``, or a rate far from the ~9 Hz the models read."""
    name = str(path)
    text = decode_text(read_regular_file(path, MAX_STREAM_BYTES, "stream"), name)
    times: list[int] = []
    rows: list[list[float]] = []
    lines: list[int] = []
    columns = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in (4, NUM_COLUMNS):
            raise DataError(
                f"{name}, line {line_no}: a stream row is `t_ms x y z` (or the dataset's {NUM_COLUMNS} "
                f"columns, milliseconds first), found {len(fields)} values"
            )
        if columns is not None and len(fields) != columns:
            raise DataError(
                f"{name}, line {line_no}: {len(fields)} values, but the first row has {columns}: "
                "one column layout per file"
            )
        columns = len(fields)
        if len(rows) == MAX_STREAM_ROWS:
            raise DataError(f"{name}: more than {MAX_STREAM_ROWS:,} rows ({MAX_STREAM_HOURS} h at "
                            f"{RATE_RANGE_HZ[1]:g} Hz); split the stream")  # fmt: skip
        try:
            t = decimal(fields[0])
            values = [decimal(field) for field in fields[-3:]]
            [decimal(field) for field in fields[1:-3]]  # the dataset's other timestamps: numbers too
            if not np.isfinite(t):
                raise ValueError(f"timestamp {fields[0]} is not finite")
        except ValueError as err:
            raise DataError(f"{name}, line {line_no}: {err}") from None
        if times and t <= times[-1]:
            raise DataError(
                f"{name}, line {line_no}: time {t:g} ms is not after the previous row's ({times[-1]:g} ms); "
                "rows must be in time order, one per time"
            )
        if times and t - times[-1] > MAX_GAP_S * 1000:
            raise DataError(
                f"{name}, line {line_no}: {(t - times[-1]) / 1000:g} s without a sample before this row "
                f"(at most {MAX_GAP_S:g} s): a stream must be continuous"
            )
        times.append(t)
        rows.append(values)
        lines.append(line_no)
    if len(rows) < 2:
        raise DataError(f"{name}: a stream needs at least 2 rows of `t_ms x y z`, found {len(rows)}")
    samples = check_values(as_acceleration(rows, name, "stream"), name, lines)
    rate = 1000.0 / float(np.median(np.diff(times)))
    if not RATE_RANGE_HZ[0] <= rate <= RATE_RANGE_HZ[1]:
        raise DataError(
            f"{name}: {rate:.1f} samples per second; the models read ~{SAMPLING_RATE_HZ} Hz "
            f"(allowed {RATE_RANGE_HZ[0]:g}..{RATE_RANGE_HZ[1]:g}): resample the stream first"
        )
    return samples, np.asarray(times, dtype=np.float64).astype(np.int64)
