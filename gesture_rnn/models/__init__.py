"""Gesture classifiers (LightningModules)."""

from gesture_rnn.models.gru import GRUClassifier

__all__ = ["GRUClassifier"]
