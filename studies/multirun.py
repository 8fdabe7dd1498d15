"""Resumable ``train.py -m`` sweeps for the benchmarks: every sweep folder holds ``part<n>``
folders, and a continued sweep runs only the values with no finished job yet, in a new part —
a finished job is never trained or overwritten again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
