-- The SQL console's role: it may read the cbir tables and nothing else (cbir/sql_console.py).
--
-- It is a LOGIN role without a password, and the console connects *as* it. A NOLOGIN role reached with
-- SET ROLE is not enough: the session user would still be the owner (a superuser in the embedded server),
-- and the user's text could switch back with set_config('role', 'none', true) or RESET ROLE in a DO block.
-- Without a password nobody can log in as cbir_reader where the server asks for one; the embedded server
-- trusts its Unix socket, which only its owner can reach. Elsewhere an administrator sets a password and
-- CBIR_READER_URL.
--
-- Creating a role needs CREATEROLE. Where CBIR_DATABASE_URL's user lacks it, this migration still succeeds
-- (with a notice) so the rest of cbir works; the SQL console then says the role is missing.
DO $$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cbir_reader') THEN
        BEGIN
            CREATE ROLE cbir_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
                CONNECTION LIMIT 16;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cbir: cannot create role cbir_reader (%); the SQL console stays off', SQLERRM;
            RETURN;
        END;
    END IF;
    -- Defaults for anyone logging in as cbir_reader (psql too); the console sets its own per transaction.
    BEGIN
        ALTER ROLE cbir_reader SET default_transaction_read_only = on;
        ALTER ROLE cbir_reader SET statement_timeout = '30s';
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'cbir: cannot set defaults of role cbir_reader (%)', SQLERRM;
    END;
    BEGIN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO cbir_reader', current_database());
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;  -- not the database's owner: PUBLIC's default CONNECT privilege applies
    END;
    GRANT USAGE ON SCHEMA public TO cbir_reader;
    -- Every table of ours so far (earlier-numbered migrations of other features included), but not
    -- schema_migrations (cbir's bookkeeping) nor another owner's tables in a shared schema.
    FOR t IN
        SELECT tablename FROM pg_tables
        WHERE schemaname = 'public' AND tableowner = current_user AND tablename <> 'schema_migrations'
    LOOP
        EXECUTE format('GRANT SELECT ON public.%I TO cbir_reader', t.tablename);
    END LOOP;
    -- Tables that later migrations create (as the same user) are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cbir_reader;
END
$$;
