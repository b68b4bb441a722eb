-- kenbun 0.4.0 -> 0.5.0. Each part below is headed by what it changes.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.5.0'" to load this file. \quit

-- == Online definition changes: a segment has a status; over a table larger than kenbun.sync_max_rows a
-- definition change saves it as 'building' and CALL kenbun.segment_build() fills it in batches.
ALTER TABLE kenbun.segments
    ADD COLUMN status text NOT NULL DEFAULT 'ready' CHECK (status IN ('building', 'ready'));
COMMENT ON COLUMN kenbun.segments.status IS 'ready, or building: membership is being filled or re-evaluated in batches by CALL kenbun.segment_build(); progress in kenbun.segment_progress (maintained by kenbun).';

-- A segment being built (status 'building'): where its batched fill or re-evaluation stands. One row
-- per segment; CALL kenbun.segment_build() resumes after after_key and deletes the row when done.
CREATE TABLE kenbun.segment_builds (
    segment_id bigint PRIMARY KEY,
    reason     text NOT NULL CHECK (reason IN ('initial', 'rule_change', 'refresh', 'repair')),
    after_key  text,
    rows_done  bigint NOT NULL DEFAULT 0,
    rows_total bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    entered    bigint NOT NULL DEFAULT 0,
    exited     bigint NOT NULL DEFAULT 0,
    done       boolean NOT NULL DEFAULT false,
    last_error text
);
COMMENT ON TABLE kenbun.segment_builds IS 'Batched fills and re-evaluations in progress (maintained by kenbun; see kenbun.segment_progress).';
COMMENT ON COLUMN kenbun.segment_builds.after_key IS 'The last member key done, as text (NULL: none yet); a re-run resumes after it.';
COMMENT ON COLUMN kenbun.segment_builds.rows_total IS 'Rows of the bound table when the build started (the planner''s estimate when there is one).';

SELECT pg_catalog.pg_extension_config_dump('kenbun.segment_builds', '');

-- Serialises definition changes (segments, bindings, fields, levels) with each other, without
-- touching the bound tables: an advisory lock of the transaction. Refused outside READ COMMITTED
-- (what the change compiles and fills must see what committed while it waited).
CREATE FUNCTION kenbun._lock_definitions()
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kenbun changes segment definitions and refreshes membership only in READ COMMITTED transactions (this one is %)',
                        pg_catalog.upper(pg_catalog.current_setting('transaction_isolation'))
            USING ERRCODE = '0A000',
                  HINT = 'run it in its own transaction, or BEGIN ISOLATION LEVEL READ COMMITTED';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(748300000, 0);
END $$;

-- Whether a fill or re-evaluation of a segment of this kind is done in batches (status 'building',
-- CALL kenbun.segment_build()) rather than in the defining statement: when the bound table has more
-- rows than the setting kenbun.sync_max_rows (default 100000; -1: always in the statement, 0: always
-- in batches). Counts at most that many rows + 1.
CREATE FUNCTION kenbun._online(kind text)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting text := pg_catalog.current_setting('kenbun.sync_max_rows', true);
    lim bigint;
    rel regclass;
    n bigint;
BEGIN
    IF setting IS NULL OR setting = '' THEN
        lim := 100000;
    ELSIF setting ~ '^\s*-?[0-9]{1,18}\s*$' AND setting::bigint >= -1 THEN
        lim := setting::bigint;
    ELSE
        RAISE EXCEPTION 'invalid value for kenbun.sync_max_rows: "%"', setting
            USING ERRCODE = '22023',
                  HINT = 'a number of rows: -1 (always fill in the defining statement), 0 (always in batches), or a limit such as 100000';
    END IF;
    IF lim < 0 THEN
        RETURN false;
    END IF;
    SELECT b.relid INTO rel FROM kenbun.bindings b WHERE b.kind = _online.kind;
    IF rel IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT pg_catalog.count(*) FROM (SELECT FROM %s LIMIT $1) t', rel) INTO n USING lim + 1;
    RETURN n > lim;
END $$;

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
    refill := NEW.active AND (TG_OP = 'INSERT' OR NOT OLD.active OR NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql);
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
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;

CREATE OR REPLACE FUNCTION kenbun._segments_before_delete()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    users text;
BEGIN
    PERFORM kenbun._lock_definitions();
    PERFORM kenbun._lock_bound('share row exclusive');
    SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', s.name), ', ' ORDER BY s.name) INTO users
      FROM kenbun.segments s WHERE OLD.name = ANY (s.depends_on) AND s.id <> OLD.id;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot delete segment "%": segment(s) % use it', OLD.name, users
            USING ERRCODE = '2BP01', HINT = 'change or delete those segments first';
    END IF;
    RETURN OLD;
END $$;
ALTER FUNCTION kenbun._segments_before_delete() SECURITY DEFINER;

-- After a change to bindings, fields or levels: recompile every segment (an error rolls the change back).
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
ALTER FUNCTION kenbun._catalog_changed(boolean) SECURITY DEFINER;

