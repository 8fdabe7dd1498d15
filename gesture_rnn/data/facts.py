"""The SmartWatch Gestures Dataset's facts, in one place (every other module imports them)."""

from __future__ import annotations

import re

URL = "https://github.com/raoulg/gestures/raw/main/gestures-dataset.zip"
MD5 = "7966323b95154f314e831c312e5cc33b"  # of gestures-dataset.zip
DIRNAME = "gestures-dataset"  # the archive's top-level folder
NUM_CLASSES = 20
# the eight wearers: the leave-one-user-out folds
USERS = [f"U{i:02d}" for i in range(1, 9)]
# class index i is the dataset's gesture number i + 1 (as drawn in the dataset's gestures.png)
GESTURES = list(range(1, NUM_CLASSES + 1))
# what each gesture's pictogram draws (the dataset names none), as a wearer faces it
GESTURE_NAMES = {
    1: "right", 2: "left", 3: "up", 4: "down",
    5: "circle, clockwise", 6: "circle, counter-clockwise",
    7: "square, clockwise", 8: "square, counter-clockwise",
    9: "up, then right", 10: "up, then left", 11: "right, then down", 12: "left, then down",
    13: "V from top left", 14: "V from top right", 15: "Λ from bottom left", 16: "Λ from bottom right",
    17: "S from top right", 18: "mirrored S from top left",
    19: "S upward from bottom left", 20: "mirrored S upward from bottom right",
}  # fmt: skip
SAMPLING_RATE_HZ = 9  # about 9 Hz in the recordings (≈110 ms between samples)
LONGEST_SEQUENCE = 51  # samples in the longest recording (the shortest has 10)
NUM_CHANNELS = 3  # x y z acceleration in m/s²
NUM_COLUMNS = 6  # per line of a recording: millis, nanos, timestamp, x, y, z
# U<user>/<gesture>/<repetition>.txt anywhere below the root; the dataset writes two digits
# (U03/07/12.txt), a person may write one (U3/7/12.txt): the same recording
SEQUENCE_PATH = re.compile(r"(?:^|/)U(\d{1,2})/(\d{1,2})/(\d{1,2})\.txt$")


def recording_key(match: re.Match[str]) -> tuple[str, int, int]:
    """(user ``Uxx``, gesture, repetition) of a ``SEQUENCE_PATH`` match."""
    return f"U{int(match.group(1)):02d}", int(match.group(2)), int(match.group(3))


def gesture_label(gesture: int) -> str:
    """``gesture 12 "left, then down"``: its number and what its pictogram draws."""
    name = GESTURE_NAMES.get(gesture)
    return f'gesture {gesture} "{name}"' if name else f"gesture {gesture}"
