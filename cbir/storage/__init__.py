"""Everything cbir keeps in Postgres, and the only place its SQL lives (besides the migrations).

db: the embedded server or CBIR_DATABASE_URL, connections and pools; migrate + migrations/: the schema;
models: the `models` table and each model's index expression; collection: images, paths, embeddings;
neighbours: the k-NN query; projections and evaluations: stored maps and `cbir eval` runs;
console: the read-only SQL console; schema: tables, columns and comments as the database describes them.
"""
