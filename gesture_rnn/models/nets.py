"""Networks as plain ``nn.Module``s: ``(accel [B, T, 3] raw, lengths [B]) -> logits [B, classes]``.

Every network carries its input normalisation as buffers, so a checkpoint or an exported model
classifies raw recordings without the datamodule. ``forward`` is the training path (the fastest
correct one, e.g. packed sequences); ``forward_padded`` runs over the padding and reads each
sequence's real last step — the form ONNX and TorchScript export.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from gesture_rnn.data.facts import NUM_CHANNELS, NUM_CLASSES
from gesture_rnn.errors import ConfigError


def gather_last_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs [B, T, H] at each sequence's real last step (index lengths - 1) -> [B, H]."""
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


class GestureNet(nn.Module):
    """Base class: normalisation buffers and the padded (exportable) path."""

    def __init__(self, input_size: int = NUM_CHANNELS, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.input_size, self.num_classes = input_size, num_classes
        self.register_buffer("mean", torch.zeros(input_size))
        self.register_buffer("std", torch.ones(input_size))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def normalize(self, accel: torch.Tensor) -> torch.Tensor:
        return (accel - self.mean) / self.std

    def forward_padded(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The export path; the same logits as ``forward``. Networks whose ``forward`` packs
        override it."""
        return self(accel, lengths)


class GRUNet(GestureNet):
    """The study's model: a GRU over the (normalised) acceleration, a linear head on the last
    real step (both directions' last states for a bidirectional GRU)."""

    def __init__(
        self,
        *,
        hidden: int,
        layers: int,
        dropout: float,
        bidirectional: bool,
        packed: bool,
        input_size: int = NUM_CHANNELS,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__(input_size, num_classes)
        self.bidirectional, self.packed = bidirectional, packed
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

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.normalize(accel)
        if self.packed or self.bidirectional:
            return self.head(self._last_state_packed(x, lengths))
        return self.head(gather_last_step(self.gru(x)[0], lengths))

    def _last_state_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # h_n: [layers * directions, B, hidden], at each real last step
        return torch.cat((h_n[-2], h_n[-1]), dim=1) if self.bidirectional else h_n[-1]

    def forward_padded(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GRU run over the padding, read at each sequence's real last step: equal to the
        packed path for a one-directional GRU (a step never sees later ones), with no packing."""
        if self.bidirectional:
            raise ConfigError(
                "a bidirectional GRU needs packed sequences, which do not export; "
                "use a one-directional model (model.net.bidirectional=false)"
            )
        return self.head(gather_last_step(self.gru(self.normalize(accel))[0], lengths))


NETS = {"gesture_rnn.models.nets.GRUNet": GRUNet}


def build_net(node: dict) -> GestureNet:
    """The network a ``{_target_: ..., **kwargs}`` config describes — only this project's
    networks, so a checkpoint's config cannot make loading it call anything else."""
    target = node.get("_target_")
    if target not in NETS:
        raise ConfigError(
            f"model.net._target_={target!r} is not a network of this project; one of {list(NETS)}"
        )
    return NETS[target](**{key: value for key, value in node.items() if key != "_target_"})
