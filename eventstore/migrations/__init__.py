"""Alembic migrations: the only way eventstore creates or changes tables."""
