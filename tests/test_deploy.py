"""The trained model outside training: predict.py, export.py (ONNX, TorchScript), MLflow model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
import torch
from conftest import PROJECT_ROOT, compose_train_config, recording_text
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import gesture_rnn
from gesture_rnn.commands.predict import run_predict
from gesture_rnn.data import GestureDataModule
from gesture_rnn.data.batching import pad_sequences as padded_batch
from gesture_rnn.data.facts import GESTURE_NAMES
from gesture_rnn.deploy.export import GestureProbabilities, run_export
from gesture_rnn.deploy.inference import class_probabilities
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.models.checkpoint import load_net
from gesture_rnn.tracking.mlflow_model import log_mlflow_model

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast


@pytest.fixture(scope="module")
def trained(synthetic_zip, tmp_path_factory) -> dict:
    """A small model trained on the synthetic data, its checkpoint and its test sequences."""
    root = tmp_path_factory.mktemp("trained")
    overrides = [f"data.path={synthetic_zip}", "model.net.hidden=16", "trainer.max_epochs=8", "logger=none"]
    overrides += ["model.optimizer.lr=0.01"]
    cfg = compose_train_config(root, overrides)
    metrics = gesture_rnn.train(cfg)
    GlobalHydra.instance().clear()
    dm = GestureDataModule.from_shipped_config(
        path=str(synthetic_zip), cache_dir=str(root / "cache"), val_fraction=0.1
    )
    dm.setup()
    return {
        "checkpoint": root / "outputs" / "run" / "checkpoints" / "last.ckpt",
        "test_sequences": [s.numpy() for s in dm.test_dataloader().dataset.sequences],
        "test_acc": metrics["test/acc"],
        "root": root,
    }


def torch_probabilities(checkpoint: Path, sequences: list[np.ndarray]) -> np.ndarray:
    net = load_net(str(checkpoint))  # the packed training path
    return class_probabilities(net, *padded_batch(sequences)).numpy()


def test_an_export_leaves_the_network_in_eval_mode(tmp_path):
    """torch.onnx.export puts the exported module back in its own mode; the wrappers are in eval
    mode, so the network still predicts without dropout after an export (both inputs' kinds)."""
    from gesture_rnn.deploy.export import export_onnx
    from gesture_rnn.models.nets import GRUNet

    net = GRUNet(hidden=8, layers=2, dropout=0.5, bidirectional=False, packed=True).eval()
    accel, lengths = torch.randn(3, 10, 3), torch.tensor([10, 7, 4])
    with torch.no_grad():
        before = net(accel, lengths)
        for nan_padded in (False, True):
            export_onnx(net, tmp_path / f"m{nan_padded}.onnx", nan_padded=nan_padded)
            assert not net.training
            torch.testing.assert_close(net(accel, lengths), before)


def test_onnx_export_agrees_with_pytorch_on_every_test_sequence(trained, tmp_path):
    target = run_export(
        OmegaConf.create(
            {"ckpt_path": str(trained["checkpoint"]), "format": "onnx", "out": str(tmp_path / "m.onnx")}
        )
    )
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["accel", "lengths"]
    assert isinstance(session.get_inputs()[0].shape[1], str), "a dynamic time axis"
    sequences = trained["test_sequences"]
    expected = torch_probabilities(trained["checkpoint"], sequences)
    accel, lengths = padded_batch(sequences)
    (got,) = session.run(None, {"accel": accel.numpy(), "lengths": lengths.numpy()})
    assert got.shape == (len(sequences), 20)
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    # dynamic batch and time: one sequence alone, unpadded
    (alone,) = session.run(None, {"accel": sequences[0][None], "lengths": np.array([len(sequences[0])])})
    assert np.abs(alone[0] - expected[0]).max() <= 1e-4

    sidecar = json.loads(Path(f"{target}.json").read_text())
    assert sidecar["class_index_to_gesture"] == list(range(1, 21)) and sidecar["format"] == "onnx"
    assert sidecar["model"]["net"]["hidden"] == 16 and len(sidecar["data_md5"]) == 32
    assert set(sidecar["inputs"]) == {"accel", "lengths"} and sidecar["sampling_rate_hz"] > 0


def test_the_int8_export_is_smaller_and_agrees_within_its_tolerance(trained, tmp_path, capsys):
    """quantize=int8: int8 weights (4x smaller); probabilities within 0.05 of PyTorch and the
    same gesture for >= 95 % of recordings (on the real data: max |dp| 0.032, agreement >= 0.998,
    the same accuracy on all 8 folds — reports/quantize.md)."""
    settings = {"ckpt_path": str(trained["checkpoint"]), "format": "onnx"}
    plain = run_export(OmegaConf.create({**settings, "out": str(tmp_path / "f.onnx")}))
    small = run_export(OmegaConf.create({**settings, "out": str(tmp_path / "q.onnx"), "quantize": "int8"}))
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(w) for w in onnx.load(str(small)).graph.initializer]
    assert all(w.dtype == np.int8 or w.size < 64 for w in weights), "every weight tensor is int8"
    assert small.stat().st_size < plain.stat().st_size  # 4x on the 256/2 GRU; graph overhead here
    assert not list(tmp_path.glob(".*partial*")), "no half-written file left behind"
    sequences = trained["test_sequences"]
    expected = torch_probabilities(trained["checkpoint"], sequences)
    session = onnxruntime.InferenceSession(str(small), providers=["CPUExecutionProvider"])
    accel, lengths = padded_batch(sequences)
    (got,) = session.run(None, {"accel": accel.numpy(), "lengths": lengths.numpy()})
    assert np.abs(got - expected).max() <= 0.05
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.95
    assert json.loads(Path(f"{small}.json").read_text())["quantization"].startswith("int8 weights")
    assert json.loads(Path(f"{plain}.json").read_text())["quantization"] is None
    beside = {"ckpt_path": str(trained["checkpoint"]), "format": "onnx"}  # no out=: beside the checkpoint
    capsys.readouterr()
    as_float, as_int8 = (run_export(OmegaConf.create({**beside, "quantize": q})) for q in (None, "int8"))
    assert as_int8.name.endswith(".int8.onnx") and as_float.suffixes == [".onnx"] and as_float.is_file()
    assert re.search(r"int8 weights, [0-9.]+ KB\)", capsys.readouterr().out), "says int8 and its size"
    refused = [({"quantize": "int4"}, "quantize='int4' is invalid")]
    refused.append(({"quantize": "int8", "format": "torchscript"}, "quantize=int8 needs format=onnx"))
    for bad, message in refused:
        with pytest.raises(ConfigError, match=re.escape(message)):
            run_export(OmegaConf.create({**settings, "out": str(tmp_path / "x.onnx"), **bad}))


