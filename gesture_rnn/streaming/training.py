"""Training the gesture spotter on streams: crops of labelled streams, a LightningModule around
the plain ``GestureSpotter``, and the file a trained spotter travels in (weights only).

A crop starts in the middle of a stream with an empty GRU state, which the network never has
while streaming; the first ``WARM_UP`` samples of every crop are therefore not scored.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gesture_rnn.data.augment import random_rotations
from gesture_rnn.data.streams import Stream
from gesture_rnn.errors import DataError
from gesture_rnn.streaming.decisions import DecisionRule, step_labels
from gesture_rnn.streaming.spotter import NO_GESTURE, GestureSpotter
from gesture_rnn.utils.atomic import atomic_write

CROP, STRIDE, WARM_UP = 270, 90, 20  # 30 s crops every 10 s; the first ~2 s not scored
NO_GESTURE_WEIGHT = 0.2
ROTATE_DEG, SCALE = 30.0, 0.1  # experiment=best's rotation and scaling
TIME_WARP = 0.2  # as experiment=best's time warp; raised make stream's F1 from 0.919 to 0.944


class StreamCrops(Dataset):
    """Overlapping fixed-length crops of labelled streams: (acceleration [CROP, 3], labels [CROP]).

    With ``rotate_deg``/``scale`` each crop is turned by a random rotation and scaled, as the
    classifier's augmentation does for cut recordings: a new wearer's watch sits at another angle;
    with ``time_warp`` it is read from a stretch of the stream up to that fraction longer or
    shorter (linear interpolation; labels from the nearest sample): people gesture at their own
    speed. Drawn from torch's generator, which the training seeds."""

    def __init__(
        self,
        streams: Sequence[Stream],
        vocabulary: Sequence[int],
        crop: int = CROP,
        rotate_deg: float = 0.0,
        scale: float = 0.0,
        time_warp: float = 0.0,
    ) -> None:
        self.crop, self.rotate_deg, self.scale, self.time_warp = crop, rotate_deg, scale, time_warp
        self.streams: list[tuple[np.ndarray, np.ndarray]] = []
        self.items: list[tuple[int, int]] = []  # (stream, first sample)
        for k, stream in enumerate(streams):
            labels = step_labels(len(stream.samples), stream.events, vocabulary)
            self.streams.append((np.asarray(stream.samples, dtype=np.float32), labels))
            self.items += [(k, start) for start in range(0, max(1, len(stream.samples) - crop + 1), STRIDE)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        stream, start = self.items[index]
        samples, labels = self.streams[stream]
        length = min(self.crop, len(samples) - start)
        if self.time_warp > 0:
            stretch = 1 + self.time_warp * (2 * float(torch.rand(())) - 1)
            span = max(2, min(round(length * stretch), len(samples)))
            first = min(start, len(samples) - span)
            positions = first + np.linspace(0, span - 1, length)
            low = np.floor(positions).astype(np.int64)
            high, w = np.minimum(low + 1, len(samples) - 1), (positions - low)[:, None]
            samples = (samples[low] * (1 - w) + samples[high] * w).astype(np.float32)
            labels = labels[np.rint(positions).astype(np.int64)]
        else:
            samples, labels = samples[start : start + length], labels[start : start + length]
        accel = torch.from_numpy(np.ascontiguousarray(samples))
        if self.rotate_deg > 0:
            accel = accel @ random_rotations(1, self.rotate_deg)[0].T
        if self.scale > 0:
            accel = accel * (1 + self.scale * (2 * torch.rand(()) - 1))
        return accel, torch.from_numpy(np.ascontiguousarray(labels))


class SpotterModule(L.LightningModule):
    """Per-sample cross-entropy of a ``GestureSpotter`` after each crop's warm-up."""

    def __init__(
        self,
        net: GestureSpotter,
        lr: float = 3e-3,
        epochs: int = 10,
        no_gesture_weight: float = NO_GESTURE_WEIGHT,
    ) -> None:
        super().__init__()
        self.net, self.lr, self.epochs = net, lr, epochs
        # "no gesture" is most samples of a stream: weighted down, the gestures' few samples count
        weight = torch.ones(1 + len(net.vocabulary))
        weight[NO_GESTURE] = no_gesture_weight
        self.criterion = nn.CrossEntropyLoss(weight=weight)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        accel, labels = batch
        logits = self.net(accel)[:, WARM_UP:]
        return self.criterion(logits.reshape(-1, logits.shape[-1]), labels[:, WARM_UP:].reshape(-1))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), on_epoch=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)]


def fit_spotter(
    train: Sequence[Stream],
    validation: Sequence[Stream],
    vocabulary: Sequence[int],
    epochs: int = 10,
    seed: int = 0,
    batch_size: int = 32,
    rotate_deg: float = ROTATE_DEG,
    scale: float = SCALE,
    time_warp: float = TIME_WARP,
) -> GestureSpotter:
    """A spotter trained on ``train`` (normalised with its statistics; crops rotated up to
    ``rotate_deg`` and scaled by ±``scale``), the epoch with the lowest validation loss kept."""
    L.seed_everything(seed, verbose=False)
    net = GestureSpotter(vocabulary)
    samples = np.concatenate([s.samples for s in train])
    mean, std = samples.mean(axis=0), samples.std(axis=0) + 1e-6
    net.set_normalization(torch.from_numpy(mean), torch.from_numpy(std))
    module = SpotterModule(net, epochs=epochs)
    generator = torch.Generator().manual_seed(seed)
    loaders = (
        DataLoader(
            StreamCrops(train, vocabulary, rotate_deg=rotate_deg, scale=scale, time_warp=time_warp),
            batch_size=batch_size,
            shuffle=True,
            generator=generator,
        ),
        DataLoader(StreamCrops(validation, vocabulary), batch_size=batch_size),
    )
    best = KeepBest()
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,  # the best epoch is kept in memory: nothing is written
        callbacks=[best],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, *loaders)
    if best.state is not None:
        net.load_state_dict(best.state)
    return net.eval()


class KeepBest(L.Callback):
    """The network's weights at the lowest validation loss so far, in memory."""

    def __init__(self) -> None:
        self.loss, self.state = float("inf"), None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and not trainer.sanity_checking and float(loss) < self.loss:
            self.loss = float(loss)
            self.state = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}


def save_spotter(net: GestureSpotter, rule: DecisionRule, path: Path) -> None:
    """Settings, weights and decision rule only: loaded with ``weights_only=True`` (``load_spotter``)."""
    record = {"settings": net.settings(), "state_dict": net.state_dict(), "rule": asdict(rule)}
    with atomic_write(path, "wb", "spotter") as handle:
        torch.save(record, handle)


def load_spotter(path: str | Path) -> tuple[GestureSpotter, DecisionRule]:
    """A spotter file of ``save_spotter``, or a DataError naming what is wrong with it."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        net = GestureSpotter(**record["settings"])
        net.load_state_dict(record["state_dict"])
        rule = DecisionRule(**record["rule"])
    except FileNotFoundError:
        raise DataError(f"spotter={path}: no such file (make stream trains spotters)") from None
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as err:
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise DataError(f"spotter={path} is not a spotter file of this project ({reason})") from None
    return net.eval(), rule
