"""MLflow bookkeeping: the run is created here (with its tags) and handed to Lightning's
MLFlowLogger by id, so nothing reaches into the logger's private state or the process-global
tracking URI; params, artifacts and the final status go through the logger's client."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gesture_rnn.config.resolvers import PROJECT_ROOT
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.nets import NETS
from gesture_rnn.tracking.reachable import check_server

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger, MLFlowLogger
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# Set by the sweep callback: every trial's run becomes a child (mlflow.parentRunId) of this run.
PARENT_RUN_ENV = "GESTURE_RNN_PARENT_RUN_ID"
RUN_ID_FILE = "mlflow_run_id.txt"  # in a run folder: a resumed run continues this MLflow run
UI_ADDRESS = "http://127.0.0.1:5000"  # `make ui`'s default
# MLflow 3's UI opens an experiment by its kind (model training: runs, not GenAI traces); from its
# home page and a run's own link only ``workflowType`` in the address decides
WORKFLOW = "workflowType=machine_learning"
# A view of the runs table kept in the experiment as MLflow's "share view" keeps one (its tag,
# opened by ``viewStateShareKey``): the accuracy columns shown and the run names wide enough to read
RUNS_VIEW_KEY = "gesture_rnn"
RUNS_VIEW = {
    "selectedColumns": ["attributes.`Source`", "metrics.`test/acc`", "metrics.`val/acc_best`"],
    "columnWidths": {"attributes.`Run Name`": 440},
}
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    f"mlflow.sharedViewState.{RUNS_VIEW_KEY}": json.dumps(RUNS_VIEW),
}


def git_commit(cwd: Path = PROJECT_ROOT) -> str:
    """The checked-out commit (with a ``-dirty`` suffix for uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"net": {"hidden": 64}}}`` -> ``{"model.net.hidden": 64}``; lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def is_mlflow_node(node: Any) -> bool:
    """A logger config node that builds Lightning's MLFlowLogger."""
    return node is not None and str(node.get("_target_", "")).endswith("MLFlowLogger")


def mlflow_loggers(loggers: Iterable[Logger]) -> list[MLFlowLogger]:
    from lightning.pytorch.loggers import MLFlowLogger

    return [logger for logger in loggers if isinstance(logger, MLFlowLogger)]


def check_tracking_servers(cfg: DictConfig, timeout_s: float = 5.0) -> None:
    """Fail before any work if a configured MLflow server does not answer (MLflow itself would
    retry for minutes, then fail after training)."""
    for name, node in (cfg.get("logger") or {}).items():
        if is_mlflow_node(node):
            check_server(str(node.get("tracking_uri") or ""), f"logger.{name}.tracking_uri", timeout_s)


def check_resumable_run(cfg: DictConfig, run_id: str | None, checkpoint: Path) -> None:
    """A resumed run continues its MLflow run: the configured store must hold it (another store
    would fail after loading, and leave files behind)."""
    if not run_id:
        return
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    for name, node in (cfg.get("logger") or {}).items():
        if not is_mlflow_node(node):
            continue
        uri = str(node.get("tracking_uri") or "")
        try:
            if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
                raise MlflowException("no such store")  # not created by asking
            MlflowClient(uri).get_run(run_id)
        except MlflowException:
            raise ConfigError(
                f"ckpt_path={checkpoint} continues MLflow run {run_id}, which the store {uri} "
                f"(logger.{name}.tracking_uri) does not hold; resume with that run's tracking store, "
                "or logger=none"
            ) from None