def test_torchscript_export_agrees_with_pytorch(trained, tmp_path):
    target = run_export(
        OmegaConf.create(
            {"ckpt_path": str(trained["checkpoint"]), "format": "torchscript", "out": str(tmp_path / "m.pt")}
        )
    )
    scripted = torch.jit.load(str(target))
    sequences = trained["test_sequences"][:7]
    accel, lengths = padded_batch(sequences)
    with torch.no_grad():
        got = scripted(accel, lengths).numpy()
    np.testing.assert_allclose(got, torch_probabilities(trained["checkpoint"], sequences), atol=1e-5)


def test_predict_reads_six_and_three_column_recordings_and_prints_json(trained, tmp_path):
    values = trained["test_sequences"][0]
    six = tmp_path / "six.txt"
    six.write_text(recording_text(values))
    three = tmp_path / "three.txt"
    three.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in values) + "\n")
    # as a Windows editor saves it: byte-order mark, CRLF, tabs; and a folder named like a recording
    windows = tmp_path / "windows.txt"
    windows.write_bytes(
        b"\xef\xbb\xbf" + "\r\n".join("\t".join(f"{v:.6f}" for v in row) for row in values).encode()
    )
    (tmp_path / "zz_folder.txt").mkdir()
    command = [
        sys.executable, str(PROJECT_ROOT / "predict.py"), f"ckpt_path={trained['checkpoint']}",
        f"input={tmp_path}", "output=json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["six.txt", "three.txt", "windows.txt"]
    assert lines[0]["gesture"] == lines[1]["gesture"] == lines[2]["gesture"]
    assert lines[0]["probability"] == lines[1]["probability"] == lines[2]["probability"]
    first = lines[0]
    assert set(first) == {"file", "gesture", "name", "probability", "top3"} and 1 <= first["gesture"] <= 20
    assert first["name"] == GESTURE_NAMES[first["gesture"]], "what its pictogram draws"
    assert first["top3"][0]["gesture"] == first["gesture"] and len(first["top3"]) == 3
    probabilities = [t["probability"] for t in first["top3"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert not list(tmp_path.glob("outputs")), "predict.py leaves no run folder behind"


def test_predict_on_the_dataset_zip_matches_the_training_accuracy(trained, synthetic_zip, capsys):
    results = run_predict(
        OmegaConf.create(
            {
                "ckpt_path": str(trained["checkpoint"]),
                "input": str(synthetic_zip),
                "output": "text",
                "top_k": 3,
            }
        )
    )
    assert len(results) == len(capsys.readouterr().out.splitlines()) == 240
    true = [int(r["file"].split("/")[-2]) for r in results]
    accuracy = np.mean([r["gesture"] == t for r, t in zip(results, true, strict=True)])
    assert accuracy >= trained["test_acc"] - 0.15, (
        "the whole set is classified about as well as the test part"
    )


def test_a_classifier_reads_a_stream_through_a_sliding_window(trained, tmp_path, capsys):
    """predict.py ckpt_path=<any classifier> stream=<file>: detections as JSON lines, min_probability
    its threshold (at 1.0 nothing is sure enough); stream= and input= together are refused."""
    rest = np.tile([[0.0, 0.0, 9.8]], (30, 1))
    pieces = [rest]
    for sequence in trained["test_sequences"][:6]:
        pieces += [sequence, rest]
    samples = np.concatenate(pieces)
    stream = tmp_path / "walk.txt"
    stream.write_text("".join(f"{110 * t} {x} {y} {z}\n" for t, (x, y, z) in enumerate(samples)))
    settings = {"ckpt_path": str(trained["checkpoint"]), "stream": str(stream), "output": "json"}
    found = run_predict(OmegaConf.create({**settings, "min_probability": 0.5}))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert found and lines == found
    assert all(set(d) == {"time_s", "time_ms", "gesture", "probability"} for d in found)
    assert all(d["probability"] >= 0.5 and d["time_ms"] % 110 == 0 for d in found)
    assert run_predict(OmegaConf.create({**settings, "min_probability": 1.0})) == []
    with pytest.raises(gesture_rnn.ConfigError, match=r"give input= .* or stream= .*, not both"):
        run_predict(OmegaConf.create({**settings, "input": str(stream)}))


@pytest.mark.parametrize(
    ("text", "message"),
    [("1 2\n3 4\n", "line 1: expected 3 columns (x y z) or 6"), ("1 2 x\n1 2 3\n", "line 1: non-numeric")],
)
def test_predict_rejects_other_formats_naming_file_and_line(trained, tmp_path, text, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"bad.txt, {message}")):
        run_predict(
            OmegaConf.create({"ckpt_path": str(trained["checkpoint"]), "input": str(bad), "output": "text"})
        )


@pytest.mark.parametrize("output", ["text", "json"])
def test_predict_answers_unsure_below_min_probability(trained, tmp_path, capsys, output):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, values in enumerate(trained["test_sequences"][:12]):
        (folder / f"r{i:02d}.txt").write_text(recording_text(values))
    settings = {"ckpt_path": str(trained["checkpoint"]), "input": str(folder), "output": output}
    answered = run_predict(OmegaConf.create(settings))
    threshold = sorted(r["probability"] for r in answered)[6]  # about half below it
    capsys.readouterr()
    results = run_predict(OmegaConf.create({**settings, "min_probability": threshold}))
    printed = capsys.readouterr().out.splitlines()
    for before, after, line in zip(answered, results, printed, strict=True):
        if before["probability"] < threshold:
            assert after["gesture"] == "unsure" and after["best_guess"] == before["gesture"]
            if output == "json":
                assert json.loads(line) == after
            else:
                assert ": unsure (best guess " in line and f"p={before['probability']:.3f}" in line
        else:
            assert after == before
    assert 0 < sum(r["gesture"] == "unsure" for r in results) < len(results)
    with pytest.raises(
        ConfigError, match=re.escape("min_probability=1.5 is invalid: it must be a number in [0, 1]")
    ):
        run_predict(OmegaConf.create({**settings, "min_probability": 1.5}))


def test_predict_with_an_onnx_model_never_imports_torch(trained, tmp_path):
    """predict.py onnx=<file>.onnx in a process where importing torch or lightning fails: the
    same answers as the checkpoint; a missing sidecar is one clear line."""
    model = run_export(OmegaConf.create({"ckpt_path": str(trained["checkpoint"]), "format": "onnx",
                                         "out": str(tmp_path / "m.onnx")}))  # fmt: skip
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, values in enumerate(trained["test_sequences"][:6]):
        (folder / f"r{i}.txt").write_text(recording_text(values))
    expected = run_predict(OmegaConf.create({"ckpt_path": str(trained["checkpoint"]), "input": str(folder),
                                             "output": "json"}))  # fmt: skip
    blocked = "import sys, runpy; sys.modules['torch'] = sys.modules['lightning'] = None; "
    blocked += f"sys.argv = ['predict.py', 'onnx={model}', 'input={folder}', 'output=json']; "
    blocked += "runpy.run_path('predict.py', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", blocked], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["gesture"] for r in got] == [r["gesture"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)
    (tmp_path / "m.onnx.json").unlink()
    with pytest.raises(ConfigError, match=r"onnx=.*m\.onnx: no sidecar m\.onnx\.json beside it"):
        run_predict(OmegaConf.create({"onnx": str(model), "input": str(folder), "output": "text"}))


def test_predict_averages_several_checkpoints_and_rotations(trained, tmp_path):
    """ckpt_path=[...] and rotations=N: the mean calibrated probability over every checkpoint
    and rotation, as the new-wearer report measured it."""
    from gesture_rnn.models.ensemble import AveragedNet, fixed_rotations

    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, values in enumerate(trained["test_sequences"][:5]):
        (folder / f"r{i}.txt").write_text(recording_text(values))
    checkpoint = str(trained["checkpoint"])
    settings = {"input": str(folder), "output": "json", "rotations": 3, "rotation_degrees": 30}
    results = run_predict(OmegaConf.create({**settings, "ckpt_path": [checkpoint, checkpoint]}))
    averaged = AveragedNet([load_net(checkpoint)], fixed_rotations(3, 30.0))
    expected = class_probabilities(averaged, *padded_batch(trained["test_sequences"][:5]))
    for result, row in zip(results, expected, strict=True):
        assert result["gesture"] == int(row.argmax()) + 1
        assert result["probability"] == pytest.approx(float(row.max()), abs=1e-5)
    single = run_predict(OmegaConf.create({**settings, "ckpt_path": checkpoint, "rotations": 1}))
    assert [r["probability"] for r in single] != [r["probability"] for r in results]
    ranged = [("rotations", 0, "an integer in [1, 64]"), ("rotations", 10**9, "[1, 64]"),
              ("rotation_degrees", 200, "(0, 180]"), ("top_k", 0, "[1, 20]"), ("top_k", -1, "[1, 20]"),
              ("top_k", "three", "an integer in [1, 20]")]  # fmt: skip
    for key, value, allowed in ranged:
        with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r} is invalid: it must be")) as error:
            run_predict(OmegaConf.create({**settings, "ckpt_path": checkpoint, key: value}))
        assert allowed in str(error.value)


