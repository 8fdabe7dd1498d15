"""Dataset location, parsing, splitting and the LightningDataModule."""

from gesture_rnn.data.datamodule import GestureDataModule, SequenceDataset, pad_batch
from gesture_rnn.data.parsing import GestureRecords, load_records, parse_sequence
from gesture_rnn.data.source import locate_dataset
from gesture_rnn.data.splits import SplitIndices, split_indices

__all__ = [
    "GestureDataModule",
    "GestureRecords",
    "SequenceDataset",
    "SplitIndices",
    "load_records",
    "locate_dataset",
    "pad_batch",
    "parse_sequence",
    "split_indices",
]
