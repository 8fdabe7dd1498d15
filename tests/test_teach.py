"""teach.py: a gesture the model never saw is taught from a few takes; the gestures it knows answer
as before; the taught model is a checkpoint predict.py and export.py take, answering by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, compose_train_config
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

import gesture_rnn
from gesture_rnn.commands.teach import run_teach
from gesture_rnn.data.parsing import load_records
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.models.checkpoint import load_net, read_checkpoint
from gesture_rnn.models.teach import TaughtHead

TAUGHT = 5  # the gesture the base model never sees


def test_the_taught_gesture_wins_only_nearest_its_prototype_and_a_replaced_one_never():
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    known = torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    taught = torch.tensor([[0, 0, 0, 4.0]])
    head = TaughtHead(linear, known, taught, replaced=[])
    points = torch.cat([known + 0.1, taught - 0.1])
    answers = head(points).argmax(1)
    assert answers[3] == 3, "nearest the taught prototype: the taught gesture"
    assert torch.equal(answers[:3], linear(points[:3]).argmax(1)), "elsewhere the head's own answer"
    replacing = TaughtHead(linear, known, taught, replaced=[1])
    assert (replacing(torch.randn(200, 4) * 4).argmax(1) != 1).all(), "a replaced gesture is never answered"


@pytest.fixture(scope="module")
def base(synthetic_folder, tmp_path_factory) -> Path:
    """A model trained without gesture 5 and without U03, who teaches it."""
    root = tmp_path_factory.mktemp("base")
    overrides = [f"data.path={synthetic_folder}", "data.split=users", "data.test_users=[U03]",
                 f"data.held_out_gestures=[{TAUGHT}]", "data.val_fraction=0", "model.net.hidden=16",
                 "trainer.max_epochs=8", "model.optimizer.lr=0.01", "logger=none"]  # fmt: skip
    gesture_rnn.train(compose_train_config(root, overrides))
    GlobalHydra.instance().clear()
    return root / "outputs" / "run" / "checkpoints" / "last.ckpt"


def settings(tmp_path: Path, checkpoint: Path, data: Path, takes: Path, **changes) -> dict:
    base = {"ckpt_path": str(checkpoint), "input": str(takes), "name": "wave", "replace": None,
            "data_path": str(data), "cache_dir": str(tmp_path / "cache"),
            "out": str(tmp_path / "taught.ckpt")}  # fmt: skip
    return OmegaConf.create({**base, **changes})


def takes_of(folder: Path, user: str, gesture: int, count: int, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for path in sorted((folder / user / f"{gesture:02d}").glob("*.txt"))[:count]:
        shutil.copy(path, into / path.name)
    return into


@pytest.mark.integration  # trains a base model
def test_a_gesture_never_seen_is_taught_and_the_known_ones_answer_as_before(base, synthetic_folder, tmp_path):
    takes = takes_of(synthetic_folder, "U03", TAUGHT, 3, tmp_path / "takes")
    result = run_teach(settings(tmp_path, base, synthetic_folder, takes, replace=TAUGHT))
    assert result == {**result, "gesture": 21, "name": "wave", "recognised": 3}
    assert result["seconds"] < 10
    records = load_records(synthetic_folder, None)
    mine = np.flatnonzero(records.users == "U03")
    sequences, labels = [records.sequences[i] for i in mine], records.labels[mine]
    before, after = load_net(base), load_net(tmp_path / "taught.ckpt")
    from gesture_rnn.deploy.inference import probabilities_of

    old, new = probabilities_of(before, sequences).argmax(1), probabilities_of(after, sequences).argmax(1)
    assert new.shape == old.shape and probabilities_of(after, sequences[:1]).shape == (1, 21)
    assert (new[labels == TAUGHT - 1] == 20).all(), "every take of the taught gesture, the fourth too"
    others = labels != TAUGHT - 1
    assert (new[others] == old[others]).mean() >= 0.95, "the known gestures answer as before"
    assert read_checkpoint(tmp_path / "taught.ckpt")["taught"]["names"] == ["wave"]


@pytest.mark.integration
def test_predict_and_an_int8_export_answer_the_taught_gesture_by_its_name(base, synthetic_folder, tmp_path):
    takes = takes_of(synthetic_folder, "U03", TAUGHT, 3, tmp_path / "takes")
    run_teach(settings(tmp_path, base, synthetic_folder, takes, replace=TAUGHT))
    question = takes_of(synthetic_folder, "U03", TAUGHT, 4, tmp_path / "question")
    taught = tmp_path / "taught.ckpt"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    done = run(str(PROJECT_ROOT / "predict.py"), f"ckpt_path={taught}", f"input={question}", "output=json")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["gesture"], a["name"]) for a in answers] == [(21, "wave")] * 4
    done = run(
        str(PROJECT_ROOT / "export.py"), f"ckpt_path={taught}", "quantize=int8", f"out={tmp_path}/m.onnx"
    )
    assert done.returncode == 0, done.stderr
    model = next(tmp_path.glob("m*.onnx"))
    sidecar = json.loads(model.with_name(model.name + ".json").read_text())
    assert sidecar["class_index_to_gesture"][-1] == 21 and sidecar["taught_gestures"] == {"21": "wave"}
    assert model.stat().st_size <= 100_000
    done = run(str(PROJECT_ROOT / "predict.py"), f"onnx={model}", f"input={question}", "output=json")
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["name"] for line in done.stdout.splitlines()} == {"wave"}


@pytest.mark.integration
def test_takes_that_cannot_teach_are_refused_in_one_line(base, synthetic_folder, tmp_path):
    takes = takes_of(synthetic_folder, "U03", TAUGHT, 2, tmp_path / "takes")
    copies = takes_of(synthetic_folder, "U03", TAUGHT, 1, tmp_path / "copies")
    shutil.copy(next(copies.glob("*.txt")), copies / "again.txt")
    short = tmp_path / "short"
    short.mkdir()
    (short / "01.txt").write_text("".join(f"0 0 0 {v} 0 9.8\n" for v in range(3)))
    cases = [
        ({"input": str(copies)}, DataError, "are copies of one another"),
        ({"input": str(short)}, DataError, "is not a gesture: 3 sample"),
        ({"name": " "}, ConfigError, "name=' ' is invalid: it must be a non-empty name"),
        ({"replace": 21}, ConfigError, "replace=21 is invalid: it must be a gesture 1-20 or null"),
        ({"input": None}, ConfigError, "input is required"),
    ]
    for changes, error, message in cases:
        with pytest.raises(error, match=message):
            run_teach(settings(tmp_path, base, synthetic_folder, takes, **changes))
    run_teach(settings(tmp_path, base, synthetic_folder, takes))
    again = settings(
        tmp_path, tmp_path / "taught.ckpt", synthetic_folder, takes, out=str(tmp_path / "two.ckpt")
    )
    with pytest.raises(ConfigError, match="'wave' is taught already"):
        run_teach(again)
    assert not (tmp_path / "two.ckpt").exists(), "nothing half-written"
