"""Continuous streams: seeded and marked where each gesture is; the stream file format and its
refusals; scoring detections against the marked gestures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gesture_rnn.data.streams import (
    NON_TARGET,
    GestureEvent,
    RestModel,
    Stream,
    build_stream,
    events_path,
    read_stream,
    rest_stream,
    write_stream,
)
from gesture_rnn.errors import DataError
from gesture_rnn.streaming.events import Detection, match_events


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
        ("0 1 2 9.8\n110 1 x 9.8\n", r"line 2: 'x' is not a plain decimal number"),
        ("0 1 2 9.8\n110 1_000 2 9.8\n", r"line 2: '1_000' is not a plain decimal number"),
        ("0 1 2 9.8\n110 \uff11 2 9.8\n", r"line 2: '\uff11' is not a plain decimal number"),  # full-width 1
        ("0 1 2 9.8\n1e999 1 2 9.8\n", r"line 2: timestamp 1e999 is not finite"),
        ("0 1 2 9.8\n110 0 0 1.53 -0.91 10.11\n", r"line 2: 6 values, but the first row has 4"),
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


def test_a_stream_is_read_from_a_regular_file_of_bounded_size_only(tmp_path: Path, monkeypatch):
    """A FIFO or a device would block or never end: refused before it is opened; a file past the
    bound is refused by its size, saying the bound."""
    import os

    import gesture_rnn.data.streams as streams

    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(DataError, match=r"is not a regular file \(a pipe, a device or a socket\)"):
            read_stream(path)
    with pytest.raises(DataError, match="is a folder"):
        read_stream(tmp_path)
    big = tmp_path / "big.txt"
    big.write_text("0 1 2 9.8\n" * 20)
    monkeypatch.setattr(streams, "MAX_STREAM_BYTES", 100)
    with pytest.raises(DataError, match=r"big.txt is 200 bytes, more than 100"):
        read_stream(big)


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


@pytest.mark.parametrize("chunk", [1, 4])
def test_the_spotter_stepped_sample_by_sample_gives_its_whole_stream_logits(chunk: int):
    """Constant work per sample: ``step`` (the last kernel-1 samples and the GRU state) computes
    exactly what ``forward`` computes over the whole stream, from the first sample on, fed one
    sample per call or a few (the last call shorter)."""
    import torch

    from gesture_rnn.streaming.spotter import GestureSpotter

    torch.manual_seed(0)
    net = GestureSpotter([5, 6, 7], channels=8, hidden=12).eval()
    net.set_normalization(torch.tensor([0.5, 1.0, 9.0]), torch.tensor([3.0, 2.0, 4.0]))
    accel = torch.randn(2, 30, 3) * 3 + torch.tensor([0.0, 0.0, 9.8])
    with torch.no_grad():
        whole = net(accel)
        window, state = net.initial_state(accel[:, 0])
        stepped = []
        for t in range(0, accel.shape[1], chunk):
            logits, window, state = net.step(accel[:, t : t + chunk], window, state)
            stepped.append(logits)
    assert whole.shape == (2, 30, 4)
    torch.testing.assert_close(torch.cat(stepped, dim=1), whole, rtol=1e-5, atol=1e-5)


def test_the_exported_step_model_gives_the_spotters_probabilities_on_onnxruntime(tmp_path: Path):
    """State in, state out: stepping the ONNX model through a stream on onnxruntime and numpy gives
    what the PyTorch spotter gives over the whole stream; its sidecar carries the vocabulary and
    the decision rule."""
    import torch

    from gesture_rnn.streaming.decisions import DecisionRule
    from gesture_rnn.streaming.onnx import OnnxSpotter, export_spotter
    from gesture_rnn.streaming.spotter import GestureSpotter

    torch.manual_seed(1)
    net = GestureSpotter([5, 6, 7], channels=8, hidden=12).eval()
    net.set_normalization(torch.tensor([0.5, 1.0, 9.0]), torch.tensor([3.0, 2.0, 4.0]))
    samples = (np.random.default_rng(0).normal(size=(50, 3)) * 3 + [0, 0, 9.8]).astype(np.float32)
    export_spotter(net, DecisionRule(0.7, 3), tmp_path / "spotter.onnx")
    spotter = OnnxSpotter(tmp_path / "spotter.onnx")
    expected = net.probabilities(samples)
    for chunk in (1, 9):
        np.testing.assert_allclose(spotter.probabilities(samples, chunk), expected, rtol=1e-4, atol=1e-5)
    assert spotter.vocabulary == [5, 6, 7] and spotter.rule == DecisionRule(0.7, 3)
    assert not net.training, "exporting leaves the network as it was: in eval mode, dropout off"
    export_spotter(net, DecisionRule(0.7, 3), tmp_path / "int8.onnx", int8=True)  # what the page loads
    small = OnnxSpotter(tmp_path / "int8.onnx")
    np.testing.assert_allclose(small.probabilities(samples), expected, atol=0.02)
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "spotter.onnx").stat().st_size
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["int8.json", "int8.onnx", "spotter.json", "spotter.onnx"], "no partial file stays"


def test_training_crops_are_turned_and_scaled_copies_of_the_stream_with_its_labels(records):
    """Augmented crops keep each sample's length up to one scale factor per crop (a rotation
    changes no length) and keep the labels; without augmentation a crop is the stream itself."""
    import torch

    from gesture_rnn.data.streams import VOCABULARY
    from gesture_rnn.streaming.training import CROP, StreamCrops

    stream = build_stream(records, "U01", 5, RestModel.from_records(records))
    plain = StreamCrops([stream], VOCABULARY)
    turned = StreamCrops([stream], VOCABULARY, rotate_deg=30, scale=0.1)
    torch.manual_seed(0)
    (x, y), (a, b) = plain[1], turned[1]
    assert x.shape == (CROP, 3) and torch.equal(y, b)
    assert torch.equal(x, torch.from_numpy(stream.samples[90 : 90 + CROP]))
    ratio = torch.linalg.norm(a, dim=1) / torch.linalg.norm(x, dim=1)
    assert 0.9 <= float(ratio[0]) <= 1.1 and torch.allclose(ratio, ratio[0].expand_as(ratio), atol=1e-4)
    assert not torch.allclose(a / ratio[0], x, atol=1e-2), "and turned"


def test_a_time_warped_crop_reads_the_stream_faster_or_slower_with_its_labels():
    """With time_warp a crop is a stretch of the stream up to 20 % longer or shorter, read at
    evenly spaced points: a stream that rises linearly comes back linear with its slope scaled by
    the stretch (within ±20 %), and each label is the stream's at the nearest sample."""
    import torch

    from gesture_rnn.streaming.decisions import step_labels
    from gesture_rnn.streaming.training import CROP, StreamCrops

    n = 1000
    samples = np.stack([np.arange(n), 2 * np.arange(n), np.full(n, 9.8)], axis=1).astype(np.float32)
    stream = Stream(samples, (GestureEvent(300, 320, 5, True), GestureEvent(600, 630, 6, True)))
    warped = StreamCrops([stream], [5, 6], time_warp=0.2)
    torch.manual_seed(0)
    slopes = []
    for index in range(len(warped)):
        x, y = warped[index]
        assert x.shape == (CROP, 3) and y.shape == (CROP,)
        steps = np.diff(x[:, 0].numpy())
        assert np.allclose(steps, steps[0], atol=1e-3) and np.allclose(x[:, 1], 2 * x[:, 0], atol=1e-3)
        nearest = np.rint(x[:, 0].numpy()).astype(int)
        assert np.array_equal(y.numpy(), step_labels(n, stream.events, [5, 6])[nearest])
        slopes.append(steps[0])
    assert 0.8 <= min(slopes) < 0.97 and 1.03 < max(slopes) <= 1.2, "both faster and slower"


