"""``python train.py cv=users`` (or ``cv=kfold cv.folds=5``): every fold a train.py run, one MLflow
parent run with the folds nested under it, and one summary — what the command prints, logs and
returns (so ``tune.py -m cv=users`` optimises the cross-validated mean of ``optimized_metric``).

A fold that fails is recorded FAILED and named; the means are then NaN rather than an average of
fewer folds. An interrupted cross-validation continues where it stopped when run again in its
folder (``hydra.run.dir=<its folder>``): finished folds (``folds/<name>/metrics.json``) are kept.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from gesture_rnn.config.checks import validate_config
from gesture_rnn.errors import ConfigError, GestureRNNError
from gesture_rnn.tracking import runs
from gesture_rnn.training.cross_validation import Fold, Summary, folds
from gesture_rnn.utils.atomic import write_text_atomically

log = logging.getLogger(__name__)

SUMMARY_FILE = "cv.md"


def fold_config(cfg: DictConfig, fold: Fold, output_dir: Path) -> DictConfig:
    """``cfg`` as one fold's train.py run: the fold's data settings and seed, its own folder, no cv."""
    data = fold.data
    seed = fold.seed
    run = copy.deepcopy(cfg)  # interpolations kept: paths below output_dir follow the fold's
    with open_dict(run):
        run.cv = None
        run.register = False  # a fold is not a model to serve: neither registered nor logged as
        run.log_model = False  # one (its checkpoint is still uploaded; ~2 s of a fold's ~15)
        run.figures = False  # cv.png summarises the folds; their tables are still written
        run.print_summary = False  # the cv table says it, once
        run.paths.output_dir = str(output_dir)
        if seed is not None:  # cv.seeds: this repetition's seed (split, initialisation, batches)
            run.seed = seed
        for key, value in data.items():
            run.data[key] = value
    return run


def worker_count(cfg: DictConfig) -> int:
    """``cv.jobs``, or for null (the default) two folds at a time when they train on the CPU — small
    networks use two cores poorly, two processes use them well (reports/cv.md) — and one on an
    accelerator or with several devices per fold."""
    jobs = cfg.cv.get("jobs")
    if jobs is None:
        accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
        devices = OmegaConf.select(cfg, "trainer.devices", default=1)
        on_cpu = accelerator == "cpu" or (accelerator == "auto" and not _accelerator_present())
        return min(2, os.cpu_count() or 1) if on_cpu and devices in (1, "1", "auto") else 1
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ConfigError(f"cv.jobs={jobs!r} is invalid: it must be an integer in [1, 64] or null (auto)")
    return jobs


def _accelerator_present() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def cross_validate(cfg: DictConfig) -> dict[str, float]:
    """Train every fold (those finished in this folder before are kept), then summarise."""
    started = time.perf_counter()
    plan = folds(cfg.cv)
    if cfg.get("ckpt_path"):
        raise ConfigError("cv= trains every fold from scratch; to continue one, run it again in its folder: "
                          "hydra.run.dir=<its folder> (finished folds are kept)")  # fmt: skip
    if cfg.get("register"):
        raise ConfigError("register=true registers one model; cv= trains one per fold: register a single run")
    jobs = worker_count(cfg)
    validate_config(cfg)  # the folds' shared settings: refused once, before any fold or run
    output_dir = Path(cfg.paths.output_dir)
    keep_one_cross_validation(cfg, output_dir)
    summary = Summary({}, plan={fold.name: fold for fold in plan})
    todo = []
    for fold in plan:
        record = output_dir / "folds" / fold.name / "metrics.json"
        if record.is_file():  # finished before an interruption: kept, not trained again
            summary.results[fold.name] = json.loads(record.read_text())["metrics"]
            log.info("Fold %s: finished before, kept", fold.name)
        else:
            summary.results[fold.name] = None  # in plan order; filled in as folds finish
            _discard_unfinished(cfg, output_dir / "folds" / fold.name)
            todo.append(fold)
    jobs = min(jobs, max(1, len(todo)))
    # the workers start (and import Lightning) while this process sets up the parent run
    with _worker_pool(jobs) as pool:
        seeds = f"seeds {','.join(map(str, summary.seeds))}" if summary.seeds else f"seed {cfg.get('seed')}"
        parent = _parent_run(
            cfg,
            output_dir,
            plan_name=f"cv {cfg.cv.kind} ({len(plan) // max(1, len(summary.seeds))} folds) × {seeds}",
        )
        try:
            if pool is not None:
                _run_in_parallel(cfg, todo, output_dir, parent, pool, jobs, summary)
            else:
                _run_one_at_a_time(cfg, todo, output_dir, parent, summary)
        except BaseException:
            status = "FAILED" if isinstance(sys.exc_info()[1], GestureRNNError) else "KILLED"
            _end_parent(cfg, parent, status)
            raise
    metrics = summary.metrics()
    # this command's wall time (folds kept from before an interruption cost nothing here)
    metrics["time/wall_s"] = time.perf_counter() - started
    table = summary.table()
    write_text_atomically(
        output_dir / SUMMARY_FILE, f"# Cross-validation ({cfg.cv.kind})\n\n{table}\n", "summary"
    )
    plot = _plot(summary, output_dir / "cv.png")
    record = {"metrics": metrics, "mlflow_run_ids": [parent] if parent else [], "folds": summary.errors}
    write_text_atomically(output_dir / "metrics.json", json.dumps(record, default=str), "run record")
    if parent:
        _log_parent(cfg, parent, metrics, [output_dir / SUMMARY_FILE, plot], failed=bool(summary.failed))
    units = len(plan) // max(1, len(summary.seeds))
    repeats = f" × {len(summary.seeds)} seeds" if summary.seeds else ""
    print(f"\nCross-validation, {cfg.cv.kind}: {units} folds{repeats}\n{table}")
    if summary.failed:
        print(f"  FAILED folds: {', '.join(summary.failed)} — the means are NaN (see the table)")
    print(f"  run folder     {output_dir}")
    if parent:
        where = runs.run_location(_experiment_of(cfg, parent), parent, _mlflow_node(cfg).tracking_uri)
        print(f"  MLflow run     {parent} (folds nested): {where}")
    return metrics


SETTINGS_FILE = "cv_settings.json"
# what does not change what a fold trains: where things go, how they are shown, how fast
VOLATILE = ("cv.jobs", "data.path", "data.cache_dir", "data.download", "trainer.enable_progress_bar",
            "trainer.enable_model_summary", "callbacks.progress_bar", "print_summary")  # fmt: skip


def keep_one_cross_validation(cfg: DictConfig, output_dir: Path) -> None:
    """A cross-validation folder keeps the settings its folds trained under (``cv_settings.json``);
    run again with others, it is refused naming what changed — reused folds would otherwise
    describe another cross-validation than the parent run's parameters say."""
    sections = ("seed", "cv.", "data.", "model.", "trainer.", "callbacks.")
    params = runs.run_params(cfg)
    chosen = {k: v for k, v in params.items() if k.startswith(sections) and not k.startswith(VOLATILE)}
    settings = json.loads(json.dumps(chosen, default=str))
    record = output_dir / SETTINGS_FILE
    if record.is_file():
        saved = json.loads(record.read_text())
        keys = sorted(set(saved) | set(settings))
        changed = [f"{k}: {saved.get(k, '(none)')} -> {settings.get(k, '(none)')}" for k in keys
                   if saved.get(k) != settings.get(k)]  # fmt: skip
        if changed:
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise ConfigError(
                f"{output_dir} holds a cross-validation with other settings ({shown}); run it in a new "
                "folder (hydra.run.dir=...) or with its own settings"
            )
        return
    write_text_atomically(
        record, json.dumps(settings, default=str, sort_keys=True), "cross-validation settings"
    )


