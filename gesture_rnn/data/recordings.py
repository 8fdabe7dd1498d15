"""Recordings to classify: one file, a folder of them, or the dataset zip; 6 or 3 columns."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gesture_rnn.data.facts import SEQUENCE_PATH
from gesture_rnn.data.parsing import parse_sequence
from gesture_rnn.data.reading import MAX_FILE_BYTES, decode_text, iter_files, read_regular_file
from gesture_rnn.errors import DataError


def read_recordings(source: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, x y z as float32 [time, 3]) for a recording file, every *.txt under a folder, or
    every sequence file of the dataset zip."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"input={source} does not exist")
    if not path.is_dir() and not path.is_file():  # a FIFO or a device: it could block or never end
        read_regular_file(path, MAX_FILE_BYTES, "input")  # refuses it, naming what it is
    if path.is_file() and not zipfile.is_zipfile(path):
        files = [
            (str(path), read_regular_file(path, MAX_FILE_BYTES, "input"))
        ]  # the size cap, as for the rest
    elif path.is_file():
        files = iter_files(path, SEQUENCE_PATH.search)
    else:
        files = ((str(path / name), raw) for name, raw in iter_files(path, lambda n: n.endswith(".txt")))
    found = False
    for name, raw in files:
        found = True
        yield name, parse_sequence(decode_text(raw, name), name, accept_xyz=True)
    if not found:
        what = (
            "the zip holds no Uxx/yy/zz.txt recordings"
            if path.is_file()
            else "no *.txt recordings in this folder"
        )
        raise DataError(f"input={source}: {what}")


def seen_in_dataset(
    seen: set[str], data_path: str | None, cache_dir: str
) -> tuple[list[np.ndarray], np.ndarray]:
    """The dataset's recordings (found as train.py finds it) whose fingerprints are in ``seen`` —
    a model's own training and validation recordings — and their labels."""
    from gesture_rnn.data.facts import MD5, URL
    from gesture_rnn.data.fingerprints import fingerprints
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.data.source import locate_dataset

    records = load_records(locate_dataset(data_path, cache_dir, URL, MD5), cache_dir)
    keep = np.flatnonzero([f in seen for f in fingerprints(records.sequences)])
    if len(keep) == 0:
        raise DataError("none of the model's training recordings is in the dataset train.py finds")
    return [records.sequences[i] for i in keep], records.labels[keep]
