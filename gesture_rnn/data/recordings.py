"""Recordings to classify: one file, a folder of them, or the dataset zip; 6 or 3 columns."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gesture_rnn.data.facts import SEQUENCE_PATH
from gesture_rnn.data.parsing import parse_sequence
from gesture_rnn.data.reading import check_entries, decode_text, iter_files
from gesture_rnn.errors import DataError


def read_recordings(source: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, x y z as float32 [time, 3]) for a recording file, every *.txt under a folder, or
    every sequence file of the dataset zip."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"input={source} does not exist")
    if path.is_file() and not zipfile.is_zipfile(path):
        check_entries(path.parent, [(path.name, path.stat().st_size)])  # the size cap, as for the rest
        files = [(str(path), path.read_bytes())]
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
