"""Account totals kept by triggers, and the indexes the Images page needs at 50,000 articles.

Revision ID: 9b3f6d2e4a17
Revises: 7c1e4a2b9d10
Create Date: 2026-12-02 18:00:00
"""
import sqlalchemy as sa
from alembic import op

from igny8.content.totals import BACKFILL, drop_triggers, install_triggers

# revision identifiers, used by Alembic.
revision = '9b3f6d2e4a17'
down_revision = '7c1e4a2b9d10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'account_totals',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('articles', sa.Integer(), nullable=False),
        sa.Column('generated', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
        sa.PrimaryKeyConstraint('account_id'),
    )
    op.create_index('ix_content_account_id_id', 'content', ['account_id', 'id'], unique=False)
    op.create_index('ix_generation_task_account_created', 'generation_task', ['account_id', 'created_at'],
                    unique=False)
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_account_status')
        batch_op.create_index('ix_image_account_status_content', ['account_id', 'status', 'content_id'], unique=False)
        batch_op.create_index('ix_image_content_status', ['content_id', 'status'], unique=False)
    connection = op.get_bind()
    connection.exec_driver_sql(BACKFILL)  # the rows as they are; from now on the triggers keep them
    install_triggers(connection)


def downgrade():
    drop_triggers(op.get_bind())
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_content_status')
        batch_op.drop_index('ix_image_account_status_content')
        batch_op.create_index('ix_image_account_status', ['account_id', 'status'], unique=False)
    op.drop_index('ix_generation_task_account_created', table_name='generation_task')
    op.drop_index('ix_content_account_id_id', table_name='content')
    op.drop_table('account_totals')
