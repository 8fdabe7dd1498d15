"""Networks (plain ``nn.Module``s, ``nets``), the LightningModule (``classifier``), and loading a
checkpoint back (``checkpoint``). Attributes are imported on first use."""

from __future__ import annotations

from gesture_rnn.utils.lazy import lazy_attributes

_EXPORTS = {
    "GestureClassifier": "gesture_rnn.models.classifier",
    "GestureNet": "gesture_rnn.models.nets",
    "GRUNet": "gesture_rnn.models.nets",
    "LSTMNet": "gesture_rnn.models.nets",
    "RNNNet": "gesture_rnn.models.nets",
    "ConvGRUNet": "gesture_rnn.models.nets",
    "TCNNet": "gesture_rnn.models.nets",
    "TransformerNet": "gesture_rnn.models.nets",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