def test_the_mlflow_model_loads_back_with_pyfunc_and_predicts_a_batch(trained, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("deploy", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    tracking_before = mlflow.get_tracking_uri()
    model_uri = log_mlflow_model(load_net(str(trained["checkpoint"])), client, run_id, experiment)
    assert mlflow.get_tracking_uri() == tracking_before, "no process-global tracking URI set"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert [m.source_run_id for m in client.search_logged_models([experiment])] == [run_id]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "downloaded")))
    assert "flavors:\n  onnx:" in (local / "MLmodel").read_text()
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".pth", ".pt")], "no pickle"
    loaded = mlflow.pyfunc.load_model(model_uri)
    for count in (5, 1):  # dynamic batch and time: another batch has another length
        sequences = trained["test_sequences"][:count]
        accel, _ = padded_batch(sequences, pad_value=float("nan"))
        got = loaded.predict(accel.numpy())["probabilities"]
        assert got.shape == (count, 20)
        # onnxruntime against the PyTorch training path, as for export.py's ONNX file
        np.testing.assert_allclose(got, torch_probabilities(trained["checkpoint"], sequences), atol=1e-4)


def test_the_padded_export_path_equals_the_packed_training_path(trained):
    wrapper = GestureProbabilities(load_net(str(trained["checkpoint"])))
    sequences = trained["test_sequences"]
    accel, lengths = padded_batch(sequences)
    with torch.no_grad():
        exported = wrapper(accel, lengths).numpy()
        nan_padded = wrapper(padded_batch(sequences, pad_value=float("nan"))[0]).numpy()
    expected = torch_probabilities(trained["checkpoint"], sequences)
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    np.testing.assert_allclose(nan_padded, expected, atol=1e-5)


