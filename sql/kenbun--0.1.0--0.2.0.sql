-- kenbun 0.1.0 -> 0.2.0: roles and privileges (see sql/privileges.sql, which ends a fresh 0.2.0
-- install with the same statements), membership tables readable by kenbun_reader, and the objects
-- kenbun generated under 0.1.0 handed to the extension's owner.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.2.0'" to load this file. \quit

-- Creates (or re-creates, when the key type changed) the membership table of a kind.
CREATE OR REPLACE FUNCTION kenbun._ensure_members(kind text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keytype regtype;
    tbl text := CASE kind WHEN 'lead' THEN 'lead_members' ELSE 'account_members' END;
    col text := (kenbun._members_of(kind)).col;
    current regtype;
BEGIN
    SELECT a.atttypid::regtype INTO keytype
      FROM kenbun.bindings b JOIN pg_catalog.pg_attribute a ON a.attrelid = b.relid AND a.attname = b.key_column
     WHERE b.kind = _ensure_members.kind;
    SELECT a.atttypid::regtype INTO current
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.to_regclass('kenbun.' || tbl) AND a.attname = col;
    IF current IS NOT DISTINCT FROM keytype THEN
        RETURN;
    END IF;
    IF current IS NOT NULL THEN
        EXECUTE format('DROP TABLE kenbun.%I', tbl);
    END IF;
    EXECUTE format($ddl$
        CREATE TABLE kenbun.%1$I (
            segment_id bigint NOT NULL,
            %2$I %3$s NOT NULL,
            entered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
            PRIMARY KEY (segment_id, %2$I)
        );
        CREATE INDEX %4$I ON kenbun.%1$I (%2$I, segment_id);
        COMMENT ON TABLE kenbun.%1$I IS 'Current members of each active %5$s segment (maintained by kenbun).';
        GRANT SELECT ON kenbun.%1$I TO kenbun_reader
    $ddl$, tbl, col, keytype, tbl || '_' || col || '_idx', kind);
END $$;

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
REVOKE ALL ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments, kenbun.membership_changes FROM PUBLIC;
GRANT SELECT ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments, kenbun.membership_changes
    TO kenbun_reader;
GRANT INSERT, UPDATE, DELETE ON kenbun.bindings, kenbun.fields, kenbun.levels, kenbun.segments TO kenbun_admin;

-- Run as the extension's owner (SECURITY DEFINER), because they write membership and the change
-- log, create the membership tables, lock the bound tables, or create triggers and trigger
-- functions on tables the caller does not own. Callable by admins only; all pin search_path.
ALTER FUNCTION kenbun._catalog_changed(boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._ensure_members(text) SECURITY DEFINER;
ALTER FUNCTION kenbun._rebuild_maintenance() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION kenbun._recompute(bigint, text) SECURITY DEFINER;
ALTER FUNCTION kenbun._clear(bigint, text, text, text) SECURITY DEFINER;
ALTER FUNCTION kenbun._lock_bound(text) SECURITY DEFINER;
ALTER FUNCTION kenbun.unbind(text) SECURITY DEFINER;
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
                                      'segment_repair', 'refresh_due', 'import_definitions',
                                      '_segment_compile', '_pending', '_pending_clear'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO kenbun_admin', f);
    END LOOP;
END $grants$;

-- What 0.1.0 generated outside the install script (membership tables, trigger functions) was owned
-- by whoever last changed the catalog: give it to the extension's owner, who now creates them.
DO $owner$
DECLARE
    owner regrole := (SELECT e.extowner::regrole FROM pg_catalog.pg_extension e WHERE e.extname = 'kenbun');
    f regprocedure;
    t regclass;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'kenbun'::regnamespace AND p.proname LIKE '\_maintain\_%'
                AND p.proname <> '_maintain_truncate' LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %s', f, owner);
    END LOOP;
    FOR t IN SELECT c.oid::regclass FROM pg_catalog.pg_class c
              WHERE c.relnamespace = 'kenbun'::regnamespace AND c.relkind = 'r'
                AND c.relname IN ('lead_members', 'account_members') LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %s', t, owner);
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO kenbun_reader', t);
    END LOOP;
END $owner$;
