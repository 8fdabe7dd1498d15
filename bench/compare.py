"""Network families on both protocols, with their cost: ``make compare`` -> reports/models.md.

    python -m bench.compare [--phases screen full timing report] [--families gru lstm ...]
                            [--sizes default large] [--trainer cpu|gpu] [--jobs N] [--out DIR]

Each family runs at two sizes: ``default`` (its shipped config, the study's 64/1 GRU scale) and
``large`` (about the tuned GRU 256/2's 600k parameters). Every training follows the study's
protocol: 20 epochs, no validation, the last epoch tested.

Phases (each skips what is already finished under --out, so a stopped comparison continues):
  screen  the hardest leave-one-user-out folds (U02, U04, U08), seed 0 — the cheap first look
  full    the random 80/20 split over seeds 0, 1, 2, and all 8 leave-one-user-out folds
  timing  seconds per epoch on this machine's CPU (3 epochs, the first not counted) and the
          ONNX export's one-gesture latency (p50, onnxruntime on 1 thread)
  report  reports/models.md and reports/models.png (python -m gesture_rnn.reports models)

The trainings are ``train.py -m`` multiruns, one per family, size and protocol. ``--jobs N`` runs N
of them at once (each on its share of the CPU threads) — for a GPU machine (``--trainer gpu``); on
a 2-core CPU keep 1: parallel torch processes slow each other down many times over.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.multirun import PROJECT_ROOT, USERS, run_missing

HARD_USERS = ["U02", "U04", "U08"]  # the lowest leave-one-user-out accuracies (reports/loso.md)

# family -> size -> overrides. large: about the tuned GRU 256/2's parameter count (~600k).
SIZES: dict[str, dict[str, list[str]]] = {
    "gru": {"default": [], "large": ["model.net.hidden=256", "model.net.layers=2", "model.net.dropout=0.06"]},
    "lstm": {"default": [], "large": ["model.net.hidden=224", "model.net.layers=2"]},
    "rnn": {"default": [], "large": ["model.net.hidden=448", "model.net.layers=2"]},
    "conv_gru": {"default": [], "large": ["model.net.hidden=256", "model.net.layers=2"]},
    "tcn": {"default": [], "large": ["model.net.channels=168"]},
    "transformer": {
        "default": [],
        "large": ["model.net.d_model=128", "model.net.layers=3", "model.net.ff=512"],
    },
}
# the study's protocol; quiet, no MLflow run per training (the report is logged once instead)
PROTOCOL = ["trainer.max_epochs=20", "data.val_fraction=0", "console=quiet", "logger=none", "log_model=false"]


@dataclass(frozen=True)
class Split:
    fixed: list[str]  # overrides every job of the split gets
    key: str  # the swept key: one job per value
    values: list[str]


SPLITS = {
    "screen": Split(["data.split=users", "seed=0"], "data.test_users", [f"[{u}]" for u in HARD_USERS]),
    "random": Split(["data.split=random"], "seed", ["0", "1", "2"]),
    "loso": Split(["data.split=users", "seed=0"], "data.test_users", [f"[{u}]" for u in USERS]),
}
PHASE_SPLITS = {"screen": ["screen"], "full": ["random", "loso"]}


def run_multirun(split_name: str, family: str, size: str, args: argparse.Namespace) -> str:
    """One family and size on one protocol, as a train.py multirun over the jobs not finished
    yet (``bench.multirun.run_missing``); returns a progress line."""
    split, name = SPLITS[split_name], f"{family}-{size}"
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    overrides = [
        f"model/net={family}",
        *SIZES[family][size],
        *PROTOCOL,
        *split.fixed,
        f"trainer={args.trainer}",
        *([f"num_threads={threads}"] if threads else []),
        *args.overrides,
    ]
    result = run_missing(args.out / split_name / name, overrides, split.key, split.values)
    if result.log is None:
        return f"{split_name:6s} {name}: done before"
    status = (
        f" FAILED (exit {result.code}, {len(result.left)} left; see {result.log})"
        if result.code or result.left
        else ""
    )
    done = result.done
    accuracy = (
        f"test acc {statistics.mean(done.values()):.4f} over {len(done)}" if done else "no run finished"
    )
    return f"{split_name:6s} {name}: {accuracy}, {result.seconds:.0f} s{status}"


def describe_trainings_machine(args: argparse.Namespace) -> str:
    from gesture_rnn.reports import machine

    where = machine()
    if args.trainer == "gpu":
        import torch

        where += f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU found"
    return f"{where}; trainer={args.trainer}, {args.jobs} multirun(s) at a time"


def train_phase(phase: str, args: argparse.Namespace) -> bool:
    machines = args.out / "trainings_machine.txt"
    seen = machines.read_text().splitlines() if machines.is_file() else []
    if (where := describe_trainings_machine(args)) not in seen:
        machines.write_text("\n".join([*seen, where]) + "\n")  # a continued comparison adds its machine
    # the longest multiruns (eight folds) first: the phase ends sooner when several run at once
    splits = sorted(PHASE_SPLITS[phase], key=lambda s: -len(SPLITS[s].values))
    tasks = [(s, f, z) for s in splits for z in reversed(args.sizes) for f in args.families]
    print(f"{phase}: {len(tasks)} multiruns, {args.jobs} at a time on trainer={args.trainer}", flush=True)
    ok = True
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(lambda task: run_multirun(*task, args), tasks):
            print(f"  {line}", flush=True)
            ok = ok and "FAILED" not in line
    return ok


def timing_phase(args: argparse.Namespace) -> bool:
    """Seconds per epoch on this CPU and the ONNX model's latency, one family and size at a time."""
    import onnxruntime

    from bench.inference import timings
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.exporting import export_onnx
    from gesture_rnn.models.checkpoint import load_net
    from gesture_rnn.reports import machine

    dm = GestureDataModule.from_shipped_config(cache_dir=tempfile.mkdtemp(), val_fraction=0.0)
    dm.setup()
    sequences = [s.numpy() for s in dm.test_dataloader().dataset.sequences]
    ok = True
    for family in args.families:
        for size in args.sizes:
            run_dir = args.out / "timing" / f"{family}-{size}"
            if (run_dir / "timing.json").is_file():
                print(f"  timing {family}-{size}: done before", flush=True)
                continue
            epochs_file = run_dir / "epoch_seconds.json"
            command = [
                sys.executable,
                str(PROJECT_ROOT / "train.py"),
                f"model/net={family}",
                *SIZES[family][size],
                *PROTOCOL,
                "trainer.max_epochs=3",
                "trainer=cpu",
                "seed=0",
                f"hydra.run.dir={run_dir}",
                "+callbacks.epoch_timer._target_=bench.timing.EpochTimer",
                f"+callbacks.epoch_timer.path={epochs_file}",
                *args.overrides,
            ]
            with open(args.out / "timing" / f"{family}-{size}.log", "w") as log:
                code = subprocess.run(
                    command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT
                ).returncode
            if code != 0:
                print(f"  timing {family}-{size}: FAILED (exit {code})", flush=True)
                ok = False
                continue
            net = load_net(run_dir / "checkpoints" / "last.ckpt")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(export_onnx(net, run_dir / "model.onnx")), options, providers=["CPUExecutionProvider"]
            )

            def one_gesture(seq: np.ndarray, session=session) -> object:
                return session.run(
                    None, {"accel": seq[None], "lengths": np.array([len(seq)], dtype=np.int64)}
                )

            epoch_seconds = json.loads(epochs_file.read_text())
            result = {
                "epoch_s": statistics.median(epoch_seconds[1:]),  # the first epoch warms up
                "onnx_p50_ms": timings(one_gesture, sequences)["p50"],
                "params": sum(p.numel() for p in net.parameters()),
                "machine": machine(),
            }
            (run_dir / "timing.json").write_text(json.dumps(result, indent=1))
            print(
                f"  timing {family}-{size}: {result['epoch_s']:.2f} s/epoch, "
                f"ONNX p50 {result['onnx_p50_ms']:.3f} ms",
                flush=True,
            )
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", nargs="+", default=["screen", "full", "timing", "report"])
    parser.add_argument("--families", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--sizes", nargs="+", default=["default", "large"], choices=["default", "large"])
    parser.add_argument("--trainer", default="cpu", help="conf/trainer option for the trainings (cpu, gpu)")
    parser.add_argument("--jobs", type=int, default=1, help="multiruns at once (GPU machines; 1 on a CPU)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "compare")
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "models.md")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{PROJECT_ROOT / 'outputs' / 'mlflow.db'}")
    parser.add_argument("--command", default="make compare", help="the command named in the report")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every training")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs} is invalid: it must be an integer >= 1")
    if unknown := set(args.phases) - {"screen", "full", "timing", "report"}:
        parser.error(f"--phases: unknown {sorted(unknown)}; allowed: screen full timing report")
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("screen", "random", "loso", "timing"):
        (args.out / split).mkdir(exist_ok=True)
    ok = True
    for phase in ("screen", "full"):
        if phase in args.phases:
            ok = train_phase(phase, args) and ok
    if "timing" in args.phases:
        print("timing: on this machine's CPU, one at a time", flush=True)
        ok = timing_phase(args) and ok
    if "report" in args.phases:
        from gesture_rnn.comparison import models_report

        models_report(args.out, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report} and {args.report.with_suffix('.png')}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
