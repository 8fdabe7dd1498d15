"""Every network family (conf/model/net/*.yaml): padding never changes a prediction, the ONNX
export gives the PyTorch probabilities, checkpoints load back with weights_only, and impossible
settings are refused with the key and the allowed range before anything is built."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import CONF_DIR, compose_train_config
from omegaconf import OmegaConf

from gesture_rnn.config.checks import validate_config
from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.deploy.export import export_onnx
from gesture_rnn.deploy.inference import class_probabilities
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import NET_PREFIX, check_shape, load_net
from gesture_rnn.models.nets import FAMILIES, GestureNet, build_net

SHIPPED = sorted(path.stem for path in (CONF_DIR / "model" / "net").glob("*.yaml"))
# every family, plus the other inputs (model.net.inputs) on families that read them differently
VARIANTS = [*SHIPPED, "gru:motion", "tcn:separated", "transformer:separated", "conv_gru:magnitude"]


def shipped_settings(family: str, **changes) -> dict:
    return {
        **OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "net" / f"{family}.yaml")),
        **changes,
    }


def small_net(variant: str) -> GestureNet:
    """The shipped family (``family`` or ``family:inputs``) with real normalisation;
    convolutions strided where they can be."""
    torch.manual_seed(0)
    family, _, inputs = variant.partition(":")
    changes = {"stride": 2} if family == "conv_gru" else {}
    net = build_net(shipped_settings(family, **changes, inputs=inputs or "raw")).eval()
    net.set_normalization(torch.tensor([0.5, -0.2, 9.8]), torch.tensor([2.0, 3.0, 1.5]))
    return net


def recordings(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=generator) * 3 for n in (10, 51, 23, 11, 37)]


def test_every_family_is_shipped_as_a_config():
    assert sorted(FAMILIES) == SHIPPED


@pytest.mark.parametrize("family", VARIANTS)
def test_padding_never_changes_a_prediction(family):
    """More padding, garbage in the padding, or each recording alone: the same logits."""
    net = small_net(family)
    sequences = recordings()
    accel, lengths = pad_sequences(sequences)
    longer, _ = pad_sequences([*sequences, torch.zeros(80, 3)])
    garbage = longer[:-1].clone()
    for row, length in enumerate(lengths):
        garbage[row, length:] = 1e6
    with torch.no_grad():
        logits = net(accel, lengths)
        alone = torch.cat([net(s[None], torch.tensor([len(s)])) for s in sequences])
        torch.testing.assert_close(net(garbage, lengths), logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(alone, logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net.forward_padded(garbage, lengths), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", VARIANTS)
def test_the_onnx_export_gives_the_pytorch_probabilities_for_any_batch_and_length(family, tmp_path):
    net = small_net(family)
    sequences = recordings()
    expected = class_probabilities(net, *pad_sequences(sequences)).numpy()
    session = onnxruntime.InferenceSession(
        str(export_onnx(net, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    accel, lengths = pad_sequences(sequences)
    (got,) = session.run(None, {"accel": accel.numpy(), "lengths": lengths.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # another batch size and length than the export example: both axes are dynamic
    (alone,) = session.run(None, {"accel": sequences[3][None].numpy(), "lengths": np.array([11])})
    np.testing.assert_allclose(alone[0], expected[3], atol=1e-5)


@pytest.mark.parametrize("family", SHIPPED)
def test_a_checkpoint_of_every_family_loads_back_with_weights_only(family, tmp_path):
    net = small_net(family)
    checkpoint = {
        "hyper_parameters": {
            "net": shipped_settings(family, **({"stride": 2} if family == "conv_gru" else {}))
        },
        "state_dict": {NET_PREFIX + key: value for key, value in net.state_dict().items()},
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    loaded = load_net(tmp_path / "last.ckpt")  # torch.load(weights_only=True) inside
    accel, lengths = pad_sequences(recordings(1))
    torch.testing.assert_close(
        class_probabilities(loaded, accel, lengths), class_probabilities(net, accel, lengths)
    )
    other = {**checkpoint["hyper_parameters"]["net"], "dropout": 0.3}
    check_shape(checkpoint, other, "ckpt_path")  # dropout does not change the weights
    with pytest.raises(ConfigError, match="another model"):
        another = next(f"{n.__module__}.{n.__qualname__}" for n in FAMILIES.values() if n.family != family)
        check_shape(checkpoint, {**other, "_target_": another}, "ckpt_path")


def test_motion_inputs_ignore_how_the_watch_sits_and_separated_inputs_keep_it():
    """A constant offset on a recording (gravity seen at another tilt) does not change what a
    ``motion`` network predicts; ``separated`` keeps it as its own channels, so it may."""
    sequences = recordings()
    accel, lengths = pad_sequences(sequences)
    tilted, _ = pad_sequences([s + torch.tensor([2.0, -4.0, 1.0]) for s in sequences])
    with torch.no_grad():
        motion = small_net("gru:motion")
        torch.testing.assert_close(motion(tilted, lengths), motion(accel, lengths), rtol=1e-4, atol=1e-4)
        separated = small_net("gru:separated")
        assert separated.feature_size == 6
        assert not torch.allclose(separated(tilted, lengths), separated(accel, lengths), atol=1e-3)


def test_the_magnitude_channel_is_what_a_turned_watch_keeps_and_padding_stays_zero():
    """``magnitude`` adds |a| in g minus 1: the same for a recording turned by any rotation,
    zero after a recording's end (so padding never reaches the network's reading)."""
    from gesture_rnn.data.augment import random_rotation

    sequences = recordings()
    accel, lengths = pad_sequences(sequences)
    turned = accel @ random_rotation(90.0, torch.Generator().manual_seed(4)).T
    net = small_net("conv_gru:magnitude")
    assert net.feature_size == 4
    upright, rotated = net.prepare(accel, lengths), net.prepare(turned, lengths)
    torch.testing.assert_close(rotated[..., 3], upright[..., 3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(rotated[..., :3], upright[..., :3], atol=1e-2)
    for row, length in enumerate(lengths.tolist()):
        assert not upright[row, length:, 3].any()
    first = sequences[0][0]
    torch.testing.assert_close(upright[0, 0, 3], first.norm() / 9.80665 - 1)


def test_a_checkpoint_from_before_the_inputs_setting_reads_raw_and_refuses_other_inputs(tmp_path):
    net = small_net("gru")
    settings = shipped_settings("gru")
    settings.pop("inputs", None)  # written before model.net.inputs existed
    checkpoint = {
        "hyper_parameters": {"net": settings},
        "state_dict": {NET_PREFIX + key: value for key, value in net.state_dict().items()},
    }
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert load_net(tmp_path / "old.ckpt").inputs == "raw"
    check_shape(checkpoint, {**settings, "inputs": "raw"}, "ckpt_path")
    with pytest.raises(ConfigError, match=r"model\.net\.inputs='separated' \(checkpoint: 'raw'\)"):
        check_shape(checkpoint, {**settings, "inputs": "separated"}, "ckpt_path")


BAD_SETTINGS = [
    (
        "gru",
        "model.net.inputs=gravity",
        "model.net.inputs='gravity' is invalid: it must be one of raw, motion",
    ),
    ("gru", "model.net.hidden=0", "model.net.hidden=0 is invalid: it must be an integer >= 1"),
    ("lstm", "model.net.dropout=1.0", "model.net.dropout=1.0 is invalid: it must be a number in [0, 1)"),
    ("rnn", "model.net.layers=2.5", "model.net.layers=2.5 is invalid: it must be an integer >= 1"),
    ("conv_gru", "model.net.kernel=0", "model.net.kernel=0 is invalid: it must be an integer >= 1"),
    ("conv_gru", "model.net.stride=0", "model.net.stride=0 is invalid: it must be an integer >= 1"),
    ("tcn", "model.net.kernel=1", "model.net.kernel=1 is invalid: it must be an integer >= 2"),
    ("tcn", "model.net.levels=3", "model.net.levels=3 is invalid: it must be an integer >= 4 with"),
    ("tcn", "model.net.channels=-4", "model.net.channels=-4 is invalid: it must be an integer >= 1"),
    (
        "transformer",
        "model.net.heads=3",
        "model.net.heads=3 is invalid: it must be an integer >= 1 that divides",
    ),
    ("transformer", "model.net.d_model=33", "model.net.d_model=33 is invalid: it must be an even integer"),
    ("transformer", "+model.net.hidden=64", "model.net.hidden is not a setting of the transformer network"),
]


@pytest.mark.parametrize(("family", "override", "message"), BAD_SETTINGS)
def test_impossible_settings_are_refused_by_the_config_check(family, override, message, tmp_path):
    cfg = compose_train_config(tmp_path, [f"model/net={family}", override])
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    assert str(error.value).startswith(message)
    with pytest.raises(ConfigError, match=r"model\.net\."):  # the same check when built directly
        build_net(OmegaConf.to_container(cfg.model.net))


def test_a_family_given_as_a_value_instead_of_a_group_choice_is_refused(tmp_path):
    """Hydra accepts model.net=lstm (a string where the network's node was): the check stops it
    before any data is loaded, with the spelling that chooses the family."""
    with pytest.raises(ConfigError) as error:
        validate_config(compose_train_config(tmp_path, ["model.net=lstm"]))
    assert str(error.value) == (
        "model.net='lstm' is not a network config; choose a network family with "
        "model/net=<family> (gru, lstm, rnn, conv_gru, tcn, transformer)"
    )


def test_the_tcn_receptive_field_covers_the_longest_recording():
    """Its last step must see a whole 51-sample gesture: change the first sample, the output moves."""
    net = small_net("tcn")
    x = torch.randn(1, 51, 3)
    changed = x.clone()
    changed[0, 0] += 5.0
    lengths = torch.tensor([51])
    with torch.no_grad():
        assert not torch.allclose(net(x, lengths), net(changed, lengths))


@pytest.mark.integration  # trains
@pytest.mark.parametrize(
    "overrides", [["model/net=transformer"], ["model/net=conv_gru", "model.net.stride=2"]]
)
def test_a_family_trains_and_its_checkpoint_predicts_like_the_tested_model(
    train_config, synthetic_zip, tmp_path, overrides
):
    import gesture_rnn
    from gesture_rnn.data import GestureDataModule

    cfg = train_config(*overrides, "trainer.max_epochs=2", "logger=none", "data.val_fraction=0")
    metrics = gesture_rnn.train(cfg)
    net = load_net(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt")
    assert type(net).family == overrides[0].split("=")[1]
    dm = GestureDataModule.from_shipped_config(
        path=str(synthetic_zip), cache_dir=str(tmp_path / "c"), val_fraction=0.0
    )
    dm.setup()
    test = dm.test_dataloader().dataset
    predicted = class_probabilities(net, *pad_sequences(list(test.sequences))).argmax(1)
    accuracy = (predicted == torch.as_tensor(test.labels)).float().mean().item()
    assert accuracy == pytest.approx(metrics["test/acc"], abs=1e-6)
