-- What every table and column means, with units, inside the database: psql's \d+, `cbir db status --schema`,
-- the dashboard's SQL page and any SQL client (DBeaver, Metabase) show these. A table added by a later
-- migration must comment its own table and columns (tests/test_sql_functions.py checks pg_description).
--
-- Distances, wherever they appear: cosine distance 0 (same direction) to 2 (opposite) for neural models,
-- Hamming distance in bits (0-64) for phash, Euclidean distance for pixels-umap's 16-d UMAP coordinates.

COMMENT ON TABLE images IS
    'One row per distinct image, by content (sha256): copies with the same bytes share one row (their paths are in image_paths)';
COMMENT ON COLUMN images.id IS 'image id: what cbir search <id>, cbir_neighbors(<id>) and every image_id column refer to';
COMMENT ON COLUMN images.sha256 IS 'SHA-256 of the file''s bytes, hex (64 characters); unique';
COMMENT ON COLUMN images.path IS 'absolute path the image was first seen at (its other paths: image_paths)';
COMMENT ON COLUMN images.category IS 'parent folder name at ingest (cbir eval''s label); NULL with cbir ingest --label none';
COMMENT ON COLUMN images.width IS 'width in pixels, after EXIF orientation';
COMMENT ON COLUMN images.height IS 'height in pixels, after EXIF orientation';
COMMENT ON COLUMN images.format IS 'file format detected from the bytes (JPEG, PNG, WEBP, GIF, BMP, TIFF, ...), not from the extension';
COMMENT ON COLUMN images.bytes IS 'file size in bytes';
COMMENT ON COLUMN images.thumbnail IS 'JPEG thumbnail, longest side at most 160 pixels (quality 80), so pages need no file access';
COMMENT ON COLUMN images.added_at IS 'when the image was first stored';

COMMENT ON TABLE image_paths IS 'Every path an image was found at; byte-identical copies are several paths of one image';
COMMENT ON COLUMN image_paths.path IS 'absolute file path; unique';
COMMENT ON COLUMN image_paths.image_id IS 'the image (images.id) whose bytes were at this path';

COMMENT ON TABLE models IS
    'One row per embedding model; each has its own partial HNSW index embeddings_hnsw_model_<id> (use cbir_neighbors to go through it)';
