"""Networks as plain ``nn.Module``s: ``(accel [B, T, 3] raw, lengths [B]) -> logits [B, classes]``.

Every network carries its input normalisation as buffers, so a checkpoint or an exported model
classifies raw recordings without the datamodule, and ignores the padding after each sequence's
real last step. ``forward`` is the training path (the fastest correct one, e.g. packed
sequences); ``forward_padded`` runs over the padding and reads each sequence's real steps — the
form ONNX and TorchScript export.

Families (``conf/model/net/<family>.yaml``, chosen with ``model/net=<family>``): ``gru``, ``lstm``,
``rnn`` (Elman, tanh), ``conv_gru``, ``tcn`` and ``transformer``. Each checks its settings with
the key and the allowed range (``check_settings``) before any weight is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from gesture_rnn.data.facts import LONGEST_SEQUENCE, NUM_CHANNELS, NUM_CLASSES
from gesture_rnn.errors import ConfigError

# settings that do not change what the weights mean: a run may resume with other values
FREE_SETTINGS = ("dropout", "packed")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# one rule per setting name, shared by every family that has it
SETTING_RULES: dict[str, tuple[str, Callable[[object], bool]]] = {
    name: ("an integer >= 1", _positive_int)
    for name in ("hidden", "layers", "channels", "kernel", "stride", "levels", "d_model", "heads", "ff")
}
SETTING_RULES["dropout"] = (
    "a number in [0, 1)",
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1,
)
SETTING_RULES["bidirectional"] = ("true or false", lambda v: isinstance(v, bool))
SETTING_RULES["packed"] = ("true or false", lambda v: isinstance(v, bool))

# What the network reads (``model.net.inputs``, every family), after the normalisation:
#   raw        the acceleration as recorded (the study)
#   motion     each recording minus its own mean over its real steps — the mean is mostly
#              gravity as the watch sits on this wrist, so what is left is the movement
#   separated  motion and that mean (gravity, repeated at every step) as separate channels
#   magnitude  raw plus the length of the acceleration vector in g minus 1 — the one channel a
#              watch turned on the wrist does not change
# value: channels the first layer reads, from the recorded channels
INPUTS = {
    "raw": lambda channels: channels,
    "motion": lambda channels: channels,
    "separated": lambda channels: 2 * channels,
    "magnitude": lambda channels: channels + 1,
}
STANDARD_GRAVITY = 9.80665  # m/s², the magnitude channel's unit
SETTING_RULES["inputs"] = (f"one of {', '.join(INPUTS)}", lambda v: v in INPUTS)
# settings every family takes, with the value that older checkpoints (without them) were trained with
COMMON_SETTINGS = {"inputs": "raw"}


def invalid(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"model.net.{key}={value!r} is invalid: it must be {allowed}")


def gather_last_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs [B, T, H] at each sequence's real last step (index lengths - 1) -> [B, H]."""
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


