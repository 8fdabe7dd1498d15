"""``make demo``'s server: the built page on 127.0.0.1 (another host only when one is named), over
https when given a certificate and its key — a phone's browser gives motion sensors only to a
secure context (https, or localhost).

A static site a wearer can run on a café Wi-Fi: uvicorn (asyncio: a half-sent request holds no
thread) serving the site's regular files only — no folder listings, nothing through a link that
leads outside the site, GET and HEAD only — with a deadline for a request's headers, a bound on
connections, and one line (no traceback) for every refusal.

``/connect.json`` answers the address a phone opens and its QR code (an SVG made here by segno,
no outside service): the page shows both on a machine without a motion sensor.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import mimetypes
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from demo.build import OUT, fail
from gesture_rnn.deploy.protocol import protocol_with_header_deadline

TYPES = {
    ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
    ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css",
    ".html": "text/html; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
}  # fmt: skip
LOOPBACK = "127.0.0.1"
HEADER_TIMEOUT_S = 10.0  # a client has this long to send a request's headers
MAX_CONNECTIONS = 1000  # beyond it new requests get 503 (an idle connection costs a few kB)


CONNECT_PATH = "/connect.json"


def site_app(site: Path, connect: dict[str, bytes] | None = None) -> Any:
    """The ASGI app serving ``site``'s regular files, ``/`` as ``index.html``, and
    ``connect["card"]`` (set once the port is known) at ``/connect.json``."""
    root = site.resolve()
    connect = {} if connect is None else connect

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"GET or HEAD only\n", "text/plain", extra=[(b"allow", b"GET, HEAD")])
            return
        if scope["path"] == CONNECT_PATH and "card" in connect:
            card = connect["card"]
            await _answer(
                send, 200, b"" if scope["method"] == "HEAD" else card, TYPES[".json"], length=len(card)
            )
            return
        path = _regular_file(root, scope["path"])
        if path is None:
            await _answer(send, 404, b"not found\n", "text/plain")
            return
        body = path.read_bytes()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await _answer(send, 200, b"" if scope["method"] == "HEAD" else body, kind, length=len(body))

    return app


def _regular_file(root: Path, url_path: str) -> Path | None:
    """The regular file ``url_path`` names inside ``root`` (after every link is followed), or None."""
    if "\x00" in url_path or "\\" in url_path:
        return None
    relative = url_path.lstrip("/")
    if any(part in ("..", ".") for part in relative.split("/")):
        return None
    try:
        path = (root / relative).resolve()
        if path.is_dir():
            path = (path / "index.html").resolve()
        if path != root and root not in path.parents:
            return None  # a link inside the site that leads out of it
        return path if stat.S_ISREG(path.stat().st_mode) else None
    except (OSError, ValueError, RuntimeError):
        return None


async def _answer(
    send: Any, status: int, body: bytes, kind: str, length: int | None = None, extra: list | None = None
) -> None:
    headers = [
        (b"content-type", kind.encode()),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),  # a new make demo's models, not a cached page's
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _OneLine(logging.Filter):
    """A refused connection (TLS spoken wrong, a certificate refused, a malformed request) is one
    line in the wearer's terminal, never a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg, record.args = (
                f"refused a connection: {type(error).__name__}: {error}".splitlines()[0],
                (),
            )
            record.exc_info = record.exc_text = None
        return True


