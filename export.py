"""Export a trained model: ``python export.py ckpt_path=... format=onnx`` (or torchscript)."""

import hydra
from omegaconf import DictConfig

from gesture_rnn.cli import exit_on_user_error
from gesture_rnn.console import short_hydra_errors
from gesture_rnn.deploy import run_export


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run_export(cfg)


if __name__ == "__main__":
    with short_hydra_errors():
        main()
