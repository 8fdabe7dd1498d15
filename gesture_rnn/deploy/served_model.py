"""The MLflow model's pyfunc: the exported ONNX graph behind the project's one input contract.

``mlflow.pyfunc.load_model`` (and so ``make serve``) imports this module by name — installed
project code, nothing unpickled or read from the artifact — and calls ``_load_pyfunc``. A
request the contract refuses (``gesture_rnn.data.contract``: null or infinite values, values
beyond float32, one-row or over-long recordings, null rows inside a recording) is an
``MlflowException`` the scoring server answers with 400 and the reason, as ``predict.py`` refuses
the same recording from a file. Imports numpy, onnxruntime and mlflow only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gesture_rnn.data.contract import unpad
from gesture_rnn.errors import DataError

LOADER_MODULE = __name__


class ServedGestureModel:
    """``predict(batch)`` -> ``{"probabilities": float32 [n, 20]}`` for a null-padded batch."""

    def __init__(self, onnx_path: str) -> None:
        from gesture_rnn.data.facts import GESTURES
        from gesture_rnn.deploy.runtime import ort_session, read_truth
        from gesture_rnn.errors import DataError

        self.session = ort_session(onnx_path)
        truth = read_truth(self.session) or {}
        if truth.get("class_index_to_gesture", GESTURES) != GESTURES:  # its answers are gestures 1-20
            raise DataError(
                f"{onnx_path}: the model's outputs are gestures {truth['class_index_to_gesture']}, not "
                "1-20 in order: it is not a model this server describes"
            )

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if isinstance(data, dict):  # a named tensor: {"accel": [...]}
            data = data.get("accel")
        try:
            unpad(data)  # every recording checked as the graph will read it
        except DataError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        with np.errstate(over="ignore"):
            accel = np.asarray(data, dtype=np.float32)
        return {"probabilities": self.session.run(None, {"accel": accel})[0]}


def _load_pyfunc(path: str) -> ServedGestureModel:
    """Called by ``mlflow.pyfunc.load_model`` with the model's ``model.onnx``."""
    return ServedGestureModel(path)