-- Fills or re-evaluates a segment whose definition changed: in this statement (status 'ready'), or,
-- when segments_before chose batches (status 'building'), records the build for
-- CALL kenbun.segment_build(). A build already recorded starts again from the first key.
CREATE FUNCTION kenbun._fill(seg kenbun.segments, reason text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF seg.status = 'ready' THEN
        DELETE FROM kenbun.segment_builds b WHERE b.segment_id = seg.id;
        PERFORM kenbun._recompute(seg.id, reason);
        RETURN;
    END IF;
    PERFORM kenbun._build_record(seg.id, seg.kind, reason);
    RAISE NOTICE 'segment "%" is saved and building: CALL kenbun.segment_build() fills it in batches', seg.name
        USING DETAIL = 'Writes keep its membership right for the rows they change meanwhile; kenbun.segment_progress shows how far the build is.',
              HINT = 'kenbun.sync_max_rows sets up to how many rows a definition change fills in its own statement (SET kenbun.sync_max_rows = -1: always)';
END $$;

-- Records (or restarts) the batched build of a segment.
CREATE FUNCTION kenbun._build_record(seg_id bigint, kind text, reason text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
    total bigint;
BEGIN
    SELECT b.relid INTO rel FROM kenbun.bindings b WHERE b.kind = _build_record.kind;
    SELECT GREATEST(c.reltuples, 0)::bigint INTO total FROM pg_catalog.pg_class c WHERE c.oid = rel;
    IF total = 0 THEN
        EXECUTE format('SELECT pg_catalog.count(*) FROM %s', rel) INTO total;
    END IF;
    INSERT INTO kenbun.segment_builds AS b (segment_id, reason, rows_total)
    VALUES (seg_id, reason, total)
    ON CONFLICT (segment_id) DO UPDATE
       SET reason = CASE WHEN b.reason = 'initial' AND excluded.reason = 'initial' THEN 'initial'
                         -- a first build restarted: what it added may be wrong now, so compare
                         WHEN b.reason = 'initial' OR excluded.reason = 'initial' THEN 'rule_change'
                         ELSE excluded.reason END,
           after_key = NULL, rows_done = 0, rows_total = excluded.rows_total,
           started_at = pg_catalog.now(), updated_at = pg_catalog.now(), entered = 0, exited = 0,
           done = false, last_error = NULL;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Online builds. A definition change over a large table (kenbun._online) saves the segment with
-- status 'building': maintenance (regenerated while the change holds its brief lock on the bound
-- tables) treats a building segment like a rule over other rows — the statement-level functions
-- lock the members' stripes and evaluate the rule with a fresh snapshot — so every write from then
-- on keeps the rows it touches right. CALL kenbun.segment_build() then re-evaluates the table in key
-- ranges, one transaction each: take every stripe of the kind (writers of those members wait for
-- this batch, and it waits for writers in progress), evaluate the range with a snapshot taken after
-- that, apply the diff. When the last range is done, a short transaction marks the segment ready,
-- which moves it back to its usual path (the row trigger, for rules over the row alone).

-- One batch: the next `lim` keys after after_key (the rest when fewer remain). Returns true when the
-- segment has no batch left (done, or no longer building).
CREATE FUNCTION kenbun._build_step(seg_id bigint, lim integer, wait_ms integer DEFAULT 50)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b kenbun.segment_builds;
    seg kenbun.segments;
    bnd kenbun.bindings;
    kt text;
    coll text;
    alias text;
    mtbl text;
    mcol text;
    hi text;
    lo_l text := 'true';
    hi_l text := 'true';
    lo_m text := 'true';
    hi_m text := 'true';
    n bigint;
    e bigint;
    x bigint;
    sent bigint;
    old_timeout text := pg_catalog.current_setting('lock_timeout');
BEGIN
    SELECT * INTO b FROM kenbun.segment_builds y WHERE y.segment_id = seg_id FOR UPDATE;
    SELECT * INTO seg FROM kenbun.segments s WHERE s.id = seg_id;
    IF b.segment_id IS NULL OR seg.id IS NULL OR seg.status <> 'building' OR NOT seg.active OR b.done THEN
        RETURN true;
    END IF;
    SELECT * INTO bnd FROM kenbun.bindings y WHERE y.kind = seg.kind;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod),
           CASE WHEN a.attcollation <> 0 THEN pg_catalog.format(' COLLATE %I.%I', n.nspname, c.collname) ELSE '' END
      INTO kt, coll
      FROM pg_catalog.pg_attribute a
      LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
      LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
     WHERE a.attrelid = bnd.relid AND a.attname = bnd.key_column;
    alias := CASE seg.kind WHEN 'lead' THEN 'l' ELSE 'a' END;
    SELECT m.tbl, m.col INTO mtbl, mcol FROM kenbun._members_of(seg.kind) m;
    -- 1. the range (members and membership rows compared in the key column's own collation)
    IF b.after_key IS NOT NULL THEN
        lo_l := format('%s.%I > %L::%s%s', alias, bnd.key_column, b.after_key, kt, coll);
        lo_m := format('m.%I > %L::%s%s', mcol, b.after_key, kt, coll);
    END IF;
    EXECUTE format('SELECT %1$s.%2$I::text FROM %3$s AS %1$s WHERE %4$s ORDER BY %1$s.%2$I%5$s OFFSET %6$s LIMIT 1',
                   alias, bnd.key_column, bnd.relid, lo_l, coll, GREATEST(lim, 1) - 1)
      INTO hi;
    IF hi IS NOT NULL THEN
        hi_l := format('%s.%I <= %L::%s%s', alias, bnd.key_column, hi, kt, coll);
        hi_m := format('m.%I <= %L::%s%s', mcol, hi, kt, coll);
    END IF;
    -- 2. every stripe of the kind, in the order writers take them; a writer holding one past
    --    wait_ms makes this attempt fail (55P03) and release what it took, and the caller retries
    PERFORM pg_catalog.set_config('lock_timeout', CASE WHEN wait_ms > 0 THEN wait_ms || 'ms' ELSE '0' END, true);
    PERFORM pg_catalog.count(pg_catalog.pg_advisory_xact_lock(CASE seg.kind WHEN 'lead' THEN 748300001 ELSE 748300002 END, h.h))
       FROM pg_catalog.generate_series(0, 255) AS h(h);
    PERFORM pg_catalog.set_config('lock_timeout', old_timeout, true);
    -- a batch reads a narrow key range: probing the rule's tables by index beats hashing them whole,
    -- which the default random_page_cost (4) often makes the planner choose
    IF pg_catalog.current_setting('random_page_cost')::double precision > 1.1 THEN
        PERFORM pg_catalog.set_config('random_page_cost', '1.1', true);
    END IF;
    -- and the membership table's statistics lag behind the build: no plan that rescans a
    -- materialized side for every row
    PERFORM pg_catalog.set_config('enable_material', 'off', true);
    -- 3. the diff of the range, with a snapshot taken after the locks. The rule goes in WHERE, where
    --    the planner turns its subqueries into joins over the range. A first fill only adds: the
    --    members already there were put there by writes, which evaluated them as this would. (ON
    --    CONFLICT, not an anti-join with the membership table: its statistics lag behind a build, and
    --    the planner then compares every row of the range with every member.)
    IF b.reason = 'initial' THEN
        EXECUTE format($q$
            WITH ins AS (INSERT INTO %7$s AS m (segment_id, %8$I)
                         SELECT $1, %1$s.%2$I FROM %4$s AS %1$s WHERE %5$s AND %6$s AND (%3$s)
                          ORDER BY 2
                         ON CONFLICT DO NOTHING RETURNING m.%8$I::text AS member_id),
            logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason)
                       SELECT $1, $2, member_id, 'enter', $3 FROM ins RETURNING member_id),
            sent AS (SELECT kenbun._notify($1, $4, $2, 'enter', $3, g.ids) AS n
                       FROM (SELECT pg_catalog.array_agg(member_id ORDER BY member_id) AS ids FROM logged HAVING pg_catalog.count(*) > 0) g)
            SELECT (SELECT pg_catalog.count(*) FROM ins), 0::bigint, (SELECT pg_catalog.count(*) FROM sent)
        $q$, alias, bnd.key_column, seg.compiled_sql, bnd.relid, lo_l, hi_l, mtbl, mcol)
        INTO e, x, sent
        USING seg.id, seg.kind, b.reason, seg.name;
    ELSE
        EXECUTE format($q$
            WITH should AS MATERIALIZED (SELECT %1$s.%2$I AS mid FROM %4$s AS %1$s WHERE %5$s AND %6$s AND (%3$s)),
            ins AS (INSERT INTO %7$s AS m (segment_id, %8$I)
                    SELECT $1, s.mid FROM should s
                     WHERE NOT EXISTS (SELECT 1 FROM %7$s h WHERE h.segment_id = $1 AND h.%8$I = s.mid)
                     ORDER BY 2
                    ON CONFLICT DO NOTHING RETURNING m.%8$I::text AS member_id),
            del AS (DELETE FROM %7$s AS m
                     WHERE m.segment_id = $1 AND %9$s AND %10$s
                       AND NOT EXISTS (SELECT 1 FROM should s WHERE s.mid = m.%8$I)
                    RETURNING m.%8$I::text AS member_id),
            logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason)
                       SELECT $1, $2, member_id, 'exit', $3 FROM del
                       UNION ALL SELECT $1, $2, member_id, 'enter', $3 FROM ins
                       RETURNING member_id, change),
            sent AS (SELECT kenbun._notify($1, $4, $2, g.change, $3, g.ids) AS n
                       FROM (SELECT change, pg_catalog.array_agg(member_id ORDER BY member_id) AS ids FROM logged GROUP BY change) g)
            SELECT (SELECT pg_catalog.count(*) FROM ins), (SELECT pg_catalog.count(*) FROM del), (SELECT pg_catalog.count(*) FROM sent)
        $q$, alias, bnd.key_column, seg.compiled_sql, bnd.relid, lo_l, hi_l, mtbl, mcol, lo_m, hi_m)
        INTO e, x, sent
        USING seg.id, seg.kind, b.reason, seg.name;
    END IF;
    -- rows done: lim, or what the last range held
    IF hi IS NULL THEN
        EXECUTE format('SELECT pg_catalog.count(*) FROM %s AS %s WHERE %s', bnd.relid, alias, lo_l) INTO n;
    ELSE
        n := GREATEST(lim, 1);
    END IF;
    UPDATE kenbun.segment_builds y
       SET after_key = COALESCE(hi, y.after_key), done = hi IS NULL, rows_done = y.rows_done + n,
           entered = y.entered + e, exited = y.exited + x, updated_at = pg_catalog.clock_timestamp(), last_error = NULL
     WHERE y.segment_id = seg_id;
    RETURN hi IS NULL;
