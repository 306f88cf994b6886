"""Alembic's environment: the store opens the connection and hands it over (no alembic.ini,
no URL here), so migrations run inside the store's own transaction."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
