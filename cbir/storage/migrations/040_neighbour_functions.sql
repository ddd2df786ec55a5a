-- Nearest neighbours from plain SQL, through each model's HNSW index, exactly as `cbir search` finds them:
--
--   SELECT * FROM cbir_neighbors(42, 10);                       -- the 10 images nearest to image 42
--   SELECT * FROM cbir_neighbors(42, 10, 'phash');               -- model by name or id (needed with several)
--   SELECT * FROM cbir_neighbors_of_vector(<vector>, 10, 'efficientnet-lite0');
--   SELECT * FROM cbir_neighbors_plan(42, 10);                   -- EXPLAIN of the query they run
--   SELECT cbir_neighbors_query(cbir_model('phash'));             -- that query's text, to run by hand
--
-- Why functions: each model has a partial expression index, embeddings_hnsw_model_<id>, on
-- (embedding::vector(<dim>)) or, for hash models, (bits::bit(<dim>)), WHERE model_id = <id>. The planner uses it
-- only for a query that repeats that expression, orders by the model's operator (cosine <=>, Euclidean <-> for
-- pixels-umap, Hamming <~> for hash models) and filters on the literal id. cbir_neighbors_query writes that
-- query for one model with format() (literal id, dimension and operator), the same text as
-- cbir/storage/neighbours.py, and the functions EXECUTE it.
--
-- Search settings, as the CLI's: hnsw.ef_search = the ef_search argument, else the session's own
-- `SET hnsw.ef_search = N` (or a role or database default), else 200 (CBIR_EF_SEARCH's default); raised to k
-- when k is larger. hnsw.iterative_scan = relaxed_order, so leaving out the query image never returns fewer
-- than k rows when k exist; results are re-sorted by distance. Both settings are changed for the duration of
-- the call only (the runners' SET clauses restore them on exit).
--
-- SECURITY INVOKER (the default): the caller's own rights apply, so the SQL console's role cbir_reader runs
-- them with its read-only SELECT rights and cannot write through them.

-- pgvector defines the hnsw.* settings when its library loads: load it, so that the runners' SET clauses below
-- name known settings (a database owner who is not a superuser may not attach an unknown one to a function).
SELECT '[1]'::vector;

-- The model a call means: by name or id (as text); NULL means the only model, as `cbir search` without --model.
CREATE FUNCTION cbir_model(model text DEFAULT NULL) RETURNS models
LANGUAGE plpgsql STABLE AS $$
DECLARE
    found models;
    names text;
BEGIN
    SELECT string_agg(format('%s (id %s)', m.name, m.id), ', ' ORDER BY m.id) INTO names FROM models m;
    IF names IS NULL THEN
        RAISE EXCEPTION 'no models in the database yet: run cbir ingest first' USING ERRCODE = 'no_data_found';
    END IF;
    IF model IS NULL THEN
        IF (SELECT count(*) FROM models) > 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                'several models are stored (%s): pass one by name or id, e.g. cbir_neighbors(42, 10, %L)',
                names, (SELECT m.id::text FROM models m ORDER BY m.id LIMIT 1));
        END IF;
        SELECT * INTO found FROM models;
        RETURN found;
    END IF;
    SELECT * INTO found FROM models m WHERE m.name = model OR m.id::text = btrim(model)
        ORDER BY m.name = model DESC LIMIT 1;
    IF found.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('no model named or numbered %L (models: %s)', model, names);
    END IF;
    RETURN found;
END
$$;

-- The k-NN query text for one model, with $1 = the query vector (or bits), $2 = images to leave out (an array),
-- $3 = k.
CREATE FUNCTION cbir_neighbors_query(m models, leave_out boolean DEFAULT true) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(
        'WITH hits AS MATERIALIZED ('
        ' SELECT e.image_id, %s %s $1 AS distance'
        ' FROM embeddings e JOIN images i ON i.id = e.image_id'
        ' WHERE e.model_id = %s%s ORDER BY distance LIMIT $3)'
        ' SELECT h.image_id, i.path, i.category, h.distance::double precision'
        ' FROM hits h JOIN images i ON i.id = h.image_id ORDER BY h.distance, h.image_id',
        CASE WHEN m.kind = 'bit' THEN format('e.bits::bit(%s)', m.dim) ELSE format('e.embedding::vector(%s)', m.dim) END,
        CASE WHEN m.kind = 'bit' THEN '<~>' WHEN m.info->>'metric' = 'l2' THEN '<->' ELSE '<=>' END,
        m.id,
        CASE WHEN leave_out THEN ' AND e.image_id <> ALL($2)' ELSE '' END)
$$;

-- Checks k and sets the search settings for the calling runner (whose SET clauses undo them on its exit).
CREATE FUNCTION cbir_search_settings(k integer, ef_search integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    source text := (SELECT s.source FROM pg_settings s WHERE s.name = 'hnsw.ef_search');
    own text := CASE WHEN source IS DISTINCT FROM 'default' THEN current_setting('hnsw.ef_search', true) END;
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN
        RAISE EXCEPTION 'k must be between 1 and 1000, not %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('hnsw.ef_search', greatest(coalesce(ef_search, own::integer, 200), k)::text, true);
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
END
$$;

-- A stored image's embeddings row under a model (its vector or bits); the errors say what is missing.
CREATE FUNCTION cbir_stored_query(m models, query_image bigint) RETURNS embeddings
LANGUAGE plpgsql STABLE AS $$
DECLARE
    stored embeddings;
BEGIN
    SELECT * INTO stored FROM embeddings e WHERE e.model_id = m.id AND e.image_id = query_image;
    IF stored.image_id IS NOT NULL THEN
        RETURN stored;
    ELSIF EXISTS (SELECT 1 FROM images i WHERE i.id = query_image) THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('image %s has no embedding for model %L', query_image, m.name);
    END IF;
    RAISE EXCEPTION 'no image with id %', coalesce(query_image::text, 'NULL') USING ERRCODE = 'no_data_found';
END
$$;

-- The runners: the only functions that change settings, so their SET clauses bound those changes to the call.
CREATE FUNCTION cbir_search(m models, query anyelement, k integer, leave_out bigint, ef_search integer)
RETURNS TABLE (image_id bigint, path text, category text, distance double precision)
LANGUAGE plpgsql SET hnsw.ef_search = 200 SET hnsw.iterative_scan = relaxed_order AS $$
BEGIN
    PERFORM cbir_search_settings(k, ef_search);
    RETURN QUERY EXECUTE cbir_neighbors_query(m, leave_out IS NOT NULL) USING query, ARRAY[leave_out], k;
END
$$;

CREATE FUNCTION cbir_search_plan(m models, query anyelement, k integer, leave_out bigint, ef_search integer)
RETURNS SETOF text
LANGUAGE plpgsql SET hnsw.ef_search = 200 SET hnsw.iterative_scan = relaxed_order AS $$
BEGIN
    PERFORM cbir_search_settings(k, ef_search);
    RETURN QUERY EXECUTE 'EXPLAIN ' || cbir_neighbors_query(m, leave_out IS NOT NULL) USING query, ARRAY[leave_out], k;
END
$$;

CREATE FUNCTION cbir_neighbors(query_image bigint, k integer DEFAULT 10, model text DEFAULT NULL,
                               ef_search integer DEFAULT NULL)
RETURNS TABLE (image_id bigint, path text, category text, distance double precision)
LANGUAGE plpgsql AS $$
DECLARE
    m models := cbir_model(model);
    q embeddings := cbir_stored_query(m, query_image);
BEGIN
    IF m.kind = 'bit' THEN
        RETURN QUERY SELECT * FROM cbir_search(m, q.bits, k, query_image, ef_search);
    ELSE
        RETURN QUERY SELECT * FROM cbir_search(m, q.embedding, k, query_image, ef_search);
    END IF;
END
$$;

CREATE FUNCTION cbir_neighbors_plan(query_image bigint, k integer DEFAULT 10, model text DEFAULT NULL,
                                    ef_search integer DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    m models := cbir_model(model);
    q embeddings := cbir_stored_query(m, query_image);
BEGIN
    IF m.kind = 'bit' THEN
        RETURN QUERY SELECT * FROM cbir_search_plan(m, q.bits, k, query_image, ef_search);
    ELSE
        RETURN QUERY SELECT * FROM cbir_search_plan(m, q.embedding, k, query_image, ef_search);
    END IF;
END
$$;

CREATE FUNCTION cbir_neighbors_of_vector(query vector, k integer DEFAULT 10, model text DEFAULT NULL,
                                         ef_search integer DEFAULT NULL)
RETURNS TABLE (image_id bigint, path text, category text, distance double precision)
LANGUAGE plpgsql AS $$
DECLARE
    m models := cbir_model(model);
BEGIN
    IF m.kind = 'bit' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('model %L stores %s-bit hashes: use cbir_neighbors_of_bits', m.name, m.dim);
    ELSIF query IS NULL OR vector_dims(query) <> m.dim THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'model %L has %s dimensions, the query vector %s', m.name, m.dim, coalesce(vector_dims(query)::text, 'is NULL'));
    END IF;
    RETURN QUERY SELECT * FROM cbir_search(m, query, k, NULL::bigint, ef_search);
END
$$;

CREATE FUNCTION cbir_neighbors_of_bits(query bit varying, k integer DEFAULT 10, model text DEFAULT NULL,
                                       ef_search integer DEFAULT NULL)
RETURNS TABLE (image_id bigint, path text, category text, distance double precision)
LANGUAGE plpgsql AS $$
DECLARE
    m models := cbir_model(model);
BEGIN
    IF m.kind <> 'bit' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('model %L stores vectors: use cbir_neighbors_of_vector', m.name);
    ELSIF query IS NULL OR length(query) <> m.dim THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'model %L hashes have %s bits, the query %s', m.name, m.dim, coalesce(length(query)::text || ' bits', 'is NULL'));
    END IF;
    RETURN QUERY SELECT * FROM cbir_search(m, query, k, NULL::bigint, ef_search);
END
$$;

COMMENT ON FUNCTION cbir_model(text) IS
    'The models row a name or id (as text) means; NULL = the only model. One-line error when none matches.';
COMMENT ON FUNCTION cbir_neighbors_query(models, boolean) IS
    'The index-matching k-NN query for a model ($1 query vector or bits, $2 array of images left out, $3 k), as cbir search runs it.';
COMMENT ON FUNCTION cbir_search_settings(integer, integer) IS
    'Internal: checks k (1-1000) and sets hnsw.ef_search (argument, else the session''s SET hnsw.ef_search, else 200; at least k) and hnsw.iterative_scan = relaxed_order.';
COMMENT ON FUNCTION cbir_stored_query(models, bigint) IS
    'Internal: the embeddings row of an image under a model; one-line error when the image or its embedding is missing.';
COMMENT ON FUNCTION cbir_search(models, anyelement, integer, bigint, integer) IS
    'Internal: runs cbir_neighbors_query with the search settings, restored on exit.';
COMMENT ON FUNCTION cbir_search_plan(models, anyelement, integer, bigint, integer) IS
    'Internal: EXPLAIN of what cbir_search runs, under the same settings.';
COMMENT ON FUNCTION cbir_neighbors(bigint, integer, text, integer) IS
    'The k images nearest to a stored image (image_id, path, category, distance), nearest first, itself left out, through the model''s HNSW index: what cbir search <id> -k <k> returns. Distance: cosine 0-2, Euclidean for pixels-umap, Hamming bits for phash.';
COMMENT ON FUNCTION cbir_neighbors_plan(bigint, integer, text, integer) IS
    'EXPLAIN of the query cbir_neighbors runs for these arguments and settings (shows Index Scan using embeddings_hnsw_model_<id>).';
COMMENT ON FUNCTION cbir_neighbors_of_vector(vector, integer, text, integer) IS
    'The k stored images nearest to any vector of the model''s dimension (e.g. a category centroid), nearest first, through the HNSW index.';
COMMENT ON FUNCTION cbir_neighbors_of_bits(bit varying, integer, text, integer) IS
    'The k stored images nearest to a bit string (a hash model''s, e.g. phash: 64 bits) by Hamming distance, through the HNSW index.';
