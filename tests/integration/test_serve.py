"""`rapport serve` runs the real server (gunicorn) and answers on its port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.support.postgres import free_port


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
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