def test_predict_piped_into_head_stops_quietly(trained, tmp_path):
    """More output than a pipe holds (64 KB), a reader that stops after one line: no traceback."""
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in trained["test_sequences"][0])
    for number in range(800):  # ~90 KB of output
        (tmp_path / f"recording_{number:04d}.txt").write_text(rows)
    command = [sys.executable, str(PROJECT_ROOT / "predict.py"), f"ckpt_path={trained['checkpoint']}",
               f"input={tmp_path}"]  # fmt: skip
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = reader.stdout.readline()  # `| head -1`: read one line, then stop reading
    reader.stdout.close()
    stderr = reader.stderr.read()
    assert reader.wait(timeout=120) == 0
    assert "recording_0000.txt: gesture" in first
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda classes: classes[:-1], r"the model has 20 outputs but m\.onnx\.json names 19 gestures"),
        (
            lambda classes: [*classes[:-1], classes[0]],
            r"m\.onnx\.json lists gesture\(s\) \[1\] more than once",
        ),
        (lambda classes: [], r"more than once or none at all"),
    ],
)
def test_a_sidecar_that_does_not_fit_its_model_is_refused_in_one_line(trained, tmp_path, edit, message):
    model = run_export(
        OmegaConf.create(
            {"ckpt_path": str(trained["checkpoint"]), "format": "onnx", "out": str(tmp_path / "m.onnx")}
        )
    )
    sidecar = Path(f"{model}.json")
    metadata = json.loads(sidecar.read_text())
    metadata["class_index_to_gesture"] = edit(metadata["class_index_to_gesture"])
    sidecar.write_text(json.dumps(metadata))
    (tmp_path / "r.txt").write_text("1 2 3\n" * 12)
    with pytest.raises(ConfigError, match=message):
        run_predict(
            OmegaConf.create({"onnx": str(model), "input": str(tmp_path / "r.txt"), "output": "text"})
        )


