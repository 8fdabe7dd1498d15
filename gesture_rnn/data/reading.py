"""One reader for recordings on disk: a zip archive or a folder, bytes in, text out, md5.

The dataset (``parsing.load_records``) and ``predict.py`` (``recordings.read_recordings``) both
read through here, so a zip, a folder and a file's text are handled the same way everywhere.
"""

from __future__ import annotations

import hashlib
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


def iter_files(source: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file of a zip or folder whose name ``wanted`` accepts, sorted by name.

    Names are paths inside the source with ``/`` separators (as zip members are named).
    """
    if source.is_dir():
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
        for name in filter(wanted, names):
            yield name, (source / name).read_bytes()
        return
    try:
        with zipfile.ZipFile(source) as bundle:
            names = sorted(info.filename for info in bundle.infolist() if not info.is_dir())
            for name in filter(wanted, names):
                yield name, bundle.read(name)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise DataError(f"{source} is a damaged zip archive ({err}); download it again") from None


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 text as people save it: a byte-order mark (Windows editors) is dropped; CRLF line
    ends and tabs need nothing here (``splitlines`` and ``split`` take them)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a text file") from None
