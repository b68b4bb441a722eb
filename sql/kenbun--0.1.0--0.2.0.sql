-- kenbun 0.1.0 -> 0.2.0: roles and privileges (see sql/privileges.sql, which ends a fresh 0.2.0
-- install with the same statements), membership tables readable by kenbun_reader, and the objects
-- kenbun generated under 0.1.0 handed to the extension's owner.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.2.0'" to load this file. \quit

-- Everything the compiler needs, as one document. A column whose type (under its domains) is not
-- built in is reported as text with as_text: the compiler reads it as column::text and never casts
-- to it, because the generated triggers run as the extension's owner and a cast to a user-defined
-- type (a domain's CHECK, an input function) would run user code with the owner's rights.
CREATE OR REPLACE FUNCTION kenbun._catalog()
RETURNS jsonb LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_catalog.jsonb_build_object(
  'bindings', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'kind', b.kind, 'schema', n.nspname, 'table', c.relname,
               'key', b.key_column, 'account_key', b.account_column, 'lead_key', b.lead_column,
               'type_column', b.type_column, 'time_column', b.time_column,
               'metadata_column', b.metadata_column,
               'columns', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                   'name', a.attname,
                                   'type', CASE WHEN y.builtin THEN pg_catalog.format_type(y.oid, NULL) ELSE 'text' END,
                                   'as_text', NOT y.builtin,
                                   'not_null', a.attnotnull) ORDER BY a.attnum), '[]'::jsonb)
                             FROM pg_catalog.pg_attribute a
                             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                             -- a domain's base type; a domain over a domain is read as text
                             CROSS JOIN LATERAL (
                                 SELECT u.oid, u.typnamespace = 'pg_catalog'::regnamespace AND u.typtype <> 'd' AS builtin
                                   FROM pg_catalog.pg_type u
                                  WHERE u.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END) y
                            WHERE a.attrelid = b.relid AND a.attnum > 0 AND NOT a.attisdropped)))
        FROM kenbun.bindings b
        JOIN pg_catalog.pg_class c ON c.oid = b.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace), '[]'::jsonb),
  'fields', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'kind', f.kind, 'name', f.name, 'path', f.path, 'type', pg_catalog.format_type(f.type, NULL),
               'builtin', y.typnamespace = 'pg_catalog'::regnamespace))
        FROM kenbun.fields f JOIN pg_catalog.pg_type y ON y.oid = f.type), '[]'::jsonb),
  'levels', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', v.name, 'field', v.field, 'tiers', v.tiers))
        FROM kenbun.levels v), '[]'::jsonb),
  'segments', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', s.id, 'name', s.name, 'kind', s.kind,
                                                                'rule', s.rule::jsonb))
        FROM kenbun.segments s), '[]'::jsonb))
$$;

CREATE OR REPLACE FUNCTION kenbun.map_field(kind text, field text, path text, type regtype)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := kenbun._require_kind(kind);
    parts text[];
    coltype regtype;
BEGIN
    IF field IS NULL OR field = '' THEN
        RAISE EXCEPTION 'field name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF type IS NULL THEN
        RAISE EXCEPTION 'type must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF (SELECT y.typnamespace FROM pg_catalog.pg_type y WHERE y.oid = type) <> 'pg_catalog'::regnamespace THEN
        RAISE EXCEPTION 'type % is not a built-in type', type
            USING ERRCODE = '42804',
                  HINT = 'map fields to built-in types (text, numeric, bigint, boolean, date, timestamptz, jsonb, ...): '
                         'kenbun evaluates fields inside triggers that run as the extension''s owner, where a '
                         'user-defined type''s code would run with the owner''s rights';
    END IF;
    IF path IS NULL OR path = '' THEN
        RAISE EXCEPTION 'path must not be empty' USING ERRCODE = '22023',
            HINT = 'a path is a column name, or a column and keys into it: attributes.plan';
    END IF;
    parts := pg_catalog.string_to_array(path, '.');
    IF '' = ANY (parts) THEN
        RAISE EXCEPTION 'path "%" has an empty element', path USING ERRCODE = '22023';
    END IF;
    coltype := kenbun._require_column(tbl, parts[1]::name, 'the first element of path "' || path || '"');
    IF pg_catalog.array_length(parts, 1) > 1 AND coltype <> 'jsonb'::regtype THEN
        RAISE EXCEPTION 'path "%" goes into column "%", which is %, not jsonb', path, parts[1], coltype
            USING ERRCODE = '42804';
    END IF;
    INSERT INTO kenbun.fields AS f (kind, name, path, type) VALUES (kind, field, path, type)
    ON CONFLICT ON CONSTRAINT fields_pkey DO UPDATE SET path = EXCLUDED.path, type = EXCLUDED.type;
    PERFORM kenbun._catalog_changed();
