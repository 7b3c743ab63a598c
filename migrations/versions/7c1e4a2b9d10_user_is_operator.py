"""The operator role (platform staff), apart from account admins.

Revision ID: 7c1e4a2b9d10
Revises: 5610dfccbb61
Create Date: 2026-12-02 13:30:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7c1e4a2b9d10'
down_revision = '5610dfccbb61'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_operator', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('is_operator')
