"""Execution: the jobs that execute runs.

- ``run_executions`` (a projection of the ``job-*`` events) holds, per run, the job
  an executor submitted (executor, target, name, image, command, resources, retries,
  deadline, spec digest) and what the platform reported since: its status, its
  attempts, the node and GPUs of the last one, how it ended. Indexed by (project,
  status).
- A log written before this revision may already hold job events (their types came
  first): the projection then starts from the beginning of the log and the next
  append replays it. Otherwise it starts at the head.

Revision 0006, after 0005 (2026-12-05).
"""

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, project, string

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "run_executions",
        string("run", 64, primary_key=True),
        project(nullable=False),
        string("executor", 16, nullable=False),
        string("target", nullable=False),
        string("name", 253, nullable=False),
        string("image", 500, nullable=True),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("deadline_s", sa.BigInteger, nullable=True),
        string("spec_digest", 71, nullable=False),
        string("status", 16, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        string("attempt", 253, nullable=True),
        string("node", 253, nullable=True),
        sa.Column("gpus", sa.Integer, nullable=True),
        string("gpu_product", 128, nullable=True),
        string("reason", 200, nullable=True),
        sa.Column("exit_code", sa.BigInteger, nullable=True),
        string("attempt_reason", 80, nullable=True),
        sa.Column("submitted_at", STAMP, nullable=False),
        sa.Column("scheduled_at", STAMP, nullable=True),
        sa.Column("started_at", STAMP, nullable=True),
        sa.Column("ended_at", STAMP, nullable=True),
        sa.Column("submitted_pos", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_run_executions_status", "run_executions", ["project", "status"])
    # No job event in the log: the new projection is at the head already (without this
    # row the next append would replay the whole log to find none).
    op.execute(
        "INSERT INTO projection_tracking (name, position) "
        "SELECT 'executions', MAX(position) FROM events HAVING COUNT(*) > 0 "
        "AND SUM(CASE WHEN SUBSTR(type, 1, 4) = 'job-' THEN 1 ELSE 0 END) = 0"
    )


def downgrade() -> None:
    raise RuntimeError("0006 cannot be downgraded: the revisions before it cannot be either")
