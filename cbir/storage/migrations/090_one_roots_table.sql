-- One table for the files and folders given to `cbir ingest` and `cbir sync` (cbir/storage/roots.py), instead of
-- two that overlapped: `ingest_roots` (050: resolved, the dashboard's allow-list for query paths) and
-- `collection_roots` (060: as stored in image_paths, folders only, the Home page's check for files gone).
-- A row keeps both spellings of one root: `path` as given (absolute, what image_paths holds under it) and
-- `resolved` (symlinks followed, what a query path is checked against). `collection_roots` keeps its name and
-- its grants (cbir_reader reads it, as it read both before); the rows of `ingest_roots` move into it.
ALTER TABLE collection_roots ADD COLUMN resolved text;
ALTER TABLE collection_roots ADD COLUMN folder boolean NOT NULL DEFAULT true;
-- Rows of 060 were folders, spelled as stored; their resolved form is not known in SQL: the path itself
-- (the same unless a symlink is on the way; the next ingest or sync of the folder records the resolved form).
UPDATE collection_roots SET resolved = path;
ALTER TABLE collection_roots ALTER COLUMN resolved SET NOT NULL;
ALTER TABLE collection_roots ALTER COLUMN folder DROP DEFAULT;
ALTER TABLE collection_roots DROP CONSTRAINT collection_roots_pkey;
ALTER TABLE collection_roots ADD PRIMARY KEY (path, resolved);

-- Rows of 050 were resolved; a stored image's own path (050 recorded every one for older collections) is a file,
-- anything else a folder (or a path that was not there: nothing is stored under it either way).
INSERT INTO collection_roots (path, resolved, folder, first_used, last_used)
SELECT r.path, r.path, NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.path = r.path), r.added_at, r.added_at
FROM ingest_roots r
ON CONFLICT (path, resolved) DO UPDATE SET first_used = least(collection_roots.first_used, EXCLUDED.first_used);
DROP TABLE ingest_roots;

COMMENT ON TABLE collection_roots IS
    'Files and folders given to cbir ingest and cbir sync: the dashboard reads query paths under their resolved form only; the Home page checks the paths under each folder for files gone';
COMMENT ON COLUMN collection_roots.path IS
    'absolute path as given, as stored in image_paths (undecodable bytes as \xNN)';
COMMENT ON COLUMN collection_roots.resolved IS
    'the same path with symlinks and .. resolved: query paths whose resolved form is at or under it may be read';
COMMENT ON COLUMN collection_roots.folder IS
    'a folder (the Home page groups stored paths by it), else a file given on its own';
COMMENT ON COLUMN collection_roots.first_used IS 'when a command first used this path';
COMMENT ON COLUMN collection_roots.last_used IS 'when a command last used this path';
