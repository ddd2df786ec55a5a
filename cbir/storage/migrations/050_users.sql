-- Who may open the dashboard (cbir users add/list/remove, cbir/auth/users.py), and which folders were
-- ingested (the Search page's "path" mode reads files under them only, cbir/retrieval/paths.py).
--
-- The password hashes live in their own schema, cbir_private, which cbir_reader (the SQL console's role) has
-- no USAGE on: 030 grants that role SELECT on every table created in *public* from then on (ALTER DEFAULT
-- PRIVILEGES ... IN SCHEMA public) and 031 grants SELECT table by table in public, so a table in public would
-- be readable through the console unless every such grant, now and in later migrations, remembered to leave
-- it out. Row-level security with no policy is a second lock: a role granted SELECT by mistake still reads
-- no rows (the owner, cbir itself, is exempt). Creating a schema needs CREATE on the database, which its
-- owner has.
CREATE SCHEMA IF NOT EXISTS cbir_private;
REVOKE ALL ON SCHEMA cbir_private FROM PUBLIC;
COMMENT ON SCHEMA cbir_private IS
    'cbir tables the SQL console (role cbir_reader) must never read: the dashboard''s password hashes';

CREATE TABLE cbir_private.dashboard_users (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE cbir_private.dashboard_users ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON cbir_private.dashboard_users FROM PUBLIC;
COMMENT ON TABLE cbir_private.dashboard_users IS
    'Local dashboard accounts (cbir users add NAME); with any row here the dashboard asks for a login';
COMMENT ON COLUMN cbir_private.dashboard_users.name IS 'login name: letters, digits and . _ @ -, up to 64';
COMMENT ON COLUMN cbir_private.dashboard_users.password_hash IS
    'argon2id hash in PHC string form (salt and parameters inside); never the password';
COMMENT ON COLUMN cbir_private.dashboard_users.created_at IS 'when the account was added';
COMMENT ON COLUMN cbir_private.dashboard_users.password_changed_at IS
    'when the password was last set: a dashboard session opened before it ends';

CREATE TABLE ingest_roots (
    path text PRIMARY KEY,
    added_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingest_roots IS
    'Files and folders given to cbir ingest, resolved (symlinks followed): the dashboard reads query paths under them only';
COMMENT ON COLUMN ingest_roots.path IS 'absolute path with symlinks resolved, as text (undecodable bytes as \xNN)';
COMMENT ON COLUMN ingest_roots.added_at IS 'first ingest that named this path';

-- Collections ingested before roots were recorded: every stored path itself, since which folders were given
-- is not known (a folder's, for a file given alone, would be wider than what was given). The next ingest of a
-- folder records it (re-running ingest over the same folders embeds nothing new).
INSERT INTO ingest_roots (path) SELECT path FROM image_paths ON CONFLICT DO NOTHING;
