"""CPU threads per trial when a parallel launcher runs several trainings on one machine."""

from __future__ import annotations

import os

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def _physical_share(parallel: int) -> int:
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(parallel, cores)))


def fair_thread_share() -> int | None:
    """Threads for this job: all cores / concurrent trials under the joblib launcher, else None
    (torch's own default). Without this, two trials on two cores each start two threads and
    fight over the cores."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    target = str(OmegaConf.select(hydra_cfg, "launcher._target_", default=""))
    if "joblib" not in target.lower():
        return None
    launcher_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=-1)
    sweeper_jobs = OmegaConf.select(hydra_cfg, "sweeper.n_jobs", default=None)
    cores = os.cpu_count() or 1
    parallel = cores if launcher_jobs in (None, -1) else int(launcher_jobs)
    if sweeper_jobs:
        parallel = min(parallel, int(sweeper_jobs))
    return _physical_share(parallel)
