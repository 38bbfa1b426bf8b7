"""`rapport demo`: a demo database filled the real way — generated mailboxes captured through the
same import path as `rapport import`, then the deals and owners a team would have typed in
(`server.demo.crm`) — and demo users to sign in as."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from server.config import Settings
from server.crm.rule_admin import add_rule
from server.crm.rules import seed_internal_domains
from server.crm.signals.upkeep import recompute_all
from server.crm.users import add_user, create_token, set_password
from server.db import Database
from server.demo.campaigns import record_campaigns
from server.demo.crm import record_crm
from server.demo.generator import generate_demo
from server.mail_ingest.importer import import_files
from server.mail_out.digests import send_digest
from server.models import CaptureRule, User, utcnow

DONE_MARKER = "demo-imported"
MEMBER_PASSWORD = "northwind demo day"  # noqa: S105 - the demo's own, printed for people to use
TOKEN_FILE = "demo-admin-token"  # noqa: S105 - a file name


def prepare_demo(
    db: Database, settings: Settings, *, echo: Callable[[str], None], base_url: str = ""
) -> list[str]:
    """Create (once) and return a few lines telling a person what to open and as whom."""
    db.upgrade()
    marker = settings.data_dir / DONE_MARKER
    if not marker.exists():
        now = utcnow()
        dataset = generate_demo(settings.data_dir / "mail", now=now)
        with db.session() as session:
            seed_internal_domains(session, settings.internal_domains)
            known = set(
                session.scalars(
                    select(CaptureRule.value).where(CaptureRule.kind == "internal_domain")
                )
            )
            if dataset.company_domain not in known:
                add_rule(session, "internal_domain", dataset.company_domain)
            for index, mailbox in enumerate(dataset.staff):
                if session.scalar(select(User.id).where(User.email == mailbox.owner)) is None:
                    role = "admin" if index == 0 else "member"
                    add_user(session, mailbox.owner, role=role, name=mailbox.name)
        for mailbox in dataset.staff:
            echo(f"capturing the demo mailbox of {mailbox.owner} ...")
            import_files(db, settings, [mailbox.path], owner=mailbox.owner)
        if dataset.extra_files:
            echo("capturing the demo archive files ...")
            import_files(db, settings, dataset.extra_files, owner=dataset.staff[0].owner)
        with db.session() as session:
            deals = record_crm(session, dataset.accounts, now)
        echo(f"recording account owners and {deals} deals ...")
        echo("recording marketing consent and the demo's campaigns ...")
        with db.session() as session:
            sender = session.scalars(select(User).where(User.role == "admin")).first()
            if sender is not None:
                record_campaigns(session, sender, now, public_url=base_url)
        echo("computing relationship signals ...")
        recompute_all(db)
        echo("writing this morning's digests to the outbox ...")
        linked = dataclasses.replace(settings, public_url=base_url) if base_url else settings
        for mailbox in dataset.staff:
            with db.read_session() as session:
                user_id = session.scalar(select(User.id).where(User.email == mailbox.owner))
            if user_id is not None:
                send_digest(db, linked, user_id, force=True)
        with db.session() as session:
            admin = session.scalars(select(User).where(User.role == "admin")).first()
            assert admin is not None
            issued = create_token(session, admin, name="demo", expires_in=timedelta(days=365))
            member = session.scalars(select(User).where(User.role == "member")).first()
            if member is not None:
                set_password(session, member, MEMBER_PASSWORD)
        (settings.data_dir / TOKEN_FILE).write_text(issued.plaintext + "\n")
        marker.write_text(f"{dataset.message_count} messages\n")
    with db.session() as session:
        users = session.scalars(select(User).order_by(User.id)).all()
        admin_user = next((u for u in users if u.role == "admin"), None)
        member_user = next((u for u in users if u.role == "member"), None)
        lines = [f"demo users: {', '.join(f'{u.email} ({u.role})' for u in users)}"]
    token = (settings.data_dir / TOKEN_FILE).read_text().strip()
    admin_name = admin_user.email if admin_user else "the demo admin"
    lines.append(
        f'web app: {base_url}/app/  ("Continue as the demo admin" signs in as {admin_name}'
        + (
            f"; or sign in as {member_user.email} (member), password: {MEMBER_PASSWORD})"
            if member_user
            else ")"
        )
    )
    lines.append(f"admin pages: {base_url}/app/#/admin/mailboxes  (as the demo admin)")
    lines.append(
        f"the Outlook task pane without Outlook: {base_url}/preview/  (signs in as the demo admin)"
    )
    lines.append(f"the web lead form, as on a customer's site: {base_url}/forms/lead/demo")
    lines.append(
        f"campaigns: {base_url}/app/#/campaigns  (one sent three weeks ago, with replies; a draft "
        "to send: it goes to the outbox below, and a few of the customers answer within seconds)"
    )
    if (settings.data_dir / "outbox").is_dir():
        lines.append(
            f"this morning's digest emails (no SMTP in the demo): {settings.data_dir / 'outbox'}"
        )
    lines.append(f"API token of the demo admin: {token}")
    lines.append(f"demo data: {settings.data_dir}")
    return lines
