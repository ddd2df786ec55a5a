-- For databases that applied the first version of 030 (which granted the four core tables only): cbir_reader
-- reads every cbir table, including those of migrations numbered below 030 (projections, evaluations, model
-- inputs); never schema_migrations, and only tables this user owns (not another application's).
DO $$
DECLARE
    t record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cbir_reader') THEN
        FOR t IN
            SELECT tablename FROM pg_tables
            WHERE schemaname = 'public' AND tableowner = current_user AND tablename <> 'schema_migrations'
        LOOP
            EXECUTE format('GRANT SELECT ON public.%I TO cbir_reader', t.tablename);
        END LOOP;
        REVOKE ALL ON schema_migrations FROM cbir_reader;
    END IF;
END
$$;
