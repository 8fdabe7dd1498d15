"""Structured config of the sweeper, registered as ``hydra/sweeper=hyperopt``: the one place its
defaults live (the implementation takes every setting as a required keyword argument)."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf structured configs need typing forms)

from hydra.core.config_store import ConfigStore


@dataclass
class HyperoptSweeperConf:
    _target_: str = "hydra_plugins.hyperopt_sweeper.hyperopt_sweeper.HyperoptSweeper"
    # "tpe" (hyperopt.tpe.suggest, the study's method) or "random" (hyperopt.rand.suggest)
    algo: str = "tpe"
    # random trials before TPE models the results (hyperopt's own default, 20, is a whole sweep)
    n_startup_trials: int = 10
    seed: Optional[int] = None  # noqa: UP045
    # every trial of the sweep, those before a resume included
    n_trials: int = 20
    # trials handed to the launcher together (a parallel launcher runs them at once)
    n_jobs: int = 1
    direction: str = "maximize"
    # the sweep stops once more than this fraction of n_trials (the whole budget) has failed; the
    # Optuna sweeper's rate is per batch of n_jobs trials instead
    max_failure_rate: float = 0.5
    # continue the trials saved in hydra.sweep.dir
    resume: bool = False
    # search space in Hydra's override grammar, e.g. {model.net.hidden: "choice(64,128,256)"}
    params: Optional[Dict[str, Any]] = field(default=None)  # noqa: UP006, UP045


ConfigStore.instance().store(
    group="hydra/sweeper", name="hyperopt", node=HyperoptSweeperConf, provider="gesture_rnn"
)
