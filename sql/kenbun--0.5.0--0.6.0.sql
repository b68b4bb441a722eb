-- kenbun 0.5.0 -> 0.6.0. Each part below is headed by what it changes.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.6.0'" to load this file. \quit

-- == Static segments and manual overrides (issue 13): kenbun.segments.type, a rule only for dynamic
-- segments, calendar boundaries, the reason 'manual', the overrides table and its view, and the
-- index of kenbun.lead_history.
ALTER TABLE kenbun.segments ALTER COLUMN rule DROP NOT NULL,
    ADD COLUMN type text NOT NULL DEFAULT 'dynamic' CHECK (type IN ('dynamic', 'static')),
    ADD COLUMN boundaries jsonb NOT NULL DEFAULT '[]',
    ADD CONSTRAINT segments_rule_check CHECK (type = 'static' OR rule IS NOT NULL);
COMMENT ON COLUMN kenbun.segments.boundaries IS 'The calendar periods the rule uses, as [unit, time zone] pairs: refresh_due refreshes the segment at the start of each such period, not only every refresh_every (maintained by kenbun).';
COMMENT ON COLUMN kenbun.segments.type IS 'dynamic: membership follows the rule (with manual overrides, kenbun.segment_include/segment_exclude); static: a hand-kept list (kenbun.segment_add/segment_remove) that maintenance never changes, except that a deleted row leaves it. A static segment''s rule, if any, filled it once when it was created.';
ALTER TABLE kenbun.membership_changes DROP CONSTRAINT membership_changes_reason_check,
    ADD CONSTRAINT membership_changes_reason_check
        CHECK (reason IN ('initial', 'rule_change', 'data_change', 'refresh', 'repair', 'deactivate', 'manual'));
-- kenbun.lead_history: one lead's changes
CREATE INDEX membership_changes_lead_idx ON kenbun.membership_changes (member_id, id) WHERE kind = 'lead';

-- == Manual overrides of dynamic segments (kenbun.segment_include / segment_exclude): an included
-- member is in whatever the rule says, an excluded one out. A segment with overrides has its rule
-- wrapped (compiled_sql) so that every path that evaluates it (triggers, fills, refresh, drift) agrees.
CREATE TABLE kenbun.member_overrides (
    segment_id bigint NOT NULL,
    member_id  text NOT NULL,
    include    boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (segment_id, member_id)
);
COMMENT ON TABLE kenbun.member_overrides IS 'Manual overrides of dynamic segments (maintained by kenbun.segment_include, segment_exclude and segment_clear_override; listed by the view kenbun.segment_overrides).';
COMMENT ON COLUMN kenbun.member_overrides.member_id IS 'The member''s key as text, in its canonical form (the key cast to text).';
SELECT pg_catalog.pg_extension_config_dump('kenbun.member_overrides', '');

CREATE VIEW kenbun.segment_overrides AS
SELECT s.name AS segment, s.kind, o.member_id,
       CASE WHEN o.include THEN 'include' ELSE 'exclude' END AS override,
       o.created_at, o.created_by
  FROM kenbun.member_overrides o JOIN kenbun.segments s ON s.id = o.segment_id;
COMMENT ON VIEW kenbun.segment_overrides IS 'Every manual override: segment name, kind, member key, include or exclude, when and by whom.';

CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.member_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();

-- the compiler's view: static segments, overrides, the time zone
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
  'timezone', COALESCE(NULLIF(pg_catalog.current_setting('kenbun.timezone', true), ''), pg_catalog.current_setting('TimeZone')),
  'levels', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', v.name, 'field', v.field, 'tiers', v.tiers))
        FROM kenbun.levels v), '[]'::jsonb),
  'segments', COALESCE((
      SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', s.id, 'name', s.name, 'kind', s.kind,
                                                                'rule', s.rule::jsonb, 'static', s.type = 'static',
                                                                'overrides', EXISTS (SELECT 1 FROM kenbun.member_overrides o WHERE o.segment_id = s.id)))
        FROM kenbun.segments s), '[]'::jsonb))
$$;

-- compiling a saved segment: static, overrides, time zone (the 0.5.0 _segment_compile stays for older upgrade scripts)
CREATE FUNCTION kenbun."_compile_saved"(
	"rule" kenbun.segment_rule,
	"kind" TEXT,
	"name" TEXT,
	"id" bigint,
	"seg_type" TEXT DEFAULT 'dynamic',
	"overrides" bool DEFAULT false
) RETURNS jsonb
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', '_compile_saved_wrapper';
REVOKE ALL ON FUNCTION kenbun._compile_saved(kenbun.segment_rule, text, text, bigint, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._compile_saved(kenbun.segment_rule, text, text, bigint, text, boolean) TO kenbun_admin;

-- Creates (or re-creates, when the key type changed) the membership table of a kind, and its view.
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
            COMMENT ON TABLE kenbun.%1$I IS 'Current members of each active %5$s segment (maintained by kenbun).';
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
            COMMENT ON VIEW kenbun.%3$I IS 'Members of every %4$s segment with the segment''s id, name, kind and type, for BI tools.';
            GRANT SELECT ON kenbun.%3$I TO kenbun_reader
        $ddl$, tbl, col, kind || '_segment_members', kind);
    END IF;
