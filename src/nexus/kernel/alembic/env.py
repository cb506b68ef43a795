"""Alembic environment shared by every service: the caller passes the connection,
the metadata and the version table in `config.attributes` (see nexus.kernel.migrate)."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
metadata = config.attributes["metadata"]


def include_name(name, type_, parent_names):  # type: ignore[no-untyped-def]
    # Each service migrates only its own tables; other services' tables (and the
    # kernel's) may share the database and must not show up as "to drop".
    if type_ == "table":
        return name in metadata.tables
    return True


context.configure(
    include_name=include_name,
    connection=connection,
    target_metadata=metadata,
    version_table=config.attributes["version_table"],
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
