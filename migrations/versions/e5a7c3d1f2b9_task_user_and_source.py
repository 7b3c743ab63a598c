"""Who started a generation task and from where (the Batches page).

Revision ID: e5a7c3d1f2b9
Revises: d5a8c3f1e902
Create Date: 2026-12-06 19:00:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e5a7c3d1f2b9'
down_revision = 'd5a8c3f1e902'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('generation_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=True))
        batch_op.create_foreign_key('fk_generation_task_user_id_user', 'user', ['user_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('generation_task', schema=None) as batch_op:
        batch_op.drop_constraint('fk_generation_task_user_id_user', type_='foreignkey')
        batch_op.drop_column('source')
        batch_op.drop_column('user_id')
