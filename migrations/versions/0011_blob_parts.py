"""blob_parts: a raw message stored without the attachments it carries names their blobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

A full capture stored every attachment twice: once decoded, by its own hash, and once
base64-encoded inside the raw message. Raw messages captured from now on keep a skeleton and a
manifest instead (`server.crm.blob_parts`), and this table links each such message to the
attachment blobs it is rebuilt from, so that deleting orphaned blobs keeps them while the
message needs them; deleting the message deletes its links. Rows stored before are whole
messages and stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_parts",
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("part_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_sha256"],
            ["blobs.sha256"],
            name=op.f("fk_blob_parts_blob_sha256_blobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["part_sha256"], ["blobs.sha256"], name=op.f("fk_blob_parts_part_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("blob_sha256", "part_sha256", name=op.f("pk_blob_parts")),
    )
    op.create_index("ix_blob_parts_part_sha256", "blob_parts", ["part_sha256"], unique=False)


def downgrade() -> None:
    # Raw messages stored in parts cannot be read without this table: rebuild them whole first.
    bind = op.get_bind()
    rebuild_raw_messages(bind)
    op.drop_index("ix_blob_parts_part_sha256", table_name="blob_parts")
    op.drop_table("blob_parts")


def rebuild_raw_messages(bind: sa.engine.Connection) -> None:
    from sqlalchemy.orm import Session

    from server.crm.blobs import blob_row, get_blob

    session = Session(bind=bind)
    blobs = sa.table(
        "blobs",
        sa.column("sha256"),
        sa.column("size"),
        sa.column("compression"),
        sa.column("data"),
    )
    shas = bind.execute(
        sa.select(blobs.c.sha256).where(blobs.c.compression.in_(("parts", "parts+zstd")))
    ).scalars()
    for sha in list(shas):
        row = blob_row(get_blob(session, sha), sha)
        bind.execute(
            blobs.update()
            .where(blobs.c.sha256 == sha)
            .values(compression=row["compression"], data=row["data"])
        )
