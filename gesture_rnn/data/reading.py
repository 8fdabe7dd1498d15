"""One reader for recordings on disk: a zip archive or a folder, bytes in, text out, md5.

The dataset (``parsing.load_records``) and ``predict.py`` (``recordings.read_recordings``) both
read through here, so a zip, a folder and a file's text are handled the same way everywhere.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gesture_rnn.errors import DataError


def md5_of_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_FILE_BYTES = 1 << 20  # a recording is a few kB: a larger file is an error, not an out-of-memory


def read_regular_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else a DataError
    naming it. A FIFO, a device (``/dev/zero``) or a socket is refused before it is opened — it
    could block for ever or never end — and at most ``max_bytes`` + 1 bytes are ever read (a file
    that grows while it is read is still bounded)."""
    try:
        status = path.stat()
    except OSError as err:
        raise DataError(f"{what}={path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(status.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(status.st_mode)
            else "not a regular file (a pipe, a device or a socket)"
        )
        raise DataError(f"{what}={path} is {kind}: give a file")
    if status.st_size > max_bytes:
        raise DataError(
            f"{what}={path} is {status.st_size:,} bytes, more than {max_bytes:,}: not a file to read"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        raise DataError(f"{what}={path}: cannot be read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise DataError(f"{what}={path} grew past {max_bytes:,} bytes while it was read: not a file to read")
    return raw


def _entries(source: Path) -> list[tuple[str, int]]:
    """(name, size) of every file of a zip or folder; names are paths inside it with ``/``."""
    if source.is_dir():
        return [
            (p.relative_to(source).as_posix(), p.stat().st_size) for p in source.rglob("*") if p.is_file()
        ]
    try:
        with zipfile.ZipFile(source) as bundle:
            return [(info.filename, info.file_size) for info in bundle.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise DataError(f"{source} is a damaged zip archive ({err}); download it again") from None


def check_entries(source: Path, entries: list[tuple[str, int]]) -> None:
    """Refuse names escaping ``source``, a name twice, or a file larger than ``MAX_FILE_BYTES``."""
    seen: set[str] = set()
    for name, size in entries:
        if name.startswith("/") or ".." in name.split("/"):
            raise DataError(f"{source}: entry {name!r} points outside the archive; refusing to read it")
        if name in seen:
            raise DataError(f"{source} holds {name!r} twice; keep one copy")
        seen.add(name)
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"{source}: {name} is {size:,} bytes, more than a recording can be ({MAX_FILE_BYTES:,})"
            )


def iter_files(
    source: Path, wanted: Callable[[str], bool], check: Callable[[list[str]], None] | None = None
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file of a zip or folder whose name ``wanted`` accepts, sorted by name.

    Before anything is read: names that escape the source (``../``, absolute), a name twice, or a
    file larger than ``MAX_FILE_BYTES`` are refused, and ``check`` sees the chosen names.
    """
    entries = sorted((name, size) for name, size in _entries(source) if wanted(name))
    check_entries(source, entries)
    names = [name for name, _ in entries]
    if check is not None:
        check(names)
    if source.is_dir():
        for name in names:
            yield name, (source / name).read_bytes()
        return
    with zipfile.ZipFile(source) as bundle:
        for name in names:
            yield name, bundle.read(name)


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 text as people save it: a byte-order mark (Windows editors) is dropped; CRLF line
    ends and tabs need nothing here (``splitlines`` and ``split`` take them)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a text file") from None
