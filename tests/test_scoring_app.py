"""The served model's request bound holds on what arrives, however the body is framed; a body
that is not readable JSON is a 400, never a 500 — checked on the ASGI app, no server started."""

from __future__ import annotations

import asyncio
import json

from gesture_rnn.deploy.scoring_app import bounded

LIMIT = 1000


def call(headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict, list[bytes], int]:
    """POST ``chunks`` (one ASGI message each) -> (status, answer, the body the model app got, how
    many chunks were read)."""
    received: list[bytes] = []
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    read = 0

    async def receive() -> dict:
        nonlocal read
        read += 1
        return messages[read - 1]

    async def model_app(scope, receive_, send) -> None:
        message = await receive_()
        received.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"predictions": []}'})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(bounded(model_app, LIMIT)(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"]), received, read


JSON = {"content-type": "application/json"}


def test_a_body_past_the_bound_is_refused_as_it_arrives_whatever_its_declared_length():
    good = json.dumps({"inputs": [[[1.0, 2.0, 3.0]]]}).encode()
    assert call({**JSON, "content-length": str(len(good))}, [good])[0] == 200
    status, _, received, _ = call({**JSON, "transfer-encoding": "chunked"}, [good[:5], good[5:]])
    assert status == 200 and received == [good], "a chunked body within the bound is read whole"
    chunk = b" " * 400
    for headers in ({**JSON, "content-length": "10"}, {**JSON, "transfer-encoding": "chunked"}, JSON):
        status, answer, received, read = call(headers, [chunk] * 100)
        assert status == 413 and "request body is more than" in answer["message"], (headers, answer)
        assert received == [] and read <= 3, "refused as soon as it passed the bound, the rest never read"
    status, answer, _, read = call({**JSON, "content-length": str(LIMIT + 1)}, [chunk])
    assert status == 413 and read == 0, "a declared length past the bound: refused before a byte is read"


def test_a_body_that_is_not_readable_json_is_a_client_error_not_a_server_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    for body, reason in ((deep[:LIMIT // 2] + deep[-LIMIT // 2 :], "levels deep, more than 32"),
                         (b'{"inputs": [', "not valid JSON"), (b"\xff\xfe", "not valid JSON")):  # fmt: skip
        status, answer, received, _ = call({**JSON, "content-length": str(len(body))}, [body])
        assert status == 400 and reason in answer["message"] and received == [], answer
    status, answer, _, _ = call({**JSON, "content-length": "50"}, [b"{}"])
    assert status == 400 and "its Content-Length says 50" in answer["message"]
    status, answer, _, _ = call({**JSON, "content-length": "1e3"}, [b"{}"])
    assert status == 400 and "is not a number of bytes" in answer["message"]
