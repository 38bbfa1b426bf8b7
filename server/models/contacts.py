"""Contacts, their addresses, companies and their domains, tags and custom field definitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, Timestamps, Versioned

LIFECYCLE_STAGES = ("subscriber", "lead", "qualified", "opportunity", "customer", "former", "other")


class Company(Timestamps, Versioned, Base):
    __tablename__ = "companies"
    # The lists sort by name without regard to case, paged by (lower(name), id): migration 0008.
    __table_args__ = (Index("ix_companies_name_sort", func.lower("name"), "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)

    domains: Mapped[list[CompanyDomain]] = relationship(
        back_populates="company", cascade="all, delete-orphan"
    )
    contacts: Mapped[list[Contact]] = relationship(back_populates="company")


class CompanyDomain(Base):
    __tablename__ = "company_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(255), unique=True)

    company: Mapped[Company] = relationship(back_populates="domains")


class CompanyTag(Base):
    __tablename__ = "company_tags"

    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Contact(Timestamps, Versioned, Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_name_sort", func.lower("name"), "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), default="", index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(100), default="")
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    lifecycle_stage: Mapped[str] = mapped_column(String(30), default="lead")
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_contacted_at: Mapped[datetime | None] = mapped_column(index=True)
    next_follow_up_at: Mapped[datetime | None]
    # who/what created it: "capture", "user", "import", "form"
    source: Mapped[str] = mapped_column(String(20), default="user")
    # When the current name was seen in mail; None once a person typed it, so capture never
    # overwrites a name someone chose.
    name_seen_at: Mapped[datetime | None]

    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactEmail.id"
    )
    company: Mapped[Company | None] = relationship(back_populates="contacts")


class ContactEmail(Base):
    """One normalised address of a contact; an address belongs to at most one contact."""

    __tablename__ = "contact_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320), unique=True)
    is_primary: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class ContactTag(Base):
    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class CustomFieldDefinition(Base):
    """An admin-defined field on contacts, companies or deals (text, number, money, date, choice)."""

    __tablename__ = "custom_field_definitions"
    __table_args__ = (UniqueConstraint("entity", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))  # contact, company, deal
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    field_type: Mapped[str] = mapped_column(String(20))  # text, number, money, date, choice
    choices: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(default=0)
