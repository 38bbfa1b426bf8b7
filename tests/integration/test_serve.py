"""`rapport serve` runs the real server (gunicorn) and answers on its port."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.support.postgres import free_port

KEEPALIVE_PROBE_SECONDS = 3.0  # past gunicorn's default keep-alive


def wait_for(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 90
) -> tuple[int, dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local URL
                return response.status, json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_answers_healthz(env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--workers", "1"],
        env={**os.environ, **env},
    )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200
        assert body["database"] == "ok"
        assert_idle_connection_kept(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def assert_idle_connection_kept(port: int) -> None:
    """A proxy's idle upstream connection is still open when the proxy reuses it: were gunicorn
    to close it first (its default keep-alive is 2 s), a POST sent on it as it closes would fail
    and nginx would not re-send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close
        socket_before = connection.sock
        time.sleep(KEEPALIVE_PROBE_SECONDS)
        connection.request("GET", "/healthz")  # raises RemoteDisconnected if it was closed
        second = connection.getresponse()
        second.read()
        assert second.status == 200
        assert connection.sock is socket_before
    finally:
        connection.close()


def test_serve_refuses_an_unmigrated_database(env: dict[str, str], tmp_path: object) -> None:
    fresh = {**env, "RAPPORT_DATABASE_URL": f"sqlite:///{env['RAPPORT_DATA_DIR']}/empty.sqlite3"}
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", str(free_port())],
        env={**os.environ, **fresh},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "rapport db upgrade" in result.stderr