def test_labels_mark_each_vocabulary_gesture_just_at_its_end_and_detections_wait():
    from gesture_rnn.streaming.decisions import LABEL_AFTER, LABEL_BEFORE, DecisionRule, detect, step_labels

    labels = step_labels(100, EVENTS, vocabulary=[5, 7])
    assert labels[19 - LABEL_BEFORE : 19 + LABEL_AFTER + 1].tolist() == [1] * (LABEL_BEFORE + LABEL_AFTER + 1)
    assert labels[49] == 2 and labels[79] == 0, "non-target movement is 'no gesture'"
    assert labels[10:17].sum() == 0, "a gesture under way is not announced"
    probabilities = np.zeros((60, 3))
    probabilities[:, 0] = 1.0
    probabilities[20:24] = [0.1, 0.9, 0.0]  # four samples sure of gesture 5
    probabilities[30:31] = [0.1, 0.0, 0.9]  # one sample of gesture 7: not held
    found = detect(probabilities, [5, 7], DecisionRule(threshold=0.8, hold=2, refractory=14))
    assert [(d.sample, d.gesture) for d in found] == [(21, 5)]
    assert [d.sample for d in detect(probabilities, [5, 7], DecisionRule(0.8, 1, 5))] == [20, 30]


def test_the_rule_is_the_one_with_the_best_f1_on_the_validation_stream():
    """Of the candidate rules, the one that finds both gestures without the non-target movement's
    false activation; among equally good rules the stricter threshold."""
    from gesture_rnn.streaming.decisions import DecisionRule, choose_rule

    probabilities = np.zeros((100, 3))
    probabilities[:, 0] = 1.0
    probabilities[19:21] = [0.3, 0.7, 0.0]  # gesture 5 at its end, sure at 0.7 for 2 samples
    probabilities[49:51] = [0.05, 0.0, 0.95]  # gesture 7, sure
    probabilities[75:76] = [0.35, 0.65, 0.0]  # during non-target movement, one sample at 0.65
    rules = [DecisionRule(0.6, 1), DecisionRule(0.6, 2), DecisionRule(0.7, 2), DecisionRule(0.9, 1)]
    assert choose_rule(probabilities, EVENTS, [5, 7], rules) == DecisionRule(0.7, 2)


