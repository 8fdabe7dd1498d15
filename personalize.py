"""Adapt a trained model to one person: ``python personalize.py ckpt_path=... user=U03 shots=3``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="personalize")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from gesture_rnn.commands.personalize import run_personalize  # imported when run, not for --help

    run_personalize(cfg)


if __name__ == "__main__":
    launch(main)
