"""Pipelines and their stages: the board a deal moves across, defined by an admin.

A team that has never set one up still needs a board on its first deal, so the default pipeline
"Sales" is created on first use (`ensure_default_pipeline`). Positions are kept dense (0..n-1) after
every change, so "insert at 2" and "reorder" mean the same thing to every client.

A stage that deals have been in cannot be deleted: its rows in their stage history point at it,
and deleting it would rewrite what happened. It can be renamed (or its outcome changed) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from server.crm.custom_fields import clean_text, valid_id
from server.crm.errors import Conflict, DomainError, NotFound
from server.models import Deal, DealStageChange, Pipeline, Stage, utcnow

OUTCOMES = ("open", "won", "lost")
DEFAULT_PIPELINE = "Sales"
# (name, probability %, outcome): a plain B2B sales funnel a small team recognises.
DEFAULT_STAGES: tuple[tuple[str, int, str], ...] = (
    ("Lead", 10, "open"),
    ("Qualified", 25, "open"),
    ("Proposal", 50, "open"),
    ("Negotiation", 75, "open"),
    ("Won", 100, "won"),
    ("Lost", 0, "lost"),
)


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # "leave as it is", for fields where None is a value (no rot days)


@dataclass(frozen=True)
class StageSpec:
    """What an admin gives for a new stage (position None = at the end)."""

    name: str
    probability: int = 0
    outcome: str = "open"
    rot_days: int | None = None
    position: int | None = None


def list_pipelines(session: Session, *, create_default: bool = True) -> list[Pipeline]:
    """Every pipeline with its ordered stages (the default one created if there is none, unless
    the caller only reads and will ask again with a writing session)."""
    if create_default:
        ensure_default_pipeline(session)
    return list(
        session.scalars(
            select(Pipeline)
            .options(selectinload(Pipeline.stages))
            .order_by(Pipeline.position, Pipeline.id)
        )
    )


def ensure_default_pipeline(session: Session) -> Pipeline:
    """The default pipeline; "Sales" with its six stages is created when no pipeline exists.

    Two first requests may race to create it: the loser's insert fails on the unique name inside
    a savepoint and it reads the winner's pipeline instead.
    """
    existing = default_pipeline(session)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            pipeline = Pipeline(name=DEFAULT_PIPELINE, position=0, is_default=True)
            pipeline.stages = [
                Stage(name=name, position=n, probability=probability, outcome=outcome)
                for n, (name, probability, outcome) in enumerate(DEFAULT_STAGES)
            ]
            session.add(pipeline)
            session.flush()
    except IntegrityError:
        pass
    found = default_pipeline(session)
    assert found is not None
    return found


def default_pipeline(session: Session) -> Pipeline | None:
    """The pipeline marked default, else the first one; None when there are none."""
    return session.scalar(
        select(Pipeline)
        .order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
        .limit(1)
    )


def get_pipeline(session: Session, pipeline_id: int, *, field: str | None = None) -> Pipeline:
    """The pipeline; an unknown id is a 404 in a path, a 400 naming `field` in a request body."""
    pipeline = session.get(Pipeline, pipeline_id) if valid_id(pipeline_id) else None
    if pipeline is None:
        _missing(f"there is no pipeline {pipeline_id}", field)
    return pipeline


def get_stage(
    session: Session, stage_id: int, *, pipeline_id: int | None = None, field: str | None = None
) -> Stage:
    """The stage (of that pipeline, when given); unknown ids answer like `get_pipeline`'s."""
    stage = session.get(Stage, stage_id) if valid_id(stage_id) else None
    if stage is None or (pipeline_id is not None and stage.pipeline_id != pipeline_id):
        where = f" in pipeline {pipeline_id}" if pipeline_id is not None else ""
        _missing(f"there is no stage {stage_id}{where}", field)
    return stage


def _missing(message: str, field: str | None) -> NoReturn:
    if field is None:
        raise NotFound(message)
    raise DomainError(message, field=field)


def first_stage(session: Session, pipeline: Pipeline) -> Stage:
    stage = session.scalar(
        select(Stage)
        .where(Stage.pipeline_id == pipeline.id)
        .order_by(Stage.position, Stage.id)
        .limit(1)
    )
    if stage is None:
        raise DomainError(
            f"pipeline '{pipeline.name}' has no stages yet; an admin adds them first",
            field="pipeline_id",
        )
    return stage


# -- pipelines ------------------------------------------------------------------------------------


