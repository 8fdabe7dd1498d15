"""Network families on both protocols, with their cost: ``make compare`` -> reports/models.md.

    python -m studies.compare [--phases screen full timing report] [--families gru lstm ...]
                            [--sizes default large] [--trainer cpu|gpu] [--jobs N] [--out DIR]

Each family runs at two sizes: ``default`` (its shipped config, the study's 64/1 GRU scale) and
``large`` (about the tuned GRU 256/2's 600k parameters). Every training follows the study's
protocol: 20 epochs, no validation, the last epoch tested.

Phases (each skips what is already finished under --out, so a stopped comparison continues):
  screen  the hardest leave-one-user-out folds (U02, U04, U08), seed 0 — the cheap first look
  full    the random 80/20 split over seeds 0, 1, 2, and all 8 leave-one-user-out folds
  timing  seconds per epoch on this machine's CPU (3 epochs, the first not counted) and the
          ONNX export's one-gesture latency (p50, onnxruntime on 1 thread)
  report  reports/models.md and reports/models.png (python -m studies.reports models)

The trainings are one command per family, size and protocol: ``train.py cv=users`` for the
leave-one-user-out folds, a ``train.py -m`` multirun over the random split's seeds. ``--jobs N`` runs N
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from gesture_rnn.data.facts import USERS
from gesture_rnn.deploy.runtime import ort_session
from gesture_rnn.training.artifacts import save_figure  # also selects the Agg backend
from gesture_rnn.utils.atomic import write_text_atomically
from studies.multirun import PROJECT_ROOT, finished_runs, held_out, run_cv, run_missing
from studies.reports import machine, mean_sd

EXPERIMENT = "gestures-compare"
# the watch recommendation: the best new-wearer accuracy among networks of at most this many
# parameters (the watch-size budget)
WATCH_PARAMS = 50_000
CHANCE = 1 / 20


@dataclass
class Protocol:
    """What the runs had in common (or "mixed"), and where they ran."""

    settings: dict[str, set] = field(default_factory=dict)
    accelerators: dict[str, int] = field(default_factory=dict)

    KEYS = ("trainer.max_epochs", "model.optimizer.lr", "data.batch_size", "data.val_fraction")

    def add(self, config: dict[str, Any]) -> None:
        for key in self.KEYS:
            self.settings.setdefault(key, set()).add(str(config.get(key)))
        where = str(config.get("trainer.accelerator"))
        self.accelerators[where] = self.accelerators.get(where, 0) + 1

    def value(self, key: str) -> str:
        values = self.settings.get(key, set())
        return next(iter(values)) if len(values) == 1 else "mixed"


@dataclass
class Row:
    family: str
    size: str
    params: int | None = None
    screen: dict[str, float] = field(default_factory=dict)  # held-out user -> accuracy
    random: list[float] = field(default_factory=list)  # test accuracy per seed
    ratios: list[float] = field(default_factory=list)  # test / train loss per seed (random split)
    loso: dict[str, float] = field(default_factory=dict)  # held-out user -> accuracy
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.family} {self.size}"

    @property
    def loso_mean(self) -> float | None:
        return statistics.mean(self.loso.values()) if len(self.loso) == 8 else None

    @property
    def random_mean(self) -> float | None:
        return statistics.mean(self.random) if self.random else None


def parameter_count(config: dict[str, Any]) -> int:
    """The parameters of the network a run's flattened config describes (built, never trained)."""
    from gesture_rnn.models.nets import build_net

    node = {key[len("model.net.") :]: value for key, value in config.items() if key.startswith("model.net.")}
    return sum(p.numel() for p in build_net(node).parameters())


def collect(out_dir: Path, protocol: Protocol | None = None) -> list[Row]:
    rows: dict[str, Row] = {}
    protocol = protocol if protocol is not None else Protocol()
    for split in ("screen", "random", "loso"):
        for sweep_dir in sorted(p for p in (out_dir / split).glob("*-*") if p.is_dir()):
            family, size = sweep_dir.name.rsplit("-", 1)
            row = rows.setdefault(sweep_dir.name, Row(family, size))
            for run in finished_runs(sweep_dir):
                metrics = run["metrics"]
                protocol.add(run["config"])
                row.params = row.params or parameter_count(run["config"])
                if split == "random":
                    row.random.append(metrics["test/acc"])
                    row.ratios.append(metrics.get("test/overfit_ratio", float("nan")))
                else:
                    getattr(row, split)[held_out(run)] = metrics["test/acc"]
    for timing_file in (out_dir / "timing").glob("*/timing.json"):
        family, size = timing_file.parent.name.rsplit("-", 1)
        row = rows.setdefault(timing_file.parent.name, Row(family, size))
        row.timing = json.loads(timing_file.read_text())
        row.params = row.params or int(row.timing["params"])
    if not rows:
        raise SystemExit(f"error: no comparison runs under {out_dir}; run python -m studies.compare first")
    return sorted(rows.values(), key=lambda r: r.params or 0)


