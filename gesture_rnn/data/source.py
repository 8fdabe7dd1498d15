"""Find the dataset on disk, or download, verify and extract it into the cache.

Order: an explicit path, then ``$GESTURES_DATA``, then the cache (a kept zip, then an extracted
folder), then the download. The dataset's own zip given once (path or variable, ``make data
ZIP=...``) is kept: verified by md5 and copied into the cache, where the next command finds the
same archive (so the same data checksum) without being told. Everything written to the cache
goes to a temporary name first and is renamed into place only once complete, so an interrupted
or failed download never leaves a half-written dataset behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from gesture_rnn.data.facts import DIRNAME
from gesture_rnn.data.reading import md5_of_file
from gesture_rnn.errors import DataError
from gesture_rnn.utils.atomic import atomic_write

log = logging.getLogger(__name__)

DATA_ENV_VAR = "GESTURES_DATA"
DOWNLOAD_TIMEOUT_S = 60
# the zip a user gave once, kept in the cache (``remember``)
KEPT_ZIP = "gestures-dataset.zip"
DEFAULT_CACHE = "~/.cache/gesture_rnn"  # $GESTURE_RNN_CACHE overrides it, as in conf/data/*.yaml


def dataset_on_disk(given: str | os.PathLike | None) -> Path:
    """The dataset as train.py finds it, without a download — ``given`` (a study's ``--data``),
    ``$GESTURES_DATA``, or what ``make data`` or an earlier run kept in the cache — for the
    commands that hand it on (studies, benchmarks, the page's build)."""
    if given or os.environ.get(DATA_ENV_VAR):
        path = Path(given or os.environ[DATA_ENV_VAR]).expanduser()
        if not path.exists():
            raise DataError(f"the dataset {path} does not exist (from --data or ${DATA_ENV_VAR})")
        return path
    cache = Path(os.environ.get("GESTURE_RNN_CACHE") or DEFAULT_CACHE).expanduser()
    for kept in (cache / KEPT_ZIP, cache / DIRNAME):
        if kept.exists():
            return kept
    raise DataError(
        f"no dataset: set {DATA_ENV_VAR}=/path/to/gestures-dataset.zip, or keep it once with "
        "make data ZIP=/path/to/gestures-dataset.zip"
    )


def check_source(path: Path, origin: str) -> Path:
    """Return ``path`` if it is an existing zip file or folder, else raise naming ``origin``."""
    if not path.exists():
        raise DataError(f"dataset not found: {path} (from {origin}) does not exist")
    if path.is_dir():
        return path
    if not zipfile.is_zipfile(path):
        if path.suffix.lower() == ".zip":
            raise DataError(
                f"dataset {path} (from {origin}) is a damaged zip archive (truncated download?); "
                "download it again"
            )
        raise DataError(
            f"dataset {path} (from {origin}) is neither a folder nor a zip archive; "
            f"point it at gestures-dataset.zip or the folder extracted from it"
        )
    return path


def locate_dataset(
    path: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    url: str,
    md5: str,
    download: bool = True,
) -> Path:
    """Return a zip archive or folder that holds the dataset, downloading it if needed."""
    if path is not None and str(path) != "":
        return remember(check_source(Path(path).expanduser(), "data.path"), md5, cache_dir)
    env_path = os.environ.get(DATA_ENV_VAR)
    if env_path:
        return remember(check_source(Path(env_path).expanduser(), f"${DATA_ENV_VAR}"), md5, cache_dir)
    kept = Path(cache_dir).expanduser() / KEPT_ZIP
    if kept.is_file():
        return kept
    cached = Path(cache_dir).expanduser() / DIRNAME
    if cached.is_dir():
        return cached
    if not download:
        raise DataError(
            f"dataset not found in {cached} and data.download=false; set data.path or ${DATA_ENV_VAR}"
        )
    return download_and_extract(url, md5, Path(cache_dir).expanduser())


def remember(source: Path, md5: str, cache_dir: str | os.PathLike) -> Path:
    """Keep the dataset's own zip (its md5 checked) in the cache, once, so that a later command
    finds the same archive without ``data.path``; returns ``source``, which this run reads.
    Anything else — a folder, another archive, a cache that cannot be written — is left alone."""
    kept = Path(cache_dir).expanduser() / KEPT_ZIP
    if kept.is_file() or not source.is_file() or md5_of_file(source) != md5:
        return source
    try:
        with atomic_write(kept, "wb") as copy, source.open("rb") as original:
            shutil.copyfileobj(original, copy)
        log.info("Dataset kept as %s: later commands find it without data.path", kept)
    except OSError as err:
        log.warning("could not keep the dataset in %s (%s); pass data.path again next time", kept, err)
    return source


def _extract(archive: Path, scratch: Path, target: Path, hint: str) -> None:
    """Extract ``archive`` in ``scratch`` and rename its top-level folder to ``target``."""
    extracted = scratch / "extracted"
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(extracted)
    except zipfile.BadZipFile as err:
        raise DataError(f"downloaded archive is not a valid zip ({err}); {hint}") from err
    root = extracted / DIRNAME
    if not root.is_dir():
        raise DataError(f"downloaded archive has no top-level {DIRNAME}/ folder; {hint}")
    os.replace(root, target)


def download_and_extract(url: str, md5: str, cache_dir: Path) -> Path:
    """Download ``url``, verify its md5 and extract it to ``cache_dir/gestures-dataset``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / DIRNAME
    manual = (
        f"download it by hand from {url} and pass data.path=/path/to/gestures-dataset.zip "
        f"(or set ${DATA_ENV_VAR})"
    )
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
        archive = Path(scratch) / "gestures-dataset.zip"
        log.info("Downloading the SmartWatch Gestures Dataset from %s", url)
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                archive.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as err:
            raise DataError(f"could not download the dataset ({err}); offline? {manual}") from err
        actual = md5_of_file(archive)
        if actual != md5:
            raise DataError(
                f"downloaded archive has md5 {actual}, expected {md5} (data.md5); "
                f"the download is corrupt or the file changed upstream; {manual}"
            )
        _extract(archive, Path(scratch), target, manual)
    log.info("Dataset extracted to %s", target)
    return target


def main(argv: list[str] | None = None) -> None:
    """``make data ZIP=...``: check the dataset's zip and keep it in the cache."""
    import argparse
    import sys

    from gesture_rnn.data.facts import MD5

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("zip", type=Path, help="gestures-dataset.zip")
    parser.add_argument("--cache-dir", default=os.environ.get("GESTURE_RNN_CACHE", "~/.cache/gesture_rnn"))
    args = parser.parse_args(argv)
    try:
        source = check_source(args.zip.expanduser(), "ZIP")
        if source.is_dir() or md5_of_file(source) != MD5:
            raise DataError(f"{source} is not gestures-dataset.zip (md5 {MD5} expected)")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    remember(source, MD5, args.cache_dir)
    target = Path(args.cache_dir).expanduser() / KEPT_ZIP
    if not target.is_file():
        print(f"error: could not write {target}", file=sys.stderr)
        sys.exit(2)
    print(f"dataset kept in {target}: train.py finds it without data.path")


if __name__ == "__main__":
    main()
