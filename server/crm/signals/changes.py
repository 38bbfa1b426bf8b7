"""Signals follow changes made by people, not only mail: called by the CRM services that make them.

Mail marks contacts as it is captured (`dirty.mark_touched`); these are the other doors. A deal's
and a company's signals are recomputed at once, in the caller's transaction (a handful of
statements: one deal, one or two companies), so the deal a person just moved stops rotting on
their screen now, not at the next hourly tick. A contact's signals need their whole timeline, so
a change to a contact (stage, owner, company, addresses, a merge) only marks them for the worker,
as capture does.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from server.crm.signals import dirty
from server.crm.signals.store import load_context, recompute_companies, recompute_deals


def deals_changed(
    session: Session, deal_ids: Iterable[int], company_ids: Iterable[int | None] = ()
) -> None:
    """A deal was created, edited, moved or reopened: its rotting, and its companies' (old and
    new) top-customer standing."""
    deals = sorted(set(deal_ids))
    companies = sorted({c for c in company_ids if c is not None})
    if not deals and not companies:
        return
    session.flush()
    ctx = load_context(session)
    if deals:
        recompute_deals(session, deals, ctx)
    if companies:
        recompute_companies(session, companies, ctx)


def companies_changed(session: Session, company_ids: Iterable[int | None]) -> None:
    """A company's owner or fields changed (who gets its alert, a top-customer money field)."""
    deals_changed(session, (), company_ids)


def contacts_changed(session: Session, contact_ids: Iterable[int]) -> None:
    """A contact's stage, owner, company or addresses changed, or another was merged into it."""
    session.flush()
    dirty.mark_contacts(session, contact_ids)