def _f(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def recommendations(rows: list[Row]) -> list[str]:
    """Three picks, each by a rule stated in the report, from the rows measured fully."""
    known = [r for r in rows if r.random_mean is not None]
    new = [r for r in rows if r.loso_mean is not None]
    lines = []
    if known:
        best = max(known, key=lambda r: (r.random_mean, -(r.params or 0)))
        lines.append(
            f"- **Known users** (highest random-split accuracy): **{best.name}**, "
            f"{mean_sd(best.random)} with {best.params:,} parameters."
        )
    if new:
        best = max(new, key=lambda r: (r.loso_mean, -(r.params or 0)))
        worst_user = min(best.loso, key=best.loso.get)
        lines.append(
            f"- **New wearers** (highest leave-one-user-out mean): **{best.name}**, {best.loso_mean:.4f} "
            f"(worst user {worst_user} {best.loso[worst_user]:.4f}), {best.params:,} parameters."
        )
        small = [r for r in new if (r.params or 0) <= WATCH_PARAMS]
        if small:
            watch = max(small, key=lambda r: (r.loso_mean, -(r.params or 0)))
            latency = f", ONNX {watch.timing['onnx_p50_ms']:.3f} ms per gesture" if watch.timing else ""
            lines.append(
                f"- **The watch** (highest leave-one-user-out mean with at most {WATCH_PARAMS:,} "
                f"parameters): **{watch.name}**, {watch.loso_mean:.4f} (random split "
                f"{mean_sd(watch.random)}) with {watch.params:,} parameters{latency}."
            )
    if diverged := [r.name for r in rows if r.random_mean is not None and r.random_mean < 2 * CHANCE]:
        lines.append(
            f"- Near chance ({CHANCE:.2f}), i.e. diverged in training at this learning rate: "
            f"{', '.join(diverged)}."
        )
    return lines


def plot(rows: list[Row], path: Path, floor: float = 0.75) -> None:
    """Accuracy against parameters, one panel per protocol, one colour per family; values under
    ``floor`` are drawn at the floor as ▼ with their value."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colors = {family: f"C{i}" for i, family in enumerate(dict.fromkeys(r.family for r in rows))}
    panels = (
        ("random split, mean of 3 seeds", lambda r: r.random_mean, lambda r: None),
        ("new wearers: LOSO mean (line: worst user)", lambda r: r.loso_mean, lambda r: min(r.loso.values())),
    )
    for ax, (title, value, low) in zip(axes, panels, strict=True):
        for row in rows:
            y = value(row) if row.params else None
            if y is None:
                continue
            marker = "o" if row.size == "default" else "s"
            color = colors[row.family]
            if y < floor:
                ax.plot(row.params, floor, "v", color=color)
                ax.annotate(
                    f"{y:.2f}", (row.params, floor), fontsize=7, xytext=(4, 2), textcoords="offset points"
                )
                continue
            ax.plot(row.params, y, marker, color=color)
            if (worst := low(row)) is not None:
                ax.vlines(row.params, max(worst, floor), y, color=color, alpha=0.4)
        ax.set_xscale("log")
        ax.set_ylim(floor - 0.01, 1.0)
        ax.set_xlabel("parameters")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=f) for f, c in colors.items()]
    handles += [
        plt.Line2D([], [], marker=m, ls="", color="gray", label=f"{z} size")
        for m, z in (("o", "default"), ("s", "large"))
    ]
    axes[1].legend(handles=handles, fontsize=8, loc="lower center")
    save_figure(fig, path)


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| family | size | parameters | random split acc (3 seeds) | LOSO mean (8 users) | LOSO worst user "
        "| test/train loss | s / epoch (CPU) | ONNX p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worst = min(r.loso, key=r.loso.get) if r.loso_mean is not None else None
        ratios = [x for x in r.ratios if x == x]
        lines.append(
            f"| {r.family} | {r.size} | {r.params:,} | {mean_sd(r.random)} | {_f(r.loso_mean)} "
            f"| {f'{worst} {r.loso[worst]:.4f}' if worst else '–'} "
            f"| {_f(statistics.mean(ratios) if ratios else None, 1)} "
            f"| {_f(r.timing.get('epoch_s'), 2)} | {_f(r.timing.get('onnx_p50_ms'), 3)} |"
        )
    return lines


def screen_table(rows: list[Row]) -> list[str]:
    screened = [r for r in rows if r.screen]
    if not screened:
        return []
    users = sorted({u for r in screened for u in r.screen})
    lines = [
        "| family | size | parameters | " + " | ".join(users) + " | mean |",
        "|---|---|---|" + "---|" * (len(users) + 1),
    ]
    for r in sorted(screened, key=lambda r: -statistics.mean(r.screen.values())):
        cells = " | ".join(_f(r.screen.get(u)) for u in users)
        lines.append(
            f"| {r.family} | {r.size} | {r.params:,} | {cells} | {statistics.mean(r.screen.values()):.4f} |"
        )
    return lines


def models_report(out_dir: Path, report: Path, command: str, tracking_uri: str | None = None) -> None:
    """Write ``report`` (markdown) and its plot beside it; log both as an MLflow run."""
    protocol = Protocol()
    rows = collect(out_dir, protocol)
    trained_on = out_dir / "trainings_machine.txt"
    machines = trained_on.read_text().split("\n") if trained_on.is_file() else ["unknown"]
    timed = next((r.timing for r in rows if r.timing), {})
    counts = ", ".join(f"{n} with accelerator={name}" for name, n in sorted(protocol.accelerators.items()))
    validation = protocol.value("data.val_fraction")
    lines = [
        "# Network families: accuracy, new wearers and cost",
        "",
        f"Generated by `{command}`. Trainings: {counts}, on",
        "",
        *[f"- {line}" for line in machines if line.strip()],
        "",
        f"Seconds per epoch and latency measured on: {timed.get('machine', machine())}.",
        "",
        f"Protocol: {protocol.value('trainer.max_epochs')} epochs, learning rate "
        f"{protocol.value('model.optimizer.lr')}, batch {protocol.value('data.batch_size')}, "
        + (
            "no validation — the last epoch is tested (the study's)"
            if validation in ("0", "0.0")
            else f"validation fraction {validation}"
        )
        + ". *Random split*: 80/20 stratified, seeds 0, 1, 2 (mean ± sd). *LOSO*: each of the 8 "
        "users held out entirely (seed 0); mean and worst user. *test/train loss*: the study's "
        "overfitting measure on the random split (lower is better). *s / epoch*: training epoch on "
        "the CPU (median of epochs 2–3). *ONNX p50*: one gesture through the exported model, "
        "onnxruntime on 1 thread. Sizes: *default* is each family's shipped config (the study's "
        "64/1 GRU scale); *large* has about the tuned GRU 256/2's parameter count.",
        "",
        f"![accuracy against parameters]({report.with_suffix('.png').name})",
        "",
        *table(rows),
        "",
        "## Which family",
        "",
        *recommendations(rows),
        "",
    ]
    if screen := screen_table(rows):
        lines += ["## Screen: the hardest users (one seed)", "", *screen, ""]
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(report, "\n".join(lines))
    plot(rows, report.with_suffix(".png"))
    if tracking_uri:
        log_comparison(rows, report, command, tracking_uri)


def log_comparison(rows: list[Row], report: Path, command: str, tracking_uri: str) -> str:
    """One MLflow run: each row's accuracies as metrics, the report and the plot as artifacts."""
    from gesture_rnn.tracking import runs

    files = (report, report.with_suffix(".png"))
    with runs.report_run(tracking_uri, EXPERIMENT, "compare", command, files) as (client, run_id):
        for r in rows:
            key = f"{r.family}-{r.size}"
            values = {"params": r.params, "random_acc": r.random_mean, "loso_mean": r.loso_mean}
            values["loso_worst"] = min(r.loso.values()) if r.loso_mean is not None else None
            values.update({k: v for k, v in r.timing.items() if k in ("epoch_s", "onnx_p50_ms")})
            for name, value in values.items():
                if value is not None:
                    client.log_metric(run_id, f"{name}/{key}", float(value))
    return run_id


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


# leave-one-user-out runs as train.py cv=users (cv.val_users=0: no validation, as PROTOCOL says)
SPLITS = {
    "screen": Split(["cv.val_users=0", "seed=0"], "cv.users", list(HARD_USERS)),
    "random": Split(["data.split=random"], "seed", ["0", "1", "2"]),
    "loso": Split(["cv.val_users=0", "seed=0"], "cv.users", list(USERS)),
}
PHASE_SPLITS = {"screen": ["screen"], "full": ["random", "loso"]}


def run_multirun(split_name: str, family: str, size: str, args: argparse.Namespace) -> str:
    """One family and size on one protocol — ``train.py cv=users`` over the held-out users, or a
    multirun over the seeds — training only what is not finished yet; returns a progress line."""
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
    folder = args.out / split_name / name
    if split.key == "cv.users":
        result = run_cv(folder, overrides, split.values)
    else:
        result = run_missing(folder, overrides, split.key, split.values)
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
    from studies.reports import machine

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

    from bench.inference import timings
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.deploy.export import export_onnx
    from gesture_rnn.models.checkpoint import load_net
    from studies.reports import machine

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
            session = ort_session(export_onnx(net, run_dir / "model.onnx"), threads=1)

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
        models_report(args.out, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report} and {args.report.with_suffix('.png')}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
