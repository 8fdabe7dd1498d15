"""Parsing recordings: values, labels and metadata; malformed files named by file and line; cache."""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTH_GESTURES, SYNTH_REPETITIONS, SYNTH_USERS, recording_text, zip_folder

from gesture_rnn.data import parsing
from gesture_rnn.data.parsing import load_records, parse_sequence
from gesture_rnn.errors import DataError

GOOD = "1 2 3 1.5 -0.9 10.1\n4 5 6 0.9 -0.9 9.9\n7 8 9 1.8 -0.1 10.7\n"


def test_parse_sequence_keeps_the_three_acceleration_columns_as_float32():
    values = parse_sequence(GOOD, "U01/01/01.txt")
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, [[1.5, -0.9, 10.1], [0.9, -0.9, 9.9], [1.8, -0.1, 10.7]], rtol=1e-6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2 3 1.5 -0.9 10.1\n4 5 6 0.9 -0.9\n", r"U01/01/01\.txt, line 2: expected 6 columns.*found 5"),
        ("1 2 3 1.5 -0.9 10.1\n4 5 6 0.9 abc 9.9\n", r"U01/01/01\.txt, line 2: non-numeric"),
        (
            "1 2 3 1.5 -0.9 10.1\n",
            r"U01/01/01\.txt: a recording has 2\.\.1000 rows \(x y z at ~9 Hz\), found 1",
        ),
        ("1 2 3 1.5 -0.9 10.1\n4 5 6 nan 0.1 9.9\n", r"U01/01/01\.txt, line 2: acceleration is null, NaN"),
        (
            "1 2 3 1.5 -0.9 10.1\n4 5 6 0.1 inf 9.9\n",
            r"U01/01/01\.txt, line 2: acceleration is null, NaN or infinite \(as float32\)",
        ),
        ("x 2 3 1.5 -0.9 10.1\n4 5 6 0.9 -0.9 9.9\n", r"U01/01/01\.txt, line 1: non-numeric"),
        # beyond float32's range: checked as the model sees it, not before the cast
        ("1 2 3 1.5 -0.9 10.1\n4 5 6 1e39 0.1 9.9\n", r"line 2: acceleration is null, NaN or infinite"),
        ("1 2 3 1.5 -0.9 10.1\n4 5 6 5000 0.1 9.9\n", r"line 2: acceleration is beyond ±1000 m/s²"),
        ("1 2 3 1.5 -0.9 10.1\n4 5 inf 1 0.1 9.9\n", r"line 2: non-numeric or infinite"),  # a timestamp
    ],
)
def test_malformed_recordings_are_named_by_file_and_line(text, expected):
    with pytest.raises(DataError, match=expected):
        parse_sequence(text, "U01/01/01.txt")


