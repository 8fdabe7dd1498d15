"""The watch report (``make watch``): the distilled ``experiment=watch`` network, float and int8,
against the best model of the new-wearer work (its teachers) and MiniRocket, with a verdict per
goal of the watch issue.

Reads what ``bench/watch.py`` writes under ``outputs/watch``: ``seed<k>/part*/<job>`` (each fold's
``metrics.json``), ``seed<k>/timing.json`` (the one command's wall time), ``evaluation.json``
(ONNX accuracy, sizes, latency), ``teachers.json`` and ``minirocket.json``; and the teachers'
own folds under ``outputs/new_wearer/full/best``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from gesture_rnn.atomic import write_text_atomically
from gesture_rnn.new_wearer import accuracies, mean_seconds
from gesture_rnn.reports import machine

EXPERIMENT = "gestures-watch"
MAX_PARAMETERS = 50_000
MEAN_MARGIN, WORST_MARGIN = 0.01, 0.02  # below the best model's mean / worst user
MAX_INT8_KB, MAX_INT8_DROP = 100.0, 0.005
MAX_P50_MS = 0.1
MAX_LOSO_S, MIN_FAST_MEAN, MAX_PEER_RATIO = 120.0, 0.96, 2.0
BEST_PARAMETERS = 600_340  # GRU 256/2 (reports/models.md)


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def per_user_mean(by_seed: dict[Any, dict[str, float]]) -> dict[str, float]:
    """user -> accuracy averaged over the seeds that have the user."""
    users = sorted({user for folds in by_seed.values() for user in folds})
    return {u: statistics.mean(f[u] for f in by_seed.values() if u in f) for u in users}


def _seed_means(by_seed: dict[Any, dict[str, float]]) -> list[float]:
    return [statistics.mean(folds.values()) for folds in by_seed.values() if folds]


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}" if values else "–"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _worst(per_user: dict[str, float]) -> tuple[str, float]:
    user = min(per_user, key=per_user.get)
    return user, per_user[user]


def verdict(ok: bool, by: float, unit: str = "") -> str:
    return "**met**" if ok else f"**missed** by {by:.4g}{unit}"


def summarize(out: Path, teacher_dir: Path) -> dict[str, Any]:
    """Every number the report shows, from the files of one ``make watch``."""
    evaluation = _read(out / "evaluation.json") or {"seeds": {}}
    seeds = evaluation["seeds"]
    if not seeds:
        raise FileNotFoundError(f"no {out / 'evaluation.json'}: run python -m bench.watch --phases evaluate")
    kinds = {
        kind: {s: {u: f[kind]["acc"] for u, f in folds.items()} for s, folds in seeds.items()}
        for kind in ("float", "int8")
    }
    folds = [f for by_user in seeds.values() for f in by_user.values()]
    timings = {s: _read(out / f"seed{s}" / "timing.json") for s in seeds}
    teachers = accuracies(teacher_dir)
    ensemble = _read(teacher_dir / "evaluation.json")
    peer = _read(out / "minirocket.json")
    return {
        "seeds": sorted(seeds, key=int),
        "parameters": folds[0]["parameters"],
        "bytes": {k: statistics.median(f[k]["bytes"] for f in folds) for k in ("float", "int8")},
        "p50_ms": {k: statistics.median(f[k]["p50_ms"] for f in folds) for k in ("float", "int8")},
        "seed_means": {k: _seed_means(v) for k, v in kinds.items()},
        "per_user": {k: per_user_mean(v) for k, v in kinds.items()},
        "fold_s": statistics.median(f["wall_s"] for f in folds if f.get("wall_s") is not None),
        "loso_s": {s: t["seconds"] for s, t in timings.items() if t},
        "best": {
            "seed_means": _seed_means(teachers),
            "per_user": per_user_mean(teachers),
            "fold_s": mean_seconds(teacher_dir) if teachers else None,
        },
        "ensemble": {u: r["ensemble"] for u, r in ensemble["users"].items()} if ensemble else None,
        "teacher_logits_s": (_read(out / "teachers.json") or {}).get("logits_s"),
        "no_teachers": accuracies(out / "no_distillation") if (out / "no_distillation").is_dir() else {},
        "peer": peer,
    }


def _goals(s: dict[str, Any]) -> list[str]:
    best_mean = statistics.mean(s["best"]["seed_means"])
    _, best_worst = _worst(s["best"]["per_user"])
    mean = statistics.mean(s["seed_means"]["float"])
    worst_user, worst = _worst(s["per_user"]["float"])
    mean8 = statistics.mean(s["seed_means"]["int8"])
    params, int8_kb, p50 = s["parameters"], s["bytes"]["int8"] / 1000, s["p50_ms"]
    mean_goal, worst_goal = best_mean - MEAN_MARGIN, best_worst - WORST_MARGIN
    change = mean8 - mean
    lines = [
        f"- **Small**: {params:,} parameters (≤ {MAX_PARAMETERS:,}: "
        f"{verdict(params <= MAX_PARAMETERS, params - MAX_PARAMETERS)}); LOSO mean {mean:.4f} vs the "
        f"best model's {best_mean:.4f} (within {MEAN_MARGIN}: "
        f"{verdict(mean >= mean_goal, mean_goal - mean)}); "
        f"worst user {worst_user} {worst:.4f} vs its worst {best_worst:.4f} (within {WORST_MARGIN}: "
        f"{verdict(worst >= worst_goal, worst_goal - worst)}).",
        f"- **Quantised**: int8 file {int8_kb:.1f} KB (≤ {MAX_INT8_KB:.0f} KB: "
        f"{verdict(int8_kb <= MAX_INT8_KB, int8_kb - MAX_INT8_KB, ' KB')}); accuracy {mean8:.4f} vs float "
        f"{mean:.4f}, change {change:+.4f} (within {MAX_INT8_DROP}: "
        f"{verdict(abs(change) <= MAX_INT8_DROP, abs(change) - MAX_INT8_DROP)}).",
        f"- **Fast to run**: one gesture p50 float {p50['float']:.3f} ms, int8 {p50['int8']:.3f} ms "
        f"(≤ {MAX_P50_MS} ms: float {verdict(p50['float'] <= MAX_P50_MS, p50['float'] - MAX_P50_MS, ' ms')}, "
        f"int8 {verdict(p50['int8'] <= MAX_P50_MS, p50['int8'] - MAX_P50_MS, ' ms')}).",
    ]
    if not s["loso_s"]:
        return [
            *lines,
            "- **Fast to train**: no one-command timing recorded (the folds ran in several parts).",
        ]
    slowest = max(s["loso_s"].values())
    took = ", ".join(f"{v:.0f} s" for v in s["loso_s"].values())
    fast = (
        f"- **Fast to train**: the 8-fold command took {took} (≤ {MAX_LOSO_S:.0f} s: "
        f"{verdict(slowest <= MAX_LOSO_S, slowest - MAX_LOSO_S, ' s')}) with mean {mean:.4f} "
        f"(≥ {MIN_FAST_MEAN}: {verdict(mean >= MIN_FAST_MEAN, MIN_FAST_MEAN - mean)})"
    )
    if s["peer"]:
        peer_mean = statistics.mean(f["accuracy"] for f in s["peer"]["folds"].values())
        ratio = slowest / s["peer"]["total_s"]
        fast += (
            f"; MiniRocket {peer_mean:.4f} in {s['peer']['total_s']:.0f} s (beaten on accuracy: "
            f"{verdict(mean > peer_mean, peer_mean - mean)}; time ratio {ratio:.2f}×, within "
            f"{MAX_PEER_RATIO:.0f}×: {verdict(ratio <= MAX_PEER_RATIO, ratio - MAX_PEER_RATIO, '×')})"
        )
    return [*lines, fast + "."]


def render(s: dict[str, Any], command: str) -> str:
    users = sorted(s["per_user"]["float"])
    best_fold_s = s["best"]["fold_s"]
    peer = s["peer"]
    lines = [
        "# The watch: a distilled network for new wearers, small, int8 and fast to train",
        "",
        f"Generated by `{command}`. Machine: {machine()}. Leave-one-user-out: 8 folds, each user held out "
        f"entirely; seeds {', '.join(s['seeds'])}. "
        "`experiment=watch` learns from the labels and from the averaged soft predictions of the "
        "best model's 3 seeds trained without the fold's user (`model.distillation`). Accuracy: "
        "ONNX models on onnxruntime. Latency: one gesture, one thread, p50.",
        "",
        "| model | parameters | file | LOSO mean | worst user | training s / fold | all 8 folds | p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("float", "int8"):
        user, worst = _worst(s["per_user"][kind])
        all8 = ", ".join(f"{v:.0f} s" for v in s["loso_s"].values()) or "–"
        lines.append(
            f"| experiment=watch, {kind} | {s['parameters']:,} | {s['bytes'][kind] / 1000:.1f} KB "
            f"| {_spread(s['seed_means'][kind])} | {user} {worst:.4f} | {s['fold_s']:.1f} | {all8} "
            f"| {s['p50_ms'][kind]:.3f} |"
        )
    if s["no_teachers"]:
        per_user = per_user_mean(s["no_teachers"])
        user, worst = _worst(per_user)
        lines.append(
            f"| the same without teachers (`model.distillation.weight=0`), float | {s['parameters']:,} | "
            f"| {_spread(_seed_means(s['no_teachers']))} | {user} {worst:.4f} | | | |"
        )
    if s["best"]["seed_means"]:
        user, worst = _worst(s["best"]["per_user"])
        lines.append(
            f"| best model (GRU 256/2, experiment=new_wearer), one seed | {BEST_PARAMETERS:,} | 2.4 MB "
            f"| {_spread(s['best']['seed_means'])} | {user} {worst:.4f} | {best_fold_s:.1f} "
            f"| {8 * best_fold_s:.0f} s | see reports/quantize.md |"
        )
    if s["ensemble"]:
        user, worst = _worst(s["ensemble"])
        lines.append(
            f"| its 3 seeds averaged (the teachers) | {3 * BEST_PARAMETERS:,} | 7.2 MB "
            f"| {statistics.mean(s['ensemble'].values()):.4f} | {user} {worst:.4f} | {3 * best_fold_s:.1f} "
            f"| {24 * best_fold_s:.0f} s | |"
        )
    if peer:
        folds = peer["folds"]
        accuracy = {u: f["accuracy"] for u, f in folds.items()}
        user, worst = _worst(accuracy)
        size_mb = statistics.median(f["size_bytes"] for f in folds.values()) / 1e6
        fit_s = statistics.median(f["fit_s"] for f in folds.values())
        ms = statistics.median(f["one_gesture_ms"] for f in folds.values())
        lines.append(
            f"| MiniRocket (aeon, 10k kernels, ridge) | – | {size_mb:.1f} MB pickled "
            f"| {statistics.mean(accuracy.values()):.4f} | {user} {worst:.4f} | {fit_s:.1f} "
            f"| {peer['total_s']:.0f} s | {ms:.3f} (aeon, not ONNX) |"
        )
    if s["teacher_logits_s"] is not None:
        lines += [
            "",
            f"The teachers' cost, apart: training {best_fold_s:.0f} s per fold and seed (24 trainings, "
            f"about {24 * best_fold_s / 60:.0f} min, once), and their logits over the dataset "
            f"{s['teacher_logits_s']:.1f} s (once; cached, so the timed command reads them).",
        ]
    lines += [
        "",
        "## Per user (mean over seeds)",
        "",
        "| model | " + " | ".join(users) + " |",
        "|---|" + "---|" * len(users),
    ]
    series = {"watch, float": s["per_user"]["float"], "watch, int8": s["per_user"]["int8"]}
    if s["no_teachers"]:
        series["watch without teachers"] = per_user_mean(s["no_teachers"])
    if s["best"]["per_user"]:
        series["best model, one seed"] = s["best"]["per_user"]
    if s["ensemble"]:
        series["the teachers averaged"] = s["ensemble"]
    if peer:
        series["MiniRocket"] = {u: f["accuracy"] for u, f in peer["folds"].items()}
    for label, per_user in series.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{per_user.get(u, float('nan')):.4f}" for u in users) + " |"
        )
    lines += ["", "## Goals", "", *_goals(s), ""]
    return "\n".join(lines)


def watch_report(
    out: Path, teacher_dir: Path, report: Path, command: str, tracking_uri: str | None
) -> str | None:
    """Write ``report``; log it and the headline numbers as one MLflow run (None: no tracking)."""
    summary = summarize(out, teacher_dir)
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(report, render(summary, command))
    if tracking_uri is None:
        return None
    from gesture_rnn import tracking

    with tracking.report_run(tracking_uri, EXPERIMENT, "watch", command, [report]) as (client, run_id):
        for kind in ("float", "int8"):
            client.log_metric(run_id, f"loso_mean/{kind}", statistics.mean(summary["seed_means"][kind]))
            client.log_metric(run_id, f"loso_worst/{kind}", min(summary["per_user"][kind].values()))
            client.log_metric(run_id, f"bytes/{kind}", summary["bytes"][kind])
            client.log_metric(run_id, f"p50_ms/{kind}", summary["p50_ms"][kind])
        client.log_metric(run_id, "parameters", summary["parameters"])
        for seed, seconds in summary["loso_s"].items():
            client.log_metric(run_id, f"loso_seconds/seed{seed}", seconds)
    return run_id
