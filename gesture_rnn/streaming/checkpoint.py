"""The files a trained spotter travels in, read without Lightning: a ``train.py
experiment=spotter`` checkpoint (weights, settings and the decision rule chosen for it) or the older
``save_spotter`` file. Both load with ``torch.load(weights_only=True)``: plain values, no code."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.streaming.decisions import DecisionRule, rule_from
from gesture_rnn.streaming.spotter import SPOTTER_TARGET, GestureSpotter, build_spotter
from gesture_rnn.utils.atomic import atomic_write

RULE_KEY = "decision_rule"


def write_rule(path: Path, rule: DecisionRule) -> None:
    """Store a chosen decision rule in a checkpoint file (a temporary file, then renamed)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint[RULE_KEY] = asdict(rule)
    with atomic_write(Path(path), "wb", "checkpoint") as handle:
        torch.save(checkpoint, handle)


def is_spotter_checkpoint(checkpoint: Mapping[str, Any]) -> bool:
    net = (checkpoint.get("hyper_parameters") or {}).get("net")
    return isinstance(net, Mapping) and net.get("_target_") == SPOTTER_TARGET


def save_spotter(net: GestureSpotter, rule: DecisionRule, path: Path) -> None:
    """Settings, weights and decision rule only: loaded with ``weights_only=True`` (``load_spotter``,
    which also reads a ``train.py experiment=spotter`` checkpoint)."""
    record = {"settings": net.settings(), "state_dict": net.state_dict(), "rule": asdict(rule)}
    with atomic_write(path, "wb", "spotter") as handle:
        torch.save(record, handle)


def load_spotter(path: str | Path) -> tuple[GestureSpotter, DecisionRule]:
    """A spotter file of ``save_spotter``, or a DataError naming what is wrong with it."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if is_spotter_checkpoint(record):  # a train.py experiment=spotter checkpoint
            net = build_spotter(record["hyper_parameters"]["net"])
            state = record["state_dict"]
            net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
            rule = rule_from(record[RULE_KEY], f"spotter={path}") if RULE_KEY in record else DecisionRule()
        else:
            net = build_spotter({"_target_": SPOTTER_TARGET, **record["settings"]})
            net.load_state_dict(record["state_dict"])
            rule = rule_from(record["rule"], f"spotter={path}")
    except FileNotFoundError:
        raise DataError(
            f"spotter={path}: no such file (train.py experiment=spotter trains spotters)"
        ) from None
    except (
        OSError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        ConfigError,
        pickle.UnpicklingError,
    ) as err:
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise DataError(f"spotter={path} is not a spotter file of this project ({reason})") from None
    check_weights(net, f"spotter={path}")
    return net.eval(), rule


def check_weights(net: GestureSpotter, where: str) -> None:
    """Every weight and the normalisation finite, every standard deviation above zero."""
    for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
        if not torch.isfinite(tensor).all():
            raise DataError(
                f"{where}: its {name} holds values that are not finite numbers; the file is damaged"
            )
    if not (net.std > 0).all():
        raise DataError(
            f"{where}: its normalisation has a standard deviation of {net.std.tolist()} (must be > 0)"
        )


def is_spotter_file(path: str | Path) -> bool:
    """A checkpoint file of ``train.py experiment=spotter`` (False for anything else, unreadable included)."""
    try:
        return is_spotter_checkpoint(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    except Exception:
        return False
