"""Find the dataset on disk, or download, verify and extract it into the cache.

Order: an explicit path, then ``$GESTURES_DATA``, then the cache folder, then the download.
Everything written to the cache goes to a temporary name first and is renamed into place only
once complete, so an interrupted or failed download never leaves a half-written dataset behind.
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

log = logging.getLogger(__name__)

DATA_ENV_VAR = "GESTURES_DATA"
DOWNLOAD_TIMEOUT_S = 60


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
        return check_source(Path(path).expanduser(), "data.path")
    env_path = os.environ.get(DATA_ENV_VAR)
    if env_path:
        return check_source(Path(env_path).expanduser(), f"${DATA_ENV_VAR}")
    cached = Path(cache_dir).expanduser() / DIRNAME
    if cached.is_dir():
        return cached
    if not download:
        raise DataError(
            f"dataset not found in {cached} and data.download=false; set data.path or ${DATA_ENV_VAR}"
        )
    return download_and_extract(url, md5, Path(cache_dir).expanduser())


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
        extracted = Path(scratch) / "extracted"
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(extracted)
        except zipfile.BadZipFile as err:
            raise DataError(f"downloaded archive is not a valid zip ({err}); {manual}") from err
        root = extracted / DIRNAME
        if not root.is_dir():
            raise DataError(f"downloaded archive has no top-level {DIRNAME}/ folder; {manual}")
        os.replace(root, target)
    log.info("Dataset extracted to %s", target)
    return target
