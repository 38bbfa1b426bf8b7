"""Run the WSGI app under gunicorn, each worker building its own app (and database pool)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from server.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # untyped base
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from server.app import create_app

        return create_app(self.settings)


def run_server(settings: Settings, *, host: str, port: int, workers: int) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "accesslog": None,
        "timeout": 60,
        "graceful_timeout": 20,
        # Longer than a proxy's idle upstream connections live (nginx and load balancers: 60 s),
        # so the proxy closes them, never gunicorn: a POST sent on a connection gunicorn is
        # closing fails, and a proxy does not re-send a POST.
        "keepalive": 75,
        # gunicorn 27's control socket is one path per user (~/.gunicorn): several servers on a
        # machine would take it from each other, and nothing of ours uses it.
        "control_socket_disable": True,
    }
    _Gunicorn(settings, options).run()