END $$;

-- The next building segment (by id) among those named (all when NULL); records a build for a
-- building segment that has none (restored from a dump taken between the two, say).
CREATE FUNCTION kenbun._build_next(name text, after_id bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments;
BEGIN
    SELECT * INTO seg FROM kenbun.segments s
     WHERE s.status = 'building' AND s.active AND s.id > after_id AND (_build_next.name IS NULL OR s.name = _build_next.name)
     ORDER BY s.id LIMIT 1;
    IF seg.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM kenbun.segment_builds b WHERE b.segment_id = seg.id) THEN
        PERFORM kenbun._build_record(seg.id, seg.kind, 'initial');
    END IF;
    RETURN seg.id;
END $$;

-- Ends a build whose batches are done: status 'ready' (segments_before checks that the build is
-- done; the statement trigger regenerates maintenance under the brief lock of the bound tables).
-- Returns the entries and exits of the whole build, or NULLs when it was not done.
CREATE FUNCTION kenbun._build_finish(seg_id bigint, OUT entered bigint, OUT exited bigint, OUT seg_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT s.name INTO seg_name FROM kenbun.segments s WHERE s.id = seg_id;
    PERFORM pg_catalog.set_config('kenbun.build_status', 'ready', true);
    UPDATE kenbun.segments s SET status = 'ready' WHERE s.id = seg_id AND s.status = 'building';
    PERFORM pg_catalog.set_config('kenbun.build_status', '', true);
    DELETE FROM kenbun.segment_builds b
     WHERE b.segment_id = seg_id AND b.done
       AND EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.id = seg_id AND s.status = 'ready')
    RETURNING b.entered, b.exited INTO entered, exited;
END $$;

-- Records a failed batch (the batch itself was rolled back).
CREATE FUNCTION kenbun._build_failed(seg_id bigint, state text, message text)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    UPDATE kenbun.segment_builds b SET last_error = state || ': ' || message, updated_at = pg_catalog.clock_timestamp()
     WHERE b.segment_id = seg_id
$$;

-- Starts a batched re-evaluation of active segments (a refresh or a repair): status 'building',
-- under the brief lock. Returns their names in id order.
CREATE FUNCTION kenbun._build_mark(seg_ids bigint[], reason text)
RETURNS text[] LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    names text[] := '{}';
BEGIN
    PERFORM kenbun._lock_definitions();
    PERFORM pg_catalog.set_config('kenbun.build_status', 'building', true);
    UPDATE kenbun.segments x
       SET status = 'building',
           last_refreshed_at = CASE WHEN reason = 'refresh' THEN pg_catalog.now() ELSE x.last_refreshed_at END
     WHERE x.id = ANY (seg_ids) AND x.active;
    PERFORM pg_catalog.set_config('kenbun.build_status', '', true);
    FOR s IN SELECT x.id, x.kind, x.name FROM kenbun.segments x WHERE x.id = ANY (seg_ids) AND x.active ORDER BY x.id LOOP
        PERFORM kenbun._build_record(s.id, s.kind, reason);
        names := names || s.name;
    END LOOP;
    RETURN names;
END $$;

-- The segment and every active segment that uses it, directly or through others.
CREATE FUNCTION kenbun._dependents(seg_id bigint)
RETURNS bigint[] LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE dep(id, name, depth) AS (
        SELECT x.id, x.name, 0 FROM kenbun.segments x WHERE x.id = seg_id
        UNION ALL
        SELECT x.id, x.name, d.depth + 1
          FROM dep d JOIN kenbun.segments x ON d.name = ANY (x.depends_on) AND x.id <> d.id
         WHERE d.depth < 64)
    SELECT pg_catalog.array_agg(DISTINCT d.id) FROM dep d JOIN kenbun.segments x ON x.id = d.id WHERE x.active
$$;

