-- kenbun 0.2.0 -> 0.3.0. Each part below is headed by what it fixes.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.3.0'" to load this file. \quit

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

-- == Sibling maintenance: segments record what they read of the other leads of a lead's account
-- ("reads" entries [kind, column, "sibling"]); recompiling every segment fills them in, and the
-- statement trigger on kenbun.segments regenerates the maintenance triggers from them.
UPDATE kenbun.segments SET rule = rule;
