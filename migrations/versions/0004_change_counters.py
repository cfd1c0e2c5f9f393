"""change counters: processes cache clients and re-read one counter to notice changes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'change_counters',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_change_counters')),
    )
    op.bulk_insert(table, [{'name': 'clients', 'value': 0}])


def downgrade() -> None:
    op.drop_table('change_counters')
