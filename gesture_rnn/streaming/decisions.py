"""From per-sample probabilities to detections, and the labels the spotter learns from.

Labels: a vocabulary gesture's class on the samples around its end (``LABEL_BEFORE`` samples before
its last one to ``LABEL_AFTER`` after), "no gesture" everywhere else — rest, non-target movement,
and a gesture still under way, so an unfinished gesture is not announced.

Decisions: a detection when one gesture's probability stays at or above ``threshold`` for ``hold``
consecutive samples, then nothing for ``refractory`` samples (one gesture, one detection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gesture_rnn.data.facts import SAMPLING_RATE_HZ
from gesture_rnn.data.streams import GestureEvent
from gesture_rnn.streaming.events import TOLERANCE, Detection, match_events
from gesture_rnn.streaming.spotter import NO_GESTURE

LABEL_BEFORE, LABEL_AFTER = 2, 3


def step_labels(
    length: int,
    events: Sequence[GestureEvent],
    vocabulary: Sequence[int],
    learned_non_target: Sequence[int] = (),
) -> np.ndarray:
    """int64 [length]: the spotter's class at every sample of a stream — a vocabulary gesture's
    index + 1 around its end; with ``learned_non_target`` those gestures get classes of their own
    after the vocabulary's (learnt as what they are, then counted as "no gesture": ``fold``)."""
    labels = np.full(length, NO_GESTURE, dtype=np.int64)
    index = {gesture: k + 1 for k, gesture in enumerate([*vocabulary, *learned_non_target])}
    known = set(learned_non_target)
    for event in events:
        if (event.target or event.gesture in known) and event.gesture in index:
            last = event.end - 1
            labels[max(event.start, last - LABEL_BEFORE) : min(length, last + LABEL_AFTER + 1)] = index[
                event.gesture
            ]
    return labels


@dataclass(frozen=True)
class DecisionRule:
    threshold: float = 0.8
    hold: int = 2
    refractory: int = 14  # about 1.5 s at 9 Hz


def rule_from(record: object, where: str) -> DecisionRule:
    """A decision rule read from a file (a checkpoint, a spotter file, an exported spotter's
    sidecar), checked before it is used: ``threshold`` a number in (0, 1], ``hold`` an integer
    >= 1, ``refractory`` an integer >= 0 — else a DataError naming the file and the field."""
    from gesture_rnn.errors import DataError

    fields = ("threshold", "hold", "refractory")
    if not isinstance(record, dict) or set(record) != set(fields):
        raise DataError(f"{where}: its decision rule must hold exactly {list(fields)}, found {record!r:.120}")
    threshold, hold, refractory = (record[f] for f in fields)
    checks = (
        ("threshold", threshold, "a number in (0, 1]",
         isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 1),
        ("hold", hold, "an integer >= 1", isinstance(hold, int) and not isinstance(hold, bool) and hold >= 1),
        ("refractory", refractory, "an integer >= 0 (samples)",
         isinstance(refractory, int) and not isinstance(refractory, bool) and refractory >= 0),
    )  # fmt: skip
    for name, value, allowed, ok in checks:
        if not ok:  # NaN fails every comparison, so it lands here too
            raise DataError(f"{where}: its decision rule's {name}={value!r} is invalid: {allowed}")
    return DecisionRule(float(threshold), hold, refractory)


def detect(probabilities: np.ndarray, vocabulary: Sequence[int], rule: DecisionRule) -> list[Detection]:
    """Detections from [samples, 1 + vocabulary] probabilities (class 0: no gesture). Probabilities
    that are not finite are refused: NaN compares below every threshold, and would read as "no
    gesture" from a damaged model."""
    if not np.isfinite(probabilities).all():
        from gesture_rnn.errors import DataError

        raise DataError(
            "the model gives probabilities that are not numbers (NaN or infinite): its weights are damaged"
        )
    gestures = probabilities[:, 1:]
    best = gestures.argmax(axis=1)
    p = gestures[np.arange(len(best)), best]
    detections: list[Detection] = []
    run, previous, quiet_until = 0, -1, -1
    threshold = p.dtype.type(rule.threshold)  # in the probabilities' own precision (float32: as the page)
    for t in range(len(p)):
        above = p[t] >= threshold
        run = run + 1 if above and best[t] == previous else (1 if above else 0)
        previous = int(best[t]) if above else -1
        if run >= rule.hold and t > quiet_until:
            detections.append(Detection(t, int(vocabulary[best[t]]), float(p[t])))
            quiet_until, run = t + rule.refractory, 0
    return detections


# the rules a spotter's training (and make stream's sliding window) choose from: threshold, hold,
# and a refractory time of about 1.5 s or 3 s
RULES = tuple(
    DecisionRule(t, h, r) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95) for h in (1, 2, 3) for r in (14, 27)
)


def movement_hours(events: Sequence[GestureEvent]) -> float:
    """Hours of non-target movement in a stream (each movement and the tolerance after it: where a
    detection is counted as a false activation during movement)."""
    return sum(e.end - e.start + TOLERANCE for e in events if not e.target) / SAMPLING_RATE_HZ / 3600


def choose_rule(
    probabilities: np.ndarray,
    events: Sequence[GestureEvent],
    vocabulary: Sequence[int],
    rules: Sequence[DecisionRule] = RULES,
    max_false_per_h: float | None = None,
) -> DecisionRule:
    """The rule with the highest event F1 on a validation stream (ties: the stricter, by threshold,
    hold, then refractory time) — chosen on a training user, never on the person it will be scored
    on. With ``max_false_per_h`` only the rules that stay within that many false activations per
    hour of the stream's non-target movement compete (if none does: the fewest, then F1): a
    product's limit on false activations, which F1 over hundreds of gestures hardly sees."""
    hours = movement_hours(events)
    scored = []
    for rule in rules:
        scores = match_events(events, detect(probabilities, vocabulary, rule), TOLERANCE)
        rate = len(scores.during_non_target) / hours if hours else 0.0
        scored.append((scores.f1, rate, rule))
    feasible = [item for item in scored if max_false_per_h is None or item[1] <= max_false_per_h]
    if feasible:
        return max(feasible, key=lambda i: (i[0], i[2].threshold, i[2].hold, i[2].refractory))[2]
    return max(scored, key=lambda i: (-i[1], i[0], i[2].threshold, i[2].hold, i[2].refractory))[2]
