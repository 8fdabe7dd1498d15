"""Export a trained model: ``python export.py ckpt_path=... format=onnx`` (or torchscript)."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.commands.cli import exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from gesture_rnn.commands.export import run_export  # imported when run, not for --help

    run_export(cfg)


if __name__ == "__main__":
    launch(main)
