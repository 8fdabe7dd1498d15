"""The console of a command's process: what third-party libraries print that a user cannot act on."""

from __future__ import annotations


def quiet_libraries() -> None:
    """What a user cannot act on stays off this command's console (a command's own process, or a
    cross-validation's worker): Lightning's informational lines — install tips (litlogger,
    litmodels), "GPU available: False", "Restoring states" — which the run's own summary replaces,
    and lightning 2.6's ``LeafSpec`` deprecation warning under torch 2.13 (lightning's code, not
    this project's). Warnings and errors still show. In a Hydra command the levels come from
    ``conf/hydra/default.yaml``'s job logging too (Hydra configures logging after this runs)."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
