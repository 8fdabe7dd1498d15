"""Gesture spotting in a continuous stream: the per-sample spotter, its training and ONNX step
model, the decision rule, scoring detections against the marked gestures, and the sliding-window
way for any classifier."""
