"""Soak: many short trainings back to back; memory, file handles and MLflow runs must not leak.

    python -m bench.soak [--runs 50] [--mode both|in-process|processes] [--data gestures-dataset.zip]

In-process: ``gesture_rnn.train`` called ``--runs`` times in this process (as a notebook or a
sweep's worker would). Processes: ``python train.py`` started ``--runs`` times. Both log to one
MLflow sqlite store. Prints a verdict per mode and exits non-zero if something grew or leaked.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHORT = [
    "trainer.max_epochs=1", "++trainer.limit_train_batches=5", "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2", "console=quiet",
    "trainer.enable_model_summary=false", "model.net.hidden=32",
]  # fmt: skip
# RSS may settle upwards during the first runs (allocator pools, import caches); judge the rest
WARMUP_RUNS = 10
RSS_GROWTH_LIMIT_MB = 20.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def runs_by_status(store: Path) -> dict[str, int]:
    if not store.exists():
        return {}
    with sqlite3.connect(store) as db:
        return dict(db.execute("select status, count(*) from runs group by status").fetchall())


def overrides(root: Path, data: str, index: int) -> list[str]:
    paths = [f"paths.root_dir={root}", f"data.path={data}", f"data.cache_dir={root}/cache"]
    return [*paths, f"seed={index}", *SHORT]


def soak_in_process(root: Path, data: str, runs: int) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import gesture_rnn

    rss, fds, threads = [], [], []
    for index in range(runs):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=overrides(root, data, index), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(root / "in-process" / f"{index:03d}")
            del cfg.hydra
        gesture_rnn.train(cfg)
        gc.collect()
        rss.append(rss_mb())
        fds.append(open_fds())
        threads.append(len(os.listdir("/proc/self/task")))
        print(f"in-process run {index + 1}/{runs}: RSS {rss[-1]:.0f} MB, {fds[-1]} fds", flush=True)
    return {"rss": rss, "fds": fds, "threads": threads}


def soak_processes(root: Path, data: str, runs: int) -> dict:
    """Each run in a fresh ``python train.py``; its own peak RSS comes from wait4's rusage."""
    peaks = []
    for index in range(runs):
        command = [sys.executable, str(ROOT / "train.py"), *overrides(root, data, index)]
        with tempfile.TemporaryFile("w+") as stderr:
            child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                stderr.seek(0)
                raise SystemExit(f"error: train.py run {index} failed:\n{stderr.read()[-2000:]}")
        peaks.append(usage.ru_maxrss / 1024)
        print(f"process run {index + 1}/{runs}: peak RSS {peaks[-1]:.0f} MB", flush=True)
    return {"peaks": peaks}


def verdict_in_process(result: dict) -> tuple[bool, list[str]]:
    rss, fds, threads = result["rss"], result["fds"], result["threads"]
    settled = rss[WARMUP_RUNS:] if len(rss) > WARMUP_RUNS + 1 else rss
    growth = settled[-1] - settled[0]
    ok = growth <= RSS_GROWTH_LIMIT_MB and fds[-1] <= fds[0] + 2 and threads[-1] <= threads[0] + 2
    lines = [
        f"RSS after run 1 / {len(rss) - len(settled) + 1} / {len(rss)}: {rss[0]:.0f} / {settled[0]:.0f} / "
        f"{rss[-1]:.0f} MB (growth after warm-up {growth:+.1f} MB, limit {RSS_GROWTH_LIMIT_MB:.0f})",
        f"open file descriptors after run 1 / {len(fds)}: {fds[0]} / {fds[-1]}",
        f"threads after run 1 / {len(threads)}: {threads[0]} / {threads[-1]}",
    ]
    return ok, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--mode", choices=["both", "in-process", "processes"], default="both")
    parser.add_argument("--data", default=os.environ.get("GESTURES_DATA"))
    args = parser.parse_args()
    if not args.data:
        raise SystemExit("error: pass --data or set GESTURES_DATA to gestures-dataset.zip")
    root = Path(tempfile.mkdtemp(prefix="gesture-soak-"))
    store = root / "outputs" / "mlflow.db"
    report, healthy = [], True
    started = time.perf_counter()
    if args.mode in ("both", "in-process"):
        ok, lines = verdict_in_process(soak_in_process(root, args.data, args.runs))
        healthy &= ok
        report.append(f"in-process, {args.runs} runs: {'OK' if ok else 'LEAK'}")
        report += [f"  {line}" for line in lines]
    if args.mode in ("both", "processes"):
        peaks = soak_processes(root, args.data, args.runs)["peaks"]
        report += [
            f"new processes, {args.runs} runs: OK (every run exited 0)",
            f"  peak RSS per process: first {peaks[0]:.0f} MB, median {statistics.median(peaks):.0f} MB, "
            f"last {peaks[-1]:.0f} MB, max {max(peaks):.0f} MB",
        ]
    statuses = runs_by_status(store)
    expected = args.runs * (2 if args.mode == "both" else 1)
    runs_ok = statuses.get("FINISHED", 0) == expected and sum(statuses.values()) == expected
    healthy &= runs_ok
    report.append(f"MLflow runs by status: {statuses} (expected {expected} FINISHED, none RUNNING)")
    leftovers = [p for p in (root / "cache").rglob("*") if "tmp" in p.name or p.name.startswith(".")]
    healthy &= not leftovers
    report.append(f"temporary files left in the cache: {len(leftovers)}")
    report.append(f"total time {time.perf_counter() - started:.0f} s; store {store}")
    print("\n".join(report))
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
