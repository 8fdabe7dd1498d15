"""From sweep to service: the MLflow Model Registry (register=true, model_uri=models:/...) and the
logged model served by MLflow's scoring server (``make serve``)."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CONF_DIR, compose_train_config, free_port, recording_text
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from mlflow import MlflowClient
from omegaconf import OmegaConf, open_dict

import gesture_rnn
from gesture_rnn.commands.predict import run_predict
from gesture_rnn.data import GestureDataModule
from gesture_rnn.deploy.export import run_export
from gesture_rnn.deploy.inference import load_predictor, probabilities_of
from gesture_rnn.deploy.scoring_app import MAX_REQUEST_BYTES
from gesture_rnn.deploy.serve import post_json, predictions, request_body, served
from gesture_rnn.errors import ConfigError, DataError

pytestmark = pytest.mark.integration  # trains and starts a server: not in make test-fast


@pytest.fixture(scope="module")
def registered(synthetic_zip, tmp_path_factory) -> dict:
    """Two runs trained with register=true into one sqlite store: versions 1 and 2 of gestures."""
    root = tmp_path_factory.mktemp("registry")
    runs = []
    for name in ("first", "second"):
        overrides = [
            f"data.path={synthetic_zip}",
            "model.net.hidden=8",
            "trainer.max_epochs=2",
            "register=true",
        ]
        metrics = gesture_rnn.train(compose_train_config(root, overrides, f"outputs/{name}"))
        GlobalHydra.instance().clear()
        runs.append({"metrics": metrics, "dir": root / "outputs" / name})
    uri = f"sqlite:///{root}/outputs/mlflow.db"
    dm = GestureDataModule.from_shipped_config(path=str(synthetic_zip), cache_dir=str(root / "cache"))
    dm.setup()
    sequences = [s.numpy() for s in dm.test_dataloader().dataset.sequences]
    return {"root": root, "uri": uri, "runs": runs, "sequences": sequences}


def _settings(registered: dict, tmp_path: Path, **values) -> dict:
    return {
        "tracking_uri": registered["uri"],
        "cache_dir": str(tmp_path / "cache"),
        "ckpt_path": None,
        **values,
    }


def test_register_true_adds_a_version_with_its_metrics_and_moves_the_alias(registered):
    client = MlflowClient(registered["uri"])
    versions = sorted(client.search_model_versions("name = 'gestures'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    candidate = client.get_model_version_by_alias("gestures", "candidate")
    assert str(candidate.version) == "2", "the alias moves to the newest registration"
    second = registered["runs"][1]
    assert float(candidate.tags["test/acc"]) == pytest.approx(second["metrics"]["test/acc"])
    assert (
        candidate.tags["data_md5"]
        and candidate.run_id == json.loads((second["dir"] / "metrics.json").read_text())["mlflow_run_ids"][0]
    )


def test_commands_take_a_registered_model_and_say_which_version_answered(registered, tmp_path, capsys):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, sequence in enumerate(registered["sequences"][:3]):
        (folder / f"r{i}.txt").write_text(recording_text(sequence))
    uri = "models:/gestures@candidate"
    settings = _settings(registered, tmp_path, model_uri=uri, input=str(folder), output="json", top_k=3)
    answers = run_predict(OmegaConf.create(settings))
    checkpoint = next((registered["runs"][1]["dir"] / "checkpoints").glob("*.ckpt"))
    expected = probabilities_of(load_predictor(str(checkpoint)), registered["sequences"][:3])
    assert [a["gesture"] for a in answers] == [int(p.argmax()) + 1 for p in expected]
    assert answers[0]["model"]["version"] == "2" and answers[0]["model"]["registered_model"] == "gestures"
    export = {"format": "onnx", "quantize": None}
    onnx = run_export(OmegaConf.create(_settings(registered, tmp_path, model_uri="models:/gestures/1",
                                                 out=str(tmp_path / "v1.onnx"), **export)))  # fmt: skip
    sidecar = json.loads(Path(f"{onnx}.json").read_text())
    assert sidecar["registry"]["version"] == "1" and sidecar["registry"]["model_uri"] == "models:/gestures/1"
    run_id = answers[0]["model"]["run_id"]  # a run without the registry: runs:/<run id>
    by_run = run_export(OmegaConf.create(_settings(registered, tmp_path, model_uri=f"runs:/{run_id}",
                                                   out=str(tmp_path / "run.onnx"), **export)))  # fmt: skip
    assert json.loads(Path(f"{by_run}.json").read_text())["registry"] == {
        "model_uri": f"runs:/{run_id}",
        "registered_model": None,
        "version": None,
        "run_id": run_id,
    }
    refused = [
        ({"model_uri": "gestures@candidate"}, "must be models:/<name>@<alias>"),
        ({"model_uri": "models:/gestures@champion"}, "was not found"),
        ({"model_uri": uri, "ckpt_path": str(checkpoint)}, "not both"),
    ]
    for values, message in refused:
        with pytest.raises(ConfigError, match=message):
            run_export(OmegaConf.create(_settings(registered, tmp_path, out=None, **export, **values)))


def test_evaluate_takes_a_registered_model_and_says_which(registered, synthetic_zip, tmp_path, capsys):
    from gesture_rnn.commands.evaluate import evaluate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            f"paths.root_dir={tmp_path}", f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/c",
            "model_uri=models:/gestures/1", f"tracking_uri={registered['uri']}", f"cache_dir={tmp_path}/m",
            "logger=none",
        ], return_hydra_config=True)  # fmt: skip
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "evaluated")
        del cfg.hydra
    GlobalHydra.instance().clear()
    metrics = evaluate(cfg)
    assert metrics["test/acc"] == pytest.approx(registered["runs"][0]["metrics"]["test/acc"]), (
        "version 1's run"
    )
    assert "models:/gestures/1 = gestures version 1" in capsys.readouterr().out


def test_register_needs_the_logged_model(train_config):
    with pytest.raises(ConfigError, match=r"register=true .* needs logger=mlflow and log_model=true"):
        gesture_rnn.train(train_config("register=true", "log_model=false"))


def test_the_registered_model_serves_over_http_with_mlflow(registered, tmp_path):
    """make serve's server: probabilities equal to PyTorch's (float32 ONNX: within 1e-4), a
    malformed request answered 4xx with a message, the server always stopped."""
    sequences = registered["sequences"][:4]
    checkpoint = next((registered["runs"][1]["dir"] / "checkpoints").glob("*.ckpt"))
    expected = probabilities_of(load_predictor(str(checkpoint)), sequences)
    with served("models:/gestures@candidate", registered["uri"], free_port(), tmp_path / "serve.log") as url:
        status, answer = post_json(f"{url}/invocations", request_body(sequences))
        assert status == 200, answer
        assert np.abs(predictions(answer) - expected).max() < 1e-4
        status, answer = post_json(f"{url}/invocations", b'{"inputs": "not a batch"}')
        assert 400 <= status < 500 and answer.get("message"), answer
        for length, expected in ((MAX_REQUEST_BYTES + 1, 413), (None, 400)):  # 413 before a body byte
            connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
            connection.putrequest("POST", "/invocations")
            connection.putheader("Content-Type", "application/json")
            if length is not None:
                connection.putheader("Content-Length", str(length))
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == expected and json.loads(response.read())["message"]
            connection.close()


GOOD = [[0.5, 9.6, 1.2], [0.7, 9.4, 1.0], [0.9, 9.1, 0.8]]
INF = float("inf")
# what is wrong, its rows (None: null in a request, "nan" in a file), the server's and a file's reason
REFUSED = [
    ("all null", [[None] * 3] * 3, "found 0", "line 1: acceleration is null"),
    (
        "infinite",
        [GOOD[0], [INF, 9.4, 1.0], GOOD[2]],
        "row 2: acceleration is null, NaN or infinite",
        "line 2",
    ),
    ("NaN in the first row", [[None, 9.6, 1.2], GOOD[1], GOOD[2]], "row 1: acceleration is null", "line 1"),
    ("a null row inside", [GOOD[0], [None] * 3, GOOD[2]], "row 3: values after a null row", "line 2"),
    ("one row", [GOOD[0]], "found 1", "found 1"),
    (
        "beyond float32",
        [GOOD[0], [1e39, 9.4, 1.0], GOOD[2]],
        "row 2: acceleration is null, NaN or inf",
        "line 2",
    ),
    ("beyond any sensor", [GOOD[0], [3e4, 9.4, 1.0], GOOD[2]], "row 2: acceleration is beyond", "line 2"),
    ("too long", GOOD * 400, "found 1200", "found 1200"),
]


def test_predict_the_onnx_backend_and_the_served_model_keep_one_input_contract(registered, tmp_path):
    """The same recordings are answered or refused by predict.py (checkpoint and ONNX) and by the
    served model; refusals name the row (a file's line), the server's are 400 with the reason."""
    checkpoint = next((registered["runs"][1]["dir"] / "checkpoints").glob("*.ckpt"))
    onnx = run_export(OmegaConf.create({"ckpt_path": str(checkpoint), "format": "onnx", "quantize": None,
                                        "out": str(tmp_path / "m.onnx")}))  # fmt: skip
    backends = {"ckpt_path": str(checkpoint), "onnx": str(onnx)}
    with served("models:/gestures@candidate", registered["uri"], free_port(), tmp_path / "serve.log") as url:
        for what, rows, reason, in_file in [("good", GOOD, None, None), *REFUSED]:
            recording = tmp_path / f"{what.replace(' ', '_')}.txt"
            recording.write_text(
                "".join(" ".join("nan" if v is None else repr(v) for v in r) + "\n" for r in rows)
            )
            padded = [rows, GOOD + [[None] * 3] * (len(rows) - len(GOOD))] if len(rows) > 3 else [rows]
            status, answer = post_json(f"{url}/invocations", json.dumps({"inputs": padded}).encode())
            for key, model in backends.items():
                settings = {key: model, "input": str(recording), "output": "json", "top_k": 3}
                if reason is None:
                    assert run_predict(OmegaConf.create(settings))[0]["gesture"] in range(1, 21)
                    continue
                with pytest.raises(
                    DataError, match=re.escape(f"{recording}, {in_file}" if "line" in in_file else in_file)
                ):
                    run_predict(OmegaConf.create(settings))
            if reason is None:
                assert status == 200 and np.isfinite(predictions(answer)).all(), answer
            else:
                assert status == 400 and reason in answer["message"], (what, status, answer)
