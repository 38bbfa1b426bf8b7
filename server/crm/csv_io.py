"""CSV export and import of contacts and companies, for spreadsheets and other CRMs.

Export streams: pages of 500 rows are read in short transactions of their own, so a large export
neither holds memory nor a long database transaction. Custom fields are columns `cf.<key>`; lists
(addresses, domains, tags) are joined with "; "; cells that a spreadsheet would run as a formula are
prefixed with "'" (and the prefix is removed again on import).

Import goes row by row, each row in a savepoint of its own, so a bad row is reported and skipped
while the good ones are written; a dry run does the very same work and rolls it all back, so the
preview says exactly what the real run will do. Import never deletes: an empty cell leaves the
value as it is, and addresses, domains and tags in a row are added to the record's. Rows match
existing records by `id` (a Rapport export), else by email address (contacts) or domain
(companies); anything else creates a record. Files come as UTF-8 (with or without BOM), UTF-16
or Windows-1252, separated by commas, semicolons or tabs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from server.crm import companies as company_service
from server.crm import contacts as contact_service
from server.crm.addresses import normalise_address
from server.crm.custom_fields import (
    definitions_by_key,
    valid_id,
    value_from_cell,
    value_to_cell,
)
from server.crm.errors import DomainError
from server.crm.viewer import Viewer
from server.models import Company, CompanyDomain, Contact, CustomFieldDefinition, User

MAX_IMPORT_ROWS = 10_000
MAX_COLUMNS = 500
EXPORT_PAGE = 500
LIST_SEPARATOR = "; "
_SPLIT_LIST = re.compile(r"[;,]")
_SPLIT_ADDRESSES = re.compile(r"[;,\s]+")
# A leading + or - is a formula to a spreadsheet, unless the cell is plainly a number or a phone.
_PLAIN_NUMBER = re.compile(r"^[+-]?[\d\s().\-/]*$")
_FORMULA_START = ("=", "@", "\t", "\r", "+", "-")

Status = Literal["created", "updated", "unchanged", "error"]

CONTACT_COLUMNS = {
    "id": "id",
    "name": "name",
    "full_name": "name",
    "email": "emails",
    "emails": "emails",
    "email_address": "emails",
    "e_mail": "emails",
    "title": "title",
    "job_title": "title",
    "phone": "phone",
    "phone_number": "phone",
    "company": "company",
    "company_name": "company",
    "lifecycle_stage": "lifecycle_stage",
    "stage": "lifecycle_stage",
    "owner": "owner",
    "owner_email": "owner",
    "tags": "tags",
}
COMPANY_COLUMNS = {
    "id": "id",
    "name": "name",
    "company": "name",
    "company_name": "name",
    "domain": "domains",
    "domains": "domains",
    "website": "domains",
    "owner": "owner",
    "owner_email": "owner",
    "tags": "tags",
}
# Columns of our own exports that are computed, not imported (they are not reported as unknown).
READ_ONLY_COLUMNS = frozenset({"last_contacted_at", "created_at", "updated_at", "contacts"})
# Which CSV field a service's error field stands for.
_FIELD_TO_COLUMN = {
    "emails": "emails",
    "add_emails": "emails",
    "domains": "domains",
    "add_domains": "domains",
    "company_name": "company",
    "company_id": "company",
    "owner_id": "owner",
}


# -- reading -----------------------------------------------------------------------------------


@dataclass
class CsvTable:
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (spreadsheet row number, the header being row 1; cells)


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(data: bytes) -> CsvTable:
    """The header and rows of a CSV file; a file that is not CSV is refused naming `file`."""
    text = decode(data)
    if not text.strip():
        raise DomainError("the CSV file is empty", field="file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        columns = next(reader, [])
        if len(columns) > MAX_COLUMNS:
            raise DomainError(f"at most {MAX_COLUMNS} columns", field="file")
        number = 1
        for cells in reader:
            number += 1
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_IMPORT_ROWS:
                raise DomainError(
                    f"at most {MAX_IMPORT_ROWS} rows per import; split the file", field="file"
                )
            rows.append((number, cells))
    except csv.Error as exc:
        raise DomainError(f"this is not a CSV file Rapport can read: {exc}", field="file") from None
    if not any(c.strip() for c in columns):
        raise DomainError("the first line must name the columns", field="file")
    return CsvTable(columns, rows)


def _normal_header(header: str) -> str:
    text = header.strip().strip("\ufeff").lower()
    if text.startswith("cf."):
        return text
    return re.sub(r"[\s\-]+", "_", text)


def _cell_in(cell: str) -> str:
    text = cell.strip()
    if len(text) > 1 and text[0] == "'" and text[1] in _FORMULA_START:
        return text[1:]
    return text


def _cell_out(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text and text[0] in _FORMULA_START and not (text[0] in "+-" and _PLAIN_NUMBER.match(text)):
        return "'" + text
    return text


# -- import ------------------------------------------------------------------------------------


@dataclass
class RowResult:
    row: int
    status: Status
    id: int | None = None
    column: str | None = None
    message: str | None = None


@dataclass
class ImportReport:
    entity: str
    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def written(self) -> bool:
        return not self.dry_run and (self.count("created") + self.count("updated")) > 0

    @property
    def message(self) -> str:
        created, updated, errors = self.count("created"), self.count("updated"), self.count("error")
        plural = "s" if errors != 1 else ""
        if self.dry_run:
            text = (
                f"Preview only: nothing was written. {created} row(s) would create a "
                f"{self.entity}, {updated} would update one"
            )
            if errors:
                text += f"; {errors} row{plural} with errors would be skipped"
            return text + "."
        text = f"{created} {self.entity}(s) created, {updated} updated"
        if errors:
            text += (
                f"; {errors} row{plural} with errors {'were' if errors != 1 else 'was'} NOT "
                "imported: fix them and import those rows again"
            )
        return text + "."


@dataclass
class _Columns:
    """Which cell of a row holds which field."""

    index: dict[str, int]
    custom: dict[str, tuple[int, CustomFieldDefinition]]
    names: dict[str, str]  # field -> the header as written in the file
    ignored: list[str]


def _map_columns(
    columns: Sequence[str], known: dict[str, str], definitions: dict[str, CustomFieldDefinition]
) -> _Columns:
    mapped = _Columns({}, {}, {}, [])
    for n, header in enumerate(columns):
        name = _normal_header(header)
        if name.startswith("cf.") and name[3:] in definitions and name[3:] not in mapped.custom:
            mapped.custom[name[3:]] = (n, definitions[name[3:]])
            mapped.names[f"custom_fields.{name[3:]}"] = header.strip()
        elif name in known and known[name] not in mapped.index:
            mapped.index[known[name]] = n
            mapped.names[known[name]] = header.strip()
        elif name not in READ_ONLY_COLUMNS and header.strip():
            mapped.ignored.append(header.strip())
    if not mapped.index and not mapped.custom:
        expected = ", ".join(sorted(set(known.values())))
        raise DomainError(
            f"none of the columns is one Rapport knows (expected {expected})", field="file"
        )
    return mapped


class _RowError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class _Row:
    """One row's cells by field, with errors naming the column as the file spells it."""

    def __init__(self, cells: list[str], columns: _Columns) -> None:
        self.cells = cells
        self.columns = columns

    def get(self, name: str) -> str:
        n = self.columns.index.get(name)
        return _cell_in(self.cells[n]) if n is not None and n < len(self.cells) else ""

    def column(self, field_name: str | None) -> str:
        if field_name is None:
            return ""
        key = _FIELD_TO_COLUMN.get(field_name, field_name)
        return self.columns.names.get(key, self.columns.names.get(field_name, field_name))

    def fail(self, field_name: str, message: str) -> _RowError:
        return _RowError(self.column(field_name), message)

    def custom_fields(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, (n, definition) in self.columns.custom.items():
            cell = _cell_in(self.cells[n]) if n < len(self.cells) else ""
            if cell:
                values[key] = value_from_cell(definition, cell)
        return values

    def record_id(self) -> int | None:
        cell = self.get("id")
        if not cell:
            return None
        if not cell.isdigit():
            raise self.fail("id", f"id must be a number, not {cell!r}")
        return int(cell)


class _Owners:
    """Owner cells hold a user's email address; looked up once per import."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[str, int | None] = {}

    def id_for(self, row: _Row) -> int | None:
        cell = row.get("owner")
        if not cell:
            return None
        address = normalise_address(cell)
        if address is None:
            raise row.fail("owner", f"owner must be a user's email address, not {cell!r}")
        if address not in self.cache:
            self.cache[address] = self.session.scalar(select(User.id).where(User.email == address))
        owner = self.cache[address]
        if owner is None:
            raise row.fail("owner", f"there is no user {address}")
        return owner


def _run_import(
    session: Session,
    report: ImportReport,
    table: CsvTable,
    columns: _Columns,
    handle: Callable[[_Row], tuple[Status, int]],
) -> ImportReport:
    report.ignored_columns = columns.ignored
    everything = session.begin_nested()
    try:
        for number, cells in table.rows:
            row = _Row(cells, columns)
            try:
                with session.begin_nested():
                    status, ident = handle(row)
            except _RowError as exc:
                report.rows.append(
                    RowResult(number, "error", column=exc.column, message=exc.message)
                )
            except DomainError as exc:
                report.rows.append(
                    RowResult(number, "error", column=row.column(exc.field), message=exc.message)
                )
            except (IntegrityError, StaleDataError):
                report.rows.append(
                    RowResult(
                        number,
                        "error",
                        message="another record has the same value; nothing changed",
                    )
                )
            else:
                shown = None if report.dry_run and status == "created" else ident
                report.rows.append(RowResult(number, status, id=shown))
    except BaseException:
        everything.rollback()
        raise
    if report.dry_run:
        everything.rollback()
    else:
        everything.commit()
    return report


def import_contacts(
    session: Session, viewer: Viewer, data: bytes, *, dry_run: bool
) -> ImportReport:
    table = read_csv(data)
    columns = _map_columns(table.columns, CONTACT_COLUMNS, definitions_by_key(session, "contact"))
    owners = _Owners(session)

    def handle(row: _Row) -> tuple[Status, int]:
        fields: contact_service.ContactFields = {}
        emails_cell = row.get("emails")
        addresses = contact_service.clean_emails(
            [a for a in _SPLIT_ADDRESSES.split(emails_cell) if a] if emails_cell else []
        )
        contact = _match_contact(session, row, addresses)
        # Only a name that differs counts as a person's choice (which stops capture renaming).
        if row.get("name") and (contact is None or row.get("name") != contact.name):
            fields["name"] = row.get("name")
        if row.get("title"):
            fields["title"] = row.get("title")
        if row.get("phone"):
            fields["phone"] = row.get("phone")
        if row.get("lifecycle_stage"):
            fields["lifecycle_stage"] = row.get("lifecycle_stage").lower()
        if row.get("company"):
            fields["company_name"] = row.get("company")
        if row.get("owner"):
            fields["owner_id"] = owners.id_for(row)
        tags = [t for t in _SPLIT_LIST.split(row.get("tags")) if t.strip()]
        custom = row.custom_fields()
        if custom:
            fields["custom_fields"] = custom
        if contact is None:
            if not fields.get("name") and not addresses:
                raise row.fail("name", "a new contact needs a name or an email address")
            fields["emails"] = addresses
            fields["tags"] = tags
            created = contact_service.create_contact(session, viewer, fields, source="import")
            return "created", created.id
        fields["add_emails"] = addresses
        if tags:
            have = contact_service.tags_of(session, [contact.id]).get(contact.id, [])
            fields["tags"] = have + tags
        changed = contact_service.update_contact(session, contact, fields)
        return ("updated" if changed else "unchanged"), contact.id

    return _run_import(session, ImportReport("contact", dry_run), table, columns, handle)


def _match_contact(session: Session, row: _Row, addresses: Sequence[str]) -> Contact | None:
    ident = row.record_id()
    if ident is not None:
        contact = session.get(Contact, ident) if valid_id(ident) else None
        if contact is None:
            raise row.fail("id", f"there is no contact {ident} (leave id empty to create one)")
        return contact
    owners = sorted(set(contact_service.owners_of(session, addresses).values()))
    if len(owners) > 1:
        raise row.fail(
            "emails",
            f"these addresses belong to different contacts ({', '.join(map(str, owners))})",
        )
    return session.get(Contact, owners[0]) if owners else None


def _domains_in(cell: str) -> list[str]:
    return [part for part in _SPLIT_ADDRESSES.split(cell) if part]


def import_companies(
    session: Session, viewer: Viewer, data: bytes, *, dry_run: bool
) -> ImportReport:
    table = read_csv(data)
    columns = _map_columns(table.columns, COMPANY_COLUMNS, definitions_by_key(session, "company"))
    owners = _Owners(session)

    def handle(row: _Row) -> tuple[Status, int]:
        fields: company_service.CompanyFields = {}
        domains = company_service.clean_domains(_domains_in(row.get("domains")))
        company = _match_company(session, row, domains)
        if row.get("name"):
            fields["name"] = row.get("name")
        if row.get("owner"):
            fields["owner_id"] = owners.id_for(row)
        tags = [t for t in _SPLIT_LIST.split(row.get("tags")) if t.strip()]
        custom = row.custom_fields()
        if custom:
            fields["custom_fields"] = custom
        if company is None:
            if not fields.get("name"):
                raise row.fail("name", "a new company needs a name")
            fields["domains"] = domains
            fields["tags"] = tags
            created = company_service.create_company(session, viewer, fields)
            return "created", created.id
        fields["add_domains"] = domains
        if tags:
            have = company_service.tags_of(session, [company.id]).get(company.id, [])
            fields["tags"] = have + tags
        changed = company_service.update_company(session, company, fields)
        return ("updated" if changed else "unchanged"), company.id

    return _run_import(session, ImportReport("company", dry_run), table, columns, handle)


def _match_company(session: Session, row: _Row, domains: Sequence[str]) -> Company | None:
    ident = row.record_id()
    if ident is not None:
        company = session.get(Company, ident) if valid_id(ident) else None
        if company is None:
            raise row.fail("id", f"there is no company {ident} (leave id empty to create one)")
        return company
    if not domains:
        return None
    owners = sorted(
        set(
            session.scalars(
                select(CompanyDomain.company_id).where(CompanyDomain.domain.in_(list(domains)))
            )
        )
    )
    if len(owners) > 1:
        raise row.fail(
            "domains",
            f"these domains belong to different companies ({', '.join(map(str, owners))})",
        )
    return session.get(Company, owners[0]) if owners else None


# -- export ------------------------------------------------------------------------------------

OpenSession = Callable[[], AbstractContextManager[Session]]


def _line(cells: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell_out(c) for c in cells])
    return buffer.getvalue()


def _owner_emails(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


CONTACT_EXPORT = (
    "id",
    "name",
    "emails",
    "title",
    "phone",
    "company",
    "lifecycle_stage",
    "owner",
    "tags",
    "last_contacted_at",
    "created_at",
    "updated_at",
)
COMPANY_EXPORT = ("id", "name", "domains", "owner", "tags", "contacts", "created_at", "updated_at")


def export_contacts(
    open_session: OpenSession,
    filters: contact_service.ContactFilters,
    *,
    sort: contact_service.ContactSort = "name",
    descending: bool = False,
) -> Iterator[str]:
    """The contacts matching `filters` as CSV text, chunk by chunk (a BOM first, for Excel)."""
    with open_session() as session:
        definitions = list(definitions_by_key(session, "contact").values())
        contact_service.contact_query(session, filters)  # refuse bad filters before streaming
    return _export(
        open_session,
        [*CONTACT_EXPORT, *(f"cf.{d.key}" for d in definitions)],
        lambda session, cursor: contact_service.list_contacts(
            session, filters, sort=sort, descending=descending, limit=EXPORT_PAGE, cursor=cursor
        ),
        lambda session, items: _contact_lines(session, items, definitions),
    )


def _contact_lines(
    session: Session, items: Sequence[Contact], definitions: Sequence[CustomFieldDefinition]
) -> list[str]:
    tags = contact_service.tags_of(session, [c.id for c in items])
    owners = _owner_emails(session, {c.owner_id for c in items if c.owner_id is not None})
    return [
        _line(
            [
                c.id,
                c.name,
                LIST_SEPARATOR.join(e.address for e in c.emails),
                c.title,
                c.phone,
                c.company.name if c.company else "",
                c.lifecycle_stage,
                owners.get(c.owner_id) if c.owner_id is not None else "",
                LIST_SEPARATOR.join(tags.get(c.id, [])),
                c.last_contacted_at,
                c.created_at,
                c.updated_at,
                *(value_to_cell(d, c.custom_fields.get(d.key)) for d in definitions),
            ]
        )
        for c in items
    ]


def export_companies(
    open_session: OpenSession,
    filters: company_service.CompanyFilters,
    *,
    sort: company_service.CompanySort = "name",
    descending: bool = False,
) -> Iterator[str]:
    with open_session() as session:
        definitions = list(definitions_by_key(session, "company").values())
        company_service.company_query(session, filters)
    return _export(
        open_session,
        [*COMPANY_EXPORT, *(f"cf.{d.key}" for d in definitions)],
        lambda session, cursor: company_service.list_companies(
            session, filters, sort=sort, descending=descending, limit=EXPORT_PAGE, cursor=cursor
        ),
        lambda session, items: _company_lines(session, items, definitions),
    )


def _company_lines(
    session: Session, items: Sequence[Company], definitions: Sequence[CustomFieldDefinition]
) -> list[str]:
    ids = [c.id for c in items]
    tags = company_service.tags_of(session, ids)
    owners = _owner_emails(session, {c.owner_id for c in items if c.owner_id is not None})
    counts = dict(
        session.execute(
            select(Contact.company_id, func.count())
            .where(Contact.company_id.in_(ids))
            .group_by(Contact.company_id)
        ).all()
    )
    return [
        _line(
            [
                c.id,
                c.name,
                LIST_SEPARATOR.join(d.domain for d in c.domains),
                owners.get(c.owner_id) if c.owner_id is not None else "",
                LIST_SEPARATOR.join(tags.get(c.id, [])),
                counts.get(c.id, 0),
                c.created_at,
                c.updated_at,
                *(value_to_cell(d, c.custom_fields.get(d.key)) for d in definitions),
            ]
        )
        for c in items
    ]


def _export(
    open_session: OpenSession,
    header: Sequence[str],
    page_of: Callable[[Session, str | None], Any],
    lines_of: Callable[[Session, Sequence[Any]], list[str]],
) -> Iterator[str]:
    yield "\ufeff" + _line(header)
    cursor: str | None = None
    while True:
        with open_session() as session:
            page = page_of(session, cursor)
            lines = lines_of(session, page.items)
        yield "".join(lines)
        cursor = page.next_cursor
        if cursor is None:
            return
