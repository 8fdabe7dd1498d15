"""gesture_rnn: GRU gesture recognition on smartwatch accelerometer data."""

from gesture_rnn import resolvers
from gesture_rnn.errors import ConfigError, DataError, GestureRNNError
from gesture_rnn.training import metric_value, train

resolvers.register()

__all__ = ["ConfigError", "DataError", "GestureRNNError", "metric_value", "train"]
