"""Spend control: reservations held against the monthly budget, and the ledger of image costs.

Revision ID: e7a2c9d4f1b3
Revises: 536dab08a7df
Create Date: 2026-12-06 19:00:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e7a2c9d4f1b3'
down_revision = '536dab08a7df'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'spend_reservation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.String(length=64), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('amount', sa.Double(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_spend_reservation_account_id', 'spend_reservation', ['account_id'])
    op.create_index('ix_spend_reservation_task_image', 'spend_reservation', ['task_id', 'image_id'])
    op.create_table(
        'spend_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.String(length=64), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('content_id', sa.Integer(), nullable=True),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_spend_entry_account_created', 'spend_entry', ['account_id', 'created_at'])


def downgrade():
    op.drop_index('ix_spend_entry_account_created', table_name='spend_entry')
    op.drop_table('spend_entry')
    op.drop_index('ix_spend_reservation_task_image', table_name='spend_reservation')
    op.drop_index('ix_spend_reservation_account_id', table_name='spend_reservation')
    op.drop_table('spend_reservation')
