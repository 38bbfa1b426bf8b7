"""/api/v1/pipelines — the deal board's pipelines and their stages.

Everyone reads them (the board needs them); only an admin defines them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint
from pydantic import BaseModel, Field
from spectree import Response

from server.api.auth import admin_only
from server.api.common import reading, writing
from server.api.schemas import ErrorOut, Out
from server.api.spec import api
from server.crm import pipelines
from server.crm.custom_fields import MAX_DB_ID
from server.models import Pipeline

bp = Blueprint("pipelines", __name__, url_prefix="/api/v1/pipelines")
TAGS = ["pipelines"]

RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Position = Annotated[int, Field(ge=0, le=10_000, description="0 is first")]
Probability = Annotated[int, Field(ge=0, le=100, description="Chance of winning, in percent")]
Outcome = Literal["open", "won", "lost"]
RotDays = Annotated[
    int, Field(ge=1, le=3650, description="Days idle in the stage before a deal is rotting")
]


class StageOut(Out):
    id: int
    name: str
    position: int
    probability: int
    outcome: str
    rot_days: int | None


class PipelineOut(Out):
    id: int
    name: str
    position: int
    is_default: bool
    stages: list[StageOut]


class PipelinesOut(BaseModel):
    items: list[PipelineOut]


class StageIn(BaseModel):
    name: Name
    probability: Probability = 0
    outcome: Outcome = "open"
    rot_days: RotDays | None = None
    position: Position | None = Field(None, description="Where to insert it; default last")


class StagePatch(BaseModel):
    name: Name | None = None
    probability: Probability | None = None
    outcome: Outcome | None = Field(None, description="Deals in the stage take the new status")
    rot_days: RotDays | None = Field(None, description="null: the stage never rots")
    position: Position | None = None


class PipelineIn(BaseModel):
    name: Name
    position: Position | None = Field(None, description="Default: last")
    is_default: bool = False
    stages: list[StageIn] = Field(default_factory=list, max_length=50)


class PipelinePatch(BaseModel):
    name: Name | None = None
    position: Position | None = None
    is_default: bool | None = Field(None, description="true makes it the default pipeline")


class PipelineOrder(BaseModel):
    pipeline_ids: list[RowId] = Field(max_length=200, description="Every pipeline, in order")


class StageOrder(BaseModel):
    stage_ids: list[RowId] = Field(max_length=200, description="Every stage, in order")


def _pipeline_out(pipeline: Pipeline) -> PipelineOut:
    return PipelineOut.model_validate(pipeline)


@bp.get("")
@api.validate(resp=Response(HTTP_200=PipelinesOut, HTTP_401=ErrorOut), tags=TAGS)
def list_pipelines() -> PipelinesOut:
    """Every pipeline with its stages in order (the default "Sales" pipeline on first use)."""
    with reading() as session:
        found = pipelines.list_pipelines(session, create_default=False)
    if not found:
        with writing() as session:
            found = pipelines.list_pipelines(session)
    return PipelinesOut(items=[_pipeline_out(p) for p in found])


@bp.post("")
@admin_only
@api.validate(
    json=PipelineIn,
    resp=Response(
        HTTP_201=PipelineOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def create_pipeline(json: PipelineIn) -> tuple[PipelineOut, int]:
    """A new pipeline, with its stages when given (admin)."""
    with writing() as session:
        pipeline = pipelines.create_pipeline(
            session,
            json.name,
            position=json.position,
            is_default=json.is_default,
            stages=[_spec(s) for s in json.stages],
        )
        return _pipeline_out(pipeline), 201


@bp.patch("/<int:pipeline_id>")
@admin_only
@api.validate(
    json=PipelinePatch,
    resp=Response(
        HTTP_200=PipelineOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def update_pipeline(pipeline_id: int, json: PipelinePatch) -> PipelineOut:
    """Rename or move a pipeline, or make it the default (admin)."""
    with writing() as session:
        pipeline = pipelines.update_pipeline(
            session,
            pipeline_id,
            name=json.name,
            position=json.position,
            is_default=json.is_default,
        )
        return _pipeline_out(pipeline)


@bp.delete("/<int:pipeline_id>")
@admin_only
@api.validate(
    resp=Response(
        HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut
    ),
    tags=TAGS,
)
def delete_pipeline(pipeline_id: int) -> tuple[str, int]:
    """Delete a pipeline no deal is or was in (admin); 409 says what is in the way."""
    with writing() as session:
        pipelines.delete_pipeline(session, pipeline_id)
    return "", 204


@bp.put("/order")
@admin_only
@api.validate(
    json=PipelineOrder,
    resp=Response(
        HTTP_200=PipelinesOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def reorder_pipelines(json: PipelineOrder) -> PipelinesOut:
    """Put the pipelines in this order (admin)."""
    with writing() as session:
        ordered = pipelines.reorder_pipelines(session, json.pipeline_ids)
        return PipelinesOut(items=[_pipeline_out(p) for p in ordered])


@bp.post("/<int:pipeline_id>/stages")
@admin_only
@api.validate(
    json=StageIn,
    resp=Response(
        HTTP_201=StageOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def add_stage(pipeline_id: int, json: StageIn) -> tuple[StageOut, int]:
    """Add a stage to a pipeline (admin)."""
    with writing() as session:
        stage = pipelines.add_stage(session, pipeline_id, _spec(json))
        return StageOut.model_validate(stage), 201


@bp.patch("/<int:pipeline_id>/stages/<int:stage_id>")
@admin_only
@api.validate(
    json=StagePatch,
    resp=Response(
        HTTP_200=StageOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def update_stage(pipeline_id: int, stage_id: int, json: StagePatch) -> StageOut:
    """Rename, move or redefine a stage (admin); deals in it follow a changed outcome."""
    with writing() as session:
        stage = pipelines.update_stage(
            session,
            pipeline_id,
            stage_id,
            name=json.name,
            position=json.position,
            probability=json.probability,
            outcome=json.outcome,
            rot_days=json.rot_days if "rot_days" in json.model_fields_set else pipelines.KEEP,
        )
        return StageOut.model_validate(stage)


@bp.delete("/<int:pipeline_id>/stages/<int:stage_id>")
@admin_only
@api.validate(
    resp=Response(
        HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut
    ),
    tags=TAGS,
)
def delete_stage(pipeline_id: int, stage_id: int) -> tuple[str, int]:
    """Delete a stage no deal is or was in (admin); a used stage can be renamed instead."""
    with writing() as session:
        pipelines.delete_stage(session, pipeline_id, stage_id)
    return "", 204


@bp.put("/<int:pipeline_id>/stages/order")
@admin_only
@api.validate(
    json=StageOrder,
    resp=Response(
        HTTP_200=PipelineOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def reorder_stages(pipeline_id: int, json: StageOrder) -> PipelineOut:
    """Put a pipeline's stages in this order (admin)."""
    with writing() as session:
        return _pipeline_out(pipelines.reorder_stages(session, pipeline_id, json.stage_ids))


def _spec(stage: StageIn) -> pipelines.StageSpec:
    return pipelines.StageSpec(
        name=stage.name,
        probability=stage.probability,
        outcome=stage.outcome,
        rot_days=stage.rot_days,
        position=stage.position,
    )