def _discard_unfinished(cfg: DictConfig, fold_dir: Path) -> None:
    """A fold stopped before it finished (killed, or its machine went down): its MLflow run is
    marked KILLED (never left RUNNING for ever) and its folder cleared, so it trains afresh."""
    if not fold_dir.is_dir():
        return
    id_file = fold_dir / runs.RUN_ID_FILE
    node = _mlflow_node(cfg)
    if id_file.is_file() and node is not None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(node.tracking_uri)
        run_id = id_file.read_text().strip()
        try:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, "KILLED")
        except MlflowException:
            pass  # a run of another store, or deleted: nothing to mark
    shutil.rmtree(fold_dir, ignore_errors=True)
    log.info("Fold %s: unfinished before, trained again", fold_dir.name)


def _failed(summary: Summary, name: str, err: BaseException) -> None:
    summary.results[name] = None
    summary.errors[name] = f"{type(err).__name__}: {err}".splitlines()[0]
    log.error("Fold %s failed: %s", name, summary.errors[name])


def _run_one_at_a_time(
    cfg: DictConfig, todo: list[Any], output_dir: Path, parent: str | None, summary: Summary
) -> None:
    from gesture_rnn.commands.train import train

    for number, fold in enumerate(todo, start=1):
        print(f"\nfold {fold.name} ({number}/{len(todo)} to train)")
        fold_cfg = fold_config(cfg, fold, output_dir / "folds" / fold.name)
        try:
            with runs.nested_under(parent):
                summary.results[fold.name] = train(fold_cfg)
        except GestureRNNError:  # the command line's error, the same for every fold: one line
            raise
        except Exception as err:  # recorded and named, the other folds go on
            _failed(summary, fold.name, err)


def _train_fold(fold_cfg: DictConfig, parent: str | None) -> dict[str, float]:
    """One fold in a worker process (``cv.jobs`` > 1): its run nested under ``parent``."""
    from gesture_rnn.commands.train import train

    with runs.nested_under(parent):
        return train(fold_cfg)


