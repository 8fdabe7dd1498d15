"""The LightningDataModule: owns the dataset, its split and the normalisation statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gesture_rnn.data import facts
from gesture_rnn.data.augment import Augmentation, AugmentingCollate
from gesture_rnn.data.batching import pad_batch
from gesture_rnn.data.duplicates import drop_conflicting_duplicates, duplicate_groups
from gesture_rnn.data.fingerprints import fingerprints
from gesture_rnn.data.parsing import GestureRecords, load_records
from gesture_rnn.data.sampling import EpochBatchSampler, derived_seed
from gesture_rnn.data.source import locate_dataset
from gesture_rnn.data.splits import SplitIndices, keep_groups_together, split_indices

log = logging.getLogger(__name__)


class SequenceDataset(Dataset):
    """Variable-length sequences held in memory as tensors (the whole dataset is ~1 MB); with
    ``soft_targets`` (distillation) each item also carries its teachers' probabilities."""

    def __init__(self, sequences: Sequence[np.ndarray], labels: np.ndarray) -> None:
        self.sequences = [torch.from_numpy(np.ascontiguousarray(s)) for s in sequences]
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.soft_targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if self.soft_targets is None:
            return self.sequences[index], self.labels[index]
        return self.sequences[index], self.labels[index], self.soft_targets[index]


class RecordsDataModule(L.LightningDataModule):
    """What every datamodule of the dataset's recordings shares (``GestureDataModule``, the
    spotter's ``StreamDataModule``): locating the data, the run's seed, per-epoch batches, and the
    state saved in checkpoints. Subclasses set ``records`` in ``setup`` and say which recordings
    trained or selected the model (``trained_or_selected``)."""

    def __init__(self) -> None:
        super().__init__()
        self.source: Path | None = None
        self.records: GestureRecords | None = None
        self._seen: list[str] | None = None
        self._train_sampler: EpochBatchSampler | None = None
        self._epoch = 0

    @property
    def checksum(self) -> str | None:
        return self.records.checksum if self.records is not None else None

    def prepare_data(self) -> None:
        hp = self.hparams
        url, md5 = hp.url or facts.URL, hp.md5 or facts.MD5
        self.source = locate_dataset(hp.path, hp.cache_dir, url, md5, hp.download)

    @property
    def seed(self) -> int:
        """The split's and the batch order's seed: ``seed``, or one drawn once (seed=null) and
        then kept for this run and saved in its checkpoints (a resumed run gets the same split)."""
        if self.hparams.seed is None:
            self.hparams.seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
        return int(self.hparams.seed)

    def set_epoch(self, epoch: int) -> None:
        """Called at every epoch start (see ``gesture_rnn.training.callbacks.SeedEachEpoch``)."""
        self._epoch = epoch
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(epoch)

    def trained_or_selected(self) -> np.ndarray:
        """Indices into ``records`` of every recording the model trained or was selected on."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: which data the model was trained on (export sidecar), the
        seed of its split and batches, and the fingerprints of every recording it trained or
        selected on (``seen``: what personalize.py, the teachers' leak check and resume compare)."""
        if self._seen is None and self.records is not None:
            used = self.trained_or_selected()
            self._seen = sorted(set(fingerprints(self.records.sequences[i] for i in used)))
        return {"checksum": self.checksum, "seed": self.seed, "seen": self._seen or []}

    def load_state_dict(self, state_dict: dict) -> None:
        """Before ``setup``: take the checkpoint's seed if this run has none (seed=null), so a
        resumed run trains and tests on the checkpoint's split. The data itself is located and
        verified again."""
        saved = state_dict.get("seed")
        if self.records is None and self.hparams.seed is None and saved is not None:
            self.hparams.seed = int(saved)


