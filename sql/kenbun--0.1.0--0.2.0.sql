-- kenbun 0.1.0 -> 0.2.0: roles and privileges (see sql/privileges.sql, which ends a fresh 0.2.0
-- install with the same statements), membership tables readable by kenbun_reader, and the objects
-- kenbun generated under 0.1.0 handed to the extension's owner.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.2.0'" to load this file. \quit

-- Functions whose body changed in 0.2.0 (CREATE OR REPLACE resets SECURITY DEFINER: the privilege
-- statements below set it again). What changed: _catalog reads user-defined column types as text and
-- flags non-built-in field types; map_field refuses them; _ensure_members grants kenbun_reader;
-- _notify sizes batches with the segment name; _lock_bound refuses isolation levels above READ
-- COMMITTED; the segment triggers and _catalog_changed lock before they check or recompile, and
-- segment names are limited to 255 characters; import_definitions reports a malformed type name as
-- 22023.

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


CREATE OR REPLACE FUNCTION kenbun._notify(segment_id bigint, segment_name text, kind text, change text, reason text, ids text[])
RETURNS int LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    WITH seg AS (
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
             GROUP BY b.batch) AS g
$$;


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
    IF pg_catalog.char_length(NEW.name) > 255 THEN
        -- the name goes into every NOTIFY payload, which PostgreSQL limits to 8000 bytes
        RAISE EXCEPTION 'segment name is longer than 255 characters (%)', pg_catalog.char_length(NEW.name)
            USING ERRCODE = '22001', HINT = 'keep the name short; the description has no limit';
    END IF;
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


CREATE OR REPLACE FUNCTION kenbun.import_definitions(doc jsonb, replace boolean DEFAULT false)
RETURNS int LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x jsonb;
    i int;
    n int := 0;
    k text;
    clash text;
    t regtype;
BEGIN
    -- 1. validate the whole document before changing anything
    IF doc IS NULL OR pg_catalog.jsonb_typeof(doc) <> 'object' THEN
        PERFORM kenbun._doc_error('$', 'expected an object as made by kenbun.export_definitions()');
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(doc) LOOP
        IF k NOT IN ('format', 'version', 'fields', 'levels', 'segments') THEN
            PERFORM kenbun._doc_error('$.' || k, 'unknown key');
        END IF;
    END LOOP;
    IF doc ? 'version' AND doc -> 'version' <> '1' THEN
        PERFORM kenbun._doc_error('$.version', 'unsupported version ' || (doc ->> 'version'));
    END IF;
    FOREACH k IN ARRAY ARRAY['fields', 'levels', 'segments'] LOOP
        IF doc ? k AND pg_catalog.jsonb_typeof(doc -> k) <> 'array' THEN
            PERFORM kenbun._doc_error('$.' || k, 'expected an array');
        END IF;
    END LOOP;
    i := 0;
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'fields', '[]')) v LOOP
        IF pg_catalog.jsonb_typeof(x) <> 'object' OR NOT (x ?& ARRAY['kind', 'name', 'path', 'type']) THEN
            PERFORM kenbun._doc_error(format('$.fields[%s]', i), 'expected {"kind","name","path","type"}');
        END IF;
        BEGIN
            t := pg_catalog.to_regtype(x ->> 'type');
        EXCEPTION WHEN syntax_error OR invalid_name OR name_too_long OR invalid_parameter_value THEN
            t := NULL;  -- to_regtype raises on text that is not a type name at all
        END;
        IF t IS NULL THEN
            PERFORM kenbun._doc_error(format('$.fields[%s].type', i), format('type "%s" does not exist', x ->> 'type'));
        END IF;
        IF NOT replace AND EXISTS (SELECT 1 FROM kenbun.fields f WHERE f.kind = x ->> 'kind' AND f.name = x ->> 'name') THEN
            clash := COALESCE(clash || ', ', '') || format('field %s.%s', x ->> 'kind', x ->> 'name');
        END IF;
        i := i + 1;
    END LOOP;
    i := 0;
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'levels', '[]')) v LOOP
        IF pg_catalog.jsonb_typeof(x) <> 'object' OR NOT (x ?& ARRAY['name', 'field', 'tiers']) THEN
            PERFORM kenbun._doc_error(format('$.levels[%s]', i), 'expected {"name","field","tiers"}');
        END IF;
        IF NOT replace AND EXISTS (SELECT 1 FROM kenbun.levels l WHERE l.name = x ->> 'name') THEN
            clash := COALESCE(clash || ', ', '') || format('level %s', x ->> 'name');
        END IF;
        i := i + 1;
    END LOOP;
    i := 0;
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'segments', '[]')) v LOOP
        IF pg_catalog.jsonb_typeof(x) <> 'object' OR NOT (x ?& ARRAY['name', 'kind', 'rule']) THEN
            PERFORM kenbun._doc_error(format('$.segments[%s]', i), 'expected {"name","kind","rule",…}');
        END IF;
        IF x ->> 'kind' NOT IN ('lead', 'account') THEN
            PERFORM kenbun._doc_error(format('$.segments[%s].kind', i), 'expected "lead" or "account"');
        END IF;
        BEGIN
            PERFORM (x -> 'rule')::kenbun.segment_rule;
        EXCEPTION WHEN OTHERS THEN
            PERFORM kenbun._doc_error(format('$.segments[%s].rule', i), SQLERRM);
        END;
        IF NOT replace AND EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.name = x ->> 'name') THEN
            clash := COALESCE(clash || ', ', '') || format('segment %s', x ->> 'name');
        END IF;
        i := i + 1;
    END LOOP;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'definitions already exist: %', clash
            USING ERRCODE = '42710', HINT = 'pass replace => true to replace them';
    END IF;
    -- 2. apply; any error rolls everything back
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'fields', '[]')) v LOOP
        PERFORM kenbun.map_field(x ->> 'kind', x ->> 'name', x ->> 'path', (x ->> 'type')::regtype);
        n := n + 1;
    END LOOP;
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'levels', '[]')) v LOOP
        PERFORM kenbun.define_levels(x ->> 'name', x ->> 'field', x -> 'tiers');
        n := n + 1;
    END LOOP;
    FOR x IN SELECT v FROM pg_catalog.jsonb_array_elements(COALESCE(doc -> 'segments', '[]')) v LOOP
        INSERT INTO kenbun.segments AS s (name, kind, description, active, rule, refresh_every)
        VALUES (x ->> 'name', x ->> 'kind', x ->> 'description', COALESCE((x ->> 'active')::boolean, true),
                (x -> 'rule')::kenbun.segment_rule, (x ->> 'refresh_every')::interval)
        ON CONFLICT (name) DO UPDATE
           SET description = EXCLUDED.description, active = EXCLUDED.active, rule = EXCLUDED.rule,
               refresh_every = EXCLUDED.refresh_every
         WHERE s.kind = EXCLUDED.kind;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'segment "%" exists with another kind', x ->> 'name' USING ERRCODE = '42710';
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
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
