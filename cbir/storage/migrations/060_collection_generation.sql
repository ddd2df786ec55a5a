-- What changed in the collection and when, so a stored map or evaluation run can say it is out of date; and
-- the folders ingest and sync were pointed at, so the Home page can check them for files that are gone.
--
-- Every transaction that adds, deletes or relabels rows of `images` (an ingest batch, a batch of cbir remove,
-- sync or relabel, or hand-written SQL) bumps `collection_generation` once and logs what it did in one row of
-- `collection_changes`, from statement-level triggers in the same transaction: a change and its log row commit
-- together or not at all.
-- The generation is one row updated under its row lock, so generations commit in order: a reader that sees
-- generation G has seen every change numbered G or lower, and every later change gets a higher number.
CREATE TABLE collection_generation (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation  bigint  NOT NULL DEFAULT 0
);
INSERT INTO collection_generation DEFAULT VALUES;
COMMENT ON TABLE collection_generation IS
    'One row: the collection''s generation, bumped by every transaction that adds, removes or relabels images';
COMMENT ON COLUMN collection_generation.id IS 'Always true: the table has exactly one row';
COMMENT ON COLUMN collection_generation.generation IS
    'Number of the latest change (0 before any change was logged); maps and evaluation runs record it';

CREATE TABLE collection_changes (
    generation  bigint      PRIMARY KEY,
    xact        xid8        NOT NULL UNIQUE DEFAULT pg_current_xact_id(),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    added       integer     NOT NULL DEFAULT 0,
    removed     integer     NOT NULL DEFAULT 0,
    relabelled  integer     NOT NULL DEFAULT 0
);
COMMENT ON TABLE collection_changes IS
    'One row per transaction that changed the images table: how many images it added, removed or relabelled';
COMMENT ON COLUMN collection_changes.generation IS 'The generation this change bumped the collection to';
COMMENT ON COLUMN collection_changes.xact IS 'The transaction that made the change (its later statements add to this row)';
COMMENT ON COLUMN collection_changes.changed_at IS 'Start of the transaction that made the change';
COMMENT ON COLUMN collection_changes.added IS 'Images inserted';
COMMENT ON COLUMN collection_changes.removed IS 'Images deleted (with their embeddings, map points and stored inputs)';
COMMENT ON COLUMN collection_changes.relabelled IS 'Images whose category changed';

CREATE FUNCTION cbir_log_collection_change(n_added bigint, n_removed bigint, n_relabelled bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g bigint;
BEGIN
    IF n_added + n_removed + n_relabelled = 0 THEN
        RETURN;  -- no lock taken for statements that changed nothing (ON CONFLICT DO NOTHING batches)
    END IF;
    UPDATE collection_changes
    SET added = added + n_added, removed = removed + n_removed, relabelled = relabelled + n_relabelled
    WHERE xact = pg_current_xact_id();
    IF FOUND THEN
        RETURN;  -- a later statement of a transaction already logged (ingest writes a batch row by row)
    END IF;
    UPDATE collection_generation SET generation = generation + 1 RETURNING generation INTO g;
    INSERT INTO collection_changes (generation, added, removed, relabelled)
    VALUES (g, n_added, n_removed, n_relabelled);
END
$$;
COMMENT ON FUNCTION cbir_log_collection_change(bigint, bigint, bigint) IS
    'Log a change to images: the transaction''s first bumps the generation, later ones add to its row';

CREATE FUNCTION cbir_images_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cbir_log_collection_change((SELECT count(*) FROM new_rows), 0, 0);
    RETURN NULL;
END
$$;

CREATE FUNCTION cbir_images_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cbir_log_collection_change(0, (SELECT count(*) FROM old_rows), 0);
    RETURN NULL;
END
$$;

CREATE FUNCTION cbir_images_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cbir_log_collection_change(0, 0, (
        SELECT count(*) FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.category IS DISTINCT FROM o.category
    ));
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION cbir_images_inserted() IS 'Trigger: log the images an INSERT statement added';
COMMENT ON FUNCTION cbir_images_deleted() IS 'Trigger: log the images a DELETE statement removed';
COMMENT ON FUNCTION cbir_images_updated() IS 'Trigger: log the images an UPDATE statement gave another category';

CREATE TRIGGER images_log_insert AFTER INSERT ON images
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cbir_images_inserted();
CREATE TRIGGER images_log_delete AFTER DELETE ON images
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cbir_images_deleted();
CREATE TRIGGER images_log_update AFTER UPDATE ON images
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cbir_images_updated();

-- The collection state a map or an evaluation run was made from (0 for those stored before this migration:
-- they are compared with the changes made after it).
ALTER TABLE projections ADD COLUMN generation bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN projections.generation IS
    'collection_generation when the map''s vectors were read: later collection_changes make it stale';
ALTER TABLE evaluation_runs ADD COLUMN generation bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN evaluation_runs.generation IS
    'collection_generation when the run''s vectors and categories were read: later collection_changes make it stale';

-- Folders given to `cbir ingest` and `cbir sync` (absolute), for the Home page's check for files gone.
CREATE TABLE collection_roots (
    path        text        PRIMARY KEY,
    first_used  timestamptz NOT NULL DEFAULT now(),
    last_used   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE collection_roots IS
    'Folders cbir ingest and cbir sync were pointed at; the Home page checks the paths under each on demand';
COMMENT ON COLUMN collection_roots.path IS 'Absolute folder path, as stored in image_paths';
COMMENT ON COLUMN collection_roots.first_used IS 'When a command first used this folder';
COMMENT ON COLUMN collection_roots.last_used IS 'When a command last used this folder';

-- What images.category and images.path mean now that sync and relabel maintain them (041 described ingest only).
COMMENT ON COLUMN images.category IS
    'folder name of the image''s paths (cbir eval''s label): the folder most of its paths are in, ties to the alphabetically first; set at ingest, recomputed by cbir sync and cbir relabel --from-folders; NULL with --label none';
COMMENT ON COLUMN images.path IS
    'one of its paths in image_paths (where it was first seen, until that path goes; then one in its category''s folder)';

-- Deleting an image deletes the rows that name it through ON DELETE CASCADE, one lookup per image and table.
-- Without an index that starts with image_id each lookup scans the table: evaluation_neighbours.image_id is
-- third in its key, so removing 1,000 images named by one stored run of 20,000 queries took about 100x
-- longer without these (BENCHMARKS.md, benchmarks/delete_bench.py). Postgres 18 reaches a column second in
-- a key (the other three) by skip scan; older servers (CBIR_DATABASE_URL, docker-compose's pg17) cannot.
CREATE INDEX IF NOT EXISTS projection_points_image_idx ON projection_points (image_id);
CREATE INDEX IF NOT EXISTS model_inputs_image_idx ON model_inputs (image_id);
CREATE INDEX IF NOT EXISTS evaluation_neighbours_query_idx ON evaluation_neighbours (query_id);
CREATE INDEX IF NOT EXISTS evaluation_neighbours_image_idx ON evaluation_neighbours (image_id);
