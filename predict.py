"""Classify recordings with a trained model: ``python predict.py ckpt_path=... input=recording.txt``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from gesture_rnn.commands.predict import run_predict  # imported when run, not for --help

    run_predict(cfg)


if __name__ == "__main__":
    launch(main)
