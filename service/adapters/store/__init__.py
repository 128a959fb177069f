"""The store: SQLAlchemy Core tables on SQLite (default) or PostgreSQL."""

from .sql import SqlStore, StateError, open_store

__all__ = ["SqlStore", "StateError", "open_store"]
