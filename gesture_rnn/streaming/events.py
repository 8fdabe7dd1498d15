"""Scoring a recognizer on a stream: which detections found which gestures.

A detection is right when its gesture is the true one and it falls between the gesture's start
and its end plus ``tolerance`` samples (a recognizer may need a moment after the movement stops);
each true gesture is found at most once, so a second detection of it is a false activation.
False activations are counted by where they happen: during rest, during non-target movement
(within its own tolerance), or during a vocabulary gesture (a wrong gesture, or a repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gesture_rnn.data.facts import SAMPLING_RATE_HZ
from gesture_rnn.data.streams import GestureEvent

# what a spotter's test logs per stream construction (gesture_rnn.streaming.evaluation), under a
# prefix per construction: the one never trained on (judged), the training builder's
STREAM_METRICS = ("event_f1", "precision", "recall", "false_per_h_rest", "false_per_h_movement",
                  "false_per_h_everyday", "delay_s")  # fmt: skip
CONSTRUCTIONS = {"unseen": "test", "builder": "test_builder"}  # construction -> metric prefix
TOLERANCE_S = 1.0  # how long after a gesture's end a detection still counts (make stream, the page)
TOLERANCE = round(TOLERANCE_S * SAMPLING_RATE_HZ)


@dataclass(frozen=True)
class Detection:
    sample: int  # the stream sample at which the recognizer decided
    gesture: int  # the dataset's gesture number (1..20)
    probability: float = 1.0


@dataclass
class EventScores:
    hits: list[tuple[GestureEvent, Detection]] = field(default_factory=list)
    missed: list[GestureEvent] = field(default_factory=list)
    # false activations, by where they fell
    during_rest: list[Detection] = field(default_factory=list)
    during_non_target: list[Detection] = field(default_factory=list)
    during_target: list[Detection] = field(default_factory=list)

    @property
    def false_activations(self) -> int:
        return len(self.during_rest) + len(self.during_non_target) + len(self.during_target)

    @property
    def precision(self) -> float:
        found = len(self.hits) + self.false_activations
        return len(self.hits) / found if found else 1.0

    @property
    def recall(self) -> float:
        true = len(self.hits) + len(self.missed)
        return len(self.hits) / true if true else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def delays(self) -> list[int]:
        """Samples from each found gesture's end to its detection (negative: before the end)."""
        return [detection.sample - (event.end - 1) for event, detection in self.hits]


def match_events(
    events: Sequence[GestureEvent], detections: Sequence[Detection], tolerance: int
) -> EventScores:
    """Detections in time order, each matched to the earliest true vocabulary gesture it may
    count for and that is not found yet."""
    scores = EventScores()
    targets = sorted((e for e in events if e.target), key=lambda e: e.start)
    found: set[int] = set()
    for detection in sorted(detections, key=lambda d: d.sample):
        match = next(
            (
                i
                for i, event in enumerate(targets)
                if i not in found
                and event.gesture == detection.gesture
                and event.start <= detection.sample < event.end + tolerance
            ),
            None,
        )
        if match is not None:
            found.add(match)
            scores.hits.append((targets[match], detection))
            continue
        inside = [e for e in events if e.start <= detection.sample < e.end + tolerance]
        if any(e.target for e in inside):
            scores.during_target.append(detection)
        elif inside:
            scores.during_non_target.append(detection)
        else:
            scores.during_rest.append(detection)
    scores.missed = [event for i, event in enumerate(targets) if i not in found]
    return scores
