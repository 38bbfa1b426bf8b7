"""/api/v1/admin/webhooks — outgoing webhooks (admin): subscribe a URL to events, see its
deliveries, send a test, pause or resume (`server.crm.webhooks`, `server.mail_out.webhooks`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response
from sqlalchemy import select

from server.api.auth import admin_only
from server.api.common import reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import webhooks
from server.models import Webhook, WebhookDelivery

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/admin/webhooks")
TAGS = ["webhooks"]
Event = Literal[
    "contact.created", "contact.updated", "activity.captured", "deal.stage_changed", "follow_up.due"
]
ERRORS = {"HTTP_401": ErrorOut, "HTTP_403": ErrorOut}


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https (http only to this machine)")
    events: list[Event] = Field(min_length=1, max_length=10)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    events: list[Event] | None = Field(None, min_length=1, max_length=10)
    active: bool | None = Field(None, description="false pauses it; true resumes it")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    paused_at: datetime | None = Field(description="When it was paused after repeated failures")
    consecutive_failures: int
    created_at: datetime


class CreatedOut(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="Shown this once: the key of X-Rapport-Signature")


class WebhooksOut(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    event: str
    status: str = Field(description="pending, retrying, delivered, failed or skipped")
    response_code: int | None
    attempts: int
    error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesOut(BaseModel):
    items: list[DeliveryOut]


class QueuedOut(BaseModel):
    queued: int


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(webhook, from_attributes=True)


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event=delivery.event,
        status=delivery.status,
        response_code=delivery.response_code,
        attempts=delivery.attempts,
        error=delivery.payload.get("last_error"),
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@bp.get("")
@admin_only
@api.validate(resp=Response(HTTP_200=WebhooksOut, **ERRORS), tags=TAGS)
def list_webhooks() -> WebhooksOut:
    with reading() as session:
        found = session.scalars(select(Webhook).order_by(Webhook.id)).all()
        return WebhooksOut(items=[webhook_out(w) for w in found])


@bp.post("")
@admin_only
@api.validate(
    json=WebhookIn,
    resp=Response(HTTP_201=CreatedOut, HTTP_400=ErrorOut, HTTP_422=ErrorOut, **ERRORS),
    tags=TAGS,
)
def create_webhook(json: WebhookIn) -> tuple[CreatedOut, int]:
    """Subscribe a URL; the answer holds its signing secret, this once."""
    with writing() as session:
        made, secret = webhooks.create_webhook(
            session, rapport(current_app).secrets, url=json.url, events=list(json.events)
        )
        return CreatedOut(webhook=webhook_out(made), secret=secret), 201


@bp.get("/<int:webhook_id>")
@admin_only
@api.validate(resp=Response(HTTP_200=WebhookOut, HTTP_404=ErrorOut, **ERRORS), tags=TAGS)
def get_webhook(webhook_id: int) -> WebhookOut:
    with reading() as session:
        return webhook_out(webhooks.get_webhook(session, webhook_id))


@bp.patch("/<int:webhook_id>")
@admin_only
@api.validate(
    json=WebhookPatch,
    resp=Response(
        HTTP_200=WebhookOut, HTTP_400=ErrorOut, HTTP_404=ErrorOut, HTTP_422=ErrorOut, **ERRORS
    ),
    tags=TAGS,
)
def update_webhook(webhook_id: int, json: WebhookPatch) -> WebhookOut:
    """Change the URL or events, pause it (`active: false`) or resume it."""
    with writing() as session:
        changed = webhooks.update_webhook(
            session,
            webhook_id,
            url=json.url,
            events=list(json.events) if json.events is not None else None,
            active=json.active,
        )
        return webhook_out(changed)


@bp.delete("/<int:webhook_id>")
@admin_only
@api.validate(resp=Response("HTTP_204", HTTP_404=ErrorOut, **ERRORS), tags=TAGS)
def delete_webhook(webhook_id: int) -> tuple[str, int]:
    with writing() as session:
        webhooks.delete_webhook(session, webhook_id)
    return "", 204


@bp.get("/<int:webhook_id>/deliveries")
@admin_only
@api.validate(resp=Response(HTTP_200=DeliveriesOut, HTTP_404=ErrorOut, **ERRORS), tags=TAGS)
def deliveries(webhook_id: int) -> DeliveriesOut:
    """The last 50 deliveries, newest first: status, the receiver's answer, attempts."""
    with reading() as session:
        return DeliveriesOut(
            items=[delivery_out(d) for d in webhooks.deliveries(session, webhook_id)]
        )


@bp.post("/<int:webhook_id>/test")
@admin_only
@api.validate(resp=Response(HTTP_202=QueuedOut, HTTP_404=ErrorOut, **ERRORS), tags=TAGS)
def send_test(webhook_id: int) -> tuple[QueuedOut, int]:
    """Queue a "ping" event to this webhook (the worker sends it)."""
    with writing() as session:
        webhooks.get_webhook(session, webhook_id)
        return QueuedOut(queued=webhooks.emit(session, "ping", {}, only=webhook_id)), 202
