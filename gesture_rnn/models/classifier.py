"""``GestureClassifier``: the one LightningModule. It takes a network and owns the loss, the
metrics and the optimizer; side work (curves, artifacts, seeding) lives in ``callbacks``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError, MulticlassF1Score

from gesture_rnn.data.facts import NUM_CLASSES
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import read_checkpoint, upgrade_checkpoint
from gesture_rnn.models.losses import distillation_loss, mixed_batch
from gesture_rnn.models.nets import GestureNet, build_net


def plain(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A resolved plain dict of a config node: checkpoints then load with weights_only=True."""
    if node is None:
        return None
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def _factory(node: Mapping[str, Any]) -> Any:
    """A ``functools.partial`` for a {_target_: ...} dict, whether or not it says _partial_."""
    return instantiate({**node, "_partial_": True})


def _metrics(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro"),
            "f1": MulticlassF1Score(num_classes=NUM_CLASSES, average="macro"),
        },
        prefix=prefix,
    )


class GestureClassifier(L.LightningModule):
    """Cross-entropy training of ``net``; logs train/val/test loss, accuracy, macro-F1 and
    ``val/acc_best`` (the best validation accuracy so far, kept across a resume).

    ``net`` is a ``{_target_: ...}`` config of a network in ``gesture_rnn.models.nets`` (saved in
    the checkpoint, so ``load_from_checkpoint`` rebuilds it) or a ready ``GestureNet``. The
    optimizer and scheduler are ``{_target_: ..., _partial_: true}`` configs built in
    ``configure_optimizers``. ``label_smoothing`` softens the training targets (not the
    validation or test loss); ``mixup`` > 0 trains on mixed pairs of recordings, α of its Beta
    draw (``gesture_rnn.models.losses.mixed_batch``; not with distillation). ``distillation``
    ({teachers, weight, temperature}) mixes the teachers' soft targets into the training loss
    (``gesture_rnn.training.distillation``); the training batches carry them once ``train()`` has
    attached them to the datamodule.
    """

    def __init__(
        self,
        net: Mapping[str, Any] | GestureNet,
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        distillation: Mapping[str, Any] | None = None,
        label_smoothing: float = 0.0,
        mixup: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(net, nn.Module):
            self.save_hyperparameters(ignore=["net"], logger=False)
            self.net = net
        else:
            net = plain(net)
            self.save_hyperparameters(logger=False)
            self.hparams.net = net
            self.net = build_net(net)
        self.hparams.optimizer = plain(optimizer)
        self.hparams.scheduler = plain(scheduler)
        self.hparams.distillation = plain(distillation)
        if mixup > 0 and (self.hparams.distillation or {}).get("teachers"):
            raise ConfigError("model.mixup and model.distillation.teachers exclude each other: set one")
        self.criterion = nn.CrossEntropyLoss()  # validation and test: the plain NLL, comparable across runs
        # training only: a target of 1 - s on the label and s spread over all classes
        self.train_criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_metrics, self.test_metrics = _metrics("val/"), _metrics("test/")
        # calibration on the test set: expected calibration error (15 bins) of softmax(logits) and
        # of softmax(logits / temperature), and the NLL after (test/loss is the NLL before)
        self.test_ece = MulticlassCalibrationError(num_classes=NUM_CLASSES, n_bins=15)
        self.test_ece_calibrated = MulticlassCalibrationError(num_classes=NUM_CLASSES, n_bins=15)
        self.test_nll_calibrated = MeanMetric()
        self._train_sums = torch.zeros(3)  # loss * n, correct, n over the epoch's steps so far
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in the checkpoint: a resumed run keeps its best

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(accel, lengths)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, lengths, y, *soft_targets = batch
        if self.hparams.get("mixup", 0.0) > 0 and not soft_targets:
            x, lengths, partner, lam = mixed_batch(x, lengths, self.hparams.mixup)
            logits = self.net(x, lengths)
            loss = lam * self.train_criterion(logits, y) + (1 - lam) * self.train_criterion(
                logits, y[partner]
            )
        else:
            logits = self.net(x, lengths)
            loss = self._training_loss(logits, y, soft_targets[0] if soft_targets else None)
        # plain tensor sums per step: self.log or torchmetrics per step cost 1-2 ms on these tiny batches
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
            step = torch.stack([loss * len(y), correct, loss.new_tensor(len(y))])
            self._train_sums = self._train_sums.to(step.device) + step
        return loss

    def _training_loss(
        self, logits: torch.Tensor, y: torch.Tensor, soft_targets: torch.Tensor | None
    ) -> torch.Tensor:
        settings = self.hparams.get("distillation") or {}
        if not settings.get("teachers"):
            return self.train_criterion(logits, y)
        if soft_targets is None:
            raise RuntimeError(
                "model.distillation.teachers is set but the training batches carry no soft targets; "
                "train with train.py, or call gesture_rnn.training.distillation.attach_soft_targets "
                "on the datamodule"
            )
        return distillation_loss(logits, y, soft_targets, settings["weight"], settings["temperature"])

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """The epoch's train/loss and train/acc, logged from its last step: callbacks (learning
        curves, early stopping on train/loss) see them in their ``on_train_epoch_end``, which
        Lightning calls before the module's."""
        if batch_idx + 1 < self.trainer.num_training_batches:
            return
        loss_sum, correct, count = self._train_sums
        self._train_sums = torch.zeros_like(self._train_sums)
        # one value per epoch (batch_size=1: logged as is), averaged across processes
        log = {"on_step": False, "on_epoch": True, "batch_size": 1, "sync_dist": True}
        self.log("train/loss", loss_sum / count, **log)
        self.log("train/acc", correct / count, **log)

    def _evaluate(
        self, batch, loss_metric: MeanMetric, metrics: MetricCollection
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths, y = batch
        logits = self.net(x, lengths)
        loss_metric.update(self.criterion(logits, y), weight=len(y))
        metrics.update(logits, y)
        return logits, y

    def _log_epoch(self, stage: str, loss_metric: MeanMetric, metrics: MetricCollection) -> dict:
        values = {f"{stage}/loss": loss_metric.compute(), **metrics.compute()}
        loss_metric.reset()
        metrics.reset()
        self.log_dict(values, sync_dist=True)  # torchmetrics already reduced them: same on every rank
        return values

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val", self.val_loss, self.val_metrics)
        if not self.trainer.sanity_checking:
            self.val_acc_best(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch, batch_idx: int) -> None:
        logits, y = self._evaluate(batch, self.test_loss, self.test_metrics)
        calibrated = logits / self.net.temperature
        self.test_ece.update(torch.softmax(logits, dim=1), y)
        self.test_ece_calibrated.update(torch.softmax(calibrated, dim=1), y)
        self.test_nll_calibrated.update(self.criterion(calibrated, y), weight=len(y))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_metrics)
        calibration = {
            "test/ece": self.test_ece.compute(),
            "test/ece_calibrated": self.test_ece_calibrated.compute(),
            "test/nll_calibrated": self.test_nll_calibrated.compute(),
        }
        for metric in (self.test_ece, self.test_ece_calibrated, self.test_nll_calibrated):
            metric.reset()
        self.log_dict(calibration, sync_dist=True)

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_checkpoint(checkpoint)  # resuming a checkpoint of the old GRUClassifier


def load_classifier(path: str | Path | None, key: str = "ckpt_path") -> GestureClassifier:
    """The whole LightningModule (network, loss, metrics), e.g. to test it with a Trainer."""
    checkpoint = read_checkpoint(path, key)
    try:
        model = GestureClassifier(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError, ConfigError) as err:
        reason = str(err).strip().splitlines()[0][:160]
        raise ConfigError(f"{key}={path} does not fit this project's GestureClassifier ({reason})") from None
    return model