-- A fixed number of rows per batch, from kenbun.build_batch_rows (NULL when unset: batches are sized
-- to take about kenbun.build_batch_ms each).
CREATE FUNCTION kenbun._build_batch_rows()
RETURNS integer LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting text := pg_catalog.current_setting('kenbun.build_batch_rows', true);
BEGIN
    IF setting IS NULL OR setting = '' THEN
        RETURN NULL;
    ELSIF setting ~ '^\s*[0-9]{1,9}\s*$' AND setting::integer > 0 THEN
        RETURN setting::integer;
    END IF;
    RAISE EXCEPTION 'invalid value for kenbun.build_batch_rows: "%"', setting
        USING ERRCODE = '22023', HINT = 'a number of rows per batch, such as 5000; unset it to size batches by kenbun.build_batch_ms';
END $$;

-- The target duration of one batch, from kenbun.build_batch_ms (default 40).
CREATE FUNCTION kenbun._build_batch_ms()
RETURNS double precision LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting text := pg_catalog.current_setting('kenbun.build_batch_ms', true);
BEGIN
    IF setting IS NULL OR setting = '' THEN
        RETURN 40;
    ELSIF setting ~ '^\s*[0-9]{1,6}(\.[0-9]*)?\s*$' AND setting::double precision > 0 THEN
        RETURN setting::double precision;
    END IF;
    RAISE EXCEPTION 'invalid value for kenbun.build_batch_ms: "%"', setting
        USING ERRCODE = '22023', HINT = 'the target duration of one batch in milliseconds, such as 40';
END $$;

CREATE PROCEDURE kenbun.segment_build(name text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    seg_id bigint := 0;
    lim integer;
    target double precision := kenbun._build_batch_ms();
    fixed integer := kenbun._build_batch_rows();
    t0 timestamptz;
    ms double precision;
    done boolean;
    tries integer;
    batches integer;
    busy integer := 0;
    finished boolean;
    state text;
    msg text;
    r record;
BEGIN
    IF name IS NOT NULL THEN
        PERFORM kenbun._segment(name);  -- 42704 when there is no such segment
    END IF;
    -- refused here (2D000) inside a transaction block, before anything is done: every batch commits
    COMMIT;
    LOOP
        seg_id := kenbun._build_next(name, seg_id);
        COMMIT;
        EXIT WHEN seg_id IS NULL;
        lim := COALESCE(fixed, 1000);
        tries := 0;
        batches := 0;
        LOOP
            t0 := pg_catalog.clock_timestamp();
            state := NULL;
            BEGIN
                -- after 20 attempts that met a long writer, wait for it like any writer would
                done := kenbun._build_step(seg_id, lim, CASE WHEN tries < 20 THEN 50 ELSE 0 END);
            EXCEPTION
                WHEN lock_not_available OR deadlock_detected THEN
                    done := NULL;
                WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            END;
            -- writers waiting for this batch's stripes: the next 20 batches are short (5 ms), so that
            -- each writer waits less; without writers, batches take about kenbun.build_batch_ms
            IF state IS NULL AND done IS NOT NULL THEN
                IF EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                            WHERE l.locktype = 'advisory' AND NOT l.granted
                              AND l.classid IN ('748300001'::oid, '748300002'::oid)) THEN
                    busy := 20;
                ELSIF busy > 0 THEN
                    busy := busy - 1;
                END IF;
            END IF;
            IF state IS NOT NULL THEN
                PERFORM kenbun._build_failed(seg_id, state, msg);
                COMMIT;
                RAISE EXCEPTION 'building segment "%" failed: %', (SELECT s.name FROM kenbun.segments s WHERE s.id = seg_id), msg
                    USING ERRCODE = state,
                          DETAIL = 'The failed batch was rolled back; the batches before it are kept, and the segment stays building.',
                          HINT = 'fix the cause and CALL kenbun.segment_build() again: it resumes after the last batch done';
            END IF;
            COMMIT;
            IF done IS NULL THEN
                tries := tries + 1;
                PERFORM pg_catalog.pg_sleep(0.005 * tries);
                CONTINUE;
            END IF;
            tries := 0;
            batches := batches + 1;
            EXIT WHEN done;
            ms := GREATEST(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - t0) * 1000, 0.1);
            IF fixed IS NULL THEN
                lim := LEAST(100000, GREATEST(CASE WHEN busy > 0 THEN 100 ELSE 500 END,
                             (lim * LEAST(2.0, GREATEST(0.25, CASE WHEN busy > 0 THEN LEAST(target, 5) ELSE target END / ms)))::integer));
            END IF;
        END LOOP;
        -- mark it ready: a short transaction that regenerates maintenance under the brief lock
        LOOP
            finished := true;
            BEGIN
                SELECT * INTO r FROM kenbun._build_finish(seg_id);
            EXCEPTION
                WHEN lock_not_available OR deadlock_detected THEN
                    finished := false;
            END;
            COMMIT;
            EXIT WHEN finished;
            PERFORM pg_catalog.pg_sleep(0.01);
        END LOOP;
        IF r.entered IS NOT NULL THEN
            RAISE NOTICE 'segment "%" is ready: % entered, % exited, % batches', r.seg_name, r.entered, r.exited, batches;
        ELSE
            seg_id := seg_id - 1;  -- restarted meanwhile (its rule changed): build it again
        END IF;
    END LOOP;
END $$;


COMMENT ON PROCEDURE kenbun.segment_build(text) IS 'Fills or re-evaluates every segment whose status is building (or the one named) in batches, each its own transaction, then marks it ready; resumable. Must be CALLed outside a transaction block (2D000). Raises the failing batch''s SQLSTATE, leaving the segment building with last_error set.';

-- A refresh (or repair) in batches: the segment and the segments that use it are marked building
-- (a short transaction), then built. Membership readers see the old membership for the ranges not
-- yet done.
CREATE PROCEDURE kenbun._rebuild_concurrently(name text, reason text)
LANGUAGE plpgsql AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
    names text[];
    n text;
BEGIN
    COMMIT;
    IF NOT seg.active AND reason = 'repair' THEN
        -- an inactive segment has no members; the segments using it still apply its rule
        PERFORM kenbun._clear(seg.id, seg.name, seg.kind, 'repair');
    END IF;
    names := kenbun._build_mark(kenbun._dependents(seg.id), reason);
    COMMIT;
    FOREACH n IN ARRAY COALESCE(names, '{}') LOOP
        CALL kenbun.segment_build(n);
    END LOOP;
END $$;

