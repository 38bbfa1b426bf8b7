"""CSV export and import of contacts and companies.

Exports take the same filters and sort as the lists and stream (SpecTree would buffer a response it
validates, so these views are documented through a twin that SpecTree decorates, and validate
their query themselves). Imports take the CSV as the request body (text/csv) or as the `file` part
of a multipart form; `?dry_run=1` previews: every row's outcome, nothing written. A real run
writes the good rows and reports the bad ones — the answer says so in `message`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from flask import Blueprint, Response, current_app, request, stream_with_context
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema
from spectree import Response as Responses
from spectree.utils import get_multidict_items

from server.api.auth import current_viewer
from server.api.common import writing
from server.api.companies import CompanyFilterQuery, company_filters
from server.api.contacts import ERRORS, ContactFilterQuery, contact_filters
from server.api.schemas import ErrorOut
from server.api.security import accepts
from server.api.spec import api
from server.app_context import rapport
from server.crm import csv_io
from server.crm.errors import DomainError

bp = Blueprint("csv", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=Callable[..., Any])
Q = TypeVar("Q", bound=BaseModel)


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


def _documented_by(twin: Callable[..., Any]) -> Callable[[F], F]:
    """Give a streaming view the OpenAPI entry of `twin` (SpecTree finds it via __wrapped__)."""

    def attach(view: F) -> F:
        view.__wrapped__ = twin  # type: ignore[attr-defined]
        return view

    return attach


def _query(model: type[Q]) -> Q:
    """The query parameters, validated as SpecTree would (a 422 naming the field)."""
    try:
        return model.model_validate(get_multidict_items(request.args, model))
    except ValidationError as exc:
        api.before(request, None, exc, None, api.model_adapter)
        raise  # pragma: no cover - the hook above aborts with the 422


def _csv_response(chunks: Any, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    return response


EXPORT_RESPONSES = Responses("HTTP_200", **ERRORS)


@api.validate(query=ContactFilterQuery, resp=EXPORT_RESPONSES, tags=["contacts", "csv"])
def _contacts_export_doc(query: ContactFilterQuery) -> None:  # pragma: no cover - documentation
    """Contacts as CSV."""


@bp.get("/contacts/export.csv")
@_documented_by(_contacts_export_doc)
def export_contacts() -> Response:
    """Contacts as CSV (text/csv), with the list's filters and sort; custom fields as cf.<key>."""
    query = _query(ContactFilterQuery)
    chunks = csv_io.export_contacts(
        rapport(current_app).db.read_session,
        contact_filters(query),
        sort=query.sort,
        descending=query.order == "desc",
    )
    return _csv_response(chunks, "contacts.csv")


@api.validate(query=CompanyFilterQuery, resp=EXPORT_RESPONSES, tags=["companies", "csv"])
def _companies_export_doc(query: CompanyFilterQuery) -> None:  # pragma: no cover - documentation
    """Companies as CSV."""


@bp.get("/companies/export.csv")
@_documented_by(_companies_export_doc)
def export_companies() -> Response:
    """Companies as CSV (text/csv), with the list's filters and sort; custom fields as cf.<key>."""
    query = _query(CompanyFilterQuery)
    chunks = csv_io.export_companies(
        rapport(current_app).db.read_session,
        company_filters(query),
        sort=query.sort,
        descending=query.order == "desc",
    )
    return _csv_response(chunks, "companies.csv")


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
