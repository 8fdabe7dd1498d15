"""MLflow's own scoring server app (``mlflow.pyfunc.scoring_server``) for one model, behind a
request-size bound: what ``make serve`` runs with uvicorn.

``mlflow models serve`` reads any body into memory, however large (one long recording grew
the server by 1.5 GB it kept). Here a POST must declare its ``Content-Length`` (411 otherwise)
and stay within ``MAX_REQUEST_BYTES`` (413 otherwise) before a byte of it is read; what is
inside is checked by the model's input contract (``served_model``).

The model comes from ``GESTURE_MODEL_URI`` (any MLflow model URI; ``MLFLOW_TRACKING_URI``
resolves ``models:/`` and ``runs:/``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

MODEL_URI_VARIABLE = "GESTURE_MODEL_URI"
# 1,024 recordings (the contract's most per request) of the dataset's longest gesture fit in 4 MB
MAX_REQUEST_BYTES = 16 << 20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bounded(app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> ASGIApp:
    """``app`` refusing a POST without ``Content-Length`` (411) or above ``max_bytes`` (413),
    with an MLflow-style JSON message, before its body is read."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-length", b"").decode() or None
            status, reason = None, ""
            if declared is None or not declared.isdigit():
                status, reason = 411, "a request must state its Content-Length"
            elif int(declared) > max_bytes:
                status = 413
                reason = (
                    f"the request has {int(declared):,} bytes, more than {max_bytes:,}: send fewer recordings"
                )
            if status is not None:
                body = json.dumps({"error_code": "BAD_REQUEST", "message": reason}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def create_app() -> ASGIApp:
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_URI_VARIABLE])
    return bounded(scoring_server.init(model))


def __getattr__(name: str) -> ASGIApp:
    """``uvicorn gesture_rnn.deploy.scoring_app:app`` loads the model then, not on import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
