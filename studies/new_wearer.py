"""The new wearer out of the box: ``make new_wearer`` -> reports/new_wearer.md (+ .png, MLflow).

    python -m studies.new_wearer [--phases screen full evaluate report] [--candidates ...]
                               [--final best motion] [--seeds 0 1 2] [--out DIR]

Every training is ``experiment=gru_large`` plus one candidate's overrides, ``train.py cv=users``,
with model selection and calibration on one whole *training* user (``cv.val_users=1``):
the held-out user is never used for training or for choosing anything.

Phases (each skips what is already finished under --out, so a stopped run continues):
  screen    every candidate on the hardest folds (SCREEN_USERS), seed 0 — the cheap first look
  full      the --final variants on all 8 folds for every seed
  evaluate  from the full runs' checkpoints, per fold: each seed alone, the seeds' ensemble
            (mean of their calibrated probabilities), each with and without test-time rotations,
            and what each costs per gesture (ms on one CPU thread)
  report    reports/new_wearer.md and .png, one MLflow run in experiment ``gestures-new-wearer``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from gesture_rnn.data.facts import USERS
from gesture_rnn.tracking.trials import tested_checkpoint
from gesture_rnn.training.artifacts import save_figure
from gesture_rnn.utils.atomic import write_text_atomically
from studies.multirun import PROJECT_ROOT, finished_runs, held_out, run_cv
from studies.reports import machine

GOAL_MEAN, GOAL_WORST = 0.975, 0.95
EXPERIMENT = "gestures-new-wearer"


def seed_runs(seed_dir: Path) -> list[dict[str, Any]]:
    """The finished folds of one variant and seed (its ``cv=users`` folder)."""
    return finished_runs(seed_dir)


def accuracies(variant_dir: Path) -> dict[int, dict[str, float]]:
    """seed -> held-out user -> test accuracy."""
    result: dict[int, dict[str, float]] = {}
    for seed_dir in sorted(variant_dir.glob("seed*")):
        runs = seed_runs(seed_dir)
        if runs:
            result[int(seed_dir.name[4:])] = {held_out(r): r["metrics"]["test/acc"] for r in runs}
    return result


def mean_seconds(variant_dir: Path) -> float:
    runs = [r for seed_dir in variant_dir.glob("seed*") for r in seed_runs(seed_dir)]
    return statistics.mean(r["metrics"]["time/wall_s"] for r in runs)


def goal_text(mean: float, worst: float) -> str:
    """'met' or 'missed by x' for both goals."""

    def one(value: float, goal: float) -> str:
        return "met" if value >= goal else f"missed by {goal - value:.4f}"

    return f"mean ≥ {GOAL_MEAN}: {one(mean, GOAL_MEAN)}; no user < {GOAL_WORST}: {one(worst, GOAL_WORST)}"


def screen_table(out_dir: Path) -> list[str]:
    rows = {}
    for candidate_dir in sorted((out_dir / "screen").glob("*")):
        by_user = accuracies(candidate_dir).get(0)
        if by_user:
            rows[candidate_dir.name] = (by_user, mean_seconds(candidate_dir))
    if not rows:
        return []
    users = sorted({user for by_user, _ in rows.values() for user in by_user})
    lines = [
        f"## Screen: the hardest folds ({', '.join(users)}), seed 0",
        "",
        f"| candidate | {' | '.join(users)} | mean | s / fold |",
        "|---|" + "---|" * (len(users) + 2),
    ]
    base = rows.get("best")
    for name, (by_user, seconds) in sorted(rows.items(), key=lambda kv: -statistics.mean(kv[1][0].values())):
        cells = " | ".join(f"{by_user[u]:.4f}" if u in by_user else "–" for u in users)
        mean = statistics.mean(by_user.values())
        delta = f" ({mean - statistics.mean(base[0].values()):+.4f})" if base and name != "best" else ""
        lines.append(f"| {name} | {cells} | {mean:.4f}{delta} | {seconds:.0f} |")
    return [*lines, ""]


def summarize(variant_dir: Path) -> dict[str, Any]:
    """Single models (mean and sd over seeds of the 8-fold mean; each user's mean over seeds)
    and the evaluation's ensembles, with their cost."""
    by_seed = accuracies(variant_dir)
    full = {seed: users for seed, users in by_seed.items() if len(users) == 8}
    fold_means = [statistics.mean(users.values()) for users in full.values()]
    per_user = {u: statistics.mean(full[s][u] for s in full) for u in sorted(next(iter(full.values())))}
    summary: dict[str, Any] = {
        "seeds": sorted(full),
        "single_mean": statistics.mean(fold_means),
        "single_sd": statistics.stdev(fold_means) if len(fold_means) > 1 else 0.0,
        "per_user": per_user,
        "per_seed": full,
        "seconds_per_fold": mean_seconds(variant_dir),
        "averaged": {},
    }
    evaluation_file = variant_dir / "evaluation.json"
    if evaluation_file.is_file():
        evaluation = json.loads(evaluation_file.read_text())
        summary["tta"] = evaluation["tta"]
        summary["ms_per_gesture"] = evaluation.get("ms_per_gesture", {})
        users = evaluation["users"]
        for name in ("ensemble", "ensemble+tta"):
            summary["averaged"][name] = {u: users[u][name] for u in sorted(users)}
        seeds = [k for k in next(iter(users.values())) if k.startswith("seed") and k.endswith("+tta")]
        summary["averaged"]["single+tta"] = {
            u: statistics.mean(users[u][k] for k in seeds) for u in sorted(users)
        }
    return summary


@dataclass(frozen=True)
class Option:
    """One way to answer a new wearer: a model, an ensemble, with or without rotations."""

    label: str
    per_user: dict[str, float]
    trainings: int  # trainings per fold
    seconds: float  # their time per fold
    ms: float | None  # milliseconds per gesture, one thread
    mean_text: str = ""  # the mean column, when it says more than the mean (± sd over seeds)


def _trainings(option: Option) -> str:
    plural = "s" if option.trainings > 1 else ""
    return f"{option.trainings} training{plural} per fold ({option.seconds:.0f} s)"


def _meets_goals(per_user: dict[str, float]) -> bool:
    return statistics.mean(per_user.values()) >= GOAL_MEAN and min(per_user.values()) >= GOAL_WORST


def _row(option: Option) -> str:
    per_user = option.per_user
    mean, worst = statistics.mean(per_user.values()), min(per_user, key=per_user.get)
    below = [u for u, acc in per_user.items() if acc < GOAL_WORST]
    latency = f", {option.ms:.2f} ms / gesture" if option.ms is not None else ""
    return (
        f"| {option.label} | {option.mean_text or f'{mean:.4f}'} | {worst} {per_user[worst]:.4f} "
        f"| {', '.join(below) or 'none'} | {_trainings(option)}{latency} |"
    )


def _options(summaries: dict[str, dict[str, Any]], families: dict[str, Any] | None) -> list[Option]:
    """Every model the report weighs against the goals, with what it costs."""
    options = []
    for name, s in summaries.items():
        n, seconds, ms = len(s["seeds"]), s["seconds_per_fold"], s.get("ms_per_gesture", {})
        first = f"seed{s['seeds'][0]}"
        spread = f"{s['single_mean']:.4f} ± {s['single_sd']:.4f}"
        options.append(
            Option(f"{name}, single model ({n} seeds)", s["per_user"], 1, seconds, ms.get(first), spread)
        )
        if "single+tta" in s["averaged"]:
            rotations = f"{s['tta']['copies']} rotations ≤ {s['tta']['degrees']:.0f}°"
            averaged = s["averaged"]
            options += [
                Option(
                    f"{name}, single + {rotations}",
                    averaged["single+tta"],
                    1,
                    seconds,
                    ms.get(first + "+tta"),
                ),
                Option(
                    f"{name}, ensemble of {n} seeds", averaged["ensemble"], n, n * seconds, ms.get("ensemble")
                ),
                Option(
                    f"{name}, ensemble + {rotations}",
                    averaged["ensemble+tta"],
                    n,
                    n * seconds,
                    ms.get("ensemble+tta"),
                ),
            ]
    if families:
        variants = [summaries[v] for v in families["variants"]]
        trainings = sum(len(v["seeds"]) for v in variants)
        seconds = sum(len(v["seeds"]) * v["seconds_per_fold"] for v in variants)
        for kind, label in (("ensemble", "ensemble"), ("ensemble+tta", "ensemble + rotations")):
            options.append(
                Option(
                    f"{families['name']}, {label} of every seed",
                    families["averaged"][kind],
                    trainings,
                    seconds,
                    families["ms_per_gesture"].get(kind),
                )
            )
    return options


def new_wearer_report(
    out_dir: Path, variants: list[str], report: Path, command: str, tracking_uri: str | None = None
) -> dict[str, dict[str, Any]]:
    """Write ``report`` (+ .png) from ``out_dir``; log it to MLflow when ``tracking_uri`` is given."""
    summaries = {v: summarize(out_dir / "full" / v) for v in variants if (out_dir / "full" / v).is_dir()}
    if not summaries:
        raise SystemExit(f"error: no finished full runs under {out_dir / 'full'}; run the full phase first")
    runs = sum(len(users) for s in summaries.values() for users in s["per_seed"].values())
    screened = len(list((out_dir / "screen").glob("*/seed0/part*/*/metrics.json")))
    lines = [
        "# New wearers out of the box: leave-one-user-out",
        "",
        f"Generated by `{command}` from {runs} trainings (folds × seeds × models) "
        f"and a screen of {screened}.",
        f"Machine: {machine()}.",
        "",
        "Every training is `experiment=gru_large` (GRU 256/2/0.06, augmentation, 20 epochs) plus the "
        "option named. Each fold holds one user out entirely; model selection and the temperature use "
        "one other *training* user (`cv=users`, `cv.val_users=1`), so the held-out user is "
        f"never used for training or for choosing anything. Goals: mean ≥ {GOAL_MEAN}, no user below "
        f"{GOAL_WORST}.",
        "",
        *screen_table(out_dir),
        "## All eight users",
        "",
        "Single model: the mean over seeds of the 8-fold mean (± sd over seeds); a user's accuracy is its "
        "mean over seeds. Ensemble: the mean of the seeds' calibrated probabilities (one model per seed "
        "per fold, so training costs the number of seeds times as much). Rotations: each recording "
        "also classified turned by fixed random rotations, probabilities averaged.",
        "",
        "| model | LOSO mean | worst user | users < 0.95 | cost |",
        "|---|---|---|---|---|",
    ]
    options = _options(summaries, _families(out_dir, summaries))
    lines += [_row(option) for option in options]
    lines.append("")
    for option in options:
        per_user = option.per_user
        lines += [
            f"**{option.label}** — {goal_text(statistics.mean(per_user.values()), min(per_user.values()))}",
            "",
        ]
    if meeting := [o for o in options if _meets_goals(o.per_user)]:
        cheapest = min(meeting, key=lambda o: (o.trainings, o.ms or 0.0))
        latency = f", {cheapest.ms:.2f} ms per gesture on one thread" if cheapest.ms is not None else ""
        lines += [
            f"Cheapest option that meets both goals: **{cheapest.label}** ({_trainings(cheapest)}{latency}).",
            "",
        ]
    for name, s in summaries.items():
        seeds = s["seeds"]
        extra = [k for k in ("ensemble", "ensemble+tta") if k in s["averaged"]]
        lines += [
            f"### {name}: per user",
            "",
            "| user | " + " | ".join(f"seed {k}" for k in seeds) + " | mean | " + " | ".join(extra) + " |",
            "|---|" + "---|" * (len(seeds) + 1 + len(extra)),
        ]
        for user, mean in s["per_user"].items():
            cells = [f"{s['per_seed'][k][user]:.4f}" for k in seeds] + [f"{mean:.4f}"]
            cells += [f"{s['averaged'][k][user]:.4f}" for k in extra]
            lines.append(f"| {user} | " + " | ".join(cells) + " |")
        lines.append("")
    plot = report.with_suffix(".png")
    lines += [f"![accuracy per new wearer]({plot.name})", ""]
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(report, "\n".join(lines))
    series = {option.label: option.per_user for option in options}
    _plot(series, plot)
    if tracking_uri:
        _log(series, report, command, tracking_uri)
    return summaries


def _families(out_dir: Path, summaries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The ensemble of every variant's seeds (``full/families.json``), if it was evaluated."""
    path = out_dir / "full" / "families.json"
    if not path.is_file():
        return None
    evaluation = json.loads(path.read_text())
    if not set(evaluation["variants"]) <= set(summaries):
        return None
    users = evaluation["users"]
    return {
        "name": " + ".join(evaluation["variants"]),
        "variants": evaluation["variants"],
        "averaged": {
            kind: {u: users[u][kind] for u in sorted(users)} for kind in ("ensemble", "ensemble+tta")
        },
        "ms_per_gesture": evaluation.get("ms_per_gesture", {}),
    }


def _plot(series: dict[str, dict[str, float]], path: Path) -> None:
    shown = [(label, v) for label, v in series.items() if "single +" not in label]
    users = sorted({user for _, per_user in shown for user in per_user})
    fig, ax = plt.subplots(figsize=(9, 6))
    width = 0.8 / len(shown)
    for i, (label, per_user) in enumerate(shown):
        xs = [u + (i - (len(shown) - 1) / 2) * width for u in range(len(users))]
        mean = statistics.mean(per_user.values())
        ax.bar(xs, [per_user.get(u, 0) for u in users], width, label=f"{label} (mean {mean:.4f})")
    ax.axhline(GOAL_WORST, color="red", linestyle="--", linewidth=1, label=f"no user below {GOAL_WORST}")
    ax.axhline(GOAL_MEAN, color="green", linestyle=":", linewidth=1, label=f"mean goal {GOAL_MEAN}")
    ax.set_xticks(range(len(users)), users)
    ax.set(
        ylim=(0.85, 1.0), ylabel="accuracy on the user never seen", title="New wearers (leave-one-user-out)"
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def _log(series: dict[str, dict[str, float]], report: Path, command: str, tracking_uri: str) -> str:
    """One MLflow run: mean and worst user of every model as metrics, report and plot as artifacts."""
    from gesture_rnn.tracking import runs

    files = (report, report.with_suffix(".png"))
    with runs.report_run(tracking_uri, EXPERIMENT, "new_wearer", command, files) as (client, run_id):
        for label, per_user in series.items():
            key = re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")  # MLflow's allowed characters
            client.log_metric(run_id, f"loso_mean/{key}", statistics.mean(per_user.values()))
            client.log_metric(run_id, f"loso_worst/{key}", min(per_user.values()))
    return run_id


# the three lowest folds of experiment=gru_large with a validation user (reports/calibration.md)
SCREEN_USERS = ["U03", "U04", "U07"]
# train.py cv=users: model selection and calibration on one other whole user (cv.val_users=1)
BASE = [
    "experiment=gru_large",
    "cv.val_users=1",
    "console=quiet",
    "logger=none",
    "log_model=false",
]
# name -> overrides on top of experiment=gru_large
CANDIDATES: dict[str, list[str]] = {
    "best": [],
    "motion": ["model.net.inputs=motion"],
    "separated": ["model.net.inputs=separated"],
    "rotate15": ["data.augment.rotate_deg=15"],
    "lstm": ["model/net=lstm", "model.net.hidden=224", "model.net.layers=2", "model.net.dropout=0.06"],
}
TTA_COPIES, TTA_DEGREES = 8, 20.0


def train_phase(sweeps: dict[Path, list[str]], users: list[str]) -> bool:
    """Each folder -> its overrides, ``train.py cv=users`` over the given users; one line each."""
    ok = True
    for sweep_dir, overrides in sweeps.items():
        result = run_cv(sweep_dir, [*BASE, *overrides], users)
        if result.log is None:
            print(f"  {sweep_dir.relative_to(sweep_dir.parents[2])}: done before", flush=True)
            continue
        failed = f" FAILED (exit {result.code}; see {result.log})" if result.code or result.left else ""
        mean = statistics.mean(result.done.values()) if result.done else float("nan")
        print(
            f"  {sweep_dir.relative_to(sweep_dir.parents[2])}: test acc {mean:.4f} over "
            f"{len(result.done)} folds, {result.seconds:.0f} s{failed}",
            flush=True,
        )
        ok = ok and not failed
    return ok


def ms_per_gesture(net: torch.nn.Module, sequences: list, repeats: int = 60) -> float:
    """Median milliseconds to classify one recording (one thread, batch of one)."""
    from bench.inference import timings
    from gesture_rnn.deploy.inference import class_probabilities

    def one(sequence) -> object:
        return class_probabilities(net, torch.as_tensor(sequence)[None], torch.tensor([len(sequence)]))

    return timings(one, sequences, repeats=repeats, warmup=0)["p50"]


def load_members(variant_dir: Path, seeds: list[int]) -> dict[str, list[torch.nn.Module]]:
    """Held-out user -> the tested network of every seed (users missing a seed are left out)."""
    from gesture_rnn.models.checkpoint import load_net

    nets: dict[str, dict[int, torch.nn.Module]] = {}
    for seed in seeds:
        for trial in seed_runs(variant_dir / f"seed{seed}"):
            nets.setdefault(held_out(trial), {})[seed] = load_net(tested_checkpoint(trial["dir"]))
    complete = {
        user: [by_seed[s] for s in seeds] for user, by_seed in nets.items() if set(by_seed) == set(seeds)
    }
    if left_out := sorted(set(USERS) - set(complete)):
        print(
            f"  {variant_dir.name}: not every seed finished for {', '.join(left_out)}; left out", flush=True
        )
    return complete


def score(models: dict[str, torch.nn.Module], records, user: str, result: dict, timed: list[str]) -> None:
    """Each model's accuracy on every recording of ``user`` into ``result["users"][user]``; the
    first user's recordings also time the ``timed`` models (``result["ms_per_gesture"]``)."""
    from gesture_rnn.commands.personalize import user_recordings
    from gesture_rnn.data.batching import pad_sequences
    from gesture_rnn.deploy.inference import class_probabilities

    mine = user_recordings(records, user)
    sequences = [records.sequences[i] for i in mine]
    labels = torch.as_tensor(records.labels[mine])
    accel, lengths = pad_sequences(sequences)
    result["users"][user] = {
        # counted in Python: 380/400 is 0.95 exactly, not float32's 0.94999999
        name: int((class_probabilities(net, accel, lengths).argmax(1) == labels).sum()) / len(labels)
        for name, net in models.items()
    }
    if "ms_per_gesture" not in result:
        timed = [
            name for name in models if not name.startswith("seed") or name.startswith(("seed0", "seed0+"))
        ]
        result["ms_per_gesture"] = {name: ms_per_gesture(models[name], sequences) for name in timed}
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result["users"][user].items())
    print(f"  {user}: {scores}", flush=True)


def evaluate_phase(out: Path, variants: list[str], seeds: list[int]) -> None:
    """Per variant ``full/<variant>/evaluation.json``: each seed alone and the seeds' ensemble,
    with and without test-time rotations. With several variants also ``full/families.json``:
    one ensemble of every variant's seeds (e.g. GRUs and LSTMs)."""
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.models.ensemble import AveragedNet, fixed_rotations
    from gesture_rnn.utils.parallel import torch_threads

    dm = GestureDataModule.from_shipped_config(cache_dir=tempfile.mkdtemp(), val_fraction=0.0)
    dm.setup()
    rotations = fixed_rotations(TTA_COPIES, TTA_DEGREES)
    tta = {"copies": TTA_COPIES, "degrees": TTA_DEGREES}
    members = {variant: load_members(out / "full" / variant, seeds) for variant in variants}
    with torch_threads(1):
        for variant, by_user in members.items():
            print(f"  {variant}:", flush=True)
            result: dict = {"users": {}, "tta": tta}
            for user, nets in by_user.items():
                models: dict[str, torch.nn.Module] = {}
                for seed, net in zip(seeds, nets, strict=True):
                    models[f"seed{seed}"] = net
                    models[f"seed{seed}+tta"] = AveragedNet([net], rotations)
                models["ensemble"] = AveragedNet(nets)
                models["ensemble+tta"] = AveragedNet(nets, rotations)
                timed = [f"seed{seeds[0]}", f"seed{seeds[0]}+tta", "ensemble", "ensemble+tta"]
                score(models, dm.records, user, result, timed)
            (out / "full" / variant / "evaluation.json").write_text(json.dumps(result, indent=1))
        if len(members) > 1:
            print(f"  families ({' + '.join(members)}):", flush=True)
            result = {"variants": list(members), "users": {}, "tta": tta}
            shared = set.intersection(*(set(by_user) for by_user in members.values()))
            for user in sorted(shared):
                nets = [net for by_user in members.values() for net in by_user[user]]
                models = {"ensemble": AveragedNet(nets), "ensemble+tta": AveragedNet(nets, rotations)}
                score(models, dm.records, user, result, list(models))
            (out / "full" / "families.json").write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", nargs="+", default=["screen", "full", "evaluate", "report"])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--final", nargs="+", default=["best", "lstm"], choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "new_wearer")
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "new_wearer.md")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{PROJECT_ROOT / 'outputs' / 'mlflow.db'}")
    parser.add_argument("--command", default="make new_wearer", help="the command named in the report")
    args = parser.parse_args(argv)
    if unknown := set(args.phases) - {"screen", "full", "evaluate", "report"}:
        parser.error(f"--phases: unknown {sorted(unknown)}; allowed: screen full evaluate report")
    ok = True
    if "screen" in args.phases:
        print(f"screen: {len(args.candidates)} candidates on {', '.join(SCREEN_USERS)}, seed 0", flush=True)
        sweeps = {
            args.out / "screen" / name / "seed0": [*CANDIDATES[name], "seed=0"] for name in args.candidates
        }
        ok = train_phase(sweeps, SCREEN_USERS) and ok
    if "full" in args.phases:
        print(f"full: {', '.join(args.final)} on 8 folds, seeds {args.seeds}", flush=True)
        sweeps = {
            args.out / "full" / name / f"seed{seed}": [*CANDIDATES[name], f"seed={seed}"]
            for name in args.final
            for seed in args.seeds
        }
        ok = train_phase(sweeps, USERS) and ok
    if "evaluate" in args.phases:
        print("evaluate: seeds alone, ensembles, test-time rotations (one CPU thread)", flush=True)
        evaluate_phase(args.out, args.final, args.seeds)
    if "report" in args.phases:
        new_wearer_report(args.out, args.final, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report} and {args.report.with_suffix('.png')}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
