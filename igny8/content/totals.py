"""An account's totals (articles, images generated and failed, provider cost), kept by the
database itself: triggers on the ``content`` and ``image`` tables add and subtract each row's
share as it is inserted, changed or deleted, whatever code path writes it. Reading the totals is
then one primary-key lookup, however large the library (the Images page shows them on every
load). The same SQL is installed by ``db.create_all`` (tests, ``make run``) and by the migration.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

_ROW = """INSERT OR IGNORE INTO account_totals (account_id, articles, generated, failed, cost)
           VALUES ({row}.account_id, 0, 0, 0, 0);"""


def _image_share(row: str, sign: str) -> str:
    """SQLite: add (+) or take away (-) an image row's share of its account's totals."""
    return f"""UPDATE account_totals SET generated = generated {sign} ({row}.status = 'generated'),
           failed = failed {sign} ({row}.status = 'failed'), cost = cost {sign} COALESCE({row}.cost, 0)
           WHERE account_id = {row}.account_id;"""


_SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS totals_content_insert AFTER INSERT ON content BEGIN
         {_ROW.format(row="NEW")}
         UPDATE account_totals SET articles = articles + 1 WHERE account_id = NEW.account_id;
       END""",
    """CREATE TRIGGER IF NOT EXISTS totals_content_delete AFTER DELETE ON content BEGIN
         UPDATE account_totals SET articles = articles - 1 WHERE account_id = OLD.account_id;
       END""",
    f"""CREATE TRIGGER IF NOT EXISTS totals_image_insert AFTER INSERT ON image BEGIN
         {_ROW.format(row="NEW")} {_image_share("NEW", "+")}
       END""",
    f"""CREATE TRIGGER IF NOT EXISTS totals_image_update AFTER UPDATE OF status, cost, account_id ON image BEGIN
         {_image_share("OLD", "-")} {_ROW.format(row="NEW")} {_image_share("NEW", "+")}
       END""",
    f"""CREATE TRIGGER IF NOT EXISTS totals_image_delete AFTER DELETE ON image BEGIN
         {_image_share("OLD", "-")}
       END""",
]

_POSTGRESQL = [
    """CREATE OR REPLACE FUNCTION totals_row(account integer, d_articles integer, d_generated integer,
                                            d_failed integer, d_cost double precision) RETURNS void AS $$
       BEGIN
         INSERT INTO account_totals (account_id, articles, generated, failed, cost)
           VALUES (account, d_articles, d_generated, d_failed, d_cost)
           ON CONFLICT (account_id) DO UPDATE SET articles = account_totals.articles + d_articles,
             generated = account_totals.generated + d_generated, failed = account_totals.failed + d_failed,
             cost = account_totals.cost + d_cost;
       END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION totals_content() RETURNS trigger AS $$
       BEGIN
         IF TG_OP = 'INSERT' THEN PERFORM totals_row(NEW.account_id, 1, 0, 0, 0);
         ELSE PERFORM totals_row(OLD.account_id, -1, 0, 0, 0); END IF;
         RETURN NULL;
       END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION totals_image() RETURNS trigger AS $$
       BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
           PERFORM totals_row(OLD.account_id, 0, -(OLD.status = 'generated')::int, -(OLD.status = 'failed')::int,
                              -COALESCE(OLD.cost, 0));
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           PERFORM totals_row(NEW.account_id, 0, (NEW.status = 'generated')::int, (NEW.status = 'failed')::int,
                              COALESCE(NEW.cost, 0));
         END IF;
         RETURN NULL;
       END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS totals_content ON content",
    "CREATE TRIGGER totals_content AFTER INSERT OR DELETE ON content FOR EACH ROW EXECUTE FUNCTION totals_content()",
    "DROP TRIGGER IF EXISTS totals_image ON image",
    """CREATE TRIGGER totals_image AFTER INSERT OR DELETE OR UPDATE OF status, cost, account_id ON image
       FOR EACH ROW EXECUTE FUNCTION totals_image()""",
]

BACKFILL = """
INSERT INTO account_totals (account_id, articles, generated, failed, cost)
SELECT a.id,
       (SELECT COUNT(*) FROM content c WHERE c.account_id = a.id),
       (SELECT COUNT(*) FROM image i WHERE i.account_id = a.id AND i.status = 'generated'),
       (SELECT COUNT(*) FROM image i WHERE i.account_id = a.id AND i.status = 'failed'),
       (SELECT COALESCE(SUM(i.cost), 0) FROM image i WHERE i.account_id = a.id)
FROM account a
"""


def install_triggers(connection: Connection) -> None:
    """Create (or replace) the triggers that keep ``account_totals`` for this database's dialect."""
    statements = _POSTGRESQL if connection.dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        connection.exec_driver_sql(statement)


def drop_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        for statement in ("DROP TRIGGER IF EXISTS totals_image ON image",
                          "DROP TRIGGER IF EXISTS totals_content ON content",
                          "DROP FUNCTION IF EXISTS totals_image()", "DROP FUNCTION IF EXISTS totals_content()",
                          "DROP FUNCTION IF EXISTS totals_row(integer, integer, integer, integer, double precision)"):
            connection.exec_driver_sql(statement)
    else:
        for name in ("content_insert", "content_delete", "image_insert", "image_update", "image_delete"):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS totals_{name}")
