"""How the studies train and read their runs.

- Leave-one-user-out: ``train.py cv=users`` in one folder per variant (``run_cv``), which keeps the
  folds finished before — the studies have no fold loop of their own.
- Anything else swept (seeds of the random split): resumable ``train.py -m`` sweeps whose folder
  holds ``part<n>`` folders; a continued sweep runs only the values with no finished job yet, in a
  new part (``run_missing``).
- ``finished_runs`` reads either (and the multirun folders older studies left) — the one reader."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gesture_rnn.tracking.trials import find_trials

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def held_out(run: dict[str, Any]) -> str:
    """The user(s) a leave-one-user-out run held out, as written in its config (U04)."""
    return str(run["config"]["data.test_users"]).strip("[]'\" ")


def finished_runs(folder: Path) -> list[dict[str, Any]]:
    """Every finished run of a study folder: the folds of a ``cv=users`` run (``folds/<user>``),
    and the jobs of the ``part<n>`` multiruns or plain multirun that older studies left there."""
    return find_trials(folder / "folds") + _multirun_jobs(folder)


def _multirun_jobs(folder: Path) -> list[dict[str, Any]]:
    parts = [*sorted(folder.glob("part*")), folder]
    return [run for part in parts if part.is_dir() for run in find_trials(part)]


def finished_values(sweep_dir: Path, key: str) -> dict[str, float]:
    """Swept value (as written on the command line) -> test accuracy of every finished job below
    ``sweep_dir`` (any part)."""
    done = {}
    for metrics_file in sweep_dir.glob("part*/*/metrics.json"):
        record = json.loads(metrics_file.read_text())
        value = record["config"][key]
        done[f"[{','.join(value)}]" if isinstance(value, list) else str(value)] = record["metrics"][
            "test/acc"
        ]
    return done


@dataclass(frozen=True)
class SweepResult:
    done: dict[str, float]  # value -> test accuracy, every part
    left: list[str]  # values still without a finished job
    code: int  # the multirun's exit status (0 when nothing was left to run)
    seconds: float
    log: Path | None  # the multirun's log, None when nothing ran


def run_missing(sweep_dir: Path, overrides: list[str], key: str, values: list[str]) -> SweepResult:
    """Run ``train.py -m <overrides> key=<the values not finished yet>`` in a new part folder."""
    missing = [v for v in values if v not in finished_values(sweep_dir, key)]
    if not missing:
        return SweepResult(finished_values(sweep_dir, key), [], 0, 0.0, None)
    part = sweep_dir / f"part{len(list(sweep_dir.glob('part*')))}"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        "-m",
        *overrides,
        f"{key}={','.join(missing)}",
        f"hydra.sweep.dir={part}",
    ]
    started = time.perf_counter()
    part.mkdir(parents=True)
    log = part / "multirun.log"
    with open(log, "w") as handle:
        code = subprocess.run(command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT).returncode
    done = finished_values(sweep_dir, key)
    return SweepResult(done, [v for v in values if v not in done], code, time.perf_counter() - started, log)


def headline(run: dict[str, Any]) -> float:
    """A finished run's test accuracy, or a spotter's event F1."""
    return run["metrics"].get("test/acc", run["metrics"].get("test/event_f1", float("nan")))


def run_cv(folder: Path, overrides: list[str], users: list[str], echo: bool = False) -> SweepResult:
    """``train.py cv=users cv.users=<users> <overrides>`` in ``folder``. The command keeps the folds
    it finished before (so its summary covers every user); users that an older multirun in the
    folder finished are left out of it, so no user is trained twice. Its output goes to a log in
    the folder and, with ``echo``, to the console too (the progress of a long training)."""
    done = {held_out(run): headline(run) for run in finished_runs(folder)}
    if all(user in done for user in users):
        return SweepResult(done, [], 0, 0.0, None)
    by_multirun = {held_out(run) for run in _multirun_jobs(folder)}
    asked = [user for user in users if user not in by_multirun]
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), "cv=users", f"cv.users=[{','.join(asked)}]",
               *overrides, f"hydra.run.dir={folder}"]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"cv{len(list(folder.glob('cv*.log')))}.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        if not echo:
            code = subprocess.run(
                command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT
            ).returncode
        else:
            with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) as process:  # fmt: skip
                for line in process.stdout:
                    handle.write(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()
            code = process.returncode
    done = {held_out(run): headline(run) for run in finished_runs(folder)}
    return SweepResult(done, [u for u in users if u not in done], code, time.perf_counter() - started, log)
