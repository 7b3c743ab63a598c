"""Image versions (every stored result kept, one active), alt text and caption.

Every image already generated (it has a ``desktop_path``) becomes its first version, active.

Revision ID: c41d7e0a5b28
Revises: 9b3f6d2e4a17
Create Date: 2026-12-06 16:00:00
"""
import sqlalchemy as sa
from alembic import op

from igny8.content.totals import install_triggers

# revision identifiers, used by Alembic.
revision = 'c41d7e0a5b28'
down_revision = '9b3f6d2e4a17'
branch_labels = None
depends_on = None

FILE_COLUMNS = ("desktop_path, mobile_path, image_url, mobile_url, width, height, format, bytes, provider, model, "
                "placeholder")

# The image's files as they are become its first version; its cost (all it was paid for) goes with them.
FIRST_VERSIONS = f"""
INSERT INTO image_version (account_id, image_id, {FILE_COLUMNS}, prompt, cost, created_at)
SELECT account_id, id, {FILE_COLUMNS}, prompt, cost, COALESCE(generated_at, updated_at, created_at)
FROM image WHERE desktop_path IS NOT NULL ORDER BY id
"""
ACTIVATE = """
UPDATE image SET active_version_id = (SELECT MAX(v.id) FROM image_version v WHERE v.image_id = image.id)
WHERE desktop_path IS NOT NULL
"""


def upgrade():
    op.create_table(
        'image_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('desktop_path', sa.String(length=500), nullable=True),
        sa.Column('mobile_path', sa.String(length=500), nullable=True),
        sa.Column('image_url', sa.String(length=500), nullable=True),
        sa.Column('mobile_url', sa.String(length=500), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('format', sa.String(length=10), nullable=True),
        sa.Column('bytes', sa.Integer(), nullable=True),
        sa.Column('provider', sa.String(length=20), nullable=True),
        sa.Column('model', sa.String(length=80), nullable=True),
        sa.Column('placeholder', sa.Boolean(), nullable=False),
        sa.Column('prompt', sa.Text(), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
        sa.ForeignKeyConstraint(['image_id'], ['image.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('image_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_version_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_image_version_image_id'), ['image_id'], unique=False)

    # SQLite rebuilds the table for the new foreign key, which drops its triggers: installed again below.
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alt_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('caption', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('active_version_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_image_active_version_id', 'image_version', ['active_version_id'], ['id'])

    connection = op.get_bind()
    connection.exec_driver_sql(FIRST_VERSIONS)
    connection.exec_driver_sql(ACTIVATE)
    install_triggers(connection)


def downgrade():
    # Each image keeps the files of its active version (its columns already mirror it); the other
    # versions' rows go (their files stay in the store). Emptied first: SQLite rebuilds the image
    # table, which it cannot drop while rows point at it.
    connection = op.get_bind()
    connection.exec_driver_sql("UPDATE image SET active_version_id = NULL")
    connection.exec_driver_sql("DELETE FROM image_version")
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_constraint('fk_image_active_version_id', type_='foreignkey')
        batch_op.drop_column('active_version_id')
        batch_op.drop_column('caption')
        batch_op.drop_column('alt_text')
    with op.batch_alter_table('image_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_version_image_id'))
        batch_op.drop_index(batch_op.f('ix_image_version_account_id'))
    op.drop_table('image_version')
    install_triggers(connection)
