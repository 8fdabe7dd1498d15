"""The LightningDataModule: owns the dataset, its split and the normalisation statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from gesture_rnn.data.augment import Augmentation, AugmentingCollate
from gesture_rnn.data.duplicates import drop_conflicting_duplicates, duplicate_groups
from gesture_rnn.data.parsing import GestureRecords, load_records
from gesture_rnn.data.sampling import EpochBatchSampler, derived_seed
from gesture_rnn.data.source import locate_dataset
from gesture_rnn.data.splits import SplitIndices, keep_groups_together, split_indices

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # padded [B, T, 3], lengths [B], labels [B]


class SequenceDataset(Dataset):
    """Variable-length sequences held in memory as tensors (the whole dataset is ~1 MB)."""

    def __init__(self, sequences: Sequence[np.ndarray], labels: np.ndarray) -> None:
        self.sequences = [torch.from_numpy(np.ascontiguousarray(s)) for s in sequences]
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sequences[index], self.labels[index]


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    """Zero-pad to the longest sequence; ``lengths`` tells the model where each one ends."""
    sequences, labels = zip(*items, strict=True)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return pad_sequence(list(sequences), batch_first=True), lengths, torch.stack(labels)


class GestureDataModule(L.LightningDataModule):
    """SmartWatch Gestures: locate/download, parse (cached), split, and serve padded batches."""

    def __init__(
        self,
        path: str | None = None,
        cache_dir: str = "~/.cache/gesture_rnn",
        url: str = "https://github.com/raoulg/gestures/raw/main/gestures-dataset.zip",
        md5: str = "7966323b95154f314e831c312e5cc33b",
        download: bool = True,
        split: str = "random",
        test_fraction: float = 0.2,
        val_fraction: float = 0.0,
        stratify: bool = True,
        test_users: Sequence[str] = ("U08",),
        drop_conflicting_duplicates: bool = True,
        normalize: bool = True,
        batch_size: int = 32,
        bucket_batches: bool = False,
        bucket_pool_batches: int = 2,
        augment: dict[str, float] | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        test_users = [str(user) for user in test_users]
        augment = {str(k): float(v) for k, v in (augment or {}).items()}
        self.augmentation = Augmentation(**augment)
        self.save_hyperparameters(logger=False)
        self.source: Path | None = None
        self.records: GestureRecords | None = None
        self.split: SplitIndices | None = None
        self.dropped_duplicates: list[str] = []
        self.mean = torch.zeros(3)
        self.std = torch.ones(3)
        self._datasets: dict[str, SequenceDataset] = {}
        self._train_sampler: EpochBatchSampler | None = None
        self._epoch = 0

    @property
    def has_validation(self) -> bool:
        return self.split is not None and len(self.split.val) > 0

    @property
    def checksum(self) -> str | None:
        return self.records.checksum if self.records is not None else None

    def prepare_data(self) -> None:
        hp = self.hparams
        self.source = locate_dataset(hp.path, hp.cache_dir, hp.url, hp.md5, hp.download)

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:  # already set up (train() does it before the Trainer)
            return
        hp = self.hparams
        if self.source is None:
            self.prepare_data()
        records = load_records(self.source, hp.cache_dir)
        if hp.drop_conflicting_duplicates:
            keep, self.dropped_duplicates = drop_conflicting_duplicates(records)
            records = records.select(keep)
        split = split_indices(
            records.labels,
            records.users,
            split=hp.split,
            test_fraction=hp.test_fraction,
            val_fraction=hp.val_fraction,
            stratify=hp.stratify,
            test_users=list(hp.test_users),
            seed=hp.seed,
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

    @property
    def sampling_seed(self) -> int:
        """``seed``, or one drawn from torch once (seed=null) and then kept for this run."""
        if self.hparams.seed is None:
            self.hparams.seed = int(torch.randint(0, 2**31 - 1, ()).item())
        return int(self.hparams.seed)

    def set_epoch(self, epoch: int) -> None:
        """Called at every epoch start (see ``gesture_rnn.resume.SeedEachEpoch``)."""
        self._epoch = epoch
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(epoch)

    def _loader(self, name: str) -> DataLoader:
        hp = self.hparams
        dataset = self._datasets[name]
        # a private generator: building an iterator never consumes torch's global RNG
        generator = torch.Generator().manual_seed(derived_seed(self.sampling_seed, 1))
        batching: dict = {"batch_size": hp.batch_size, "shuffle": False}
        if name == "train":
            trainer = self.trainer
            self._train_sampler = EpochBatchSampler(
                [len(s) for s in dataset.sequences],
                hp.batch_size,
                seed=self.sampling_seed,
                pool_batches=hp.bucket_pool_batches if hp.bucket_batches else None,
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
            self._train_sampler.set_epoch(self._epoch)
            batching = {"batch_sampler": self._train_sampler}
        collate = pad_batch
        if name == "train" and self.augmentation.active:
            collate = AugmentingCollate(self.augmentation, pad_batch)
        return DataLoader(
            dataset,
            **batching,
            collate_fn=collate,
            generator=generator,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def state_dict(self) -> dict[str, str | None]:
        """Saved in every checkpoint: which data the model was trained on (export sidecar)."""
        return {"checksum": self.checksum}

    def load_state_dict(self, state_dict: dict) -> None:
        pass  # the data is located and verified again on resume

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        # An empty list tells Lightning to skip the validation loop (data.val_fraction=0).
        return self._loader("val") if self.has_validation else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