def test_every_file_written_fails_in_one_line_naming_it_and_leaves_nothing(trained, tmp_path, unwritable):
    """Exports and personalised checkpoints onto a read-only folder, a full disk or an existing
    folder; predictions to a full device or a closed stdout; a read-only cache (parsed, not
    cached). Files written get the user's usual permissions, as the .onnx always did."""
    from gesture_rnn.commands.personalize import run_personalize
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.errors import StorageError
    from gesture_rnn.utils.atomic import current_umask

    checkpoint = str(trained["checkpoint"])
    person = tmp_path / "person"
    rng = np.random.default_rng(11)
    for gesture in range(1, 21):
        (person / "U09" / f"{gesture:02d}").mkdir(parents=True)
        for rep in (1, 2):
            values = trained["test_sequences"][0] + rng.normal(0, 0.5, trained["test_sequences"][0].shape)
            (person / "U09" / f"{gesture:02d}" / f"{rep:02d}.txt").write_text(recording_text(values))
    personalise = {"ckpt_path": checkpoint, "input": str(person), "user": None, "shots": 1, "seed": 0,
                   "method": "ncm", "steps": 1, "lr": 0.01, "num_threads": 1}  # fmt: skip
    personalise["tracking_uri"] = None
    export = {"ckpt_path": checkpoint, "format": "onnx", "quantize": None}
    folder = tmp_path / "a-folder"
    folder.mkdir()
    places = {**unwritable, "folder": folder}
    reasons = {"read_only": r"(Read-only file system|Permission denied)", "full": "No space left on device"}
    for place, where in places.items():
        before = sorted(where.iterdir())
        for write, name, what in (
            (lambda out: run_export(OmegaConf.create({**export, "out": str(out)})), "m.onnx", "onnx model"),
            (lambda out: run_personalize(OmegaConf.create({**personalise, "out": str(out)})), "me.ckpt",
             "personalised checkpoint"),
        ):  # fmt: skip
            out = where if place == "folder" else where / name
            expected = (
                f"out={out} is a folder" if place == "folder" else f"{reasons[place]}: writing {what} {out}"
            )
            with pytest.raises(
                (StorageError, ConfigError), match=expected if place != "folder" else "is a folder"
            ):
                write(out)
        assert sorted(where.iterdir()) == before, f"nothing left in {place}"
    records = load_records(person, str(unwritable["read_only"]))  # parsed, not cached
    assert len(records) == 40
    made = run_export(OmegaConf.create({**export, "out": str(tmp_path / "ok.onnx")}))
    usual = 0o666 & ~current_umask()
    metrics = trained["checkpoint"].parent.parent / "metrics.json"
    for path in (made, Path(f"{made}.json"), trained["checkpoint"], metrics):
        assert oct(path.stat().st_mode & 0o777) == oct(usual), path
    recording = tmp_path / "r.txt"
    recording.write_text(recording_text(trained["test_sequences"][0]))
    stream = tmp_path / "walk.txt"  # a continuous recording: every way out of predict.py alike
    samples = np.concatenate(trained["test_sequences"][:4])
    stream.write_text("".join(f"{111 * i} {x:.5f} {y:.5f} {z:.5f}\n" for i, (x, y, z) in enumerate(samples)))
    for predict in (f"{sys.executable} {PROJECT_ROOT / 'predict.py'} onnx={made} input={recording}",
                    f"{sys.executable} {PROJECT_ROOT / 'predict.py'} ckpt_path={trained['checkpoint']} "
                    f"stream={stream} min_probability=0"):  # fmt: skip
        for redirect, message in ((">/dev/full", "No space left on device: writing the predictions"),
                                  (">&-", "standard output is closed")):  # fmt: skip
            done = subprocess.run(
                ["bash", "-c", f"{predict} {redirect}"], capture_output=True, text=True, timeout=120
            )
            errors = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode == 2 and len(errors) == 1 and message in errors[0], (predict, done.stderr)


