"""Training the gesture spotter on streams (``python train.py experiment=spotter``): crops of
labelled streams, the LightningModule around the plain ``GestureSpotter`` (``model.net``), and the
files a trained spotter travels in (weights only: its train.py checkpoint, or ``save_spotter``'s).

A crop starts in the middle of a stream with an empty GRU state, which the network never has
while streaming; the first ``WARM_UP`` samples of every crop are therefore not scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import Dataset

from gesture_rnn.data.augment import random_rotations
from gesture_rnn.data.streams import Stream
from gesture_rnn.models.classifier import plain
from gesture_rnn.streaming.checkpoint import RULE_KEY
from gesture_rnn.streaming.decisions import DecisionRule, step_labels
from gesture_rnn.streaming.spotter import NO_GESTURE, GestureSpotter, build_spotter

CROP, STRIDE, WARM_UP = 270, 90, 20  # 30 s crops every 10 s; the first ~2 s not scored
NO_GESTURE_WEIGHT = 0.2


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
        stride: int = STRIDE,
        learned_non_target: Sequence[int] = (),
        rotate_deg: float = 0.0,
        scale: float = 0.0,
        time_warp: float = 0.0,
    ) -> None:
        self.crop, self.rotate_deg, self.scale, self.time_warp = crop, rotate_deg, scale, time_warp
        self.streams: list[tuple[np.ndarray, np.ndarray]] = []
        self.items: list[tuple[int, int]] = []  # (stream, first sample)
        for k, stream in enumerate(streams):
            labels = step_labels(len(stream.samples), stream.events, vocabulary, learned_non_target)
            self.streams.append((np.asarray(stream.samples, dtype=np.float32), labels))
            self.items += [(k, start) for start in range(0, max(1, len(stream.samples) - crop + 1), stride)]

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
    """Per-sample cross-entropy of a ``GestureSpotter`` after each crop's ``warm_up`` samples
    ("no gesture", most of a stream, weighted by ``no_gesture_weight``); holds the decision rule
    chosen for it (``evaluation.ChooseDecisionRule``), saved in its checkpoints, and scores the
    test streams (``evaluation.score_streams``) at the end of testing.

    ``net`` is a ``{_target_: ...GestureSpotter, ...}`` config (saved in the checkpoint, so the
    checkpoint rebuilds it) or a ready ``GestureSpotter``; ``optimizer`` and ``scheduler`` are
    ``{_target_: ..., _partial_: true}`` configs, as the classifier's."""

    def __init__(
        self,
        net: Mapping[str, Any] | GestureSpotter,
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        no_gesture_weight: float = NO_GESTURE_WEIGHT,
        warm_up: int = WARM_UP,
        max_false_per_h: float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(net, nn.Module):
            self.save_hyperparameters(ignore=["net"], logger=False)
            self.net = net
        else:
            net = plain(net)
            self.save_hyperparameters(logger=False)
            self.hparams.net = net
            self.net = build_spotter(net)
        self.hparams.optimizer = plain(optimizer)
        self.hparams.scheduler = plain(scheduler)
        self.warm_up = warm_up
        weight = torch.ones(1 + len(self.net.vocabulary) + len(self.net.learned_non_target))
        weight[NO_GESTURE] = no_gesture_weight
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        self.rule = DecisionRule()
        self.max_false_per_h = max_false_per_h  # the rule's limit on validation (decisions.choose_rule)
        # the chosen rule's event F1 and false activations on the validation streams
        self.validation = {"val/event_f1": math.nan, "val/false_per_h_movement": math.nan}

    def forward(self, accel: torch.Tensor) -> torch.Tensor:
        return self.net(accel)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        accel, labels = batch
        logits = self.net(accel)[:, self.warm_up :]
        return self.criterion(logits.reshape(-1, logits.shape[-1]), labels[:, self.warm_up :].reshape(-1))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val/loss", self.loss(batch), on_epoch=True, batch_size=len(batch[0]))

    def test_step(self, batch, batch_idx: int) -> None:
        self.log("test/loss", self.loss(batch), on_epoch=True, batch_size=len(batch[0]))

    def on_test_epoch_end(self) -> None:
        from gesture_rnn.streaming.evaluation import score_streams

        self.test_scores = score_streams(self.net, self.rule, self.trainer.datamodule.test_streams)
        metrics = {**self.validation, **self.test_scores.metrics()}
        self.log_dict({k: float(v) for k, v in metrics.items()})

    def write_test_artifacts(self, out_dir: Path, figures: bool) -> None:
        """The per-user stream table and the rule, and (``figures``) each user's stream plot."""
        self.test_scores.write(out_dir, self.net, self.rule, figures)

    def configure_optimizers(self) -> Any:
        optimizer = instantiate({**self.hparams.optimizer, "_partial_": True})(self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = instantiate({**self.hparams.scheduler, "_partial_": True})(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def configure_callbacks(self) -> list[L.Callback]:
        from gesture_rnn.streaming.evaluation import ChooseDecisionRule

        return [ChooseDecisionRule()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RULE_KEY] = asdict(self.rule)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if RULE_KEY in checkpoint:
            self.rule = DecisionRule(**checkpoint[RULE_KEY])