def _import_training() -> None:
    """A worker's first task: the training imports (Lightning, ~10 s on a small CPU), done while
    the main process is still setting up; its console as quiet as the command's."""
    from gesture_rnn.utils.console import quiet_libraries

    quiet_libraries()
    import gesture_rnn.commands.train  # noqa: F401


@contextmanager
def _worker_pool(jobs: int) -> Iterator[Any]:
    """``jobs`` spawned worker processes already importing the training code, or None for one
    fold at a time (trained in this process)."""
    if jobs == 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in range(jobs):
            pool.submit(_import_training)
        yield pool


def _run_in_parallel(
    cfg: DictConfig,
    todo: list[Any],
    output_dir: Path,
    parent: str | None,
    pool: Any,
    jobs: int,
    summary: Summary,
) -> None:
    """``jobs`` folds at a time, each in its own process with a fair share of the cores (small
    networks use two cores poorly; two folds at once use them well)."""
    from concurrent.futures import as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    configs = {}
    for fold in todo:
        fold_cfg = fold_config(cfg, fold, output_dir / "folds" / fold.name)
        with open_dict(fold_cfg):
            fold_cfg.num_threads = threads
            if OmegaConf.select(fold_cfg, "callbacks.progress_bar"):  # folds share the console: lines
                fold_cfg.callbacks.progress_bar.lines = True
                fold_cfg.callbacks.progress_bar.prefix = f"fold {fold.name} · "
        OmegaConf.resolve(fold_cfg)  # the worker has no Hydra context to resolve it in
        configs[fold.name] = fold_cfg
    print(f"\n{len(todo)} folds, {jobs} at a time ({threads} thread(s) each)")
    futures = {pool.submit(_train_fold, configs[f.name], parent): f.name for f in todo}
    try:
        for future in as_completed(futures):
            name = futures[future]
            try:
                summary.results[name] = future.result()
                print(f"fold {name}: test accuracy {summary.results[name].get('test/acc', math.nan):.4f}")
            except GestureRNNError:
                raise
            except Exception as err:
                _failed(summary, name, err)
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _mlflow_node(cfg: DictConfig) -> Any:
    return next((node for node in (cfg.get("logger") or {}).values() if runs.is_mlflow_node(node)), None)


def _parent_run(cfg: DictConfig, output_dir: Path, plan_name: str) -> str | None:
    """The cross-validation's own MLflow run (nested under a sweep's, in a sweep), continued when
    the folder already has one."""
    node = _mlflow_node(cfg)
    if node is None:
        return None
    id_file = output_dir / runs.RUN_ID_FILE
    if id_file.is_file():
        return id_file.read_text().strip()
    tags = runs.run_tags(cfg, None)
    # what it is: every fold of a kind, the recipe, the seeds (not one fold's test user and seed)
    prefix = f"{tags['mlflow.runName'].split(' · ', 1)[0]} · " if runs.PARENT_RUN_ENV in os.environ else ""
    tags["mlflow.runName"] = f"{prefix}{plan_name} · {runs.run_name(cfg, cfg.model.net, one_run=False)}"
    tags.pop("data_md5")
    run_id = runs.create_run(node.tracking_uri, node.experiment_name, node.get("artifact_location"), tags)
    output_dir.mkdir(parents=True, exist_ok=True)
    id_file.write_text(run_id + "\n")
    from mlflow import MlflowClient

    client = MlflowClient(node.tracking_uri)
    for key, value in runs.run_params(cfg).items():
        client.log_param(run_id, key, str(value)[:6000])
    return run_id


def _experiment_of(cfg: DictConfig, run_id: str | None) -> str:
    if run_id is None:
        return ""
    from mlflow import MlflowClient

    return MlflowClient(_mlflow_node(cfg).tracking_uri).get_run(run_id).info.experiment_id


def _log_parent(
    cfg: DictConfig, run_id: str, metrics: dict[str, float], files: list[Path], failed: bool
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(_mlflow_node(cfg).tracking_uri)
    for key, value in metrics.items():
        if not math.isnan(value):
            client.log_metric(run_id, key, value)
    for path in files:
        if path is not None and path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")


def _end_parent(cfg: DictConfig, run_id: str | None, status: str) -> None:
    if run_id:
        from mlflow import MlflowClient

        MlflowClient(_mlflow_node(cfg).tracking_uri).set_terminated(run_id, status)


def _plot(summary: Summary, path: Path) -> Path | None:
    """Each fold's test accuracy as a bar, the mean as a line."""
    finished = {name: m["test/acc"] for name, m in summary.finished.items() if "test/acc" in m}
    if not finished:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * len(summary.results), 3.2))
    names = list(summary.results)
    axes.bar(
        names,
        [finished.get(n, 0.0) for n in names],
        color=["#4c72b0" if n in finished else "#c44e52" for n in names],
    )
    mean = sum(finished.values()) / len(finished)
    axes.axhline(mean, color="black", linewidth=1, label=f"mean {mean:.4f}")
    axes.set_ylim(max(0.0, min(finished.values()) - 0.05), 1.0)
    axes.set_ylabel("test accuracy")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
