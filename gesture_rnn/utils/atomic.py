"""Files written under a temporary name and renamed into place: a reader (or a later run) never
sees half of one, whatever interrupts the write; a write that fails says which file and why in
one line (``StorageError``) and leaves nothing; the file gets the user's usual permissions."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from gesture_rnn.errors import StorageError


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def storage_error(err: OSError, what: str, path: Path) -> StorageError:
    reason = err.strerror or type(err).__name__
    return StorageError(f"{reason}: writing {what} {path} (nothing was left there)")


@contextmanager
def atomic_write(path: Path, mode: str = "w", what: str = "") -> Iterator[IO]:
    """``with atomic_write(path, "wb") as handle: ...`` — ``path`` appears only once complete,
    readable as any file the user creates (not ``mkstemp``'s 0600)."""
    what = what or "file"
    if path.is_dir():
        raise StorageError(f"{path} is a folder: name the {what} to write, e.g. {path / 'name'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise storage_error(err, what, path) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(err, what, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str, what: str = "") -> None:
    with atomic_write(path, "w", what) as handle:
        handle.write(text)
