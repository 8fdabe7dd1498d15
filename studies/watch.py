"""The watch-size model against the best model and MiniRocket: ``make watch`` -> reports/watch.md.

    python -m studies.watch [--phases teachers train evaluate peer report] [--seeds 0 1 2]

Phases (each keeps what is already finished under --out, so a stopped run continues):
  teachers  the distillation teachers: ``make new_wearer``'s experiment=new_wearer GRUs, 8 folds x
            seeds 0-2 (trained here if missing), then their logits over the dataset cached — the
            teachers' cost, reported apart from the student's
  train     per seed ONE command, timed by the wall clock (start-up, MLflow, teacher cache reads
            included): python train.py cv=users experiment=watch seed=K
  ablation  the same, model.distillation.weight=0 (no teachers): what distillation is worth
  evaluate  every fold's model exported to ONNX, float and int8 weights: accuracy on its held-out
            user, file size, one-gesture latency (onnxruntime, one thread)
  peer      MiniRocket (aeon, ``pip install -e '.[peers]'``) on the same 8 folds, timed the same way
  report    reports/watch.md and one MLflow run in experiment ``gestures-watch``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gesture_rnn.data.facts import USERS
from gesture_rnn.utils.atomic import write_text_atomically
from studies.multirun import PROJECT_ROOT, run_cv
from studies.new_wearer import accuracies, mean_seconds
from studies.reports import machine

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
        raise FileNotFoundError(
            f"no {out / 'evaluation.json'}: run python -m studies.watch --phases evaluate"
        )
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
    from gesture_rnn.tracking import runs

    with runs.report_run(tracking_uri, EXPERIMENT, "watch", command, [report]) as (client, run_id):
        for kind in ("float", "int8"):
            client.log_metric(run_id, f"loso_mean/{kind}", statistics.mean(summary["seed_means"][kind]))
            client.log_metric(run_id, f"loso_worst/{kind}", min(summary["per_user"][kind].values()))
            client.log_metric(run_id, f"bytes/{kind}", summary["bytes"][kind])
            client.log_metric(run_id, f"p50_ms/{kind}", summary["p50_ms"][kind])
        client.log_metric(run_id, "parameters", summary["parameters"])
        for seed, seconds in summary["loso_s"].items():
            client.log_metric(run_id, f"loso_seconds/seed{seed}", seconds)
    return run_id


TEACHER_SEEDS = (0, 1, 2)
QUIET = ["console=quiet"]
# the recipe as it is: no validation (cv.val_users=0), the last epoch tested
WATCH_CV = ["experiment=watch", "cv.val_users=0"]
# the shipped recipe as it is (no teachers): what distillation is worth
NO_TEACHERS = ["logger=none"]


def teachers_override(teacher_dir: Path) -> str:
    """The distilled run: experiment=watch taught by the new-wearer GRUs of every teacher seed."""
    return f"model.distillation.teachers=[{','.join(str(teacher_dir / f'seed{s}') for s in TEACHER_SEEDS)}]"


def teachers_phase(teacher_dir: Path) -> dict:
    """Train missing teachers (make new_wearer's full/best sweeps); fill the logits cache."""
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.training.distillation import run_checkpoints, teacher_logits
    from studies.new_wearer import train_phase

    print(
        f"teachers: experiment=new_wearer, 8 folds x seeds {list(TEACHER_SEEDS)} in {teacher_dir}", flush=True
    )
    sweeps = {teacher_dir / f"seed{seed}": [f"seed={seed}"] for seed in TEACHER_SEEDS}
    if not train_phase(sweeps, USERS):
        raise SystemExit(f"error: teacher training failed; see the logs under {teacher_dir}")
    dm = GestureDataModule.from_shipped_config(val_fraction=0.0)
    dm.setup()
    checkpoints = [c for seed in TEACHER_SEEDS for c in run_checkpoints(teacher_dir / f"seed{seed}")]
    started = time.perf_counter()
    for checkpoint in checkpoints:
        teacher_logits(checkpoint, dm.records.sequences, dm.hparams.cache_dir)
    seconds = time.perf_counter() - started
    print(f"  logits of {len(checkpoints)} teachers cached in {seconds:.1f} s", flush=True)
    return {"teachers": len(checkpoints), "logits_s": seconds}


def train_phase(out: Path, seeds: list[int], teacher_dir: Path) -> None:
    """One distilled ``train.py cv=users experiment=watch`` per seed, wall time recorded when all
    8 folds ran in that one command."""
    for seed in seeds:
        sweep_dir = out / f"seed{seed}"
        overrides = [*WATCH_CV, teachers_override(teacher_dir), f"seed={seed}", *QUIET]
        result = run_cv(sweep_dir, overrides, USERS)
        if result.log is None:
            print(f"  seed {seed}: done before", flush=True)
            continue
        if result.code or result.left:
            raise SystemExit(
                f"error: experiment=watch seed={seed} failed (exit {result.code}); see {result.log}"
            )
        timing = {
            "seconds": result.seconds,
            "folds": len(USERS),
            "one_command": len(result.done) == len(USERS),
        }
        if timing["one_command"] and len(list(sweep_dir.glob("cv*.log"))) == 1:
            (sweep_dir / "timing.json").write_text(json.dumps(timing))
        mean = sum(result.done.values()) / len(result.done)
        print(f"  seed {seed}: LOSO mean {mean:.4f}, 8 folds in {result.seconds:.1f} s", flush=True)


def ablation_phase(out: Path, seeds: list[int]) -> None:
    """``no_distillation/seed<k>``: experiment=watch as shipped, without teachers."""
    for seed in seeds:
        overrides = [*WATCH_CV, *NO_TEACHERS, f"seed={seed}", *QUIET]
        result = run_cv(out / "no_distillation" / f"seed{seed}", overrides, USERS)
        if result.code or result.left:
            raise SystemExit(f"error: the no-teacher run of seed {seed} failed; see {result.log}")
        mean = sum(result.done.values()) / len(result.done)
        print(f"  seed {seed}, no teachers: LOSO mean {mean:.4f}", flush=True)


def evaluate_phase(out: Path, seeds: list[int]) -> None:
    """``evaluation.json``: per seed and fold, float and int8 ONNX accuracy, sizes, latency."""
    from bench.inference import timings
    from bench.quantize import session
    from gesture_rnn.commands.personalize import user_recordings
    from gesture_rnn.commands.predict import onnx_probabilities
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.deploy.export import export_onnx
    from gesture_rnn.deploy.quantize import quantize_weights_int8
    from gesture_rnn.models.checkpoint import load_net
    from gesture_rnn.tracking.trials import tested_checkpoint
    from studies.multirun import held_out
    from studies.new_wearer import seed_runs

    dm = GestureDataModule.from_shipped_config(val_fraction=0.0)
    dm.setup()
    records, work = dm.records, Path(tempfile.mkdtemp())
    result: dict = {"seeds": {}}
    for seed in seeds:
        folds = {}
        for run in seed_runs(out / f"seed{seed}"):
            user = held_out(run)
            net = load_net(tested_checkpoint(run["dir"]))
            files = {"float": export_onnx(net, work / f"{seed}-{user}.onnx")}
            files["int8"] = quantize_weights_int8(files["float"], work / f"{seed}-{user}.int8.onnx")
            mine = user_recordings(records, user)
            sequences, labels = [records.sequences[i] for i in mine], records.labels[mine]
            fold: dict = {"wall_s": run["metrics"].get("time/wall_s")}
            for kind, file in files.items():
                onnx = session(file)
                predicted = onnx_probabilities(onnx, sequences).argmax(1)
                fold[kind] = {
                    "acc": int((predicted == labels).sum()) / len(labels),
                    "bytes": file.stat().st_size,
                    "p50_ms": timings(lambda seq, s=onnx: onnx_probabilities(s, [seq]), sequences)["p50"],
                }
            fold["parameters"] = sum(p.numel() for p in net.parameters())
            folds[user] = fold
            print(
                f"  seed {seed} {user}: float {fold['float']['acc']:.4f} int8 {fold['int8']['acc']:.4f}",
                flush=True,
            )
        result["seeds"][str(seed)] = folds
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))