END $$;

-- the BI views of the kinds already bound; like the membership tables, they are not members of the
-- extension (a fresh install creates them when a kind is bound)
DO $views$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT b.kind FROM kenbun.bindings b WHERE b.kind IN ('lead', 'account') ORDER BY 1 LOOP
        PERFORM kenbun._ensure_members(k);
        EXECUTE pg_catalog.format('ALTER EXTENSION kenbun DROP VIEW kenbun.%I', k || '_segment_members');
    END LOOP;
END $views$;

DROP FUNCTION kenbun._members_query(kenbun.segments);
-- The query text "SELECT key FROM <bound table> AS l|a WHERE <rule>" of a segment.
-- The query of a segment's members by its rule; with only_keys, of those whose key is in $5 (text[]).
CREATE FUNCTION kenbun._members_query(seg kenbun.segments, only_keys boolean DEFAULT false)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record := kenbun._bound(seg.kind);
    alias text := CASE seg.kind WHEN 'lead' THEN 'l' ELSE 'a' END;
BEGIN
    RETURN format('SELECT %1$s.%2$I AS mid FROM %3$s AS %1$s WHERE %4$s', alias, b.key, b.tbl, seg.compiled_sql)
        || CASE WHEN only_keys THEN format(' AND %1$s.%2$I = ANY ($5::%3$s[])', alias, b.key, b.keytype) ELSE '' END;
END $$;

DROP FUNCTION kenbun._recompute(bigint, text);
-- Recomputes a segment's membership as a diff against the rule over current data, logs and
-- notifies the changes. Returns how many entered and exited. With only_keys, only those members
-- (keys as text) are compared (a manual override of them).
CREATE FUNCTION kenbun._recompute(seg_id bigint, reason text, only_keys text[] DEFAULT NULL, OUT entered bigint, OUT exited bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
    tbl text;
    col text;
    empty boolean;
    restrict text := '';
BEGIN
    SELECT * INTO seg FROM kenbun.segments s WHERE s.id = seg_id;
    SELECT m.tbl, m.col INTO tbl, col FROM kenbun._members_of(seg.kind) m;
    IF only_keys IS NOT NULL THEN
        restrict := format(' AND m.%I = ANY ($5::%s[])', col, (kenbun._bound(seg.kind)).keytype);
    END IF;
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s m WHERE m.segment_id = $1)', tbl) INTO empty USING seg.id;
    IF empty AND only_keys IS NULL THEN
        -- a first fill (insert, activation): nothing to compare with
        EXECUTE format($q$
            WITH ins AS (INSERT INTO %2$s AS m (segment_id, %3$I)
                         SELECT $1, s.mid FROM (%1$s) s ORDER BY 2
                         RETURNING m.%3$I::text AS member_id),
            logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason)
                       SELECT $1, $2, member_id, 'enter', $3 FROM ins RETURNING member_id),
            sent AS (SELECT kenbun._notify($1, $4, $2, 'enter', $3, g.ids) AS n
                       FROM (SELECT pg_catalog.array_agg(member_id) AS ids FROM logged HAVING pg_catalog.count(*) > 0) g)
            SELECT (SELECT pg_catalog.count(*) FROM ins), 0::bigint, (SELECT pg_catalog.count(*) FROM sent)
        $q$, kenbun._members_query(seg), tbl, col)
        INTO entered, exited
        USING seg.id, seg.kind, reason, seg.name;
        RETURN;
    END IF;
    EXECUTE format($q$
        WITH should AS (%1$s),
        ins AS (INSERT INTO %2$s AS m (segment_id, %3$I)
                SELECT $1, s.mid FROM should s
                 WHERE NOT EXISTS (SELECT 1 FROM %2$s h WHERE h.segment_id = $1 AND h.%3$I = s.mid)
                 ORDER BY 2
                ON CONFLICT DO NOTHING RETURNING m.%3$I::text AS member_id),
        del AS (DELETE FROM %2$s AS m
                 WHERE m.segment_id = $1%4$s AND NOT EXISTS (SELECT 1 FROM should s WHERE s.mid = m.%3$I)
                RETURNING m.%3$I::text AS member_id),
        logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason)
                   SELECT $1, $2, member_id, 'exit', $3 FROM del
                   UNION ALL SELECT $1, $2, member_id, 'enter', $3 FROM ins
                   RETURNING member_id, change),
        sent AS (SELECT kenbun._notify($1, $4, $2, g.change, $3, g.ids) AS n
                   FROM (SELECT change, pg_catalog.array_agg(member_id ORDER BY member_id) AS ids FROM logged GROUP BY change) g)
        SELECT (SELECT pg_catalog.count(*) FROM ins), (SELECT pg_catalog.count(*) FROM del), (SELECT pg_catalog.count(*) FROM sent)
    $q$, kenbun._members_query(seg, only_keys IS NOT NULL), tbl, col, restrict)
    INTO entered, exited
    USING seg.id, seg.kind, reason, seg.name, only_keys;
