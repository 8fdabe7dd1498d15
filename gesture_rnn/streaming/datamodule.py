"""``StreamDataModule`` (``data=streams``): the spotter's data — labelled streams built from the
dataset's people, split by user as ``data.split=users`` splits recordings.

- train: ``streams_per_user`` streams of each training user (``gesture_rnn.data.streams`` with the
  no-gesture variety of a day, ``no_gesture.*``), served as overlapping crops (``crop.*``: rotated,
  scaled and time-warped as the classifier's recordings are);
- validation: one such stream per validation user (``val_users`` whole users drawn by ``seed``):
  the epoch with the lowest loss and the decision rule are chosen on it;
- test, per held-out user: streams of the training builder and of the construction no training
  stream uses (``gesture_rnn.data.unseen_streams``), an hour of rest of each, and real everyday
  motion kept out of training (``gesture_rnn.streaming.evaluation`` scores them).

Rest is measured on the training users' recordings only. Batches depend only on (seed, epoch), as
the classifier's do, so ``ckpt_path=last`` resumes exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from gesture_rnn.data import facts
from gesture_rnn.data.datamodule import RecordsDataModule
from gesture_rnn.data.duplicates import drop_conflicting_duplicates
from gesture_rnn.data.no_gesture import NoGesture
from gesture_rnn.data.parsing import load_records
from gesture_rnn.data.sampling import EpochBatchSampler, derived_seed
from gesture_rnn.data.streams import RestModel, Stream, build_stream, rest_stream
from gesture_rnn.data.unseen_streams import build_unseen_stream, everyday_stream, unseen_rest_stream
from gesture_rnn.errors import ConfigError
from gesture_rnn.streaming.evaluation import TestStreams
from gesture_rnn.streaming.training import StreamCrops

log = logging.getLogger(__name__)

TRAIN_SEED, VAL_SEED, TEST_SEED = 100, 200, 0  # stream seeds, offset by the run's seed and the user


class StreamDataModule(RecordsDataModule):
    """Streams of the SmartWatch Gestures' people for the per-sample spotter."""

    def __init__(
        self,
        *,
        path: str | None,
        cache_dir: str,
        download: bool,
        split: str,
        test_users: Sequence[str],
        val_users: int,
        val_fraction: float,
        drop_conflicting_duplicates: bool,
        vocabulary: Sequence[int],
        learned_non_target: Sequence[int],
        streams_per_user: int,
        rest_seconds: Sequence[float],
        crop: dict[str, Any],
        no_gesture: dict[str, float],
        test_rest_hours: float,
        test_everyday: bool,
        batch_size: int,
        num_workers: int,
        seed: int | None,
        url: str | None = None,
        md5: str | None = None,
    ) -> None:
        """Every setting comes from ``conf/data/streams.yaml``."""
        super().__init__()
        if split != "users":
            raise ConfigError(
                f"data.split={split!r}: a spotter's streams are split by user (data.split=users)"
            )
        if val_fraction:
            raise ConfigError(
                f"data.val_fraction={val_fraction}: streams validate on whole users (data.val_users)"
            )
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        test_users, vocabulary = [str(u) for u in test_users], [int(g) for g in vocabulary]
        learned_non_target = [int(g) for g in learned_non_target]
        rest_seconds = [float(v) for v in rest_seconds]
        crop = {str(k): v for k, v in crop.items()}
        no_gesture = {str(k): float(v) for k, v in (no_gesture or {}).items()}
        self.variety = NoGesture(**no_gesture)
        self.save_hyperparameters(logger=False)
        self.users: dict[str, list[str]] = {}
        self.train_streams: list[Stream] = []
        self.val_streams: list[Stream] = []
        self.test_streams: dict[str, dict[str, TestStreams]] = {}
        self.mean = torch.zeros(facts.NUM_CHANNELS)
        self.std = torch.ones(facts.NUM_CHANNELS)

    @property
    def has_validation(self) -> bool:
        return bool(self.val_streams)

    def _split_users(self, present: list[str]) -> dict[str, list[str]]:
        hp = self.hparams
        test = [str(u) for u in hp.test_users]
        if missing := [u for u in test if u not in present]:
            raise ConfigError(f"data.test_users: {missing[0]} has no recordings in these data ({present})")
        remaining = [u for u in present if u not in test]
        if not 0 <= hp.val_users < len(remaining):
            raise ConfigError(
                f"data.val_users={hp.val_users} is invalid: it must be in [0, {len(remaining) - 1}] "
                f"(at least one of the {len(remaining)} users outside data.test_users must train)"
            )
        val = sorted(np.random.default_rng(self.seed).choice(remaining, hp.val_users, replace=False).tolist())
        return {"train": [u for u in remaining if u not in val], "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.records is not None:  # already set up (train() does it before the Trainer)
            return
        hp = self.hparams
        if self.source is None:
            self.prepare_data()
        records = load_records(self.source, hp.cache_dir)
        if hp.drop_conflicting_duplicates:
            records = records.select(drop_conflicting_duplicates(records)[0])
        self.users = self._split_users(sorted(set(records.users.tolist())))
        training = records.select(np.flatnonzero(np.isin(records.users, self.users["train"])))
        rest = RestModel.from_records(training)
        gaps = (float(hp.rest_seconds[0]), float(hp.rest_seconds[1]))
        clips = self._everyday("train") if self.variety.everyday > 0 else []

        def stream(user: str, seed: int) -> Stream:
            return build_stream(records, user, seed, rest, self.non_target, gaps, self.variety, clips)

        k = facts.USERS.index
        self.train_streams = [
            stream(u, self.seed + TRAIN_SEED + 10 * k(u) + i)
            for u in self.users["train"]
            for i in range(hp.streams_per_user)
        ]
        self.val_streams = [stream(u, self.seed + VAL_SEED + k(u)) for u in self.users["val"]]
        held_out_clips = self._everyday("test") if self.hparams.test_everyday else []
        seconds = 3600.0 * hp.test_rest_hours
        self.test_streams = {"unseen": {}, "builder": {}}
        for user in self.users["test"]:
            seed = self.seed + TEST_SEED + k(user)
            everyday = everyday_stream(held_out_clips, rest, seed) if held_out_clips else None
            self.test_streams["builder"][user] = TestStreams(
                stream(user, seed), rest_stream(records, user, seconds, seed, rest), everyday
            )
            self.test_streams["unseen"][user] = TestStreams(
                build_unseen_stream(records, user, seed, rest, held_out_clips, self.non_target),
                unseen_rest_stream(records, user, seconds, seed, rest),
                everyday,
            )
        samples = np.concatenate([s.samples for s in self.train_streams])
        self.mean = torch.from_numpy(samples.mean(axis=0))
        self.std = torch.from_numpy(samples.std(axis=0)).clamp_min(1e-6)
        self.records = records
        log.info(
            "Streams (%s): train %s (%d streams, %.0f min), val %s, test %s",
            self.source,
            ",".join(self.users["train"]),
            len(self.train_streams),
            sum(s.seconds for s in self.train_streams) / 60,
            ",".join(self.users["val"]) or "none",
            ",".join(self.users["test"]),
        )

    @property
    def non_target(self) -> tuple[int, ...]:
        return tuple(g for g in facts.GESTURES if g not in set(self.hparams.vocabulary))

    def _everyday(self, part: str) -> list[np.ndarray]:
        """Real everyday wrist motion (BasicMotions' ``part``), as linear acceleration at 9 Hz."""
        from gesture_rnn.data.everyday import everyday_clips

        return everyday_clips(self.hparams.cache_dir, self.hparams.download, part)

    def _crops(self, streams: Sequence[Stream], augment: bool) -> StreamCrops:
        c = self.hparams.crop
        settings = (
            {"rotate_deg": c["rotate_deg"], "scale": c["scale"], "time_warp": c["time_warp"]}
            if augment
            else {}
        )
        hp = self.hparams
        return StreamCrops(
            streams, hp.vocabulary, c["length"], c["stride"], hp.learned_non_target, **settings
        )

    def train_dataloader(self) -> DataLoader:
        crops = self._crops(self.train_streams, augment=True)
        self._train_sampler = EpochBatchSampler([1] * len(crops), self.hparams.batch_size, seed=self.seed)
        self._train_sampler.set_epoch(self._epoch)
        return DataLoader(
            crops,
            batch_sampler=self._train_sampler,
            num_workers=self.hparams.num_workers,
            generator=self._generator(),
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_streams:
            return []
        crops = self._crops(self.val_streams, augment=False)
        return DataLoader(crops, batch_size=self.hparams.batch_size, generator=self._generator())

    def test_dataloader(self) -> DataLoader:
        streams = [s.stream for s in self.test_streams["builder"].values()]
        crops = self._crops(streams, augment=False)
        return DataLoader(crops, batch_size=self.hparams.batch_size, generator=self._generator())

    def _generator(self) -> torch.Generator:
        """A private generator: building an iterator never consumes torch's global RNG, which
        ``SeedEachEpoch`` seeds for the crops' augmentation (exact resume)."""
        return torch.Generator().manual_seed(derived_seed(self.seed, 1))

    def trained_or_selected(self) -> np.ndarray:
        return np.flatnonzero(np.isin(self.records.users, self.users["train"] + self.users["val"]))
