"""The store: SQLAlchemy Core tables on SQLite (default) or PostgreSQL."""

from .sql import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
