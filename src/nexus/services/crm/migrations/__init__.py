"""Alembic history of the CRM tables (version table `alembic_version_crm`)."""
