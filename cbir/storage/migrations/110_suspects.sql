-- Results of `cbir suspects`: per model, one row per run (when, k, the collection generation it read) and one
-- row per image with how much its nearest neighbours disagree with its folder (the suspect score), the folder
-- they suggest, its uniqueness and its representativeness, so the dashboard and SQL read them without
-- recomputing (cbir/analysis/suspects.py says how each is computed).
--
--   SELECT s.image_id, i.path, s.category, s.suggested, s.score FROM suspect_scores s JOIN images i ON i.id = s.image_id
--   WHERE s.run_id = (SELECT max(id) FROM suspect_runs) ORDER BY s.score DESC LIMIT 20;
CREATE TABLE suspect_runs (
    id          serial      PRIMARY KEY,
    model_id    integer     NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    k           integer     NOT NULL,
    images      integer     NOT NULL,
    method      text        NOT NULL,
    seconds     real        NOT NULL,
    generation  bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suspect_runs_model_idx ON suspect_runs (model_id, created_at);

CREATE TABLE suspect_scores (
    run_id              integer          NOT NULL REFERENCES suspect_runs (id) ON DELETE CASCADE,
    image_id            bigint           NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    category            text,
    suggested           text,
    score               double precision NOT NULL,
    support             double precision NOT NULL,
    uniqueness          double precision NOT NULL,
    representativeness  double precision,
    neighbours          bigint[]         NOT NULL,
    distances           real[]           NOT NULL,
    PRIMARY KEY (run_id, image_id)
);
CREATE INDEX suspect_scores_rank_idx ON suspect_scores (run_id, score DESC);
CREATE INDEX suspect_scores_image_idx ON suspect_scores (image_id);  -- deleting an image (ON DELETE CASCADE)

COMMENT ON TABLE suspect_runs IS
    'One row per cbir suspects run of a model: its images'' scores are in suspect_scores; later collection_changes make it stale';
COMMENT ON COLUMN suspect_runs.id IS 'run id (suspect_scores.run_id)';
COMMENT ON COLUMN suspect_runs.model_id IS 'the model (models.id) whose HNSW neighbours were read';
COMMENT ON COLUMN suspect_runs.k IS 'neighbours per image that vote, after its near copies are left out';
COMMENT ON COLUMN suspect_runs.images IS 'images scored (every image the model embedded)';
COMMENT ON COLUMN suspect_runs.method IS 'how the scores were computed, in words';
COMMENT ON COLUMN suspect_runs.seconds IS 'wall-clock seconds the run took';
COMMENT ON COLUMN suspect_runs.generation IS
    'collection_generation when the run read the neighbours and categories: later collection_changes make it stale';
COMMENT ON COLUMN suspect_runs.created_at IS 'when the run was stored';

COMMENT ON TABLE suspect_scores IS
    'Per image of a suspect run: how likely it is in the wrong folder (score), the folder its neighbours suggest, uniqueness, representativeness';
COMMENT ON COLUMN suspect_scores.run_id IS 'the run (suspect_runs.id)';
COMMENT ON COLUMN suspect_scores.image_id IS 'the image (images.id)';
COMMENT ON COLUMN suspect_scores.category IS 'the image''s category (folder) when scored; NULL for unlabelled images';
COMMENT ON COLUMN suspect_scores.suggested IS
    'the category with the largest similarity-weighted share of its neighbours other than its own (NULL when all agree)';
COMMENT ON COLUMN suspect_scores.score IS
    'suspect score 0-1: similarity-weighted share of its k neighbours (near copies left out) outside its category; higher = more likely in the wrong folder';
COMMENT ON COLUMN suspect_scores.support IS 'similarity-weighted share of its neighbours in the suggested category (0-1)';
COMMENT ON COLUMN suspect_scores.uniqueness IS
    'distance to its k-th nearest neighbour (copies included; the model''s distance: cosine 0-2): higher = fewer images like it';
COMMENT ON COLUMN suspect_scores.representativeness IS
    'cosine similarity (-1 to 1) of its vector to its category''s mean vector: higher = more typical of its folder; NULL without a category';
COMMENT ON COLUMN suspect_scores.neighbours IS 'ids (images.id) of the k neighbours that voted, nearest first';
COMMENT ON COLUMN suspect_scores.distances IS 'their distances under the model, in the same order';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cbir_reader') THEN
        GRANT SELECT ON suspect_runs, suspect_scores TO cbir_reader;
    END IF;
END
$$;
