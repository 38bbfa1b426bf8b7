"""GET /api/v1/reference: the API reference as one self-contained HTML page, rendered on the
server from the OpenAPI document (public, like the document itself).

Why not SpecTree's Swagger UI, Redoc or Scalar pages: they load their viewers from public CDNs,
so they do not work offline and make every reader's browser run third-party code. This page has
no script at all, and its one inline style sheet is allowed by its hash in the page's CSP. The
old /api/v1/docs/ pages redirect here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, redirect, render_template, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as Redirect

from server.api.auth import public
from server.api.spec import api

bp = Blueprint("reference", __name__, url_prefix="/api/v1", template_folder="templates")

METHOD_ORDER = ("get", "post", "put", "patch", "delete")
EITHER = Markup(" | ")
BOTH = Markup(" &amp; ")
CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fff}
header,main,nav{max-width:72rem;margin:0 auto;padding:0 1.5rem}
header{padding-top:1.5rem}
h1{margin:0 0 .25rem}h2{margin-top:2.5rem;border-bottom:2px solid #d8dde6}
h3{margin:0;font-size:1.05rem}
code{font:13px/1.4 ui-monospace,monospace;background:#f2f4f8;padding:0 .25em;border-radius:3px}
a{color:#1f5fbf}
nav ul{columns:2 22rem;padding-left:1.2rem}nav li{break-inside:avoid}
section.op{border:1px solid #d8dde6;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.method{display:inline-block;min-width:4.2em;font:700 12px/1.8 ui-monospace,monospace;
text-transform:uppercase;text-align:center;border-radius:3px;color:#fff;background:#5b6472}
.get{background:#2f7d4f}.post{background:#1f5fbf}.put,.patch{background:#a05a00}
.delete{background:#b3261e}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-top:1px solid #e6e9ef}
th{font-size:13px;color:#5b6472;font-weight:600}
.muted{color:#5b6472}.required{color:#b3261e;font-size:12px}
"""
POLICY = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@dataclass
class Row:
    """A parameter or a property."""

    name: str
    type: Markup
    required: bool
    description: str
    where: str = ""


@dataclass
class Body:
    media_type: str
    type: Markup


@dataclass
class Answer:
    status: str
    description: str
    type: Markup | None


@dataclass
class Operation:
    anchor: str
    method: str
    path: str
    summary: str
    description: str
    public: bool
    tags: list[str]
    parameters: list[Row]
    body: list[Body]
    body_required: bool
    responses: list[Answer]


@dataclass
class Section:
    tag: str
    anchor: str
    operations: list[Operation] = field(default_factory=list)


@dataclass
class SchemaDoc:
    name: str
    anchor: str
    description: str
    type: Markup
    properties: list[Row]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def schema_anchor(name: str) -> str:
    return f"schema-{_slug(name)}"


def operation_anchor(method: str, path: str) -> str:
    return _slug(f"op-{method}{path}")


