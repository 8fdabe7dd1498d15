"""A cheap Hydra app for testing sweepers: no training, a known optimum at x=2, c='b'."""

import math

import hydra
from hydra.core.config_store import ConfigStore

ConfigStore.instance().store(name="app", node={"x": 0.0, "n": 1, "c": "a", "fail_above": None, "lr": 0.01})


@hydra.main(version_base="1.3", config_path=None, config_name="app")
def main(cfg) -> float:
    if cfg.fail_above is not None and cfg.x > cfg.fail_above:
        raise RuntimeError(f"x={cfg.x} is above {cfg.fail_above}")
    if cfg.c == "nan":
        return math.nan
    return -((cfg.x - 2.0) ** 2) - 0.1 * cfg.n + (1.0 if cfg.c == "b" else 0.0) - abs(math.log10(cfg.lr) + 3)


if __name__ == "__main__":
    main()
