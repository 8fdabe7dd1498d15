"""Benchmark: the pipeline (``gesture_rnn.train``) against a plain PyTorch loop, on the real data.

    python -m bench.benchmark [--reps 3] [--epochs 3] [--accelerator cpu] [--out reports/bench.md]

Both sides use the same data, split (seed 0, 80/20, no validation), standardisation, model
shape, batch size 32, Adam lr 3e-3, seed and thread count; they alternate ``--reps`` times in
this one process. Also measured: start-up of ``python train.py`` to its first training step (cold
and warm parse cache), and inference latency / throughput of a trained checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from bench.inference import timings
from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.data.datamodule import GestureDataModule
from gesture_rnn.data.source import dataset_on_disk
from gesture_rnn.errors import DataError
from gesture_rnn.models.checkpoint import load_net
from studies.reports import machine

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"default (64/1)": (64, 1, 0.1), "tuned (256/2)": (256, 2, 0.06)}
# Pipeline sides: the defaults, then single switches that show what each speed-up is worth.
PIPELINE_SIDES = {
    "default (64/1)": {
        "pipeline": [],
        "pipeline, data.bucket_batches=false": ["data.bucket_batches=false"],
        "pipeline, model.net.packed=false": ["model.net.packed=false"],
    },
    "tuned (256/2)": {
        "pipeline": [],
        "pipeline, data.bucket_batches=false": ["data.bucket_batches=false"],
    },
}
BATCH, LR, SEED = 32, 3e-3, 0


# --- memory --------------------------------------------------------------------------------------
def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the plain loop ------------------------------------------------------------------------------
class PlainGRU(nn.Module):
    def __init__(
        self, hidden: int, layers: int, dropout: float, mean: torch.Tensor, std: torch.Tensor
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(3, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, 20)
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            (x - self.mean) / self.std, lengths, batch_first=True, enforce_sorted=False
        )
        return self.head(self.gru(packed)[1][-1])


def plain_run(dm: GestureDataModule, arch: tuple, epochs: int, device: str) -> dict:
    torch.manual_seed(SEED)
    train_set = dm.train_dataloader().dataset
    train_x, train_y = train_set.sequences, train_set.labels
    model = PlainGRU(*arch, dm.mean.to(device), dm.std.to(device)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x))
        for b in range(0, len(order), BATCH):
            idx = order[b : b + BATCH]
            seqs = [train_x[i] for i in idx]
            lengths = torch.tensor([len(s) for s in seqs])
            x = pad_sequence(seqs, batch_first=True).to(device)
            loss = loss_fn(model(x, lengths), train_y[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, lengths, y in dm.test_dataloader():
            correct += int((model(x.to(device), lengths).argmax(1).cpu() == y).sum())
            total += len(y)
    return {"times": times, "test_acc": correct / total}


# --- the pipeline --------------------------------------------------------------------------------
def pipeline_run(
    arch: tuple, epochs: int, accelerator: str, workdir: Path, data: str, extra: list[str]
) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import gesture_rnn

    timer_file = workdir / f"epochs-{time.monotonic_ns()}.json"
    out = workdir / f"run-{time.monotonic_ns()}"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.root_dir={workdir}",
                f"data.path={data}",
                f"data.cache_dir={workdir}/cache",
                "data.val_fraction=0",
                f"seed={SEED}",
                f"model.net.hidden={arch[0]}",
                f"model.net.layers={arch[1]}",
                f"model.net.dropout={arch[2]}",
                f"model.optimizer.lr={LR}",
                f"trainer.max_epochs={epochs}",
                f"trainer.accelerator={accelerator}",
                "console=quiet",
                "+callbacks.epoch_timer._target_=bench.timing.EpochTimer",
                f"+callbacks.epoch_timer.path={timer_file}",
                *extra,
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg.hydra
    metrics = gesture_rnn.train(cfg)
    checkpoint = next((out / "checkpoints").glob("epoch_*.ckpt"))
    return {
        "times": json.loads(timer_file.read_text()),
        "test_acc": metrics["test/acc"],
        "checkpoint": checkpoint,
    }


# --- start-up ------------------------------------------------------------------------------------
def startup_seconds(workdir: Path, data: str, cache: Path, *extra: str) -> float:
    marker = workdir / f"first-step-{time.monotonic_ns()}"
    command = [
        sys.executable, str(ROOT / "train.py"), f"paths.root_dir={workdir}", f"data.path={data}",
        f"data.cache_dir={cache}", "trainer.max_epochs=1", "++trainer.limit_train_batches=2",
        "++trainer.limit_test_batches=1", "console=quiet",
        "+callbacks.first_step._target_=bench.timing.FirstStepTimer", f"+callbacks.first_step.path={marker}",
        *extra,
    ]  # fmt: skip
    start = time.time()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: train.py failed during the start-up measurement:\n{result.stderr[-2000:]}")
    return float(marker.read_text()) - start


# --- inference -----------------------------------------------------------------------------------
def inference(checkpoint: Path, dm: GestureDataModule) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_net(checkpoint)
    sequences = dm.test_dataloader().dataset.sequences
    with torch.inference_mode():
        latency = timings(lambda seq: model(seq[None], torch.tensor([len(seq)])), sequences)
        batch = sequences[:256]
        x, lengths = pad_sequences(batch)
        model(x, lengths)
        start = time.perf_counter()
        for _ in range(10):
            model(x, lengths)
        throughput = 10 * len(batch) / (time.perf_counter() - start)
    torch.set_num_threads(threads)
    return {**latency, "batch256": throughput}


def peer_section(dm: GestureDataModule) -> list[str]:
    """MiniRocket on the random split above and on the 8 leave-one-user-out folds, next to the
    project's watch model on the same folds (``make watch``'s results, when they exist)."""
    from gesture_rnn.data.facts import USERS
    from studies import peers

    if not peers.available():
        print("MiniRocket skipped: aeon is not installed (pip install -e '.[peers]')", flush=True)
        return ["MiniRocket: not run (aeon is not installed: `pip install -e '.[peers]'`).", ""]
    by_user, loso_s = peers.minirocket_loso(dm.records, USERS)
    random = peers.minirocket_fold(dm.records, dm.split.train, dm.split.test)
    loso = list(by_user.values())
    accuracy = [fold.accuracy for fold in loso]
    lines = [
        "## The peer: MiniRocket",
        "",
        "aeon's `MiniRocketClassifier` (10,000 kernels, ridge with cross-validated penalty; recordings "
        "resampled to 51 steps; the transform on every core), numba compilation not timed.",
        "",
        "| protocol | accuracy | training | model size | one gesture p50 |",
        "|---|---|---|---|---|",
        f"| random split above (seed {SEED}) | {random.accuracy:.4f} | {random.fit_s:.1f} s "
        f"| {random.size_bytes / 1e6:.1f} MB pickled | {random.one_gesture_ms:.2f} ms |",
        f"| leave-one-user-out, 8 folds | mean {statistics.mean(accuracy):.4f}, worst {min(accuracy):.4f} "
        f"| {loso_s:.0f} s for all 8 | {loso[0].size_bytes / 1e6:.1f} MB pickled "
        f"| {statistics.median(f.one_gesture_ms for f in loso):.2f} ms |",
        "",
    ]
    watch = ROOT / "outputs" / "watch"
    if (watch / "evaluation.json").is_file():
        from studies.watch import summarize

        s = summarize(watch, ROOT / "outputs" / "new_wearer" / "full" / "best")
        took = ", ".join(f"{v:.0f} s" for v in s["loso_s"].values())
        mean, worst = statistics.mean(s["seed_means"]["float"]), min(s["per_user"]["float"].values())
        lines += [
            f"The project's watch model on the same 8 folds (`make watch`, reports/watch.md): mean "
            f"{mean:.4f}, worst {worst:.4f} "
            f"(3 seeds), {took} for all 8 per seed, {s['bytes']['int8'] / 1000:.0f} KB as int8, "
            f"{s['p50_ms']['float']:.3f} ms per gesture (ONNX). On the random split the project's "
            "models are in reports/models.md (the same split for seed 0).",
            "",
        ]
    return lines


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--data", default=os.environ.get("GESTURES_DATA"))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench.md")
    args = parser.parse_args()
    try:
        args.data = str(dataset_on_disk(args.data))  # else the zip make data (or a run) kept
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    workdir = Path(tempfile.mkdtemp(prefix="gesture-bench-"))
    dm = GestureDataModule.from_shipped_config(
        path=args.data, cache_dir=str(workdir / "cache"), val_fraction=0.0, seed=SEED
    )
    dm.setup()
    n_train = len(dm.split.train)

    rows, checkpoints = [], {}
    for name, arch in CONFIGS.items():
        sides = [*PIPELINE_SIDES[name], "plain"]
        results: dict[str, list[dict]] = {side: [] for side in sides}
        for rep in range(args.reps):
            for side in sides if rep % 2 == 0 else reversed(sides):  # alternate the order
                reset_peak_rss()
                if side == "plain":
                    result = plain_run(dm, arch, args.epochs, device)
                else:
                    extra = PIPELINE_SIDES[name][side]
                    result = pipeline_run(arch, args.epochs, args.accelerator, workdir, args.data, extra)
                    checkpoint = result.pop("checkpoint")
                    if side == "pipeline":
                        checkpoints[name] = checkpoint
                result["peak_mb"] = peak_rss_mb()
                results[side].append(result)
                print(
                    f"{name} rep {rep} {side}: {[round(t, 3) for t in result['times']]} s/epoch", flush=True
                )
        summary = {}
        for side, runs in results.items():
            epoch_times = [t for r in runs for t in r["times"][1:]]  # first epoch of each run = warm-up
            summary[side] = {
                "epoch": epoch_times,
                "acc": [r["test_acc"] for r in runs],
                "peak": max(r["peak_mb"] for r in runs),
            }
        plain_median = statistics.median(summary["plain"]["epoch"])
        for side in sides:
            ratio = statistics.median(summary[side]["epoch"]) / plain_median
            rows.append((name, side, summary[side], ratio))

    cold = startup_seconds(workdir, args.data, workdir / "cold-cache")
    warm = statistics.median(startup_seconds(workdir, args.data, workdir / "cold-cache") for _ in range(3))
    warm_no_mlflow = statistics.median(
        startup_seconds(workdir, args.data, workdir / "cold-cache", "logger=none") for _ in range(3)
    )
    infer = inference(checkpoints["tuned (256/2)"], dm)
    peer_lines = peer_section(dm)

    lines = [
        "# Benchmark: pipeline vs a plain PyTorch loop",
        "",
        f"Generated by `make bench` (`python -m bench.benchmark --reps {args.reps} --epochs {args.epochs} "
        f"--accelerator {args.accelerator}`).",
        f"Machine: {machine()}; device: {device}.",
        "",
        f"Real data, 80/20 stratified split (seed {SEED}), {n_train} training sequences, batch {BATCH}, "
        f"Adam lr {LR}, "
        f"no validation. Each side ran {args.reps}× {args.epochs} epochs, alternating; the first epoch of "
        "every run is warm-up and not counted. Seconds per epoch: median (min–max).",
        "",
        "| configuration | side | s / epoch | samples / s | test acc | peak RSS (MB) | pipeline / plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, side, s, ratio in rows:
        median = statistics.median(s["epoch"])
        shown_ratio = {"plain": "", "pipeline": f"**{ratio:.3f}**"}.get(side, f"{ratio:.3f}")
        lines.append(
            f"| {name} | {side} | {spread(s['epoch'])} | {n_train / median:.0f} | "
            f"{statistics.mean(s['acc']):.4f} | {s['peak']:.0f} | {shown_ratio} |"
        )
    lines += [
        "",
        "Accuracy after so few epochs is not the point here; both sides run the same model and data. "
        "`pipeline` is `python train.py` with its defaults (length-bucketed batches in pools of 2, packed "
        "GRU); the rows below it switch one of those off. The plain loop shuffles and packs, as the "
        "study's loop did.",
        "",
        "| start-up of `python train.py` to the first training step | seconds |",
        "|---|---|",
        f"| cold (empty parse cache, new MLflow store) | {cold:.2f} |",
        f"| warm (cached arrays; median of 3) | {warm:.2f} |",
        f"| warm, `logger=none` (no MLflow store; median of 3) | {warm_no_mlflow:.2f} |",
        "",
        "| inference, tuned 256/2 checkpoint, 1 CPU thread | value |",
        "|---|---|",
        f"| one gesture, p50 | {infer['p50']:.2f} ms |",
        f"| one gesture, p99 | {infer['p99']:.2f} ms |",
        f"| batch of 256 | {infer['batch256']:.0f} gestures / s |",
        "",
        *peer_lines,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
