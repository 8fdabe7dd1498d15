"""The watch-size model against the best model and MiniRocket: ``make watch`` -> reports/watch.md.

    python -m bench.watch [--phases teachers train evaluate peer report] [--seeds 0 1 2]

Phases (each keeps what is already finished under --out, so a stopped run continues):
  teachers  the distillation teachers: ``make new_wearer``'s experiment=new_wearer GRUs, 8 folds x
            seeds 0-2 (trained here if missing), then their logits over the dataset cached — the
            teachers' cost, reported apart from the student's
  train     per seed ONE command, timed by the wall clock (start-up, MLflow, teacher cache reads
            included): python train.py -m experiment=watch seed=K data.test_users=<the 8 folds>
  ablation  the same, model.distillation.weight=0 (no teachers): what distillation is worth
  evaluate  every fold's model exported to ONNX, float and int8 weights: accuracy on its held-out
            user, file size, one-gesture latency (onnxruntime, one thread)
  peer      MiniRocket (aeon, ``pip install -e '.[peers]'``) on the same 8 folds, timed the same way
  report    reports/watch.md and one MLflow run in experiment ``gestures-watch``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.multirun import PROJECT_ROOT, USERS, run_missing

TEACHER_SEEDS = (0, 1, 2)
QUIET = ["console=quiet"]
# the shipped recipe as it is (no teachers): what distillation is worth
NO_TEACHERS = ["logger=none"]


def teachers_override(teacher_dir: Path) -> str:
    """The distilled run: experiment=watch taught by the new-wearer GRUs of every teacher seed."""
    return f"model.distillation.teachers=[{','.join(str(teacher_dir / f'seed{s}') for s in TEACHER_SEEDS)}]"


def _folds() -> list[str]:
    return [f"[{user}]" for user in USERS]


def teachers_phase(teacher_dir: Path) -> dict:
    """Train missing teachers (make new_wearer's full/best sweeps); fill the logits cache."""
    from bench.new_wearer import train_phase
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.distilling import run_checkpoints, teacher_logits

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
    """One distilled ``train.py -m experiment=watch`` over the 8 folds per seed, wall time
    recorded when all 8 ran in that one command."""
    for seed in seeds:
        sweep_dir = out / f"seed{seed}"
        overrides = ["experiment=watch", teachers_override(teacher_dir), f"seed={seed}", *QUIET]
        result = run_missing(sweep_dir, overrides, "data.test_users", _folds())
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
        if timing["one_command"] and len(list(sweep_dir.glob("part*"))) == 1:
            (sweep_dir / "timing.json").write_text(json.dumps(timing))
        mean = sum(result.done.values()) / len(result.done)
        print(f"  seed {seed}: LOSO mean {mean:.4f}, 8 folds in {result.seconds:.1f} s", flush=True)


def ablation_phase(out: Path, seeds: list[int]) -> None:
    """``no_distillation/seed<k>``: experiment=watch as shipped, without teachers."""
    for seed in seeds:
        overrides = ["experiment=watch", *NO_TEACHERS, f"seed={seed}", *QUIET]
        result = run_missing(out / "no_distillation" / f"seed{seed}", overrides, "data.test_users", _folds())
        if result.code or result.left:
            raise SystemExit(f"error: the no-teacher run of seed {seed} failed; see {result.log}")
        mean = sum(result.done.values()) / len(result.done)
        print(f"  seed {seed}, no teachers: LOSO mean {mean:.4f}", flush=True)


def evaluate_phase(out: Path, seeds: list[int]) -> None:
    """``evaluation.json``: per seed and fold, float and int8 ONNX accuracy, sizes, latency."""
    from bench.inference import timings
    from bench.quantize import session
    from gesture_rnn.data.datamodule import GestureDataModule
    from gesture_rnn.exporting import export_onnx
    from gesture_rnn.models.checkpoint import load_net
    from gesture_rnn.new_wearer import seed_runs
    from gesture_rnn.personalizing import user_recordings
    from gesture_rnn.predicting import onnx_probabilities
    from gesture_rnn.quantizing import quantize_weights_int8
    from gesture_rnn.reports import held_out
    from gesture_rnn.trials import tested_checkpoint

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
    from bench import peers
    from gesture_rnn.data.datamodule import GestureDataModule

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
        from gesture_rnn.watch import watch_report

        watch_report(args.out, args.teachers, args.report, args.command, args.tracking_uri)
        print(f"report: {args.report}")
    sys.exit(0)


if __name__ == "__main__":
    main()