CREATE PROCEDURE kenbun.segment_refresh_concurrently(name text)
LANGUAGE plpgsql AS $$
BEGIN
    CALL kenbun._rebuild_concurrently(name, 'refresh');
END $$;
COMMENT ON PROCEDURE kenbun.segment_refresh_concurrently(text) IS 'segment_refresh without blocking writers: marks the segment and the segments that use it building, then re-evaluates them in batches (see segment_build). CALL outside a transaction block.';

CREATE PROCEDURE kenbun.segment_repair_concurrently(name text)
LANGUAGE plpgsql AS $$
BEGIN
    CALL kenbun._rebuild_concurrently(name, 'repair');
END $$;
COMMENT ON PROCEDURE kenbun.segment_repair_concurrently(text) IS 'segment_repair without blocking writers: re-evaluates the segment and the segments that use it in batches, logging with reason repair. CALL outside a transaction block.';

CREATE PROCEDURE kenbun.refresh_due_concurrently()
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    COMMIT;
    FOR s IN SELECT x.name FROM kenbun.segments x
              WHERE x.active AND x.time_dependent AND x.status = 'ready'
                AND (x.last_refreshed_at IS NULL OR x.last_refreshed_at + x.refresh_every <= pg_catalog.now())
              ORDER BY x.id LOOP
        CALL kenbun.segment_refresh_concurrently(s.name);
    END LOOP;
END $$;
COMMENT ON PROCEDURE kenbun.refresh_due_concurrently() IS 'refresh_due without blocking writers: refreshes every due time-dependent segment with segment_refresh_concurrently. For pg_cron: CALL kenbun.refresh_due_concurrently().';

CREATE VIEW kenbun.segment_progress AS
SELECT s.id AS segment_id, s.name, s.kind, s.status, b.reason AS operation,
       b.rows_done, b.rows_total,
       CASE WHEN b.done THEN 100.0
            WHEN b.rows_total > 0 THEN pg_catalog.round(100.0 * LEAST(b.rows_done, b.rows_total) / b.rows_total, 1)
       END AS percent,
       b.entered, b.exited, b.started_at, b.updated_at, b.last_error
  FROM kenbun.segments s
  LEFT JOIN kenbun.segment_builds b ON b.segment_id = s.id;
COMMENT ON VIEW kenbun.segment_progress IS 'Every segment''s status and, while it is building, how far the batched build is (rows done of rows total).';

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
        IF NEW.active THEN
            PERFORM kenbun._fill(NEW, 'initial');
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.active AND NOT NEW.active THEN
            DELETE FROM kenbun.segment_builds b WHERE b.segment_id = NEW.id;
            PERFORM kenbun._clear(NEW.id, NEW.name, NEW.kind, 'deactivate');
        ELSIF NEW.active AND NOT OLD.active THEN
            PERFORM kenbun._fill(NEW, 'initial');
        ELSIF NEW.active AND NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql THEN
            PERFORM kenbun._fill(NEW, 'rule_change');
        END IF;
        IF NEW.compiled_sql IS DISTINCT FROM OLD.compiled_sql OR NEW.name <> OLD.name THEN
            -- segments that use this one inline its rule: recompile them (their triggers cascade further)
            UPDATE kenbun.segments s SET rule = s.rule WHERE NEW.name = ANY (s.depends_on) AND s.id <> NEW.id;
        END IF;
    ELSE
        PERFORM pg_catalog.set_config('kenbun.rebuild_pending', 'on', true);
        DELETE FROM kenbun.segment_builds b WHERE b.segment_id = OLD.id;
        PERFORM kenbun._clear(OLD.id, OLD.name, OLD.kind, 'deactivate');
    END IF;
    RETURN NULL;
END $$;
ALTER FUNCTION kenbun._segments_after() SECURITY DEFINER;

