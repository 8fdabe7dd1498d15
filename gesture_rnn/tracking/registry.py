"""The MLflow Model Registry: a run's logged model becomes a version of a registered model with an
alias (``tune.py -m`` registers its best trial, ``train.py register=true`` its own run), and
``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``runs:/<run id>`` name the model that
``predict.py``, ``evaluate.py`` and ``export.py`` use.

The version points at the run's logged ONNX model (what ``mlflow models serve`` serves); the
commands read the run's tested checkpoint (uploaded with every run under ``checkpoints/``,
``weights_only``-safe), downloaded once into ``<cache_dir>/models/<run id>``. Everything goes
through an ``MlflowClient`` for the given URI: the process-global tracking URI is never set.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gesture_rnn.errors import ConfigError, TrackingError

URI_FORMS = "models:/<name>@<alias>, models:/<name>/<version> or runs:/<run id>"

# What MLflow accepts (mlflow.utils.validation), checked here before anything is trained, looked
# up or downloaded: a run id names a folder of the download cache, so it never holds a path.
RUN_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,255}")
ALIAS = re.compile(r"[\w\-]{1,255}")
MODEL_NAME = re.compile(r"[\w][\w .\-]{0,254}")
VERSION = re.compile(r"[1-9][0-9]{0,18}")


def check_run_id(run_id: str, key: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise ConfigError(f"{key}: run id {run_id!r} is invalid: it must be letters, digits, _ or -")
    return run_id


def check_model_name(name: object, key: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{key}={name!r} is invalid: a registered model's name is 1-255 letters, digits, "
            "spaces, _, - or . (no '..'), starting with a letter or digit"
        )
    return name


def check_alias(alias: object, key: str) -> str:
    if (
        not isinstance(alias, str)
        or not ALIAS.fullmatch(alias)
        or alias.lower() == "latest"
        or re.fullmatch(r"[vV][0-9]+", alias)
    ):
        raise ConfigError(
            f"{key}={alias!r} is invalid: an alias is 1-255 letters, digits, _ or -, and not "
            "'latest' or v<number> (MLflow reserves them)"
        )
    return alias


def check_version(version: object, key: str) -> str:
    if not VERSION.fullmatch(str(version)):
        raise ConfigError(f"{key}={version!r} is invalid: a model version is a whole number >= 1")
    return str(version)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None, str | None]:
    """``uri`` -> (run id, model name, alias, version), each checked; exactly one of run id and
    model name is set."""
    key = f"model_uri={uri!r}"
    if uri.startswith("runs:/"):
        return check_run_id(uri[len("runs:/") :].rstrip("/"), key), None, None, None
    if uri.startswith("models:/"):
        rest = uri[len("models:/") :]
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return "", check_model_name(name, key), check_alias(alias, key), None
        if rest.count("/") == 1:
            name, version = rest.split("/")
            return "", check_model_name(name, key), None, check_version(version, key)
    raise ConfigError(f"model_uri={uri!r} is invalid: it must be {URI_FORMS}")


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register_run(client: Any, run_id: str, model_name: str, alias: str, tags: dict[str, Any]) -> str:
    """Register ``run_id``'s logged model as a new version of ``model_name`` (created if needed),
    tagged with ``tags`` and the run's data checksum, and move ``alias`` to it; returns the
    version. ``client``: an ``MlflowClient`` of the run's store."""
    from mlflow.exceptions import MlflowException

    run = client.get_run(run_id)
    logged = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=1
    )
    if not logged:
        raise ConfigError(f"MLflow run {run_id} has no logged model to register (train with log_model=true)")
    try:
        client.create_registered_model(model_name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        model_name,
        source=logged[0].artifact_location,
        run_id=run_id,
        tags={"data_md5": run.data.tags.get("data_md5", ""), **{k: str(v) for k, v in tags.items()}},
        model_id=logged[0].model_id,
    )
    client.set_registered_model_alias(model_name, alias, version.version)
    return str(version.version)


