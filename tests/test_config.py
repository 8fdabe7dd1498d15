"""Every shipped config composes, and out-of-range values fail before training, naming key and range."""

from __future__ import annotations

import pytest

from gesture_rnn.config_checks import validate_config
from gesture_rnn.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.net.hidden=0", r"model.net.hidden=0 is invalid: it must be an integer >= 1"),
        ("model.net.layers=0", r"model.net.layers=0 is invalid: it must be an integer >= 1"),
        ("model.net.dropout=1.0", r"model.net.dropout=1.0 is invalid: it must be a number in \[0, 1\)"),
        ("model.net.dropout=-0.1", r"model.net.dropout=-0.1 is invalid"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0 is invalid: it must be an integer >= 1"),
        ("trainer.max_epochs=-1", r"trainer.max_epochs=-1 is invalid"),
        ("data.split=people", r"data.split='people' is invalid: it must be one of \['random', 'users'\]"),
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


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=study_default"],
        ["experiment=study_tuned"],
        ["experiment=best"],
        ["trainer=ddp_cpu"],
        ["debug=fast"],
        ["trainer=cpu", "logger=csv", "callbacks=early_stopping"],
        ["logger=none", "callbacks=none"],
        ["data.split=users", "data.test_users=[U01,U02]"],
    ],
)
def test_shipped_configs_compose_and_validate(train_config, overrides):
    validate_config(train_config(*overrides))


def test_experiment_overlays_set_the_study_configurations(train_config):
    tuned = train_config("experiment=study_tuned")
    assert (tuned.model.net.hidden, tuned.model.net.layers, tuned.model.net.dropout) == (256, 2, 0.06)
    assert tuned.data.val_fraction == 0.0 and tuned.trainer.max_epochs == 20
    default = train_config("experiment=study_default", "trainer.max_epochs=3")
    assert (default.model.net.hidden, default.model.net.layers, default.model.net.dropout) == (64, 1, 0.1)
    assert default.trainer.max_epochs == 3
    best = train_config("experiment=best")
    assert (best.model.net.hidden, best.model.net.layers) == (256, 2) and best.data.augment.rotate_deg == 30
    assert train_config().data.augment.rotate_deg == 0, "augmentation is off unless asked for"