-- privileges of the new objects (as sql/privileges.sql)
REVOKE ALL ON kenbun.segment_builds, kenbun.segment_progress FROM PUBLIC;
GRANT SELECT ON kenbun.segment_builds, kenbun.segment_progress TO kenbun_reader;
ALTER FUNCTION kenbun._build_step(bigint, integer, integer) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_next(text, bigint) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_finish(bigint) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_failed(bigint, text, text) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_mark(bigint[], text) SECURITY DEFINER;
ALTER FUNCTION kenbun._build_record(bigint, text, text) SECURITY DEFINER;
REVOKE ALL ON ROUTINE kenbun._build_step(bigint, integer, integer), kenbun._build_next(text, bigint),
    kenbun._build_finish(bigint), kenbun._build_failed(bigint, text, text), kenbun._build_mark(bigint[], text),
    kenbun._build_record(bigint, text, text), kenbun.segment_build(text), kenbun.segment_refresh_concurrently(text),
    kenbun.segment_repair_concurrently(text), kenbun.refresh_due_concurrently(), kenbun._rebuild_concurrently(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON ROUTINE kenbun._build_step(bigint, integer, integer), kenbun._build_next(text, bigint),
    kenbun._build_finish(bigint), kenbun._build_failed(bigint, text, text), kenbun._build_mark(bigint[], text),
    kenbun._build_record(bigint, text, text), kenbun.segment_build(text), kenbun.segment_refresh_concurrently(text),
    kenbun.segment_repair_concurrently(text), kenbun.refresh_due_concurrently(), kenbun._rebuild_concurrently(text, text)
    TO kenbun_admin;

-- == The change log as an interface: polling in a safe order, named consumers, retention, and a
-- publication for logical decoding (sql/changes.sql, then its privileges from sql/privileges.sql).
-- kenbun change log as an interface (issue 12): polling in a safe order (changes_since), named
-- consumers that each get every change once (register_consumer, consume_changes, drop_consumer),
-- retention (prune_changes) and a publication for logical decoding (create_publication).
--
-- The horizon. A change's id is drawn from the identity sequence when the change is inserted, but
-- transactions commit in another order: A draws id 100 and is still open when B draws 101 and
-- commits. A poller that returns 101 and then asks for "after 101" never sees 100. So changes_since
-- and consume_changes return a change only up to the horizon: the largest id H such that every
-- change numbered H or less is either committed (and visible) or never will be. kenbun._change_horizon
-- finds it without blocking anyone: (1) it reads the sequence's last value S; (2) it lists the other
-- transactions that hold a lock on the sequence: nextval locks it (ROW EXCLUSIVE) until the end of
-- the transaction, so every transaction that drew an id <= S and is still open is among them;
-- (3) it waits until those have ended (at most kenbun.changes_max_wait, default 1 s). Then H = S,
-- and the next statement's snapshot (READ COMMITTED) sees every one of them that committed. The
-- caller's own uncommitted changes (visible to itself) end the horizon before them. Transactions
-- that opened later draw ids > S and are not waited for. Writers never wait for a poller.
--
-- Why not "txid < pg_snapshot_xmin(pg_current_snapshot())" (rows of transactions older than every
-- open one): a transaction's xid is assigned at its first write, not when it logs a change. B can
-- get its xid first (an unrelated write), A gets a larger one and logs change 100, B logs 101 and
-- commits: B is older than every open transaction, so 101 passes the filter while 100 is still in
-- flight, and the poller skips 100 (tests/changes.rs reproduces it). The lock on the sequence
-- follows the ids themselves.
--
-- Assumes what kenbun's own writers do: ids come from nextval on the identity sequence with CACHE 1
-- (a session caching ids could hand out an old one later; _change_horizon refuses such a sequence).

-- Named consumers of the change log: each has a position (the last id it has consumed).
CREATE TABLE kenbun.change_consumers (
    name       text PRIMARY KEY CHECK (name <> ''),
    position   bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE kenbun.change_consumers IS 'Named consumers of kenbun.membership_changes (register_consumer, consume_changes, drop_consumer); prune_changes keeps every change a consumer has not consumed.';
COMMENT ON COLUMN kenbun.change_consumers.position IS 'The id of the last change consumed (or skipped): consume_changes returns the changes after it.';
COMMENT ON COLUMN kenbun.change_consumers.updated_at IS 'When the position last moved.';
SELECT pg_catalog.pg_extension_config_dump('kenbun.change_consumers', '');

-- The horizon (see the top of this file): the largest id up to which every change is final, for a
-- reader that has seen everything up to after_id and reads at most lim rows next. NULL when changes
-- are held back by transactions still open after kenbun.changes_max_wait (with a NOTICE naming
-- their processes). READ COMMITTED only; not on a standby (the locks that say which transactions
-- drew ids are the primary's).
CREATE FUNCTION kenbun._change_horizon(after_id bigint, lim int)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seq CONSTANT regclass := 'kenbun.membership_changes_id_seq';
    setting text := pg_catalog.current_setting('kenbun.changes_max_wait', true);
    max_wait interval := interval '1 second';
    deadline timestamptz;
    pause float8 := 0.001;
    top bigint;
    cache bigint;
    holders text[];
    own_drew boolean;
    own_min bigint;
    pids text;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kenbun reads the change log in commit order only in READ COMMITTED transactions (this one is %)',
                        pg_catalog.upper(pg_catalog.current_setting('transaction_isolation'))
            USING ERRCODE = '0A000',
                  HINT = 'run it in its own transaction, or BEGIN ISOLATION LEVEL READ COMMITTED';
    END IF;
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'kenbun reads the change log in commit order only on the primary'
            USING ERRCODE = '0A000',
                  HINT = 'on a standby, follow the change log with logical decoding from the primary (kenbun.create_publication)';
    END IF;
    IF setting IS NOT NULL AND setting <> '' THEN
        BEGIN
            max_wait := setting::interval;
        EXCEPTION WHEN data_exception THEN
            max_wait := NULL;
        END;
        IF max_wait IS NULL OR max_wait < interval '0' THEN
            RAISE EXCEPTION 'invalid value for kenbun.changes_max_wait: "%"', setting
                USING ERRCODE = '22023',
                      HINT = 'how long a read of the change log waits for transactions that logged changes and are still open, e.g. SET kenbun.changes_max_wait = ''1s'' (0: do not wait)';
        END IF;
    END IF;
    SELECT s.seqcache INTO cache FROM pg_catalog.pg_sequence s WHERE s.seqrelid = seq;
    IF cache <> 1 THEN
        RAISE EXCEPTION 'kenbun.membership_changes_id_seq caches % ids per session', cache
            USING ERRCODE = '55000',
                  HINT = 'the change log is read in commit order only with CACHE 1: ALTER SEQUENCE kenbun.membership_changes_id_seq CACHE 1';
    END IF;
    -- (1) the last id drawn
    SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END INTO top
      FROM kenbun.membership_changes_id_seq q;
    IF top <= after_id THEN
        RETURN after_id;
    END IF;
    -- (2) after it (a statement of its own), the open transactions that may have drawn one of them;
    -- and whether this one did
    SELECT COALESCE(pg_catalog.array_agg(l.virtualtransaction) FILTER (WHERE l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()), '{}'),
           COALESCE(pg_catalog.bool_or(l.pid = pg_catalog.pg_backend_pid()), false)
      INTO holders, own_drew
      FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted AND l.mode <> 'AccessShareLock'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    -- (3) wait for them to end
    deadline := pg_catalog.clock_timestamp() + max_wait;
    WHILE holders <> '{}' LOOP
        IF pg_catalog.clock_timestamp() >= deadline THEN
            SELECT pg_catalog.string_agg(DISTINCT COALESCE(l.pid::text, 'a prepared transaction'), ', ') INTO pids
              FROM pg_catalog.pg_locks l
             WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted AND l.virtualtransaction = ANY (holders);
            RAISE NOTICE 'changes after id % are held back: % transaction(s) that logged changes are still open', after_id, pg_catalog.cardinality(holders)
                USING DETAIL = pg_catalog.format('Waited %s for process(es) %s.', max_wait, COALESCE(pids, '(ended just now)')),
                      HINT = 'they are returned once those transactions end; kenbun.changes_max_wait sets how long a read waits';
            RETURN NULL;
        END IF;
        PERFORM pg_catalog.pg_sleep(pause);
        pause := LEAST(pause * 2, 0.05);
        holders := ARRAY(SELECT l.virtualtransaction FROM pg_catalog.pg_locks l
                          WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted
                            AND l.virtualtransaction = ANY (holders)
                            AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()));
    END LOOP;
    -- this transaction's own changes are visible to it but not committed: stop before the first one
    -- (among the rows the caller reads next)
    IF own_drew THEN
        SELECT pg_catalog.min(x.id) INTO own_min
          FROM (SELECT m.id, m.txid FROM kenbun.membership_changes m
                 WHERE m.id > after_id AND m.id <= top ORDER BY m.id LIMIT lim) x
         WHERE x.txid = pg_catalog.pg_current_xact_id_if_assigned();
        IF own_min IS NOT NULL THEN
            top := own_min - 1;
        END IF;
    END IF;
    RETURN GREATEST(top, after_id);
END $$;

CREATE FUNCTION kenbun._check_limit(lim int)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF lim IS NULL OR lim < 1 OR lim > 100000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 100000, not %', COALESCE(lim::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'read the change log in pages of at most 100000 changes';
    END IF;
END $$;

CREATE FUNCTION kenbun.changes_since(after_id bigint, lim int DEFAULT 1000)
RETURNS SETOF kenbun.membership_changes LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h bigint;
BEGIN
    IF after_id IS NULL THEN
        RAISE EXCEPTION 'after_id must not be NULL'
            USING ERRCODE = '22023', HINT = 'pass 0 to read from the oldest change kept, then the id of the last change read';
    END IF;
    PERFORM kenbun._check_limit(lim);
    h := kenbun._change_horizon(after_id, lim);
    IF h IS NULL OR h <= after_id THEN
        RETURN;
    END IF;
    -- a statement of its own: its snapshot sees every change up to h that committed
    RETURN QUERY SELECT m.* FROM kenbun.membership_changes m
                  WHERE m.id > after_id AND m.id <= h ORDER BY m.id LIMIT lim;
END $$;
COMMENT ON FUNCTION kenbun.changes_since(bigint, integer) IS 'Up to lim (1..100000) committed changes with id > after_id, in id order, never one that a transaction still open could precede: pass the id of the last change read to get the next ones, none skipped. Waits for transactions that logged changes and are still open (kenbun.changes_max_wait, default 1 s; then returns none and a NOTICE). Errors: 22023 (NULL after_id, lim out of range, bad kenbun.changes_max_wait), 0A000 (not READ COMMITTED, or on a standby), 42501 (not kenbun_reader).';

CREATE FUNCTION kenbun.register_consumer(name text, from_now boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pos bigint;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'e.g. SELECT kenbun.register_consumer(''crm_sync'')';
    END IF;
    IF pg_catalog.length(name) > 255 THEN
        RAISE EXCEPTION 'consumer name is longer than 255 characters' USING ERRCODE = '22023', HINT = 'choose a shorter name';
    END IF;
    IF from_now IS NULL THEN
        RAISE EXCEPTION 'from_now must be true or false' USING ERRCODE = '22023',
            HINT = 'true: the consumer gets the changes committed from now on; false: every change still in the log';
    END IF;
    SELECT c.position INTO pos FROM kenbun.change_consumers c WHERE c.name = register_consumer.name;
    IF FOUND THEN
        RAISE NOTICE 'consumer "%" already exists; its position (%) is unchanged', name, pos;
        RETURN pos;
    END IF;
    IF from_now THEN
        -- after every change committed before this call returns (waiting for the open ones)
        pos := kenbun._change_horizon(0, 2147483647);
        IF pos IS NULL THEN
            RAISE EXCEPTION 'cannot register consumer "%" from now: transactions that logged changes are still open', name
                USING ERRCODE = '55P03', HINT = 'try again once they have ended, or register with from_now => false';
        END IF;
    ELSE
        pos := 0;
    END IF;
    INSERT INTO kenbun.change_consumers AS c (name, position) VALUES (register_consumer.name, pos)
    ON CONFLICT ON CONSTRAINT change_consumers_pkey DO UPDATE SET position = c.position
    RETURNING c.position INTO pos;
    RETURN pos;
END $$;
COMMENT ON FUNCTION kenbun.register_consumer(text, boolean) IS 'Registers a named consumer of the change log and returns its position: with from_now (the default) it gets the changes committed after this call, otherwise every change still in the log. An existing consumer is kept as it is (NOTICE). Errors: 22023 (empty name or longer than 255 characters, NULL from_now), 55P03 (from_now while transactions that logged changes stay open longer than kenbun.changes_max_wait), 42501 (not kenbun_admin).';

CREATE FUNCTION kenbun.drop_consumer(name text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'the consumers are listed in kenbun.change_consumers';
    END IF;
    DELETE FROM kenbun.change_consumers c WHERE c.name = drop_consumer.name;
    RETURN FOUND;
END $$;
COMMENT ON FUNCTION kenbun.drop_consumer(text) IS 'Drops a named consumer (prune_changes no longer keeps changes for it); returns whether it existed. Errors: 22023 (empty name), 42501 (not kenbun_admin).';

CREATE FUNCTION kenbun.consume_changes(consumer text, lim int DEFAULT 1000)
RETURNS SETOF kenbun.membership_changes LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pos bigint;
    h bigint;
    r kenbun.membership_changes;
    n int := 0;
    last_id bigint;
BEGIN
    IF consumer IS NULL OR consumer = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'the consumers are listed in kenbun.change_consumers';
    END IF;
    PERFORM kenbun._check_limit(lim);
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM kenbun._change_horizon(0, 1);  -- raises the isolation error
    END IF;
    -- a second worker of the same consumer waits here until the first commits or rolls back, then
    -- reads the position it left
    SELECT c.position INTO pos FROM kenbun.change_consumers c WHERE c.name = consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer "%" does not exist', consumer
            USING ERRCODE = '42704',
                  HINT = pg_catalog.format('register it first: SELECT kenbun.register_consumer(%L)', consumer);
    END IF;
    h := kenbun._change_horizon(pos, lim);
    IF h IS NULL OR h <= pos THEN
        RETURN;
    END IF;
    FOR r IN SELECT m.* FROM kenbun.membership_changes m WHERE m.id > pos AND m.id <= h ORDER BY m.id LIMIT lim LOOP
        RETURN NEXT r;
        n := n + 1;
        last_id := r.id;
    END LOOP;
    -- a full page ends at its last change; otherwise everything up to the horizon is consumed
    UPDATE kenbun.change_consumers c
       SET position = CASE WHEN n = lim THEN last_id ELSE h END, updated_at = pg_catalog.now()
     WHERE c.name = consumer;
END $$;
COMMENT ON FUNCTION kenbun.consume_changes(text, integer) IS 'The next changes (at most lim, 1..100000, in id order) after the consumer''s position, and moves the position past them in the same transaction: a rollback returns them again. Workers of one consumer take turns (the consumer''s row is locked), so each change goes to one of them once. Same order guarantee as changes_since. Errors: 42704 (no such consumer), 22023 (empty name, lim out of range), 0A000 (not READ COMMITTED, or on a standby), 42501 (not kenbun_reader).';

-- Retention, meant for pg_cron (in the database that uses kenbun, or with cron.schedule_in_database):
--   SELECT cron.schedule('kenbun-prune', '17 3 * * *', $$SELECT kenbun.prune_changes('30 days')$$);
CREATE FUNCTION kenbun.prune_changes(older_than interval)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz;
    keep bigint;
    after_id bigint := -9223372036854775808;
    total bigint := 0;
    n bigint;
    batch_n bigint;
    batch_max bigint;
    young bigint;
    held bigint;
    last_held bigint;
    lagging text;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be an interval of zero or more, not %', COALESCE(older_than::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'how old a change must be to be deleted, e.g. SELECT kenbun.prune_changes(''30 days'')';
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock(748300000, 12) THEN
        RAISE NOTICE 'kenbun.prune_changes is already running in another session; nothing pruned';
        RETURN 0;
    END IF;
    cutoff := pg_catalog.now() - older_than;
    -- nothing a consumer has not consumed (positions move only up, and only to final ids)
    SELECT pg_catalog.min(c.position) INTO keep FROM kenbun.change_consumers c;
    -- the oldest changes, in id order, up to the first one that is not old enough: batches of 10,000
    -- ids per statement; only DELETE, which writers (INSERT) never wait for
    LOOP
        WITH batch AS MATERIALIZED (
            SELECT m.id, m.changed_at FROM kenbun.membership_changes m
             WHERE m.id > after_id AND (keep IS NULL OR m.id <= keep)
             ORDER BY m.id LIMIT 10000),
        first_young AS (SELECT pg_catalog.min(b.id) AS id FROM batch b WHERE b.changed_at >= cutoff),
        del AS (DELETE FROM kenbun.membership_changes m USING batch b
                 WHERE m.id = b.id AND b.id < COALESCE((SELECT y.id FROM first_young y), 9223372036854775807)
                RETURNING m.id)
        SELECT (SELECT pg_catalog.count(*) FROM del), (SELECT pg_catalog.count(*) FROM batch),
               (SELECT pg_catalog.max(b.id) FROM batch b), (SELECT y.id FROM first_young y)
          INTO n, batch_n, batch_max, young;
        total := total + n;
        EXIT WHEN young IS NOT NULL OR batch_n < 10000;
        after_id := batch_max;
    END LOOP;
    IF keep IS NOT NULL AND young IS NULL THEN
        -- stopped at a consumer's position: say what it kept
        SELECT pg_catalog.count(*), pg_catalog.max(x.id) INTO held, last_held
          FROM (SELECT m.id FROM kenbun.membership_changes m
                 WHERE m.id > keep
                   AND m.id < COALESCE((SELECT pg_catalog.min(y.id) FROM kenbun.membership_changes y
                                         WHERE y.id > keep AND y.changed_at >= cutoff), 9223372036854775807)) x;
        IF held > 0 THEN
            SELECT pg_catalog.string_agg(pg_catalog.format('"%s" (at %s)', c.name, c.position), ', ' ORDER BY c.position, c.name)
              INTO lagging FROM kenbun.change_consumers c WHERE c.position < last_held;
            RAISE NOTICE 'kept % change(s) older than % that consumer(s) % have not consumed yet', held, older_than, lagging
                USING HINT = 'they are pruned once consumed (kenbun.consume_changes); drop a consumer that is no longer used with kenbun.drop_consumer(name)';
        END IF;
    END IF;
    RETURN total;
END $$;
COMMENT ON FUNCTION kenbun.prune_changes(interval) IS 'Deletes the oldest changes of the log, up to the first one not older than older_than and never one a registered consumer has not consumed (NOTICE when a consumer held changes back); returns how many it deleted. For pg_cron: SELECT cron.schedule(''kenbun-prune'', ''17 3 * * *'', $$SELECT kenbun.prune_changes(''30 days'')$$). Deletes in batches of 10,000 and never blocks writers. Errors: 22023 (NULL or negative interval), 42501 (not kenbun_admin).';

-- A publication of the change log for logical replication (pgoutput) and decoding. Created by a
-- function, not by the extension script: a publication is not an extension member, so pg_dump
-- dumps it on its own. Inserts only: prune_changes' deletes are retention, not membership changes.
CREATE FUNCTION kenbun.create_publication(name text DEFAULT 'kenbun_changes')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pub pg_catalog.pg_publication;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a publication needs a name' USING ERRCODE = '22023', HINT = 'e.g. SELECT kenbun.create_publication(''kenbun_changes'')';
    END IF;
    IF pg_catalog.octet_length(name) > 63 THEN
        -- PostgreSQL would truncate it, and the next call would not find the publication
        RAISE EXCEPTION 'publication name is longer than 63 bytes' USING ERRCODE = '22023', HINT = 'choose a shorter name';
    END IF;
    SELECT * INTO pub FROM pg_catalog.pg_publication p WHERE p.pubname = create_publication.name;
    IF NOT FOUND THEN
        EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE kenbun.membership_changes WITH (publish = %L)', name, 'insert');
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_publication_rel r
                WHERE r.prpubid = pub.oid AND r.prrelid = 'kenbun.membership_changes'::regclass) THEN
        RAISE NOTICE 'publication "%" already publishes kenbun.membership_changes', name;
        RETURN;
    END IF;
    -- an empty publication with kenbun's options, of kenbun's owner: what DROP EXTENSION, or a dump
    -- and restore (pg_dump leaves out which publications an extension's table is in), leave of it
    IF pub.puballtables OR NOT pub.pubinsert OR pub.pubupdate OR pub.pubdelete OR pub.pubtruncate
       OR pub.pubowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = pub.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s WHERE s.pnpubid = pub.oid) THEN
        RAISE EXCEPTION 'publication "%" already exists', name
            USING ERRCODE = '42710',
                  DETAIL = 'It is not an empty publication of inserts owned by kenbun''s owner, so kenbun does not add its change log to it.',
                  HINT = 'choose another name, e.g. SELECT kenbun.create_publication(''kenbun_changes'')';
    END IF;
    EXECUTE pg_catalog.format('ALTER PUBLICATION %I ADD TABLE kenbun.membership_changes', name);
END $$;
COMMENT ON FUNCTION kenbun.create_publication(text) IS 'Creates publication name (default kenbun_changes) of the inserts into kenbun.membership_changes, for logical replication or decoding (needs wal_level = logical); adds the table again to that publication left empty by DROP EXTENSION or a restore. Errors: 22023 (empty name or longer than 63 bytes), 42710 (a publication of that name that is not kenbun''s), 42501 (not kenbun_admin).';

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

-- == A full diff (segment_refresh, segment_repair, a synchronous rule change) plans hash joins: right
-- after a fill the membership table has no statistics for the segment, and a nested-loop anti-join
-- compared every member with every row.
ALTER FUNCTION kenbun._recompute(bigint, text) SET enable_nestloop = off;

-- (more parts above this line)
