-- kenbun 0.3.0 -> 0.4.0. Each part below is headed by what it changes; the maintenance triggers are
-- regenerated last.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.4.0'" to load this file. \quit

-- == Row-level UPDATE maintenance: segments whose rules read only the member's own row are evaluated
-- in the row trigger (compiled once per backend), and the statement-level UPDATE functions leave them out.
CREATE FUNCTION kenbun."_maintain_row"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_maintain_row_wrapper';
CREATE FUNCTION kenbun."_maintain_row_flush"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_maintain_row_flush_wrapper';

-- == compile, segment_preview, segment_count and the other callers cache the catalog document per
-- backend; changes to kenbun's catalog tables invalidate it.
CREATE FUNCTION kenbun."_catalog_touch"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_catalog_touch_wrapper';
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.bindings
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.fields
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.levels
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.segments
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();

-- == UPDATEs are captured by the same row trigger (kenbun_maintain_row), which names the segments
-- each changed row can affect (kenbun._pending_rows); unbind drops every kenbun trigger.
CREATE FUNCTION kenbun."_pending_rows"("kind" TEXT)
RETURNS TABLE ("k_new" TEXT, "k_old" TEXT, "a_new" TEXT, "a_old" TEXT, "segs" bigint[])
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '_pending_rows_wrapper';
ALTER FUNCTION kenbun._pending_rows(text) ROWS 10;
REVOKE ALL ON FUNCTION kenbun._pending_rows(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._pending_rows(text) TO kenbun_admin;
CREATE FUNCTION kenbun."_pending_rows_exist"("kind" TEXT) RETURNS bool
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '_pending_rows_exist_wrapper';
REVOKE ALL ON FUNCTION kenbun._pending_rows_exist(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._pending_rows_exist(text) TO kenbun_admin;
CREATE OR REPLACE FUNCTION kenbun.unbind(kind text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := kenbun._require_kind(kind);
    users text;
    t text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', s.name), ', ' ORDER BY s.name) INTO users
      FROM kenbun.segments s
     WHERE s.kind = unbind.kind OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(s.reads) r WHERE r ->> 0 = unbind.kind);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot unbind kind "%": segment(s) % use it', kind, users
            USING ERRCODE = '2BP01', HINT = 'delete those segments first';
    END IF;
    FOR t IN SELECT g.tgname FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = tbl AND (g.tgname LIKE 'kenbun\_maintain\_%' OR g.tgname LIKE 'kenbun\_capture%') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
    -- and what kenbun generated for the kind: its trigger functions, and (no segment of the kind is
    -- left) its membership table; binding again creates them anew
    FOR t IN SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'kenbun'::regnamespace
                AND p.proname IN ('_maintain_' || kind || '_insert', '_maintain_' || kind || '_update',
                                  '_maintain_' || kind || '_delete') LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', t);
    END LOOP;
    IF kind IN ('lead', 'account') THEN
        EXECUTE format('DROP TABLE IF EXISTS %s', (kenbun._members_of(kind)).tbl);
    END IF;
    DELETE FROM kenbun.bindings b WHERE b.kind = unbind.kind;
END $$;
ALTER FUNCTION kenbun.unbind(text) SECURITY DEFINER;

-- (more parts above this line)

-- == Last: regenerate the maintenance functions and triggers of the bound tables.
SELECT kenbun._rebuild_maintenance();
