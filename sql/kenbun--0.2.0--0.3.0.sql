-- kenbun 0.2.0 -> 0.3.0. Each part below is headed by what it fixes; the segments are recompiled last.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.3.0'" to load this file. \quit

-- == Inactive segments: every function that reads a saved segment's membership refuses an inactive
-- segment with 55000 (segment_compare, segment_compare_members and segment_engagement evaluated its
-- rule instead).
CREATE FUNCTION kenbun._require_active(seg kenbun.segments)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT seg.active THEN
        RAISE EXCEPTION 'segment "%" is inactive and has no members', seg.name
            USING ERRCODE = '55000', HINT = 'activate it, or preview its rule with kenbun.segment_preview';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION kenbun._member_set(seg kenbun.segments)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM kenbun._require_active(seg);
    RETURN format('SELECT m.%I AS mid FROM %s AS m WHERE m.segment_id = %s',
                  (kenbun._members_of(seg.kind)).col, (kenbun._members_of(seg.kind)).tbl, seg.id);
END $$;

CREATE OR REPLACE FUNCTION kenbun.segment_members(name text, lim int DEFAULT 100, after text DEFAULT NULL)
RETURNS TABLE (member_id text, entered_at timestamptz, member jsonb) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
    b record := kenbun._bound(seg.kind);
BEGIN
    IF lim IS NULL OR lim < 0 THEN
        RAISE EXCEPTION 'lim must not be negative (got %)', lim USING ERRCODE = '22023';
    END IF;
    PERFORM kenbun._require_active(seg);
    RETURN QUERY EXECUTE format($q$
        SELECT m.%1$I::text, m.entered_at, pg_catalog.to_jsonb(t)
          FROM %2$s AS m JOIN %3$s AS t ON t.%4$I = m.%1$I
         WHERE m.segment_id = $1 AND ($2::text IS NULL OR m.%1$I > $2::%5$s)
         ORDER BY m.%1$I
         LIMIT $3
    $q$, (kenbun._members_of(seg.kind)).col, (kenbun._members_of(seg.kind)).tbl,
         b.tbl, b.key, b.keytype)
    USING seg.id, after, lim;
END $$;

COMMENT ON FUNCTION kenbun.segment_members(text, int, text) IS 'Members of a segment with their rows, ordered by key; pass the last member_id as after for the next page.';

CREATE OR REPLACE FUNCTION kenbun.segment_engagement(name text, since timestamptz DEFAULT pg_catalog.now() - interval '30 days')
RETURNS TABLE (event_type text, members_with_event bigint, events bigint, events_per_member float8) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
    ev kenbun.bindings;
    ld kenbun.bindings;
    total bigint;
BEGIN
    PERFORM kenbun._require_active(seg);
    SELECT * INTO ev FROM kenbun.bindings WHERE kind = 'event';
    SELECT * INTO ld FROM kenbun.bindings WHERE kind = 'lead';
    IF ev.relid IS NULL THEN
        RAISE EXCEPTION 'no table is bound for kind "event"' USING ERRCODE = '55000';
    END IF;
    EXECUTE format('SELECT pg_catalog.count(*) FROM (%s) s', kenbun._member_set(seg)) INTO total;
    IF seg.kind = 'lead' THEN
        RETURN QUERY EXECUTE format($q$
            SELECT e.%1$I::text, pg_catalog.count(DISTINCT m.mid), pg_catalog.count(*),
                   pg_catalog.count(*)::float8 / NULLIF($2, 0)
              FROM (%3$s) AS m JOIN %4$s AS e ON e.%5$I = m.mid
             WHERE e.%2$I >= $1
             GROUP BY 1 ORDER BY 3 DESC, 1
        $q$, ev.type_column, ev.time_column, kenbun._member_set(seg), ev.relid, ev.lead_column)
        USING since, total;
    ELSE
        RETURN QUERY EXECUTE format($q$
            SELECT e.%1$I::text, pg_catalog.count(DISTINCT m.mid), pg_catalog.count(*),
                   pg_catalog.count(*)::float8 / NULLIF($2, 0)
              FROM (%3$s) AS m JOIN %6$s AS l ON l.%7$I = m.mid JOIN %4$s AS e ON e.%5$I = l.%8$I
             WHERE e.%2$I >= $1
             GROUP BY 1 ORDER BY 3 DESC, 1
        $q$, ev.type_column, ev.time_column, kenbun._member_set(seg), ev.relid, ev.lead_column,
             ld.relid, ld.account_column, ld.key_column)
        USING since, total;
    END IF;
END $$;

COMMENT ON FUNCTION kenbun.segment_engagement(text, timestamptz) IS 'Events of the members since a time, per event type; events_per_member divides by the segment size.';

