"""Dataset facts, reading, parsing, splitting and the LightningDataModule.

Attributes are imported on first use, so ``predict.py`` reading a recording does not pay for
Lightning's import.
"""

from __future__ import annotations

from gesture_rnn.utils.lazy import lazy_attributes

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

__getattr__ = lazy_attributes(__name__, _EXPORTS)