def test_every_runtime_runs_the_graph_as_exported(tmp_path):
    """One optimisation level for predict.py, the served model, the spotter and the page: the
    page's onnxruntime-web session names the level gesture_rnn.deploy.runtime sets, and no module
    opens an onnxruntime session of its own."""
    from gesture_rnn.deploy.runtime import CLASSIFIER_TRUTH, GRAPH_OPTIMIZATION, SPOTTER_TRUTH

    page = (PROJECT_ROOT / "demo" / "page" / "models.js").read_text()
    assert f'graphOptimizationLevel: "{GRAPH_OPTIMIZATION}"' in page
    for fields in (CLASSIFIER_TRUTH, SPOTTER_TRUTH):  # the page checks what predict.py checks
        assert json.dumps(list(fields)) in page, fields
    sources = [*PROJECT_ROOT.glob("gesture_rnn/**/*.py"), *PROJECT_ROOT.glob("demo/*.py"),
               *PROJECT_ROOT.glob("bench/*.py"), *PROJECT_ROOT.glob("studies/*.py")]  # fmt: skip
    own = [p.name for p in sources if "InferenceSession(" in p.read_text() and p.name != "runtime.py"]
    assert own == [], f"sessions opened outside gesture_rnn/deploy/runtime.py: {own}"


