"""Train and test one GRU gesture classifier: ``python train.py model.hidden=256 model.layers=2``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import launch, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_task(cfg)


if __name__ == "__main__":
    launch(main)
