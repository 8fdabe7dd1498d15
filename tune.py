"""Search hyperparameters with a Hydra sweep: ``python tune.py -m`` (hyperopt TPE, 20 trials)."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import launch, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="tune")
def main(cfg: DictConfig) -> float | None:
    return run_task(cfg)


if __name__ == "__main__":
    launch(main)