def type_of(schema: Mapping[str, Any]) -> Markup:
    """A schema in a few words, with links to the components it refers to."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return Markup('<a href="#{}">{}</a>').format(schema_anchor(name), name)
    for key, joiner in (("anyOf", EITHER), ("oneOf", EITHER), ("allOf", BOTH)):
        if key in schema:
            return joiner.join(type_of(part) for part in schema[key])
    if "enum" in schema:
        return EITHER.join(Markup("<code>{}</code>").format(json.dumps(v)) for v in schema["enum"])
    if "const" in schema:
        return Markup("<code>{}</code>").format(json.dumps(schema["const"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return EITHER.join(type_of({**schema, "type": k}) for k in kind)
    if kind == "array":
        return Markup("array of {}").format(type_of(schema.get("items", {})))
    values = schema.get("additionalProperties")
    if kind == "object" and isinstance(values, Mapping) and values:
        return Markup("object of {}").format(type_of(values))
    text = str(kind or "any")
    if "format" in schema:
        text += f" ({schema['format']})"
    return Markup("{}").format(text)


def _limits(schema: Mapping[str, Any]) -> Iterator[str]:
    """Constraints in words, from the schema and the members of an optional (anyOf) one."""
    parts = [schema, *schema.get("anyOf", ()), *schema.get("oneOf", ())]
    for part in parts:
        if "minLength" in part or "maxLength" in part:
            yield f"{part.get('minLength', 0)} to {part.get('maxLength', '∞')} characters"
        if "minimum" in part or "maximum" in part:
            yield f"from {part.get('minimum', '-∞')} to {part.get('maximum', '∞')}"
        if "maxItems" in part:
            yield f"at most {part['maxItems']} items"
        if "pattern" in part:
            yield f"matches {part['pattern']}"
    if schema.get("default") is not None:
        yield f"default {json.dumps(schema['default'])}"


def _described(schema: Mapping[str, Any], description: str = "") -> str:
    text = description or str(schema.get("description", ""))
    limits = "; ".join(dict.fromkeys(_limits(schema)))
    return f"{text} ({limits})" if text and limits else text or limits


def _operation(path: str, method: str, spec: Mapping[str, Any]) -> Operation:
    parameters = [
        Row(
            name=p["name"],
            where=p["in"],
            type=type_of(p.get("schema", {})),
            required=bool(p.get("required")),
            description=_described(p.get("schema", {}), p.get("description", "")),
        )
        for p in spec.get("parameters", [])
    ]
    request = spec.get("requestBody", {})
    body = [
        Body(media_type, type_of(content.get("schema", {})))
        for media_type, content in request.get("content", {}).items()
    ]
    responses = []
    for status, answer in spec.get("responses", {}).items():
        schemas = [c["schema"] for c in answer.get("content", {}).values() if "schema" in c]
        described = type_of(schemas[0]) if schemas else None
        responses.append(Answer(status, answer.get("description", ""), described))
    return Operation(
        anchor=operation_anchor(method, path),
        method=method,
        path=path,
        summary=spec.get("summary", ""),
        description=spec.get("description", ""),
        public=spec.get("security") == [],
        tags=list(spec.get("tags", [])),
        parameters=parameters,
        body=body,
        body_required=bool(request.get("required")),
        responses=responses,
    )


def sections(document: Mapping[str, Any]) -> list[Section]:
    """Operations grouped by their first tag, in the document's tag order, then by path."""
    by_tag = {t["name"]: Section(t["name"], _slug(f"tag-{t['name']}")) for t in document["tags"]}
    untagged = Section("other", "tag-other")
    for path in sorted(document["paths"]):
        operations = document["paths"][path]
        for method in sorted(operations, key=lambda m: (*METHOD_ORDER, m).index(m)):
            operation = _operation(path, method, operations[method])
            tag = operation.tags[0] if operation.tags else ""
            by_tag.get(tag, untagged).operations.append(operation)
    return [s for s in (*by_tag.values(), untagged) if s.operations]


def schemas(document: Mapping[str, Any]) -> list[SchemaDoc]:
    found = []
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", ()))
        found.append(
            SchemaDoc(
                name=name,
                anchor=schema_anchor(name),
                description=str(schema.get("description", "")),
                type=type_of({k: v for k, v in schema.items() if k != "properties"}),
                properties=[
                    Row(prop, type_of(sub), prop in required, _described(sub))
                    for prop, sub in schema.get("properties", {}).items()
                ],
            )
        )
    return found


@bp.get("/reference")
@public
def reference() -> Response:
    """The API reference page."""
    document = api.spec
    html = render_template(
        "reference.html",
        css=Markup(CSS),  # noqa: S704 - our own constant, whose hash the policy allows
        info=document["info"],
        openapi=document["openapi"],
        sections=sections(document),
        schemas=schemas(document),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = POLICY
    return response


@bp.get("/docs/")
@bp.get("/docs/<any(swagger, redoc, scalar):viewer>/")
@public
def old_viewers(viewer: str | None = None) -> Redirect:
    """SpecTree's CDN-based viewers lived here; bookmarks land on the reference instead."""
    return redirect(url_for("reference.reference"), code=301)
