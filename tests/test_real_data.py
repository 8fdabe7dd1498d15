"""The real SmartWatch Gestures Dataset (set GESTURES_DATA; CI does)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import compose_train_config

import gesture_rnn
from gesture_rnn.data import load_records

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast

REAL_MD5 = "7966323b95154f314e831c312e5cc33b"


def test_the_real_archive_parses_into_3251_sequences_and_reloads_from_the_cache(real_data, tmp_path):
    records = load_records(real_data, cache_dir=tmp_path)
    assert records.checksum == REAL_MD5
    assert len(records) == 3251
    assert sorted(set(records.users.tolist())) == [f"U0{i}" for i in range(1, 9)]
    assert len(np.bincount(records.labels)) == 20 and np.bincount(records.labels).min() >= 150
    lengths = [len(s) for s in records.sequences]
    assert (min(lengths), max(lengths)) == (10, 51)
    assert all(s.shape[1] == 3 and s.dtype == np.float32 for s in records.sequences)

    started = time.perf_counter()
    reloaded = load_records(real_data, cache_dir=tmp_path)
    assert time.perf_counter() - started < 1.0, "the parsed-array cache makes reloads well under a second"
    assert reloaded.files == records.files


def test_a_short_run_on_the_real_data_learns_well_above_chance(real_data, tmp_path):
    cfg = compose_train_config(tmp_path, [f"data.path={real_data}", "trainer.max_epochs=3"])
    metrics = gesture_rnn.train(cfg)
    assert metrics["test/acc"] > 0.4, "chance is 0.05 with 20 gestures"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "floor"),
    [([], 0.96), (["model.net.hidden=256", "model.net.layers=2", "model.net.dropout=0.06"], 0.985)],
)
def test_twenty_epochs_reach_the_study_accuracy(real_data, tmp_path, overrides, floor):
    cfg = compose_train_config(tmp_path, [f"data.path={real_data}", "data.val_fraction=0", *overrides])
    assert gesture_rnn.train(cfg)["test/acc"] >= floor
