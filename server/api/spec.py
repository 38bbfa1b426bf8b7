"""One OpenAPI 3.1 document generated from the same pydantic models that validate requests.

SpecTree (pydantic v2, plain Flask blueprints, OpenAPI 3.1 by default) was chosen over APIFlask
and flask-smorest because it decorates ordinary Flask views instead of replacing the app class,
and because pydantic's JSON Schema output is what OpenAPI 3.1 speaks natively. A request that
fails validation is answered with our own error shape, naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType

from server.api.errors import error_response


def _validation_error(
    req: Any, resp: Any, err: Exception | None, instance: Any, *args: Any
) -> None:
    if err is None:
        return
    errors = err.errors() if hasattr(err, "errors") else []  # pydantic.ValidationError
    first = errors[0] if errors else {}
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    message = str(first.get("msg", "invalid request"))
    text = f"{field}: {message}" if field else message
    abort(error_response(422, "invalid", text, **({"field": field} if field else {})))


def _component_name(model: type[Any]) -> str:
    """OpenAPI component names allow [A-Za-z0-9._-]: `PageOut[DealOut]` becomes `PageOutDealOut`."""
    return re.sub(r"[^A-Za-z0-9._-]", "", model.__name__)


api = SpecTree(
    "flask",
    title="Rapport API",
    version="v1",
    # SpecTree leaves out every route under its own path, so its pages live below /api/v1/docs
    # and the contract's /api/v1/openapi.json is served by server/api/openapi.py.
    path="api/v1/docs",
    mode="strict",
    naming_strategy=_component_name,
    before=_validation_error,
    annotations=True,
    security_schemes=[
        SecurityScheme(
            name="bearer",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                description="A Rapport API token (rpt_...) or an Entra ID access token",
            ),
        )
    ],
    security={"bearer": []},
)
