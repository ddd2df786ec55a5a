-- cbir_reader reads every cbir table, including those that migrations numbered below 030 created on a fresh
-- database before the role existed (projections, evaluations, model inputs); never schema_migrations.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cbir_reader') THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO cbir_reader;
        REVOKE ALL ON schema_migrations FROM cbir_reader;
    END IF;
END
$$;
