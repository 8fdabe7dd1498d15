"""A trained network outside training: inference (calibrated, ``unsure``), ONNX/TorchScript
export with its sidecar, int8 weights, and serving the registered model."""
