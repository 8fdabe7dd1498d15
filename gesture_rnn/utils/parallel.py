"""CPU threads per training process when several share one machine (parallel trials, DDP on CPU)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def _physical_share(parallel: int) -> int:
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(parallel, cores)))


def processes_per_run(cfg: DictConfig) -> int:
    """Training processes one run starts on this machine: ``devices`` for DDP on CPU, else 1."""
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", ""))
    devices = trainer.get("devices", 1)
    if trainer.get("accelerator") == "cpu" and strategy.startswith("ddp") and isinstance(devices, int):
        return max(1, devices)
    return 1


def _parallel_trials() -> int:
    if not HydraConfig.initialized():
        return 1
    hydra_cfg = HydraConfig.get()
    target = str(OmegaConf.select(hydra_cfg, "launcher._target_", default=""))
    if "joblib" not in target.lower():
        return 1
    launcher_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=-1)
    sweeper_jobs = OmegaConf.select(hydra_cfg, "sweeper.n_jobs", default=None)
    parallel = (os.cpu_count() or 1) if launcher_jobs in (None, -1) else int(launcher_jobs)
    if sweeper_jobs:
        parallel = min(parallel, int(sweeper_jobs))
    return parallel


def fair_thread_share(processes: int = 1) -> int | None:
    """Threads for this process: all cores / (concurrent trials × processes per trial), or None
    (torch's own default) when it runs alone. Without this, two trials on two cores each start
    two threads and fight over the cores."""
    parallel = _parallel_trials() * processes
    return _physical_share(parallel) if parallel > 1 else None


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block on ``count`` torch CPU threads (None: as is), then restore the process's
    setting — a library call must not leave it changed for whoever runs next."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
