"""``make demo``'s server: the built page on 127.0.0.1 (another host only when asked), static
files only, over https when given a certificate — a phone's browser gives motion sensors only to a
secure context (https, or localhost)."""

from __future__ import annotations

import argparse
import functools
import http.server
import socket
import ssl
from pathlib import Path
from typing import ClassVar

from demo.build import OUT, fail

TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream"}  # fmt: skip


class PageHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        **TYPES,
    }

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per file would bury the instructions

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a new make demo's models, not a cached page's
        super().end_headers()


def make_server(
    site: Path, host: str = "127.0.0.1", port: int = 8000, cert: Path | None = None, key: Path | None = None
) -> http.server.ThreadingHTTPServer:
    if not (site / "index.html").is_file():
        fail(f"{site} holds no built page: run make demo (python -m demo.build) first")
    handler = functools.partial(PageHandler, directory=str(site))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        reason = err.strerror or err
        fail(f"cannot serve on {host}:{port} ({reason}): try another DEMO_PORT")
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as err:
            server.server_close()
            fail(f"DEMO_CERT={cert} / DEMO_KEY={key}: {err}")
        # the handshake in each request's thread, not in accept(): an idle client blocks no one
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


def lan_address() -> str:
    """This machine's address on its network (no packet is sent: a UDP socket only picks a route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return "<this machine's address>"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=OUT / "site")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--cert", type=Path, default=None)
    parser.add_argument("--key", type=Path, default=None)
    args = parser.parse_args(argv)
    server = make_server(args.site, args.host, args.port, args.cert, args.key)
    scheme = "https" if args.cert else "http"
    print(f"  the page: {scheme}://127.0.0.1:{args.port}/  (Ctrl-C stops)")
    if args.host in ("127.0.0.1", "localhost"):
        print(f"  on a phone (Android, USB): adb reverse tcp:{args.port} tcp:{args.port}, then "
              f"http://localhost:{args.port}/ on the phone; over Wi-Fi: see docs/demo.md")  # fmt: skip
    else:
        hint = "" if args.cert else "  (motion sensors need https there: DEMO_CERT/DEMO_KEY, docs/demo.md)"
        print(f"  on a phone on the same network: {scheme}://{lan_address()}:{args.port}/{hint}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
