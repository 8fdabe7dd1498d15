"""Exact duplicate recordings: the dataset holds one byte-identical pair under two gestures
(U02/13/20.txt and U02/14/01.txt). A sequence cannot be both gestures, so such groups are dropped
by default; exact duplicates that are kept are never split across train and test."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from gesture_rnn.data.parsing import GestureRecords

log = logging.getLogger(__name__)


def duplicate_groups(records: GestureRecords) -> list[list[int]]:
    """Indices of byte-identical sequences, one list per group of two or more."""
    by_content: dict[bytes, list[int]] = defaultdict(list)
    for index, sequence in enumerate(records.sequences):
        by_content[sequence.tobytes()].append(index)
    return [group for group in by_content.values() if len(group) > 1]


def conflicting(records: GestureRecords, group: list[int]) -> bool:
    return len({int(records.labels[i]) for i in group}) > 1


def drop_conflicting_duplicates(records: GestureRecords) -> tuple[np.ndarray, list[str]]:
    """Indices to keep, and a description of each dropped file."""
    dropped: list[int] = []
    for group in duplicate_groups(records):
        if conflicting(records, group):
            dropped.extend(group)
    described = [f"{records.files[i]} (gesture {records.labels[i] + 1})" for i in dropped]
    if described:
        log.warning(
            "Dropped %d sequences that are exact duplicates under different gestures: %s "
            "(data.drop_conflicting_duplicates=false keeps them)",
            len(described),
            ", ".join(described),
        )
    return np.setdiff1d(np.arange(len(records)), dropped), described


def distinct_recordings(records: GestureRecords) -> tuple[GestureRecords, list[str]]:
    """Each recording once, and what was left out: conflicting groups dropped (as above), and of
    identical copies under one gesture the first kept — a copy drawn as a personalisation shot
    would otherwise also be evaluated."""
    keep, dropped = drop_conflicting_duplicates(records)
    kept = records.select(keep)
    copies = sorted(i for group in duplicate_groups(kept) for i in group[1:])
    notes = dropped + [f"{kept.files[i]} (a copy of another recording)" for i in copies]
    return kept.select(np.setdiff1d(np.arange(len(kept)), copies)), notes
