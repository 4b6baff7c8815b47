"""Durable storage of entries (SQLite in WAL mode) and of the node identity."""
