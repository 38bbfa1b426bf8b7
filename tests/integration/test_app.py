"""The app factory: health, and JSON errors for every 4xx/5xx."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from server.api.auth import public
from server.db import Database


def test_healthz_reports_database_and_migrations(client: FlaskClient, db: Database) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["migrations"] == {
        "current": db.head_revision(),
        "head": db.head_revision(),
        "up_to_date": True,
    }


def test_healthz_says_when_migrations_are_behind(client: FlaskClient, db: Database) -> None:
    db.downgrade("base")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["action"] == "run `rapport db upgrade`"


def test_unknown_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_bug_is_a_json_500_without_details(app: Flask) -> None:
    @app.get("/boom")
    @public
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error["code"] == "internal_error"
    assert "secret" not in error["message"]
