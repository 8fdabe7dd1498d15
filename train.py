"""Train and test one GRU gesture classifier: ``python train.py model.hidden=256 model.layers=2``."""

import hydra
from omegaconf import DictConfig

import gesture_rnn
from gesture_rnn.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    metrics = gesture_rnn.train(cfg)
    return gesture_rnn.metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
