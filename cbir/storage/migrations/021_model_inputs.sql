-- Inputs of models fitted on the whole collection (pixels-umap: 64x64 greyscale pixels), one row per image.
-- No vector exists before such a model is fitted, so ingest stores its inputs here and fits at the end of
-- the run; a re-run (or a crash before the fit) refits from these rows without decoding the files again.
CREATE TABLE model_inputs (
    model_id  integer NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id  bigint  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    data      bytea   NOT NULL,   -- the embedder's encoding of its input (pixels-umap: 4096 uint8 pixels)
    PRIMARY KEY (model_id, image_id)
);