END $$;
ALTER FUNCTION kenbun._recompute(bigint, text, text[]) SET enable_nestloop = off;
ALTER FUNCTION kenbun._recompute(bigint, text, text[]) SECURITY DEFINER;
REVOKE ALL ON FUNCTION kenbun._recompute(bigint, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._recompute(bigint, text, text[]) TO kenbun_admin;

DROP FUNCTION kenbun._recompute_cascade(bigint, text);
-- Recomputes an active segment, then every active segment that uses it (directly or through others),
-- in dependency order; returns the entries and exits of all of them. Without include_self, only the
-- segments that use it (its own members were changed by hand).
CREATE FUNCTION kenbun._recompute_cascade(seg_id bigint, reason text, include_self boolean DEFAULT true,
                                          OUT entered bigint, OUT exited bigint)
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
         WHERE x.active AND (include_self OR d.id <> seg_id)
         GROUP BY d.id ORDER BY pg_catalog.max(d.depth), d.id
    LOOP
        SELECT * INTO r FROM kenbun._recompute(s.id, reason);
        entered := entered + r.entered;
        exited := exited + r.exited;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION kenbun._recompute_cascade(bigint, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._recompute_cascade(bigint, text, boolean) TO kenbun_admin;

-- BEFORE INSERT OR UPDATE: compile, fill the maintained columns; take the lock on the bound tables
-- only when maintenance changes (a segment added, (de)activated, re-ruled, or starting or ending a
-- build). A change of description, refresh_every or name takes no lock on them.
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

-- AFTER each row: fill, diff, empty; cascade to the segments that use this one.
CREATE OR REPLACE FUNCTION kenbun._segments_after()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' AND kenbun._restoring(NEW.compiled_sql)
       AND pg_catalog.strpos(pg_catalog.current_setting('kenbun.restored', true), ',' || NEW.id || ',') > 0 THEN
        RETURN NULL;  -- restored as dumped (segments_before)
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
        IF NEW.type = 'static' THEN
            PERFORM kenbun._static_fill(NEW);
        ELSIF NEW.active THEN
            PERFORM kenbun._fill(NEW, 'initial');
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.active AND NOT NEW.active THEN
            DELETE FROM kenbun.segment_builds b WHERE b.segment_id = NEW.id;
            PERFORM kenbun._clear(NEW.id, NEW.name, NEW.kind, 'deactivate');
        ELSIF NEW.active AND NOT OLD.active THEN
            PERFORM kenbun._fill(NEW, 'initial');
        ELSIF NEW.active AND NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql AND NEW.type = 'dynamic'
              AND pg_catalog.current_setting('kenbun.membership_kept', true) IS DISTINCT FROM 'on' THEN
            PERFORM kenbun._fill(NEW, 'rule_change');
        END IF;
        IF NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql OR NEW.name <> OLD.name THEN
            -- segments that use this one inline its rule: recompile them (their triggers cascade further)
            UPDATE kenbun.segments s SET rule = s.rule WHERE NEW.name = ANY (s.depends_on) AND s.id <> NEW.id;
        END IF;
    ELSE
        PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
        DELETE FROM kenbun.segment_builds b WHERE b.segment_id = OLD.id;
        DELETE FROM kenbun.member_overrides o WHERE o.segment_id = OLD.id;
        PERFORM kenbun._clear(OLD.id, OLD.name, OLD.kind, 'deactivate');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kenbun.segment_copy(name text, new_name text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
    new_id bigint;
BEGIN
    INSERT INTO kenbun.segments (name, kind, description, active, rule, refresh_every, type)
    VALUES (new_name, seg.kind, seg.description, seg.active, CASE WHEN seg.type = 'dynamic' THEN seg.rule END, seg.refresh_every, seg.type)
    RETURNING id INTO new_id;
    IF seg.type = 'static' THEN
        -- a list: the same members (its rule, which filled it once, is kept as a description)
        PERFORM kenbun._apply(x, 'enter', 'initial', ARRAY(SELECT pg_catalog.jsonb_array_elements_text(kenbun._member_list(seg))))
           FROM kenbun.segments x WHERE x.id = new_id;
        UPDATE kenbun.segments x SET rule = seg.rule WHERE x.id = new_id;
    END IF;
    RETURN new_id;
END $$;
COMMENT ON FUNCTION kenbun.segment_copy(text, text) IS 'Copies a segment''s definition and description under a new name; returns the new id. A dynamic copy''s membership is computed from the rule (overrides are not copied); a static copy gets the same members.';

-- Whether a time-dependent segment is due for a refresh: refresh_every has passed since the last
-- one, or a calendar period it uses ("this_month" in Europe/Paris) has started since.
CREATE FUNCTION kenbun._due(s kenbun.segments)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.active AND s.time_dependent
       AND (s.last_refreshed_at IS NULL OR s.last_refreshed_at + s.refresh_every <= pg_catalog.now()
            OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(s.boundaries) b
                        WHERE pg_catalog.date_trunc(b ->> 0, pg_catalog.now(), b ->> 1)
                            > pg_catalog.date_trunc(b ->> 0, s.last_refreshed_at, b ->> 1)))
$$;

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
        EXECUTE format('DROP VIEW IF EXISTS kenbun.%I', kind || '_segment_members');
        EXECUTE format('DROP TABLE IF EXISTS %s', (kenbun._members_of(kind)).tbl);
    END IF;
    DELETE FROM kenbun.bindings b WHERE b.kind = unbind.kind;
END $$;
COMMENT ON FUNCTION kenbun.unbind(text) IS 'Removes a binding, kenbun''s triggers from the table, and what kenbun generated for the kind.';

CREATE OR REPLACE PROCEDURE kenbun.refresh_due_concurrently()
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    COMMIT;
    FOR s IN SELECT x.name FROM kenbun.segments x
              WHERE x.status = 'ready' AND kenbun._due(x)
              ORDER BY x.id LOOP
        CALL kenbun.segment_refresh_concurrently(s.name);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION kenbun.refresh_due()
RETURNS int LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    n int := 0;
BEGIN
    FOR s IN SELECT x.name FROM kenbun.segments x
              WHERE kenbun._due(x)
              ORDER BY x.id LOOP
        PERFORM kenbun.segment_refresh(s.name);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION kenbun.refresh_due() IS 'Refreshes every time-dependent segment whose refresh_every has passed, or a calendar period of whose rule (this_month, …, in its time zone) has started since its last refresh; returns how many.';

-- The members of a segment, keys as text in key order (for export_definitions).
CREATE FUNCTION kenbun._member_list(seg kenbun.segments)
RETURNS jsonb LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    out jsonb;
BEGIN
    EXECUTE format('SELECT COALESCE(pg_catalog.jsonb_agg(m.%1$I::text ORDER BY m.%1$I), ''[]'') FROM %2$s m WHERE m.segment_id = $1',
                   (kenbun._members_of(seg.kind)).col, (kenbun._members_of(seg.kind)).tbl)
        INTO out USING seg.id;
    RETURN out;
END $$;

CREATE OR REPLACE FUNCTION kenbun.export_definitions()
RETURNS jsonb LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE d (name, depth) AS (
        SELECT s.name, 0 FROM kenbun.segments s WHERE s.depends_on = '{}'
        UNION ALL
        SELECT s.name, d.depth + 1 FROM kenbun.segments s JOIN d ON d.name = ANY (s.depends_on)
    ), o AS (SELECT d.name, pg_catalog.max(d.depth) AS depth FROM d GROUP BY d.name)
    SELECT pg_catalog.jsonb_build_object(
        'format', 'kenbun-definitions', 'version', 1,
        'fields', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                      'kind', f.kind, 'name', f.name, 'path', f.path, 'type', pg_catalog.format_type(f.type, NULL))
                      ORDER BY f.kind, f.name) FROM kenbun.fields f), '[]'),
        'levels', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                      'name', l.name, 'field', l.field, 'tiers', l.tiers) ORDER BY l.name) FROM kenbun.levels l), '[]'),
        'segments', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                      'name', s.name, 'kind', s.kind, 'description', s.description, 'active', s.active,
                      'rule', s.rule::jsonb, 'refresh_every', s.refresh_every::text)
                      || CASE WHEN s.type = 'static'
                              THEN pg_catalog.jsonb_build_object('type', 'static', 'members', kenbun._member_list(s))
                              ELSE '{}' END
                      || COALESCE((SELECT pg_catalog.jsonb_build_object('overrides', pg_catalog.jsonb_build_object(
                                    'include', COALESCE(pg_catalog.jsonb_agg(v.member_id ORDER BY v.member_id) FILTER (WHERE v.include), '[]'),
                                    'exclude', COALESCE(pg_catalog.jsonb_agg(v.member_id ORDER BY v.member_id) FILTER (WHERE NOT v.include), '[]')))
                                     FROM kenbun.member_overrides v WHERE v.segment_id = s.id HAVING pg_catalog.count(*) > 0), '{}')
                      ORDER BY o.depth, s.name)
                      FROM kenbun.segments s JOIN o ON o.name = s.name), '[]'))
