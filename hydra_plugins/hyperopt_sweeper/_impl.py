"""The hyperopt sweeper's implementation, imported by ``hyperopt_sweeper.HyperoptSweeper`` only
when a sweep runs (Hydra's plugin scan skips ``_`` modules).

A sweeper driven by hyperopt's own suggest functions (ask/tell over ``hyperopt.Trials``). Unlike
``hyperopt.fmin``, it asks for a batch of trials, hands them to Hydra's launcher (so a parallel
launcher runs them at once), and tells hyperopt the results. A trial that raises or returns NaN is
recorded as failed and the sweep goes on; the state is saved to the sweep directory after every
batch, so ``hydra.sweeper.resume=true`` continues where it stopped.

Determinism: the same seed and ``n_jobs`` give the same trials. Serial and batched sweeps agree
only during the random start-up trials (``n_startup_trials``): TPE then models the finished trials,
and a batch's later members are asked while earlier ones are still running.
"""

import dataclasses
import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Trials, rand, tpe
from hyperopt.base import Domain
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hyperopt_sweeper._space import Dimension, parse_search_space, search_record

log = logging.getLogger(__name__)

ALGORITHMS = ("tpe", "random")
DIRECTIONS = ("maximize", "minimize")
STATE_FILE = "hyperopt_trials.json"
STATE_FORMAT = "hyperopt sweep state"
STATE_VERSION = 1
RESULTS_FILE = "optimization_results.yaml"


class SweepStateError(ValueError):
    """The sweep cannot start as asked: a setting out of range, or a sweep folder whose state cannot
    be used (foreign, damaged, or present without resume). One line for the user, exit 2."""


def _plain_number(value: Any) -> Any:
    """numpy scalars as Python numbers, so the state is plain JSON."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class TrialRecord:
    number: int
    params: dict[str, Any]
    value: float | None = None
    error: str | None = None


@dataclass
class SweepState:
    """Everything needed to resume: hyperopt's trials and the readable records."""

    trials: Trials = field(default_factory=Trials)
    records: list[TrialRecord] = field(default_factory=list)
    search: dict[str, Any] | None = None  # the space and fixed overrides (None: saved before)

    @property
    def failures(self) -> list[TrialRecord]:
        return [r for r in self.records if r.error is not None]


