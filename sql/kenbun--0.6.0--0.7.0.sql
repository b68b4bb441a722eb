-- kenbun 0.6.0 -> 0.7.0: every public object documented (COMMENT ON, docs/reference.md), key
-- arguments checked with kenbun's errors (a NULL rule in segment_compare), a rejected recompile names its segment, lead_segments and
-- lead_history take a key of any type, an override records who set it. The rule parser now rejects reversed "between" bounds: a saved
-- rule that has them would no longer parse, so the update refuses to run until it is fixed.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s.name), ', ') INTO bad
      FROM kenbun.segments s
     WHERE s.rule IS NOT NULL
       AND pg_catalog.jsonb_path_exists((s.rule::text)::jsonb,
             'strict $.** ? (@.op == "between" && @.value.size() == 2 && @.value[0] > @.value[1])');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'segment(s) % have "between" bounds in reverse order, which kenbun 0.7.0 rejects', bad
            USING ERRCODE = '22023', HINT = 'write the lower bound first (such a condition matched no one), then update again';
    END IF;
END $$;


CREATE FUNCTION kenbun._load_hooks() RETURNS void
STABLE PARALLEL SAFE STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '_load_hooks_wrapper';


CREATE OR REPLACE FUNCTION kenbun._comment_members(kind text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl text := (kenbun._members_of(kind)).tbl;
    col text := (kenbun._members_of(kind)).col;
    v text := 'kenbun.' || pg_catalog.quote_ident(kind || '_segment_members');
BEGIN
    IF pg_catalog.to_regclass(tbl) IS NOT NULL THEN
        EXECUTE pg_catalog.format($c$
            COMMENT ON TABLE %1$s IS 'Current members of each active %3$s segment, one row per (segment, %3$s) (maintained by kenbun: do not write it). Created when the %3$s table is bound; not a member of the extension, so pg_dump dumps it. Readable by kenbun_reader.';
            COMMENT ON COLUMN %1$s.segment_id IS 'The segment (kenbun.segments.id).';
            COMMENT ON COLUMN %1$s.%2$I IS 'The %3$s''s key, of the type of the bound table''s key column.';
            COMMENT ON COLUMN %1$s.entered_at IS 'When the %3$s entered the segment (the time of the transaction that added it).'
        $c$, tbl, col, kind);
    END IF;
    IF pg_catalog.to_regclass(v) IS NOT NULL THEN
        EXECUTE pg_catalog.format($c$
            COMMENT ON VIEW %1$s IS 'Members of every %2$s segment with the segment''s id, name, kind and type, for BI tools: one row per (segment, %2$s). Created when the %2$s table is bound; not a member of the extension. Readable by kenbun_reader.';
            COMMENT ON COLUMN %1$s.segment_id IS 'The segment''s id (kenbun.segments.id).';
            COMMENT ON COLUMN %1$s.segment_name IS 'The segment''s name.';
            COMMENT ON COLUMN %1$s.kind IS 'The segment''s kind: always %2$s here.';
            COMMENT ON COLUMN %1$s.segment_type IS 'dynamic or static (kenbun.segments.type).';
            COMMENT ON COLUMN %1$s.member_id IS 'The %2$s''s key, of the type of the bound table''s key column.';
            COMMENT ON COLUMN %1$s.entered_at IS 'When the %2$s entered the segment.'
        $c$, v, kind);
    END IF;
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
    IF current IS DISTINCT FROM keytype THEN
        IF current IS NOT NULL THEN
            EXECUTE format('DROP VIEW IF EXISTS kenbun.%I', kind || '_segment_members');
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
            GRANT SELECT ON kenbun.%1$I TO kenbun_reader
        $ddl$, tbl, col, keytype, tbl || '_' || col || '_idx', kind);
    END IF;
    IF pg_catalog.to_regclass('kenbun.' || kind || '_segment_members') IS NULL THEN
        -- for BI tools: members by segment name without a join
        EXECUTE format($ddl$
            CREATE VIEW kenbun.%3$I AS
                SELECT s.id AS segment_id, s.name AS segment_name, s.kind, s.type AS segment_type,
                       m.%2$I AS member_id, m.entered_at
                  FROM kenbun.%1$I m JOIN kenbun.segments s ON s.id = m.segment_id;
            GRANT SELECT ON kenbun.%3$I TO kenbun_reader
        $ddl$, tbl, col, kind || '_segment_members', kind);
    END IF;
    PERFORM kenbun._comment_members(kind);
END $$;

CREATE OR REPLACE FUNCTION kenbun._recompile_failed()
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    st text;
    msg text;
    hnt text;