COMMENT ON COLUMN models.id IS 'model id (embeddings.model_id); cbir_neighbors takes it, as text, or the name';
COMMENT ON COLUMN models.name IS 'Hugging Face Hub id, absolute local model directory, or built-in name (efficientnet-lite0, phash, pixels-umap)';
COMMENT ON COLUMN models.kind IS '''vector'' (float vectors in embeddings.embedding) or ''bit'' (hashes in embeddings.bits)';
COMMENT ON COLUMN models.dim IS 'vector dimensions, or bits per hash (phash: 64)';
COMMENT ON COLUMN models.info IS
    'facts about the model (jsonb): metric (cosine, l2 or hamming), pooling, preprocessing, precision; pixels-umap adds its fit (images, trustworthiness)';
COMMENT ON COLUMN models.created_at IS 'when the model was first used';

COMMENT ON TABLE embeddings IS
    'One vector (or hash) per image and model. Nearest neighbours through the HNSW index: SELECT * FROM cbir_neighbors(image_id, k, model)';
COMMENT ON COLUMN embeddings.image_id IS 'the image (images.id)';
COMMENT ON COLUMN embeddings.model_id IS 'the model (models.id)';
COMMENT ON COLUMN embeddings.embedding IS
    'the image''s vector (models.dim dimensions, L2-normalised for neural models: compare with <=>, cosine distance 0-2; pixels-umap: <->, Euclidean); NULL for hash models';
COMMENT ON COLUMN embeddings.bits IS
    'the image''s hash for bit models (phash: 64 bits; compare with <~>, Hamming distance in bits); NULL for vector models';

COMMENT ON TABLE projections IS 'The current 2-D UMAP map of each model for the dashboard''s Map page (cbir project), one per model';
COMMENT ON COLUMN projections.id IS 'map id (projection_points.projection_id)';
COMMENT ON COLUMN projections.model_id IS 'the model mapped (models.id); one current map per model';
COMMENT ON COLUMN projections.n_neighbors IS 'UMAP n_neighbors kept (the best trustworthiness with --n-neighbors auto)';
COMMENT ON COLUMN projections.min_dist IS 'UMAP min_dist (0.0: tight clusters)';
COMMENT ON COLUMN projections.metric IS 'UMAP metric: euclidean for unit vectors (same neighbours as cosine), hamming for hashes';
COMMENT ON COLUMN projections.images IS 'number of images mapped';
COMMENT ON COLUMN projections.seconds IS 'time to fit and score the map, in seconds';
COMMENT ON COLUMN projections.params IS 'every UMAP argument, the seed, the n_neighbors grid and how trustworthiness was scored (jsonb)';
COMMENT ON COLUMN projections.created_at IS 'when the map was fitted';

COMMENT ON TABLE projection_points IS 'Each image''s position on a map';
COMMENT ON COLUMN projection_points.projection_id IS 'the map (projections.id)';
COMMENT ON COLUMN projection_points.image_id IS 'the image (images.id)';
COMMENT ON COLUMN projection_points.x IS 'UMAP x coordinate (unitless)';
COMMENT ON COLUMN projection_points.y IS 'UMAP y coordinate (unitless)';

COMMENT ON TABLE projection_scores IS 'Trustworthiness of a map for each n_neighbors tried (the Map page''s curve)';
COMMENT ON COLUMN projection_scores.projection_id IS 'the map (projections.id)';
COMMENT ON COLUMN projection_scores.n_neighbors IS 'UMAP n_neighbors tried';
COMMENT ON COLUMN projection_scores.trustworthiness IS
    'sklearn.manifold.trustworthiness with 5 neighbours on a sample of up to 2,000 images: 0-1, 1 = local neighbourhoods kept';

COMMENT ON TABLE projection_reducers IS
    'The fitted umap.UMAP of a map, pickled, to place new query images (unpickling runs code: trust it as much as whoever can write here)';
COMMENT ON COLUMN projection_reducers.projection_id IS 'the map (projections.id)';
COMMENT ON COLUMN projection_reducers.reducer IS 'pickled umap.UMAP object, in bytes (megabytes: select length(reducer), not the column)';

COMMENT ON TABLE evaluation_runs IS 'One row per cbir eval run: leave-one-out retrieval quality of one model over the labelled images';
COMMENT ON COLUMN evaluation_runs.id IS 'run id (run_id in the other evaluation_ tables)';
COMMENT ON COLUMN evaluation_runs.model_id IS 'the model evaluated (models.id)';
COMMENT ON COLUMN evaluation_runs.k IS 'neighbours per query for precision@k and mAP@k (cbir eval --k, default 10)';
COMMENT ON COLUMN evaluation_runs.queries IS 'leave-one-out queries evaluated (labelled images whose category has another image)';
COMMENT ON COLUMN evaluation_runs.images IS 'images ranked for each query (all the model''s embeddings)';
COMMENT ON COLUMN evaluation_runs.sample IS 'cbir eval --queries N (a seeded sample of queries); NULL when every labelled image was a query';
COMMENT ON COLUMN evaluation_runs.seed IS 'random seed of the query sample and of tie order';
COMMENT ON COLUMN evaluation_runs.method IS 'how neighbours were found (exact in-memory ranking, not the HNSW index)';
COMMENT ON COLUMN evaluation_runs.seconds IS 'run time in seconds';
COMMENT ON COLUMN evaluation_runs.overall IS
    'metrics averaged over queries (jsonb: precision@1, precision@5, precision@10, mAP@<k>, mAP; each 0-1)';
COMMENT ON COLUMN evaluation_runs.macro IS 'the same metrics averaged over categories, each category weighing the same (jsonb, 0-1)';
COMMENT ON COLUMN evaluation_runs.created_at IS 'when the run finished';

COMMENT ON TABLE evaluation_categories IS 'Per-category metrics of a run (mean over that category''s queries)';
COMMENT ON COLUMN evaluation_categories.run_id IS 'the run (evaluation_runs.id)';
COMMENT ON COLUMN evaluation_categories.category IS 'the queries'' category (images.category)';
COMMENT ON COLUMN evaluation_categories.images IS 'images of this category';
COMMENT ON COLUMN evaluation_categories.queries IS 'queries of this category evaluated';
COMMENT ON COLUMN evaluation_categories.precision_at_1 IS 'share of queries whose first neighbour has their category (0-1)';
COMMENT ON COLUMN evaluation_categories.precision_at_5 IS 'mean share of the first 5 neighbours in the query''s category (0-1)';
COMMENT ON COLUMN evaluation_categories.precision_at_10 IS 'mean share of the first 10 neighbours in the query''s category (0-1)';
COMMENT ON COLUMN evaluation_categories.map_at_k IS 'mean average precision over the first k neighbours, k of the run (0-1)';
COMMENT ON COLUMN evaluation_categories.map IS 'mean average precision over the whole ranking (0-1)';

COMMENT ON TABLE evaluation_confusions IS
    'Category pairs of a run: how many of category A''s top-k neighbours fall in category B (only pairs with at least one)';
COMMENT ON COLUMN evaluation_confusions.run_id IS 'the run (evaluation_runs.id)';
COMMENT ON COLUMN evaluation_confusions.category IS 'A: the queries'' category';
COMMENT ON COLUMN evaluation_confusions.other IS 'B: the category of the wrong neighbours';
COMMENT ON COLUMN evaluation_confusions.neighbours IS 'top-k neighbours of A''s queries that are in B (a count of images)';
COMMENT ON COLUMN evaluation_confusions.queries IS 'A''s queries with at least one neighbour in B';
COMMENT ON COLUMN evaluation_confusions.rate IS 'neighbours / (A''s queries x k): share of A''s neighbour slots taken by B (0-1)';
COMMENT ON COLUMN evaluation_confusions.lift IS 'rate / B''s share of the collection: 1 = chance, 10 = ten times more than random retrieval';

COMMENT ON TABLE evaluation_neighbours IS 'Every query''s top-k neighbours in a run, as ranked (what the Inspector shows)';
COMMENT ON COLUMN evaluation_neighbours.run_id IS 'the run (evaluation_runs.id)';
COMMENT ON COLUMN evaluation_neighbours.query_id IS 'the query image (images.id)';
COMMENT ON COLUMN evaluation_neighbours.rank IS 'rank of the neighbour, 1 = nearest';
COMMENT ON COLUMN evaluation_neighbours.image_id IS 'the neighbour image (images.id)';
COMMENT ON COLUMN evaluation_neighbours.distance IS
    'distance under the run''s model: cosine 0-2 for neural models, Hamming bits for phash, Euclidean for pixels-umap';

COMMENT ON TABLE model_inputs IS
    'Inputs of models fitted on the whole collection (pixels-umap), kept so a refit needs no file access';
COMMENT ON COLUMN model_inputs.model_id IS 'the model (models.id)';
COMMENT ON COLUMN model_inputs.image_id IS 'the image (images.id)';
COMMENT ON COLUMN model_inputs.data IS 'the model''s input encoding (pixels-umap: 64x64 greyscale pixels, 4,096 bytes, one uint8 each)';

COMMENT ON TABLE schema_migrations IS 'cbir''s bookkeeping: which files of cbir/storage/migrations were applied (not readable by the SQL console)';
COMMENT ON COLUMN schema_migrations.version IS 'the migration''s number (the file name''s prefix)';
COMMENT ON COLUMN schema_migrations.name IS 'the migration''s file name';
COMMENT ON COLUMN schema_migrations.applied_at IS 'when it was applied';