class HyperoptSweeperImpl:
    """Settings come from ``HyperoptSweeperConf`` (config.py), the one place their defaults live."""

    def __init__(
        self,
        *,
        algo: str,
        seed: int | None,
        n_trials: int,
        n_jobs: int,
        direction: str,
        max_failure_rate: float,
        resume: bool,
        params: dict[str, Any] | None,
        n_startup_trials: int,
    ) -> None:
        if algo not in ALGORITHMS:
            raise SweepStateError(
                f"hydra.sweeper.algo={algo!r} is invalid: it must be one of {list(ALGORITHMS)}"
            )
        if direction not in DIRECTIONS:
            raise SweepStateError(
                f"hydra.sweeper.direction={direction!r} is invalid: it must be one of {list(DIRECTIONS)}"
            )
        for key, value in (
            ("n_trials", n_trials),
            ("n_jobs", n_jobs),
            ("n_startup_trials", n_startup_trials),
        ):
            if not isinstance(value, int) or value < (0 if key == "n_startup_trials" else 1):
                floor = 0 if key == "n_startup_trials" else 1
                raise SweepStateError(
                    f"hydra.sweeper.{key}={value!r} is invalid: it must be an integer >= {floor}"
                )
        if not 0 <= max_failure_rate <= 1:
            raise SweepStateError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} is invalid: it must be a number in [0, 1]"
            )
        self.algo, self.seed, self.n_trials, self.n_jobs = algo, seed, n_trials, n_jobs
        self.direction, self.max_failure_rate, self.resume = direction, max_failure_rate, resume
        self.params = dict(params or {})
        # hyperopt's own default is 20 random trials before TPE starts: a 20-trial sweep would be
        # pure random search
        self.suggest = (
            functools.partial(tpe.suggest, n_startup_jobs=n_startup_trials) if algo == "tpe" else rand.suggest
        )
        self._unseeded = int(np.random.SeedSequence().entropy % 2**63)  # seed=None: differ per sweep
        self.launcher = None
        self.config: DictConfig | None = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)
        configured = [f"{key}={value}" for key, value in self.params.items()]
        self.search = search_record(configured + list(config.hydra.overrides.task))
        # read (and check) a saved state now, before the sweep starts: a foreign or damaged file
        # stops the command before callbacks open anything (e.g. an MLflow parent run)
        self.state = self._load_or_create_state()

    # --- state -------------------------------------------------------------------------------
    def _load_or_create_state(self) -> SweepState:
        path = self.sweep_dir / STATE_FILE
        if path.exists() and not self.resume:
            raise SweepStateError(
                f"{path} holds trials of an earlier sweep; pass hydra.sweeper.resume=true to continue it "
                "or choose another hydra.sweep.dir"
            )
        if path.exists():
            state = self._load_state_file(path)
            if state.search is not None and state.search != self.search:
                raise SweepStateError(
                    f"{path} is a sweep of another search: {_differences(state.search, self.search)}; "
                    "resume with the same space and fixed overrides, or choose another hydra.sweep.dir"
                )
            log.info("Resuming the sweep in %s: %d trials done", self.sweep_dir, len(state.records))
            return state
        if self.resume:
            log.warning("hydra.sweeper.resume=true but %s does not exist: starting a new sweep", path)
        return SweepState()

    @staticmethod
    def _load_state_file(path: Path) -> SweepState:
        """The state as data (JSON), never code: a sweep folder from someone else cannot run
        anything. Rebuilds hyperopt's Trials from each finished trial's raw values and result."""
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") != STATE_FORMAT or saved.get("version") != STATE_VERSION:
                raise ValueError(f"not a {STATE_FORMAT} of version {STATE_VERSION}")
            records = [TrialRecord(**record) for record in saved["records"]]
            trials = Trials()
            trials.new_trial_ids(len(saved["trials"]))  # the saved trials hold ids 0 .. n-1
            for trial in saved["trials"]:
                tid = int(trial["tid"])
                misc = {"tid": tid, "cmd": None, "workdir": None}
                misc.update(idxs=trial["idxs"], vals=trial["vals"])
                (doc,) = trials.new_trial_docs([tid], [None], [trial["result"]], [misc])
                doc["state"] = JOB_STATE_DONE
                trials.insert_trial_docs([doc])
            trials.refresh()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise SweepStateError(
                f"{path} is not a sweep state this sweeper wrote ({type(err).__name__}: {err}); "
                "move it away to start a new sweep in that folder"
            ) from None
        if len(records) != len(trials.trials):
            count = f"{len(records)} records for {len(trials.trials)} trials"
            raise SweepStateError(f"{path} is damaged: {count}")
        return SweepState(trials, records, saved.get("search"))

    def _save_state(self, state: SweepState) -> None:
        trials = [
            {
                "tid": int(doc["tid"]),
                "idxs": {k: [int(i) for i in v] for k, v in doc["misc"]["idxs"].items()},
                "vals": {k: [_plain_number(x) for x in v] for k, v in doc["misc"]["vals"].items()},
                "result": {k: _plain_number(v) for k, v in doc["result"].items()},
            }
            for doc in state.trials.trials
        ]
        records = [dataclasses.asdict(record) for record in state.records]
        saved = {"format": STATE_FORMAT, "version": STATE_VERSION, "trials": trials, "records": records}
        saved["search"] = self.search
        from gesture_rnn.utils.atomic import write_text_atomically

        write_text_atomically(self.sweep_dir / STATE_FILE, json.dumps(saved, indent=1), "sweep state")

    # --- ask / tell --------------------------------------------------------------------------
    def _trial_seed(self, number: int) -> int:
        """Each trial's suggestion is seeded by (sweep seed, trial number), not by call order, so
        serial, batched (parallel) and resumed sweeps ask for the same trials."""
        entropy = [self._unseeded if self.seed is None else self.seed, number]
        return int(np.random.default_rng(entropy).integers(2**31 - 1))

    def _ask(self, state: SweepState, domain: Domain, count: int) -> list[dict[str, Any]]:
        docs = []
        for _ in range(count):
            (trial_id,) = state.trials.new_trial_ids(1)
            number = len(state.records) + len(docs)
            state.trials.refresh()
            new_docs = self.suggest([trial_id], domain, state.trials, self._trial_seed(number))
            state.trials.insert_trial_docs(new_docs)
            state.trials.refresh()
            docs.extend(new_docs)
        return docs

    @staticmethod
    def _decode(doc: dict[str, Any], space: dict[str, Dimension]) -> dict[str, Any]:
        vals = doc["misc"]["vals"]
        return {key: dim.decode(vals[key][0]) for key, dim in space.items()}

    def _tell(self, state: SweepState, doc: dict[str, Any], record: TrialRecord) -> None:
        if record.error is None:
            loss = -record.value if self.direction == "maximize" else record.value
            doc["result"] = {"status": STATUS_OK, "loss": loss}
        else:
            doc["result"] = {"status": STATUS_FAIL, "error": record.error}
        doc["state"] = JOB_STATE_DONE
        state.records.append(record)

    @staticmethod
    def _outcome(job_return: Any) -> tuple[float | None, str | None]:
        try:
            value = job_return.return_value
        except Exception as err:  # the trial raised: record it, keep sweeping
            return None, f"{type(err).__name__}: {err}"
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None, f"the task returned {value!r}, not a number (is optimized_metric set?)"
        if math.isnan(value):
            return None, "the task returned NaN"
        return value, None

    def sweep(self, arguments: list[str]) -> None:
        assert self.launcher is not None and self.config is not None
        configured = [f"{key}={value}" for key, value in self.params.items()]
        space, fixed = parse_search_space(configured + list(arguments))
        if not space:
            raise ValueError("the hyperopt sweeper needs a search space (hydra.sweeper.params or overrides)")
        domain = Domain(lambda _: 0.0, {key: dim.expression for key, dim in space.items()})
        state = self.state
        self.job_idx = len(state.records)
        log.info(
            "Hyperopt sweeper (%s, seed %s): %d trials, %d at a time",
            self.algo,
            self.seed,
            self.n_trials,
            self.n_jobs,
        )
        while len(state.records) < self.n_trials:
            count = min(self.n_jobs, self.n_trials - len(state.records))
            docs = self._ask(state, domain, count)
            params = [self._decode(doc, space) for doc in docs]
            overrides = [tuple(fixed + [f"{k}={v}" for k, v in p.items()]) for p in params]
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += count
            for doc, trial_params, job_return in zip(docs, params, returns, strict=True):
                value, error = self._outcome(job_return)
                record = TrialRecord(len(state.records), trial_params, value, error)
                if error:
                    log.warning("Trial %d failed: %s", record.number, error)
                self._tell(state, doc, record)
            state.trials.refresh()
            self._save_state(state)
            # the rate is over the whole budget, so one early failure does not end the sweep
            if len(state.failures) > self.max_failure_rate * self.n_trials:
                self._write_results(state)
                raise RuntimeError(
                    f"{len(state.failures)} of {len(state.records)} trials failed (budget "
                    f"{self.n_trials}), more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}; last error: "
                    f"{state.failures[-1].error}"
                )
        self._write_results(state)

    # --- report ------------------------------------------------------------------------------
    def _ranked(self, state: SweepState) -> list[TrialRecord]:
        done = [r for r in state.records if r.error is None]
        return sorted(done, key=lambda r: r.value, reverse=self.direction == "maximize")

    def _write_results(self, state: SweepState) -> None:
        ranked = self._ranked(state)
        best = ranked[0] if ranked else None
        results = {
            "name": "hyperopt",
            "algo": self.algo,
            "direction": self.direction,
            "best_params": best.params if best else None,
            "best_value": best.value if best else None,
            "best_trial": best.number if best else None,
            "n_trials": len(state.records),
            "n_failures": len(state.failures),
            "failures": [{"trial": r.number, "params": r.params, "error": r.error} for r in state.failures],
        }
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS_FILE)
        print(format_ranking(ranked, state.failures))
        if best is not None:
            log.info("Best trial %d: value %.6g, params %s", best.number, best.value, best.params)


def _differences(saved: dict[str, Any], asked: dict[str, Any]) -> str:
    """``key: saved -> asked`` for every swept or fixed override that changed."""
    changes = []
    for part in ("space", "fixed"):
        before, now = saved.get(part, {}), asked.get(part, {})
        for key in sorted(set(before) | set(now)):
            if before.get(key) != now.get(key):
                changes.append(f"{key}: {before.get(key, '(none)')} -> {now.get(key, '(none)')}")
    return ", ".join(changes)


def format_ranking(ranked: list[TrialRecord], failures: list[TrialRecord]) -> str:
    """A table of trials, best first, then the failed ones with their errors."""
    keys = list(ranked[0].params) if ranked else (list(failures[0].params) if failures else [])
    header = ["rank", "trial", "value", *keys]
    rows = [
        [str(i + 1), str(r.number), f"{r.value:.6g}", *(str(r.params[k]) for k in keys)]
        for i, r in enumerate(ranked)
    ]
    rows += [["-", str(r.number), "FAILED", *(str(r.params[k]) for k in keys)] for r in failures]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
