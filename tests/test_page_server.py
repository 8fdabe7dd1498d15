"""make demo's page server: the site's regular files only, loopback unless a host is named, a
deadline for half-sent requests that never blocks the others."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from demo import serve


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "models").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>page")
    (root / "models" / "m.onnx").write_bytes(b"\x08\x01")
    (root / "empty").mkdir()
    (tmp_path / "secret.txt").write_text("not for the network")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(tmp_path, root / "up")
    return root


def status(url: str, method: str = "GET") -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as answer:
            return answer.status, answer.read(), answer.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, b"", ""


def test_only_the_sites_regular_files_are_served_and_nothing_lists_a_folder(site):
    server, thread = serve.serve_in_thread(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert status(f"{base}/") == (200, b"<!doctype html>page", "text/html; charset=utf-8")
        assert status(f"{base}/models/m.onnx")[:2] == (200, b"\x08\x01")
        for path in ("/leak.txt", "/up/secret.txt", "/empty/", "/models/", "/%00", "/nothing",
                     "/..%2fsecret.txt", "/%2e%2e/secret.txt"):  # fmt: skip
            assert status(base + path)[0] == 404, path
        assert status(f"{base}/", method="POST")[0] == 405
        assert status(f"{base}/", method="HEAD")[:2] == (200, b"")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_half_sent_requests_are_closed_at_their_deadline_and_never_block_a_whole_one(site, monkeypatch):
    monkeypatch.setattr(serve, "HEADER_TIMEOUT_S", 1.0)
    server, thread = serve.serve_in_thread(site)
    port = server.server_address[1]
    stalled = []
    try:
        for _ in range(200):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            stalled.append(connection)
        started = time.perf_counter()
        assert status(f"http://127.0.0.1:{port}/")[0] == 200
        assert time.perf_counter() - started < 1.0
        time.sleep(1.5)
        assert all(c.recv(16) == b"" for c in stalled), "closed by the server at the deadline"
    finally:
        for connection in stalled:
            connection.close()
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_an_empty_host_is_loopback_never_every_interface(site):
    server = serve.make_server(site, "", 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_the_page_is_told_the_address_a_phone_opens_with_its_qr_code(site, monkeypatch):
    """``/connect.json``: on loopback the phone's way is localhost (through adb reverse); served
    on the network, this machine's address, https with a certificate."""
    server, thread = serve.serve_in_thread(site)
    port = server.server_address[1]
    try:
        code, body, kind = status(f"http://127.0.0.1:{port}/connect.json")
        card = json.loads(body)
        assert (code, kind, card["url"]) == (200, "application/json", f"http://localhost:{port}/")
        assert card["svg"].startswith("<svg") and "<script" not in card["svg"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    monkeypatch.setattr(serve, "lan_address", lambda: "192.168.1.20")
    assert serve.phone_url("https", "0.0.0.0", 8443) == "https://192.168.1.20:8443/"
    assert serve.phone_url("http", "127.0.0.1", 8000) == "http://localhost:8000/"