def peer_phase(out: Path) -> None:
    """``minirocket.json``: MiniRocket on the 8 leave-one-user-out folds, timed as one job."""
    from gesture_rnn.data.datamodule import GestureDataModule
    from studies import peers

    if not peers.available():
        print("peer: aeon is not installed (pip install -e '.[peers]'); MiniRocket skipped", flush=True)
        return
    dm = GestureDataModule.from_shipped_config(val_fraction=0.0)
    dm.setup()
    folds, total = peers.minirocket_loso(dm.records, USERS)
    result = {"folds": {user: fold.__dict__ for user, fold in folds.items()}, "total_s": total}
    (out / "minirocket.json").write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--phases", nargs="+", default=["teachers", "train", "ablation", "evaluate", "peer", "report"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "watch")
    parser.add_argument(
        "--teachers", type=Path, default=PROJECT_ROOT / "outputs" / "new_wearer" / "full" / "best"
    )
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "watch.md")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{PROJECT_ROOT / 'outputs' / 'mlflow.db'}")
    parser.add_argument("--command", default="make watch", help="the command named in the report")
    args = parser.parse_args(argv)
    phases = ("teachers", "train", "ablation", "evaluate", "peer", "report")
    if unknown := set(args.phases) - set(phases):
        parser.error(f"--phases: unknown {sorted(unknown)}; allowed: {' '.join(phases)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if "teachers" in args.phases:
        (args.out / "teachers.json").write_text(json.dumps(teachers_phase(args.teachers)))
    if "train" in args.phases:
        print(f"train: experiment=watch, 8 folds, seeds {args.seeds}", flush=True)
        train_phase(args.out, args.seeds, args.teachers)
    if "ablation" in args.phases:
        print("ablation: the shipped recipe, without teachers", flush=True)
        ablation_phase(args.out, args.seeds)
    if "evaluate" in args.phases:
        print("evaluate: ONNX float and int8 on each held-out user (one thread)", flush=True)
        evaluate_phase(args.out, args.seeds)
    if "peer" in args.phases:
        print("peer: MiniRocket on the same 8 folds", flush=True)
        peer_phase(args.out)
    if "report" in args.phases:
        watch_report(args.out, args.teachers, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report}")
    sys.exit(0)


if __name__ == "__main__":
    main()
