"""Teach a model a gesture of one's own: ``python teach.py ckpt_path=... input=takes/ name=wave``."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="teach")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from gesture_rnn.commands.teach import run_teach  # imported when run, not for --help

    run_teach(cfg)


if __name__ == "__main__":
    launch(main)
