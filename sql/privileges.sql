-- kenbun privileges (0.2.0): two roles, least privilege for everyone else, and the few functions
-- that must run as the extension's owner. The same statements end sql/kenbun--0.1.0--0.2.0.sql.
--
--   kenbun_reader  reads the catalog, membership tables and change log, and may call the analyze
--                  functions (which read the bound tables with the caller's own rights).
--   kenbun_admin   also defines bindings, field mappings, levels and segments; member of kenbun_reader.
--   PUBLIC         may use the schema (the segment_rule type) and call the read-only functions, which
--                  fail with 42501 unless the caller can read what they read.
--
-- Roles are cluster-wide: created here when missing, never dropped by DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'kenbun_reader') THEN
        CREATE ROLE kenbun_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'kenbun_admin') THEN
        CREATE ROLE kenbun_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('kenbun_admin', 'kenbun_reader', 'MEMBER') THEN
        GRANT kenbun_reader TO kenbun_admin;
    END IF;
END $roles$;

-- Only tables the caller may read and put triggers on can be bound: binding installs SECURITY
-- DEFINER triggers that read every row, so it must not reach further than the binder could.
CREATE FUNCTION kenbun._bindings_check()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (pg_catalog.has_table_privilege(NEW.relid, 'SELECT')
            AND pg_catalog.has_table_privilege(NEW.relid, 'TRIGGER')) THEN
        RAISE EXCEPTION 'permission denied to bind table %', NEW.relid
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('binding needs SELECT and TRIGGER on the table: GRANT SELECT, TRIGGER ON %s TO %I',
                                           NEW.relid, current_user);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bindings_check BEFORE INSERT OR UPDATE ON kenbun.bindings
    FOR EACH ROW EXECUTE FUNCTION kenbun._bindings_check();

-- Tables: the catalog is written by admins (through the functions), read by readers.
REVOKE ALL ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments, kenbun.membership_changes,
    kenbun.segment_builds, kenbun.segment_progress FROM PUBLIC;
GRANT SELECT ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments, kenbun.membership_changes,
    kenbun.segment_builds, kenbun.segment_progress TO kenbun_reader;
GRANT INSERT, UPDATE, DELETE ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments TO kenbun_admin;