BEGIN
    FOR s IN SELECT x.* FROM kenbun.segments x ORDER BY x.id LOOP
        BEGIN
            -- the compile _segments_before does
            PERFORM kenbun._compile_saved(s.rule, s.kind, s.name, s.id, s.type,
                                          EXISTS (SELECT 1 FROM kenbun.member_overrides o WHERE o.segment_id = s.id));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
            RAISE EXCEPTION 'segment "%" no longer compiles: %', s.name, msg USING ERRCODE = st,
                HINT = pg_catalog.concat_ws(' ', NULLIF(hnt, '') || '.', 'Change or delete the segment first; the change was rolled back.');
        END;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION kenbun._segments_before()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb;
    users text;
    refill boolean;
    req text;
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
    PERFORM kenbun._lock_definitions();
    IF NEW.name IS NULL THEN
        -- checked here, before the compile (which needs the name), not by the NOT NULL constraint after it
        RAISE EXCEPTION 'null value in column "name" of relation "segments" violates not-null constraint'
            USING ERRCODE = '23502', HINT = 'every segment needs a name (segment_copy and segment_snapshot: the new name)';
    END IF;
    IF NEW.kind IS NULL THEN
        RAISE EXCEPTION 'null value in column "kind" of relation "segments" violates not-null constraint'
            USING ERRCODE = '23502', HINT = 'kind is ''lead'' (a segment of leads) or ''account'' (of accounts)';
    ELSIF NEW.kind NOT IN ('lead', 'account') THEN
        RAISE EXCEPTION 'invalid kind "%"', NEW.kind
            USING ERRCODE = '22023', HINT = 'kind is ''lead'' (a segment of leads) or ''account'' (of accounts)';
    END IF;
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
        IF NEW.type <> OLD.type THEN
            RAISE EXCEPTION 'cannot change the type of segment "%" (%)', OLD.name, OLD.type
                USING ERRCODE = '0A000',
                      HINT = 'kenbun.segment_snapshot(name, new_name) freezes a dynamic segment''s members as a new static segment';
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
    IF NEW.type = 'static' AND NOT NEW.active THEN
        RAISE EXCEPTION 'static segment "%" cannot be inactive', NEW.name
            USING ERRCODE = '0A000', HINT = 'a static segment is a list kept by hand; deactivating it would empty it: delete it instead';
    END IF;
    IF NEW.type = 'dynamic' AND NEW.rule IS NULL THEN
        RAISE EXCEPTION 'dynamic segment "%" needs a rule', NEW.name
            USING ERRCODE = '23502', HINT = 'give it a rule, or make it a static list (type ''static'') filled with kenbun.segment_add';
    END IF;
    c := kenbun._compile_saved(NEW.rule, NEW.kind, NEW.name, NEW.id, NEW.type,
                                 EXISTS (SELECT 1 FROM kenbun.member_overrides o WHERE o.segment_id = NEW.id));
    NEW.compiled_sql := c ->> 'sql';
    NEW.time_dependent := (c ->> 'time_dependent')::boolean;
    NEW.reads := c -> 'reads';
    NEW.boundaries := COALESCE(c -> 'boundaries', '[]');
    IF pg_catalog.jsonb_typeof(c -> 'rule') = 'object' THEN
        -- the rule with the time zone in effect now written into its calendar conditions
        NEW.rule := (c -> 'rule')::kenbun.segment_rule;
    END IF;
    NEW.depends_on := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(c -> 'refs'));
    IF NEW.time_dependent AND NEW.refresh_every IS NULL THEN
        NEW.refresh_every := interval '1 hour';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.created_at := pg_catalog.now();
    END IF;
    NEW.updated_at := pg_catalog.now();
    -- a static segment is filled once, from its rule if it has one (segments_after); a recompile that
    -- only adds or removes the overrides' wrapper (kenbun.membership_kept, set by the override
    -- functions, which then re-evaluate the overridden members themselves) changes no membership
    refill := NEW.active AND NEW.type = 'dynamic'
              AND pg_catalog.current_setting('kenbun.membership_kept', true) IS DISTINCT FROM 'on'
              AND (TG_OP = 'INSERT' OR NOT OLD.active OR NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql);
    IF refill THEN
        NEW.last_refreshed_at := pg_catalog.now();
    END IF;
    -- status: kenbun's own (a value written by anyone else is replaced). A fill or re-evaluation over a
    -- large table is left to CALL kenbun.segment_build() (segments_after records it); a build is
    -- started and ended by kenbun's procedures, which say so in kenbun.build_status.
    IF refill THEN
        NEW.status := CASE WHEN kenbun._online(NEW.kind) THEN 'building' ELSE 'ready' END;
    ELSIF NOT NEW.active THEN
        NEW.status := 'ready';
    ELSIF TG_OP = 'UPDATE' THEN
        req := NULLIF(pg_catalog.current_setting('kenbun.build_status', true), '');
        IF req = 'ready' AND NOT EXISTS (SELECT 1 FROM kenbun.segment_builds b WHERE b.segment_id = NEW.id AND b.done) THEN
            req := NULL;  -- restarted meanwhile (a rule change): not done
        END IF;
        NEW.status := COALESCE(req, OLD.status);
    ELSE
        NEW.status := 'ready';
    END IF;
    -- the bound tables: locked when maintenance changes. The lock waits for the writers in progress
    -- (their triggers know the old definitions) and holds new ones until this transaction commits.
    IF TG_OP = 'INSERT' OR NEW.active IS DISTINCT FROM OLD.active OR NEW.status IS DISTINCT FROM OLD.status
       OR (NEW.active AND NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql) THEN
        PERFORM kenbun._lock_bound('share row exclusive');
        PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION kenbun._catalog_changed(recompute_all boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
BEGIN
    -- lock first: the recompile below must see segments committed while we waited
    PERFORM kenbun._lock_definitions();
    PERFORM kenbun._lock_bound('share row exclusive');
    PERFORM kenbun._ensure_members(v.k) FROM (VALUES ('lead'), ('account')) v(k)
      WHERE EXISTS (SELECT 1 FROM kenbun.bindings b WHERE b.kind = v.k);
    PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
    BEGIN
        UPDATE kenbun.segments x SET rule = x.rule;
    EXCEPTION WHEN OTHERS THEN
        PERFORM kenbun._recompile_failed();
        RAISE;
    END;
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

CREATE OR REPLACE FUNCTION kenbun._bound(kind text, OUT tbl regclass, OUT key name, OUT keytype text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM kenbun._load_hooks();  -- the hint of a permission error below (hooks.rs)
    SELECT b.relid, b.key_column, pg_catalog.format_type(a.atttypid, NULL) INTO tbl, key, keytype
      FROM kenbun.bindings b JOIN pg_catalog.pg_attribute a ON a.attrelid = b.relid AND a.attname = b.key_column
     WHERE b.kind = _bound.kind;
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'no table is bound for kind "%"', kind USING ERRCODE = '55000';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION kenbun._compare(x text, y text)
RETURNS TABLE (only_a bigint, "both" bigint, only_b bigint, jaccard float8) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF x IS NULL OR y IS NULL THEN   -- a NULL rule or kind (the rule's query is then NULL)
        RAISE EXCEPTION 'two rules and a kind are required (got NULL)' USING ERRCODE = '22004',
            HINT = 'kenbun.segment_compare(a, b, kind) compares two rules; segment_compare(name_a, name_b) two saved segments';
    END IF;
    RETURN QUERY EXECUTE format($q$
        SELECT pg_catalog.count(*) FILTER (WHERE y.mid IS NULL),
               pg_catalog.count(*) FILTER (WHERE x.mid IS NOT NULL AND y.mid IS NOT NULL),
               pg_catalog.count(*) FILTER (WHERE x.mid IS NULL),
               CASE WHEN pg_catalog.count(*) = 0 THEN NULL
                    ELSE (pg_catalog.count(*) FILTER (WHERE x.mid IS NOT NULL AND y.mid IS NOT NULL))::float8 / pg_catalog.count(*) END
          FROM (%s) AS x FULL JOIN (%s) AS y ON x.mid = y.mid
    $q$, x, y);
END $$;

CREATE OR REPLACE FUNCTION kenbun._compare_members(x text, y text)
RETURNS TABLE (member_id text, side text) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF x IS NULL OR y IS NULL THEN   -- a NULL rule or kind (the rule's query is then NULL)
        RAISE EXCEPTION 'two rules and a kind are required (got NULL)' USING ERRCODE = '22004',
            HINT = 'kenbun.segment_compare(a, b, kind) compares two rules; segment_compare(name_a, name_b) two saved segments';
    END IF;
    RETURN QUERY EXECUTE format($q$
        SELECT COALESCE(x.mid, y.mid)::text,
               CASE WHEN y.mid IS NULL THEN 'only_a' WHEN x.mid IS NULL THEN 'only_b' ELSE 'both' END
          FROM (%s) AS x FULL JOIN (%s) AS y ON x.mid = y.mid
         ORDER BY COALESCE(x.mid, y.mid)
    $q$, x, y);
END $$;

CREATE OR REPLACE FUNCTION kenbun._segment(name text)
RETURNS kenbun.segments LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
BEGIN
    PERFORM kenbun._load_hooks();  -- the hint of a permission error below (hooks.rs)
    SELECT * INTO seg FROM kenbun.segments s WHERE s.name = _segment.name;
    IF seg.id IS NULL THEN
        RAISE EXCEPTION 'segment "%" does not exist', name USING ERRCODE = '42704',
            HINT = 'the saved segments are listed in kenbun.segments';
    END IF;
    RETURN seg;
END $$;

DROP FUNCTION kenbun._override(text, text[], boolean);


CREATE OR REPLACE FUNCTION kenbun._override(name text, ids text[], include boolean, by_role name)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
    keys text[];
    had boolean;
    n bigint;
BEGIN
    PERFORM kenbun._lock_definitions();
    seg := kenbun._segment(name);
    IF seg.type = 'static' THEN
        RAISE EXCEPTION 'segment "%" is static: overrides apply to dynamic segments', name USING ERRCODE = '0A000',
            HINT = 'add or remove its members with kenbun.segment_add or kenbun.segment_remove';
    END IF;
    keys := kenbun._member_keys(seg, ids);
    had := EXISTS (SELECT 1 FROM kenbun.member_overrides o WHERE o.segment_id = seg.id);
    -- the first override or (maybe) the last one gone recompiles the segment, which locks the bound
    -- tables: take that lock first (after row locks it could deadlock with a writer)
    PERFORM kenbun._lock_members(seg, keys, NOT had OR include IS NULL);
    IF include IS NULL THEN
        DELETE FROM kenbun.member_overrides o WHERE o.segment_id = seg.id AND o.member_id = ANY (keys);
    ELSE
        INSERT INTO kenbun.member_overrides AS o (segment_id, member_id, include, created_by)
        SELECT seg.id, k, include, _override.by_role FROM pg_catalog.unnest(keys) k ORDER BY k
        ON CONFLICT (segment_id, member_id) DO UPDATE
            SET include = EXCLUDED.include, created_at = pg_catalog.now(), created_by = _override.by_role
          WHERE o.include IS DISTINCT FROM EXCLUDED.include;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF had <> EXISTS (SELECT 1 FROM kenbun.member_overrides o WHERE o.segment_id = seg.id) THEN
        -- the first override, or the last one gone: compile the rule with (without) the overrides'
        -- wrapper, here and in the segments that use it. Nobody's membership changes by that alone.
        PERFORM pg_catalog.set_config('kenbun.membership_kept', 'on', true);
        UPDATE kenbun.segments s SET rule = s.rule WHERE s.id = seg.id;
        PERFORM pg_catalog.set_config('kenbun.membership_kept', 'off', true);
    END IF;
    IF seg.active THEN
        PERFORM kenbun._recompute(seg.id, 'manual', keys);
    END IF;
    PERFORM kenbun._recompute_cascade(seg.id, 'manual', false);
    RETURN n;
END $$;

CREATE OR REPLACE FUNCTION kenbun.segment_include(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, true, CURRENT_USER);
$$;

CREATE OR REPLACE FUNCTION kenbun.segment_exclude(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, false, CURRENT_USER);
$$;

CREATE OR REPLACE FUNCTION kenbun.segment_clear_override(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, NULL, CURRENT_USER);
$$;

ALTER FUNCTION kenbun._override(text, text[], boolean, name) SECURITY DEFINER;
REVOKE ALL ON FUNCTION kenbun._override(text, text[], boolean, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._override(text, text[], boolean, name) TO kenbun_admin;


CREATE OR REPLACE FUNCTION kenbun._check_key(kind text, key text, arg text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record := kenbun._bound(kind);
BEGIN
    IF key IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT $1::%s', b.keytype) USING key;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION '% % is not a % key: the key of % is of type %', arg, pg_catalog.quote_literal(key), kind, b.tbl, b.keytype
            USING ERRCODE = '22P02', HINT = pg_catalog.format('pass a value of %s.%I, as text or as it is', b.tbl, b.key);
    END;
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
    PERFORM kenbun._check_key(seg.kind, after, 'after');
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

CREATE OR REPLACE FUNCTION kenbun.lead_segments(lead_id text)
RETURNS TABLE (segment text, entered_at timestamptz) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record := kenbun._bound('lead');
BEGIN
    PERFORM kenbun._check_key('lead', lead_id, 'lead_id');
    RETURN QUERY EXECUTE format($q$
        SELECT s.name, m.entered_at FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id
         WHERE m.lead_id = $1::%s ORDER BY s.name
    $q$, b.keytype) USING lead_id;
END $$;

CREATE OR REPLACE FUNCTION kenbun.lead_segments(lead_id anyelement)
RETURNS TABLE (segment text, entered_at timestamptz) LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM kenbun.lead_segments(lead_segments.lead_id::text);
$$;

CREATE OR REPLACE FUNCTION kenbun.lead_history(lead_id anyelement, since timestamptz DEFAULT NULL)
RETURNS TABLE (changed_at timestamptz, segment_id bigint, segment text, change text, reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM kenbun.lead_history(lead_history.lead_id::text, lead_history.since);
$$;

-- CREATE OR REPLACE keeps no SECURITY DEFINER: as in privileges.sql
ALTER FUNCTION kenbun._catalog_changed(boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._ensure_members(text) SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;
-- the membership tables and views of the kinds bound already
SELECT kenbun._comment_members(k) FROM (VALUES ('lead'), ('account')) v(k);


-- Every public object's documentation: what it does, what it returns, which SQLSTATEs it raises, and an
-- example that runs on the demo database. docs/reference.md is generated from these comments
-- (scripts/reference.py, `make docs`); `make test` runs every example and checks the reference is current.
-- The membership tables and their views are created when a table is bound: _ensure_members comments them.

COMMENT ON SCHEMA kenbun IS 'kenbun segments: rule-based lead and account segments kept true by the database. The schema holds kenbun''s catalog (bindings, fields, levels, segments), the membership tables and their views, the change log and every kenbun function. It is a member of the extension (the extension itself is installed in pg_catalog), so DROP EXTENSION kenbun CASCADE also drops what kenbun generated in it when tables were bound (membership tables, their views, trigger functions, and through those kenbun''s triggers on the bound tables). USAGE is granted to PUBLIC; the tables are readable by kenbun_reader and written by kenbun (definitions by kenbun_admin).';
COMMENT ON TYPE kenbun.segment_rule IS 'A segment rule: a JSON document in kenbun''s rule language (groups all/any/not, field, level, account, event, leads, sequence and segment conditions; see kenbun.rule_schema() and the README). Its text form is the rule''s canonical JSON (fixed key order, no spaces). Input checks the structure, not names: keys, operators, value shapes, intervals and dates, and the limits (32 levels of nesting, 2,000 conditions, 1 MB of text); field, level and segment names, value types, time zones and regular expressions are checked when the rule is compiled (kenbun.compile, segment_count, INSERT into kenbun.segments …). Input errors: 22P02 the text is not JSON (or contains \u0000, or is not UTF-8); 22023 unknown keys or operators, wrong shapes, empty lists; 22007 a bad interval or date; 54000 over the limits. Casts from jsonb and json (WITH INOUT, AS ASSIGNMENT) and to jsonb (AS ASSIGNMENT).';
COMMENT ON CAST (jsonb AS kenbun.segment_rule) IS 'Assignment cast WITH INOUT: the jsonb''s text goes through kenbun.segment_rule''s input, so it is checked exactly like text (22P02, 22023, 22007, 54000) and stored in canonical form. Applies in INSERT/UPDATE (a jsonb into kenbun.segments.rule) and PL/pgSQL assignments; a function argument needs an explicit ::kenbun.segment_rule (otherwise 42883).';
COMMENT ON CAST (json AS kenbun.segment_rule) IS 'Assignment cast WITH INOUT: the json''s text goes through kenbun.segment_rule''s input, so it is checked exactly like text (22P02, 22023, 22007, 54000) and stored in canonical form. A function argument needs an explicit ::kenbun.segment_rule.';
COMMENT ON CAST (kenbun.segment_rule AS jsonb) IS 'Assignment cast with kenbun.segment_rule_to_jsonb: the rule as a jsonb document, for the jsonb operators (->, #>, jsonb_pretty). Never fails.';
COMMENT ON TABLE kenbun.bindings IS 'The application tables kenbun reads: one row per kind (lead, account, event). Written by kenbun.bind_leads, bind_accounts, bind_events and unbind (kenbun_admin; write it only through them: they check the table, its key and the caller''s SELECT and TRIGGER privileges, and regenerate membership tables and triggers). Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows.';
COMMENT ON COLUMN kenbun.bindings.kind IS 'lead, account or event; the primary key: one bound table per kind.';
COMMENT ON COLUMN kenbun.bindings.relid IS 'The bound application table (an ordinary or partitioned table).';
COMMENT ON COLUMN kenbun.bindings.key_column IS 'Leads and accounts: the key column (bigint, integer, uuid or text); its values are the member ids. NULL for events.';
COMMENT ON COLUMN kenbun.bindings.account_column IS 'Leads: the column holding the lead''s account key (account_key of bind_leads), used by account conditions. NULL when leads have no account (account conditions then fail with 55000), and for the other kinds.';
COMMENT ON COLUMN kenbun.bindings.lead_column IS 'Events: the column holding the lead''s key (lead_key of bind_events). NULL for the other kinds.';
COMMENT ON COLUMN kenbun.bindings.type_column IS 'Events: the column holding the event type that event conditions match ("type"). NULL for the other kinds.';
COMMENT ON COLUMN kenbun.bindings.time_column IS 'Events: the event time column (timestamptz, timestamp or date) that within, first_within, stopped and sequences read. NULL for the other kinds.';
COMMENT ON COLUMN kenbun.bindings.metadata_column IS 'Events: the jsonb column whose paths (metadata.url) event where-rules read. NULL when the events have none (metadata_column => NULL), and for the other kinds.';
COMMENT ON COLUMN kenbun.bindings.bound_at IS 'When the kind was bound or last re-bound.';
COMMENT ON TABLE kenbun.change_consumers IS 'Named consumers of kenbun.membership_changes: one row per consumer, with its position in the change log (written by kenbun.register_consumer, consume_changes and drop_consumer, which run as the extension''s owner; do not write it). prune_changes keeps every change a consumer has not consumed. Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows, so positions survive a restore.';
COMMENT ON COLUMN kenbun.change_consumers.name IS 'The consumer''s name (not empty, at most 255 characters).';
COMMENT ON COLUMN kenbun.change_consumers.position IS 'The id of the last change consumed (or skipped): consume_changes returns the changes after it (maintained by kenbun).';
COMMENT ON COLUMN kenbun.change_consumers.created_at IS 'When the consumer was registered (maintained by kenbun).';
COMMENT ON COLUMN kenbun.change_consumers.updated_at IS 'When the position last moved (maintained by kenbun).';
COMMENT ON TABLE kenbun.fields IS 'Named, typed fields over a column or a JSON path: one row per (kind, name). Written by kenbun.map_field and unmap_field (kenbun_admin; write it only through them: map_field checks the path, the type and the caller''s SELECT privilege, and recompiles every segment). Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows.';
COMMENT ON COLUMN kenbun.fields.kind IS 'lead, account or event: the bound table the field reads.';
COMMENT ON COLUMN kenbun.fields.name IS 'The field''s name in rules ({"field": name}); not empty. A mapped field wins over a column of the same name.';
COMMENT ON COLUMN kenbun.fields.path IS 'A column name, or a jsonb column followed by keys, separated by dots (attributes.plan).';
COMMENT ON COLUMN kenbun.fields.type IS 'The built-in type the value is cast to (text, numeric, bigint, boolean, date, timestamptz, jsonb, …); decides which operators apply and how values compare.';
COMMENT ON TABLE kenbun.levels IS 'Ordered tiers over a numeric field (engagement: Cold, Warm, Hot, On Fire over score): one row per level. Written by kenbun.define_levels and drop_levels (kenbun_admin; write it only through them: define_levels checks the tiers, the field and the caller''s SELECT privilege, and recompiles every segment). Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows.';
COMMENT ON COLUMN kenbun.levels.name IS 'The level''s name in rules ({"level": name}); not empty.';
COMMENT ON COLUMN kenbun.levels.field IS 'The numeric field the tiers are over (a column, mapped field or JSON path); a rule reads it in its own kind (a lead rule the lead''s, an account rule the account''s).';
COMMENT ON COLUMN kenbun.levels.tiers IS 'JSON array of {"name": text, "min": number} from the lowest tier to the highest, min strictly increasing: a value belongs to the last tier whose min it reaches; a missing value or one below the first min is in no tier.';
COMMENT ON TABLE kenbun.member_overrides IS 'Manual overrides of dynamic segments: one row per (segment, member) kept in (include) or out (exclude) whatever the rule says (maintained by kenbun.segment_include, segment_exclude and segment_clear_override, kenbun_admin; do not write it: the segment''s compiled rule must be rebuilt with its overrides). Deleting a segment deletes its overrides. Listed by the view kenbun.segment_overrides; readable by kenbun_reader. Extension configuration: pg_dump dumps its rows.';
COMMENT ON COLUMN kenbun.member_overrides.segment_id IS 'The dynamic segment (kenbun.segments.id) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.member_overrides.member_id IS 'The member''s key as text, in its canonical form (the key cast to text) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.member_overrides.include IS 'true: kept in the segment (segment_include); false: kept out (segment_exclude) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.member_overrides.created_at IS 'When the override was set or last switched between include and exclude (maintained by kenbun).';
COMMENT ON COLUMN kenbun.member_overrides.created_by IS 'The role that called segment_include or segment_exclude (its CURRENT_USER; before 0.7.0 the extension''s owner was recorded).';
COMMENT ON TABLE kenbun.membership_changes IS 'Append-only log of every enter and exit: one row per member, segment and change (written by kenbun in the transaction that changes membership; do not write it). Also sent by NOTIFY kenbun_membership. Read it with kenbun.changes_since or consume_changes (which never skip a change that commits late), trim it with prune_changes. Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows and sequence.';
COMMENT ON COLUMN kenbun.membership_changes.id IS 'Identity, increasing in the order the changes were logged (not the commit order: use changes_since to page safely) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.segment_id IS 'The segment (kenbun.segments.id); no foreign key: the row stays when the segment is deleted (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.kind IS 'lead or account (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.member_id IS 'The member''s key as text (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.change IS 'enter or exit (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.reason IS 'Why: initial (insert, re-activation, snapshot, a static segment''s first fill), rule_change, data_change, refresh, repair, deactivate (also a deleted segment) or manual (segment_add/segment_remove, overrides, and what they change in the segments that use the segment) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.changed_at IS 'When it was logged: now() of the logging transaction (its start time) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.membership_changes.txid IS 'The id (xid8) of the transaction that logged it: the changes of one transaction share it (maintained by kenbun).';
COMMENT ON TABLE kenbun.segment_builds IS 'Batched fills and re-evaluations in progress: one row per segment whose status is building (maintained by kenbun: written by definition changes over large tables, kenbun.segment_build and the *_concurrently procedures, and deleted when the build finishes; do not write it). See kenbun.segment_progress. Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows, so a restored database resumes the build.';
COMMENT ON COLUMN kenbun.segment_builds.segment_id IS 'The segment being built (kenbun.segments.id) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.reason IS 'What the build does, and the reason its changes are logged with: initial, rule_change, refresh or repair (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.after_key IS 'The last member key done, as text (NULL: none yet); a re-run resumes after it (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.rows_done IS 'Rows of the bound table processed so far (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.rows_total IS 'Rows of the bound table when the build started (the planner''s estimate when there is one) (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.started_at IS 'When the build started, or started again after a rule change (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.updated_at IS 'When the last batch committed or failed (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.entered IS 'Members the build has added so far (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.exited IS 'Members the build has removed so far (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.done IS 'true once the last batch is done and only marking the segment ready is left (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segment_builds.last_error IS 'The error of the last failed batch, as SQLSTATE: message; NULL when none (maintained by kenbun).';
COMMENT ON VIEW kenbun.segment_overrides IS 'Every manual override of a dynamic segment, by segment name: kenbun.member_overrides joined to kenbun.segments, one row per (segment, member). Read-only: set overrides with kenbun.segment_include, segment_exclude and segment_clear_override. Readable by kenbun_reader.';
COMMENT ON COLUMN kenbun.segment_overrides.segment IS 'The segment''s name.';
COMMENT ON COLUMN kenbun.segment_overrides.kind IS 'lead or account.';
COMMENT ON COLUMN kenbun.segment_overrides.member_id IS 'The member''s key as text, in its canonical form.';
COMMENT ON COLUMN kenbun.segment_overrides.override IS 'include (kept in whatever the rule says) or exclude (kept out).';
COMMENT ON COLUMN kenbun.segment_overrides.created_at IS 'When the override was set or last switched.';
COMMENT ON COLUMN kenbun.segment_overrides.created_by IS 'The role that set the override (kenbun.member_overrides.created_by).';
COMMENT ON VIEW kenbun.segment_progress IS 'Every segment''s status and, while it is building, how far the batched build is: kenbun.segments left-joined to kenbun.segment_builds, one row per segment. Read-only. Readable by kenbun_reader.';
COMMENT ON COLUMN kenbun.segment_progress.segment_id IS 'The segment''s id.';
COMMENT ON COLUMN kenbun.segment_progress.name IS 'The segment''s name.';
COMMENT ON COLUMN kenbun.segment_progress.kind IS 'lead or account.';
COMMENT ON COLUMN kenbun.segment_progress.status IS 'ready, or building (membership being filled or re-evaluated by CALL kenbun.segment_build()).';
COMMENT ON COLUMN kenbun.segment_progress.operation IS 'What the build does: initial, rule_change, refresh or repair; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.rows_done IS 'Rows of the bound table processed so far; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.rows_total IS 'Rows of the bound table when the build started (an estimate); NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.percent IS 'rows_done of rows_total in percent, one decimal (100 once the last batch is done); NULL when no build is recorded or rows_total is 0.';
COMMENT ON COLUMN kenbun.segment_progress.entered IS 'Members the build has added so far; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.exited IS 'Members the build has removed so far; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.started_at IS 'When the build started; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.updated_at IS 'When the last batch committed or failed; NULL when no build is recorded.';
COMMENT ON COLUMN kenbun.segment_progress.last_error IS 'The error of the last failed batch (SQLSTATE: message); NULL when none.';
COMMENT ON TABLE kenbun.segments IS 'Saved segments: one row per segment. Written by the user (kenbun_admin): INSERT, UPDATE and DELETE maintain membership (compile the rule, fill, diff, empty, cascade to the segments that use it; a bad rule rejects the statement with the compiler''s error); the columns marked maintained by kenbun are set by kenbun (do not write them). TRUNCATE is refused. Readable by kenbun_reader. Extension configuration: pg_dump dumps its rows and sequence; see the README.';
COMMENT ON COLUMN kenbun.segments.id IS 'Identity (GENERATED ALWAYS).';
COMMENT ON COLUMN kenbun.segments.name IS 'Unique, not empty, at most 255 characters (22001). Cannot be renamed while other segments reference it (2BP01).';
COMMENT ON COLUMN kenbun.segments.kind IS 'lead or account: what the members are. Cannot change (0A000).';
COMMENT ON COLUMN kenbun.segments.description IS 'Free text; NULL: none.';
COMMENT ON COLUMN kenbun.segments.active IS 'true (the default): membership is filled and maintained; false empties it and stops maintenance ({"segment": …} references still apply its rule). A static segment cannot be inactive (0A000).';
COMMENT ON COLUMN kenbun.segments.rule IS 'The rule (kenbun.segment_rule). Required for a dynamic segment (23502 otherwise); for a static one optional, used once to fill it when it is created. kenbun writes the time zone in effect into its calendar conditions.';
COMMENT ON COLUMN kenbun.segments.refresh_every IS 'How often refresh_due refreshes a time-dependent segment (> 0); set to 1 hour when NULL and the rule is time-dependent; ignored (NULL by default) for segments that are not time-dependent.';
COMMENT ON COLUMN kenbun.segments.last_refreshed_at IS 'When membership was last computed from the rule (a fill, rule change, activation or refresh); refresh_due compares it with refresh_every and boundaries. NULL for static segments (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.created_at IS 'When the segment was created (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.updated_at IS 'When the row last changed (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.compiled_sql IS 'The rule compiled to SQL, with its overrides (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.time_dependent IS 'Whether the rule changes as time passes (within_last, in_period, event within …), so that refresh_due must refresh it (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.reads IS 'What the rule reads, as a JSON array of [kind, column] pairs (and [kind, key, "membership"] for lists): the writes that re-evaluate it (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.depends_on IS 'Segments this rule references directly (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.status IS 'ready, or building: membership is being filled or re-evaluated in batches by CALL kenbun.segment_build(); progress in kenbun.segment_progress (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.type IS 'dynamic (the default): membership follows the rule (with manual overrides, kenbun.segment_include/segment_exclude); static: a hand-kept list (kenbun.segment_add/segment_remove) that maintenance never changes, except that a deleted row leaves it. A static segment''s rule, if any, filled it once when it was created. Set on INSERT; cannot change (0A000).';
COMMENT ON COLUMN kenbun.segments.boundaries IS 'The calendar periods the rule uses, as [unit, time zone] pairs: refresh_due refreshes the segment at the start of each such period, not only every refresh_every (maintained by kenbun).';

COMMENT ON FUNCTION kenbun.bind_accounts(regclass, name) IS
'Binds the application''s account table, keyed by column key (default id); re-binding replaces the old binding and recompiles and recomputes every active segment.
Returns: void.
Errors: 22004 tbl or key is NULL; 42809 tbl is not an ordinary or partitioned table; 42703 key is not a column of tbl (the hint lists its columns); 42804 the key column is not bigint, integer, uuid or text; 55000 tbl is already bound as another kind; 42501 not kenbun_admin, or the caller lacks SELECT and TRIGGER on tbl; 0A000 not in a READ COMMITTED transaction; 23505 (from the recompute) the key column has duplicate values while account segments exist; 42883 (PostgreSQL''s, from the recompute) the key''s type differs from the leads'' account_key type; any error of a segment that no longer compiles against the new binding (the change is rolled back).
Example: SELECT kenbun.bind_accounts(''app.accounts'', key => ''id'');';
COMMENT ON FUNCTION kenbun.bind_events(regclass, name, name, name, name) IS
'Binds the application''s event table: lead_key (default lead_id) names the lead, type_column (default type) the event type, time_column (default occurred_at) when it happened, metadata_column (default metadata; NULL if there is none) its jsonb details; re-binding replaces the old binding and recompiles and recomputes every active segment.
Returns: void.
Errors: 22004 tbl, lead_key, type_column or time_column is NULL; 42809 tbl is not an ordinary or partitioned table; 42703 a named column does not exist (the hint lists the columns); 42804 lead_key is not bigint, integer, uuid or text, time_column is not timestamptz, timestamp or date, or metadata_column is not jsonb; 55000 tbl is already bound as another kind; 42501 not kenbun_admin, or the caller lacks SELECT and TRIGGER on tbl; 0A000 not in a READ COMMITTED transaction; 42883 (PostgreSQL''s, from the recompute) lead_key''s type differs from the leads'' key type while segments use events; any error of a segment that no longer compiles against the new binding (the change is rolled back).
Example: SELECT kenbun.bind_events(''app.events'', lead_key => ''lead_id'', type_column => ''type'', time_column => ''occurred_at'', metadata_column => ''metadata'');';
COMMENT ON FUNCTION kenbun.bind_leads(regclass, name, name) IS
'Binds the application''s lead table, keyed by column key (default id), with account_key naming the lead''s account (default NULL: no account conditions); re-binding replaces the whole old binding, account_key included, and recompiles and recomputes every active segment.
Returns: void.
Errors: 22004 tbl or key is NULL; 42809 tbl is not an ordinary or partitioned table; 42703 key or account_key is not a column of tbl (the hint lists its columns); 42804 key or account_key is not bigint, integer, uuid or text; 55000 tbl is already bound as another kind, or (from the recompile) account_key is left out while segments use account conditions; 42501 not kenbun_admin, or the caller lacks SELECT and TRIGGER on tbl; 0A000 not in a READ COMMITTED transaction; 23505 (from the recompute) the key column has duplicate values while lead segments exist; 42883 (PostgreSQL''s, from the recompute) key''s or account_key''s type differs from the events'' lead_key or the accounts'' key type; any other error of a segment that no longer compiles against the new binding (the change is rolled back).
Example: SELECT kenbun.bind_leads(''app.leads'', key => ''id'', account_key => ''account_id'');';
COMMENT ON FUNCTION kenbun.changes_since(bigint, integer) IS
'Reads the change log: up to lim (1..100000, default 1000) committed changes with id > after_id, in id order, never one that a transaction still open could precede, so passing the id of the last change read gets the next ones with none skipped; waits for transactions that logged changes and are still open (kenbun.changes_max_wait, default 1 s), then returns no rows with a NOTICE naming them. A transaction does not get its own uncommitted changes, nor any after them.
Returns: SETOF kenbun.membership_changes (id, segment_id, kind, member_id, change, reason, changed_at, txid), in id order.
Errors: 22023 after_id is NULL, lim is NULL or outside 1..100000, or kenbun.changes_max_wait is not a non-negative interval; 0A000 not in a READ COMMITTED transaction, or on a standby; 55000 kenbun.membership_changes_id_seq caches more than 1 id; 42501 not kenbun_reader.
Example: SELECT id, segment_id, member_id, change, reason FROM kenbun.changes_since(0, lim => 5);';
COMMENT ON FUNCTION kenbun.compile(kenbun.segment_rule, text) IS 'Compiles a rule for kind ''lead'' (the default) or ''account'' to the boolean SQL expression it means over the bound table, aliased l (leads) or a (accounts); reads only kenbun''s catalog (cached per backend), not the table.
Returns: text, the SQL expression (two-valued: never NULL for any row).
Errors: 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader).
Example: SELECT kenbun.compile(''{"all":[{"field":"country","op":"eq","value":"US"},{"level":"engagement","op":"gte","value":"Warm"}]}'');';
COMMENT ON FUNCTION kenbun.consume_changes(text, integer) IS
'Returns a named consumer''s next changes (at most lim, 1..100000, default 1000, in id order) after its position and moves the position past them in the same transaction, so a rollback returns them again; workers of one consumer take turns (its row is locked FOR UPDATE), so each change goes to one of them once. Same order guarantee as changes_since.
Returns: SETOF kenbun.membership_changes (id, segment_id, kind, member_id, change, reason, changed_at, txid), in id order.
Errors: 22023 consumer is NULL or empty, lim is NULL or outside 1..100000, or kenbun.changes_max_wait is not a non-negative interval; 42704 no such consumer (the hint gives the register_consumer call); 0A000 not in a READ COMMITTED transaction, or on a standby; 55000 kenbun.membership_changes_id_seq caches more than 1 id; 42501 not kenbun_reader.
Example: SELECT kenbun.register_consumer(''crm_sync'', from_now => false); SELECT id, member_id, change, reason FROM kenbun.consume_changes(''crm_sync'', lim => 3);';
COMMENT ON FUNCTION kenbun.create_publication(text) IS
'Creates publication name (default kenbun_changes) of the inserts into kenbun.membership_changes, for logical replication or decoding (needs wal_level = logical); adds the table again to such a publication left empty by DROP EXTENSION or a restore, and does nothing (NOTICE) when the publication already contains the table.
Returns: void.
Errors: 22023 name is NULL, empty or longer than 63 bytes; 42710 a publication of that name exists that is not an empty insert-only publication owned by kenbun''s owner; 42501 not kenbun_admin.
Example: SELECT kenbun.create_publication(''kenbun_changes'');';
COMMENT ON FUNCTION kenbun.define_levels(text, text, jsonb) IS
'Defines (or replaces) level name: ordered tiers over a numeric field, each {"name": <string>, "min": <number>}, listed from lowest to highest with min strictly increasing; a value below the lowest min is in no tier. Every segment is recompiled.
Returns: void.
Errors: 22023 name or field is NULL or empty, tiers is not a non-empty JSON array, a tier is not exactly {"name", "min"} with a string and a number, a tier name is empty or repeated, or a min is not greater than the previous one; 42703 field is not a field of the bound lead or account table (with a did-you-mean hint); 42804 field is not numeric; 55000 no lead or account table is bound; 42501 not kenbun_admin, or the caller may not SELECT a column the field reads; 0A000 not in a READ COMMITTED transaction; any error of a segment that no longer compiles with the new tiers, e.g. 22023 a tier it uses is gone (the change is rolled back).
Example: SELECT kenbun.define_levels(''intent'', ''score'', ''[{"name":"Low","min":0},{"name":"Medium","min":40},{"name":"High","min":80}]'');';
COMMENT ON FUNCTION kenbun.drift_report() IS 'Reports the drift of every saved segment at once (as kenbun.segment_drift counts it), then membership rows of segments that do not exist (written behind kenbun''s back), as "(no segment <id>)" with all of them unexpected.
Returns: TABLE(segment text, missing bigint, unexpected bigint): per segment by name, the members the rule gives that the membership table lacks (missing) and the reverse (unexpected); all 0 when there is no drift.
Errors: 42501 not kenbun_reader, or not allowed to read a bound table.
Example: SELECT * FROM kenbun.drift_report() WHERE missing > 0 OR unexpected > 0;';
COMMENT ON FUNCTION kenbun.drop_consumer(text) IS
'Drops a named consumer of the change log; prune_changes no longer keeps changes for it.
Returns: boolean, true if the consumer existed.
Errors: 22023 name is NULL or empty; 42501 not kenbun_admin.
Example: SELECT kenbun.register_consumer(''crm_sync''); SELECT kenbun.drop_consumer(''crm_sync'');';
COMMENT ON FUNCTION kenbun.drop_levels(text) IS
'Drops level name and recompiles every segment.
Returns: boolean, true if the level existed.
Errors: 42704 a segment still uses the level (the compiler''s error, prefixed with segment "<name>" no longer compiles:; the drop is rolled back); 0A000 not in a READ COMMITTED transaction; 42501 not kenbun_admin.
Example: SELECT kenbun.define_levels(''intent'', ''score'', ''[{"name":"Low","min":0},{"name":"High","min":80}]''); SELECT kenbun.drop_levels(''intent'');';
COMMENT ON FUNCTION kenbun.export_definitions() IS 'Exports field mappings, levels and segments (in dependency order) as one JSON document for kenbun.import_definitions, with the members of static segments ("members", keys as text) and the overrides of dynamic ones ("overrides": {"include": […], "exclude": […]}). Bindings and the membership of dynamic segments are not included (bind the tables in the target first; membership follows from the rules).
Returns: jsonb, {"format":"kenbun-definitions","version":1,"fields":[…],"levels":[…],"segments":[…]}.
Errors: 42501 not kenbun_reader.
Example: SELECT jsonb_pretty(kenbun.export_definitions() -> ''levels'');';
COMMENT ON FUNCTION kenbun.import_definitions(jsonb, boolean) IS 'Imports a document made by kenbun.export_definitions, all or nothing: validates the whole document first (shape, types, every rule), then creates (or, with replace => true, replaces) the field mappings, levels and segments; a static segment gets exactly the listed members, a dynamic one exactly the listed overrides.
Returns: integer, how many definitions (fields, levels, segments) it created or replaced.
Errors: 22023 invalid document, with its JSON path (a rule''s own error is reported this way too, with its message); 42710 definitions of those names exist and replace is false (hint: replace => true), or a segment exists with another kind or type; 23503 a member or override key not in the bound table; 22P02 a key not of the key''s type; the errors of map_field, define_levels and INSERT into kenbun.segments (42703, 42704, 42804, 2201B, 55000, …) for a definition that does not fit this database; 42501 not kenbun_admin, or not allowed to read a column a definition reads.
Example: SELECT kenbun.import_definitions(''{"format":"kenbun-definitions","version":1,"segments":[{"name":"Canada","kind":"lead","rule":{"field":"country","op":"eq","value":"CA"}}]}'');';
COMMENT ON FUNCTION kenbun.lead_history(text, timestamp with time zone) IS 'Lists every enter and exit of one lead (lead_id: its key as text), oldest first, from the change log (as far back as kenbun.prune_changes kept it), optionally only since a time.
Returns: TABLE(changed_at timestamptz, segment_id bigint, segment text, change text, reason text): change is enter or exit, reason as in kenbun.membership_changes; segment is NULL for a segment deleted since.
Errors: 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.lead_history(''2'', since => now() - interval ''7 days'');';
COMMENT ON FUNCTION kenbun.lead_segments(text) IS 'Lists the segments a lead (lead_id: its key as text) is a member of now, by name, for routing; an unknown key gives no rows.
Returns: TABLE(segment text, entered_at timestamptz): the segment''s name and when the lead entered it.
Errors: 22P02 lead_id is not of the key''s type (kenbun''s message names the table and its key type); 55000 no lead table is bound; 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.lead_segments(''42'');';
COMMENT ON FUNCTION kenbun.map_field(text, text, text, regtype) IS
'Adds (or replaces) a named, typed field of kind (lead, account or event) over a column or a dotted path into a jsonb column (attributes.plan); the type is a cast applied when a rule reads it, and a mapped field wins over a column of the same name. Every segment is recompiled.
Returns: void.
Errors: 22023 kind is not lead, account or event, field is NULL or empty, or path is NULL, empty or has an empty element; 55000 no table is bound for kind; 22004 type is NULL; 42804 type is not a built-in type, the path goes into a column that is not jsonb, or (from the recompile) the new type does not fit how a segment uses the field; 42703 the path''s first element is not a column of the bound table (the hint lists its columns); 42501 not kenbun_admin, or the caller may not SELECT that column; 0A000 not in a READ COMMITTED transaction; any other error of a segment that no longer compiles (the change is rolled back).
Example: SELECT kenbun.map_field(''lead'', ''company_size'', ''attributes.company_size'', ''integer'');';
COMMENT ON FUNCTION kenbun.prune_changes(interval) IS
'Deletes the oldest changes of the log, in id order up to the first one not older than older_than (''0'': every change), never one a registered consumer has not consumed (a NOTICE names the consumers that held changes back); deletes in batches of 10,000 without blocking writers, and returns 0 with a NOTICE while another prune runs. For pg_cron: SELECT cron.schedule(''kenbun-prune'', ''17 3 * * *'', $$SELECT kenbun.prune_changes(''30 days'')$$).
Returns: bigint, the number of changes deleted.
Errors: 22023 older_than is NULL or negative; 42501 not kenbun_admin.
Example: SELECT kenbun.prune_changes(''30 days'');';
COMMENT ON FUNCTION kenbun.refresh_due() IS
'Refreshes (segment_refresh) every active time-dependent segment whose refresh_every has passed since its last refresh, or a calendar period of whose rule (this_month, ..., in its time zone) has started since; the synchronous twin of CALL kenbun.refresh_due_concurrently(), which a pg_cron job should prefer.
Returns: integer, the number of segments refreshed.
Errors: 0A000 not in a READ COMMITTED transaction; 42501 not kenbun_admin; any error of a segment''s evaluation.
Example: SELECT kenbun.refresh_due();';
COMMENT ON PROCEDURE kenbun.refresh_due_concurrently() IS
'refresh_due without blocking writers: refreshes every due time-dependent segment whose status is ready with segment_refresh_concurrently, each in batches of their own transactions. For pg_cron: CALL kenbun.refresh_due_concurrently().
Returns: nothing (a procedure: CALL it outside a transaction block).
Errors: 2D000 called inside a transaction block (invalid transaction termination); 0A000 default_transaction_isolation is not READ COMMITTED; 22023 kenbun.build_batch_rows or kenbun.build_batch_ms is invalid; 42501 not kenbun_admin; the SQLSTATE of a failing batch (the segment stays building, see segment_build).
Example: CALL kenbun.refresh_due_concurrently();';
COMMENT ON FUNCTION kenbun.register_consumer(text, boolean) IS
'Registers a named consumer of the change log (read with consume_changes): with from_now (the default) it gets the changes committed after this call returns (waiting for transactions that logged changes and are still open), otherwise every change still in the log. An existing consumer is kept as it is (NOTICE).
Returns: bigint, the consumer''s position (the id of the last change it has consumed or skipped).
Errors: 22023 name is NULL, empty or longer than 255 characters, or from_now is NULL; 55P03 from_now while transactions that logged changes stay open longer than kenbun.changes_max_wait; 0A000 from_now outside a READ COMMITTED transaction, or on a standby; 55000 kenbun.membership_changes_id_seq caches more than 1 id; 42501 not kenbun_admin.
Example: SELECT kenbun.register_consumer(''crm_sync''); SELECT kenbun.register_consumer(''warehouse'', from_now => false);';
COMMENT ON FUNCTION kenbun.rule_schema() IS 'Describes the rule language of this kenbun version as a JSON Schema (draft 2020-12; $id names the version): one $defs entry per construct and operator, with descriptions, for validating rules and building rule editors client-side. What it cannot express (field names and types, kinds, limits, regular expressions, time zones) is listed in its description and checked by the server. Immutable; callable by every role.
Returns: jsonb, the JSON Schema document.
Errors: none.
Example: SELECT kenbun.rule_schema() ->> ''$id'', jsonb_array_length(kenbun.rule_schema() #> ''{$defs,field_condition,allOf}'') AS operators;';
COMMENT ON FUNCTION kenbun.segment_add(text, anyarray) IS 'Adds members to a static segment like segment_add(text, text[]), with the keys in their own type (bigint[], integer[], uuid[], …), cast to text first.
Returns: bigint, how many of the keys were not members yet.
Errors: 42704 no such segment; 0A000 the segment is dynamic (hint: use segment_include/segment_exclude); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: INSERT INTO kenbun.segments (name, kind, type) VALUES (''Trade show leads'', ''lead'', ''static'');
SELECT kenbun.segment_add(''Trade show leads'', ARRAY[17, 42]::bigint[]);';
COMMENT ON FUNCTION kenbun.segment_add(text, text[]) IS 'Adds members (keys of the bound table, as text) to a static segment; each added member is logged with reason manual and sent by NOTIFY, and the segments that use it are re-evaluated in the same transaction. An untyped NULL or ''{}'' for ids is ambiguous between the two overloads (42725): write ARRAY[…] or cast it.
Returns: bigint, how many of the keys were not members yet.
Errors: 42704 no such segment; 0A000 the segment is dynamic (hint: use segment_include/segment_exclude); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: INSERT INTO kenbun.segments (name, kind, type) VALUES (''Trade show leads'', ''lead'', ''static'');
SELECT kenbun.segment_add(''Trade show leads'', ARRAY[''17'', ''42'', ''4711'']);';
COMMENT ON PROCEDURE kenbun.segment_build(text) IS
'Fills or re-evaluates, in batches of their own transactions, every segment whose status is building (or only the one named; nothing when it is not building), then marks each ready with a NOTICE of its entries and exits; resumable after a failure or cancellation. Progress is in kenbun.segment_progress. For pg_cron: SELECT cron.schedule(''kenbun-build'', ''* * * * *'', ''CALL kenbun.segment_build()'').
Returns: nothing (a procedure: CALL it outside a transaction block).
Errors: 42704 no segment of that name; 2D000 called inside a transaction block (invalid transaction termination); 22023 kenbun.build_batch_rows or kenbun.build_batch_ms is invalid; 0A000 default_transaction_isolation is not READ COMMITTED (raised when marking the segment ready); 42501 not kenbun_admin; the SQLSTATE of a failing batch, which is rolled back while the segment stays building with last_error set.
Example: CALL kenbun.segment_build();';
COMMENT ON FUNCTION kenbun.segment_clear_override(text, text[]) IS 'Removes the manual overrides of these members of a dynamic segment, so that its rule decides again; the membership changes this makes are logged with reason manual. Removing the segment''s last override recompiles it (briefly locking the bound tables like a rule change).
Returns: bigint, how many overrides were removed.
Errors: 42704 no such segment; 0A000 the segment is static (hint: use segment_add/segment_remove); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: SELECT kenbun.segment_include(''Hot US paid'', ARRAY[''17'']);
SELECT kenbun.segment_clear_override(''Hot US paid'', ARRAY[''17'']);';
COMMENT ON FUNCTION kenbun.segment_compare(kenbun.segment_rule, kenbun.segment_rule, text) IS 'Compares the rows matching two ad-hoc rules a and b of one kind (''lead'', the default, or ''account''), without saving anything; reads the bound table with the caller''s rights. Untyped literals choose the saved-segment overload: pass kind, or cast the rules to kenbun.segment_rule.
Returns: TABLE(only_a bigint, "both" bigint, only_b bigint, jaccard double precision): rows only matching a, matching both, only matching b, and the Jaccard index (NULL when neither matches anything).
Errors: 22004 a rule or the kind is NULL; 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_compare(a => ''{"field":"country","op":"eq","value":"US"}'', b => ''{"level":"engagement","op":"gte","value":"Hot"}'', kind => ''lead'');';
COMMENT ON FUNCTION kenbun.segment_compare(text, text) IS 'Compares the membership of two saved segments of the same kind (a and b, by name).
Returns: TABLE(only_a bigint, "both" bigint, only_b bigint, jaccard double precision): members only in a, in both, only in b, and the Jaccard index both / (only_a + both + only_b), NULL when both are empty. "both" is an SQL keyword: quote it.
Errors: 42704 no such segment; 22023 the segments are of different kinds; 55000 a segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview); 42501 not kenbun_reader.
Example: SELECT only_a, "both", only_b, jaccard FROM kenbun.segment_compare(''Hot US paid'', ''Decision makers'');';
COMMENT ON FUNCTION kenbun.segment_compare_members(kenbun.segment_rule, kenbun.segment_rule, text) IS 'Lists every row matching either of two ad-hoc rules a and b of one kind (''lead'', the default, or ''account''), ordered by key, with the side it is on, without saving anything; reads the bound table with the caller''s rights. Untyped literals choose the saved-segment overload: pass kind, or cast the rules.
Returns: TABLE(member_id text, side text): the row''s key as text, and only_a, both or only_b.
Errors: 22004 a rule or the kind is NULL; 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT side, count(*) FROM kenbun.segment_compare_members(a => ''{"field":"country","op":"eq","value":"US"}'', b => ''{"field":"plan","op":"eq","value":"pro"}'', kind => ''lead'') GROUP BY side ORDER BY side;';
COMMENT ON FUNCTION kenbun.segment_compare_members(text, text) IS 'Lists every member of either of two saved segments of the same kind (a and b, by name), ordered by key, with the side it is on.
Returns: TABLE(member_id text, side text): the member''s key as text, and only_a, both or only_b.
Errors: 42704 no such segment; 22023 the segments are of different kinds; 55000 a segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview); 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.segment_compare_members(''Hot US paid'', ''Decision makers'') WHERE side = ''both'' LIMIT 5;';
COMMENT ON FUNCTION kenbun.segment_copy(text, text) IS
'Copies a segment''s definition (kind, description, active, rule, refresh_every, type) under new_name: a dynamic copy''s membership is computed from the rule (manual overrides are not copied); a static copy gets the same members, and the rule that filled the original once.
Returns: bigint, the new segment''s id.
Errors: 42704 no segment of that name; 23505 a segment named new_name exists; 23514 new_name is empty; 22001 new_name is longer than 255 characters; 23502 new_name is NULL; 42501 not kenbun_admin, or the caller may not SELECT a column the rule reads; 0A000 not in a READ COMMITTED transaction.
Example: SELECT kenbun.segment_copy(''Hot US paid'', new_name => ''Hot US paid (copy)'');';
COMMENT ON FUNCTION kenbun.segment_count(kenbun.segment_rule, text) IS 'Counts the leads (kind ''lead'', the default) or accounts (''account'') that match a rule, without saving anything; reads the bound table with the caller''s rights (row-level security applies).
Returns: bigint, the number of matching rows.
Errors: 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT kenbun.segment_count(''{"field":"plan","op":"in","value":["pro","team"]}'');';
COMMENT ON FUNCTION kenbun.segment_diagnose(text, text) IS 'Shows, for each condition of a saved segment''s rule (rule_or_name: its name) or of an ad-hoc rule (rule JSON text, of kind ''lead'' by default or ''account''; kind is ignored for a saved segment), by JSON path, how many rows match it alone and how many are left after the preceding conditions of its group; a field condition that matches nothing gets hint rows (a field never set, or a value no row has, with the closest value that does). Reads the bound tables with the caller''s rights.
Returns: TABLE(path text, condition text, matches bigint, matches_with_previous bigint): a hint row has the condition''s path, the hint as condition, and NULL counts.
Errors: 42704 no such segment (with a did-you-mean hint); 0A000 the segment is static (a list, not a rule); 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_diagnose(''Hot USA leads'');';
COMMENT ON FUNCTION kenbun.segment_drift(text) IS
'Compares a segment''s membership table with what its rule gives over current data: members the table has but the rule does not give (unexpected), and the reverse (missing); every member of an inactive segment is unexpected, and a building segment''s rows not yet reached show as drift. Fix it with segment_repair.
Returns: TABLE(member_id text, problem text), problem being missing or unexpected (ordered by problem, then member_id); no rows when there is no drift.
Errors: 42704 no segment of that name; 55000 the segment''s kind is not bound; 42501 the caller may not read the membership table (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_drift(''Hot US paid'');';
COMMENT ON FUNCTION kenbun.segment_engagement(text, timestamp with time zone) IS 'Counts the events of a saved segment''s members since a time (default: 30 days ago), per event type; for an account segment, the events of the accounts'' leads.
Returns: TABLE(event_type text, members_with_event bigint, events bigint, events_per_member double precision), most events first; events_per_member divides by the segment''s size (members without events count too).
Errors: 42704 no such segment; 55000 the segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview), or no event table is bound; 42501 not kenbun_reader, or not allowed to read the bound tables.
Example: SELECT * FROM kenbun.segment_engagement(''Decision makers'', since => now() - interval ''7 days'');';
COMMENT ON FUNCTION kenbun.segment_exclude(text, text[]) IS 'Keeps members out of a dynamic segment whatever its rule says (an override, listed in kenbun.segment_overrides); the exits this makes are logged with reason manual, and segments that use it see it with its overrides. The segment''s first override recompiles it (briefly locking the bound tables like a rule change).
Returns: bigint, how many overrides were added or changed (an existing exclude counts 0).
Errors: 42704 no such segment; 0A000 the segment is static (hint: use segment_add/segment_remove); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: SELECT kenbun.segment_exclude(''Hot US paid'', ARRAY[''42'']);';
COMMENT ON FUNCTION kenbun.segment_explain(text, boolean) IS 'Prints the plan of a saved segment''s compiled query (EXPLAIN, or EXPLAIN ANALYZE when analyze is true, which runs it; analyze is a reserved word, so name it quoted, "analyze" => true, or pass it positionally), then index advice (a ready CREATE INDEX for JSON paths or event look-ups no index serves), its measured maintenance cost per changed row (the rule evaluated for a sample of 200 keys, as the triggers do) and whether it is time-dependent. Reads the bound tables with the caller''s rights.
Returns: TABLE(line text), one line per row.
Errors: 42704 no such segment (with a did-you-mean hint); 0A000 the segment is static (a list, not a rule); 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_explain(''Hot US paid'', "analyze" => true);';
COMMENT ON FUNCTION kenbun.segment_export(text) IS 'Returns every member of a saved segment with its row, ordered by key, for COPY or \copy; the rows are read with the caller''s rights (privileges and row-level security apply).
Returns: TABLE(member_id text, entered_at timestamptz, member jsonb): the member''s key as text, when it entered, and its row as jsonb.
Errors: 42704 no such segment; 55000 the segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview), or no table is bound for its kind; 42501 not kenbun_reader, or not allowed to read the bound table.
Example: COPY (SELECT member_id, member->>''email'' AS email FROM kenbun.segment_export(''Decision makers'') LIMIT 3) TO STDOUT WITH CSV HEADER;';
COMMENT ON FUNCTION kenbun.segment_history(text, interval, timestamp with time zone) IS 'Summarises a saved segment''s change log in buckets (default 1 day) from since (default 30 days ago) to now: the entries and exits in each bucket and the size at its end. As far back as kenbun.prune_changes kept the log: a pruned log undercounts size.
Returns: TABLE(bucket_start timestamptz, entered bigint, exited bigint, size bigint), oldest bucket first.
Errors: 42704 no such segment; 22023 bucket NULL or not positive, or since NULL or in the future; 54000 more than 100,000 buckets (hint: a larger bucket or a later since); 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.segment_history(''Hot US paid'', bucket => ''1 day'', since => now() - interval ''7 days'');';
COMMENT ON FUNCTION kenbun.segment_include(text, text[]) IS 'Keeps members in a dynamic segment whatever its rule says (an override, listed in kenbun.segment_overrides); the entries this makes are logged with reason manual, and segments that use it see it with its overrides. The segment''s first override recompiles it (briefly locking the bound tables like a rule change).
Returns: bigint, how many overrides were added or changed (an existing include counts 0).
Errors: 42704 no such segment; 0A000 the segment is static (hint: use segment_add/segment_remove); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: SELECT kenbun.segment_include(''Hot US paid'', ARRAY[''17'']);
SELECT * FROM kenbun.segment_overrides;';
COMMENT ON FUNCTION kenbun.segment_levels(text, text) IS 'Shows how the members of a saved segment spread over the tiers of a level (levels: the level''s name), read from the members'' rows in the bound table.
Returns: TABLE(tier text, members bigint): one row per tier from the lowest, then (none) for members with no value or one below the lowest tier.
Errors: 42704 no such segment or level (with a did-you-mean hint); 0A000 the segment is static; 55000 the segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview); 42809 the segment''s table does not have the level''s field (a level over the leads'' score, for an account segment); 42501 not kenbun_reader, or not allowed to read the bound table.
Example: SELECT * FROM kenbun.segment_levels(''Decision makers'', ''engagement'');';
COMMENT ON FUNCTION kenbun.segment_lint(kenbun.segment_rule, text) IS 'Checks a rule of kind ''lead'' (the default) or ''account'' for bad practice: contradictory conditions (error), redundant or duplicate ones, a regular expression where starts_with would do, lists of one value, time windows, JSON paths no index serves, references to inactive segments, and rules that match every row or none today. Reads the bound tables with the caller''s rights.
Returns: TABLE(severity text, path text, message text): severity error, warning or info, ordered by severity then JSON path; no rows for a clean rule.
Errors: 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_lint(''{"all":[{"field":"score","op":"gt","value":50},{"field":"score","op":"lt","value":10}]}'');';
COMMENT ON FUNCTION kenbun.segment_members(text, integer, text) IS 'Returns a page of a saved segment''s members with their rows, ordered by key: at most lim (default 100), after the key after (pass the last member_id of a page to get the next). Rows are read with the caller''s rights (privileges and row-level security apply).
Returns: TABLE(member_id text, entered_at timestamptz, member jsonb): the member''s key as text, when it entered, and its row as jsonb.
Errors: 42704 no such segment; 22023 lim NULL or negative; 22P02 after is not of the key''s type; 55000 the segment is inactive (hint: activate it, or preview its rule with kenbun.segment_preview), or no table is bound for its kind; 42501 not kenbun_reader, or not allowed to read the bound table.
Example: SELECT member_id, member->>''email'' AS email FROM kenbun.segment_members(''Hot US paid'', 5);
SELECT member_id FROM kenbun.segment_members(''Hot US paid'', 5, after => ''1000'');';
COMMENT ON FUNCTION kenbun.segment_preview(kenbun.segment_rule, text, integer) IS 'Returns the first lim (default 100) leads (kind ''lead'', the default) or accounts (''account'') that match a rule, ordered by key, without saving anything; reads the bound table with the caller''s rights (row-level security applies).
Returns: TABLE(member_id text, member jsonb): the key as text and the row as jsonb.
Errors: 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account; 22023 lim negative; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT member_id, member->>''email'' AS email FROM kenbun.segment_preview(''{"all":[{"field":"country","op":"eq","value":"US"},{"level":"engagement","op":"gte","value":"Hot"}]}'', lim => 5);';
COMMENT ON FUNCTION kenbun.segment_refresh(text) IS
'Recomputes a segment as a diff against current data (for time windows), then every active segment that uses it, logging the changes with reason refresh and setting last_refreshed_at; does nothing for an inactive segment. Holds a SHARE lock on the bound tables: prefer CALL kenbun.segment_refresh_concurrently(name) on large tables.
Returns: record (entered bigint, exited bigint), the members that entered and exited across all of them.
Errors: 42704 no segment of that name; 0A000 not in a READ COMMITTED transaction; 42501 not kenbun_admin; any error of a segment''s evaluation.
Example: SELECT * FROM kenbun.segment_refresh(''Pricing intent'');';
COMMENT ON PROCEDURE kenbun.segment_refresh_concurrently(text) IS
'segment_refresh without blocking writers: marks the segment and every active segment that uses it building, then re-evaluates them in batches of their own transactions (see segment_build), logging with reason refresh.
Returns: nothing (a procedure: CALL it outside a transaction block).
Errors: 42704 no segment of that name; 2D000 called inside a transaction block (invalid transaction termination); 0A000 default_transaction_isolation is not READ COMMITTED; 22023 kenbun.build_batch_rows or kenbun.build_batch_ms is invalid; 42501 not kenbun_admin; the SQLSTATE of a failing batch (the segment stays building, see segment_build).
Example: CALL kenbun.segment_refresh_concurrently(''Pricing intent'');';
COMMENT ON FUNCTION kenbun.segment_remove(text, anyarray) IS 'Removes members from a static segment like segment_remove(text, text[]), with the keys in their own type (bigint[], integer[], uuid[], …), cast to text first.
Returns: bigint, how many of the keys were members.
Errors: 42704 no such segment; 0A000 the segment is dynamic (hint: use segment_include/segment_exclude); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: INSERT INTO kenbun.segments (name, kind, type) VALUES (''Trade show leads'', ''lead'', ''static'');
SELECT kenbun.segment_add(''Trade show leads'', ARRAY[17, 42]::bigint[]);
SELECT kenbun.segment_remove(''Trade show leads'', ARRAY[42]::bigint[]);';
COMMENT ON FUNCTION kenbun.segment_remove(text, text[]) IS 'Removes members (keys of the bound table, as text) from a static segment; each removed member is logged with reason manual and sent by NOTIFY, and the segments that use it are re-evaluated in the same transaction. Keys must exist in the bound table even when they are not members. An untyped NULL or ''{}'' for ids is ambiguous between the two overloads (42725).
Returns: bigint, how many of the keys were members.
Errors: 42704 no such segment; 0A000 the segment is dynamic (hint: use segment_include/segment_exclude); 23503 a key not in the bound table (nothing changes); 22P02 a key not of the key''s type; 22004 ids NULL or containing NULL; 55000 no table is bound for the segment''s kind; 42501 not kenbun_admin.
Example: INSERT INTO kenbun.segments (name, kind, type) VALUES (''Trade show leads'', ''lead'', ''static'');
SELECT kenbun.segment_add(''Trade show leads'', ARRAY[''17'', ''42'']);
SELECT kenbun.segment_remove(''Trade show leads'', ARRAY[''42'']);';
COMMENT ON FUNCTION kenbun.segment_repair(text) IS
'Fixes drift (see segment_drift) of a segment and of every active segment that uses it, logging the changes with reason repair; an inactive segment is emptied. Holds a SHARE lock on the bound tables: prefer CALL kenbun.segment_repair_concurrently(name) on large tables.
Returns: record (entered bigint, exited bigint), the members that entered and exited across all of them.
Errors: 42704 no segment of that name; 0A000 not in a READ COMMITTED transaction; 42501 not kenbun_admin; any error of a segment''s evaluation.
Example: SELECT * FROM kenbun.segment_repair(''Hot US paid'');';
COMMENT ON PROCEDURE kenbun.segment_repair_concurrently(text) IS
'segment_repair without blocking writers: empties the segment if it is inactive, then re-evaluates it and every active segment that uses it in batches of their own transactions (see segment_build), logging with reason repair.
Returns: nothing (a procedure: CALL it outside a transaction block).
Errors: 42704 no segment of that name; 2D000 called inside a transaction block (invalid transaction termination); 0A000 default_transaction_isolation is not READ COMMITTED; 22023 kenbun.build_batch_rows or kenbun.build_batch_ms is invalid; 42501 not kenbun_admin; the SQLSTATE of a failing batch (the segment stays building, see segment_build).
Example: CALL kenbun.segment_repair_concurrently(''Hot US paid'');';
COMMENT ON FUNCTION kenbun.segment_rule_in(cstring) IS 'The input function of type kenbun.segment_rule (called by casts from text, json and jsonb and by rule literals): parses the rule JSON, checks its structure and limits (not names, value types, time zones or regular expressions, which compiling checks) and stores its canonical form.
Returns: kenbun.segment_rule, the rule in canonical form.
Errors: 22P02 not JSON, not UTF-8, or containing \u0000; 22023 unknown key or operator, wrong shape, empty list (with the JSON path and a hint); 22007 bad interval or date; 54000 more than 32 levels of nesting, 2,000 conditions or 1 MB of text.
Example: SELECT ''{ "op": "eq", "value": "US", "field": "country" }''::kenbun.segment_rule;';
COMMENT ON FUNCTION kenbun.segment_rule_out(kenbun.segment_rule) IS 'The output function of type kenbun.segment_rule: the rule''s canonical JSON text (fixed key order, no spaces), as a cast to text or psql shows it.
Returns: cstring, the canonical rule JSON.
Errors: none.
Example: SELECT rule::text FROM kenbun.segments WHERE name = ''Hot US paid'';';
COMMENT ON FUNCTION kenbun.segment_rule_to_jsonb(kenbun.segment_rule) IS 'Converts a rule to jsonb; the function of the assignment cast kenbun.segment_rule AS jsonb.
Returns: jsonb, the rule document.
Errors: none.
Example: SELECT kenbun.segment_rule_to_jsonb(rule) -> ''all'' -> 0 FROM kenbun.segments WHERE name = ''Hot US paid'';';
COMMENT ON FUNCTION kenbun.segment_snapshot(text, text) IS 'Freezes the current members of a saved segment as a new static segment new_name (described as a snapshot of it taken now); its members enter with reason initial. Runs as the extension''s owner.
Returns: bigint, the new segment''s id.
Errors: 42704 no such segment; 55000 the segment is inactive or still building (hint: activate it / CALL kenbun.segment_build()); 23505 new_name is taken; 23514 new_name is empty; 22001 new_name longer than 255 characters; 42501 not kenbun_admin.
Example: SELECT kenbun.segment_snapshot(''Hot US paid'', ''Hot US paid (frozen)'');';
COMMENT ON FUNCTION kenbun.segment_why(kenbun.segment_rule, text, text) IS 'Explains why a lead or account (member_id: its key as text; kind ''lead'', the default, or ''account'') does or does not match an ad-hoc rule: one row per node of the rule in document order with its two-valued truth for this member (as kenbun.compile computes it) and the value it compared. Reads the bound tables with the caller''s rights.
Returns: TABLE(path text, condition text, result boolean, value text): path is the JSON path, condition is indented two spaces per depth.
Errors: 22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits; 22023 kind is not lead or account, or no lead or account has that key; 22P02 member_id is not of the key''s type; 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_why(''{"all":[{"field":"industry","op":"eq","value":"SaaS"},{"field":"employees","op":"gte","value":150}]}'', ''1'', kind => ''account'');';
COMMENT ON FUNCTION kenbun.segment_why(text, text) IS 'Explains why a lead or account (member_id: its key as text) is or is not in a saved segment (segment: its name; rule JSON text instead is taken as an ad-hoc lead rule, as by the other overload). A first row (path "segment") says whether it is in the membership table, and its value why: "rule", "static list", "override: included" / "override: excluded", "inactive: no members", "building: membership may lag the rule", or drift. Then, unless the segment is static, one row per node of its rule in document order: result is the node''s two-valued truth for this member (as kenbun.compile computes it) and value what it compared (the field''s value as JSON, null when missing; a level''s value and tier; the number of matching events or leads; the account''s key; membership of a referenced segment; "k of n" for all/any). Reads the bound tables and membership with the caller''s rights.
Returns: TABLE(path text, condition text, result boolean, value text): path is the JSON path, condition is indented two spaces per depth.
Errors: 42704 no such segment (with a did-you-mean hint); 22P02 member_id is not of the key''s type; 22023 no lead or account has that key; for rule JSON text, the rule errors (22P02 the rule text is not JSON; 22023 invalid rule (unknown key or operator, wrong shape, unknown tier or time zone, a condition not allowed in this kind; with the JSON path and a hint); 22007 bad interval or date; 2201B bad regular expression; 42703 unknown field (with a did-you-mean hint); 42704 unknown level or segment; 42804 a value of the wrong type for the field, or an operator that does not apply to it; 54000 rule over the limits); 55000 no table is bound for the kind (or leads have no account key, for account conditions); 42501 not allowed to read kenbun''s catalog (not kenbun_reader) or the bound tables.
Example: SELECT * FROM kenbun.segment_why(''Hot US paid'', ''2'');';
COMMENT ON FUNCTION kenbun.unbind(text) IS
'Removes the binding of kind (lead, account or event), kenbun''s triggers on its table and what kenbun generated for the kind (its trigger functions; for lead and account, its membership table and members view); bind again to recreate them. Mapped fields of the kind are kept.
Returns: void.
Errors: 22023 kind is not lead, account or event; 55000 no table is bound for kind; 2BP01 segments use the kind (listed; delete them first); 42501 not kenbun_admin.
Example: DELETE FROM kenbun.segments WHERE name = ''Pricing intent''; SELECT kenbun.unbind(''event'');';
COMMENT ON FUNCTION kenbun.unmap_field(text, text) IS
'Removes mapped field field of kind and recompiles every segment; a rule using the name then reads the column of that name, if there is one.
Returns: boolean, true if the field was mapped (false also for an unknown kind).
Errors: 42703 a segment still uses the field and no column of that name takes its place, or another compile error (e.g. 42804) when one does with another type (the compiler''s error, prefixed with segment "<name>" no longer compiles:; the change is rolled back); 0A000 not in a READ COMMITTED transaction; 42501 not kenbun_admin.
Example: SELECT kenbun.unmap_field(''lead'', ''trial_ends'');';
COMMENT ON FUNCTION kenbun.lead_segments(anyelement) IS
'Lists the segments a lead is a member of now, given its key as it is (lead_segments(42), a uuid, …): the key is passed on as text to kenbun.lead_segments(text).
Returns: TABLE(segment text, entered_at timestamptz), by segment name.
Errors: those of kenbun.lead_segments(text): 22P02 the key is not of the bound key''s type; 55000 no lead table is bound; 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.lead_segments(2);';
COMMENT ON FUNCTION kenbun.lead_history(anyelement, timestamp with time zone) IS
'Lists every enter and exit of one lead given its key as it is (lead_history(42)): the key is passed on as text to kenbun.lead_history(text, timestamptz).
Returns: TABLE(changed_at timestamptz, segment_id bigint, segment text, change text, reason text), oldest first.
Errors: 42501 not kenbun_reader.
Example: SELECT * FROM kenbun.lead_history(2, since => now() - interval ''30 days'');';