def create_pipeline(
    session: Session,
    name: str,
    *,
    position: int | None = None,
    is_default: bool = False,
    stages: Sequence[StageSpec] = (),
) -> Pipeline:
    name = _name(name)
    _unique_pipeline_name(session, name)
    first = default_pipeline(session) is None
    pipeline = Pipeline(name=name, position=0, is_default=first)
    session.add(pipeline)
    session.flush()
    _place(session, _pipelines_in_order(session), pipeline, position)
    for spec in stages:
        add_stage(session, pipeline.id, spec)
    if is_default:
        _make_default(session, pipeline)
    session.flush()
    session.refresh(pipeline)
    return pipeline


def update_pipeline(
    session: Session,
    pipeline_id: int,
    *,
    name: str | None = None,
    position: int | None = None,
    is_default: bool | None = None,
) -> Pipeline:
    pipeline = get_pipeline(session, pipeline_id)
    if name is not None:
        name = _name(name)
        if name != pipeline.name:
            _unique_pipeline_name(session, name)
            pipeline.name = name
    if position is not None:
        _place(session, _pipelines_in_order(session), pipeline, position)
    if is_default:
        _make_default(session, pipeline)
    elif is_default is False and pipeline.is_default:
        raise DomainError(
            "a pipeline stops being the default when another one is made the default",
            field="is_default",
        )
    session.flush()
    return pipeline


def reorder_pipelines(session: Session, pipeline_ids: Sequence[int]) -> list[Pipeline]:
    pipelines = _pipelines_in_order(session)
    _same_set([p.id for p in pipelines], pipeline_ids, "pipeline_ids", "pipeline")
    by_id = {p.id: p for p in pipelines}
    for position, ident in enumerate(pipeline_ids):
        by_id[ident].position = position
    session.flush()
    return list_pipelines(session)


def delete_pipeline(session: Session, pipeline_id: int) -> None:
    """Only an empty pipeline goes, and never the last one (deals need somewhere to be)."""
    pipeline = get_pipeline(session, pipeline_id)
    deals = session.scalar(select(func.count()).where(Deal.pipeline_id == pipeline.id)) or 0
    if deals:
        raise Conflict(
            f"pipeline '{pipeline.name}' still has {deals} deal(s); move or delete them first"
        )
    if _stage_used(session, select(Stage.id).where(Stage.pipeline_id == pipeline.id)):
        raise Conflict(
            f"deals now in other pipelines have been through pipeline '{pipeline.name}'; "
            "deleting it would rewrite their stage history"
        )
    others = [p for p in _pipelines_in_order(session) if p.id != pipeline.id]
    if not others:
        raise Conflict("this is the only pipeline; create another one before deleting it")
    was_default = pipeline.is_default
    session.delete(pipeline)
    session.flush()
    _renumber(others)
    if was_default:
        others[0].is_default = True
    session.flush()


# -- stages ---------------------------------------------------------------------------------------


def add_stage(session: Session, pipeline_id: int, spec: StageSpec) -> Stage:
    pipeline = get_pipeline(session, pipeline_id)
    name = _name(spec.name)
    _unique_stage_name(session, pipeline.id, name)
    stage = Stage(
        pipeline_id=pipeline.id,
        name=name,
        position=0,
        probability=_probability(spec.probability),
        outcome=_outcome(spec.outcome),
        rot_days=spec.rot_days,
    )
    session.add(stage)
    session.flush()
    _place(session, _stages_in_order(session, pipeline.id), stage, spec.position)
    session.flush()
    return stage


def update_stage(
    session: Session,
    pipeline_id: int,
    stage_id: int,
    *,
    name: str | None = None,
    position: int | None = None,
    probability: int | None = None,
    outcome: str | None = None,
    rot_days: int | _Keep | None = KEEP,
) -> Stage:
    """Rename, move, or change probability, outcome or rot days; deals follow a new outcome."""
    stage = get_stage(session, stage_id, pipeline_id=pipeline_id)
    if name is not None:
        name = _name(name)
        if name != stage.name:
            _unique_stage_name(session, pipeline_id, name)
            stage.name = name
    if probability is not None:
        stage.probability = _probability(probability)
    if rot_days is not KEEP:
        stage.rot_days = rot_days
    if outcome is not None and _outcome(outcome) != stage.outcome:
        stage.outcome = outcome
        _deals_follow_outcome(session, stage)
    if position is not None:
        _place(session, _stages_in_order(session, pipeline_id), stage, position)
    session.flush()
    return stage


