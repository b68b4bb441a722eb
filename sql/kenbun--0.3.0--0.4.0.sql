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

-- == _notify in PL/pgSQL: its plan is cached per session instead of planned in every statement.
CREATE OR REPLACE FUNCTION kenbun._notify(segment_id bigint, segment_name text, kind text, change text, reason text, ids text[])
RETURNS int LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
-- PL/pgSQL, not SQL: its plan is cached for the session (a SQL function with SET is planned again in
-- every statement that calls it: 10% of a single-row UPDATE that changed membership, by perf)
BEGIN
    RETURN (WITH seg AS (
        SELECT x.name, 7000 - pg_catalog.octet_length(pg_catalog.to_json(x.name)::text) AS budget
          FROM (SELECT COALESCE(segment_name,
                                (SELECT s.name FROM kenbun.segments s WHERE s.id = _notify.segment_id)) AS name) x)
    SELECT pg_catalog.count(pg_catalog.pg_notify('kenbun_membership', pg_catalog.json_build_object(
               'segment_id', segment_id,
               'segment', seg.name,
               'kind', kind, 'change', change, 'reason', reason,
               'member_ids', g.ids)::text))::int
      FROM seg,
           (SELECT pg_catalog.json_agg(b.id ORDER BY b.n) AS ids
              FROM (SELECT u.id, u.n,
                           -- each id as json_agg writes it: quoted, escaped, then ", "
                           pg_catalog.sum(pg_catalog.octet_length(pg_catalog.to_json(u.id)::text) + 2)
                               OVER (ORDER BY u.n) / (SELECT seg.budget FROM seg) AS batch
                      FROM pg_catalog.unnest(ids) WITH ORDINALITY AS u(id, n)) AS b
             GROUP BY b.batch) AS g);
END $$;

-- (more parts above this line)

-- == Last: regenerate the maintenance functions and triggers of the bound tables.
SELECT kenbun._rebuild_maintenance();
