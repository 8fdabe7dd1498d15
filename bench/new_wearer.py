"""The new wearer out of the box: ``make new_wearer`` -> reports/new_wearer.md (+ .png, MLflow).

    python -m bench.new_wearer [--phases screen full evaluate report] [--candidates ...]
                               [--final best motion] [--seeds 0 1 2] [--out DIR]

Every training is ``experiment=best`` plus one candidate's overrides, on leave-one-user-out
folds, with model selection and calibration on one whole *training* user (``data.val_users=1``):
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
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from bench.multirun import PROJECT_ROOT, USERS, run_missing
from gesture_rnn.new_wearer import seed_runs
from gesture_rnn.trials import tested_checkpoint

# the three lowest folds of experiment=best with a validation user (reports/calibration.md)
SCREEN_USERS = ["U03", "U04", "U07"]
BASE = [
    "experiment=best",
    "data.split=users",
    "data.val_users=1",
    "data.val_fraction=0",
    "console=quiet",
    "logger=none",
    "log_model=false",
]
# name -> overrides on top of experiment=best
CANDIDATES: dict[str, list[str]] = {
    "best": [],
    "motion": ["model.net.inputs=motion"],
    "separated": ["model.net.inputs=separated"],
    "rotate15": ["data.augment.rotate_deg=15"],
    "lstm": ["model/net=lstm", "model.net.hidden=224", "model.net.layers=2", "model.net.dropout=0.06"],
}
TTA_COPIES, TTA_DEGREES = 8, 20.0


def _fold_values(users: list[str]) -> list[str]:
    return [f"[{user}]" for user in users]


def train_phase(sweeps: dict[Path, list[str]], users: list[str]) -> bool:
    """Each sweep folder -> its overrides, over the given folds; prints one line per sweep."""
    ok = True
    for sweep_dir, overrides in sweeps.items():
        result = run_missing(sweep_dir, [*BASE, *overrides], "data.test_users", _fold_values(users))
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
    from gesture_rnn.inference import class_probabilities

    def one(sequence) -> object:
        return class_probabilities(net, torch.as_tensor(sequence)[None], torch.tensor([len(sequence)]))

    return timings(one, sequences, repeats=repeats, warmup=0)["p50"]


def load_members(variant_dir: Path, seeds: list[int]) -> dict[str, list[torch.nn.Module]]:
    """Held-out user -> the tested network of every seed (users missing a seed are left out)."""
    from gesture_rnn.models.checkpoint import load_net
    from gesture_rnn.reports import held_out

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
    from gesture_rnn.data.batching import pad_sequences
    from gesture_rnn.inference import class_probabilities
    from gesture_rnn.personalizing import user_recordings

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
    from gesture_rnn.ensembling import AveragedNet, fixed_rotations
    from gesture_rnn.parallel import torch_threads

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
        from gesture_rnn.new_wearer import new_wearer_report

        new_wearer_report(args.out, args.final, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report} and {args.report.with_suffix('.png')}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