class PageServer:
    """The site on a bound socket: ``serve_forever()`` (blocking), ``shutdown()`` from another
    thread, ``server_address``."""

    def __init__(self, server: Any, sock: socket.socket) -> None:
        self.server, self.socket = server, sock
        self.server_address = sock.getsockname()[:2]

    def serve_forever(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def shutdown(self) -> None:
        self.server.should_exit = True

    def server_close(self) -> None:
        self.socket.close()


def make_server(
    site: Path, host: str = LOOPBACK, port: int = 8000, cert: Path | None = None, key: Path | None = None
) -> PageServer:
    import uvicorn

    if not (site / "index.html").is_file():
        fail(f"{site} holds no built page: run make demo (python -m demo.build) first")
    host = host.strip() or LOOPBACK  # an empty DEMO_HOST is the default, never every interface
    if bool(cert) != bool(key):
        given, missing = ("DEMO_CERT", "DEMO_KEY") if cert else ("DEMO_KEY", "DEMO_CERT")
        fail(f"{given} is set but {missing} is not: https needs the certificate and its key (docs/demo.md)")
    for name, path in (("DEMO_CERT", cert), ("DEMO_KEY", key)):
        if path and not Path(path).is_file():
            fail(f"{name}={path} is not a file")
    connect: dict[str, bytes] = {}
    config = uvicorn.Config(
        site_app(site, connect),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=protocol_with_header_deadline(HEADER_TIMEOUT_S),
        timeout_keep_alive=5,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )
    try:
        config.load()
    except (OSError, ssl.SSLError, ValueError) as err:
        fail(f"DEMO_CERT={cert} / DEMO_KEY={key} are not a certificate and its private key (PEM): {err}")
    for name in ("uvicorn.error", "asyncio"):
        logging.getLogger(name).addFilter(_OneLine())
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except (OSError, OverflowError) as err:
        sock.close()
        reason = getattr(err, "strerror", None) or err
        fail(f"cannot serve on {host}:{port} ({reason}): try another DEMO_PORT or DEMO_HOST")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # Ctrl-C: KeyboardInterrupt
    connect["card"] = connect_card(phone_url("https" if cert else "http", host, sock.getsockname()[1]))
    return PageServer(server, sock)


def phone_url(scheme: str, host: str, port: int) -> str:
    """The address a phone opens: this machine's on the network when the page is served beyond
    it, else localhost — reached from a phone through ``adb reverse`` (docs/demo.md)."""
    if host in (LOOPBACK, "::1", "localhost"):
        return f"http://localhost:{port}/"
    return f"{scheme}://{lan_address()}:{port}/"


def connect_card(url: str) -> bytes:
    """``/connect.json``: the phone's address and its QR code as SVG markup."""
    import segno

    out = io.BytesIO()  # a standalone SVG document (its namespace declared): an <img> shows it
    segno.make(url, error="m").save(
        out, kind="svg", xmldecl=False, scale=4, border=2, dark="#222", light="#fff"
    )
    svg = out.getvalue().decode()
    return json.dumps({"url": url, "svg": svg}).encode()


def lan_address() -> str:
    """This machine's address on its network (no packet is sent: a UDP socket only picks a route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return "<this machine's address>"


def port_number(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        fail(f"DEMO_PORT={text!r} is invalid: it must be an integer in [0, 65535]")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m demo.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=OUT / "site")
    parser.add_argument("--host", default=LOOPBACK, help="an empty host is 127.0.0.1")
    parser.add_argument("--port", default="8000")
    parser.add_argument("--cert", type=Path, default=None)
    parser.add_argument("--key", type=Path, default=None)
    args = parser.parse_args(argv)
    server = make_server(args.site, args.host, port_number(args.port), args.cert, args.key)
    host, port = server.server_address
    scheme = "https" if args.cert else "http"
    print(f"  the page: {scheme}://127.0.0.1:{port}/  (Ctrl-C stops)")
    phone = phone_url(scheme, host, port)
    if host in (LOOPBACK, "::1"):
        print(f"  on a phone (Android, USB): adb reverse tcp:{port} tcp:{port}, then "
              f"{phone} on the phone; over Wi-Fi: see docs/demo.md")  # fmt: skip
    else:
        hint = "" if args.cert else "  (motion sensors need https there: DEMO_CERT/DEMO_KEY, docs/demo.md)"
        print(f"  on a phone on the same network: {phone}{hint}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_in_thread(site: Path) -> tuple[PageServer, threading.Thread]:
    """The site on 127.0.0.1 (a free port) in a background thread: tests and ``make demo_report``."""
    server = make_server(site, LOOPBACK, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


if __name__ == "__main__":
    main()
