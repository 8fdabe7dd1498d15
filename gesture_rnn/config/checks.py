"""Validate the composed config before anything is loaded, trained or logged.

Hydra already rejects unknown keys; these checks catch values that are well-formed but out of
range, with the key and the allowed range in the message. The network's settings are checked by
its own class (``gesture_rnn.models.nets``), the same check that runs when it is built.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from gesture_rnn.config.rules import Rule, check_rules, is_int, is_number
from gesture_rnn.data.splits import SPLITS
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.nets import FAMILIES, check_net_settings
from gesture_rnn.streaming.spotter import SPOTTER_TARGET, check_spotter_settings

RULES = (
    Rule("trainer.max_epochs", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule("data.split", f"one of {list(SPLITS)}", lambda v: v in SPLITS),
    Rule("data.test_fraction", "a number in (0, 1)", lambda v: is_number(v) and 0 < v < 1),
    Rule("data.val_fraction", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("data.val_users", "an integer >= 0", lambda v: is_int(v) and v >= 0),
    Rule("data.batch_size", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule("data.bucket_pool_batches", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule(
        "data.test_users",
        "a non-empty list of user names such as [U08]",
        lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(u, str) for u in v),
    ),
    Rule(
        "data.held_out_gestures",
        "a list of distinct gestures 1-20, at most 19 of them, such as [7]",
        lambda v: (
            isinstance(v, list)
            and len(v) < 20
            and all(is_int(g) and 1 <= g <= 20 for g in v)
            and len(set(v)) == len(v)
        ),
    ),
    Rule("data.augment.rotate_deg", "a number in [0, 180]", lambda v: is_number(v) and 0 <= v <= 180),
    Rule("data.augment.scale", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("data.augment.time_warp", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("data.augment.jitter", "a number >= 0", lambda v: is_number(v) and v >= 0),
    # data=streams (experiment=spotter)
    Rule("data.streams_per_user", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule(
        "data.rest_seconds",
        "a list [shortest, longest] of seconds with 0 < shortest <= longest",
        lambda v: isinstance(v, list) and len(v) == 2 and all(map(is_number, v)) and 0 < v[0] <= v[1],
    ),
    Rule("data.crop.length", "an integer >= 30 (samples)", lambda v: is_int(v) and v >= 30),
    Rule("data.crop.stride", "an integer >= 1 (samples)", lambda v: is_int(v) and v >= 1),
    Rule("data.crop.rotate_deg", "a number in [0, 180]", lambda v: is_number(v) and 0 <= v <= 180),
    Rule("data.crop.scale", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("data.crop.time_warp", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("data.no_gesture.posture_deg", "a number in [0, 180]", lambda v: is_number(v) and 0 <= v <= 180),
    Rule("data.no_gesture.tremor", "a number in [0, 2] (m/s²)", lambda v: is_number(v) and 0 <= v <= 2),
    Rule("data.no_gesture.drift_deg", "a number in [0, 90]", lambda v: is_number(v) and 0 <= v <= 90),
    Rule("data.no_gesture.movements", "a number in [0, 5]", lambda v: is_number(v) and 0 <= v <= 5),
    Rule("data.no_gesture.everyday", "a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1),
    Rule("data.test_rest_hours", "a number in (0, 24]", lambda v: is_number(v) and 0 < v <= 24),
    Rule("data.test_everyday", "true or false", lambda v: isinstance(v, bool)),
    Rule("model.no_gesture_weight", "a number in (0, 1]", lambda v: is_number(v) and 0 < v <= 1),
    Rule("model.warm_up", "an integer >= 0", lambda v: is_int(v) and v >= 0),
    Rule("model.max_false_per_h", "a number >= 0 or null", lambda v: v is None or (is_number(v) and v >= 0)),
    Rule("model.optimizer.lr", "a finite number > 0", lambda v: is_number(v) and v > 0),
    Rule("model.optimizer.weight_decay", "a finite number >= 0", lambda v: is_number(v) and v >= 0),
    Rule("model.label_smoothing", "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    Rule("model.mixup", "a number in [0, 10] (0 = off)", lambda v: is_number(v) and 0 <= v <= 10),
    Rule("model.distillation.weight", "a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1),
    Rule("model.distillation.temperature", "a finite number > 0", lambda v: is_number(v) and v > 0),
    Rule(
        "model.distillation.teachers",
        "a list of checkpoint files or run folders",
        lambda v: isinstance(v, list) and all(isinstance(t, str) and t for t in v),
    ),
    Rule("register", "true or false", lambda v: isinstance(v, bool)),
    Rule("figures", "true or false", lambda v: isinstance(v, bool)),
    # what numpy's and torch's seeding accept
    Rule(
        "seed",
        "an integer in [0, 4294967295] or null",
        lambda v: v is None or (is_int(v) and 0 <= v < 2**32),
    ),
    Rule("num_threads", "an integer >= 1 or null", lambda v: v is None or (is_int(v) and v >= 1)),
)


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value outside its allowed range."""
    net = OmegaConf.select(cfg, "model.net", default="<absent>")
    if net != "<absent>":  # a custom model without a net node is not ours to judge
        if not (OmegaConf.is_config(net) and "_target_" in net):
            # e.g. model.net=lstm: Hydra accepts a value where a config group was meant
            raise ConfigError(
                f"model.net={net!r} is not a network config; choose a network family with "
                f"model/net=<family> ({', '.join(FAMILIES)})"
            )
        settings = OmegaConf.to_container(net, resolve=True)
        if settings.get("_target_") == SPOTTER_TARGET:  # experiment=spotter: the stream spotter
            check_spotter_settings(settings)
        else:
            check_net_settings(settings)
    check_rules(cfg, RULES)
    if str(OmegaConf.select(cfg, "data._target_", default="")).endswith("StreamDataModule"):
        if OmegaConf.select(cfg, "data.split") != "users":  # a stream holds one person's recordings
            raise ConfigError(
                f"data.split={OmegaConf.select(cfg, 'data.split')!r} is invalid for streams: "
                "it must be users (data.test_users held out, data.val_users validate)"
            )
        if OmegaConf.select(cfg, "data.val_fraction"):
            raise ConfigError(
                f"data.val_fraction={OmegaConf.select(cfg, 'data.val_fraction')} is invalid for "
                "streams: it must be 0 (streams validate on whole users: data.val_users)"
            )
    if cfg.get("register"):  # refused before the training, not by MLflow after it
        from gesture_rnn.tracking.registry import check_alias, check_model_name
        from gesture_rnn.tracking.runs import is_mlflow_node

        check_model_name(OmegaConf.select(cfg, "registry.model_name"), "registry.model_name")
        check_alias(OmegaConf.select(cfg, "registry.alias"), "registry.alias")

        mlflow_logger = any(is_mlflow_node(node) for node in (cfg.get("logger") or {}).values())
        if not (mlflow_logger and cfg.get("log_model")):
            raise ConfigError(
                "register=true registers the run's logged MLflow model: it needs logger=mlflow and "
                "log_model=true"
            )
