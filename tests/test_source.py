"""Finding the data: explicit path, then $GESTURES_DATA, then the cache, then a verified download."""

from __future__ import annotations

import pytest

from gesture_rnn.data.facts import DIRNAME as DATASET_DIRNAME
from gesture_rnn.data.reading import md5_of_file
from gesture_rnn.data.source import dataset_on_disk, locate_dataset
from gesture_rnn.errors import DataError


def test_explicit_path_wins_over_environment_and_cache(
    synthetic_zip, synthetic_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("GESTURES_DATA", str(synthetic_folder))
    assert locate_dataset(synthetic_zip, tmp_path, "file:///nowhere", "0" * 32) == synthetic_zip


def test_environment_variable_wins_over_cache(synthetic_folder, tmp_path, monkeypatch):
    (tmp_path / DATASET_DIRNAME).mkdir()
    monkeypatch.setenv("GESTURES_DATA", str(synthetic_folder))
    assert locate_dataset(None, tmp_path, "file:///nowhere", "0" * 32) == synthetic_folder


def test_cache_is_used_before_downloading(tmp_path):
    (tmp_path / DATASET_DIRNAME).mkdir()
    assert locate_dataset(None, tmp_path, "file:///nowhere", "0" * 32) == tmp_path / DATASET_DIRNAME


@pytest.mark.parametrize("make_path", [lambda p: p / "missing.zip", lambda p: p / "notes.txt"])
def test_a_path_that_is_neither_zip_nor_folder_is_rejected(tmp_path, make_path):
    (tmp_path / "notes.txt").write_text("not a zip")
    with pytest.raises(DataError, match=r"data\.path"):
        locate_dataset(make_path(tmp_path), tmp_path / "cache", "file:///nowhere", "0" * 32)


def test_download_verifies_and_extracts_into_the_cache(synthetic_zip, tmp_path):
    cache = tmp_path / "cache"
    found = locate_dataset(None, cache, synthetic_zip.as_uri(), md5_of_file(synthetic_zip))
    assert found == cache / DATASET_DIRNAME
    assert (found / "U01" / "01" / "01.txt").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [DATASET_DIRNAME], "no temporary files remain"


def test_wrong_checksum_leaves_nothing_in_the_cache(synthetic_zip, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"expected 0{32} \(data.md5\).*data.path="):
        locate_dataset(None, cache, synthetic_zip.as_uri(), "0" * 32)
    assert list(cache.iterdir()) == []


def test_offline_download_says_what_to_do(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"could not download the dataset.*offline\?.*data.path="):
        locate_dataset(None, cache, "http://127.0.0.1:9/gestures-dataset.zip", "0" * 32)
    assert list(cache.iterdir()) == []


def test_corrupt_download_leaves_nothing_in_the_cache(tmp_path):
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a complete archive")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a valid zip"):
        locate_dataset(None, cache, corrupt.as_uri(), md5_of_file(corrupt))
    assert list(cache.iterdir()) == []


def test_the_datasets_zip_given_once_is_kept_and_found_by_the_next_command(
    synthetic_zip, tmp_path, monkeypatch
):
    cache, md5 = tmp_path / "cache", md5_of_file(synthetic_zip)
    assert locate_dataset(synthetic_zip, cache, "file:///nowhere", md5) == synthetic_zip, "this run reads it"
    kept = cache / "gestures-dataset.zip"
    assert md5_of_file(kept) == md5 and sorted(p.name for p in cache.iterdir()) == [kept.name]
    assert locate_dataset(None, cache, "file:///nowhere", md5) == kept, "no path the next time"
    monkeypatch.setenv("GESTURES_DATA", str(synthetic_zip))
    other = tmp_path / "other"
    assert locate_dataset(None, other, "file:///nowhere", md5) == synthetic_zip
    assert (other / "gestures-dataset.zip").is_file(), "given by the variable: kept too"


def test_an_archive_that_is_not_the_dataset_is_not_kept(synthetic_zip, synthetic_folder, tmp_path):
    cache = tmp_path / "cache"
    locate_dataset(synthetic_zip, cache, "file:///nowhere", "0" * 32)
    locate_dataset(synthetic_folder, cache, "file:///nowhere", md5_of_file(synthetic_zip))
    assert not cache.exists() or list(cache.iterdir()) == [], "another md5, or a folder: left alone"


def test_studies_find_the_zip_a_run_kept_without_being_told(synthetic_zip, tmp_path, monkeypatch):
    """make cv, make stream, make small_model, the benchmarks and the page's build hand on the
    dataset as train.py finds it: a kept zip is enough, no GESTURES_DATA."""
    monkeypatch.delenv("GESTURES_DATA", raising=False)
    monkeypatch.setenv("GESTURE_RNN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="make data ZIP="):
        dataset_on_disk(None)
    locate_dataset(synthetic_zip, tmp_path / "cache", "http://unused.invalid", md5_of_file(synthetic_zip))
    assert dataset_on_disk("") == tmp_path / "cache" / "gestures-dataset.zip"
    assert dataset_on_disk(synthetic_zip) == synthetic_zip
    with pytest.raises(DataError, match="does not exist"):
        dataset_on_disk(tmp_path / "nope.zip")