-- Run as the extension's owner (SECURITY DEFINER), because they write membership and the change
-- log, create the membership tables, lock the bound tables, or create triggers and trigger
-- functions on tables the caller does not own. Callable by admins only; all pin search_path.
ALTER FUNCTION kenbun._catalog_changed(boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._ensure_members(text) SECURITY DEFINER;
ALTER FUNCTION kenbun._rebuild_maintenance() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION kenbun._recompute(bigint, text, text[]) SECURITY DEFINER;
ALTER FUNCTION kenbun._clear(bigint, text, text, text) SECURITY DEFINER;
ALTER FUNCTION kenbun._lock_bound(text) SECURITY DEFINER;
ALTER FUNCTION kenbun.unbind(text) SECURITY DEFINER;
-- the batched builds (CALL kenbun.segment_build() and the *_concurrently procedures, which run as
-- their caller and commit between batches, call these)
ALTER FUNCTION kenbun._build_step(bigint, integer, integer) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_next(text, bigint) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_finish(bigint) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_failed(bigint, text, text) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_mark(bigint[], text) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_record(bigint, text, text) SECURITY DEFINER;
-- the triggers on kenbun.segments: a segment change fills and empties membership as the owner
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_before_delete() SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_after() SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_after_statement() SECURITY DEFINER;

-- Functions that change something: admins only.
DO $grants$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'kenbun'::regnamespace
                AND (p.prosecdef AND p.prorettype <> 'trigger'::regtype
                     OR p.proname IN ('bind_leads', 'bind_accounts', 'bind_events', 'map_field', 'unmap_field',
                                      'define_levels', 'drop_levels', 'segment_copy', 'segment_refresh',
                                      'segment_repair', 'refresh_due', 'import_definitions', '_recompute_cascade',
                                      'segment_build', 'segment_refresh_concurrently', 'segment_repair_concurrently',
                                      'refresh_due_concurrently', '_rebuild_concurrently',
                                      '_segment_compile', '_compile_saved', '_pending', '_pending_clear', '_pending_rows', '_pending_rows_exist'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO kenbun_admin', f);
    END LOOP;
END $grants$;

-- change log (issue 12)
-- Self-contained (the upgrade script repeats it as is): the grants to kenbun_admin come before those
-- to kenbun_reader, in the order the $grants$ loop above gives a fresh install.
-- The consumers table: read by readers, written only through the functions (as the owner).
REVOKE ALL ON kenbun.change_consumers FROM PUBLIC;
GRANT SELECT ON kenbun.change_consumers TO kenbun_reader;
REVOKE ALL ON FUNCTION kenbun.changes_since(bigint, integer), kenbun.consume_changes(text, integer),
    kenbun._change_horizon(bigint, integer), kenbun._check_limit(integer),
    kenbun.register_consumer(text, boolean), kenbun.drop_consumer(text),
    kenbun.prune_changes(interval), kenbun.create_publication(text) FROM PUBLIC;
-- run as the owner (SECURITY DEFINER): admins
GRANT EXECUTE ON FUNCTION kenbun.consume_changes(text, integer), kenbun._change_horizon(bigint, integer),
    kenbun.register_consumer(text, boolean), kenbun.drop_consumer(text),
    kenbun.prune_changes(interval), kenbun.create_publication(text) TO kenbun_admin;
-- reading the change log: readers too (consume_changes moves its consumer's position as the owner;
-- _change_horizon reads the sequence as the owner)
GRANT EXECUTE ON FUNCTION kenbun.changes_since(bigint, integer), kenbun.consume_changes(text, integer),
    kenbun._change_horizon(bigint, integer), kenbun._check_limit(integer) TO kenbun_reader;

-- static segments, overrides and lead history (issue 13). Self-contained (the upgrade script repeats
-- it as is). The functions that change members write membership, the change log and overrides, and
-- lock the bound tables: they run as the owner, for admins only. The view of the overrides reads
-- as its owner: readers only.
REVOKE ALL ON kenbun.member_overrides, kenbun.segment_overrides FROM PUBLIC;
GRANT SELECT ON kenbun.member_overrides, kenbun.segment_overrides TO kenbun_reader;
ALTER FUNCTION kenbun._apply(kenbun.segments, text, text, text[]) SECURITY DEFINER;
ALTER FUNCTION kenbun._lock_members(kenbun.segments, text[], boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._static_change(text, text[], text) SECURITY DEFINER;
ALTER FUNCTION kenbun._override(text, text[], boolean, name) SECURITY DEFINER;
ALTER FUNCTION kenbun.segment_snapshot(text, text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION kenbun._apply(kenbun.segments, text, text, text[]), kenbun._lock_members(kenbun.segments, text[], boolean),
    kenbun._static_change(text, text[], text), kenbun._override(text, text[], boolean, name), kenbun._static_fill(kenbun.segments),
    kenbun._static_segment(text), kenbun._member_keys(kenbun.segments, text[]), kenbun._import_members(jsonb),
    kenbun.segment_snapshot(text, text), kenbun.segment_add(text, text[]), kenbun.segment_add(text, anyarray),
    kenbun.segment_remove(text, text[]), kenbun.segment_remove(text, anyarray), kenbun.segment_include(text, text[]),
    kenbun.segment_exclude(text, text[]), kenbun.segment_clear_override(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._apply(kenbun.segments, text, text, text[]), kenbun._lock_members(kenbun.segments, text[], boolean),
    kenbun._static_change(text, text[], text), kenbun._override(text, text[], boolean, name), kenbun._static_fill(kenbun.segments),
    kenbun._static_segment(text), kenbun._member_keys(kenbun.segments, text[]), kenbun._import_members(jsonb),
    kenbun.segment_snapshot(text, text), kenbun.segment_add(text, text[]), kenbun.segment_add(text, anyarray),
    kenbun.segment_remove(text, text[]), kenbun.segment_remove(text, anyarray), kenbun.segment_include(text, text[]),
    kenbun.segment_exclude(text, text[]), kenbun.segment_clear_override(text, text[]) TO kenbun_admin;