def test_a_limit_on_false_activations_during_movement_picks_a_stricter_rule_at_some_recall():
    """Without a limit the rule that finds both gestures wins although it fires during the
    non-target movement; with a limit of 0 per hour the rule that stays quiet there wins, though it
    misses a gesture; if no rule keeps the limit, the one with the fewest false activations."""
    from gesture_rnn.streaming.decisions import DecisionRule, choose_rule

    probabilities = np.zeros((100, 3))
    probabilities[:, 0] = 1.0
    probabilities[19:21] = [0.4, 0.6, 0.0]  # gesture 5, only at 0.6
    probabilities[49:51] = [0.05, 0.0, 0.95]  # gesture 7, sure
    probabilities[75:78] = [0.35, 0.65, 0.0]  # the non-target movement, at 0.65
    rules = [DecisionRule(0.6, 1), DecisionRule(0.9, 1)]
    assert choose_rule(probabilities, EVENTS, [5, 7], rules) == DecisionRule(0.6, 1)
    assert choose_rule(probabilities, EVENTS, [5, 7], rules, max_false_per_h=0.0) == DecisionRule(0.9, 1)
    loud = [DecisionRule(0.6, 1, 1), DecisionRule(0.6, 1, 14)]  # 3 detections in the movement, or 1
    assert choose_rule(probabilities, EVENTS, [5, 7], loud, max_false_per_h=0.0) == DecisionRule(0.6, 1, 14)


def test_a_window_vocabulary_is_distinct_gestures_1_to_20_or_all_of_them():
    from omegaconf import OmegaConf

    from gesture_rnn.commands.stream import window_vocabulary
    from gesture_rnn.errors import ConfigError

    assert window_vocabulary(None) == list(range(1, 21))
    assert window_vocabulary(OmegaConf.create([5, 7])) == [5, 7] and window_vocabulary(9) == [9]
    for bad in ("abc", 1.5, [], [5, 5], [0], [21], [True], ["5"], {"a": 1}):
        with pytest.raises(
            ConfigError, match=r"vocabulary=.* is invalid: it must list distinct gestures 1\.\.20"
        ):
            window_vocabulary(bad)


