"""``python train.py`` as a user runs it: a summary on success, one clear line on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from mlflow import MlflowClient

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast


def run_train(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None):
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        f"paths.root_dir={tmp_path}",
        f"data.cache_dir={tmp_path}/cache",
        "console=quiet",
        *overrides,
    ]
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )


def test_train_py_trains_prints_a_summary_and_records_the_run(synthetic_zip, tmp_path):
    """The design card's command, ``python train.py model.hidden=256 model.layers=2``, smaller."""
    result = run_train(
        tmp_path,
        "model.hidden=16",
        "model.layers=2",
        "trainer.max_epochs=2",
        "log_model=false",
        env={"GESTURES_DATA": str(synthetic_zip)},
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "MLflow run" in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("gestures")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id in result.stdout
    assert run.data.params["data.path"] == "None", "found through $GESTURES_DATA"
    assert run.data.params["model.family"] == "gru"
    assert (run.data.params["model.net.hidden"], run.data.params["model.net.layers"]) == ("16", "2")
    assert not {"model.hidden", "model.layers"} & set(run.data.params), "each setting recorded once"
    assert run.info.run_name == "gru 16/2 · seed 0", "named after what it is"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development", "the UI shows runs"
    assert run.data.tags["mlflow.source.name"] == "train.py", "the UI's Source column names the command"
    assert f"{run.info.run_id}?workflowType=machine_learning" in result.stdout, (
        "the link opens model training"
    )
    run_dirs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(run_dirs) == 1
    assert f"run folder     {run_dirs[0]}" in result.stdout, "the summary says where the run is"
    printed = result.stdout.split("checkpoint     ")[1].split()[0]
    assert Path(printed).is_file() and Path(printed).parent == run_dirs[0] / "checkpoints"
    assert (run_dirs[0] / "config_resolved.yaml").is_file()
    assert list((run_dirs[0] / "checkpoints").glob("*.ckpt"))


def test_an_invalid_value_exits_non_zero_with_one_line(synthetic_zip, tmp_path):
    result = run_train(tmp_path, f"data.path={synthetic_zip}", "model/net=transformer", "model.net.heads=3")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: model.net.heads=3 is invalid: it must be an integer >= 1 that divides model.net.d_model=32"
    ]


def test_a_missing_data_path_exits_non_zero_naming_it(tmp_path):
    result = run_train(tmp_path, f"data.path={tmp_path}/nope.zip")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: dataset not found: {tmp_path}/nope.zip (from data.path) does not exist"
    )


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        (
            "model.bidirectional=true",
            "the network's settings are under model.net now: model.net.bidirectional=...",
        ),
        ("model=lstm", "network families are chosen with model/net=lstm"),
    ],
)
def test_a_misplaced_network_setting_gets_the_right_spelling(tmp_path, override, hint):
    result = run_train(tmp_path, override)
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and override.split("=")[0] in lines[0]
    assert lines[1] == hint


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["model.hidden=256", "model.net.hidden=128"],
            "error: model.hidden=256 and model.net.hidden=128 set the same setting to different values; "
            "give one (model.hidden is short for model.net.hidden)",
        ),
        (
            ["model/net=tcn", "model.hidden=256"],
            "error: model.net.hidden is not a setting of the tcn network; "
            "its settings: channels, kernel, levels, dropout",
        ),
        (
            ["experiment=study_tuned", "model/net=transformer", "model.hidden=8"],
            "error: model.net.hidden is not a setting of the transformer network; "
            "its settings: d_model, heads, layers, ff, dropout",
        ),
        (  # an unquoted path with spaces, as the shell splits it
            ["data.path=/my", "data/gestures", "dataset.zip", "trainer.max_epochs=1"],
            "error: 'data/gestures dataset.zip' is not a key=value override: if data.path is the path "
            "'/my data/gestures dataset.zip', quote it: data.path='/my data/gestures dataset.zip'",
        ),
    ],
)
def test_the_short_network_spelling_is_refused_in_one_line_where_it_cannot_apply(tmp_path, overrides, line):
    result = run_train(tmp_path, *overrides)
    assert result.returncode == 2
    assert result.stderr.strip() == line


