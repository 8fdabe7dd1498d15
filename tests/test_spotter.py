"""The spotter trained like every other model (``train.py experiment=spotter``), the no-gesture
variety of its training streams, the evaluation's own stream construction and real everyday motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gesture_rnn.config.checks import validate_config
from gesture_rnn.data.everyday import everyday_clips, read_basic_motions
from gesture_rnn.data.no_gesture import EVERYDAY, NoGesture
from gesture_rnn.data.parsing import load_records
from gesture_rnn.data.streams import RestModel, build_stream
from gesture_rnn.data.unseen_streams import build_unseen_stream, unseen_rest_stream
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.training.cross_validation import Summary

# a small spotter on the synthetic data (3 users: U03 held out, one validates, one trains)
SMALL = [
    "experiment=spotter",
    "data.test_users=[U03]",
    "model.net.channels=8",
    "model.net.hidden=16",
    "data.streams_per_user=1",
    "data.crop.length=60",
    "data.crop.stride=30",
    "data.batch_size=8",
    "data.no_gesture.everyday=0",
    "data.test_everyday=false",
    "data.test_rest_hours=0.02",
    "trainer.max_epochs=2",
]


def test_a_training_stream_without_variety_is_todays_and_with_it_marks_the_movements(records):
    rest = RestModel.from_records(records)
    plain = build_stream(records, "U02", seed=5, rest=rest)
    off = build_stream(records, "U02", seed=5, rest=rest, variety=NoGesture())
    assert np.array_equal(plain.samples, off.samples) and plain.events == off.events, "all off: unchanged"
    varied = build_stream(records, "U02", 5, rest, variety=NoGesture(posture_deg=60, tremor=0.1, movements=2))
    moves = [e for e in varied.events if e.gesture == EVERYDAY]
    assert moves and not any(e.target for e in moves), "arm movements are marked, as non-target"
    gestures = [e for e in varied.events if e.gesture != EVERYDAY]
    assert [e.gesture for e in gestures] == [e.gesture for e in plain.events], "every recording, same order"
    assert all(_is_a_recording(records, "U02", e, varied.samples) for e in gestures), "each where it says"


def _is_a_recording(records, user: str, event, samples: np.ndarray) -> bool:
    """The event's samples are, untouched, one of ``user``'s recordings of its gesture."""
    mine = np.flatnonzero((records.users == user) & (records.labels == event.gesture - 1))
    return any(np.array_equal(records.sequences[i], samples[event.start : event.end]) for i in mine)


def test_the_unseen_construction_is_seeded_holds_every_recording_and_rests_at_gravity(records):
    rest = RestModel.from_records(records)
    clip = np.random.default_rng(0).normal(0, 2.0, size=(90, 3)).astype(np.float32)
    stream = build_unseen_stream(records, "U01", 3, rest, clips=[clip])
    again = build_unseen_stream(records, "U01", 3, rest, clips=[clip])
    assert np.array_equal(stream.samples, again.samples) and stream.events == again.events
    targets = [e for e in stream.events if e.gesture != EVERYDAY]
    assert len(targets) == int(np.sum(records.users == "U01"))
    assert all(_is_a_recording(records, "U01", e, stream.samples) for e in targets)
    assert any(e.gesture == EVERYDAY and not e.target for e in stream.events), "movement between gestures"
    still = unseen_rest_stream(records, "U01", 120.0, 0, rest)
    assert len(still.samples) == 120 * 9 and not still.events
    magnitude = np.linalg.norm(still.samples, axis=1)
    assert abs(np.median(magnitude) - rest.gravity) < 0.5, "a wrist at rest reads gravity"
    # rest at other postures: the gravity direction is not only where gestures start or end
    starts = np.array([records.sequences[i][0] for i in np.flatnonzero(records.users == "U01")])
    directions = still.samples / magnitude[:, None]
    nearest = (directions @ (starts / np.linalg.norm(starts, axis=1, keepdims=True)).T).max(axis=1)
    assert np.degrees(np.arccos(np.clip(nearest, -1, 1))).max() > 20


def test_everyday_motion_is_read_from_the_archive_format_and_resampled(tmp_path: Path):
    folder = tmp_path / "basic_motions"
    folder.mkdir()
    row = ":".join(",".join(str(0.1 * k + d) for k in range(100)) for d in range(6)) + ":Walking"
    for part in ("TRAIN", "TEST"):
        (folder / f"BasicMotions_{part}.ts").write_text(f"#comment\n@data\n{row}\n")
    cases = read_basic_motions(folder, "train")
    assert [label for label, _ in cases] == ["Walking"] and cases[0][1].shape == (100, 3)
    clips = everyday_clips(tmp_path, download=False, part="test")
    assert clips[0].shape == (90, 3), "10 s at 9 Hz"
    assert np.isclose(clips[0][9, 0], 1.0, atol=1e-5), "1 s in: the 10 Hz series' 11th value"
    (folder / "BasicMotions_TEST.ts").write_text("@data\n1,2,x:Walking\n")
    with pytest.raises(DataError, match=r"BasicMotions_TEST.ts, line 2"):
        read_basic_motions(folder, "test")
    with pytest.raises(DataError, match=r"data\.download=false"):
        everyday_clips(tmp_path / "empty", download=False, part="test")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.net.hidden=0", r"model.net.hidden=0 is invalid: it must be an integer >= 1"),
        ("model.net.vocabulary=[5,21]", r"model.net.vocabulary=\[5, 21\] is invalid"),
        (
            "data.no_gesture.tremor=-1",
            r"data.no_gesture.tremor=-1 is invalid: it must be a number in \[0, 2\]",
        ),
        ("data.crop.length=10", r"data.crop.length=10 is invalid"),
        ("data.split=random", r"data.split='random' is invalid for streams"),
        ("data.rest_seconds=[5,2]", r"data.rest_seconds=\[5, 2\] is invalid"),
    ],
)
def test_a_spotter_setting_out_of_range_is_refused_naming_the_key(train_config, override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(train_config("experiment=spotter", override))


def test_cross_validated_spotters_are_summarised_by_event_f1_with_the_worst_user():
    summary = Summary(
        {
            "U01": {"test/event_f1": 0.9, "test/false_per_h_rest": 2.0, "val/event_f1": 0.8},
            "U02": {"test/event_f1": 0.7, "test/false_per_h_rest": 0.0, "val/event_f1": 0.9},
        }
    )
    metrics = summary.metrics()
    assert metrics["test/event_f1"] == pytest.approx(0.8) and metrics["cv/worst/test/event_f1"] == 0.7
    assert metrics["val/event_f1"] == pytest.approx(0.85), "what tune.py -m cv=users optimises"
    assert "event F1" in summary.table() and "| worst | 0.7000 (U02)" in summary.table()


@pytest.mark.integration
def test_train_py_trains_a_spotter_that_predict_and_export_read(train_config, tmp_path: Path, capsys):
    """One training path: stream metrics in MLflow and metrics.json, the rule chosen on validation
    saved in the tested checkpoint, which predict.py ckpt_path= stream= and export.py read."""
    from mlflow import MlflowClient

    from gesture_rnn.commands.export import run_export
    from gesture_rnn.commands.stream import predict_stream
    from gesture_rnn.commands.train import train
    from gesture_rnn.data.streams import write_stream
    from gesture_rnn.streaming.checkpoint import RULE_KEY, load_spotter
    from gesture_rnn.streaming.onnx import OnnxSpotter
    from gesture_rnn.tracking.trials import tested_checkpoint

    cfg = train_config(*SMALL, "register=true")
    metrics = train(cfg)
    for key in (
        "test/event_f1",
        "test/precision",
        "test/recall",
        "test/false_per_h_rest",
        "test/false_per_h_movement",
        "test/delay_s",
        "test_builder/event_f1",
        "val/event_f1",
    ):
        assert key in metrics, key
    run_dir = Path(cfg.paths.output_dir)
    record = json.loads((run_dir / "metrics.json").read_text())
    client = MlflowClient(cfg.logger.mlflow.tracking_uri)
    run = client.get_run(record["mlflow_run_ids"][0])
    assert run.info.status == "FINISHED" and "test/event_f1" in run.data.metrics
    assert "U03" in run.data.tags["mlflow.runName"]
    checkpoint = tested_checkpoint(run_dir)
    saved = torch.load(checkpoint, weights_only=True)
    rule = json.loads((run_dir / "evaluation" / "rule.json").read_text())
    assert saved[RULE_KEY] == rule, "the rule chosen at the end of fit is in the tested checkpoint"
    net, loaded_rule = load_spotter(checkpoint)
    assert loaded_rule.threshold == rule["threshold"] and net.vocabulary == list(range(5, 21))

    from gesture_rnn.data.streams import RestModel as Rest

    records = load_records(Path(cfg.data.path), None)
    walk = build_stream(records, "U03", 9, Rest.from_records(records))
    write_stream(walk, tmp_path / "walk.txt")
    from omegaconf import OmegaConf

    found = predict_stream(
        OmegaConf.create(
            {
                "stream": str(tmp_path / "walk.txt"),
                "ckpt_path": str(checkpoint),
                "output": "json",
                "min_probability": 0.0,
            }
        )
    )
    assert found and all(d["gesture"] in net.vocabulary for d in found), "threshold 0: it announces gestures"
    with pytest.raises(ConfigError, match="vocabulary= applies to a classifier read through a window"):
        predict_stream(OmegaConf.create({"stream": str(tmp_path / "walk.txt"), "ckpt_path": str(checkpoint),
                                         "vocabulary": [5, 6]}))  # fmt: skip
    target = run_export(
        OmegaConf.create(
            {
                "ckpt_path": str(checkpoint),
                "format": "onnx",
                "quantize": None,
                "out": str(tmp_path / "spotter.onnx"),
            }
        )
    )
    onnx = OnnxSpotter(target)
    assert np.abs(onnx.probabilities(walk.samples[:200]) - net.probabilities(walk.samples[:200])).max() < 1e-4
    assert onnx.rule == loaded_rule
    version = client.get_model_version_by_alias("spotter", "candidate")  # its own model name
    assert version.run_id == run.info.run_id
    registered = predict_stream(OmegaConf.create({"stream": str(tmp_path / "walk.txt"), "ckpt_path": None,
        "model_uri": "models:/spotter@candidate", "tracking_uri": cfg.logger.mlflow.tracking_uri,
        "cache_dir": str(tmp_path / "models"), "output": "json", "min_probability": 0.0}))  # fmt: skip
    assert registered == found, "the registered spotter is the checkpoint's"

    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    (tmp_path / "bad.txt").write_text("0 1 2 9.8\n110 1 2 9.8\n110 1 2 9.8\n")
    command = [
        sys.executable,
        str(PROJECT_ROOT / "predict.py"),
        f"ckpt_path={checkpoint}",
        f"stream={tmp_path / 'bad.txt'}",
    ]
    bad = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "bad.txt, line 3: time 110 ms is not after" in bad.stderr


@pytest.mark.integration
def test_a_resumed_spotter_ends_with_the_weights_of_an_uninterrupted_one(train_config, tmp_path: Path):
    from omegaconf import open_dict

    from gesture_rnn.commands.train import train

    whole = train_config(*SMALL, "logger=none", "log_model=false")
    with open_dict(whole):
        whole.paths.output_dir = str(tmp_path / "outputs" / "whole")
    Path(whole.paths.output_dir).mkdir(parents=True)
    train(whole)
    first = train_config(*SMALL, "logger=none", "log_model=false", "trainer.max_epochs=1")
    with open_dict(first):
        first.paths.output_dir = str(tmp_path / "outputs" / "first")
        first.model.scheduler.T_max = 2  # the schedule of the whole run, stopped after one epoch
    Path(first.paths.output_dir).mkdir(parents=True)
    train(first)
    resumed = train_config(
        *SMALL,
        "logger=none",
        "log_model=false",
        f"ckpt_path={tmp_path / 'outputs' / 'first' / 'checkpoints' / 'last.ckpt'}",
    )
    train(resumed)
    a = torch.load(Path(whole.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    b = torch.load(tmp_path / "outputs" / "first" / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learned_non_target_gestures_get_classes_of_their_own_and_read_as_no_gesture(tmp_path: Path):
    """Gestures 1-4 learnt as classes after the vocabulary's; every output the spotter gives —
    probabilities, the ONNX step model — adds them to "no gesture", so readers see 1 + vocabulary."""
    from gesture_rnn.data.streams import GestureEvent
    from gesture_rnn.streaming.decisions import DecisionRule, step_labels
    from gesture_rnn.streaming.onnx import OnnxSpotter, export_spotter
    from gesture_rnn.streaming.spotter import GestureSpotter

    events = (GestureEvent(10, 20, 5, True), GestureEvent(40, 50, 2, False), GestureEvent(60, 70, 3, False))
    labels = step_labels(80, events, [5, 6], learned_non_target=[2])
    assert labels[19] == 1 and labels[49] == 3 and labels[69] == 0, "2 learnt (class 3), 3 is no gesture"
    assert step_labels(80, events, [5, 6])[49] == 0, "without it, 2 is no gesture"
    torch.manual_seed(0)
    net = GestureSpotter([5, 6], channels=4, hidden=8, learned_non_target=[2]).eval()
    samples = np.random.default_rng(0).normal(0, 3, (40, 3)).astype(np.float32)
    with torch.no_grad():
        raw = torch.softmax(net(torch.from_numpy(samples)[None]), dim=2)[0].numpy()
    folded = net.probabilities(samples)
    assert raw.shape == (40, 4) and folded.shape == (40, 3)
    assert np.allclose(folded[:, 0], raw[:, 0] + raw[:, 3]) and np.allclose(folded[:, 1:], raw[:, 1:3])
    export_spotter(net, DecisionRule(), tmp_path / "spotter.onnx")
    assert np.abs(OnnxSpotter(tmp_path / "spotter.onnx").probabilities(samples) - folded).max() < 1e-5


@pytest.mark.integration
def test_tune_searches_the_spotters_space_on_its_validation_streams_and_registers_the_best(
    synthetic_zip, tmp_path: Path
):
    """tune.py -m cv=users experiment=spotter hparams_search=spotter: each trial a cross-validation
    whose objective is the folds' mean val/event_f1, the best trial reported by its event F1."""
    import os
    import subprocess
    import sys

    from conftest import PROJECT_ROOT
    from mlflow import MlflowClient

    small = [o for o in SMALL if not o.startswith(("experiment=", "data.test_users="))]
    command = [sys.executable, str(PROJECT_ROOT / "tune.py"), "-m", f"paths.root_dir={tmp_path}",
               f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", "experiment=spotter",
               "hparams_search=spotter", f"hydra.sweep.dir={tmp_path}/sweep", "cv=users", "cv.users=[U03]",
               "cv.jobs=1", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_startup_trials=2", *small,
               "model.net.hidden=choice(8,16)"]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TEST event F1 of that trial" in done.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    (sweep,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id]
    assert len(trials) == 2
    assert sweep.data.metrics["best/val/event_f1"] == pytest.approx(
        max(t.data.metrics["val/event_f1"] for t in trials)
    )
