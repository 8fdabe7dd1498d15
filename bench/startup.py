"""Where ``python train.py``'s start-up goes, up to its first training step, measured side by side
with the imports it cannot avoid: ``python -m bench.startup`` -> reports/startup.md.

Each round runs, one after another (never two at once): ``import torch``, ``import lightning``,
``import mlflow`` (with its sqlite store), ``train.py logger=none`` and ``train.py`` (MLflow, a
store that exists) to the first training step. Rounds interleave the commands, so a machine that
changes speed during the measurement moves them together; the medians are reported. One more
``train.py`` with ``-X importtime`` says which packages the imports are.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gesture_rnn.data.source import dataset_on_disk
from gesture_rnn.errors import DataError
from gesture_rnn.utils.atomic import write_text_atomically
from studies.reports import machine

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = {
    "import torch": "import torch",
    "import lightning": "import lightning",
    "import mlflow (+ its sqlite store)": "import mlflow, mlflow.store.tracking.sqlalchemy_store",
    "import lightning, then mlflow": "import lightning, mlflow, mlflow.store.tracking.sqlalchemy_store",
    "import lightning and mlflow in two threads": (
        "import threading; store = 'mlflow.store.tracking.sqlalchemy_store'; "
        "t = threading.Thread(target=__import__, args=(store,)); t.start(); import lightning; t.join()"
    ),
}


def train_command(workdir: Path, data: str, marker: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "train.py"), f"paths.root_dir={workdir}", f"data.path={data}",
        f"data.cache_dir={workdir / 'cache'}", "trainer.max_epochs=1", "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1", "console=quiet", "log_model=false",
        "+callbacks.first_step._target_=bench.timing.FirstStepTimer", f"+callbacks.first_step.path={marker}",
        *extra,
    ]  # fmt: skip


def seconds_to_first_step(command: list[str], marker: Path) -> float:
    start = time.time()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command[:2])} failed:\n{result.stderr[-2000:]}")
    return float(marker.read_text()) - start


def seconds_to_import(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - start


def import_breakdown(command: list[str]) -> list[tuple[str, float]]:
    """What ``train.py`` spends importing (``-X importtime``): each big package with everything it
    pulls in, and this project's own modules by themselves."""
    timed = [command[0], "-X", "importtime", *command[1:]]
    result = subprocess.run(timed, cwd=ROOT, capture_output=True, text=True)
    packages = ("torch", "lightning", "torchmetrics", "mlflow", "sqlalchemy", "hydra", "omegaconf")
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| *(\S+)", line)
        if not found:
            continue
        own, cumulative, module = int(found.group(1)) / 1e6, int(found.group(2)) / 1e6, found.group(3)
        if module in packages:
            totals[module] = max(totals.get(module, 0.0), cumulative)
        elif module.startswith("gesture_rnn"):
            totals["gesture_rnn (its own modules)"] = totals.get("gesture_rnn (its own modules)", 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="gestures-dataset.zip (default: as train.py finds it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "startup.md")
    args = parser.parse_args(argv)
    try:
        args.data = str(dataset_on_disk(args.data))
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        warm = workdir / "warm"
        seconds_to_first_step(train_command(workdir, args.data, warm), warm)  # parse cache and store set up
        for round_ in range(args.rounds):
            for name, code in IMPORTS.items():
                samples.setdefault(name, []).append(seconds_to_import(code))
            for name, extra in (("train.py logger=none", ["logger=none"]), ("train.py (MLflow)", [])):
                marker = workdir / f"first-step-{round_}-{len(extra)}"
                samples.setdefault(name, []).append(
                    seconds_to_first_step(train_command(workdir, args.data, marker, *extra), marker)
                )
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()),
                flush=True,
            )
        breakdown = import_breakdown(train_command(workdir, args.data, workdir / "importtime"))
    median = {name: statistics.median(values) for name, values in samples.items()}
    lightning = median["import lightning"]
    lines = [
        "# Start-up: `python train.py` to its first training step",
        "",
        f"Generated by `make startup` (`python -m bench.startup --rounds {args.rounds}`) on {machine()}.",
        "Wall seconds from the command's start to the first training step (a callback's time stamp),",
        "or to the end of an import; median of the rounds, the commands interleaved. The dataset's parse",
        "cache and the MLflow store exist (a second run of the day), two training batches.",
        "",
        "| command | median s | min–max s | minus `import lightning` |",
        "|---|---|---|---|",
    ]
    for name, values in samples.items():
        lines.append(
            f"| `{name}` | {median[name]:.2f} | {min(values):.2f}–{max(values):.2f} | "
            f"{median[name] - lightning:+.2f} |"
        )
    goal = median["train.py (MLflow)"] - lightning
    lines += [
        "",
        f"Goal: start-up to the first step ≤ `import lightning` + 1.5 s. With MLflow: {goal:+.2f} s — "
        + ("**met**." if goal <= 1.5 else f"**missed by {goal - 1.5:.2f} s**.")
        + f" Without a logger: {median['train.py logger=none'] - lightning:+.2f} s.",
        "",
        "## Where the imports go (one `train.py` run with `-X importtime`; a package with all it imports)",
        "",
        "| package | s |",
        "|---|---|",
        *[f"| `{name}` | {seconds:.2f} |" for name, seconds in breakdown[:8]],
        "",
        "`lightning` is what it adds to `torch`, mostly what `lightning.fabric` pulls in (torch._dynamo,",
        "scipy.signal, torchmetrics' functional modules); `mlflow` is imported when the run is created,",
        "after the data is ready. Importing MLflow in a thread beside Lightning's import is no faster than",
        "one after the other (the rows above: both hold the interpreter lock), so the two add up;",
        "third-party modules are not patched.",
    ]
    write_text_atomically(args.out, "\n".join(lines) + "\n")
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
