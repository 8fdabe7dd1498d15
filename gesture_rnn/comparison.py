"""The network-family comparison (``make compare``): a table, a plot of accuracy against size and
the recommendation it supports, from the runs ``bench/compare.py`` leaves under its folder:

    <out>/screen/<family>-<size>/part<n>/<job>/metrics.json   hardest LOSO folds, one seed
    <out>/random/<family>-<size>/part<n>/<job>/metrics.json   80/20 split, seeds 0, 1, 2
    <out>/loso/<family>-<size>/part<n>/<job>/metrics.json     all eight LOSO folds
    <out>/timing/<family>-<size>/timing.json          CPU seconds per epoch, ONNX latency
    <out>/trainings_machine.txt                       where the trainings ran

The report and plot are also logged as one MLflow run (experiment ``gestures-compare``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from gesture_rnn.artifacts import save_figure  # also selects the Agg backend
from gesture_rnn.atomic import write_text_atomically
from gesture_rnn.reports import machine, mean_sd
from gesture_rnn.trials import find_trials

EXPERIMENT = "gestures-compare"
# the watch recommendation: the smallest network within this much of the best new-wearer accuracy
WATCH_TOLERANCE = 0.02


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


def _held_out(run: dict[str, Any]) -> str:
    return str(run["config"]["data.test_users"]).strip("[]'\" ")


def parameter_count(config: dict[str, Any]) -> int:
    """The parameters of the network a run's flattened config describes (built, never trained)."""
    from gesture_rnn.models.nets import build_net

    node = {key[len("model.net.") :]: value for key, value in config.items() if key.startswith("model.net.")}
    return sum(p.numel() for p in build_net(node).parameters())


def collect(out_dir: Path) -> list[Row]:
    rows: dict[str, Row] = {}
    for split in ("screen", "random", "loso"):
        for sweep_dir in sorted(p for p in (out_dir / split).glob("*-*") if p.is_dir()):
            family, size = sweep_dir.name.rsplit("-", 1)
            row = rows.setdefault(sweep_dir.name, Row(family, size))
            for run in (run for part in sorted(sweep_dir.glob("part*")) for run in find_trials(part)):
                metrics = run["metrics"]
                row.params = row.params or parameter_count(run["config"])
                if split == "random":
                    row.random.append(metrics["test/acc"])
                    row.ratios.append(metrics.get("test/overfit_ratio", float("nan")))
                else:
                    getattr(row, split)[_held_out(run)] = metrics["test/acc"]
    for timing_file in (out_dir / "timing").glob("*/timing.json"):
        family, size = timing_file.parent.name.rsplit("-", 1)
        row = rows.setdefault(timing_file.parent.name, Row(family, size))
        row.timing = json.loads(timing_file.read_text())
        row.params = row.params or int(row.timing["params"])
    if not rows:
        raise SystemExit(f"error: no comparison runs under {out_dir}; run python -m bench.compare first")
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
        close = [r for r in new if r.loso_mean >= best.loso_mean - WATCH_TOLERANCE]
        watch = min(close, key=lambda r: (r.params or 0, -r.loso_mean))
        latency = f", ONNX {watch.timing['onnx_p50_ms']:.3f} ms per gesture" if watch.timing else ""
        lines.append(
            f"- **The watch** (fewest parameters within {WATCH_TOLERANCE:.2f} of that mean): "
            f"**{watch.name}**, {watch.loso_mean:.4f} with {watch.params:,} parameters{latency}."
        )
    return lines


def plot(rows: list[Row], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {family: f"C{i}" for i, family in enumerate(dict.fromkeys(r.family for r in rows))}
    for row in rows:
        if row.params is None:
            continue
        color = colors[row.family]
        if row.random_mean is not None:
            ax.plot(row.params, row.random_mean, "o", color=color)
        if row.loso_mean is not None:
            worst = min(row.loso.values())
            ax.plot(row.params, row.loso_mean, "^", color=color)
            ax.vlines(row.params, worst, row.loso_mean, color=color, alpha=0.4)
        y = row.random_mean if row.random_mean is not None else row.loso_mean
        if y is not None:
            ax.annotate(row.name, (row.params, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.set_title("o random split (3 seeds)   ^ new wearers, LOSO mean (line: down to the worst user)")
    ax.grid(alpha=0.3)
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
    rows = collect(out_dir)
    trained_on = out_dir / "trainings_machine.txt"
    timed = next((r.timing for r in rows if r.timing), {})
    lines = [
        "# Network families: accuracy, new wearers and cost",
        "",
        f"Generated by `{command}`.",
        f"Trainings ran on: {trained_on.read_text().strip() if trained_on.is_file() else 'unknown'}.",
        f"Seconds per epoch and latency measured on: {timed.get('machine', machine())}.",
        "",
        "Protocol (the study's): 20 epochs, Adam lr 3e-3, batch 32, no validation — the last epoch is "
        "tested. *Random split*: 80/20 stratified, seeds 0, 1, 2 (mean ± sd). *LOSO*: each of the 8 "
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
    from gesture_rnn import tracking
    from gesture_rnn.resolvers import artifact_location

    local = (
        str(Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts")
        if "sqlite" in tracking_uri
        else ""
    )
    run_id = tracking.create_run(
        tracking_uri,
        EXPERIMENT,
        artifact_location(tracking_uri, local) if local else None,
        {"mlflow.runName": "compare", "command": command, "mlflow.source.git.commit": tracking.git_commit()},
    )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        for r in rows:
            key = f"{r.family}-{r.size}"
            values = {"params": r.params, "random_acc": r.random_mean, "loso_mean": r.loso_mean}
            values["loso_worst"] = min(r.loso.values()) if r.loso_mean is not None else None
            values.update({k: v for k, v in r.timing.items() if k in ("epoch_s", "onnx_p50_ms")})
            for name, value in values.items():
                if value is not None:
                    client.log_metric(run_id, f"{name}/{key}", float(value))
        client.log_artifact(run_id, str(report))
        client.log_artifact(run_id, str(report.with_suffix(".png")))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
