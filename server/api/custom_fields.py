"""/api/v1/custom-fields: the fields an admin adds to contacts, companies and deals.

Everyone signed in reads the definitions (forms and filters need them); only an admin defines,
changes or deletes them. A field's entity, key and type are fixed once defined, because stored
values and filters depend on them; deleting a field deletes its values everywhere.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, field_validator
from spectree import Response

from server.api.auth import admin_only
from server.api.common import reading, writing
from server.api.contacts import ERRORS, Absent, refuse_null
from server.api.schemas import ErrorOut, Out
from server.api.spec import api
from server.crm import custom_fields

bp = Blueprint("custom_fields", __name__, url_prefix="/api/v1")

Entity = Literal["contact", "company", "deal"]
FieldType = Literal["text", "number", "money", "date", "choice"]
Choice = Annotated[str, Field(max_length=200)]


class DefinitionQuery(BaseModel):
    entity: Entity | None = Field(None, description="Only the fields of this entity")


class DefinitionOut(Out):
    id: int
    entity: str
    key: str = Field(description="Used in custom_fields, in filters (cf.<key>) and CSV columns")
    label: str
    field_type: str
    choices: list[str]
    position: int


class DefinitionList(BaseModel):
    items: list[DefinitionOut]


class DefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: Entity
    key: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A slug: lower-case letters, digits, _"
    )
    label: str = Field(min_length=1, max_length=200)
    field_type: FieldType
    choices: list[Choice] = Field(
        default_factory=list, max_length=200, description="The allowed values of a choice field"
    )
    position: int | None = Field(
        None, ge=0, le=10_000, description="Order in forms (default: last)"
    )


class DefinitionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | Absent = Field(None, min_length=1, max_length=200)
    choices: list[Choice] | Absent = Field(None, max_length=200)
    position: int | Absent = Field(None, ge=0, le=10_000)

    _not_null = field_validator("label", "choices", "position", mode="before")(refuse_null)


def definition_out(definition: object) -> DefinitionOut:
    return DefinitionOut.model_validate(definition)


@bp.get("/custom-fields")
@api.validate(
    query=DefinitionQuery, resp=Response(HTTP_200=DefinitionList, **ERRORS), tags=["custom fields"]
)
def list_fields(query: DefinitionQuery) -> DefinitionList:
    """The custom fields defined, by entity and position."""
    with reading() as session:
        found = custom_fields.list_definitions(session, query.entity)
        return DefinitionList(items=[definition_out(d) for d in found])


@bp.get("/custom-fields/<int:field_id>")
@api.validate(
    resp=Response(HTTP_200=DefinitionOut, HTTP_404=ErrorOut, **ERRORS), tags=["custom fields"]
)
def get_field(field_id: int) -> DefinitionOut:
    with reading() as session:
        return definition_out(custom_fields.get_definition(session, field_id))


@bp.post("/custom-fields")
@admin_only
@api.validate(
    json=DefinitionIn,
    resp=Response(HTTP_201=DefinitionOut, HTTP_403=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["custom fields"],
)
def create_field(json: DefinitionIn) -> tuple[DefinitionOut, int]:
    """Define a field (admin only); a key already used for that entity is a 409."""
    with writing() as session:
        fields = cast(custom_fields.DefinitionFields, json.model_dump(exclude_none=True))
        definition = custom_fields.create_definition(session, fields)
        return definition_out(definition), 201


@bp.patch("/custom-fields/<int:field_id>")
@admin_only
@api.validate(
    json=DefinitionPatch,
    resp=Response(HTTP_200=DefinitionOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["custom fields"],
)
def update_field(field_id: int, json: DefinitionPatch) -> DefinitionOut:
    """Change a field's label, choices or position (admin only)."""
    with writing() as session:
        fields = cast(custom_fields.DefinitionFields, json.model_dump(exclude_unset=True))
        return definition_out(custom_fields.update_definition(session, field_id, fields))


@bp.delete("/custom-fields/<int:field_id>")
@admin_only
@api.validate(
    resp=Response("HTTP_204", HTTP_403=ErrorOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["custom fields"],
)
def delete_field(field_id: int) -> tuple[str, int]:
    """Delete a field and its values on every record (admin only)."""
    with writing() as session:
        custom_fields.delete_definition(session, field_id)
    return "", 204
