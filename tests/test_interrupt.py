"""Interrupted runs: a checkpoint and a KILLED run; ``ckpt_path=last`` finishes them exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, compose_train_config
from mlflow import MlflowClient

import gesture_rnn

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast

TRAIN = [
    "log_model=false",
    "model.net.hidden=16",
    "trainer.max_epochs=4",
    "console=quiet",
    "trainer.enable_model_summary=false",
]


def train_py(root: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={root}", f"data.path={data}",
        f"data.cache_dir={root}/cache", *TRAIN, *overrides,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "tests")}
    # Ctrl-C handling as in a terminal, even when the suite itself runs in the background (a
    # non-interactive shell starts background jobs with SIGINT ignored, and children inherit that)
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, preexec_fn=restore_sigint
    )


def run_record(root: Path) -> dict:
    (metrics_file,) = (root / "outputs" / "train" / "runs").glob("*/metrics.json")
    return json.loads(metrics_file.read_text())


@pytest.fixture(scope="module")
def uninterrupted(synthetic_zip, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("whole")
    whole = train_py(root, synthetic_zip)
    assert whole.returncode == 0, whole.stderr
    return run_record(root)["metrics"]


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_killed_run_resumes_in_its_mlflow_run_and_ends_as_if_never_stopped(
    synthetic_zip, tmp_path, signal_name, uninterrupted
):
    root = tmp_path / "stopped"
    killer = [
        "+callbacks.kill._target_=interrupt_helpers.SignalAtEpoch",
        "+callbacks.kill.epoch=2",
        f"+callbacks.kill.signal_name={signal_name}",
    ]
    stopped = train_py(root, synthetic_zip, *killer)
    assert stopped.returncode == 130, stopped.stderr
    message = [line for line in stopped.stderr.splitlines() if line.startswith("interrupted:")]
    assert len(message) == 1 and "marked KILLED" in message[0] and "ckpt_path=" in message[0]
    (run_dir,) = (root / "outputs" / "train" / "runs").iterdir()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    assert run.info.status == "KILLED"

    original_config = (run_dir / "config_resolved.yaml").read_text()
    resumed = train_py(root, synthetic_zip, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr
    assert list((root / "outputs" / "train" / "runs").iterdir()) == [run_dir], "one run, one folder"
    assert (run_dir / "config_resolved.yaml").read_text() == original_config, "not overwritten"
    assert "ckpt_path: last" in (run_dir / "config_resolved.resumed.yaml").read_text()
    log_text = (run_dir / "train.log").read_text()
    assert "Resuming" in log_text and log_text.count("Using") + 1 >= 1, "both parts in the run's log"
    (run_again,) = client.search_runs([run.info.experiment_id])
    assert run_again.info.run_id == run.info.run_id and run_again.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4, "epochs 1-2, then 3-4"

    expected, got = uninterrupted, run_record(root)["metrics"]
    for name in ("train/loss", "val/acc_best", "test/acc", "test/loss", "test/f1"):
        assert got[name] == expected[name], name  # bit-identical, not approximately equal
    curves = (run_dir / "evaluation" / "learning_curves.csv").read_text().splitlines()
    assert len(curves) == 1 + 4, "the learning curves keep the epochs before the interruption"


def test_another_exit_keeps_its_code_and_marks_the_run_failed(synthetic_zip, tmp_path):
    """Only Ctrl-C and SIGTERM are interrupts (exit 130, KILLED); sys.exit(3) stays exit 3."""
    exits = ["+callbacks.exit._target_=interrupt_helpers.ExitAtEpoch", "+callbacks.exit.epoch=1",
             "+callbacks.exit.code=3"]  # fmt: skip
    result = train_py(tmp_path, synthetic_zip, *exits)
    assert result.returncode == 3, result.stderr
    assert "interrupted:" not in result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    assert run.info.status == "FAILED"


def test_killed_hard_while_writing_a_checkpoint_the_next_run_resumes(synthetic_zip, tmp_path):
    """SIGKILL halfway through epoch 1's checkpoint: only whole checkpoints carry a .ckpt name, and
    ckpt_path=last resumes from epoch 0's and finishes."""
    kill = ["+callbacks.kill._target_=interrupt_helpers.KillDuringCheckpointWrite", "+callbacks.kill.n=3"]
    killed = train_py(tmp_path, synthetic_zip, *kill)
    assert killed.returncode == -signal.SIGKILL
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):
        assert torch.load(checkpoint, weights_only=True)["epoch"] == 0, f"{checkpoint.name} is whole"
    resumed = train_py(tmp_path, synthetic_zip, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    curves = (run_dir / "evaluation" / "learning_curves.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in curves[1:]] == ["0", "1", "2", "3"], "all epochs trained"
    for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):
        torch.load(checkpoint, weights_only=True)  # every file under a .ckpt name is whole


def test_killed_hard_while_writing_the_parse_cache_the_next_run_parses_again(synthetic_zip, tmp_path):
    cache = tmp_path / "cache"
    program = (
        "import runpy, sys, interrupt_helpers; from gesture_rnn.data import parsing; "
        "interrupt_helpers.kill_during_the_nth_write(parsing, 1); "
        f"sys.argv = ['train.py', 'paths.root_dir={tmp_path}', 'data.path={synthetic_zip}', "
        f"'data.cache_dir={cache}', 'logger=none']; "
        f"runpy.run_path('{PROJECT_ROOT / 'train.py'}', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT / 'tests'}:{PROJECT_ROOT}"}
    killed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list(cache.rglob("*.npz")), "no cache file under its final name"
    overrides = [
        f"data.path={synthetic_zip}",
        f"data.cache_dir={cache}",
        "trainer.max_epochs=1",
        "logger=none",
    ]
    gesture_rnn.train(compose_train_config(tmp_path, overrides))  # the next run parses again
    (parsed,) = cache.rglob("*.npz")
    np.load(parsed).close()
