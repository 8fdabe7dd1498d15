""" "No gesture" with the variety of a day, for the spotter's training streams: rest at any plausible
wrist posture, posture changes, tremor, slow drift, smooth arm movements that are no gesture, and
real everyday motion (BasicMotions, ``gesture_rnn.data.everyday``).

``NoGesture`` holds the settings (every one a ``data.no_gesture.*`` key; 0 switches it off, so an
ablation is one override); ``varied_gap`` renders the stretch between two recordings of a training
stream. The evaluation's other construction (``gesture_rnn.data.unseen_streams``) models the same
things differently and on purpose shares none of this code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gesture_rnn.data.facts import SAMPLING_RATE_HZ

EVERYDAY = 0  # the gesture number of a no-gesture movement event (arm movement, everyday motion)


@dataclass(frozen=True)
class NoGesture:
    posture_deg: float = 0.0  # rest at a pose of the person's recordings turned by up to this
    tremor: float = 0.0  # tremor during rest: standard deviation up to this, m/s²
    drift_deg: float = 0.0  # slow wander of the resting wrist, up to this amplitude
    movements: float = 0.0  # smooth arm movements (no gesture) per gap, on average
    everyday: float = 0.0  # probability that a gap holds a clip of real everyday motion

    @property
    def active(self) -> bool:
        return any(
            v > 0 for v in (self.posture_deg, self.tremor, self.drift_deg, self.movements, self.everyday)
        )


def rotate(vectors: np.ndarray, axis: np.ndarray, angles: np.ndarray | float) -> np.ndarray:
    """Rodrigues: ``vectors`` [N, 3] (or [3]) turned about the unit ``axis`` by ``angles`` radians."""
    k = axis / max(np.linalg.norm(axis), 1e-12)
    angles = np.asarray(angles, dtype=float)[..., None]
    cross, dot = np.cross(k, vectors), (vectors @ k)[..., None]
    return vectors * np.cos(angles) + cross * np.sin(angles) + k * dot * (1 - np.cos(angles))


def random_axis(rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    return axis / np.linalg.norm(axis)


def _turn(a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """[count, 3] unit directions from ``a`` to ``b``, still at both ends (smoothstep)."""
    t = np.linspace(0.0, 1.0, max(count, 1))[:, None]
    w = t * t * (3 - 2 * t)
    d = (1 - w) * a / np.linalg.norm(a) + w * b / np.linalg.norm(b)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)


def _min_jerk_acceleration(count: int, amplitude: float, seconds: float) -> np.ndarray:
    """Acceleration along one axis of a minimum-jerk reach of ``amplitude`` m in ``seconds``."""
    tau = np.linspace(0.0, 1.0, count)
    return amplitude * (60 * tau - 180 * tau**2 + 120 * tau**3) / seconds**2


def varied_gap(
    previous: np.ndarray,
    following: np.ndarray,
    count: int,
    gravity: float,
    noise: Sequence[float],
    step: float,
    variety: NoGesture,
    rng: np.random.Generator,
    clips: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``count`` samples between a recording that ended at ``previous`` and one that starts at
    ``following``, and the (start, end) of every no-gesture movement in them. The wrist turns to a
    resting posture (a turn of up to ``posture_deg`` away), rests there with drift and tremor,
    perhaps makes a smooth arm movement or some everyday motion, and turns to the next start."""
    rate = float(SAMPLING_RATE_HZ)
    directions: list[np.ndarray] = []
    extra: list[np.ndarray] = []  # linear acceleration on top of gravity, per piece
    movements: list[tuple[int, int]] = []
    here = previous / np.linalg.norm(previous)
    pieces_left = count

    def add(direction: np.ndarray, linear: np.ndarray | None = None) -> None:
        nonlocal pieces_left
        directions.append(direction)
        extra.append(np.zeros_like(direction) if linear is None else linear)
        pieces_left -= len(direction)

    posture = here
    if variety.posture_deg > 0:
        posture = rotate(here, random_axis(rng), np.radians(rng.uniform(0, variety.posture_deg)))
    turn = min(pieces_left // 3, round(rng.uniform(0.8, 2.0) * rate))
    if turn > 0:
        add(_turn(here, posture, turn))
    events = rng.poisson(variety.movements) if variety.movements > 0 else 0
    clip = clips and variety.everyday > 0 and rng.random() < variety.everyday
    for _ in range(events + int(bool(clip))):
        still = min(pieces_left // 3, round(rng.uniform(0.5, 3.0) * rate))
        if still > 0:
            add(np.repeat(posture[None], still, axis=0))
        if clip:  # real everyday motion: a clip's linear acceleration on the resting posture
            clip, source = False, clips[rng.integers(len(clips))]
            length = min(len(source), max(0, pieces_left - turn), round(rng.uniform(3.0, 10.0) * rate))
            if length >= 5:
                first = rng.integers(0, len(source) - length + 1)
                wander = rotate(
                    np.repeat(posture[None], length, axis=0),
                    random_axis(rng),
                    np.radians(rng.uniform(-15, 15)) * np.linspace(0, 1, length),
                )
                movements.append((count - pieces_left, count - pieces_left + length))
                add(wander, source[first : first + length])
                posture = wander[-1]
            continue
        seconds = rng.uniform(0.8, 2.5)  # a smooth arm movement: reach and turn, then rest
        length = min(round(seconds * rate), max(0, pieces_left - turn))
        if length < 5:
            continue
        target = rotate(posture, random_axis(rng), np.radians(rng.uniform(20, 100)))
        linear = np.outer(_min_jerk_acceleration(length, rng.uniform(0.1, 0.5), seconds), random_axis(rng))
        movements.append((count - pieces_left, count - pieces_left + length))
        add(_turn(posture, target, length), linear)
        posture = target
    back = max(0, min(pieces_left, round(rng.uniform(0.8, 2.0) * rate)))
    if pieces_left - back > 0:
        add(np.repeat(posture[None], pieces_left - back, axis=0))
    if back > 0:
        add(_turn(posture, following, back))
    direction = np.concatenate(directions) if directions else np.empty((0, 3))
    linear = np.concatenate(extra) if extra else np.empty((0, 3))
    if variety.drift_deg > 0 and len(direction):  # slow wander: a few seconds' period
        t = np.arange(len(direction)) / rate
        angle = np.radians(rng.uniform(0, variety.drift_deg)) * np.sin(2 * np.pi * t / rng.uniform(4, 20))
        direction = rotate(direction, random_axis(rng), angle)
    values = gravity * direction + linear + rng.normal(0.0, noise, size=direction.shape)
    if variety.tremor > 0 and len(direction):  # coloured (AR(1)) tremor of a random strength
        shocks = rng.normal(0.0, rng.uniform(0, variety.tremor), size=direction.shape)
        tremor = np.zeros_like(shocks)
        for t in range(len(shocks)):
            tremor[t] = shocks[t] + (0.6 * tremor[t - 1] if t else 0.0)
        values = values + tremor * 0.8
    return (np.round(values / step) * step).astype(np.float32), movements
