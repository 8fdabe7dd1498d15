"""Parse the dataset's ``Uxx/yy/zz.txt`` files into arrays, with an on-disk cache.

Parsing 3,251 text files costs a noticeable fraction of a second; the cache turns every later
load into a single ``np.load``. It is keyed by the checksum of the source (the zip's bytes, or the
contents of the folder's sequence files), so an edited dataset is never served stale.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesture_rnn.data.contract import check_recording, decimal
from gesture_rnn.data.facts import NUM_CLASSES, NUM_COLUMNS, SEQUENCE_PATH, recording_key
from gesture_rnn.data.reading import decode_text, iter_files, md5_of_file
from gesture_rnn.errors import DataError, StorageError
from gesture_rnn.utils.atomic import atomic_write

log = logging.getLogger(__name__)

# Bump when the parsed representation changes, so old cache files are ignored.
PARSER_VERSION = 1


@dataclass(frozen=True)
class GestureRecords:
    """All sequences of the dataset, in a stable order (sorted by file path)."""

    sequences: list[np.ndarray]  # float32 [time, 3] each
    labels: np.ndarray  # int64, gesture number - 1 (0..19)
    users: np.ndarray  # str, "U01".."U08"
    repetitions: np.ndarray  # int64
    files: list[str]  # path inside the source, for messages and reports
    checksum: str  # md5 of the source

    def __len__(self) -> int:
        return len(self.sequences)

    def select(self, indices: np.ndarray) -> GestureRecords:
        return GestureRecords(
            sequences=[self.sequences[i] for i in indices],
            labels=self.labels[indices],
            users=self.users[indices],
            repetitions=self.repetitions[indices],
            files=[self.files[i] for i in indices],
            checksum=self.checksum,
        )


def parse_sequence(text: str, name: str, accept_xyz: bool = False) -> np.ndarray:
    """Return the three acceleration columns of one recording as float32 [time, 3].

    The dataset's files have 6 columns (three timestamps, x y z); ``accept_xyz`` also takes plain
    3-column ``x y z`` files (recordings given to predict.py).
    """
    expected = f"{NUM_COLUMNS} columns (millis nanos timestamp x y z)"
    if accept_xyz:
        expected = f"3 columns (x y z) or {expected}"
    rows: list[list[float]] = []
    lines: list[int] = []
    columns = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != NUM_COLUMNS and not (accept_xyz and len(fields) == 3):
            raise DataError(f"{name}, line {line_no}: expected {expected}, found {len(fields)}")
        if columns is not None and len(fields) != columns:
            raise DataError(
                f"{name}, line {line_no}: {len(fields)} values, but the first row has {columns}: "
                "one column layout per file"
            )
        columns = len(fields)
        try:
            values = [decimal(field) for field in fields[-3:]]
            # the timestamps must be numeric and finite too, even though they are not used
            [int(decimal(field)) for field in fields[:-3]]
        except (ValueError, OverflowError) as err:
            raise DataError(f"{name}, line {line_no}: non-numeric or infinite value ({err})") from None
        rows.append(values)
        lines.append(line_no)
    return check_recording(rows if rows else np.empty((0, 3)), name, lines)


def _one_root(source: Path) -> Callable[[list[str]], None]:
    """The recordings come from exactly one dataset root (a second copy of the dataset under
    another folder would double every sequence, and its duplicates skew the split), and each
    recording is named once (``U3/7/1.txt`` and ``U03/07/01.txt`` are the same one)."""

    def check(names: list[str]) -> None:
        roots = sorted({name[: SEQUENCE_PATH.search(name).start()] for name in names})
        if len(roots) > 1:
            shown = ", ".join(repr(root or "./") for root in roots[:3])
            raise DataError(
                f"{source} holds recordings under {len(roots)} folders ({shown}); "
                "a dataset has one root: keep one copy"
            )
        seen: dict[tuple[str, int, int], str] = {}
        for name in names:  # U3/7/1.txt and U03/07/01.txt are one recording named twice
            key = recording_key(SEQUENCE_PATH.search(name))
            if key in seen:
                raise DataError(
                    f"{source}: {seen[key]} and {name} are both {key[0]}, gesture {key[1]}, repetition "
                    f"{key[2]}; keep one"
                )
            seen[key] = name

    return check


def _read_source(source: Path) -> Iterator[tuple[str, re.Match[str], bytes]]:
    """Yield (name, path match, bytes) for every sequence file of a zip or folder."""
    found = False
    for name, content in iter_files(source, SEQUENCE_PATH.search, check=_one_root(source)):
        found = True
        yield name, SEQUENCE_PATH.search(name), content
    if not found:
        raise DataError(
            f"{source} holds no Uxx/yy/zz.txt sequence files; expected the layout "
            f"gestures-dataset/Uxx/yy/zz.txt of gestures-dataset.zip"
        )


def source_checksum(source: Path) -> str:
    """md5 of a zip's bytes, or of a folder's sequence files (names and contents)."""
    if source.is_file():
        return md5_of_file(source)
    digest = hashlib.md5()
    for name, _, content in _read_source(source):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(content)
    return digest.hexdigest()


def parse_source(source: Path, checksum: str) -> GestureRecords:
    sequences, labels, users, repetitions, files = [], [], [], [], []
    for name, match, content in _read_source(source):
        user, gesture, repetition = recording_key(match)
        if not 1 <= gesture <= NUM_CLASSES:
            raise DataError(f"{source}/{name}: gesture folder {gesture:02d} is outside 01..20")
        sequences.append(parse_sequence(decode_text(content, f"{source}/{name}"), f"{source}/{name}"))
        labels.append(gesture - 1)
        users.append(user)
        repetitions.append(repetition)
        files.append(name)
    return GestureRecords(
        sequences=sequences,
        labels=np.asarray(labels, dtype=np.int64),
        users=np.asarray(users),
        repetitions=np.asarray(repetitions, dtype=np.int64),
        files=files,
        checksum=checksum,
    )


def _cache_file(cache_dir: Path, checksum: str) -> Path:
    return cache_dir / "parsed" / f"{checksum}-v{PARSER_VERSION}.npz"


def _save_cache(records: GestureRecords, path: Path) -> None:
    lengths = np.asarray([len(s) for s in records.sequences], dtype=np.int64)
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            values=np.concatenate(records.sequences),
            lengths=lengths,
            labels=records.labels,
            users=records.users,
            repetitions=records.repetitions,
            files=np.asarray(records.files),
        )


def _load_cache(path: Path, checksum: str) -> GestureRecords | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            values, lengths = data["values"], data["lengths"]
            sequences = np.split(values, np.cumsum(lengths)[:-1])
            return GestureRecords(
                sequences=sequences,
                labels=data["labels"],
                users=data["users"],
                repetitions=data["repetitions"],
                files=data["files"].tolist(),
                checksum=checksum,
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("Ignoring unreadable cache file %s (%s); parsing again", path, err)
        return None


def load_records(source: Path, cache_dir: str | os.PathLike | None) -> GestureRecords:
    """Parse ``source`` (zip or folder), reusing the parsed-array cache when it matches."""
    checksum = source_checksum(source)
    cache_path = _cache_file(Path(cache_dir).expanduser(), checksum) if cache_dir else None
    if cache_path is not None and (records := _load_cache(cache_path, checksum)) is not None:
        return records
    records = parse_source(source, checksum)
    if cache_path is not None:
        try:
            _save_cache(records, cache_path)
        except StorageError as err:  # a read-only or full cache: parse again next time
            log.warning("Not caching the parsed data: %s", err)
    return records
