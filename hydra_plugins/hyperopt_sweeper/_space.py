"""Hydra sweep overrides -> hyperopt search-space expressions, and suggested values back.

Same grammar, and the same value types, as the Optuna sweeper: ``choice(a,b)`` is categorical,
``range(start,stop,step)`` is ordered integers, ``interval(lo,hi)`` is uniform and
``tag(log, interval(lo,hi))`` log-uniform floats; ``int(interval(lo,hi))`` and
``tag(log, int(interval(lo,hi)))`` are the same over integers (``model.hidden=int(interval(32,512))``).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hyperopt import hp


@dataclass(frozen=True)
class Dimension:
    expression: Any  # a hyperopt pyll expression
    decode: Callable[[float], Any]  # hyperopt's raw value -> the value put in the override


def _index_dimension(key: str, values: list[Any]) -> Dimension:
    """Ordered values as a quantised index, so TPE sees that 128 lies between 64 and 256."""
    top = len(values) - 1
    expression = hp.quniform(key, -0.499, top + 0.499, 1)
    return Dimension(expression, lambda raw: values[min(max(round(raw), 0), top)])


def _whole(raw: float, low: float, high: float) -> int:
    """hyperopt's quantised draw -> an integer in [low, high]."""
    return int(min(max(round(raw), low), high))


def dimension(override: Override) -> Dimension:
    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep():
        assert isinstance(value, ChoiceSweep)
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return Dimension(hp.choice(key, list(range(len(choices)))), lambda raw: choices[int(raw)])
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        return _index_dimension(key, values)
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        # interval bounds are floats unless cast: int(interval(a, b)) sweeps integers, as in Optuna
        integer = isinstance(value.start, int) and isinstance(value.end, int)
        low, high = float(value.start), float(value.end)
        if "log" in value.tags:
            if low <= 0:
                raise ValueError(f"{key}: a log interval needs a positive lower bound, got {low}")
            if integer:
                expression = hp.qloguniform(key, math.log(low), math.log(high), 1)
                return Dimension(expression, lambda raw: _whole(raw, low, high))
            return Dimension(hp.loguniform(key, math.log(low), math.log(high)), float)
        if integer:
            return Dimension(
                hp.quniform(key, low - 0.499, high + 0.499, 1), lambda raw: _whole(raw, low, high)
            )
        return Dimension(hp.uniform(key, low, high), float)
    raise ValueError(f"{override.input_line}: unsupported sweep for the hyperopt sweeper")


def _last_overrides(arguments: list[str]) -> dict[str, Override]:
    """Each key's override, a later one replacing an earlier one (so a command-line
    ``trainer.max_epochs=5`` fixes a key that ``hydra.sweeper.params`` sweeps), in that order."""
    last: dict[str, Override] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        last.pop(key, None)
        last[key] = override
    return last


def search_record(arguments: list[str]) -> dict[str, Any]:
    """What a sweep's trials are comparable by: each swept key's expression and the fixed
    overrides, as text (saved with the state; a resume must ask the same)."""
    record: dict[str, dict[str, str]] = {"space": {}, "fixed": {}}
    for key, override in _last_overrides(arguments).items():
        value = str(override.input_line).partition("=")[2].replace(" ", "")
        record["space" if override.is_sweep_override() else "fixed"][key] = value
    return record


def parse_search_space(arguments: list[str]) -> tuple[dict[str, Dimension], list[str]]:
    """Split overrides into the search space and the fixed overrides every trial gets."""
    last = _last_overrides(arguments)
    space = {key: dimension(o) for key, o in last.items() if o.is_sweep_override()}
    return space, [o.input_line for o in last.values() if not o.is_sweep_override()]
