"""Recordings to classify: one file, a folder of them, or the dataset zip; 6 or 3 columns."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gesture_rnn.data.parsing import SEQUENCE_PATH, parse_sequence
from gesture_rnn.errors import DataError


def parse_recording(text: str, name: str) -> np.ndarray:
    """x y z as float32 [time, 3] from the dataset's 6-column format or a plain 3-column file."""
    return parse_sequence(text, name, accept_xyz=True)


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a text file") from None


def read_recordings(source: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, [time, 3]) for a recording file, every *.txt under a folder, or every sequence
    file of the dataset zip."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"input={source} does not exist")
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            names = sorted(n for n in bundle.namelist() if SEQUENCE_PATH.search(n))
            if not names:
                raise DataError(f"input={source}: the zip holds no Uxx/yy/zz.txt recordings")
            for name in names:
                yield name, parse_recording(_decode(bundle.read(name), name), name)
        return
    files = [path] if path.is_file() else sorted(path.rglob("*.txt"))
    if not files:
        raise DataError(f"input={source}: no *.txt recordings in this folder")
    for file in files:
        name = str(file)
        yield name, parse_recording(_decode(file.read_bytes(), name), name)