@dataclass(frozen=True)
class ResolvedModel:
    checkpoint: Path  # the run's tested checkpoint, downloaded
    uri: str
    run_id: str
    model_name: str | None = None
    version: str | None = None

    def describe(self) -> dict[str, str | None]:
        """What sidecars, summaries and answers record about the model that answered."""
        return {"model_uri": self.uri, "registered_model": self.model_name, "version": self.version,
                "run_id": self.run_id}  # fmt: skip


def _run_of(client: Any, uri: str) -> tuple[str, str | None, str | None]:
    from mlflow.exceptions import MlflowException

    run_id, name, alias, version = parse_model_uri(uri)
    if name is None:
        return run_id, None, None
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias is not None
            else client.get_model_version(name, version)
        )
    except MlflowException as err:
        raise ConfigError(f"model_uri={uri!r} was not found: {err.message.splitlines()[0]}") from None
    return check_run_id(found.run_id, f"model_uri={uri!r}"), found.name, str(found.version)


def resolve_model(uri: str, tracking_uri: str, cache_dir: str) -> ResolvedModel:
    """The tested checkpoint of the run behind ``uri``, downloaded once (atomically) and reused."""
    parse_model_uri(str(uri))  # refused before MLflow is imported or asked
    client = _client(tracking_uri)
    run_id, name, version = _run_of(client, str(uri))
    target = Path(cache_dir).expanduser() / "models" / run_id
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=target.parent))
        try:
            client.download_artifacts(run_id, "checkpoints", str(scratch))
            (scratch / "checkpoints").rename(target)
        except Exception as err:
            raise ConfigError(
                f"model_uri={uri!r}: the run {run_id} has no checkpoint to load ({err})"
            ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    checkpoints = sorted(target.glob("*.ckpt"))
    if len(checkpoints) != 1:
        raise ConfigError(
            f"model_uri={uri!r}: expected one tested checkpoint in run {run_id}, found {len(checkpoints)}"
        )
    return ResolvedModel(
        checkpoint=checkpoints[0], uri=str(uri), run_id=run_id, model_name=name, version=version
    )


def model_checkpoint(cfg: Any) -> tuple[Any, ResolvedModel | None]:
    """What a command loads: ``ckpt_path`` as given, or the checkpoint behind ``model_uri``
    (with what it resolved to). One of the two, not both."""
    uri = cfg.get("model_uri")
    if not uri:
        return cfg.get("ckpt_path"), None
    if cfg.get("ckpt_path"):
        raise ConfigError("give ckpt_path (a checkpoint file) or model_uri (an MLflow model), not both")
    from gesture_rnn.tracking.reachable import check_server

    check_server(str(cfg.tracking_uri), "tracking_uri")
    resolved = resolve_model(str(uri), str(cfg.tracking_uri), str(cfg.cache_dir))
    return str(resolved.checkpoint), resolved


def main(argv: list[str] | None = None) -> None:
    """``make promote VERSION=3``: move an alias of a registered model to a version. The values
    arrive as arguments, never as code."""
    parser = argparse.ArgumentParser(prog="python -m gesture_rnn.tracking.registry", description=main.__doc__)
    parser.add_argument("command", choices=["promote"])
    parser.add_argument("version")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--name", default="gestures")
    parser.add_argument("--alias", default="champion")
    args = parser.parse_args(argv)
    try:
        version = check_version(args.version, "VERSION")
        from gesture_rnn.tracking.reachable import check_server

        check_server(args.tracking_uri, "TRACKING_URI")
        name, alias = check_model_name(args.name, "MODEL_NAME"), check_alias(args.alias, "ALIAS")
        from mlflow.exceptions import MlflowException

        try:
            _client(args.tracking_uri).set_registered_model_alias(name, alias, version)
        except MlflowException as err:
            raise ConfigError(f"{name} version {version}: {err.message.splitlines()[0]}") from None
    except (ConfigError, TrackingError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"models:/{name}@{alias} -> version {version}")


if __name__ == "__main__":
    main()