def test_an_exported_classifier_carries_its_gesture_order_and_a_sidecar_that_differs_is_refused(tmp_path):
    """The answers depend on the gesture order, the normalisation and the temperature: they are in
    the ONNX model's own metadata, and predict.py refuses a sidecar that says otherwise instead of
    relabelling every answer."""
    import json

    from gesture_rnn.commands.predict import onnx_session
    from gesture_rnn.deploy.export import classifier_truth, export_onnx
    from gesture_rnn.deploy.runtime import read_truth, write_truth
    from gesture_rnn.errors import DataError
    from gesture_rnn.models.nets import GRUNet

    net = GRUNet(hidden=8, layers=1, dropout=0.0, bidirectional=False, packed=True).eval()
    model = export_onnx(net, tmp_path / "m.onnx")
    write_truth(model, classifier_truth(net))
    sidecar = {"format": "onnx", **classifier_truth(net)}
    (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
    session, gestures = onnx_session(model)
    assert gestures == list(range(1, 21)) and read_truth(session) == classifier_truth(net)
    for field, value in (("class_index_to_gesture", [2, 1, *range(3, 21)]), ("temperature", 2.5)):
        (tmp_path / "m.onnx.json").write_text(json.dumps({**sidecar, field: value}))
        with pytest.raises(DataError, match=rf"its sidecar's {field} .* is not the model's own"):
            onnx_session(model)


def test_an_answer_names_the_gesture_as_its_pictogram_draws_it():
    """predict.py answers a number and what the dataset's pictogram draws (the dataset names none)."""
    from gesture_rnn.commands.predict import answers, format_prediction

    probabilities = np.full((2, 20), 0.01, dtype=np.float32)
    probabilities[0, 11], probabilities[1, 4] = 0.81, 0.40
    sure, unsure = answers(["a.txt", "b.txt"], probabilities, list(range(1, 21)), min_probability=0.5)
    assert sure["gesture"] == 12 and sure["name"] == "left, then down"
    assert format_prediction(sure).startswith('a.txt: gesture 12 "left, then down" (p=0.810)')
    assert unsure["gesture"] == "unsure" and unsure["name"] is None
    assert 'best guess gesture 5 "circle, clockwise"' in format_prediction(unsure)
