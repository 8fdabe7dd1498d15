"""A Hydra callback that gives every sweep one MLflow parent run and reports the best trial.

It works with any sweeper and launcher: the parent run id travels to the trials in an
environment variable (inherited by joblib's worker processes), and the best trial is found from
the ``metrics.json`` each trial writes into its own job directory.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from gesture_rnn.commands.cli import release_stderr
from gesture_rnn.tracking.runs import PARENT_RUN_ENV, experiment_id_of, flatten, store_set_up_lock
from gesture_rnn.tracking.trials import best_trial, find_trials

log = logging.getLogger(__name__)

PARENT_RUN_FILE = "mlflow_parent_run_id"
SWEEPER_FILE = "sweeper.txt"  # which sweeper's trials the folder holds
LOCK_FILE = ".sweep.lock"  # held while a sweep runs in the folder
SWEEPER_KEYS = ("_target_", "algo", "seed", "n_trials", "n_jobs", "direction", "max_failure_rate")


def _select(config: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(config, key, default=default)


def _refuse(message: str) -> SystemExit:
    """Hydra turns a callback's exception into a warning and sweeps on: print one line, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def param_name(override_key: str) -> str:
    """An override's key as an MLflow parameter name: without Hydra's ``+``/``++``/``~`` prefix,
    and with characters MLflow refuses in names (``@``, ``,``...) as ``_``."""
    return re.sub(r"[^\w./\- :]", "_", override_key.lstrip("+~"))


def sweep_run_name(config: DictConfig, sweep_dir: Path) -> str:
    """What a sweep is, as the MLflow list shows it: ``sweep · best · hyperopt 16 trials · max
    cv/mean_and_worst/val/acc_best · lr, label_smoothing, mixup, … · <folder>``."""
    choices = _select(config, "hydra.runtime.choices") or {}
    recipe = choices.get("experiment") or choices.get("model/net") or ""
    sweeper = str(choices.get("hydra/sweeper") or "").replace("_", " ")
    trials = _select(config, "hydra.sweeper.n_trials")
    direction = _select(config, "hydra.sweeper.direction")
    objective = _select(config, "optimized_metric")
    space = [str(k).rsplit(".", 1)[-1] for k in (_select(config, "hydra.sweeper.params") or {})]
    swept = ", ".join(space[:3]) + (", …" if len(space) > 3 else "")
    parts = [
        "sweep",
        recipe,
        f"{sweeper} {trials} trials" if trials else sweeper,
        f"{str(direction)[:3]} {objective}" if objective and direction else objective,
        swept,
        sweep_dir.name,
    ]
    return " · ".join(str(p) for p in parts if p)


