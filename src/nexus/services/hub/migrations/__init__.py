"""Alembic history of the Hub's tables."""
