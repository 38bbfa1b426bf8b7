"""Every 4xx/5xx answer is JSON: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from server.crm.errors import DomainError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra: object) -> Response:
    body: dict[str, object] = {"code": code, "message": message, **extra}
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _code_for(exc: HTTPException) -> str:
    name = (exc.name or "error").lower()
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        extra = {"field": exc.field} if exc.field else {}
        return error_response(exc.status, exc.code, exc.message, **extra)

    @app.errorhandler(StaleDataError)
    def _stale(_exc: StaleDataError) -> Response:
        return error_response(
            409, "conflict", "this record was changed by someone else; reload it and try again"
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return error_response(exc.code or 500, _code_for(exc), exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side")
