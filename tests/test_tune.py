"""``python tune.py -m`` end to end: both sweepers, parent/child MLflow runs, a real MLflow server."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, free_port
from mlflow import MlflowClient
from omegaconf import OmegaConf

from gesture_rnn.deploy.export import run_export
from gesture_rnn.deploy.serve import running

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast

TINY = [
    "log_model=false",  # the MLflow model is tested with train.py; trials skip its ~4 s each
    "trainer.max_epochs=2",
    # the design card's spelling (model.net.* is the config's): recorded once, as model.net.*
    "model.layers=1",
    "model.hidden=choice(8,16)",
    "model.optimizer.lr=0.01",
]
# the architecture as a hyperparameter (the families that share hidden/layers/dropout)
FAMILIES = "model/net=choice(gru,lstm,conv_gru)"


def run_tune(tmp_path: Path, data: Path, *overrides: str, env: dict[str, str] | None = None, expect: int = 0):
    command = [
        sys.executable,
        str(PROJECT_ROOT / "tune.py"),
        "-m",
        f"paths.root_dir={tmp_path}",
        f"data.path={data}",
        f"data.cache_dir={tmp_path}/cache",
        f"hydra.sweep.dir={tmp_path}/sweep",
        *overrides,
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )
    assert result.returncode == expect, result.stderr[-4000:]
    return result


def sweep_runs(client: MlflowClient):
    experiment = client.get_experiment_by_name("gestures")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def check_parent_and_children(client: MlflowClient, n_trials: int) -> None:
    parents, children = sweep_runs(client)
    assert len(parents) == 1 and len(children) == n_trials
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.params["optimized_metric"] == "val/acc_best"
    assert parent.data.params["space.model.net.hidden"] == "choice(8,16)"
    assert parent.data.params["best.model.net.hidden"] in {"8", "16"}
    best = max(c.data.metrics["val/acc_best"] for c in children)
    assert parent.data.metrics["best/val/acc_best"] == pytest.approx(best)
    assert "best/test_acc" in parent.data.metrics


def check_family_choice(client: MlflowClient) -> None:
    """The architecture is swept like any other hyperparameter and recorded on every trial."""
    (parent,), children = sweep_runs(client)
    assert parent.data.params["space.model/net"] == "choice(gru,lstm,conv_gru)"
    classes = {"gru": "GRUNet", "lstm": "LSTMNet", "conv_gru": "ConvGRUNet"}
    for child in children:
        family = child.data.params["model.family"]
        assert child.data.params["model.net._target_"].endswith(classes[family])


def test_tune_with_hyperopt_nests_trials_under_one_parent_run(synthetic_zip, tmp_path):
    result = run_tune(tmp_path, synthetic_zip, "hydra.sweeper.n_trials=3", *TINY, FAMILIES)
    assert result.stdout.count("TEST accuracy") == 1, "the test accuracy is reported once, for the best trial"
    assert "registered" not in result.stdout, "a sweep registers its best trial only with register=true"
    assert "test accuracy" not in result.stdout, "per-trial summaries hide the test set during the search"
    check_parent_and_children(MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db"), n_trials=3)
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.n_trials == 3 and results.n_failures == 0
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (parent,), _ = sweep_runs(client)
    assert "optimization_results.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    check_family_choice(client)


def test_tune_with_optuna_records_a_failed_trial_and_goes_on(synthetic_zip, tmp_path):
    """hparams_search=optuna sets max_failure_rate=1.0: Optuna's rate is per batch, so anything
    lower would end a serial sweep at its first failed trial (layers=0 fails the config check)."""
    overrides = [o for o in TINY if not o.startswith("model.layers")] + ["model.net.layers=choice(0,1)"]
    run_tune(
        tmp_path, synthetic_zip, "hparams_search=optuna", "hydra.sweeper.n_trials=4", *overrides, FAMILIES
    )
    finished = sorted(path.parent.name for path in (tmp_path / "sweep").glob("*/metrics.json"))
    assert 0 < len(finished) < 4 and (tmp_path / "sweep" / "3").is_dir(), "all 4 trials ran, some failed"
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (parent,), children = sweep_runs(client)
    assert parent.info.status == "FINISHED" and len(children) == len(finished)
    check_family_choice(client)


def test_trials_as_submitit_jobs_a_failing_one_marked_failed_and_the_sweep_goes_on(synthetic_zip, tmp_path):
    """hydra/launcher=submitit_local: the code path hydra/launcher=slurm takes (each trial pickled,
    run in its own process by submitit, its result returned), on this machine. layers=0 is
    rejected by the config checks: that trial fails, the other one runs, nested under the parent."""
    run_tune(
        tmp_path, synthetic_zip, "hydra/launcher=submitit_local", "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=1", "model.net.hidden=8", "model.net.layers=range(0,2)", "log_model=false",
    )  # fmt: skip
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.n_trials == 2 and results.n_failures == 1
    assert "model.net.layers=0 is invalid" in results.failures[0].error
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2, "both ran via submitit"
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (parent,), (child,) = sweep_runs(client)
    assert parent.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_parallel_trials_with_the_joblib_launcher(synthetic_zip, tmp_path):
    run_tune(
        tmp_path,
        synthetic_zip,
        "hydra/launcher=joblib",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        *TINY,
    )
    check_parent_and_children(MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db"), n_trials=2)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` (sqlite backend, local artifact root) on 127.0.0.1; always stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with running(command, dict(os.environ), f"{url}/health", tmp_path / "server.log", timeout_s=90):
        yield url


def test_a_tracking_server_lost_mid_training_lets_training_finish_and_says_what_was_not_logged(
    synthetic_zip, tmp_path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
              "--artifacts-destination", str(tmp_path / "art"), "--host", "127.0.0.1", "--port", str(port),
              "--workers", "1"]  # fmt: skip
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={tmp_path}",
               f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", "model.hidden=8",
               "trainer.max_epochs=40", "trainer.log_every_n_steps=1", "console=quiet"]  # fmt: skip
    with running(server, dict(os.environ), f"{url}/health", tmp_path / "server.log", timeout_s=90):
        training = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env={**os.environ, "MLFLOW_TRACKING_URI": url})  # fmt: skip
        deadline = time.monotonic() + 120
        while (
            not list(tmp_path.glob("outputs/train/runs/*/mlflow_run_id.txt")) and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert training.poll() is None, "still training when the server goes"
    started = time.monotonic()  # the server is gone
    stdout, stderr = training.communicate(timeout=400)
    assert training.returncode == 0, stderr[-3000:]
    assert time.monotonic() - started < 240, "no minutes-long stall per logging call"
    (record,) = tmp_path.glob("outputs/train/runs/*/metrics.json")
    assert 0 <= json.loads(record.read_text())["metrics"]["test/acc"] <= 1, "the run folder has everything"
    lines = [line for line in stdout.splitlines() if line.startswith("  MLflow run")]
    assert len(lines) == 1, stdout
    line = lines[0]
    assert "server lost (" in line and "not logged:" in line and "evaluation/" in line, stdout


def test_train_and_tune_against_a_real_tracking_server(synthetic_zip, tmp_path, mlflow_server):
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    single = subprocess.run(
        [
            sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.root_dir={tmp_path}",
            f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", "trainer.max_epochs=2",
            "model.net.hidden=8", "console=quiet", "register=true",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    (train_run,) = sweep_runs(client)[0]
    assert train_run.info.status == "FINISHED" and mlflow_server in single.stdout
    assert train_run.data.params["model.net.hidden"] == "8"
    assert 0 <= train_run.data.metrics["test/acc"] <= 1
    assert [len(client.get_metric_history(train_run.info.run_id, "train/loss"))] == [2], "one value per epoch"
    train_artifacts = {a.path for a in client.list_artifacts(train_run.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in train_artifacts

    version = client.get_model_version_by_alias("gestures", "candidate")  # register=true, on the server
    assert version.run_id == train_run.info.run_id and version.tags["test/acc"]
    exported = run_export(
        OmegaConf.create(
            {
                "model_uri": "models:/gestures@candidate",
                "tracking_uri": mlflow_server,
                "cache_dir": str(tmp_path / "c"),
                "ckpt_path": None,
                "format": "onnx",
                "quantize": None,
                "out": str(tmp_path / "served.onnx"),
            }
        )
    )  # fmt: skip  (the checkpoint comes back from the server's artifact store)
    assert json.loads(Path(f"{exported}.json").read_text())["registry"]["run_id"] == train_run.info.run_id

    client.delete_run(train_run.info.run_id)  # leave the sweep's runs alone in the experiment
    args = ["hydra.sweeper.n_trials=1", *TINY, "log_model=true", "register=true"]
    result = run_tune(tmp_path, synthetic_zip, *args, env=env)
    check_parent_and_children(client, n_trials=1)
    (parent,), children = sweep_runs(client)
    best = client.get_model_version_by_alias("gestures", "candidate")  # the sweep registers its best trial
    assert (
        best.version == "2"
        and best.run_id == children[0].info.run_id
        and "registered as gestures" in result.stdout
    )
    assert float(best.tags["val/acc_best"]) == parent.data.metrics["best/val/acc_best"]
    assert len(client.search_model_versions("name='gestures'")) == 2, "the trials did not register themselves"
    assert best.tags["sweep_run_id"] == parent.info.run_id
    artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"config_resolved.yaml", "checkpoints"} <= artifacts, "artifacts are uploaded to the server"
    assert not (tmp_path / "outputs" / "mlflow.db").exists(), "nothing went to the local store"


def test_a_resumed_sweep_continues_its_trials_and_its_parent_run(synthetic_zip, tmp_path):
    """Also: ``+key=``/``++key=`` overrides keep the record (params named without the prefix,
    trials nested); the folder then refuses, before any trial, a resume that asks another search,
    another sweeper, or a new sweep — each of which would overwrite or mix up its trials."""
    added = ["+trainer.detect_anomaly=false", "++trainer.num_sanity_val_steps=0"]
    run_tune(tmp_path, synthetic_zip, "hydra.sweeper.n_trials=1", *TINY, *added)  # as if stopped after one
    resume = ["hydra.sweeper.n_trials=2", "hydra.sweeper.resume=true"]
    run_tune(tmp_path, synthetic_zip, *resume, *TINY, *added)
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    check_parent_and_children(client, n_trials=2)
    (parent,), _ = sweep_runs(client)
    assert parent.data.params["fixed.trainer.detect_anomaly"] == "false"
    assert OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml").n_trials == 2
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == ["0", "1"]
    changed = [o.replace("choice(8,16)", "choice(8,32)") for o in TINY]
    refused = [
        ([*resume, *changed, *added], "another search: model.net.hidden: choice(8,16) -> choice(8,32)"),
        (["hparams_search=optuna", *TINY, *added], "holds 2 trials of hydra_plugins.hyperopt_sweeper"),
        (["hydra.sweeper.n_trials=3", *TINY, *added], "holds 2 trials of an earlier sweep; choose another"),
    ]  # fmt: skip
    for overrides, message in refused:
        result = run_tune(tmp_path, synthetic_zip, *overrides, expect=2)
        errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Traceback"))]
        assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == ["0", "1"]
    check_parent_and_children(client, n_trials=2)  # the parent as it was: FINISHED, two trials


class _Payload:
    """Unpickling this runs a command: what a sweep folder from someone else may hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_foreign_sweep_state_runs_nothing_and_stops_with_one_line(synthetic_zip, tmp_path):
    marker = tmp_path / "code-was-run"
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "hyperopt_trials.json").write_bytes(pickle.dumps(_Payload(marker)))
    result = run_tune(tmp_path, synthetic_zip, "hydra.sweeper.resume=true", expect=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Traceback"))]
    assert len(errors) == 1 and "is not a sweep state this sweeper wrote" in errors[0]
    assert not marker.exists(), "the state is data, never unpickled"
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    parents, children = sweep_runs(client)
    assert parents == [] and children == [], "no FAILED (or any) parent run left behind"


def test_an_out_of_range_sweep_setting_stops_with_one_line_and_no_parent_run(synthetic_zip, tmp_path):
    result = run_tune(tmp_path, synthetic_zip, "hydra.sweeper.n_trials=0", expect=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Traceback"))]
    assert errors == ["error: hydra.sweeper.n_trials=0 is invalid: it must be an integer >= 1"]
    parents, _ = sweep_runs(MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db"))
    assert parents == []


def test_a_sweep_that_would_register_under_a_refused_alias_stops_before_any_trial(synthetic_zip, tmp_path):
    result = run_tune(tmp_path, synthetic_zip, "register=true", "registry.alias=latest", *TINY, expect=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Traceback"))]
    assert errors == [
        "error: registry.alias='latest' is invalid: an alias is 1-255 letters, digits, _ or -, and not "
        "'latest' or v<number> (MLflow reserves them)"
    ]
    assert not (tmp_path / "sweep" / "0").exists(), "no trial trained"
