"""Alembic migrations (`versions/`), run through `server.db.Database.upgrade()`."""

# The newest revision. Kept here so that a process that only checks the schema is current
# (`rapport import`, the worker) need not load Alembic and every migration script (~11 MB);
# tests/integration/test_migrations.py checks it against Alembic's own answer.
HEAD = "0011"
