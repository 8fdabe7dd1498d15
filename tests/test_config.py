"""Every shipped config builds its objects; out-of-range values fail early, naming key and range."""

from __future__ import annotations

import inspect
import re

import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.plugins.sweeper import Sweeper
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from gesture_rnn.commands.cli import canonical_overrides
from gesture_rnn.commands.train import instantiate_all
from gesture_rnn.config.checks import validate_config
from gesture_rnn.data.datamodule import GestureDataModule
from gesture_rnn.errors import ConfigError
from gesture_rnn.models import GestureClassifier, GestureNet


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.net.hidden=0", r"model.net.hidden=0 is invalid: it must be an integer >= 1"),
        ("model.net.layers=0", r"model.net.layers=0 is invalid: it must be an integer >= 1"),
        ("model.net.dropout=1.0", r"model.net.dropout=1.0 is invalid: it must be a number in \[0, 1\)"),
        ("model.net.dropout=-0.1", r"model.net.dropout=-0.1 is invalid"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0 is invalid: it must be an integer >= 1"),
        ("trainer.max_epochs=-1", r"trainer.max_epochs=-1 is invalid"),
        (
            "data.split=people",
            r"data.split='people' is invalid: it must be one of \['random', 'users', 'kfold'\]",
        ),
        ("data.test_fraction=0", r"data.test_fraction=0 is invalid: it must be a number in \(0, 1\)"),
        ("data.test_fraction=1.0", r"data.test_fraction=1.0 is invalid"),
        ("data.val_fraction=1", r"data.val_fraction=1 is invalid: it must be a number in \[0, 1\)"),
        ("data.test_users=[]", r"data.test_users=\[\] is invalid: it must be a non-empty list"),
        ("model.net.hidden=abc", r"model.net.hidden='abc' is invalid"),
        ("data.bucket_pool_batches=0", r"data.bucket_pool_batches=0 is invalid: it must be an integer >= 1"),
        ("num_threads=0", r"num_threads=0 is invalid: it must be an integer >= 1 or null"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_allowed_range(train_config, override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(train_config(override))


def _options(group: str) -> list[str]:
    return [f"{group}={path.stem}" for path in sorted((CONF_DIR / group).glob("*.yaml"))]


SHIPPED = [
    option
    for group in ("experiment", "model", "model/net", "trainer", "logger", "callbacks", "debug", "console")
    for option in _options(group)
]
# trainers that need hardware this machine may not have: their arguments are checked, not run
NEEDS_ACCELERATOR = ("trainer=gpu", "trainer=mps", "trainer=ddp")


def _check_arguments(node) -> None:
    """The node's keys are arguments its _target_ accepts (a typo is an error, as at run time)."""
    settings = {k: v for k, v in node.items() if not k.startswith("_")}
    inspect.signature(get_class(node._target_)).bind(**settings)


@pytest.mark.parametrize("override", SHIPPED)
def test_every_shipped_config_builds_its_objects(train_config, override):
    """Instantiating, not only composing: a _target_ or argument typo fails here, not in a run."""
    cfg = train_config(override)
    validate_config(cfg)
    from gesture_rnn.streaming.datamodule import StreamDataModule
    from gesture_rnn.streaming.spotter import GestureSpotter
    from gesture_rnn.streaming.training import SpotterModule

    assert isinstance(instantiate(cfg.data), GestureDataModule | StreamDataModule)
    model = instantiate(cfg.model)
    assert (isinstance(model, GestureClassifier) and isinstance(model.net, GestureNet)) or (
        isinstance(model, SpotterModule) and isinstance(model.net, GestureSpotter)
    )
    model.configure_optimizers()
    for callback in instantiate_all(cfg.get("callbacks")):
        assert isinstance(callback, Callback)
    for node in (cfg.get("logger") or {}).values():
        _check_arguments(node)
    if override in NEEDS_ACCELERATOR:
        _check_arguments(cfg.trainer)
    else:
        instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("search", _options("hparams_search"))
def test_every_search_config_builds_its_sweeper_over_one_search_space(tmp_path, search):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("tune", overrides=[search, f"paths.root_dir={tmp_path}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    spaces = {
        "hparams_search=spotter": "spotter",
        "hparams_search=new_wearer": "best",
        "hparams_search=fast": "fast",
    }
    space = spaces.get(search, "gru")
    assert dict(cfg.hydra.sweeper.params) == dict(OmegaConf.load(CONF_DIR / "search_space" / f"{space}.yaml"))
    assert isinstance(instantiate(cfg.hydra.sweeper), Sweeper)
    if search == "hparams_search=fast":  # a smoke sweep: 3 short trials, nothing logged
        assert cfg.hydra.sweeper.n_trials == 3 and cfg.trainer.max_epochs == 1 and not cfg.logger
    if search == "hparams_search=new_wearer":  # every trial a cross-validation over seeds
        assert cfg.cv.kind == "users" and list(cfg.cv.seeds) == [0, 1]
        assert cfg.optimized_metric == "cv/mean_and_worst/val/acc_best"


def test_the_new_wearer_search_space_tunes_keys_the_recommended_model_has_within_50k_parameters(train_config):
    """conf/search_space/best.yaml: every key exists in experiment=best (a typo would add a key
    the model never reads) and its largest network stays within 50k parameters."""
    space = OmegaConf.load(CONF_DIR / "search_space" / "best.yaml")
    best = train_config("experiment=best")
    for key in space:
        assert OmegaConf.select(best, key, default="missing") != "missing", key
    widest = {
        key: max(re.findall(r"\d+", str(space[key])), key=int)
        for key in ("model.net.channels",)
        if key in space
    }
    largest = train_config("experiment=best", *(f"{key}={value}" for key, value in widest.items()))
    assert sum(p.numel() for p in instantiate(largest.model).net.parameters()) <= 50_000


def test_experiment_overlays_set_the_study_configurations(train_config):
    tuned = train_config("experiment=study_tuned")
    assert (tuned.model.net.hidden, tuned.model.net.layers, tuned.model.net.dropout) == (256, 2, 0.06)
    assert tuned.data.val_fraction == 0.0 and tuned.trainer.max_epochs == 20
    default = train_config("experiment=study_default", "trainer.max_epochs=3")
    assert (default.model.net.hidden, default.model.net.layers, default.model.net.dropout) == (64, 1, 0.1)
    assert default.trainer.max_epochs == 3
    large = train_config("experiment=gru_large")
    assert (large.model.net.hidden, large.model.net.layers) == (256, 2)
    assert large.data.augment.rotate_deg == 30
    assert train_config().data.augment.rotate_deg == 0, "augmentation is off unless asked for"
    new_wearer = train_config("experiment=new_wearer", "data.test_users=[U03]")
    assert new_wearer.model.net.hidden == 256 and new_wearer.data.augment.rotate_deg == 30, "gru_large's"
    assert (new_wearer.data.split, new_wearer.data.val_users, new_wearer.data.val_fraction) == ("users", 1, 0)
    assert list(new_wearer.data.test_users) == ["U03"]


def test_the_recommended_experiment_is_the_small_model_tuned_for_new_wearers(train_config):
    """experiment=best: at most 50k parameters, chosen on other whole users (one fold of
    ``cv=users`` as a single run), label smoothing on; a fresh clone trains it (no teachers)."""
    best = train_config("experiment=best")
    net = instantiate(best.model).net
    assert sum(p.numel() for p in net.parameters()) <= 50_000 and net.family == "conv_gru"
    assert (best.data.split, best.data.val_users, best.data.val_fraction) == ("users", 1, 0)
    assert best.model.label_smoothing > 0 and best.model.distillation.teachers == []


def test_the_watch_experiment_is_a_small_network_that_needs_no_teachers(train_config):
    watch = train_config("experiment=watch", "data.test_users=[U03]")
    net = instantiate(watch.model).net
    assert sum(p.numel() for p in net.parameters()) <= 50_000, "watch-size: at most 50k parameters"
    assert watch.model.distillation.teachers == [], "trains on a fresh clone: distillation is opt-in"
    assert watch.model.scheduler.T_max == watch.trainer.max_epochs and watch.data.split == "users"
    taught = train_config("experiment=watch", "data.test_users=[U03]", "model.distillation.teachers=[a,b]")
    assert list(taught.model.distillation.teachers) == ["a", "b"] and taught.model.distillation.weight == 0.9
    assert train_config().model.distillation.teachers == [], "no distillation unless asked for"


def test_the_short_network_spelling_becomes_the_configs_own_on_every_command_line():
    assert canonical_overrides(["model.hidden=256", "model.layers=2", "seed=1"]) == [
        "model.net.hidden=256",
        "model.net.layers=2",
        "seed=1",
    ]
    sweep = ["model.hidden=choice(64,128,256)", "model.dropout=interval(0,0.5)"]
    assert canonical_overrides(sweep) == [
        "model.net.hidden=choice(64,128,256)",
        "model.net.dropout=interval(0,0.5)",
    ]
    assert canonical_overrides(["model.hidden=8", "model.net.hidden=8"]) == ["model.net.hidden=8"], (
        "same value"
    )
    assert canonical_overrides(["~model.dropout", "model.optimizer.lr=0.1"]) == [
        "~model.net.dropout",
        "model.optimizer.lr=0.1",
    ]
    with pytest.raises(ConfigError, match=r"model\.layers=2 and model\.net\.layers=1 set the same setting"):
        canonical_overrides(["model.net.layers=1", "model.layers=2"])
