-- One row per distinct image (by content), its other paths, the models, and one embedding per image and model.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE images (
    id          bigserial PRIMARY KEY,
    sha256      text        NOT NULL UNIQUE,
    path        text        NOT NULL,          -- first path the image was seen at
    category    text,                          -- parent folder name, or NULL with --label none
    width       integer     NOT NULL,
    height      integer     NOT NULL,
    format      text        NOT NULL,          -- as detected from the bytes (JPEG, PNG, ...)
    bytes       bigint      NOT NULL,
    thumbnail   bytea       NOT NULL,          -- small JPEG, so the dashboard needs no file access
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_category_idx ON images (category);

-- Every path an image was found at (copies with the same bytes are aliases of one image).
CREATE TABLE image_paths (
    path      text   PRIMARY KEY,
    image_id  bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX image_paths_image_idx ON image_paths (image_id);

CREATE TABLE models (
    id          serial      PRIMARY KEY,
    name        text        NOT NULL UNIQUE,   -- Hub id, local directory, or built-in name
    kind        text        NOT NULL CHECK (kind IN ('vector', 'bit')),
    dim         integer     NOT NULL CHECK (dim > 0),
    info        jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Vectors of different models have different dimensions, so the column is an untyped vector
-- (or bit varying for hash models) and each model gets its own partial HNSW expression index,
-- created by cbir when the model is first used (see cbir/store.py).
CREATE TABLE embeddings (
    image_id   bigint  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    model_id   integer NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    embedding  vector,
    bits       bit varying,
    PRIMARY KEY (model_id, image_id),
    CHECK ((embedding IS NULL) <> (bits IS NULL))
);
CREATE INDEX embeddings_image_idx ON embeddings (image_id);
