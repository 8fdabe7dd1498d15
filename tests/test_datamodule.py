"""Splits (disjoint, deterministic, stratified, user hold-out) and train-only normalisation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gesture_rnn.data import GestureDataModule, split_indices
from gesture_rnn.data.sampling import EpochBatchSampler
from gesture_rnn.errors import ConfigError


def make_datamodule(source, tmp_path, **overrides) -> GestureDataModule:
    datamodule = GestureDataModule.from_shipped_config(
        path=str(source), cache_dir=str(tmp_path / "cache"), **overrides
    )
    datamodule.setup("fit")
    return datamodule


def test_splits_are_disjoint_and_cover_everything(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, val_fraction=0.2)
    parts = [set(dm.split.train), set(dm.split.val), set(dm.split.test)]
    assert all(parts), "every part is non-empty"
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(range(len(dm.records)))


def test_the_same_seed_gives_the_same_split_and_another_seed_a_different_one(synthetic_zip, tmp_path):
    a = make_datamodule(synthetic_zip, tmp_path, seed=0, val_fraction=0.1)
    b = make_datamodule(synthetic_zip, tmp_path, seed=0, val_fraction=0.1)
    c = make_datamodule(synthetic_zip, tmp_path, seed=1, val_fraction=0.1)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a.split, part), getattr(b.split, part))
    assert not np.array_equal(a.split.test, c.split.test)


def test_the_test_part_does_not_depend_on_the_validation_fraction(synthetic_zip, tmp_path):
    without = make_datamodule(synthetic_zip, tmp_path, val_fraction=0.0)
    with_val = make_datamodule(synthetic_zip, tmp_path, val_fraction=0.3)
    np.testing.assert_array_equal(without.split.test, with_val.split.test)


def test_stratified_split_holds_out_the_same_fraction_of_every_gesture():
    labels = np.repeat(np.arange(20), 10)
    users = np.array(["U01"] * len(labels))
    split = split_indices(labels, users, "random", 0.2, 0.0, True, ["U08"], seed=3)
    assert np.bincount(labels[split.test], minlength=20).tolist() == [2] * 20
    assert len(split.train) == 160


def test_user_split_holds_out_every_sequence_of_the_test_users(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, split="users", test_users=["U02"], val_fraction=0.2)
    users = dm.records.users
    assert set(users[dm.split.test]) == {"U02"}
    assert "U02" not in set(users[dm.split.train]) | set(users[dm.split.val])
    assert len(dm.split.test) == int((users == "U02").sum())


def test_validation_on_whole_users_never_shares_a_person_with_training(synthetic_zip, tmp_path):
    settings = {"split": "users", "test_users": ["U02"], "val_fraction": 0.0, "val_users": 1}
    dm = make_datamodule(synthetic_zip, tmp_path, **settings)
    users = dm.records.users
    (val_user,) = set(users[dm.split.val])
    assert val_user in {"U01", "U03"} and set(users[dm.split.train]) == {"U01", "U03"} - {val_user}
    again = make_datamodule(synthetic_zip, tmp_path, **settings)
    assert np.array_equal(again.split.val, dm.split.val), "drawn by seed"
    with pytest.raises(ConfigError, match=re.escape("set data.val_fraction=0 to validate on whole users")):
        make_datamodule(synthetic_zip, tmp_path, **{**settings, "val_fraction": 0.1})
    with pytest.raises(
        ConfigError, match=re.escape("data.val_users=2 leaves no training user; it must be at most 1")
    ):
        make_datamodule(synthetic_zip, tmp_path, **{**settings, "val_users": 2})
    with pytest.raises(ConfigError, match=re.escape("needs data.split=users")):
        make_datamodule(synthetic_zip, tmp_path, **{**settings, "split": "random"})


@pytest.mark.parametrize(
    ("test_users", "message"),
    [
        (
            ["U42"],
            r"data.test_users: unknown user\(s\) \['U42'\]; the data has users \['U01', 'U02', 'U03'\]",
        ),
        ([], "data.test_users is empty"),
        (["U01", "U02", "U03"], "holds out every user"),
    ],
)
def test_bad_test_users_are_rejected_with_the_known_users(synthetic_zip, tmp_path, test_users, message):
    with pytest.raises(ConfigError, match=message):
        make_datamodule(synthetic_zip, tmp_path, split="users", test_users=test_users)


def test_normalisation_statistics_come_from_the_training_part_only(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, val_fraction=0.2)
    train_values = np.concatenate([dm.records.sequences[i] for i in dm.split.train])
    everything = np.concatenate(dm.records.sequences)
    np.testing.assert_allclose(dm.mean.numpy(), train_values.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(dm.std.numpy(), train_values.std(axis=0), rtol=1e-5)
    assert not np.allclose(dm.mean.numpy(), everything.mean(axis=0), rtol=1e-7, atol=0)


def test_normalisation_can_be_switched_off(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, normalize=False)
    assert torch.equal(dm.mean, torch.zeros(3)) and torch.equal(dm.std, torch.ones(3))


def test_batches_are_padded_with_the_true_lengths(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, batch_size=8)
    x, lengths, y = next(iter(dm.test_dataloader()))
    assert x.shape == (8, int(lengths.max()), 3) and y.shape == (8,)
    first = dm.records.sequences[dm.split.test[0]]
    assert lengths[0] == len(first)
    np.testing.assert_array_equal(x[0, : len(first)].numpy(), first)
    assert torch.all(x[0, len(first) :] == 0)


def test_no_validation_loop_when_val_fraction_is_zero(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, val_fraction=0.0)
    assert not dm.has_validation and dm.val_dataloader() == []


def test_bucketed_batches_cover_every_sequence_once_and_group_similar_lengths(synthetic_zip, tmp_path):
    dm = make_datamodule(synthetic_zip, tmp_path, batch_size=8, bucket_batches=True, bucket_pool_batches=20)
    torch.manual_seed(0)
    batches = list(dm.train_dataloader())
    seen = torch.cat([y for _, _, y in batches])
    assert len(seen) == len(dm.split.train)
    spread = np.mean([float(lengths.max() - lengths.min()) for _, lengths, _ in batches])
    unbucketed = make_datamodule(synthetic_zip, tmp_path, batch_size=8).train_dataloader()
    plain = np.mean([float(lengths.max() - lengths.min()) for _, lengths, _ in unbucketed])
    assert spread < plain / 2, "bucketing groups sequences of similar length"
    dm.set_epoch(1)
    assert [b[1].tolist() for b in dm.train_dataloader()] != [b[1].tolist() for b in batches], "reshuffled"


@pytest.mark.parametrize("bucket", [False, True])
def test_an_epochs_batches_depend_on_seed_and_epoch_only(synthetic_zip, tmp_path, bucket):
    def epoch_batches(seed: int, epoch: int) -> list[list[int]]:
        dm = make_datamodule(synthetic_zip, tmp_path, batch_size=8, bucket_batches=bucket, seed=seed)
        loader = dm.train_dataloader()
        dm.set_epoch(epoch)
        torch.manual_seed(seed + epoch + 1234)  # the global RNG must not matter
        batches = [y.tolist() for _, _, y in loader]
        torch.rand(100)
        assert [y.tolist() for _, _, y in loader] == batches, "iterating twice gives the same epoch"
        return batches

    assert epoch_batches(0, 3) == epoch_batches(0, 3)
    assert epoch_batches(0, 3) != epoch_batches(0, 4)
    assert epoch_batches(0, 3) != epoch_batches(1, 3)


def test_ranks_share_out_an_epochs_batches_without_overlap():
    lengths = list(range(10, 47))  # 37 sequences: 10 batches of 4, the last one short
    ranks = [EpochBatchSampler(lengths, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    single = list(EpochBatchSampler(lengths, 4, seed=0))
    shares = [list(sampler) for sampler in ranks]
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == 5
    assert shares[0] == single[0::2] and shares[1] == single[1::2]


def test_smaller_bucket_pools_trade_padding_for_more_varied_batches(synthetic_zip, tmp_path):
    def mean_spread(pool: int) -> float:
        dm = make_datamodule(
            synthetic_zip, tmp_path, batch_size=8, bucket_batches=True, bucket_pool_batches=pool
        )
        torch.manual_seed(0)
        return np.mean([float(lengths.max() - lengths.min()) for _, lengths, _ in dm.train_dataloader()])

    assert mean_spread(1) > mean_spread(2) > mean_spread(20)
