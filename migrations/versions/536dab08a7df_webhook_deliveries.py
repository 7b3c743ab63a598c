"""Webhook deliveries: one row per event sent to an account's webhook, with its attempts.

Revision ID: 536dab08a7df
Revises: c41d7e0a5b28
Create Date: 2026-12-06 18:40:29
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '536dab08a7df'
down_revision = 'c41d7e0a5b28'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('delivery_id'),
    sa.UniqueConstraint('subject')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_account_id'), ['account_id'], unique=False)



def downgrade():
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_account_id'))
        batch_op.drop_index('ix_webhook_delivery_account_created')

    op.drop_table('webhook_delivery')