def reorder_stages(session: Session, pipeline_id: int, stage_ids: Sequence[int]) -> Pipeline:
    pipeline = get_pipeline(session, pipeline_id)
    stages = _stages_in_order(session, pipeline.id)
    _same_set([s.id for s in stages], stage_ids, "stage_ids", "stage")
    by_id = {s.id: s for s in stages}
    for position, ident in enumerate(stage_ids):
        by_id[ident].position = position
    session.flush()
    session.refresh(pipeline)
    return pipeline


def delete_stage(session: Session, pipeline_id: int, stage_id: int) -> None:
    stage = get_stage(session, stage_id, pipeline_id=pipeline_id)
    if _stage_used(session, select(Stage.id).where(Stage.id == stage.id)):
        raise Conflict(
            f"deals have been in stage '{stage.name}'; it stays in their history, so it cannot "
            "be deleted (rename it instead)"
        )
    session.delete(stage)
    session.flush()
    _renumber(_stages_in_order(session, pipeline_id))
    session.flush()


# -- helpers --------------------------------------------------------------------------------------


def status_for(stage: Stage) -> str:
    """A deal's status is its stage's outcome: the board and the reports never disagree."""
    return stage.outcome if stage.outcome in OUTCOMES else "open"


def _deals_follow_outcome(session: Session, stage: Stage) -> None:
    """Deals in a stage whose outcome changed take the new status (closing when it closes)."""
    status = status_for(stage)
    closed = Deal.stage_entered_at if status != "open" else None
    session.execute(
        update(Deal)
        .where(Deal.stage_id == stage.id)
        .values(status=status, closed_at=closed, version=Deal.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _stage_used(session: Session, stage_ids: Select[Any]) -> bool:
    """Whether any deal is in, or has ever been through, one of these stages."""
    in_history = session.scalar(
        select(DealStageChange.id)
        .where(
            or_(
                DealStageChange.to_stage_id.in_(stage_ids),
                DealStageChange.from_stage_id.in_(stage_ids),
            )
        )
        .limit(1)
    )
    in_use = session.scalar(select(Deal.id).where(Deal.stage_id.in_(stage_ids)).limit(1))
    return in_history is not None or in_use is not None


def _pipelines_in_order(session: Session) -> list[Pipeline]:
    return list(session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id)))


def _stages_in_order(session: Session, pipeline_id: int) -> list[Stage]:
    return list(
        session.scalars(
            select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position, Stage.id)
        )
    )


def _place(
    session: Session, rows: Sequence[Pipeline | Stage], row: Pipeline | Stage, position: int | None
) -> None:
    """Move `row` to `position` (clamped; None = last) and renumber the rest densely."""
    others = [r for r in rows if r is not row]
    at = len(others) if position is None else max(0, min(position, len(others)))
    others.insert(at, row)
    _renumber(others)


def _renumber(rows: Sequence[Pipeline | Stage]) -> None:
    for position, row in enumerate(rows):
        if row.position != position:
            row.position = position


def _make_default(session: Session, pipeline: Pipeline) -> None:
    session.execute(
        update(Pipeline)
        .where(Pipeline.id != pipeline.id, Pipeline.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session="fetch")
    )
    pipeline.is_default = True


def _same_set(current: Sequence[int], given: Sequence[int], field: str, what: str) -> None:
    if len(given) != len(set(given)) or set(given) != set(current):
        raise DomainError(
            f"give every {what} id exactly once (expected {sorted(current)})", field=field
        )


def _name(raw: str) -> str:
    return " ".join(clean_text(raw, "name", max_length=200, required=True).split())


def _probability(value: int) -> int:
    if not 0 <= value <= 100:
        raise DomainError("probability is a percentage, 0 to 100", field="probability")
    return value


def _outcome(value: str) -> str:
    if value not in OUTCOMES:
        raise DomainError(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    return value


def _same_name(column: InstrumentedAttribute[str], name: str) -> ColumnElement[bool]:
    """Equal, ignoring case. SQLite's lower() folds ASCII letters only, so an identical name
    outside ASCII would slip past it (and hit the unique index as a 500): test equality too."""
    return or_(column == name, func.lower(column) == name.lower())


def _unique_pipeline_name(session: Session, name: str) -> None:
    if session.scalar(select(Pipeline.id).where(_same_name(Pipeline.name, name))):
        raise Conflict(f"a pipeline named '{name}' already exists", field="name")


def _unique_stage_name(session: Session, pipeline_id: int, name: str) -> None:
    clash = session.scalar(
        select(Stage.id).where(Stage.pipeline_id == pipeline_id, _same_name(Stage.name, name))
    )
    if clash:
        raise Conflict(f"this pipeline already has a stage named '{name}'", field="name")
