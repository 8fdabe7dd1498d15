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
from gesture_rnn.reports import held_out, machine, mean_sd
from gesture_rnn.trials import find_trials

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
            for run in (run for part in sorted(sweep_dir.glob("part*")) for run in find_trials(part)):
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
    from gesture_rnn import tracking

    files = (report, report.with_suffix(".png"))
    with tracking.report_run(tracking_uri, EXPERIMENT, "compare", command, files) as (client, run_id):
        for r in rows:
            key = f"{r.family}-{r.size}"
            values = {"params": r.params, "random_acc": r.random_mean, "loso_mean": r.loso_mean}
            values["loso_worst"] = min(r.loso.values()) if r.loso_mean is not None else None
            values.update({k: v for k, v in r.timing.items() if k in ("epoch_s", "onnx_p50_ms")})
            for name, value in values.items():
                if value is not None:
                    client.log_metric(run_id, f"{name}/{key}", float(value))
    return run_id
