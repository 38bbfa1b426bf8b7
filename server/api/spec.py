"""One OpenAPI 3.1 document generated from the same pydantic models that validate requests.

SpecTree (pydantic v2, plain Flask blueprints, OpenAPI 3.1 by default) was chosen over APIFlask
and flask-smorest because it decorates ordinary Flask views instead of replacing the app class,
and because pydantic's JSON Schema output is what OpenAPI 3.1 speaks natively. A request that
fails validation is answered with our own error shape, naming the field.

SpecTree's own reference pages load their viewers from public CDNs, so they are switched off
(`page_templates={}`); server/api/reference.py renders the reference from this document instead.
"""

from __future__ import annotations

import re
from typing import Any, cast

from flask import abort
from pydantic import ValidationError
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.model_adapter.pydantic_adapter import PydanticModelAdapter
from spectree.models import SecureType

from server.api.errors import error_response
from server.api.schemas import ErrorOut

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})


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


class _ErrorsWithoutInput(PydanticModelAdapter):
    """SpecTree renders its own 422 body with `jsonify` before our hook replaces it; the errors'
    `input` (a whole form, uploaded files, keys of mixed types) need not be JSON-serialisable
    and made that a 500. Our answer never shows the input, so it is left out here."""

    def validation_errors(self, err: ValidationError) -> Any:
        return err.errors(include_context=False, include_input=False, include_url=False)


def _component_name(model: type[Any]) -> str:
    """OpenAPI component names allow [A-Za-z0-9._-]: `PageOut[DealOut]` becomes `PageOutDealOut`."""
    return re.sub(r"[^A-Za-z0-9._-]", "", model.__name__)


def app_wide_answers(operation: dict[str, Any], method: str) -> dict[str, str]:
    """The statuses an operation can get from hooks that run before any view (sign-in, token
    scope, rate limits, JSON-only bodies, path converters), with why."""
    answers = {}
    parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
    if ("query", "cursor") in parameters:  # every list pages through server/crm/paging.py
        answers["400"] = "Bad Request: a cursor this API did not give out, or another bad value"
    if any(where == "path" for where, _name in parameters):
        answers["404"] = "Not Found: nothing with this id (or nothing you may see)"
    if "requestBody" in operation:
        answers["415"] = "Unsupported Media Type: send the body as one of the types shown"
        answers.setdefault("400", "Bad Request: a NUL character in a value, or another bad value")
    if operation.get("security") != []:  # an empty list marks the public operations
        answers["401"] = "Unauthorized: no token, or one that is invalid, expired or revoked"
        answers["429"] = "Too Many Requests: over the token's budget a minute (see Retry-After)"
        if method in WRITE_METHODS:
            answers["403"] = "Forbidden: a read-only token, or not allowed to you"
    return answers


class RapportSpec(SpecTree):
    """SpecTree plus the answers of the app-wide hooks: they are enforced in one place, so they
    are documented in one place rather than repeated (and forgotten) on each view."""

    def _generate_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = super()._generate_spec()
        for operations in spec["paths"].values():
            for method, operation in operations.items():
                responses = operation["responses"]
                for status, description in app_wide_answers(operation, method).items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": ERROR_SCHEMA}},
                        },
                    )
                operation["responses"] = dict(sorted(responses.items()))
        return spec


api = RapportSpec(
    "flask",
    title="Rapport API",
    version="v1",
    # SpecTree leaves out every route under its own path, so its copy of the document lives below
    # /api/v1/docs and the contract's /api/v1/openapi.json is served by server/api/openapi.py.
    path="api/v1/docs",
    page_templates={},
    mode="strict",
    naming_strategy=_component_name,
    before=_validation_error,
    validation_error_model=ErrorOut,
    # SpecTree types its adapters by a protocol this subclass meets but mypy cannot see through.
    model_adapter=cast(Any, _ErrorsWithoutInput()),
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
