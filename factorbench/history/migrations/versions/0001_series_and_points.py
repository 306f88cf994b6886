"""Series (one benchmark x machine x mode x metric x params) and their points.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("benchmark", sa.String, nullable=False),
        sa.Column("machine", sa.String, nullable=False),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("metric", sa.String, nullable=False),
        sa.Column("params", sa.String, nullable=False),
        sa.Column("unit", sa.String, nullable=False),
        sa.UniqueConstraint("benchmark", "machine", "mode", "metric", "params", name="series_key"),
    )
    op.create_table(
        "points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("commit", sa.String, nullable=False),
        sa.Column("commit_time", sa.Float, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("ci_low", sa.Float),
        sa.Column("ci_high", sa.Float),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("package", sa.String, nullable=False),
        sa.Column("package_version", sa.String, nullable=False),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("factorbench_version", sa.String, nullable=False),
        sa.Column("stored_at", sa.Float, nullable=False),
        # importing a run twice stores it once
        sa.UniqueConstraint("series_id", "run_id", name="point_once_per_run"),
    )
    # one series in commit order, read by an index range scan however many points the store holds
    op.create_index("points_by_series", "points", ["series_id", "commit_time", "id"])
