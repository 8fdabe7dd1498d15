"""Gesture spotting in a continuous stream: scoring detections against the marked gestures."""
