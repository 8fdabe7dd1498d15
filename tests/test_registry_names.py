"""Registry identifiers typed by a user — run ids, model names, aliases, versions — are checked
before they reach MLflow, the file system or a shell, and refused in one line (exit 2)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from gesture_rnn.errors import ConfigError
from gesture_rnn.tracking.registry import check_alias, check_model_name, parse_model_uri


@pytest.mark.parametrize(
    "uri",
    ["runs:/../..", "runs:/..", "runs:/a/../../b", "runs:/", "models:/../x@champion", "models:/a/b/c",
     "models:/gestures@latest", "models:/gestures@v2", "models:/gestures/0", "models:/gestures/x", "s3://x"],
)  # fmt: skip
def test_a_model_uri_that_could_name_a_path_or_that_mlflow_refuses_is_refused(uri):
    with pytest.raises(ConfigError, match=r"model_uri="):
        parse_model_uri(uri)


def test_well_formed_model_uris_are_read_into_their_parts():
    assert parse_model_uri("runs:/0123abcd") == ("0123abcd", None, None, None)
    assert parse_model_uri("models:/gestures@champion") == ("", "gestures", "champion", None)
    assert parse_model_uri("models:/my model.v1/3") == ("", "my model.v1", None, "3")


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v2", "a/b", "", "x" * 256, "champion!"])
def test_aliases_mlflow_would_refuse_are_refused_first(alias):
    with pytest.raises(ConfigError, match=r"registry\.alias=.* is invalid"):
        check_alias(alias, "registry.alias")


@pytest.mark.parametrize("name", ["a/b", "a:b", "..", "x" * 256, "", " leading"])
def test_model_names_mlflow_would_refuse_are_refused_first(name):
    with pytest.raises(ConfigError, match=r"registry\.model_name=.* is invalid"):
        check_model_name(name, "registry.model_name")


def test_register_with_a_refused_alias_stops_before_training(train_config, tmp_path):
    from gesture_rnn import train

    cfg = train_config("register=true", "registry.alias=latest", "trainer.max_epochs=1")
    with pytest.raises(ConfigError, match=r"registry\.alias='latest' is invalid"):
        train(cfg)
    assert not (tmp_path / "outputs" / "mlflow.db").exists(), "no run was created"


@pytest.mark.integration
def test_predict_refuses_a_run_id_that_is_a_path_before_touching_the_cache(tmp_path):
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "predict.py"), "model_uri=runs:/../..", f"cache_dir={cache}",
         f"tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"input={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: model_uri='runs:/../..': run id '../..' is invalid: it must be letters, digits, _ or -"
    ]
    assert not cache.exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.integration
def test_make_promote_passes_the_version_as_a_value_never_as_code(tmp_path):
    marker = tmp_path / "PWNED"
    crafted = f"1'); import pathlib; pathlib.Path('{marker}').touch(); ('"
    result = subprocess.run(
        ["make", "-s", "promote", f"VERSION={crafted}", f"TRACKING_URI=sqlite:///{tmp_path}/it's here.db"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "VERSION=" in result.stderr and "is invalid: a model version is a whole number" in result.stderr
    assert not marker.exists(), "the value ran as code"
    assert not Path(f"{tmp_path}/it's here.db").exists()


def test_a_tracking_server_that_does_not_answer_fails_in_seconds_not_minutes(tmp_path):
    """predict.py model_uri= and make promote's command ask the server once, briefly, instead of
    MLflow's four minutes of retries."""
    from conftest import free_port

    server = f"http://127.0.0.1:{free_port()}"
    commands = [
        [sys.executable, str(PROJECT_ROOT / "predict.py"), "model_uri=models:/gestures@champion",
         f"tracking_uri={server}", f"cache_dir={tmp_path}/cache", f"input={tmp_path}"],
        [sys.executable, "-m", "gesture_rnn.tracking.registry", "promote", "3", "--tracking-uri", server],
    ]  # fmt: skip
    for command in commands:
        started = time.monotonic()
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and time.monotonic() - started < 60, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: MLflow tracking server {server} (") and "is unreachable" in line


def test_a_target_asking_for_fewer_extras_than_were_installed_runs_no_pip(tmp_path):
    """make serve / promote / test after make install EXTRAS=dev,peers: nothing to install (offline
    they would fail); an extra not yet installed is installed alone. Dry runs (make -n) in a copy."""
    shutil.copy(PROJECT_ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / ".venv"
    venv.mkdir()
    torch_stamp = hashlib.md5(b"torch==2.13.0").hexdigest()[:8]
    for stamp in (f".installed-{torch_stamp}", ".installed-extra-dev", ".installed-extra-peers"):
        (venv / stamp).touch()  # as make install EXTRAS=dev,peers leaves them

    def dry_run(*arguments: str) -> str:
        done = subprocess.run(
            ["make", "-n", *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    for target in (
        ["install"],
        ["install", "EXTRAS=dev,peers"],
        ["test"],
        ["promote", "VERSION=1"],
        ["serve"],
    ):
        assert "pip install" not in dry_run(*target), target
    assert [line for line in dry_run("install", "EXTRAS=dev,docs").splitlines() if "pip" in line] == [
        ".venv/bin/python -m pip install -qq -e '.[docs]'"
    ]