def test_zip_and_folder_give_the_same_records_with_labels_users_and_repetitions(
    synthetic_zip, synthetic_folder, tmp_path
):
    from_zip = load_records(synthetic_zip, cache_dir=None)
    from_folder = load_records(synthetic_folder, cache_dir=None)
    expected = len(SYNTH_USERS) * SYNTH_GESTURES * SYNTH_REPETITIONS
    assert len(from_zip) == len(from_folder) == expected  # info.txt and gestures.png are ignored
    assert sorted(set(from_zip.labels.tolist())) == list(range(20))
    assert sorted(set(from_zip.users.tolist())) == list(SYNTH_USERS)
    assert sorted(set(from_zip.repetitions.tolist())) == list(range(1, SYNTH_REPETITIONS + 1))
    index = from_zip.files.index("gestures-dataset/U02/07/03.txt")
    assert (from_zip.labels[index], from_zip.users[index], from_zip.repetitions[index]) == (6, "U02", 3)
    for a, b in zip(from_zip.sequences, from_folder.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_malformed_file_inside_the_dataset_is_reported_with_its_path(synthetic_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_folder, broken / "gestures-dataset")
    (broken / "gestures-dataset/U03/05/02.txt").write_text(GOOD.replace("0.9 -0.9 9.9", "0.9 -0.9"))
    with pytest.raises(DataError, match=r"U03/05/02\.txt, line 2: expected 6 columns"):
        load_records(broken / "gestures-dataset", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npz")), "a failed parse must not leave a cache file"


def test_a_source_without_the_dataset_layout_is_rejected(tmp_path):
    folder = tmp_path / "not-gestures"
    (folder / "misc").mkdir(parents=True)
    (folder / "misc" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no Uxx/yy/zz\.txt sequence files"):
        load_records(folder, cache_dir=None)
    with pytest.raises(DataError, match=r"no Uxx/yy/zz\.txt sequence files"):
        load_records(zip_folder(folder, tmp_path / "wrong.zip"), cache_dir=None)


def test_a_truncated_zip_gives_a_clear_error(synthetic_zip, tmp_path):
    truncated = tmp_path / "truncated.zip"
    data = synthetic_zip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="damaged zip archive"):
        load_records(truncated, cache_dir=None)


def test_second_load_comes_from_the_cache(synthetic_zip, tmp_path, monkeypatch):
    first = load_records(synthetic_zip, cache_dir=tmp_path)
    assert len(list((tmp_path / "parsed").glob("*.npz"))) == 1

    def must_not_parse(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(parsing, "parse_source", must_not_parse)
    second = load_records(synthetic_zip, cache_dir=tmp_path)
    assert second.files == first.files
    np.testing.assert_array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(second.users, first.users)
    for a, b in zip(first.sequences, second.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_cache_is_keyed_by_content_so_an_edited_dataset_is_parsed_again(synthetic_folder, tmp_path):
    folder = tmp_path / "copy" / "gestures-dataset"
    shutil.copytree(synthetic_folder, folder)
    before = load_records(folder, cache_dir=tmp_path / "cache")
    recording = folder / "U01" / "01" / "01.txt"
    recording.write_text(recording_text(np.full((5, 3), 2.0)))
    after = load_records(folder, cache_dir=tmp_path / "cache")
    assert after.checksum != before.checksum
    index = after.files.index("U01/01/01.txt")
    np.testing.assert_array_equal(after.sequences[index], np.full((5, 3), 2.0, dtype=np.float32))
    assert len(list(Path(tmp_path / "cache" / "parsed").glob("*.npz"))) == 2


def test_recordings_saved_with_a_byte_order_mark_crlf_and_tabs_parse_like_the_original(
    synthetic_folder, tmp_path
):
    copy = tmp_path / "gestures-dataset"
    shutil.copytree(synthetic_folder, copy)
    recording = copy / "U01" / "02" / "03.txt"
    original = recording.read_text()
    windows = "\r\n".join("\t".join(line.split()) for line in original.splitlines())
    recording.write_bytes(b"\xef\xbb\xbf" + windows.encode())
    (copy / "U01" / "02" / "99.txt").mkdir()  # a folder named like a recording is not one
    expected, edited = load_records(synthetic_folder, cache_dir=None), load_records(copy, cache_dir=None)
    assert edited.files == expected.files
    for a, b in zip(expected.sequences, edited.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


def _zip_with_extra(synthetic_zip: Path, target: Path, extra: dict[str, bytes]) -> Path:
    shutil.copy(synthetic_zip, target)
    with warnings.catch_warnings(), zipfile.ZipFile(target, "a") as bundle:
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name: that is the point
        for name, content in extra.items():
            bundle.writestr(name, content)
    return target


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"copy/gestures-dataset/U01/01/01.txt": b"1 2 3 4 5 6\n1 2 3 4 5 6\n"},
            "recordings under 2 folders",
        ),
        ({"../evil/U01/01/01.txt": b"1 2 3 4 5 6\n1 2 3 4 5 6\n"}, "points outside the archive"),
        (
            {"gestures-dataset/U01/01/01.txt": b"1 2 3 4 5 6\n1 2 3 4 5 6\n"},
            "holds 'gestures-dataset/U01/01/01.txt' twice",
        ),
        ({"gestures-dataset/U09/01/01.txt": b"1 2 3 4 5 6\n" * 200_000}, "more than a recording can be"),
    ],
    ids=["second copy", "escaping entry", "same name twice", "huge entry"],
)
def test_recordings_come_from_one_root_within_size_limits(synthetic_zip, tmp_path, extra, message):
    bad = _zip_with_extra(synthetic_zip, tmp_path / "bad.zip", extra)
    with pytest.raises(DataError, match=re.escape(message)):
        load_records(bad, cache_dir=None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1_000 2 9.8\n0.1 0.2 9.7\n", r"'1_000' is not a plain decimal number"),
        ("\uff11 2 9.8\n0.1 0.2 9.7\n", r"is not a plain decimal number"),  # a full-width 1
        ("1 2 9.8\n1 2 3 0.1 0.2 9.7\n", r"line 2: 6 values, but the first row has 3"),
    ],
)
def test_a_recording_has_plain_ascii_decimals_and_one_column_layout(text, message):
    with pytest.raises(DataError, match=message):
        parse_sequence(text, "r.txt", accept_xyz=True)


def test_predict_reads_regular_files_only(tmp_path):
    import os

    from gesture_rnn.data.recordings import read_recordings

    os.mkfifo(tmp_path / "live")
    for path in (tmp_path / "live", Path("/dev/zero")):
        with pytest.raises(DataError, match=r"is not a regular file \(a pipe, a device or a socket\)"):
            list(read_recordings(path))
