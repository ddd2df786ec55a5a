-- Results of `cbir eval`: one row per run (model, k, when, overall and macro metrics), its per-category
-- metrics, its confused category pairs and every query's top-k neighbours, so the dashboard and SQL users
-- read results without recomputing them.
CREATE TABLE evaluation_runs (
    id          serial      PRIMARY KEY,
    model_id    integer     NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    k           integer     NOT NULL,
    queries     integer     NOT NULL,          -- leave-one-out queries evaluated
    images      integer     NOT NULL,          -- images ranked for each query (the model's whole collection)
    sample      integer,                       -- --queries N (a seeded sample), NULL for every labelled image
    seed        integer     NOT NULL,
    method      text        NOT NULL,          -- how neighbours were found (exact in-memory ranking)
    seconds     real        NOT NULL,
    overall     jsonb       NOT NULL,          -- metrics averaged over queries
    macro       jsonb       NOT NULL,          -- metrics averaged over categories
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluation_runs_model_idx ON evaluation_runs (model_id, created_at);

CREATE TABLE evaluation_categories (
    run_id           integer          NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    category         text             NOT NULL,
    images           integer          NOT NULL,
    queries          integer          NOT NULL,
    precision_at_1   double precision NOT NULL,
    precision_at_5   double precision NOT NULL,
    precision_at_10  double precision NOT NULL,
    map_at_k         double precision NOT NULL,   -- mAP@k, k of the run
    map              double precision NOT NULL,   -- full-ranking mAP
    PRIMARY KEY (run_id, category)
);

-- Category A's queries whose top-k neighbours fall in category B.
CREATE TABLE evaluation_confusions (
    run_id      integer          NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    category    text             NOT NULL,   -- A: the queries' category
    other       text             NOT NULL,   -- B: the category of the wrong neighbours
    neighbours  integer          NOT NULL,   -- top-k neighbours of A's queries that are in B
    queries     integer          NOT NULL,   -- A's queries with at least one such neighbour
    rate        double precision NOT NULL,   -- neighbours / (A's queries * k)
    lift        double precision NOT NULL,   -- rate / B's share of the collection (1 = chance)
    PRIMARY KEY (run_id, category, other)
);

CREATE TABLE evaluation_neighbours (
    run_id    integer  NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    query_id  bigint   NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    rank      smallint NOT NULL,
    image_id  bigint   NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    distance  real     NOT NULL,
    PRIMARY KEY (run_id, query_id, rank)
);