@pytest.fixture
def exported_spotter(tmp_path: Path):
    import torch

    from gesture_rnn.streaming.decisions import DecisionRule
    from gesture_rnn.streaming.onnx import export_spotter
    from gesture_rnn.streaming.spotter import GestureSpotter

    torch.manual_seed(1)
    net = GestureSpotter([5, 6, 7], channels=8, hidden=12).eval()
    export_spotter(net, DecisionRule(0.7, 3), tmp_path / "spotter.onnx")
    return net, tmp_path / "spotter.onnx"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["rule"].update(hold=0), r"decision rule's hold=0 is invalid: an integer >= 1"),
        (lambda s: s["rule"].update(refractory=-3), r"refractory=-3 is invalid"),
        (
            lambda s: s["rule"].update(threshold=float("nan")),
            r"threshold=nan is invalid: a number in \(0, 1\]",
        ),
        (lambda s: s["rule"].update(threshold=1.5), r"threshold=1.5 is invalid"),
        (lambda s: s["rule"].update(threshold="high"), r"threshold='high' is invalid"),
        (lambda s: s.pop("kernel"), r"its sidecar lacks \['kernel'\]"),
        (lambda s: s.update(hidden=16), r"state input is \[1, 1, 12\], its sidecar says \[1, 1, 16\]"),
        (
            lambda s: s.update(vocabulary=[5, 6]),
            r"the model has 4 outputs, its sidecar's vocabulary 2 gestures",
        ),
        (
            lambda s: s.update(vocabulary=[5, 6, 21]),
            r"vocabulary=\[5, 6, 21\] is not distinct gestures of 1..20",
        ),
        (
            lambda s: s.update(vocabulary=[7, 6, 5]),
            r"sidecar's vocabulary \(\[7, 6, 5\]\) is not the model's own",
        ),
        (lambda s: s["rule"].update(threshold=0.9), r"its sidecar's rule .* is not the model's own"),
    ],
)
def test_an_exported_spotters_sidecar_is_checked_against_its_model(exported_spotter, edit, message):
    import json

    from gesture_rnn.streaming.onnx import OnnxSpotter, sidecar_path

    _, path = exported_spotter
    sidecar = json.loads(sidecar_path(path).read_text())
    edit(sidecar)
    sidecar_path(path).write_text(json.dumps(sidecar))
    with pytest.raises(DataError, match=message) as caught:
        OnnxSpotter(path)
    assert str(caught.value).startswith(f"spotter={path}: ") and "\n" not in str(caught.value)


def test_a_classifier_under_a_spotters_sidecar_and_a_damaged_spotter_file_are_refused(
    exported_spotter, tmp_path
):
    import copy
    import shutil

    import torch

    from gesture_rnn.models.nets import GRUNet
    from gesture_rnn.streaming.checkpoint import load_spotter, save_spotter
    from gesture_rnn.streaming.decisions import DecisionRule, detect
    from gesture_rnn.streaming.onnx import OnnxSpotter, sidecar_path

    net, path = exported_spotter
    from gesture_rnn.deploy.export import export_onnx

    classifier = GRUNet(hidden=8, layers=1, dropout=0.0, bidirectional=False, packed=True)
    export_onnx(classifier.eval(), tmp_path / "classifier.onnx")
    shutil.copy(sidecar_path(path), sidecar_path(tmp_path / "classifier.onnx"))
    with pytest.raises(DataError, match=r"are not a spotter's step model .* read with onnx=, not spotter="):
        OnnxSpotter(tmp_path / "classifier.onnx")
    damages = (
        (lambda n: n.std.zero_(), r"standard deviation of \[0.0, 0.0, 0.0\]"),
        (
            lambda n: n.head.weight.data.fill_(float("nan")),
            r"its head.weight holds values that are not finite",
        ),
    )
    for damage, message in damages:
        broken = copy.deepcopy(net)
        damage(broken)
        save_spotter(broken, DecisionRule(0.7, 3), tmp_path / "broken.pt")
        with pytest.raises(DataError, match=message):
            load_spotter(tmp_path / "broken.pt")
    with pytest.raises(DataError, match="probabilities that are not numbers"):
        detect(np.full((5, 4), np.nan, dtype=np.float32), [5, 6, 7], DecisionRule(0.7, 3))
    assert torch.isfinite(net.head.weight).all()


def test_a_sample_stream_is_one_command_that_writes_the_stream_and_its_truth(synthetic_zip, tmp_path, capsys):
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.streaming.sample import main

    out = tmp_path / "walk.txt"
    main(["--data", str(synthetic_zip), "--user", "U02", "--out", str(out)])
    samples, _ = read_stream(out)
    events = events_path(out).read_text().splitlines()
    records = load_records(synthetic_zip, None)
    assert len(events) - 1 == int((records.users == "U02").sum()), "every recording of the user, marked"
    assert len(samples) > sum(
        len(s) for s, u in zip(records.sequences, records.users, strict=True) if u == "U02"
    )
    assert f"stream={out}" in capsys.readouterr().out, "says how to read it"
