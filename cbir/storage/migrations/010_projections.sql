-- 2-D UMAP maps of a model's embeddings for the dashboard's Map page (`cbir project`): one current map per
-- model, its coordinates, the trustworthiness of each n_neighbors tried, and the fitted reducer.
CREATE TABLE projections (
    id           serial      PRIMARY KEY,
    model_id     integer     NOT NULL UNIQUE REFERENCES models (id) ON DELETE CASCADE,
    n_neighbors  integer     NOT NULL,          -- the value kept (the best trustworthiness with 'auto')
    min_dist     real        NOT NULL,
    metric       text        NOT NULL,
    images       integer     NOT NULL,
    seconds      real        NOT NULL,          -- fitting and scoring time
    params       jsonb       NOT NULL,          -- all UMAP arguments, the seed, how trustworthiness was scored
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projection_points (
    projection_id integer NOT NULL REFERENCES projections (id) ON DELETE CASCADE,
    image_id      bigint  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    x             real    NOT NULL,
    y             real    NOT NULL,
    PRIMARY KEY (projection_id, image_id)
);

-- sklearn.manifold.trustworthiness of the map for each n_neighbors tried (the Map page's curve).
CREATE TABLE projection_scores (
    projection_id   integer          NOT NULL REFERENCES projections (id) ON DELETE CASCADE,
    n_neighbors     integer          NOT NULL,
    trustworthiness double precision NOT NULL,
    PRIMARY KEY (projection_id, n_neighbors)
);

-- The fitted umap.UMAP, pickled, so a new query image can be placed on the existing map. Kept apart from
-- `projections` so that browsing that table never pulls megabytes.
CREATE TABLE projection_reducers (
    projection_id integer PRIMARY KEY REFERENCES projections (id) ON DELETE CASCADE,
    reducer       bytea   NOT NULL
);