def test_a_sqlite_tracking_uri_from_the_environment_keeps_artifacts_under_outputs(synthetic_zip, tmp_path):
    store = f"sqlite:///{tmp_path}/elsewhere.db"
    overrides = [f"data.path={synthetic_zip}", "model.net.hidden=8", "trainer.max_epochs=1"]
    result = run_train(tmp_path, *overrides, env={"MLFLOW_TRACKING_URI": store})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "mlruns").exists(), "nothing in ./mlruns of the working directory"
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    assert str(tmp_path / "outputs" / "mlartifacts") in run.info.artifact_uri


def test_commands_import_only_what_they_need():
    """predict.py --help and every Hydra app's plugin scan must not pay for Lightning, MLflow or
    hyperopt (seconds each): they are imported when a command runs that needs them."""
    code = (
        "import sys, gesture_rnn, gesture_rnn.commands.cli, gesture_rnn.deploy.inference; "
        "import gesture_rnn.models, gesture_rnn.commands.predict, gesture_rnn.tracking.registry; "
        "import hydra_plugins.hyperopt_sweeper.hyperopt_sweeper, hydra_plugins.hyperopt_sweeper.config; "
        "print(sorted({'lightning', 'mlflow', 'hyperopt', 'matplotlib'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_two_runs_starting_at_once_on_a_new_store_both_finish(synthetic_zip, tmp_path):
    """Two users, or a parallel sweep's first trials: the new sqlite store is set up once."""
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={tmp_path}",
               f"data.path={synthetic_zip}", "model.net.hidden=8", "trainer.max_epochs=1", "console=quiet",
               "log_model=false"]  # fmt: skip
    runs = [
        subprocess.Popen([*command, f"data.cache_dir={tmp_path}/cache{i}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors[0][-1500:] + errors[1][-1500:]
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    finished = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    assert sorted(run.info.status for run in finished) == ["FINISHED", "FINISHED"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.run.dir=/", "is a system folder, not one for runs"),
        ("hydra.run.dir=/proc/gesture_rnn", "is a system folder"),
        ("paths.output_dir={file}", "is a file, not a folder"),
        ("hydra.run.dir={file}/run", "is a file, not a folder"),
        ("hydra.run.dir={busy}", "holds other things than runs (e.g. 'notes.txt')"),
    ],
)
def test_an_output_folder_that_cannot_hold_runs_is_refused_in_one_line_before_anything_is_written(
    override, message, tmp_path
):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    arg = override.format(file=tmp_path / "a_file", busy=tmp_path / "busy")
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), arg]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"], "nothing scattered"


def test_the_default_console_holds_no_line_a_user_cannot_act_on(synthetic_zip, tmp_path):
    """train.py, a resume and evaluate.py as a newcomer runs them, piped to a file: no install
    tips, "GPU available" lines, library deprecation warnings, model table or checkpoint-folder
    warnings; one line per epoch (a bar's redraws would each be a line) with loss and accuracy."""
    common = [f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", "logger=none"]
    run_dir = tmp_path / "run"
    train = [sys.executable, str(PROJECT_ROOT / "train.py"), *common]
    first = [*train, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    resumed = [*train, "trainer.max_epochs=2", f"ckpt_path={run_dir}/checkpoints/last.ckpt"]
    tested = [
        sys.executable,
        str(PROJECT_ROOT / "evaluate.py"),
        *common,
        f"ckpt_path={run_dir}/checkpoints/last.ckpt",
    ]
    console = ""
    for command in (first, resumed, tested):
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        console += done.stdout + done.stderr
    noise = ("Tip:", "litlogger", "litmodels", "GPU available", "TPU available", "LeafSpec", "v_num",
             "FLOPs", "it/s", "exists and is not empty", "callbacks used to create", "Warning")  # fmt: skip
    for line in noise:
        assert line not in console, line
    epochs = [line for line in console.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/1", "2/2"], console
    assert all("train/loss " in line and "val/acc " in line for line in epochs)
    assert "Network GRUNet: " in console and " parameters" in console, "the network and its size, in one line"
