"""The plugin class Hydra finds (``hydra/sweeper=hyperopt``). Hydra imports every public module
under ``hydra_plugins`` at the start of every Hydra app, so this one imports nothing heavy: the
implementation (hyperopt, numpy) is imported when a sweep is set up."""

import sys
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class HyperoptSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.hyperopt_sweeper._impl import HyperoptSweeperImpl, SweepStateError

        try:
            self.sweeper = HyperoptSweeperImpl(**settings)
        except SweepStateError as err:  # a setting out of range: one line, exit 2
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_plugins.hyperopt_sweeper._impl import SweepStateError

        try:
            self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        except SweepStateError as err:  # the user's sweep folder, not a bug: one line, exit 2
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
