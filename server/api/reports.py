"""GET /api/v1/reports/... — the KPIs (`server.crm.reports`), as JSON, and each as CSV (`.csv`).

Every report takes the period as `from` and `to` (with their UTC offset; default the last 90
days) except the pipeline, which is now. The CSV twin of each has the same query and the same
numbers, one row per line of the JSON's main list, for a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api.auth import current_viewer
from server.api.common import csv_response, documented_by, reading, validated_query
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm import reports
from server.crm.viewer import Viewer

bp = Blueprint("reports", __name__, url_prefix="/api/v1/reports")
TAGS = ["reports"]
ERRORS = {"HTTP_401": ErrorOut, "HTTP_400": ErrorOut, "HTTP_422": ErrorOut}


class PeriodQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    start: AwareDatetime | None = Field(
        None, alias="from", description="Start (default: 90 days ago)"
    )
    end: AwareDatetime | None = Field(None, alias="to", description="End (default: now)")

    def period(self) -> reports.Period:
        return reports.Period.of(self.start, self.end)


class PipelineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1, description="One pipeline only")


class TopQuery(PeriodQuery):
    limit: int = Field(reports.TOP, ge=1, le=100)


class PeriodOut(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


class ResponseTimesOut(BaseModel):
    user_id: int | None = Field(description="Who answered (null: the team, or a shared mailbox)")
    name: str
    answered: int = Field(description="Customer emails answered in the period")
    median_hours: float | None
    p90_hours: float | None


class ResponseReportOut(BaseModel):
    period: PeriodOut
    team: ResponseTimesOut
    people: list[ResponseTimesOut]
    unanswered: int = Field(description="Customer emails of the period nobody has answered")


class WeekOut(BaseModel):
    week: date = Field(description="The week's Monday")
    user_id: int | None
    name: str
    emails_sent: int
    meetings: int
    notes: int


class ActivityReportOut(BaseModel):
    period: PeriodOut
    weeks: list[WeekOut]


class NewContactsOut(BaseModel):
    week: date
    contacts: int


class NewContactsReportOut(BaseModel):
    period: PeriodOut
    weeks: list[NewContactsOut]


class StageValueOut(BaseModel):
    pipeline_id: int
    stage_id: int
    stage: str
    position: int
    currency: str
    deals: int
    value: Decimal


class PipelineReportOut(BaseModel):
    stages: list[StageValueOut]


class WinRateOut(BaseModel):
    period: PeriodOut
    won: int
    lost: int
    rate: float | None = Field(description="won / (won + lost); null when none closed")
    cycle_median_days: float | None = Field(description="Creation to won, median")
    cycle_mean_days: float | None


class CustomerValueOut(BaseModel):
    company_id: int
    name: str
    currency: str
    deals: int
    value: Decimal


class TopCustomersOut(BaseModel):
    period: PeriodOut
    customers: list[CustomerValueOut]


def _period_out(period: reports.Period) -> PeriodOut:
    return PeriodOut(start=period.start, end=period.end)


# -- each report: how it is computed once, for JSON and for CSV ------------------------------------


def _response(query: PeriodQuery, viewer: Viewer) -> ResponseReportOut:
    period = query.period()
    with reading() as session:
        found = reports.response_times(session, viewer, period)
    return ResponseReportOut(
        period=_period_out(period),
        team=ResponseTimesOut.model_validate(found.team, from_attributes=True),
        people=[ResponseTimesOut.model_validate(p, from_attributes=True) for p in found.people],
        unanswered=found.unanswered,
    )


def _activity(query: PeriodQuery, viewer: Viewer) -> ActivityReportOut:
    period = query.period()
    with reading() as session:
        weeks = reports.activity_by_week(session, viewer, period)
    return ActivityReportOut(
        period=_period_out(period),
        weeks=[WeekOut.model_validate(w, from_attributes=True) for w in weeks],
    )


def _new_contacts(query: PeriodQuery, _viewer: Viewer) -> NewContactsReportOut:
    period = query.period()
    with reading() as session:
        weeks = reports.new_contacts_by_week(session, period)
    return NewContactsReportOut(
        period=_period_out(period),
        weeks=[NewContactsOut.model_validate(w, from_attributes=True) for w in weeks],
    )


def _pipeline(query: PipelineQuery, _viewer: Viewer) -> PipelineReportOut:
    with reading() as session:
        stages = reports.pipeline_value(session, query.pipeline_id)
    return PipelineReportOut(
        stages=[StageValueOut.model_validate(s, from_attributes=True) for s in stages]
    )


def _win_rate(query: PeriodQuery, _viewer: Viewer) -> WinRateOut:
    period = query.period()
    with reading() as session:
        found = reports.win_rate(session, period)
    return WinRateOut(period=_period_out(period), **vars(found))


def _top(query: TopQuery, _viewer: Viewer) -> TopCustomersOut:
    period = query.period()
    with reading() as session:
        found = reports.top_customers(session, period, limit=query.limit)
    return TopCustomersOut(
        period=_period_out(period),
        customers=[CustomerValueOut.model_validate(c, from_attributes=True) for c in found],
    )


def _rows(items: Sequence[BaseModel]) -> Iterable[dict[str, Any]]:
    return (item.model_dump(mode="json") for item in items)


def _csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    yield buffer.getvalue()


def _csv_view(
    query_model: type[Any],
    compute: Callable[[Any, Viewer], Any],
    table: Callable[[Any], Sequence[BaseModel]],
    columns: type[BaseModel],
    filename: str,
) -> Response:
    query = validated_query(query_model)
    found = compute(query, current_viewer())
    fields = [name for name in columns.model_fields if name != "period"]
    return csv_response(_csv(_rows(table(found)), fields), filename)


# -- the endpoints ---------------------------------------------------------------------------------


@bp.get("/response-time")
@api.validate(query=PeriodQuery, resp=Responses(HTTP_200=ResponseReportOut, **ERRORS), tags=TAGS)
def response_time(query: PeriodQuery) -> ResponseReportOut:
    """How long customers wait for the team's first answer: median and 90th percentile, per
    person who answered and for the team, and how many are still unanswered."""
    return _response(query, current_viewer())


@bp.get("/activity")
@api.validate(query=PeriodQuery, resp=Responses(HTTP_200=ActivityReportOut, **ERRORS), tags=TAGS)
def activity(query: PeriodQuery) -> ActivityReportOut:
    """Emails sent, meetings and notes per week and person."""
    return _activity(query, current_viewer())


@bp.get("/new-contacts")
@api.validate(query=PeriodQuery, resp=Responses(HTTP_200=NewContactsReportOut, **ERRORS), tags=TAGS)
def new_contacts(query: PeriodQuery) -> NewContactsReportOut:
    """New contacts per week."""
    return _new_contacts(query, current_viewer())


@bp.get("/pipeline")
@api.validate(query=PipelineQuery, resp=Responses(HTTP_200=PipelineReportOut, **ERRORS), tags=TAGS)
def pipeline(query: PipelineQuery) -> PipelineReportOut:
    """Open deals by stage: how many, and their value per currency (never added across)."""
    return _pipeline(query, current_viewer())


@bp.get("/win-rate")
@api.validate(query=PeriodQuery, resp=Responses(HTTP_200=WinRateOut, **ERRORS), tags=TAGS)
def win_rate(query: PeriodQuery) -> WinRateOut:
    """Of the deals closed in the period, the share won, and how long winning took."""
    return _win_rate(query, current_viewer())


@bp.get("/top-customers")
@api.validate(query=TopQuery, resp=Responses(HTTP_200=TopCustomersOut, **ERRORS), tags=TAGS)
def top_customers(query: TopQuery) -> TopCustomersOut:
    """Companies by the value of the deals they won in the period, per currency."""
    return _top(query, current_viewer())


# -- the CSV twins (documented by a twin each, as the exports are) -------------------------------

CSV_RESPONSES = Responses("HTTP_200", **ERRORS)


@api.validate(query=PeriodQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _response_csv_doc(query: PeriodQuery) -> None:  # pragma: no cover - documentation
    """Response times as CSV: one row per person who answered."""


@bp.get("/response-time.csv")
@documented_by(_response_csv_doc)
def response_time_csv() -> Response:
    return _csv_view(
        PeriodQuery, _response, lambda r: r.people, ResponseTimesOut, "response-time.csv"
    )


@api.validate(query=PeriodQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _activity_csv_doc(query: PeriodQuery) -> None:  # pragma: no cover - documentation
    """Activity per week and person as CSV."""


@bp.get("/activity.csv")
@documented_by(_activity_csv_doc)
def activity_csv() -> Response:
    return _csv_view(PeriodQuery, _activity, lambda r: r.weeks, WeekOut, "activity.csv")


@api.validate(query=PeriodQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _new_contacts_csv_doc(query: PeriodQuery) -> None:  # pragma: no cover - documentation
    """New contacts per week as CSV."""


@bp.get("/new-contacts.csv")
@documented_by(_new_contacts_csv_doc)
def new_contacts_csv() -> Response:
    return _csv_view(
        PeriodQuery, _new_contacts, lambda r: r.weeks, NewContactsOut, "new-contacts.csv"
    )


@api.validate(query=PipelineQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _pipeline_csv_doc(query: PipelineQuery) -> None:  # pragma: no cover - documentation
    """Open deals by stage as CSV."""


@bp.get("/pipeline.csv")
@documented_by(_pipeline_csv_doc)
def pipeline_csv() -> Response:
    return _csv_view(PipelineQuery, _pipeline, lambda r: r.stages, StageValueOut, "pipeline.csv")


@api.validate(query=PeriodQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _win_rate_csv_doc(query: PeriodQuery) -> None:  # pragma: no cover - documentation
    """Win rate and deal cycle as CSV (one row)."""


@bp.get("/win-rate.csv")
@documented_by(_win_rate_csv_doc)
def win_rate_csv() -> Response:
    return _csv_view(PeriodQuery, _win_rate, lambda r: [r], WinRateOut, "win-rate.csv")


@api.validate(query=TopQuery, resp=CSV_RESPONSES, tags=[*TAGS, "csv"])
def _top_csv_doc(query: TopQuery) -> None:  # pragma: no cover - documentation
    """Top customers as CSV."""


@bp.get("/top-customers.csv")
@documented_by(_top_csv_doc)
def top_customers_csv() -> Response:
    return _csv_view(TopQuery, _top, lambda r: r.customers, CustomerValueOut, "top-customers.csv")