$$;
COMMENT ON FUNCTION kenbun.export_definitions() IS 'Field mappings, levels and segments (in dependency order) as one JSON document, with the members of static segments ("members", keys as text) and the overrides of dynamic ones ("overrides": {"include": […], "exclude": […]}). Membership of dynamic segments is not included: it follows from the rules.';

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
        IF pg_catalog.jsonb_typeof(x) <> 'object' OR NOT (x ?& ARRAY['name', 'kind'])
           OR NOT (x ? 'rule' OR x ->> 'type' = 'static') THEN
            PERFORM kenbun._doc_error(format('$.segments[%s]', i), 'expected {"name","kind","rule",…}');
        END IF;
        IF COALESCE(x ->> 'type', 'dynamic') NOT IN ('dynamic', 'static') THEN
            PERFORM kenbun._doc_error(format('$.segments[%s].type', i), 'expected "dynamic" or "static"');
        END IF;
        FOREACH k IN ARRAY ARRAY['members', 'overrides,include', 'overrides,exclude'] LOOP
            IF x #> pg_catalog.string_to_array(k, ',') IS NOT NULL
               AND pg_catalog.jsonb_typeof(x #> pg_catalog.string_to_array(k, ',')) <> 'array' THEN
                PERFORM kenbun._doc_error(format('$.segments[%s].%s', i, pg_catalog.replace(k, ',', '.')), 'expected an array of keys');
            END IF;
        END LOOP;
        IF x ->> 'kind' NOT IN ('lead', 'account') THEN
            PERFORM kenbun._doc_error(format('$.segments[%s].kind', i), 'expected "lead" or "account"');
        END IF;
        BEGIN
            PERFORM (NULLIF(x -> 'rule', 'null'))::kenbun.segment_rule;
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
        INSERT INTO kenbun.segments AS s (name, kind, description, active, rule, refresh_every, type)
        VALUES (x ->> 'name', x ->> 'kind', x ->> 'description', COALESCE((x ->> 'active')::boolean, true),
                (NULLIF(x -> 'rule', 'null'))::kenbun.segment_rule, (x ->> 'refresh_every')::interval,
                COALESCE(x ->> 'type', 'dynamic'))
        ON CONFLICT (name) DO UPDATE
           SET description = EXCLUDED.description, active = EXCLUDED.active, rule = EXCLUDED.rule,
               refresh_every = EXCLUDED.refresh_every
         WHERE s.kind = EXCLUDED.kind AND s.type = EXCLUDED.type;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'segment "%" exists with another kind or type', x ->> 'name' USING ERRCODE = '42710';
        END IF;
        PERFORM kenbun._import_members(x);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION kenbun.import_definitions(jsonb, boolean) IS 'Imports a document made by export_definitions, all or nothing; returns how many definitions it created or replaced. A static segment gets exactly the listed members, a dynamic one exactly the listed overrides (their keys must exist in the bound tables: 23503 otherwise).';

-- A static segment's members or a dynamic segment's overrides as an imported document lists them
-- (exactly those: a replaced segment loses the others).
CREATE FUNCTION kenbun._import_members(x jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(x ->> 'name');
    want text[];
    have text[];
BEGIN
    IF seg.type = 'static' THEN
        want := kenbun._member_keys(seg, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(COALESCE(x -> 'members', '[]'))));
        have := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(kenbun._member_list(seg)));
        IF EXISTS (SELECT 1 FROM pg_catalog.unnest(have) h WHERE h <> ALL (want)) THEN
            PERFORM kenbun.segment_remove(seg.name, ARRAY(SELECT h FROM pg_catalog.unnest(have) h WHERE h <> ALL (want)));
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.unnest(want) w WHERE w <> ALL (have)) THEN
            PERFORM kenbun.segment_add(seg.name, ARRAY(SELECT w FROM pg_catalog.unnest(want) w WHERE w <> ALL (have)));
        END IF;
        RETURN;
    END IF;
    have := ARRAY(SELECT o.member_id FROM kenbun.member_overrides o WHERE o.segment_id = seg.id);
    IF have <> '{}' THEN
        PERFORM kenbun.segment_clear_override(seg.name, have);
    END IF;
    IF pg_catalog.jsonb_array_length(COALESCE(x #> '{overrides,include}', '[]')) > 0 THEN
        PERFORM kenbun.segment_include(seg.name, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x #> '{overrides,include}')));
    END IF;
    IF pg_catalog.jsonb_array_length(COALESCE(x #> '{overrides,exclude}', '[]')) > 0 THEN
        PERFORM kenbun.segment_exclude(seg.name, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x #> '{overrides,exclude}')));
    END IF;
END $$;

-- The given member keys, checked against the bound table of the segment's kind and returned in their
-- canonical text form (the key cast to its type and back), without duplicates.
CREATE FUNCTION kenbun._member_keys(seg kenbun.segments, ids text[])
RETURNS text[] LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record := kenbun._bound(seg.kind);
    keys text[];
    missing text;
BEGIN
    IF ids IS NULL THEN
        RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = '22004',
            HINT = 'pass an array of keys, e.g. ARRAY[''17'', ''42'']';
    END IF;
    BEGIN
        EXECUTE format('SELECT pg_catalog.array_agg(DISTINCT x::%s::text) FROM pg_catalog.unnest($1) x', b.keytype)
            INTO keys USING ids;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'invalid key in ids: %', SQLERRM USING ERRCODE = '22P02',
            HINT = format('the keys of %s are %s (column %I)', b.tbl, b.keytype, b.key);
    END;
    IF pg_catalog.array_position(keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must not contain NULL' USING ERRCODE = '22004';
    END IF;
    EXECUTE format('SELECT x::text FROM pg_catalog.unnest($1::%1$s[]) x
                     WHERE NOT EXISTS (SELECT 1 FROM %2$s t WHERE t.%3$I = x) LIMIT 1', b.keytype, b.tbl, b.key)
        INTO missing USING keys;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% "%" does not exist', seg.kind, missing USING ERRCODE = '23503',
            HINT = format('ids are keys (column %I) of %s', b.key, b.tbl);
    END IF;
    RETURN COALESCE(keys, '{}');
END $$;

-- Before a manual change of members `keys` of a segment: whatever evaluates the segment for them
-- must wait. Segments that use it are re-evaluated in full (their members may be other rows: the
-- accounts of the leads, the siblings), so the bound tables are locked against writers as for a
-- definition change; otherwise the rows themselves are (a writer's trigger re-evaluates its row).
CREATE FUNCTION kenbun._lock_members(seg kenbun.segments, keys text[], whole boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record := kenbun._bound(seg.kind);
BEGIN
    IF whole OR EXISTS (SELECT 1 FROM kenbun.segments s WHERE seg.name = ANY (s.depends_on) AND s.id <> seg.id) THEN
        PERFORM kenbun._lock_bound('share row exclusive');
    ELSE
        EXECUTE format('SELECT 1 FROM %1$s t WHERE t.%2$I = ANY ($1::%3$s[]) ORDER BY t.%2$I FOR SHARE', b.tbl, b.key, b.keytype)
            USING keys;
    END IF;
END $$;

-- Adds (change 'enter') or removes ('exit') members of a segment by hand, logs and notifies them.
-- Returns how many changed.
CREATE FUNCTION kenbun._apply(seg kenbun.segments, change text, reason text, keys text[])
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl text := (kenbun._members_of(seg.kind)).tbl;
    col text := (kenbun._members_of(seg.kind)).col;
    keytype text := (kenbun._bound(seg.kind)).keytype;
    n bigint;
BEGIN
    EXECUTE format($q$
        WITH ch AS (%1$s),
        logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason)
                   SELECT $1, $2, member_id, $5, $3 FROM ch ORDER BY member_id RETURNING member_id),
        sent AS (SELECT kenbun._notify($1, $4, $2, $5, $3, g.ids) AS n
                   FROM (SELECT pg_catalog.array_agg(member_id ORDER BY member_id) AS ids FROM logged HAVING pg_catalog.count(*) > 0) g)
        SELECT (SELECT pg_catalog.count(*) FROM ch) + 0 * (SELECT pg_catalog.count(*) FROM sent)
    $q$, CASE change
           WHEN 'enter' THEN format('INSERT INTO %1$s AS m (segment_id, %2$I) SELECT $1, x FROM pg_catalog.unnest($6::%3$s[]) x ORDER BY 2
                                      ON CONFLICT DO NOTHING RETURNING m.%2$I::text AS member_id', tbl, col, keytype)
           ELSE format('DELETE FROM %1$s AS m WHERE m.segment_id = $1 AND m.%2$I = ANY ($6::%3$s[])
                         RETURNING m.%2$I::text AS member_id', tbl, col, keytype)
         END)
    INTO n
    USING seg.id, seg.kind, reason, seg.name, change, keys;
    RETURN n;
END $$;

-- The one fill of a new static segment: from its rule, when it has one.
CREATE FUNCTION kenbun._static_fill(seg kenbun.segments)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys text[];
BEGIN
    IF seg.rule IS NULL THEN
        RETURN;
    END IF;
    -- the members of the rule's SQL (compiled_sql holds the list's own lookup)
    seg.compiled_sql := kenbun._compile_saved(seg.rule, seg.kind, seg.name, seg.id, 'static') ->> 'fill';
    EXECUTE format('SELECT pg_catalog.array_agg(s.mid::text) FROM (%s) s', kenbun._members_query(seg))
        INTO keys;
    PERFORM kenbun._apply(seg, 'enter', 'initial', COALESCE(keys, '{}'));
END $$;

-- A static segment by name, for the functions that change its members.
CREATE FUNCTION kenbun._static_segment(name text)
RETURNS kenbun.segments LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
BEGIN
    PERFORM kenbun._lock_definitions();
    seg := kenbun._segment(name);
    IF seg.type <> 'static' THEN
        RAISE EXCEPTION 'segment "%" is dynamic: its members follow its rule', name USING ERRCODE = '0A000',
            HINT = 'to keep a member in or out of a dynamic segment whatever its rule says, use kenbun.segment_include or kenbun.segment_exclude';
    END IF;
    RETURN seg;
END $$;

CREATE FUNCTION kenbun._static_change(name text, ids text[], change text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._static_segment(name);
    keys text[];
    n bigint;
BEGIN
    keys := kenbun._member_keys(seg, ids);
    PERFORM kenbun._lock_members(seg, keys);
    n := kenbun._apply(seg, change, 'manual', keys);
    IF n > 0 THEN
        PERFORM kenbun._recompute_cascade(seg.id, 'manual', false);
    END IF;
    RETURN n;
END $$;

CREATE FUNCTION kenbun.segment_add(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids, 'enter');
$$;
COMMENT ON FUNCTION kenbun.segment_add(text, text[]) IS 'Adds members (keys of the bound table, as text) to a static segment; returns how many were not members yet. Logged with reason manual; segments that use it are re-evaluated. Errors: 42704 (no such segment), 0A000 (a dynamic segment: use segment_include), 23503 (a key not in the bound table), 22P02 (not a key), 22004 (NULL ids).';

CREATE FUNCTION kenbun.segment_add(name text, ids anyarray)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids::text[], 'enter');
$$;
COMMENT ON FUNCTION kenbun.segment_add(text, anyarray) IS 'segment_add with the keys in their own type (bigint[], uuid[], …).';

CREATE FUNCTION kenbun.segment_remove(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids, 'exit');
$$;
COMMENT ON FUNCTION kenbun.segment_remove(text, text[]) IS 'Removes members from a static segment; returns how many were members. Logged with reason manual; segments that use it are re-evaluated. Errors as segment_add.';

CREATE FUNCTION kenbun.segment_remove(name text, ids anyarray)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids::text[], 'exit');
$$;
COMMENT ON FUNCTION kenbun.segment_remove(text, anyarray) IS 'segment_remove with the keys in their own type.';

CREATE FUNCTION kenbun.segment_snapshot(name text, new_name text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
    snap kenbun.segments;
    keys text[];
BEGIN
    PERFORM kenbun._lock_definitions();
    seg := kenbun._segment(name);
    IF NOT seg.active OR seg.status <> 'ready' THEN
        RAISE EXCEPTION 'segment "%" is %: its membership is not complete', name,
            CASE WHEN seg.active THEN 'building' ELSE 'inactive' END USING ERRCODE = '55000',
            HINT = CASE WHEN seg.active THEN 'finish the build first: CALL kenbun.segment_build()' ELSE 'activate it first' END;
    END IF;
    INSERT INTO kenbun.segments (name, kind, type, description)
    VALUES (new_name, seg.kind, 'static',
            format('snapshot of "%s" taken at %s', seg.name, pg_catalog.now()))
    RETURNING * INTO snap;
    EXECUTE format('SELECT pg_catalog.array_agg(m.%1$I::text ORDER BY m.%1$I) FROM %2$s m WHERE m.segment_id = $1',
                   (kenbun._members_of(seg.kind)).col, (kenbun._members_of(seg.kind)).tbl)
        INTO keys USING seg.id;
    PERFORM kenbun._apply(snap, 'enter', 'initial', COALESCE(keys, '{}'));
    RETURN snap.id;
END $$;
COMMENT ON FUNCTION kenbun.segment_snapshot(text, text) IS 'Freezes the current members of a segment as a new static segment new_name; returns its id. Its members enter with reason initial. Errors: 42704 (no such segment), 23505 (new_name taken), 55000 (the segment is inactive or building).';

-- == Overrides of dynamic segments
CREATE FUNCTION kenbun._override(name text, ids text[], include boolean)
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
        INSERT INTO kenbun.member_overrides AS o (segment_id, member_id, include)
        SELECT seg.id, k, include FROM pg_catalog.unnest(keys) k ORDER BY k
        ON CONFLICT (segment_id, member_id) DO UPDATE
            SET include = EXCLUDED.include, created_at = pg_catalog.now(), created_by = CURRENT_USER
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

CREATE FUNCTION kenbun.segment_include(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, true);
$$;
COMMENT ON FUNCTION kenbun.segment_include(text, text[]) IS 'Keeps members in a dynamic segment whatever its rule says (an override); returns how many overrides were added or changed. Membership changes are logged with reason manual. Errors: 42704 (no such segment), 0A000 (a static segment: use segment_add), 23503 (a key not in the bound table), 22P02, 22004.';

CREATE FUNCTION kenbun.segment_exclude(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, false);
$$;
COMMENT ON FUNCTION kenbun.segment_exclude(text, text[]) IS 'Keeps members out of a dynamic segment whatever its rule says (an override); returns how many overrides were added or changed. Errors as segment_include.';

CREATE FUNCTION kenbun.segment_clear_override(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, NULL);
$$;
COMMENT ON FUNCTION kenbun.segment_clear_override(text, text[]) IS 'Removes the overrides of these members: the rule decides again; returns how many overrides were removed. Errors as segment_include.';

-- == History of one lead
CREATE FUNCTION kenbun.lead_history(lead_id text, since timestamptz DEFAULT NULL)
RETURNS TABLE (changed_at timestamptz, segment_id bigint, segment text, change text, reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.changed_at, c.segment_id, s.name, c.change, c.reason
      FROM kenbun.membership_changes c LEFT JOIN kenbun.segments s ON s.id = c.segment_id
     WHERE c.kind = 'lead' AND c.member_id = lead_history.lead_id
       AND (lead_history.since IS NULL OR c.changed_at >= lead_history.since)
     ORDER BY c.id;
$$;
COMMENT ON FUNCTION kenbun.lead_history(text, timestamptz) IS 'Every enter and exit of one lead (its key as text), oldest first, from the change log (as far back as kenbun.prune_changes kept it); segment is NULL for a segment deleted since. Errors: 42501 (not kenbun_reader).';

-- == kenbun.segment_why (issue 13)
-- No grants: like segment_diagnose it is SECURITY INVOKER and callable by PUBLIC (it fails with
-- 42501 unless the caller may read kenbun.segments, the membership tables and the bound tables).
CREATE FUNCTION kenbun.segment_why(segment text, member_id text)
RETURNS TABLE (path text, condition text, result boolean, value text)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'segment_why_saved_wrapper';
CREATE FUNCTION kenbun.segment_why(rule kenbun.segment_rule, member_id text, kind text DEFAULT 'lead')
RETURNS TABLE (path text, condition text, result boolean, value text)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'segment_why_rule_wrapper';
COMMENT ON FUNCTION kenbun.segment_why(text, text) IS 'Why a lead or account (member_id: its key as text) is or is not in a saved segment (segment: its name; rule JSON text instead is taken as an ad-hoc lead rule, as by the other overload). A first row (path "segment") says whether it is in the membership table, and its value why when that is not the rule: "static list", "override: included" / "override: excluded", "inactive: no members", "building: membership may lag the rule", or drift ("rule" when it is the rule). Then, unless the segment is static, one row per node of its rule in document order: path (JSON path), condition (indented two spaces per depth), result (the node''s two-valued truth for this member, as kenbun.compile computes it) and value (what it compared: the field''s value as JSON, null when missing; a level''s value and tier; the number of matching events or leads; the account''s key, its conditions read from the account row; membership of a referenced segment; "k of n" for all/any; for the nodes of an event''s or leads'' where: true when one of the counted rows satisfies the node, value how many do). Errors: 42704 unknown segment, 22P02 member_id not of the key''s type, 22023 no such lead/account, 55000 no table bound.';
COMMENT ON FUNCTION kenbun.segment_why(kenbun.segment_rule, text, text) IS 'Why a lead or account (member_id: its key as text; kind lead or account) does or does not match an ad-hoc rule: one row per node of the rule in document order with path, condition (indented by depth), result (the node''s two-valued truth for this member, as kenbun.compile computes it) and value (what it compared). Errors: kenbun''s rule errors (22023, 42703, 42704, 42804, 2201B, …), 22023 invalid kind or no such lead/account, 22P02 member_id not of the key''s type, 55000 no table bound.';

-- == kenbun.rule_schema() (issue 13)
CREATE FUNCTION kenbun."rule_schema"() RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'rule_schema_wrapper';
COMMENT ON FUNCTION kenbun.rule_schema() IS 'The JSON Schema (draft 2020-12) of the rule language of this kenbun version ($id names it): one $defs entry per construct and operator, with descriptions, for validating rules and building rule editors client-side. What it cannot express (field names and types, kinds, limits, regular expressions, time zones) is listed in its description and checked by the server.';

-- static segments, overrides and lead history (issue 13). Self-contained (the upgrade script repeats
-- it as is). The functions that change members write membership, the change log and overrides, and
-- lock the bound tables: they run as the owner, for admins only. The view of the overrides reads
-- as its owner: readers only.
REVOKE ALL ON kenbun.member_overrides, kenbun.segment_overrides FROM PUBLIC;
GRANT SELECT ON kenbun.member_overrides, kenbun.segment_overrides TO kenbun_reader;
ALTER FUNCTION kenbun._apply(kenbun.segments, text, text, text[]) SECURITY DEFINER;
ALTER FUNCTION kenbun._lock_members(kenbun.segments, text[], boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._static_change(text, text[], text) SECURITY DEFINER;
ALTER FUNCTION kenbun._override(text, text[], boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun.segment_snapshot(text, text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION kenbun._apply(kenbun.segments, text, text, text[]), kenbun._lock_members(kenbun.segments, text[], boolean),
    kenbun._static_change(text, text[], text), kenbun._override(text, text[], boolean), kenbun._static_fill(kenbun.segments),
    kenbun._static_segment(text), kenbun._member_keys(kenbun.segments, text[]), kenbun._import_members(jsonb),
    kenbun.segment_snapshot(text, text), kenbun.segment_add(text, text[]), kenbun.segment_add(text, anyarray),
    kenbun.segment_remove(text, text[]), kenbun.segment_remove(text, anyarray), kenbun.segment_include(text, text[]),
    kenbun.segment_exclude(text, text[]), kenbun.segment_clear_override(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._apply(kenbun.segments, text, text, text[]), kenbun._lock_members(kenbun.segments, text[], boolean),
    kenbun._static_change(text, text[], text), kenbun._override(text, text[], boolean), kenbun._static_fill(kenbun.segments),
    kenbun._static_segment(text), kenbun._member_keys(kenbun.segments, text[]), kenbun._import_members(jsonb),
    kenbun.segment_snapshot(text, text), kenbun.segment_add(text, text[]), kenbun.segment_add(text, anyarray),
    kenbun.segment_remove(text, text[]), kenbun.segment_remove(text, anyarray), kenbun.segment_include(text, text[]),
    kenbun.segment_exclude(text, text[]), kenbun.segment_clear_override(text, text[]) TO kenbun_admin;

-- CREATE OR REPLACE resets SECURITY DEFINER: the owner's functions again
ALTER FUNCTION kenbun._ensure_members(text) SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_after() SECURITY DEFINER;
ALTER FUNCTION kenbun.unbind(text) SECURITY DEFINER;

-- (more parts above this line)
