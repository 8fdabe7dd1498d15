"""Continuous streams: seeded and marked where each gesture is; the stream file format and its
refusals; scoring detections against the marked gestures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gesture_rnn.data.parsing import load_records
from gesture_rnn.data.streams import (
    NON_TARGET,
    GestureEvent,
    RestModel,
    build_stream,
    events_path,
    read_stream,
    rest_stream,
    write_stream,
)
from gesture_rnn.errors import DataError
from gesture_rnn.streaming.events import Detection, match_events


@pytest.fixture(scope="module")
def records(synthetic_zip):
    return load_records(synthetic_zip, None)


def test_a_stream_is_the_same_for_a_seed_and_marks_each_recording_where_it_lies(records):
    rest = RestModel.from_records(records)
    stream = build_stream(records, "U02", seed=3, rest=rest)
    again = build_stream(records, "U02", seed=3, rest=rest)
    other = build_stream(records, "U02", seed=4, rest=rest)
    assert np.array_equal(stream.samples, again.samples) and stream.events == again.events
    assert [e.gesture for e in other.events] != [e.gesture for e in stream.events]
    mine = [records.sequences[i] for i in np.flatnonzero(records.users == "U02")]
    assert len(stream.events) == len(mine)
    found = 0
    for previous, event in zip((None, *stream.events), stream.events, strict=False):
        assert event.start >= (previous.end if previous else 0) + 2 * 9, "at least 2 s of rest between"
        piece = stream.samples[event.start : event.end]
        found += any(len(s) == len(piece) and np.array_equal(s, piece) for s in mine)
        assert event.target == (event.gesture not in NON_TARGET)
    assert found == len(mine), "every marked gesture is one of the user's recordings, sample for sample"
    assert stream.samples.dtype == np.float32 and len(stream.samples) >= stream.events[-1].end + 2 * 9


def test_rest_is_still_with_the_datas_noise_and_sensor_step(records):
    rest = RestModel(noise=(0.13, 0.14, 0.13), step=0.153229, gravity=10.07)
    stream = rest_stream(records, "U01", seconds=120, seed=0, rest=rest)
    assert stream.events == () and len(stream.samples) == 120 * 9
    steps = stream.samples / rest.step
    assert np.allclose(steps, np.round(steps), atol=1e-3), "values on the sensor's step"
    assert np.median(np.linalg.norm(stream.samples, axis=1)) == pytest.approx(rest.gravity, abs=0.1)
    jitter = np.diff(stream.samples, axis=0).std(axis=0)
    assert (jitter < 0.5).all(), "a still watch: no sample-to-sample jumps beyond noise"


def test_a_written_stream_reads_back_with_its_events(records, tmp_path: Path):
    rest = RestModel.from_records(records)
    stream = build_stream(records, "U03", seed=1, rest=rest)
    path = tmp_path / "U03.txt"
    write_stream(stream, path)
    samples, times = read_stream(path)
    np.testing.assert_allclose(samples, stream.samples, atol=1e-5)
    assert np.array_equal(times, stream.times_ms())
    rows = events_path(path).read_text().splitlines()
    assert rows[0] == "start_ms,end_ms,gesture,target" and len(rows) == len(stream.events) + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 2 9.8\n110 1 2\n", r"line 2: a stream row is `t_ms x y z`.*found 3 values"),
        ("0 1 2 9.8\n110 1 2 9.8\n110 1 2 9.8\n", r"line 3: time 110 ms is not after the previous row's"),
        ("0 1 2 9.8\n110 1 2 9.8\n50 1 2 9.8\n", r"line 3: time 50 ms is not after"),
        ("0 1 2 9.8\n110 1 2 9.8\n3110 1 2 9.8\n", r"line 3: 3 s without a sample before this row"),
        ("0 1 2 9.8\n110 1 x 9.8\n", r"line 2: not a finite number"),
        ("0 1 2 9.8\n110 1 2 nan\n", r"line 2: acceleration is null, NaN or infinite"),
        ("0 1 2 9.8\n", r"at least 2 rows"),
        ("0 1 2 9.8\n10 1 2 9.8\n20 1 2 9.8\n", r"100.0 samples per second; the models read ~9 Hz"),
    ],
)
def test_a_bad_stream_file_is_refused_in_one_line_naming_the_row(text, message, tmp_path: Path):
    path = tmp_path / "stream.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_stream(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_datasets_own_six_columns_are_a_stream_too(tmp_path: Path):
    path = tmp_path / "U01_recording.txt"
    path.write_text("1384186054309 78952598976553 1452892000000 1.53 -0.91 10.11\n"
                    "1384186054419 78952708778799 1453002000000 0.91 -0.91 9.95\n")  # fmt: skip
    samples, times = read_stream(path)
    assert samples.shape == (2, 3) and times.tolist() == [1384186054309, 1384186054419]


EVENTS = (
    GestureEvent(10, 20, 5, True),
    GestureEvent(40, 50, 7, True),
    GestureEvent(70, 80, 1, False),  # non-target movement
)


def test_detections_are_matched_once_each_within_the_tolerance():
    scores = match_events(EVENTS, [Detection(22, 5), Detection(45, 7)], tolerance=3)
    assert len(scores.hits) == 2 and scores.f1 == 1.0 and scores.delays() == [3, -4]
    late = match_events(EVENTS, [Detection(23, 5)], tolerance=3)  # past end + tolerance
    assert not late.hits and len(late.during_rest) == 1 and len(late.missed) == 2
    early = match_events(EVENTS, [Detection(9, 5)], tolerance=3)  # before the gesture began
    assert not early.hits and len(early.during_rest) == 1
    double = match_events(EVENTS, [Detection(15, 5), Detection(19, 5)], tolerance=3)
    assert len(double.hits) == 1 and len(double.during_target) == 1, "a gesture is found once"
    wrong = match_events(EVENTS, [Detection(45, 8), Detection(75, 1), Detection(60, 5)], tolerance=3)
    where = [len(wrong.during_target), len(wrong.during_non_target), len(wrong.during_rest)]
    assert not wrong.hits and where == [1, 1, 1], "a wrong gesture, non-target movement, rest"
    assert wrong.precision == 0.0 and wrong.recall == 0.0 and wrong.f1 == 0.0
    nothing = match_events(EVENTS, [], tolerance=3)
    assert nothing.precision == 1.0 and nothing.recall == 0.0 and len(nothing.missed) == 2
