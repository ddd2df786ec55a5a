-- The SQL functions of 040_neighbour_functions.sql follow the index type `cbir index` records in a model's row
-- (models.info->'index'->>'type', cbir/storage/indexes.py), with the same expressions as cbir/storage/models.py:
--
--   vector (default)  e.embedding::vector(<dim>) <=> $1                      (<-> for Euclidean models)
--   halfvec           e.embedding::halfvec(<dim>) <=> $1::halfvec(<dim>)    (16-bit floats, half the index)
--   bit-rerank        binary_quantize(e.embedding::vector(<dim>))::bit(<dim>) <~> binary_quantize($1 ...): the
--                     k x rerank nearest by Hamming distance through the index, re-ranked by exact cosine;
--                     rerank is the session's `SET cbir.rerank = N`, else 10 (CBIR_RERANK's default)
--   hash models       e.bits::bit(<dim>) <~> $1
--
-- Only the query text changes; cbir_neighbors, cbir_neighbors_plan and the others run it as before.

CREATE OR REPLACE FUNCTION cbir_neighbors_query(m models, leave_out boolean DEFAULT true) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(
        'WITH hits AS MATERIALIZED (%s)'
        ' SELECT h.image_id, i.path, i.category, h.distance::double precision'
        ' FROM hits h JOIN images i ON i.id = h.image_id ORDER BY h.distance, h.image_id',
        CASE WHEN m.info->'index'->>'type' = 'bit-rerank' THEN format(
            'SELECT c.image_id, c.embedding::vector(%1$s) <=> $1 AS distance FROM ('
            ' SELECT e.image_id, e.embedding %2$s'
            ' ORDER BY binary_quantize(e.embedding::vector(%1$s))::bit(%1$s) <~> binary_quantize($1::vector(%1$s))::bit(%1$s)'
            ' LIMIT $3 * coalesce(nullif(current_setting(''cbir.rerank'', true), '''')::integer, 10)) c'
            ' ORDER BY distance LIMIT $3',
            m.dim, source)
        ELSE format(
            'SELECT e.image_id, %s %s %s AS distance %s ORDER BY distance LIMIT $3',
            CASE WHEN m.kind = 'bit' THEN format('e.bits::bit(%s)', m.dim)
                 WHEN m.info->'index'->>'type' = 'halfvec' THEN format('e.embedding::halfvec(%s)', m.dim)
                 ELSE format('e.embedding::vector(%s)', m.dim) END,
            CASE WHEN m.kind = 'bit' THEN '<~>' WHEN m.info->>'metric' = 'l2' THEN '<->' ELSE '<=>' END,
            CASE WHEN m.info->'index'->>'type' = 'halfvec' THEN format('$1::halfvec(%s)', m.dim) ELSE '$1' END,
            source)
        END)
    FROM (SELECT format('FROM embeddings e JOIN images i ON i.id = e.image_id WHERE e.model_id = %s%s', m.id,
                        CASE WHEN leave_out THEN ' AND e.image_id <> ALL($2)' ELSE '' END) AS source) s
$$;

COMMENT ON FUNCTION cbir_neighbors_query(models, boolean) IS
    'The index-matching k-NN query for a model ($1 query vector or bits, $2 images left out, $3 k), as cbir search runs it; follows the index type cbir index recorded (vector, halfvec, bit-rerank: Hamming candidates re-ranked by exact cosine, SET cbir.rerank = N, default 10).';
