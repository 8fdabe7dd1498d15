"""Training-time augmentation: shapes, rotations keep vector norms, seeded draws repeat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gesture_rnn.config.checks import validate_config
from gesture_rnn.data.augment import Augmentation, AugmentingCollate, random_rotation, time_warp, warp_padded
from gesture_rnn.data.batching import pad_batch, pad_sequences
from gesture_rnn.data.datamodule import GestureDataModule
from gesture_rnn.errors import ConfigError


def test_a_random_rotation_is_orthonormal_and_keeps_every_vectors_length():
    generator = torch.Generator().manual_seed(0)
    sequence = torch.randn(40, 3) * 5
    for _ in range(20):
        rotation = random_rotation(45.0, generator)
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(3), atol=1e-5, rtol=0)
        assert torch.det(rotation) == pytest.approx(1.0, abs=1e-5)
        rotated = sequence @ rotation.T
        torch.testing.assert_close(rotated.norm(dim=1), sequence.norm(dim=1), atol=1e-4, rtol=1e-5)


def test_the_rotation_angle_stays_within_its_limit():
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        cos_angle = (torch.trace(random_rotation(10.0, generator)) - 1) / 2
        assert cos_angle >= torch.cos(torch.deg2rad(torch.tensor(10.0))) - 1e-6


def test_shapes_time_warp_and_that_zero_means_unchanged():
    sequence = torch.randn(20, 3)
    assert Augmentation()(sequence) is sequence and not Augmentation().active
    assert time_warp(sequence, 1.5).shape == (30, 3) and time_warp(sequence, 0.05).shape == (2, 3)
    torch.testing.assert_close(time_warp(sequence, 1.0), sequence)
    augmented = Augmentation(rotate_deg=30, scale=0.2, jitter=0.1)(sequence)
    assert augmented.shape == sequence.shape and not torch.equal(augmented, sequence)
    warped = Augmentation(time_warp=0.3)(sequence)
    assert 14 <= len(warped) <= 26 and warped.shape[1] == 3


def test_the_batch_warp_is_each_recordings_linear_resampling_with_zero_padding():
    """The whole-batch warp gives what resampling each recording alone with F.interpolate gives
    (the arithmetic the augmentation always had), for stretched, shrunk and 2-step results."""
    generator = torch.Generator().manual_seed(3)
    sequences = [torch.randn(length, 3, generator=generator) for length in (10, 51, 23, 2, 37)]
    factors = torch.tensor([0.8, 1.2, 1.0, 0.5, 0.05])
    warped, lengths = warp_padded(*pad_sequences(sequences), factors)
    for row, (sequence, factor) in enumerate(zip(sequences, factors.tolist(), strict=True)):
        steps = max(2, round(len(sequence) * factor))
        expected = F.interpolate(sequence.T[None], size=steps, mode="linear", align_corners=True)
        assert int(lengths[row]) == steps
        torch.testing.assert_close(warped[row, :steps], expected[0].T, rtol=1e-5, atol=1e-5)
        assert not warped[row, steps:].any()


def test_scaling_only_changes_the_amplitude():
    sequence = torch.randn(15, 3)
    scaled = Augmentation(scale=0.3)(sequence, torch.Generator().manual_seed(0))
    ratio = scaled / sequence
    assert 0.7 <= float(ratio[0, 0]) <= 1.3
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0, 0])))


def test_the_same_seed_draws_the_same_augmentation():
    augmentation = Augmentation(rotate_deg=20, scale=0.1, time_warp=0.2, jitter=0.05)
    sequence = torch.randn(25, 3)
    first = augmentation(sequence, torch.Generator().manual_seed(7))
    again = augmentation(sequence, torch.Generator().manual_seed(7))
    other = augmentation(sequence, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert first.shape != other.shape or not torch.equal(first, other)


def test_only_training_batches_are_augmented_and_an_epoch_repeats_under_its_seed(synthetic_zip, tmp_path):
    augment = {"rotate_deg": 30, "jitter": 0.1}
    dm = GestureDataModule.from_shipped_config(
        path=str(synthetic_zip), cache_dir=str(tmp_path), batch_size=8, val_fraction=0.2, augment=augment
    )
    dm.setup()
    assert isinstance(dm.train_dataloader().collate_fn, AugmentingCollate)
    assert dm.test_dataloader().collate_fn is pad_batch and dm.val_dataloader().collate_fn is pad_batch

    def epoch() -> list[torch.Tensor]:
        torch.manual_seed(3)  # what SeedEachEpoch does at every epoch start
        return [x for x, _, _ in dm.train_dataloader()]

    first, again = epoch(), epoch()
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_out_of_range_augmentation_is_refused(train_config):
    message = r"data.augment.scale=1.5 is invalid: it must be a number in \[0, 1\)"
    with pytest.raises(ConfigError, match=message):
        validate_config(train_config("data.augment.scale=1.5"))


def test_a_batch_is_augmented_at_once_with_its_padding_left_zero_and_extras_passed_through():
    generator = torch.Generator().manual_seed(0)
    sequences = [torch.randn(n, 3, generator=generator) for n in (12, 30, 7)]
    turned, lengths = Augmentation(rotate_deg=90).padded(sequences, torch.Generator().manual_seed(1))
    assert lengths.tolist() == [12, 30, 7]
    for row, sequence in enumerate(sequences):  # a rotation per sequence: every step keeps its length
        assert torch.allclose(turned[row, : len(sequence)].norm(dim=1), sequence.norm(dim=1), atol=1e-5)
        assert not torch.allclose(turned[row, : len(sequence)], sequence)
    full = Augmentation(rotate_deg=30, scale=0.2, time_warp=0.2, jitter=0.3)
    batch, lengths = full.padded(sequences, torch.Generator().manual_seed(2))
    for row, length in enumerate(lengths.tolist()):
        assert torch.count_nonzero(batch[row, length:]) == 0, "padding after the warped end stays zero"
    soft = torch.softmax(torch.randn(3, 20), dim=1)
    items = [(s, torch.tensor(i), soft[i]) for i, s in enumerate(sequences)]
    *_, labels, carried = AugmentingCollate(full)(items)
    assert labels.tolist() == [0, 1, 2] and torch.equal(carried, soft)
