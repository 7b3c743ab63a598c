"""Bulk runs: the run table; a task's kind (interactive or bulk), run and enqueue time.

Revision ID: d5a8c3f1e902
Revises: e7a2c9d4f1b3
Create Date: 2026-12-06 19:00:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd5a8c3f1e902'
down_revision = 'e7a2c9d4f1b3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'run',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('total_tasks', sa.Integer(), nullable=False),
        sa.Column('total_images', sa.Integer(), nullable=False),
        sa.Column('cancelled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_run_account_created', ['account_id', 'created_at'], unique=False)
    with op.batch_alter_table('generation_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=12), server_default='interactive', nullable=False))
        batch_op.add_column(sa.Column('run_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_generation_task_run_id'), ['run_id'], unique=False)
        batch_op.create_foreign_key('fk_generation_task_run_id', 'run', ['run_id'], ['id'])


def downgrade():
    with op.batch_alter_table('generation_task', schema=None) as batch_op:
        batch_op.drop_constraint('fk_generation_task_run_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_generation_task_run_id'))
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('run_id')
        batch_op.drop_column('kind')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index('ix_run_account_created')
        batch_op.drop_index(batch_op.f('ix_run_account_id'))
    op.drop_table('run')