-- == Repair and refresh cascade to the segments that use a segment, in dependency order.
CREATE FUNCTION kenbun._recompute_cascade(seg_id bigint, reason text, OUT entered bigint, OUT exited bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    r record;
BEGIN
    entered := 0;
    exited := 0;
    FOR s IN
        WITH RECURSIVE dep(id, name, depth) AS (
            SELECT x.id, x.name, 0 FROM kenbun.segments x WHERE x.id = seg_id
            UNION ALL
            SELECT x.id, x.name, d.depth + 1
              FROM dep d JOIN kenbun.segments x ON d.name = ANY (x.depends_on) AND x.id <> d.id
             WHERE d.depth < 64)
        SELECT d.id FROM dep d JOIN kenbun.segments x ON x.id = d.id
         WHERE x.active
         GROUP BY d.id ORDER BY pg_catalog.max(d.depth), d.id
    LOOP
        SELECT * INTO r FROM kenbun._recompute(s.id, reason);
        entered := entered + r.entered;
        exited := exited + r.exited;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION kenbun.segment_refresh(name text, OUT entered bigint, OUT exited bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
BEGIN
    IF NOT seg.active THEN
        entered := 0; exited := 0;
        RETURN;
    END IF;
    PERFORM kenbun._lock_bound('share');
    SELECT r.entered, r.exited INTO entered, exited FROM kenbun._recompute_cascade(seg.id, 'refresh') r;
    UPDATE kenbun.segments s SET last_refreshed_at = pg_catalog.now() WHERE s.id = seg.id;
END $$;

COMMENT ON FUNCTION kenbun.segment_refresh(text) IS 'Recomputes a segment as a diff (for time windows), then the segments that use it; returns how many entered and exited in all of them.';

CREATE OR REPLACE FUNCTION kenbun.segment_repair(name text, OUT entered bigint, OUT exited bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
    cleared bigint;
BEGIN
    PERFORM kenbun._lock_bound('share');
    cleared := 0;
    IF NOT seg.active THEN
        -- an inactive segment has no members; the segments using it still apply its rule
        cleared := kenbun._clear(seg.id, seg.name, seg.kind, 'repair');
    END IF;
    SELECT r.entered, r.exited + cleared INTO entered, exited FROM kenbun._recompute_cascade(seg.id, 'repair') r;
END $$;

COMMENT ON FUNCTION kenbun.segment_repair(text) IS 'Fixes drift of a segment and of the segments that use it, logging the changes with reason repair; returns how many entered and exited in all of them.';

REVOKE ALL ON FUNCTION kenbun._recompute_cascade(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._recompute_cascade(bigint, text) TO kenbun_admin;

-- == A definition reads only what its author may read (column privileges), and define_levels checks
-- its field (unknown 42703, not numeric 42804).
CREATE FUNCTION kenbun._level_field_reads(field text) RETURNS jsonb
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '_level_field_reads_wrapper';
CREATE FUNCTION kenbun._require_select(reads jsonb, what text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
    tbl regclass;
BEGIN
    SELECT a.attname, b.relid INTO col, tbl
      FROM pg_catalog.jsonb_array_elements(reads) r
      JOIN kenbun.bindings b ON b.kind = r ->> 0
      JOIN pg_catalog.pg_attribute a ON a.attrelid = b.relid AND a.attname = r ->> 1 AND a.attnum > 0 AND NOT a.attisdropped
     WHERE NOT pg_catalog.has_column_privilege(b.relid, a.attnum, 'SELECT')
     ORDER BY b.kind, a.attnum
     LIMIT 1;
    IF col IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied for column "%" of table %', col, tbl
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('%s reads column "%s", which role %s may not SELECT.', what, col, current_user),
                  HINT = pg_catalog.format('a definition may read only what its author may read: GRANT SELECT (%I) ON %s TO %I',
                                           col, tbl, current_user);
    END IF;
END $$;

CREATE FUNCTION kenbun._segments_check_privileges()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.reads IS DISTINCT FROM OLD.reads OR NEW.rule::text IS DISTINCT FROM OLD.rule::text
       OR (NEW.active AND NOT OLD.active) THEN
        PERFORM kenbun._require_select(NEW.reads, pg_catalog.format('segment "%s"', NEW.name));
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER segments_check_privileges BEFORE INSERT OR UPDATE ON kenbun.segments
    FOR EACH ROW EXECUTE FUNCTION kenbun._segments_check_privileges();
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
    PERFORM kenbun._require_select(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_array(kind, parts[1])),
                                   pg_catalog.format('field "%s"', field));
    INSERT INTO kenbun.fields AS f (kind, name, path, type) VALUES (kind, field, path, type)
    ON CONFLICT ON CONSTRAINT fields_pkey DO UPDATE SET path = EXCLUDED.path, type = EXCLUDED.type;
    PERFORM kenbun._catalog_changed();
END $$;

COMMENT ON FUNCTION kenbun.map_field(text, text, text, regtype) IS 'Adds (or replaces) a named, typed field over a column or JSON path.';

CREATE OR REPLACE FUNCTION kenbun.define_levels(name text, field text, tiers jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t jsonb;
    i int := 0;
    prev numeric;
    names text[] := '{}';
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'level name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF field IS NULL OR field = '' THEN
        RAISE EXCEPTION 'level field must not be empty' USING ERRCODE = '22023';
    END IF;
    IF tiers IS NULL OR pg_catalog.jsonb_typeof(tiers) <> 'array' OR pg_catalog.jsonb_array_length(tiers) = 0 THEN
        RAISE EXCEPTION 'tiers must be a non-empty JSON array'
            USING ERRCODE = '22023', HINT = '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50}]';
    END IF;
    FOR t IN SELECT x FROM pg_catalog.jsonb_array_elements(tiers) AS x LOOP
        IF pg_catalog.jsonb_typeof(t) <> 'object'
           OR pg_catalog.jsonb_typeof(t -> 'name') IS DISTINCT FROM 'string'
           OR pg_catalog.jsonb_typeof(t -> 'min') IS DISTINCT FROM 'number'
           OR (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(t)) <> 2 THEN
            RAISE EXCEPTION 'tiers[%] must be an object {"name": <string>, "min": <number>}', i
                USING ERRCODE = '22023';
        END IF;
        IF t ->> 'name' = '' OR t ->> 'name' = ANY (names) THEN
            RAISE EXCEPTION 'tiers[%]: tier name "%" is empty or repeated', i, t ->> 'name' USING ERRCODE = '22023';
        END IF;
        IF prev IS NOT NULL AND (t ->> 'min')::numeric <= prev THEN
            RAISE EXCEPTION 'tiers[%]: min % is not greater than the previous tier''s min %', i, t ->> 'min', prev
                USING ERRCODE = '22023', HINT = 'list tiers from lowest to highest';
        END IF;
        prev := (t ->> 'min')::numeric;
        names := names || (t ->> 'name');
        i := i + 1;
    END LOOP;
    -- the field must be numeric where it is used (a rule reads the field of its own kind), and readable
    PERFORM kenbun._require_select(kenbun._level_field_reads(field), pg_catalog.format('level "%s"', name));
    INSERT INTO kenbun.levels AS l (name, field, tiers) VALUES (name, field, tiers)
    ON CONFLICT ON CONSTRAINT levels_pkey DO UPDATE SET field = EXCLUDED.field, tiers = EXCLUDED.tiers;
    PERFORM kenbun._catalog_changed();
END $$;

COMMENT ON FUNCTION kenbun.define_levels(text, text, jsonb) IS 'Defines (or replaces) ordered tiers over a numeric field.';

-- == Backup and restore (pg_dump/pg_restore keep every segment) and DROP EXTENSION (removes what
-- kenbun generated). Schema kenbun becomes a member of the extension, so DROP EXTENSION kenbun
-- CASCADE drops the generated trigger functions and membership tables inside it, and through them
-- kenbun's triggers on the bound tables (pg_dump still dumps those objects: they are not members).
-- PostgreSQL refuses to make an extension's own schema a member, so the extension moves to
-- pg_catalog, where kenbun.control now installs it (objects stay in schema kenbun); its dependency on
-- schema kenbun goes (nothing is recorded for pg_catalog).
UPDATE pg_catalog.pg_extension SET extnamespace = 'pg_catalog'::regnamespace WHERE extname = 'kenbun';
DELETE FROM pg_catalog.pg_depend
 WHERE classid = 'pg_catalog.pg_extension'::regclass
   AND objid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'kenbun')
   AND refclassid = 'pg_catalog.pg_namespace'::regclass AND refobjid = 'kenbun'::regnamespace;
ALTER EXTENSION kenbun ADD SCHEMA kenbun;
-- the identity sequences are dumped with the tables, so a restore goes on numbering after them
SELECT pg_catalog.pg_extension_config_dump('kenbun.segments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kenbun.membership_changes_id_seq', '');
-- a row restored into kenbun.segments is kept as dumped (no compile, lock or fill); unbind also drops
-- the kind's trigger functions and membership table
CREATE FUNCTION kenbun._restoring(compiled_sql text)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT compiled_sql IS NOT NULL
       AND pg_catalog.current_setting('check_function_bodies') = 'off'
       AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user), false)
$$;

CREATE OR REPLACE FUNCTION kenbun._segments_before()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb;
    users text;
BEGIN
    IF TG_OP = 'INSERT' AND kenbun._restoring(NEW.compiled_sql) THEN
        -- a restore: keep the row exactly as dumped. No compile (the bindings, fields and segments it
        -- needs may not be loaded yet), no lock, and (segments_after) no fill: pg_restore -j loads
        -- the bound tables in parallel, and the dump carries membership, the change log and the
        -- generated triggers as they were. Remember the id for segments_after.
        PERFORM pg_catalog.set_config('kenbun.restored',
            COALESCE(NULLIF(pg_catalog.current_setting('kenbun.restored', true), ''), ',') || NEW.id || ',', true);
        RETURN NEW;
    END IF;
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

CREATE OR REPLACE FUNCTION kenbun._segments_after()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' AND kenbun._restoring(NEW.compiled_sql)
       AND pg_catalog.strpos(pg_catalog.current_setting('kenbun.restored', true), ',' || NEW.id || ',') > 0 THEN
        RETURN NULL;  -- restored as dumped (segments_before)
    END IF;
    PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
    IF TG_OP = 'INSERT' THEN
        IF NEW.active THEN
            PERFORM kenbun._recompute(NEW.id, 'initial');
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.active AND NOT NEW.active THEN
            PERFORM kenbun._clear(NEW.id, NEW.name, NEW.kind, 'deactivate');
        ELSIF NEW.active AND NOT OLD.active THEN
            PERFORM kenbun._recompute(NEW.id, 'initial');
        ELSIF NEW.active AND NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql THEN
            PERFORM kenbun._recompute(NEW.id, 'rule_change');
        END IF;
        IF NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql OR NEW.name <> OLD.name THEN
            -- segments that use this one inline its rule: recompile them (their triggers cascade further)
            UPDATE kenbun.segments s SET rule = s.rule WHERE NEW.name = ANY (s.depends_on) AND s.id <> NEW.id;
        END IF;
    ELSE
        PERFORM kenbun._clear(OLD.id, OLD.name, OLD.kind, 'deactivate');
    END IF;
    RETURN NULL;
END $$;

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
              WHERE g.tgrelid = tbl AND (g.tgname LIKE 'kenbun\_maintain\_%' OR g.tgname LIKE 'kenbun\_capture\_%') LOOP
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
COMMENT ON FUNCTION kenbun.unbind(text) IS 'Removes a binding, kenbun''s triggers from the table, and what kenbun generated for the kind.';
-- CREATE OR REPLACE resets SECURITY DEFINER (see sql/privileges.sql)
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_after() SECURITY DEFINER;
ALTER FUNCTION kenbun.unbind(text) SECURITY DEFINER;

-- == drift_report also reports membership rows of segments that do not exist.
CREATE OR REPLACE FUNCTION kenbun.drift_report()
RETURNS TABLE (segment text, missing bigint, unexpected bigint) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
BEGIN
    RETURN QUERY
    SELECT s.name,
           (SELECT pg_catalog.count(*) FROM kenbun.segment_drift(s.name) d WHERE d.problem = 'missing'),
           (SELECT pg_catalog.count(*) FROM kenbun.segment_drift(s.name) d WHERE d.problem = 'unexpected')
      FROM kenbun.segments s ORDER BY s.name;
    -- membership rows of a segment that does not exist (written behind kenbun's back): all unexpected
    FOREACH k IN ARRAY ARRAY['lead', 'account'] LOOP
        IF pg_catalog.to_regclass((kenbun._members_of(k)).tbl) IS NOT NULL THEN
            RETURN QUERY EXECUTE pg_catalog.format($q$
                SELECT pg_catalog.format('(no segment %%s)', m.segment_id), 0::bigint, pg_catalog.count(*)
                  FROM %s AS m
                 WHERE NOT EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.id = m.segment_id)
                 GROUP BY m.segment_id ORDER BY m.segment_id
            $q$, (kenbun._members_of(k)).tbl);
        END IF;
    END LOOP;
END $$;

COMMENT ON FUNCTION kenbun.drift_report() IS 'Drift of every segment at once, and membership rows of segments that do not exist (as "(no segment <id>)").';


-- (more parts above this line)

-- == Last: sibling maintenance. Segments record what they read of the other leads of a lead's account
-- ("reads" entries [kind, column, "sibling"]); recompiling every segment fills them in, and the
-- statement trigger on kenbun.segments regenerates the maintenance triggers from them.
UPDATE kenbun.segments SET rule = rule;