def padding_mask(lengths: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    """[B, T] True at the padding (steps at or after each sequence's length), on ``device``
    (lengths may stay on the CPU, as packing needs them)."""
    return torch.arange(steps, device=device).unsqueeze(0) >= lengths.to(device).unsqueeze(1)


class GestureNet(nn.Module):
    """Base class: normalisation buffers, the padded (exportable) path, and the settings check."""

    family: ClassVar[str]
    # settings the family takes, besides input_size and num_classes
    settings: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, input_size: int = NUM_CHANNELS, num_classes: int = NUM_CLASSES, inputs: str = "raw"
    ) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise invalid("inputs", inputs, SETTING_RULES["inputs"][0])
        self.input_size, self.num_classes, self.inputs = input_size, num_classes, inputs
        # channels the first layer reads
        self.feature_size = INPUTS[inputs](input_size)
        self.register_buffer("mean", torch.zeros(input_size))
        self.register_buffer("std", torch.ones(input_size))
        # probability calibration (gesture_rnn.models.calibration), fitted after training; 1 = none
        self.register_buffer("temperature", torch.ones(()))

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        """Raise ConfigError naming the first setting that is unknown or out of range."""
        known = (*cls.settings, *COMMON_SETTINGS, "input_size", "num_classes")
        for key, value in settings.items():
            if key == "_target_":
                continue
            if key not in known:
                raise ConfigError(
                    f"model.net.{key} is not a setting of the {cls.family} network; "
                    f"its settings: {', '.join(cls.settings)}"
                )
            allowed, check = SETTING_RULES.get(key, ("an integer >= 1", _positive_int))
            if not check(value):
                raise invalid(key, value, allowed)
        if missing := [key for key in cls.settings if key not in settings]:
            raise ConfigError(f"model.net.{missing[0]} is required by the {cls.family} network")

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def normalize(self, accel: torch.Tensor) -> torch.Tensor:
        return (accel - self.mean) / self.std

    def prepare(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Raw [B, T, 3] -> what the first layer reads [B, T, feature_size] (``inputs``). The
        per-recording mean uses the real steps only, so padding never changes it; normalising
        first is the same as after (centring commutes with a per-channel affine map)."""
        x = self.normalize(accel)
        if self.inputs == "raw":
            return x
        if self.inputs == "magnitude":  # padding (zero acceleration) is left at zero
            real = (~padding_mask(lengths, x.shape[1], x.device)).unsqueeze(2).to(x.dtype)
            g = accel.norm(dim=2, keepdim=True) / STANDARD_GRAVITY
            return torch.cat((x, (g - 1) * real), dim=2)
        real = (~padding_mask(lengths, x.shape[1], x.device)).unsqueeze(2).to(x.dtype)  # [B, T, 1]
        gravity = (x * real).sum(1, keepdim=True) / real.sum(1, keepdim=True)  # [B, 1, C]
        motion = (x - gravity) * real
        if self.inputs == "motion":
            return motion
        return torch.cat((motion, gravity.expand_as(motion) * real), dim=2)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities: softmax(logits / temperature). Training and the loss
        use the logits; everything a user reads (predict, export, MLflow model) uses this."""
        return torch.softmax(logits / self.temperature, dim=1)

    def forward_padded(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The export path; the same logits as ``forward``. Networks whose ``forward`` packs
        override it."""
        return self(accel, lengths)


class RecurrentNet(GestureNet):
    """A recurrent network over the (normalised) acceleration, a linear head on the last real
    step (both directions' last states when bidirectional). Subclasses name the torch layer."""

    layer: ClassVar[type[nn.RNNBase]]
    settings = ("hidden", "layers", "dropout", "bidirectional", "packed")

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
        inputs: str = "raw",
    ) -> None:
        self.check_settings(
            dict(hidden=hidden, layers=layers, dropout=dropout, bidirectional=bidirectional, packed=packed)
        )
        super().__init__(input_size, num_classes, inputs)
        self.bidirectional, self.packed = bidirectional, packed
        # torch applies the dropout between layers only; with one layer it would just warn.
        recurrent = self.layer(
            self.feature_size,
            hidden,
            num_layers=layers,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        setattr(self, self.family, recurrent)  # weights named gru.*, lstm.*, rnn.*
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    @property
    def recurrent(self) -> nn.RNNBase:
        return getattr(self, self.family)

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.prepare(accel, lengths)
        if self.packed or self.bidirectional:
            return self.head(self._last_state_packed(x, lengths))
        return self.head(gather_last_step(self.recurrent(x)[0], lengths))

    def _last_state_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.recurrent(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        # h_n: [layers * directions, B, hidden], at each real last step
        return torch.cat((h_n[-2], h_n[-1]), dim=1) if self.bidirectional else h_n[-1]

    def forward_padded(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run over the padding, read at each sequence's real last step: equal to the packed
        path for a one-directional network (a step never sees later ones), with no packing."""
        if self.bidirectional:
            raise ConfigError(
                f"a bidirectional {self.family.upper()} needs packed sequences, which do not export; "
                "use a one-directional model (model.net.bidirectional=false)"
            )
        return self.head(gather_last_step(self.recurrent(self.prepare(accel, lengths))[0], lengths))


class GRUNet(RecurrentNet):
    """The study's model: a GRU."""

    family, layer = "gru", nn.GRU


class LSTMNet(RecurrentNet):
    """An LSTM (its cell state adds a third more weights than a GRU of the same size)."""

    family, layer = "lstm", nn.LSTM


class RNNNet(RecurrentNet):
    """A plain Elman RNN with tanh: the cheapest recurrent step, no gates."""

    family, layer = "rnn", nn.RNN


def causal_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` over x [B, C, T] with zeros on the left only: output step t sees input steps
    <= t * stride, never the padding after a sequence's end."""
    reach = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return conv(F.pad(x, (reach, 0)))


class ConvGRUNet(GestureNet):
    """A Conv1D front-end (causal, ReLU) feeding a GRU, read at the real last step.

    Lengths: output step j of the convolution covers input steps j*stride-(kernel-1) .. j*stride,
    so a sequence of L steps becomes ceil(L / stride) steps, the last of which ends at input step
    (ceil(L / stride) - 1) * stride — with stride > 1 up to stride-1 final samples are not seen.
    The recordings are 10–51 steps long: stride 2 leaves 5–26."""

    family = "conv_gru"
    settings = ("channels", "kernel", "stride", "hidden", "layers", "dropout")

    def __init__(
        self,
        *,
        channels: int,
        kernel: int,
        stride: int,
        hidden: int,
        layers: int,
        dropout: float,
        input_size: int = NUM_CHANNELS,
        num_classes: int = NUM_CLASSES,
        inputs: str = "raw",
    ) -> None:
        settings = dict(channels=channels, kernel=kernel, stride=stride, hidden=hidden, layers=layers)
        self.check_settings({**settings, "dropout": dropout})
        super().__init__(input_size, num_classes, inputs)
        self.stride = stride
        self.conv = nn.Conv1d(self.feature_size, channels, kernel, stride=stride)
        self.gru = nn.GRU(
            channels, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True
        )
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features = torch.relu(causal_conv(self.prepare(accel, lengths).transpose(1, 2), self.conv))
        outputs = self.gru(features.transpose(1, 2))[0]
        steps = torch.div(lengths - 1, self.stride, rounding_mode="floor") + 1  # ceil(L / stride)
        return self.head(gather_last_step(outputs, steps))


class TemporalBlock(nn.Module):
    """Two dilated causal convolutions (ReLU, dropout) with a residual connection."""

    def __init__(self, channels_in: int, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels_in, channels, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(torch.relu(causal_conv(x, self.conv1)))
        y = self.dropout(torch.relu(causal_conv(y, self.conv2)))
        return torch.relu(y + self.skip(x))


class TCNNet(GestureNet):
    """A temporal convolutional network: ``levels`` residual blocks of dilated causal
    convolutions (dilation 1, 2, 4, ...), read at each sequence's real last step.

    Receptive field: 1 + 2 * (kernel - 1) * (2**levels - 1) steps. It must cover the longest
    recording (51 steps), so the last step sees the whole gesture: kernel 3 needs levels >= 4
    (61 steps); the check names the smallest levels for the kernel given."""

    family = "tcn"
    settings = ("channels", "kernel", "levels", "dropout")

    def __init__(
        self,
        *,
        channels: int,
        kernel: int,
        levels: int,
        dropout: float,
        input_size: int = NUM_CHANNELS,
        num_classes: int = NUM_CLASSES,
        inputs: str = "raw",
    ) -> None:
        self.check_settings(dict(channels=channels, kernel=kernel, levels=levels, dropout=dropout))
        super().__init__(input_size, num_classes, inputs)
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(
                    self.feature_size if level == 0 else channels, channels, kernel, 2**level, dropout
                )
                for level in range(levels)
            )
        )
        self.head = nn.Linear(channels, num_classes)

    @staticmethod
    def receptive_field(kernel: int, levels: int) -> int:
        return 1 + 2 * (kernel - 1) * (2**levels - 1)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        kernel, levels = settings["kernel"], settings["levels"]
        if kernel < 2:
            raise invalid("kernel", kernel, "an integer >= 2 (a kernel of 1 sees one step)")
        if cls.receptive_field(kernel, levels) < LONGEST_SEQUENCE:
            needed = next(n for n in range(1, 64) if cls.receptive_field(kernel, n) >= LONGEST_SEQUENCE)
            raise invalid(
                "levels",
                levels,
                f"an integer >= {needed} with model.net.kernel={kernel}: the receptive field "
                f"({cls.receptive_field(kernel, levels)} steps) must cover the longest recording "
                f"({LONGEST_SEQUENCE} steps)",
            )

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.prepare(accel, lengths).transpose(1, 2)).transpose(1, 2)
        return self.head(gather_last_step(features, lengths))


def sinusoidal_positions(steps: int, width: int, device: torch.device) -> torch.Tensor:
    """[steps, width] the Transformer paper's positional encoding, computed for any length."""
    position = torch.arange(steps, device=device, dtype=torch.float32).unsqueeze(1)
    even = torch.arange(0, width, 2, device=device, dtype=torch.float32)
    frequency = torch.exp(even * (-math.log(10000.0) / width))
    angles = position * frequency  # [steps, width / 2]
    return torch.stack((angles.sin(), angles.cos()), dim=2).flatten(1)


class EncoderLayer(nn.Module):
    """One pre-norm Transformer encoder layer (self-attention, GELU feed-forward). Written out
    rather than ``nn.TransformerEncoderLayer``, whose attention exports to ONNX with the example's
    batch and length frozen into its reshapes."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x [B, T, d_model]; keep [B, 1, 1, T] True at the real steps (the keys attended to)."""
        q, k, v = (
            t.unflatten(2, (self.heads, -1)).transpose(1, 2) for t in self.qkv(self.norm1(x)).chunk(3, 2)
        )
        p = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        x = x + self.drop(self.out(attended.transpose(1, 2).flatten(2)))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerNet(GestureNet):
    """A small Transformer encoder (pre-norm) over the projected acceleration plus sinusoidal
    positions; padding is masked out of attention and the output is averaged over the real
    steps only."""

    family = "transformer"
    settings = ("d_model", "heads", "layers", "ff", "dropout")

    def __init__(
        self,
        *,
        d_model: int,
        heads: int,
        layers: int,
        ff: int,
        dropout: float,
        input_size: int = NUM_CHANNELS,
        num_classes: int = NUM_CLASSES,
        inputs: str = "raw",
    ) -> None:
        self.check_settings(dict(d_model=d_model, heads=heads, layers=layers, ff=ff, dropout=dropout))
        super().__init__(input_size, num_classes, inputs)
        self.project = nn.Linear(self.feature_size, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        d_model, heads = settings["d_model"], settings["heads"]
        if d_model % 2:
            raise invalid("d_model", d_model, "an even integer >= 2 (sine and cosine positions)")
        if d_model % heads:
            raise invalid("heads", heads, f"an integer >= 1 that divides model.net.d_model={d_model}")

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = accel.shape[1]
        x = self.project(self.prepare(accel, lengths))
        x = x + sinusoidal_positions(steps, x.shape[2], accel.device)
        real = ~padding_mask(lengths, steps, x.device)  # [B, T]
        keep = real[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        weights = real.unsqueeze(2).to(x.dtype)
        return self.head((self.norm(x) * weights).sum(1) / weights.sum(1))


FAMILIES: dict[str, type[GestureNet]] = {
    net.family: net for net in (GRUNet, LSTMNet, RNNNet, ConvGRUNet, TCNNet, TransformerNet)
}
# the only classes a config or a checkpoint may name
NETS: dict[str, type[GestureNet]] = {f"{net.__module__}.{net.__qualname__}": net for net in FAMILIES.values()}


def net_class(node: Mapping[str, Any]) -> type[GestureNet]:
    target = node.get("_target_")
    if str(target).endswith(".GestureSpotter"):
        raise ConfigError(
            "this is a spotter (train.py experiment=spotter): it reads continuous streams "
            "(predict.py ckpt_path=<it> stream=<file>; export.py gives its ONNX step model), not cut "
            "recordings"
        )
    if target not in NETS:
        raise ConfigError(
            f"model.net._target_={target!r} is not a network of this project; one of {list(NETS)}"
        )
    return NETS[target]


def check_net_settings(node: Mapping[str, Any]) -> None:
    """The config check: the network's class is ours and its settings are in range."""
    net_class(node).check_settings(node)


def build_net(node: Mapping[str, Any]) -> GestureNet:
    """The network a ``{_target_: ..., **kwargs}`` config describes — only this project's
    networks, so a checkpoint's config cannot make loading it call anything else."""
    cls = net_class(node)
    cls.check_settings(node)
    return cls(**{key: value for key, value in node.items() if key != "_target_"})
