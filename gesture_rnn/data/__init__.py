"""Dataset facts, reading, parsing, splitting and the LightningDataModule.

Attributes are imported on first use, so ``predict.py`` reading a recording does not pay for
Lightning's import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GestureDataModule": "gesture_rnn.data.datamodule",
    "SequenceDataset": "gesture_rnn.data.datamodule",
    "pad_batch": "gesture_rnn.data.batching",
    "pad_sequences": "gesture_rnn.data.batching",
    "GestureRecords": "gesture_rnn.data.parsing",
    "load_records": "gesture_rnn.data.parsing",
    "parse_sequence": "gesture_rnn.data.parsing",
    "locate_dataset": "gesture_rnn.data.source",
    "SplitIndices": "gesture_rnn.data.splits",
    "split_indices": "gesture_rnn.data.splits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
