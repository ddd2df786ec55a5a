"""Everything cbir keeps in Postgres, and the only place its SQL lives (besides the migrations).

- collection: the images, their paths and embeddings (the SQL of ingest, and of what pages show)
- console: the SQL console's read-only statements, run as the cbir_reader role
- db: where the database is (embedded or CBIR_DATABASE_URL), connections and pools
- embedded: the embedded Postgres server's life cycle (start, restart, stop)
- evaluations: stored `cbir eval` runs and what the Inspector page reads from them
- indexes: rebuilding a model's HNSW index as another type while searches keep running
- locks: the maintenance lock (one sync, remove or relabel at a time)
- metadata: the `image_metadata` table (what the camera recorded)
- migrate: applying migrations/*.sql once each, in order
- models: the `models` table and the SQL that addresses a model's vectors through its index
- neighbours: the k-nearest-neighbour query, written once
- path_changes: the SQL of sync, remove and relabel (adding and forgetting paths and images)
- projections: stored 2-D maps (points, trustworthiness scores, the fitted reducer)
- roots: the files and folders given to ingest and sync (the Home check; the query-path allow-list)
- schema: tables, columns, comments and functions as the database describes them
- staleness: the collection generation, so a stored map or run can tell what changed since
- users: the SQL of the dashboard's local accounts
"""

__all__ = [
    "collection",
    "console",
    "db",
    "embedded",
    "evaluations",
    "indexes",
    "locks",
    "metadata",
    "migrate",
    "models",
    "neighbours",
    "path_changes",
    "projections",
    "roots",
    "schema",
    "staleness",
    "users",
]
