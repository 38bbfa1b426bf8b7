"""/api/v1/templates — email templates with placeholders (`server.crm.templates`): manage them,
fill one in for a contact, and the ones worth using now for a contact."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm import templates
from server.crm.custom_fields import MAX_DB_ID
from server.models import Template

bp = Blueprint("templates", __name__, url_prefix="/api/v1/templates")
TAGS = ["templates"]

RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Subject = Annotated[str, Field(max_length=1000)]
Body = Annotated[str, Field(max_length=100_000)]
PLACEHOLDERS = ", ".join("{{ " + n + " }}" for n in templates.NAMES)


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    subject: Subject = ""
    body: Body = Field("", description=f"Plain text with placeholders: {PLACEHOLDERS}")
    shared: bool = Field(True, description="Everyone may use it (else only you)")


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    subject: Subject | None = None
    body: Body | None = None
    shared: bool | None = None


class TemplateOut(BaseModel):
    id: int
    name: str
    subject: str
    body: str
    shared: bool
    owner_id: int | None
    updated_at: datetime


class TemplatesOut(BaseModel):
    items: list[TemplateOut]
    placeholders: list[str] = Field(description="The placeholder names a template may use")


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: RowId | None = Field(None, description="Whom it is for")
    deal_id: RowId | None = Field(None, description="Which deal (default: their latest open one)")


class RenderedOut(BaseModel):
    subject: str
    body_text: str
    body_html: str = Field(description="The body as HTML, escaped, for an HTML email")
    missing: list[str] = Field(description="Placeholders that had no value and no fallback")


class SuggestionsQuery(BaseModel):
    contact_id: RowId


class SuggestionOut(BaseModel):
    purpose: str = Field(description="deal_won or meeting_follow_up")
    reason: str
    deal_id: int | None
    template: TemplateOut


class SuggestionsOut(BaseModel):
    items: list[SuggestionOut]


def template_out(template: Template) -> TemplateOut:
    return TemplateOut.model_validate(template, from_attributes=True)


ERRORS = {"HTTP_400": ErrorOut, "HTTP_401": ErrorOut, "HTTP_422": ErrorOut}


@bp.get("")
@api.validate(resp=Response(HTTP_200=TemplatesOut, HTTP_401=ErrorOut), tags=TAGS)
def list_templates() -> TemplatesOut:
    """Your templates and the shared ones, by name."""
    with reading() as session:
        found = templates.list_templates(session, current_viewer())
        return TemplatesOut(
            items=[template_out(t) for t in found], placeholders=list(templates.NAMES)
        )


@bp.post("")
@api.validate(json=TemplateIn, resp=Response(HTTP_201=TemplateOut, **ERRORS), tags=TAGS)
def create_template(json: TemplateIn) -> tuple[TemplateOut, int]:
    """A new template; an unknown placeholder is refused naming the field."""
    with writing() as session:
        made = templates.create_template(
            session,
            current_viewer(),
            name=json.name,
            subject=json.subject,
            body=json.body,
            shared=json.shared,
        )
        return template_out(made), 201


@bp.get("/<int:template_id>")
@api.validate(resp=Response(HTTP_200=TemplateOut, HTTP_404=ErrorOut, HTTP_401=ErrorOut), tags=TAGS)
def get_template(template_id: int) -> TemplateOut:
    with reading() as session:
        return template_out(templates.get_template(session, current_viewer(), template_id))


@bp.patch("/<int:template_id>")
@api.validate(
    json=TemplatePatch,
    resp=Response(HTTP_200=TemplateOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, **ERRORS),
    tags=TAGS,
)
def update_template(template_id: int, json: TemplatePatch) -> TemplateOut:
    """Change a template (its owner, or an admin)."""
    with writing() as session:
        changed = templates.update_template(
            session,
            current_viewer(),
            template_id,
            name=json.name,
            subject=json.subject,
            body=json.body,
            shared=json.shared,
        )
        return template_out(changed)


@bp.delete("/<int:template_id>")
@api.validate(
    resp=Response("HTTP_204", HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut), tags=TAGS
)
def delete_template(template_id: int) -> tuple[str, int]:
    """Delete a template (its owner, or an admin)."""
    with writing() as session:
        templates.delete_template(session, current_viewer(), template_id)
    return "", 204


@bp.post("/<int:template_id>/render")
@api.validate(
    json=RenderIn, resp=Response(HTTP_200=RenderedOut, HTTP_404=ErrorOut, **ERRORS), tags=TAGS
)
def render_template(template_id: int, json: RenderIn) -> RenderedOut:
    """The template filled in for a contact, as you would send it (what the pane inserts)."""
    with reading() as session:
        done = templates.render(
            session, current_viewer(), template_id, contact_id=json.contact_id, deal_id=json.deal_id
        )
    return RenderedOut(**vars(done))


@bp.get("/suggestions")
@api.validate(query=SuggestionsQuery, resp=Response(HTTP_200=SuggestionsOut, **ERRORS), tags=TAGS)
def suggestions(query: SuggestionsQuery) -> SuggestionsOut:
    """Templates worth using for this contact now, and why (a deal just won, a meeting with no
    follow-up yet)."""
    with reading() as session:
        found = templates.suggest(session, current_viewer(), query.contact_id)
        return SuggestionsOut(
            items=[
                SuggestionOut(
                    purpose=s.purpose,
                    reason=s.reason,
                    deal_id=s.deal_id,
                    template=template_out(s.template),
                )
                for s in found
            ]
        )
