"""GRU gesture classifier: standardise, run a GRU over the real steps, classify the last one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from gesture_rnn.data.parsing import NUM_CLASSES

# Optimizer and scheduler arrive as plain {_target_: ..., _partial_: true, ...} dicts and are
# instantiated in configure_optimizers: a checkpoint then holds only plain values and loads
# with torch.load(weights_only=True).
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def _plain(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if node is None:
        return None
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def _floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items()}


def _factory(node: Mapping[str, Any]) -> Any:
    """A ``functools.partial`` for a {_target_: ...} dict, whether or not it says _partial_."""
    return instantiate({**node, "_partial_": True})


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
        },
        prefix=prefix,
    )


def gather_last_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs [B, T, H] at each sequence's real last step (index lengths - 1) -> [B, H]."""
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


class GRUClassifier(L.LightningModule):
    """The study's model: GRU over 3-axis acceleration, linear head on the last real step.

    Normalisation statistics are buffers, so a checkpoint carries them and classifies raw
    recordings without the datamodule. ``final_train_loss`` is a buffer for the same reason:
    the overfit ratio of a tested checkpoint uses that checkpoint's own training loss.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.1,
        bidirectional: bool = False,
        packed: bool = True,
        input_size: int = 3,
        num_classes: int = NUM_CLASSES,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        optimizer = _plain(optimizer) or dict(DEFAULT_OPTIMIZER)
        scheduler = _plain(scheduler)
        self.save_hyperparameters(logger=False)
        # torch applies GRU dropout between layers only; with one layer it would just warn.
        self.gru = nn.GRU(
            input_size,
            hidden,
            num_layers=layers,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)
        self.loss_fn = nn.CrossEntropyLoss()
        self.register_buffer("mean", torch.zeros(input_size))
        self.register_buffer("std", torch.ones(input_size))
        self.register_buffer("final_train_loss", torch.tensor(float("nan")))
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        # training: plain tensor sums per step (torchmetrics costs ~1 ms a step on these tiny batches)
        self._train_sums = torch.zeros(3)  # loss * n, correct, n
        self.val_metrics = _metrics(num_classes, "val/")
        self.test_metrics = _metrics(num_classes, "test/")
        # per-epoch values for the learning curves (kept on the module, so any logger works)
        self.history: list[dict[str, float]] = []
        self._pending_val: dict[str, float] = {}

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] for padded raw input x [B, T, 3] with true ``lengths`` [B]."""
        x = (x - self.mean) / self.std
        if self.hparams.packed or self.hparams.bidirectional:
            return self.head(self._last_step_packed(x, lengths))
        return self.head(self.last_step_padded(x, lengths))

    def _last_step_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # h_n: [layers * directions, B, hidden], at each real last step
        return torch.cat((h_n[-2], h_n[-1]), dim=1) if self.hparams.bidirectional else h_n[-1]

    def last_step_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GRU run over the padding, read at each sequence's real last step.

        Equal to the packed path for a one-directional GRU (a step never sees later ones), with
        no packing: the form ONNX exports, and faster for small models on CPU.
        """
        return gather_last_step(self.gru(x)[0], lengths)

    def _step(self, batch, loss_metric: MeanMetric, metrics: MetricCollection) -> torch.Tensor:
        x, lengths, y = batch
        logits = self(x, lengths)
        loss = self.loss_fn(logits, y)
        loss_metric.update(loss.detach(), weight=len(y))
        metrics.update(logits.detach(), y)
        return loss

    def _log_epoch(
        self, stage: str, loss_metric: MeanMetric, metrics: MetricCollection
    ) -> dict[str, torch.Tensor]:
        values = {f"{stage}/loss": loss_metric.compute(), **metrics.compute()}
        loss_metric.reset()
        metrics.reset()
        self.log_dict(values, sync_dist=True)  # torchmetrics already reduced them: same on every rank
        return values

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, lengths, y = batch
        logits = self(x, lengths)
        loss = self.loss_fn(logits, y)
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
            step = torch.stack([loss * len(y), correct, loss.new_tensor(len(y))])
            self._train_sums = self._train_sums.to(step.device) + step
        return loss

    def on_train_epoch_end(self) -> None:
        loss_sum, correct, count = self._train_sums
        self._train_sums = torch.zeros_like(self._train_sums)
        values = {"train/loss": loss_sum / count, "train/acc": correct / count}
        self.log_dict(values, sync_dist=True)
        self.final_train_loss.copy_(values["train/loss"])
        self.history.append({"epoch": self.current_epoch, **_floats(values), **self._pending_val})
        self._pending_val = {}

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val", self.val_loss, self.val_metrics)
        if not self.trainer.sanity_checking:
            self._pending_val = _floats(values)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, self.test_loss, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        test_loss = self._log_epoch("test", self.test_loss, self.test_metrics)["test/loss"]
        # The study's overfitting measure: test loss relative to the last epoch's training loss.
        self.log("test/overfit_ratio", test_loss / self.final_train_loss, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["learning_curves"] = list(self.history)  # a resumed run keeps its earlier epochs

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # resuming a fit continues the curves; testing the best checkpoint must not cut them short
        if self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING:
            self.history = list(checkpoint.get("learning_curves", []))

    def configure_optimizers(self) -> Any:
        optimizer = _factory(self.hparams.optimizer)(self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = _factory(self.hparams.scheduler)(optimizer)
        # "monitor" only matters for ReduceLROnPlateau; train/loss exists with or without validation.
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": "train/loss"},
        }