class MLflowSweepCallback(Callback):
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.client: MlflowClient | None = None
        self.parent_run_id: str | None = None
        self.sweep_dir: Path | None = None
        self.jobs_before = 0  # trial folders already there (a resumed sweep)
        self.status_before: str | None = None  # a resumed parent run's status before this command

    def __getstate__(self) -> dict[str, Any]:
        """Launchers that pickle the task (submitit, joblib) carry the callback: not its lock."""
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    # --- helpers -------------------------------------------------------------------------------
    def _open_parent_run(self, config: DictConfig, sweep_dir: Path) -> None:
        mlflow_cfg = _select(config, "logger.mlflow")
        if not self.enabled or mlflow_cfg is None:
            return
        with store_set_up_lock(mlflow_cfg.tracking_uri):
            self.client = MlflowClient(mlflow_cfg.tracking_uri)
            experiment_id = experiment_id_of(
                self.client, mlflow_cfg.experiment_name, mlflow_cfg.get("artifact_location")
            )
        id_file = sweep_dir / PARENT_RUN_FILE
        self.jobs_before = self._jobs_started()
        if id_file.exists():  # a resumed sweep continues its parent run
            self.parent_run_id = id_file.read_text().strip()
            self.status_before = self.client.get_run(self.parent_run_id).info.status
            self.client.update_run(self.parent_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                experiment_id, run_name=sweep_run_name(config, sweep_dir), tags={"sweep_dir": str(sweep_dir)}
            )
            self.parent_run_id = run.info.run_id
            sweep_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(self.parent_run_id)
            sweeper = {f"sweeper.{k}": _select(config, f"hydra.sweeper.{k}") for k in SWEEPER_KEYS}
            space = flatten(OmegaConf.to_container(_select(config, "hydra.sweeper.params") or {}), "space.")
            for override in config.hydra.overrides.task:
                key, _, value = override.partition("=")
                key = param_name(key)
                space.pop(f"space.{key}", None)
                kind = "deleted" if override.startswith("~") else "space" if "(" in value else "fixed"
                space[f"{kind}.{key}"] = value
            params = {**sweeper, **space, "optimized_metric": _select(config, "optimized_metric")}
            for key, value in params.items():
                self.client.log_param(self.parent_run_id, key, str(value)[:6000])
        os.environ[PARENT_RUN_ENV] = self.parent_run_id
        atexit.register(self._fail_if_still_running)

    def _fail_if_still_running(self) -> None:
        """A sweep that crashed never reaches on_multirun_end: do not leave its parent RUNNING.
        One that stopped before any trial (e.g. the sweeper refused its folder) leaves no FAILED
        parent: a new parent run is deleted, a resumed one gets its earlier status back."""
        if self.client is None or self.parent_run_id is None:
            return
        try:
            if self.client.get_run(self.parent_run_id).info.status != "RUNNING":
                return
            if self._jobs_started() > self.jobs_before:
                self.client.set_terminated(self.parent_run_id, "FAILED")
            elif self.status_before is not None:  # a resumed sweep that ran nothing: as it was
                self.client.set_terminated(self.parent_run_id, self.status_before)
            else:
                self.client.delete_run(self.parent_run_id)
                (self.sweep_dir / PARENT_RUN_FILE).unlink(missing_ok=True)
        except Exception as err:
            log.warning("Could not close the sweep's MLflow run %s: %s", self.parent_run_id, err)

    def _jobs_started(self) -> int:
        return sum(1 for _ in self.sweep_dir.glob("*/.hydra")) if self.sweep_dir is not None else 0

    def _register(self, config: DictConfig, best: dict[str, Any], metric: str) -> None:
        """The best trial's model -> a new version of registry.model_name, registry.alias moved."""
        from gesture_rnn.errors import ConfigError
        from gesture_rnn.tracking.registry import register_run

        name = str(_select(config, "registry.model_name", "gestures"))
        alias = str(_select(config, "registry.alias", "candidate"))
        if not best["mlflow_run_ids"] or not _select(config, "log_model", True):
            print("  not registered: the trials logged no MLflow model (log_model=false)")
            return
        key, _ = reported_test_metric(best["metrics"])
        tags = {metric: best["metrics"][metric], key: best["metrics"].get(key, math.nan),
                "sweep_run_id": self.parent_run_id, "sweep_dir": str(self.sweep_dir),
                "trial": " ".join(best["overrides"])}  # fmt: skip
        try:
            version = register_run(self.client, best["mlflow_run_ids"][0], name, alias, tags)
        except (ConfigError, MlflowException) as err:
            print(f"  not registered: {err}")
            return
        print(f"  registered as {name} version {version}, alias {alias}: models:/{name}@{alias}")
        self.client.set_tag(self.parent_run_id, "registered_model_version", f"{name}/{version}")

    # --- Hydra callback hooks -------------------------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()  # composed; trials may run in other processes and never release it
        if _select(config, "register"):  # a name MLflow would refuse: before any trial, not after all
            from gesture_rnn.errors import ConfigError
            from gesture_rnn.tracking.registry import check_alias, check_model_name

            try:
                check_model_name(_select(config, "registry.model_name"), "registry.model_name")
                check_alias(_select(config, "registry.alias"), "registry.alias")
            except ConfigError as err:  # Hydra turns a callback's exception into a warning
                print(f"error: {err}", file=sys.stderr)
                raise SystemExit(2) from None
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self._claim_folder(config, self.sweep_dir)
        try:
            self._open_parent_run(config, self.sweep_dir)
        except MlflowException as err:  # not a warning and un-nested trials: stop, close the run
            self._fail_if_still_running()
            raise _refuse(f"the sweep's MLflow parent run could not be set up: {err.message}") from None

    def _claim_folder(self, config: DictConfig, sweep_dir: Path) -> None:
        """One sweep per folder: a second sweep running there, or a new sweep (another sweeper, or
        one not resuming) in a folder that holds trials, would overwrite them — refused up front."""
        import fcntl

        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._lock = (sweep_dir / LOCK_FILE).open("a")  # released when this process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refuse(
                f"another sweep is running in {sweep_dir}; choose another hydra.sweep.dir"
            ) from None
        sweeper = str(_select(config, "hydra.sweeper._target_"))
        record = sweep_dir / SWEEPER_FILE
        jobs = self._jobs_started()
        if jobs:
            earlier = record.read_text().strip() if record.is_file() else "an unknown sweeper"
            if earlier != sweeper:
                raise _refuse(f"{sweep_dir} holds {jobs} trials of {earlier}; a {sweeper} sweep there "
                              "would overwrite them: choose another hydra.sweep.dir")  # fmt: skip
            if not _select(config, "hydra.sweeper.resume", False):
                resumable = " or pass hydra.sweeper.resume=true" if "resume" in config.hydra.sweeper else ""
                raise _refuse(f"{sweep_dir} holds {jobs} trials of an earlier sweep; choose another "
                              f"hydra.sweep.dir{resumable}")  # fmt: skip
        record.write_text(sweeper + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = _select(config, "optimized_metric")
        direction = str(_select(config, "hydra.sweeper.direction", "maximize"))
        if isinstance(direction, str) and direction.startswith("Direction."):
            direction = direction.split(".", 1)[1]
        trials = find_trials(sweep_dir)
        best = best_trial(trials, metric, direction) if metric else None
        if best is None:
            print(f"No trial produced {metric}; nothing to report.")
        else:
            key, label = reported_test_metric(best["metrics"])
            print(
                f"\nBest of {len(trials)} trials (selected on {metric}, {direction}): job {best['job']} "
                f"{' '.join(best['overrides'])}\n"
                f"  {metric} = {best['metrics'][metric]:.4f}\n"
                f"  TEST {label} of that trial = {best['metrics'].get(key, math.nan):.4f}  (reported once; "
                f"the test set played no part in the search)"
            )
        if self.client is None or self.parent_run_id is None:
            return
        if best is not None:
            self.client.log_metric(self.parent_run_id, f"best/{metric}", best["metrics"][metric])
            key, _ = reported_test_metric(best["metrics"])
            self.client.log_metric(
                self.parent_run_id, f"best/{key.replace('/', '_')}", best["metrics"].get(key, math.nan)
            )
            for override in best["overrides"]:
                key, _, value = override.partition("=")
                key = param_name(key)
                try:
                    self.client.log_param(self.parent_run_id, f"best.{key}", value)
                except MlflowException:  # params are immutable: a resumed sweep found a new best
                    self.client.set_tag(self.parent_run_id, f"best.{key}", value)
            self.client.set_tag(self.parent_run_id, "best_trial_run_id", ",".join(best["mlflow_run_ids"]))
            if config.get("register"):  # only when asked, as train.py register=true
                self._register(config, best, metric)
        self.client.log_metric(self.parent_run_id, "trials_finished", len(trials))
        results = sweep_dir / "optimization_results.yaml"
        if results.exists():
            self.client.log_artifact(self.parent_run_id, str(results))
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        os.environ.pop(PARENT_RUN_ENV, None)


def reported_test_metric(metrics: dict[str, float]) -> tuple[str, str]:
    """The test figure a trial is reported by: a classifier's accuracy, a spotter's event F1 (on
    streams of the construction it never trained on)."""
    if "test/event_f1" in metrics and "test/acc" not in metrics:
        return "test/event_f1", "event F1"
    return "test/acc", "accuracy"
