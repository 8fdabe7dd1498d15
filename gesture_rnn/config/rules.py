"""Value rules for config keys: one message shape (key, value, allowed range) everywhere.

Light imports only (no torch): ``predict.py model=<file>.onnx`` checks its settings with these
in a process that never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from gesture_rnn.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str
    check: Callable[[object], bool]


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def check_rules(cfg: DictConfig, rules: Iterable[Rule]) -> None:
    """Raise ConfigError for the first key whose value breaks its rule; absent keys are skipped
    (a config without one, e.g. a custom model, is not ours to judge)."""
    for rule in rules:
        if OmegaConf.select(cfg, rule.key, default="<absent>") == "<absent>":
            continue
        value = OmegaConf.select(cfg, rule.key)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not rule.check(value):
            raise ConfigError(f"{rule.key}={value!r} is invalid: it must be {rule.allowed}")
