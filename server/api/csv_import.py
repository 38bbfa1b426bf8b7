"""CSV export and import of contacts and companies.

Exports take the same filters and sort as the lists and stream (SpecTree would buffer a response it
validates, so these views are documented through a twin that SpecTree decorates, and validate
their query themselves). Imports take the CSV as the request body (text/csv) or as the `file` part
of a multipart form; `?dry_run=1` previews: every row's outcome, nothing written. A real run
writes the good rows and reports the bad ones — the answer says so in `message`.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, Field, WithJsonSchema
from spectree import Response as Responses

from server.api.auth import current_viewer
from server.api.common import csv_response, documented_by, validated_query, writing
from server.api.companies import CompanyFilterQuery, company_filters
from server.api.contacts import ERRORS, ContactFilterQuery, contact_filters
from server.api.schemas import ErrorOut
from server.api.security import accepts
from server.api.spec import api
from server.app_context import rapport
from server.crm import csv_io
from server.crm.errors import DomainError

bp = Blueprint("csv", __name__, url_prefix="/api/v1")


class ImportQuery(BaseModel):
    dry_run: bool = Field(False, description="Preview: report what would happen, write nothing")


class ImportForm(BaseModel):
    file: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})] = Field(
        description="The CSV file (or send it as the body, Content-Type: text/csv)"
    )


class RowOut(BaseModel):
    row: int = Field(description="The spreadsheet row (the header is row 1)")
    status: str = Field(description="created, updated, unchanged or error")
    id: int | None = Field(description="The record's id (none for rows a preview would create)")
    column: str | None = Field(description="For an error: the column at fault, as in the file")
    message: str | None = Field(description="For an error: what is wrong")


class ImportOut(BaseModel):
    dry_run: bool
    written: bool = Field(description="Whether anything was written")
    message: str = Field(description="What happened, in a sentence for people")
    created: int
    updated: int
    unchanged: int
    errors: int = Field(description="Rows NOT imported (fix them and import them again)")
    ignored_columns: list[str] = Field(description="Columns Rapport does not know, not imported")
    rows: list[RowOut]


def _report_out(report: csv_io.ImportReport) -> ImportOut:
    return ImportOut(
        dry_run=report.dry_run,
        written=report.written,
        message=report.message,
        created=report.count("created"),
        updated=report.count("updated"),
        unchanged=report.count("unchanged"),
        errors=report.count("error"),
        ignored_columns=report.ignored_columns,
        rows=[RowOut.model_validate(r, from_attributes=True) for r in report.rows],
    )


def _uploaded_csv() -> bytes:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise DomainError("send the CSV as the 'file' part of the form", field="file")
        return bytes(upload.read())
    return request.get_data(cache=False)


EXPORT_RESPONSES = Responses("HTTP_200", **ERRORS)


@api.validate(query=ContactFilterQuery, resp=EXPORT_RESPONSES, tags=["contacts", "csv"])
def _contacts_export_doc(query: ContactFilterQuery) -> None:  # pragma: no cover - documentation
    """Contacts as CSV."""


@bp.get("/contacts/export.csv")
@documented_by(_contacts_export_doc)
def export_contacts() -> Response:
    """Contacts as CSV (text/csv), with the list's filters and sort; custom fields as cf.<key>."""
    query = validated_query(ContactFilterQuery)
    chunks = csv_io.export_contacts(
        rapport(current_app).db.read_session,
        contact_filters(query),
        sort=query.sort,
        descending=query.order == "desc",
    )
    return csv_response(chunks, "contacts.csv")


@api.validate(query=CompanyFilterQuery, resp=EXPORT_RESPONSES, tags=["companies", "csv"])
def _companies_export_doc(query: CompanyFilterQuery) -> None:  # pragma: no cover - documentation
    """Companies as CSV."""


@bp.get("/companies/export.csv")
@documented_by(_companies_export_doc)
def export_companies() -> Response:
    """Companies as CSV (text/csv), with the list's filters and sort; custom fields as cf.<key>."""
    query = validated_query(CompanyFilterQuery)
    chunks = csv_io.export_companies(
        rapport(current_app).db.read_session,
        company_filters(query),
        sort=query.sort,
        descending=query.order == "desc",
    )
    return csv_response(chunks, "companies.csv")


IMPORT_RESPONSES = Responses(HTTP_200=ImportOut, HTTP_413=ErrorOut, **ERRORS)
CSV_BODIES = ("text/csv", "multipart/form-data")


@bp.post("/contacts/import")
@accepts(*CSV_BODIES)
@api.validate(query=ImportQuery, form=ImportForm, resp=IMPORT_RESPONSES, tags=["contacts", "csv"])
def import_contacts(query: ImportQuery) -> ImportOut:
    """Import contacts from CSV: rows match by id or email address, else create a contact.
    Empty cells change nothing; addresses and tags are added. Bad rows are reported, not written."""
    data = _uploaded_csv()
    with writing() as session:
        report = csv_io.import_contacts(session, current_viewer(), data, dry_run=query.dry_run)
        return _report_out(report)


@bp.post("/companies/import")
@accepts(*CSV_BODIES)
@api.validate(query=ImportQuery, form=ImportForm, resp=IMPORT_RESPONSES, tags=["companies", "csv"])
def import_companies(query: ImportQuery) -> ImportOut:
    """Import companies from CSV: rows match by id or domain, else create a company.
    Empty cells change nothing; domains and tags are added. Bad rows are reported, not written."""
    data = _uploaded_csv()
    with writing() as session:
        report = csv_io.import_companies(session, current_viewer(), data, dry_run=query.dry_run)
        return _report_out(report)