class GestureDataModule(RecordsDataModule):
    """SmartWatch Gestures: locate/download, parse (cached), split, and serve padded batches."""

    def __init__(
        self,
        *,
        path: str | None,
        cache_dir: str,
        download: bool,
        split: str,
        test_fraction: float,
        val_fraction: float,
        val_users: int,
        stratify: bool,
        test_users: Sequence[str],
        drop_conflicting_duplicates: bool,
        normalize: bool,
        batch_size: int,
        bucket_batches: bool,
        bucket_pool_batches: int,
        augment: dict[str, float],
        num_workers: int,
        seed: int | None,
        url: str | None = None,
        md5: str | None = None,
        folds: int = 5,  # defaults only for checkpoints written before data.split=kfold existed
        fold: int = 0,
        held_out_gestures: Sequence[int] = (),
    ) -> None:
        """Every setting comes from ``conf/data/gestures.yaml`` (the one place defaults live);
        ``url``/``md5`` default to the dataset's own (``gesture_rnn.data.facts``)."""
        super().__init__()
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        test_users = [str(user) for user in test_users]
        held_out_gestures = [int(gesture) for gesture in held_out_gestures]
        augment = {str(k): float(v) for k, v in (augment or {}).items()}
        self.augmentation = Augmentation(**augment)
        self.save_hyperparameters(logger=False)
        self.split: SplitIndices | None = None
        self.dropped_duplicates: list[str] = []
        self.mean = torch.zeros(facts.NUM_CHANNELS)
        self.std = torch.ones(facts.NUM_CHANNELS)
        self._datasets: dict[str, SequenceDataset] = {}

    @classmethod
    def from_shipped_config(cls, seed: int | None = 0, **overrides: Any) -> GestureDataModule:
        """The datamodule ``conf/data/gestures.yaml`` describes, with ``overrides`` (for scripts and
        tests; runs get theirs from Hydra)."""
        from omegaconf import OmegaConf

        from gesture_rnn.config.resolvers import PROJECT_ROOT

        node = OmegaConf.load(PROJECT_ROOT / "conf" / "data" / "gestures.yaml")
        node.merge_with({"seed": seed, **overrides})
        settings = OmegaConf.to_container(node, resolve=True)
        settings.pop("_target_")
        return cls(**settings)

    @property
    def has_validation(self) -> bool:
        return self.split is not None and len(self.split.val) > 0

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:  # already set up (train() does it before the Trainer)
            return
        hp = self.hparams
        if self.source is None:
            self.prepare_data()
        seed = self.seed  # seed=null: drawn here once, then kept (and saved in checkpoints)
        records = load_records(self.source, hp.cache_dir)
        if hp.drop_conflicting_duplicates:
            keep, self.dropped_duplicates = drop_conflicting_duplicates(records)
            records = records.select(keep)
        if hp.held_out_gestures:  # never seen: neither trained, validated nor tested on
            unseen = np.asarray(hp.held_out_gestures) - 1
            records = records.select(np.flatnonzero(~np.isin(records.labels, unseen)))
        split = split_indices(
            records.labels,
            records.users,
            split=hp.split,
            test_fraction=hp.test_fraction,
            val_fraction=hp.val_fraction,
            val_users=hp.val_users,
            stratify=hp.stratify,
            test_users=list(hp.test_users),
            seed=seed,
            folds=hp.folds,
            fold=hp.fold,
        )
        split = keep_groups_together(split, duplicate_groups(records))
        if hp.normalize:
            train_values = np.concatenate([records.sequences[i] for i in split.train])
            self.mean = torch.from_numpy(train_values.mean(axis=0))
            self.std = torch.from_numpy(train_values.std(axis=0)).clamp_min(1e-6)
        for name, indices in (("train", split.train), ("val", split.val), ("test", split.test)):
            self._datasets[name] = SequenceDataset(
                [records.sequences[i] for i in indices], records.labels[indices]
            )
        self.records, self.split = records, split
        log.info(
            "Data %s (md5 %s): %d train, %d val, %d test sequences (%s split)",
            self.source,
            records.checksum,
            len(split.train),
            len(split.val),
            len(split.test),
            hp.split,
        )

    def set_soft_targets(self, probabilities: torch.Tensor) -> None:
        """[train sequences, classes] teacher probabilities (``gesture_rnn.training.distillation``): training
        batches then carry them as a fourth element."""
        train = self._datasets["train"]
        if probabilities.shape[0] != len(train):
            raise ValueError(f"{probabilities.shape[0]} soft targets for {len(train)} training sequences")
        train.soft_targets = probabilities.float()

    def _loader(self, name: str) -> DataLoader:
        hp = self.hparams
        dataset = self._datasets[name]
        # a private generator: building an iterator never consumes torch's global RNG
        generator = torch.Generator().manual_seed(derived_seed(self.seed, 1))
        batching: dict = {"batch_size": hp.batch_size, "shuffle": False}
        if name == "train":
            trainer = self.trainer
            self._train_sampler = EpochBatchSampler(
                [len(s) for s in dataset.sequences],
                hp.batch_size,
                seed=self.seed,
                pool_batches=hp.bucket_pool_batches if hp.bucket_batches else None,
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
            self._train_sampler.set_epoch(self._epoch)
            batching = {"batch_sampler": self._train_sampler}
        collate = pad_batch
        if name == "train" and self.augmentation.active:
            collate = AugmentingCollate(self.augmentation)
        return DataLoader(
            dataset,
            **batching,
            collate_fn=collate,
            generator=generator,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def trained_or_selected(self) -> np.ndarray:
        return np.concatenate([self.split.train, self.split.val]).astype(np.int64)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        # An empty list tells Lightning to skip the validation loop (data.val_fraction=0).
        return self._loader("val") if self.has_validation else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
