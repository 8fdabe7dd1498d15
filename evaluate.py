"""Evaluate a saved checkpoint without training: ``python evaluate.py ckpt_path=...``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from gesture_rnn.commands.evaluate import evaluate  # imported when run, not for --help

    evaluate(cfg)


if __name__ == "__main__":
    launch(main)
