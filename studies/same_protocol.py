"""``python -m studies.same_protocol <git revision>``: does the study's own protocol
(``python train.py``: the default GRU, random 80/20, seed 0) give the same run here as at an
earlier revision? Trains both (the revision from a temporary git worktree), then compares every
metric and every weight of the tested checkpoints: a change that was not meant to touch the
protocol must leave it bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gesture_rnn.config.resolvers import PROJECT_ROOT
from gesture_rnn.data.source import dataset_on_disk
from gesture_rnn.errors import DataError


def train(tree: Path, run_dir: Path, data: str) -> dict[str, float]:
    command = [
        sys.executable,
        str(tree / "train.py"),
        "logger=none",
        "console=quiet",
        f"data.path={data}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}  # that revision's package, not this checkout's
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m studies.same_protocol", description=__doc__.splitlines()[0]
    )
    parser.add_argument("revision", help="a git revision of this repository, e.g. a8f5b45")
    parser.add_argument("--data", default=os.environ.get("GESTURES_DATA"))
    args = parser.parse_args(argv)
    try:
        args.data = str(dataset_on_disk(args.data))  # else the zip make data (or a run) kept
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    import torch

    from gesture_rnn.tracking.trials import tested_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        before_tree, runs = Path(scratch) / "before", Path(scratch) / "runs"
        subprocess.run(
            [
                "git",
                "-C",
                str(PROJECT_ROOT),
                "worktree",
                "add",
                "--detach",
                "-q",
                str(before_tree),
                args.revision,
            ],
            check=True,
        )
        try:
            before = train(before_tree, runs / "before", args.data)
            now = train(PROJECT_ROOT, runs / "now", args.data)
            weights = [
                torch.load(tested_checkpoint(runs / name), weights_only=True, map_location="cpu")[
                    "state_dict"
                ]
                for name in ("before", "now")
            ]
        finally:
            subprocess.run(
                ["git", "-C", str(PROJECT_ROOT), "worktree", "remove", "--force", str(before_tree)]
            )
    differ = {
        k: (before[k], now[k])
        for k in before
        if k in now and before[k] != now[k] and not k.startswith("time/")
    }
    same_weights = weights[0].keys() == weights[1].keys() and all(
        torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
    )
    print(
        f"python train.py (seed 0) at {args.revision} and now: test/acc {before['test/acc']:.6f} and "
        f"{now['test/acc']:.6f}; metrics that differ: {differ or 'none'}; weights identical: {same_weights}"
    )
    if differ or not same_weights:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
