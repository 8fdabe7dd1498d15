"""``teach.py``: a trained model answering one more gesture, taught from a few takes.

    python teach.py ckpt_path=<checkpoint> input=takes/ name="tap twice" [replace=7]

The takes are read as ``predict.py`` reads recordings; the known gestures' prototypes are the base
model's representations of its own training recordings (found by content among the dataset's,
``seen`` in the checkpoint). The result is the base checkpoint with a ``taught`` record:
``predict.py`` answers the taught gesture by its name (as gesture 21, 22, …), ``export.py`` exports
it. Teaching again from a taught checkpoint adds one more gesture.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from gesture_rnn.config.rules import Rule, check_rules, is_int
from gesture_rnn.data.facts import GESTURES
from gesture_rnn.errors import ConfigError, DataError

MIN_TAKE_SAMPLES = 5  # shorter is a tap of Record/Stop, not a gesture (the dataset's shortest: 10)

SETTINGS = (
    Rule("name", "a non-empty name such as wave", lambda v: isinstance(v, str) and v.strip() != ""),
    Rule("replace", "a gesture 1-20 or null", lambda v: v is None or (is_int(v) and 1 <= v <= 20)),
)


def read_takes(source: object) -> list[np.ndarray]:
    """The takes (a file, a folder, a zip), each refused in one line if it is no gesture."""
    from gesture_rnn.data.recordings import read_recordings

    if not source:
        raise ConfigError("input is required: the takes of the new gesture (a file, a folder or a zip)")
    takes = list(read_recordings(str(source)))
    for name, values in takes:
        if len(values) < MIN_TAKE_SAMPLES or not np.isfinite(values).all():
            raise DataError(
                f"{name} is not a gesture: {len(values)} sample(s) (at least {MIN_TAKE_SAMPLES} finite ones)"
            )
    return [values for _, values in takes]


def run_teach(cfg: Any) -> dict[str, Any]:
    """``teach.py``: teach, check on the takes, write the taught checkpoint."""
    from gesture_rnn.deploy.inference import probabilities_of
    from gesture_rnn.models.checkpoint import (
        net_from_checkpoint,
        output_beside_base,
        read_checkpoint,
        seen_recordings,
    )
    from gesture_rnn.models.teach import check_takes, known_from_dataset, taught_record, teach
    from gesture_rnn.utils.atomic import atomic_write

    check_rules(cfg, SETTINGS)
    checkpoint = read_checkpoint(cfg.get("ckpt_path"))
    out = output_beside_base(cfg.out, cfg.ckpt_path, "taught")
    name = str(cfg.name).strip()
    earlier = dict(checkpoint.get("taught") or {})
    if name in earlier.get("names", []):
        raise ConfigError(f"name={name!r} is taught already: choose another name")
    takes = read_takes(cfg.get("input"))
    check_takes(takes, name)
    net = net_from_checkpoint(checkpoint)
    started = time.perf_counter()
    known = None
    if not earlier:
        seen = seen_recordings(checkpoint)
        known = known_from_dataset(
            net, seen, cfg.get("data_path"), cfg.cache_dir, f"ckpt_path={cfg.ckpt_path}"
        )
    replace = None if cfg.get("replace") is None else int(cfg.replace) - 1
    teach(net, takes, known, replace)
    seconds = time.perf_counter() - started
    names = [*earlier.get("names", []), name]
    record = taught_record(net, names)
    answered = probabilities_of(net, takes).argmax(1)
    recognised = int((answered == len(GESTURES) + len(names) - 1).sum())
    with atomic_write(out, "wb", "taught checkpoint") as handle:
        torch.save({**checkpoint, "taught": record}, handle)
    number = len(GESTURES) + len(names)
    stands_in = f", in place of gesture {int(cfg.replace)}" if cfg.get("replace") is not None else ""
    print(
        f'gesture {number} "{name}"{stands_in}: taught from {len(takes)} take(s) in {seconds:.2f} s\n'
        f"  its takes answered as it  {recognised}/{len(takes)}\n"
        f"  checkpoint     {out} (ckpt_path= of predict, export)"
    )
    return {"gesture": number, "name": name, "seconds": seconds, "recognised": recognised}