@contextmanager
def store_set_up_lock(tracking_uri: str) -> Iterator[None]:
    """One process at a time sets up a local sqlite store (its tables, their migrations, the
    experiment): two runs starting together on a new store — two users, a parallel sweep's first
    trials — would otherwise race ("table _alembic_tmp_tags already exists", "duplicate column")."""
    if not str(tracking_uri).startswith("sqlite:///"):
        yield
        return
    import fcntl

    store = Path(str(tracking_uri)[len("sqlite:///") :])
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(store.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_id_of(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, created (with its artifact location) if it does not exist yet."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location, tags=EXPERIMENT_TAGS)
    for key, value in EXPERIMENT_TAGS.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def create_run(
    tracking_uri: str, experiment_name: str, artifact_location: str | None, tags: Mapping[str, str]
) -> str:
    """A new RUNNING run (its experiment created if needed); the caller finishes it."""
    from mlflow import MlflowClient

    with store_set_up_lock(tracking_uri):
        client = MlflowClient(tracking_uri)
        experiment_id = experiment_id_of(client, experiment_name, artifact_location)
    return client.create_run(experiment_id, tags=dict(tags), run_name=tags.get("mlflow.runName")).info.run_id


def store_artifact_location(tracking_uri: str) -> str | None:
    """Where a report's run keeps its artifacts: ``mlartifacts/`` beside a sqlite store, as
    training runs do; a server or another store decides for itself (None)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return str(Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts")


@contextmanager
def finished_run(
    tracking_uri: str, experiment_name: str, artifact_location: str | None, tags: Mapping[str, str]
) -> Iterator[tuple[MlflowClient, str]]:
    """A new run for code outside training (reports, personalisation): yields (client, run id);
    the run ends FINISHED, or FAILED if the block raises — never left RUNNING."""
    from mlflow import MlflowClient

    run_id = create_run(tracking_uri, experiment_name, artifact_location, tags)
    client = MlflowClient(tracking_uri)
    try:
        yield client, run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


@contextmanager
def report_run(
    tracking_uri: str, experiment_name: str, run_name: str, command: str, artifacts: Iterable[Path]
) -> Iterator[tuple[MlflowClient, str]]:
    """A finished run for a generated report: tagged with the command and commit, its files
    (report, plot) logged as artifacts once the block has logged its metrics."""
    tags = {"mlflow.runName": run_name, "command": command, **source_tags(command.split()[-1])}
    location = store_artifact_location(tracking_uri)
    with finished_run(tracking_uri, experiment_name, location, tags) as (client, run_id):
        yield client, run_id
        for path in artifacts:
            client.log_artifact(run_id, str(path))


def _create_run(node: DictConfig, tags: Mapping[str, str]) -> str:
    return create_run(node.tracking_uri, node.experiment_name, node.get("artifact_location"), tags)


def build_loggers(cfg: DictConfig, tags: Mapping[str, str], run_id: str | None = None) -> list[Logger]:
    """Every logger of ``cfg.logger``; an MLflow logger gets a run created here with ``tags``
    (or continues ``run_id``, a resumed run's). Only the main process creates the run: under
    DDP the other ranks' loggers never touch MLflow (Lightning logs from rank zero only)."""
    from lightning.pytorch.utilities import rank_zero_only

    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node is None or "_target_" not in node:
            continue
        if is_mlflow_node(node) and rank_zero_only.rank == 0:
            loggers.append(instantiate(node, run_id=run_id or _create_run(node, tags)))
        else:
            loggers.append(instantiate(node))
    return loggers


def run_ids(loggers: Iterable[Logger]) -> list[str]:
    return [logger.run_id for logger in mlflow_loggers(loggers)]


def remember_run_id(loggers: Iterable[Logger], path: Path) -> None:
    """Write the MLflow run id into the run folder: a resumed run continues that MLflow run."""
    if ids := run_ids(loggers):
        path.write_text(ids[0] + "\n")


def run_params(cfg: DictConfig) -> dict[str, Any]:
    """Every resolved setting, flattened (``model.net.hidden``), plus ``model.family`` (gru, lstm,
    ...): what metrics.json records and every MLflow run gets as params."""
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    target = params.get("model.net._target_")
    if target in NETS:
        params["model.family"] = net_family(target)
    return params


def net_family(target: str) -> str:
    """``gesture_rnn.models.nets.GRUNet`` -> ``gru``; another class by its own name."""
    return NETS[target].family if target in NETS else str(target).rsplit(".", 1)[-1]


def source_tags(source: str) -> dict[str, str]:
    """What the UI's Source column shows: the command that made the run, at its commit."""
    return {
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": git_commit(),
    }


def run_tags(cfg: DictConfig, data_md5: str | None, net: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A run's tags; ``net``: the network's settings when they are not ``cfg.model.net`` (evaluate)."""
    tags = {
        **source_tags(f"{cfg.get('task_name') or 'train'}.py"),
        "data_md5": str(data_md5),
        "data_split": str(cfg.data.split),
        "mlflow.runName": run_name(cfg, net if net is not None else cfg.model.net),
    }
    if parent_run_id := os.environ.get(PARENT_RUN_ENV):
        tags["mlflow.parentRunId"] = parent_run_id  # a trial of a sweep: nest under its parent run
        job = Path(str(OmegaConf.select(cfg, "paths.output_dir", default="") or ""))
        # a cross-validation's fold (folds/U03, or folds/seed1/U03 with cv.seeds) or a sweep's trial
        label = "fold" if "folds" in (job.parent.name, job.parent.parent.name) else "trial"
        tags["mlflow.runName"] = f"{label} {job.name} · {tags['mlflow.runName']}"
    return tags


def run_name(cfg: DictConfig, net: Mapping[str, Any], one_run: bool = True) -> str:
    """What the run is, as the MLflow list shows it: ``watch · conv_gru 96/1 · test U07 · seed 0``
    (the recipe, the family and its shape, the held-out users, the seed); without ``one_run`` (a
    cross-validation's parent, whose folds hold out every user) the recipe and shape only."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    family = net_family(str(net.get("_target_", "")))
    shape = "/".join(str(net[key]) for key in ("hidden", "layers") if key in net) or "/".join(
        str(net[key]) for key in ("d_model", "channels", "layers", "levels") if key in net
    )
    task = None if cfg.get("task_name") in ("train", "tune") else cfg.get("task_name")
    parts = [task, choices.get("experiment"), f"{family} {shape}".strip()]
    if one_run and cfg.data.split == "users":
        parts.append(f"test {','.join(cfg.data.test_users)}")
    if one_run:
        parts.append(f"seed {cfg.get('seed')}")
    return " · ".join(part for part in parts if part)


def log_run_config(loggers: Iterable[Logger], cfg: DictConfig, config_file: Path) -> None:
    """Log every resolved hyperparameter (flattened) and the resolved config as an artifact.

    MLflow params are immutable: a resumed run keeps the values it started with and gets only
    the params it lacks."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(OmegaConf.to_yaml(resolved))
    params = run_params(cfg)
    mlflow = mlflow_loggers(loggers)
    for logger in loggers:
        if logger not in mlflow:
            logger.log_hyperparams(params)
    for logger in mlflow:
        existing = logger.experiment.get_run(logger.run_id).data.params
        logger.log_hyperparams({key: value for key, value in params.items() if key not in existing})
        logger.experiment.log_artifact(logger.run_id, str(config_file))


def log_artifact(loggers: Iterable[Logger], path: Path, artifact_dir: str) -> None:
    """Log a file, or every file of a folder, under ``artifact_dir`` of each MLflow run."""
    for logger in mlflow_loggers(loggers):
        with guarded(logger, f"{artifact_dir}/") as live:
            if live and path.is_dir():
                logger.experiment.log_artifacts(logger.run_id, str(path), artifact_dir)
            elif live:
                logger.experiment.log_artifact(logger.run_id, str(path), artifact_dir)


@contextmanager
def nested_under(run_id: str | None) -> Iterator[None]:
    """Runs created inside nest under ``run_id`` (a cross-validation's folds under its run); the
    sweep's parent, if any, is restored after."""
    if not run_id:
        yield
        return
    before = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = before


@contextmanager
def guarded(logger: Logger, what: str) -> Iterator[bool]:
    """``logger.guard(what)`` where the logger has one (``ResilientMLFlowLogger``), else a call
    that raises as usual."""
    guard = getattr(logger, "guard", None)
    if guard is None:
        yield True
        return
    with guard(what) as live:
        yield live


def terminate_runs(loggers: Iterable[Logger], status: str, replace: tuple[str, ...] = ("RUNNING",)) -> None:
    """Mark each MLflow run whose status is in ``replace`` as ``status`` (FAILED, KILLED)."""
    for logger in mlflow_loggers(loggers):
        if getattr(logger, "lost", None):  # its server is gone: asking again would only stall
            continue
        try:
            if logger.experiment.get_run(logger.run_id).info.status in replace:
                logger.experiment.set_terminated(logger.run_id, status)
        except Exception as err:  # never hide the original error behind a tracking error
            log.warning("Could not mark MLflow run %s as %s: %s", logger.run_id, status, err)


@contextmanager
def marks_failures(loggers: Iterable[Logger], interrupted: Callable[[], bool]) -> Iterator[None]:
    """Leave no run RUNNING: an error marks it FAILED, or KILLED if ``interrupted()`` says the
    run was stopped by Ctrl-C or SIGTERM (Lightning finalises every exception as FAILED and turns
    Ctrl-C into ``sys.exit(1)``, so the caller's interrupt callback tells them apart)."""
    try:
        yield
    except BaseException:
        if interrupted():
            terminate_runs(loggers, "KILLED", replace=("RUNNING", "FAILED"))
        else:
            terminate_runs(loggers, "FAILED")
        raise


@contextmanager
def keeps_global_tracking_uri() -> Iterator[None]:
    """Undo what Lightning's MLFlowLogger does on first use: ``mlflow.set_tracking_uri``, which
    also writes ``os.environ["MLFLOW_TRACKING_URI"]`` — the next run in this process (a sweep
    trial, a test) would resolve ``logger.mlflow.tracking_uri`` to this run's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        if "mlflow" in sys.modules and os.environ.get("MLFLOW_TRACKING_URI") != before:
            import mlflow

            mlflow.set_tracking_uri(before)  # None: unset again, as it was


def runs_table_link(ui: str, experiment_id: str) -> str:
    """The experiment's runs table (model training, not GenAI) with the project's view."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{WORKFLOW}&viewStateShareKey={RUNS_VIEW_KEY}"


def run_location(experiment_id: str, run_id: str, tracking_uri: str) -> str:
    """Where to look at a run: the UI address for a local store, else the server's."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{path}"
    return f"`make ui`, then {UI_ADDRESS}/{path} (store {tracking_uri})"


def run_lines(loggers: Iterable[Logger], tracking_uri: str) -> list[str]:
    """The console's ``MLflow run`` line of each MLflow logger of a command (train, evaluate):
    where to look at it, or what was not logged."""
    lines = []
    for logger in mlflow_loggers(loggers):
        if lost := getattr(logger, "not_logged", lambda: None)():
            lines.append(f"  MLflow run     {logger.run_id}: {lost}")
        else:
            where = run_location(logger.experiment_id, logger.run_id, tracking_uri)
            lines.append(f"  MLflow run     {logger.run_id}: {where}")
    return lines