END $$;
COMMENT ON FUNCTION kenbun.map_field(text, text, text, regtype) IS 'Adds (or replaces) a named, typed field over a column or JSON path.';

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

-- Lock the bound tables before checking or recompiling (a check or recompile whose snapshot predates
-- the lock missed segments committed meanwhile), and only under READ COMMITTED.
CREATE OR REPLACE FUNCTION kenbun._lock_bound(mode text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r regclass;
BEGIN
    -- the statements after the lock must see everything committed before it: only READ COMMITTED
    -- takes a new snapshot per statement (under REPEATABLE READ a fill would use a stale snapshot)
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kenbun changes segment definitions and refreshes membership only in READ COMMITTED transactions (this one is %)',
                        pg_catalog.upper(pg_catalog.current_setting('transaction_isolation'))
            USING ERRCODE = '0A000',
                  HINT = 'run it in its own transaction, or BEGIN ISOLATION LEVEL READ COMMITTED';
    END IF;
    FOR r IN SELECT b.relid FROM kenbun.bindings b ORDER BY b.relid::oid LOOP
        EXECUTE format('LOCK TABLE %s IN %s MODE', r, CASE mode WHEN 'share' THEN 'SHARE' ELSE 'SHARE ROW EXCLUSIVE' END);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION kenbun._segments_before()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb;
    users text;
BEGIN
    PERFORM kenbun._lock_bound('share row exclusive');
    IF TG_OP = 'UPDATE' THEN
        IF NEW.kind <> OLD.kind THEN
            RAISE EXCEPTION 'cannot change the kind of segment "%"', OLD.name
                USING ERRCODE = '0A000', HINT = 'create a new segment of the other kind';
        END IF;
        IF NEW.name <> OLD.name THEN
            SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', s.name), ', ' ORDER BY s.name) INTO users
              FROM kenbun.segments s WHERE OLD.name = ANY (s.depends_on) AND s.id <> OLD.id;
            IF users IS NOT NULL THEN
                RAISE EXCEPTION 'cannot rename segment "%": segment(s) % use it', OLD.name, users
                    USING ERRCODE = '2BP01', HINT = 'change their rules first';
            END IF;
        END IF;
    END IF;
    c := kenbun._segment_compile(NEW.rule, NEW.kind, NEW.name, NEW.id);
    NEW.compiled_sql := c ->> 'sql';
    NEW.time_dependent := (c ->> 'time_dependent')::boolean;
    NEW.reads := c -> 'reads';
    NEW.depends_on := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(c -> 'refs'));
    IF NEW.time_dependent AND NEW.refresh_every IS NULL THEN
        NEW.refresh_every := interval '1 hour';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.created_at := pg_catalog.now();
    END IF;
    NEW.updated_at := pg_catalog.now();
    IF NEW.active AND (TG_OP = 'INSERT' OR NOT OLD.active OR NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql) THEN
        NEW.last_refreshed_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION kenbun._segments_before_delete()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    users text;
BEGIN
    PERFORM kenbun._lock_bound('share row exclusive');
    SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', s.name), ', ' ORDER BY s.name) INTO users
      FROM kenbun.segments s WHERE OLD.name = ANY (s.depends_on) AND s.id <> OLD.id;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot delete segment "%": segment(s) % use it', OLD.name, users
            USING ERRCODE = '2BP01', HINT = 'change or delete those segments first';
    END IF;
    RETURN OLD;
END $$;

CREATE OR REPLACE FUNCTION kenbun._catalog_changed(recompute_all boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
BEGIN
    -- lock first: the recompile below must see segments committed while we waited
    PERFORM kenbun._lock_bound('share row exclusive');
    PERFORM kenbun._ensure_members(v.k) FROM (VALUES ('lead'), ('account')) v(k)
      WHERE EXISTS (SELECT 1 FROM kenbun.bindings b WHERE b.kind = v.k);
    PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
    UPDATE kenbun.segments x SET rule = x.rule;
    IF recompute_all THEN
        FOR s IN SELECT x.id FROM kenbun.segments x WHERE x.active ORDER BY x.id LOOP
            PERFORM kenbun._recompute(s.id, 'rule_change');
        END LOOP;
    END IF;
    IF pg_catalog.current_setting('kenbun.rebuild_pending', true) = 'on' THEN
        PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'off', true);
        PERFORM kenbun._rebuild_maintenance();
    END IF;
END $$;

-- The jsonb cast goes through the text form (clean errors for numbers beyond f64 and deep nesting).
DROP CAST (jsonb AS kenbun.segment_rule);
DROP FUNCTION kenbun.segment_rule_from_jsonb(jsonb);
CREATE CAST (jsonb AS kenbun.segment_rule) WITH INOUT AS ASSIGNMENT;

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
