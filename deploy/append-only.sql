-- Make the event logs and their hash chains append-only for the application's role.
-- Run as the role that owns the tables (the one that runs `ugc migrate`), after migrating:
--   psql "$OWNER_URL" -v app_role=ugc_app -f deploy/append-only.sql
-- README: "Append-only on PostgreSQL" says what the application's role can and cannot do then.

-- The library's append takes LOCK TABLE ... IN EXCLUSIVE MODE, which PostgreSQL allows only to a
-- role with UPDATE, DELETE or TRUNCATE on the table: the role keeps UPDATE, and these triggers
-- (which only the owner can drop or disable) refuse every UPDATE, DELETE and TRUNCATE.
CREATE OR REPLACE FUNCTION ugc_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the table % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

DO $$
DECLARE
    context text;
    log text;
BEGIN
    FOREACH context IN ARRAY ARRAY['accounts', 'catalog', 'files', 'orders', 'messaging'] LOOP
        FOREACH log IN ARRAY ARRAY[context || '_events', context || '_events_chain'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS ugc_append_only ON %I', log);
            EXECUTE format('CREATE TRIGGER ugc_append_only BEFORE UPDATE OR DELETE ON %I '
                           'FOR EACH ROW EXECUTE FUNCTION ugc_refuse_change()', log);
            EXECUTE format('DROP TRIGGER IF EXISTS ugc_append_only_truncate ON %I', log);
            EXECUTE format('CREATE TRIGGER ugc_append_only_truncate BEFORE TRUNCATE ON %I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION ugc_refuse_change()', log);
        END LOOP;
    END LOOP;
END
$$;

-- Everything else (read tables, tracking, snapshots, sequences) the role reads and writes in full.
GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE DELETE, TRUNCATE ON
    accounts_events, catalog_events, files_events, orders_events, messaging_events,
    accounts_events_chain, catalog_events_chain, files_events_chain, orders_events_chain, messaging_events_chain
    FROM :"app_role";
