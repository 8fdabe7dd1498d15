"""MLflow's own scoring server app (``mlflow.pyfunc.scoring_server``) for one model, behind a
request-size bound: what ``make serve`` runs with uvicorn.

``mlflow models serve`` reads any body into memory, however large (one long recording grew
the server by 1.5 GB it kept). Here the bound holds on what arrives, however it is framed: a
declared ``Content-Length`` above ``MAX_REQUEST_BYTES`` is refused before a byte is read, and a
body (chunked or not) is counted as it arrives and refused (413) the moment it passes the bound
or its declared length — at most ``MAX_REQUEST_BYTES`` are ever held. A JSON body must parse (a
malformed or too deeply nested one is a 400, never MLflow's 500); what is inside is checked by the
model's input contract (``served_model``).

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


async def _refuse(send: Send, status: int, reason: str) -> None:
    """An MLflow-style JSON error; the connection closes (the rest of a body is never read)."""
    body = json.dumps({"error_code": "BAD_REQUEST", "message": reason}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# the request is {"inputs": [[[x, y, z], ...], ...]} (or MLflow's other JSON forms): a few levels
MAX_JSON_DEPTH = 32


def _json_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be read, or None: nesting beyond ``MAX_JSON_DEPTH`` (counted on
    the bytes, before any parser recurses into it), or not JSON at all."""
    import numpy as np

    raw = np.frombuffer(body, dtype=np.uint8)
    steps = np.isin(raw, (ord("["), ord("{"))).astype(np.int32) - np.isin(raw, (ord("]"), ord("}")))
    depth = int(np.cumsum(steps).max(initial=0))
    if depth > MAX_JSON_DEPTH:
        return f"the JSON body is nested {depth} levels deep, more than {MAX_JSON_DEPTH}"
    try:
        json.loads(body)
    except RecursionError:
        return f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep"
    except (ValueError, UnicodeDecodeError) as err:
        return f"the body is not valid JSON ({str(err).splitlines()[0][:120]})"
    return None


def bounded(app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> ASGIApp:
    """``app`` behind the bound: a POST's body is read here, at most ``max_bytes`` of it (413
    past that or past its declared ``Content-Length``, 400 short of it or not JSON when it says
    JSON), then handed to ``app`` whole."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared_text = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared_text and not declared_text.isdigit():
            await _refuse(send, 400, f"Content-Length {declared_text[:40]!r} is not a number of bytes")
            return
        declared = int(declared_text) if declared_text else None
        limit = max_bytes if declared is None else min(declared, max_bytes)
        if declared is not None and declared > max_bytes:
            await _refuse(send, 413, f"the request has {declared:,} bytes, more than {max_bytes:,}: "
                                     "send fewer recordings")  # fmt: skip
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                chunks.clear()
                what = f"more than its Content-Length ({declared:,})" if limit < max_bytes else (
                    f"more than {max_bytes:,} bytes: send fewer recordings")  # fmt: skip
                await _refuse(send, 413, f"the request body is {what}")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        chunks.clear()
        if declared is not None and size != declared:
            await _refuse(send, 400, f"the body has {size:,} bytes, its Content-Length says {declared:,}")
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if "json" in content_type and (problem := _json_problem(body)):
            await _refuse(send, 400, problem)
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return guarded


def create_app() -> ASGIApp:
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_URI_VARIABLE])
    return bounded(scoring_server.init(model))


HEADER_TIMEOUT_S = 10.0  # a client has this long to send a request's headers
MAX_CONNECTIONS = 1000  # beyond it new requests get 503


def main(argv: list[str] | None = None) -> None:
    """``python -m gesture_rnn.deploy.scoring_app --host H --port N``: uvicorn serving the model
    of ``$GESTURE_MODEL_URI`` with a deadline for a request's headers and a bound on connections
    (``make serve`` runs it through ``gesture_rnn.deploy.serve``)."""
    import argparse

    import uvicorn

    from gesture_rnn.deploy.protocol import protocol_with_header_deadline

    parser = argparse.ArgumentParser(prog="python -m gesture_rnn.deploy.scoring_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        http=protocol_with_header_deadline(HEADER_TIMEOUT_S),
        timeout_keep_alive=5,
        limit_concurrency=MAX_CONNECTIONS,
        lifespan="off",
        log_level="warning",
    )


def __getattr__(name: str) -> ASGIApp:
    """``uvicorn gesture_rnn.deploy.scoring_app:app`` loads the model then, not on import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
