"""Train and test one GRU gesture classifier: ``python train.py model.net.hidden=256 model.net.layers=2``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.cli import run_task, short_hydra_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_task(cfg)


if __name__ == "__main__":
    with short_hydra_errors():
        main()
