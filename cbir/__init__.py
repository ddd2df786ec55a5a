"""cbir: reverse image search for analysts, on Postgres + pgvector."""

__version__ = "0.1.0"
