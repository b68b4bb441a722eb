-- kenbun manual membership (0.6.0): static segments (hand-kept lists and snapshots), manual overrides
-- of dynamic segments, and each lead's history. Every change is logged with reason 'manual' (a new
-- segment's first members: 'initial') and sent by NOTIFY, and the segments that use the changed one
-- are re-evaluated in the same transaction.

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

CREATE FUNCTION kenbun.segment_add(name text, ids anyarray)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids::text[], 'enter');
$$;

CREATE FUNCTION kenbun.segment_remove(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids, 'exit');
$$;

CREATE FUNCTION kenbun.segment_remove(name text, ids anyarray)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._static_change(name, ids::text[], 'exit');
$$;

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

-- == Overrides of dynamic segments
-- by_role: the role calling segment_include/exclude (this function runs as kenbun's owner, so CURRENT_USER
-- here would be the owner)
CREATE FUNCTION kenbun._override(name text, ids text[], include boolean, by_role name)
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

CREATE FUNCTION kenbun.segment_include(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, true, CURRENT_USER);
$$;

CREATE FUNCTION kenbun.segment_exclude(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, false, CURRENT_USER);
$$;

CREATE FUNCTION kenbun.segment_clear_override(name text, ids text[])
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT kenbun._override(name, ids, NULL, CURRENT_USER);
$$;

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

-- the key as it is (lead_history(42)): any type, passed on as text
CREATE FUNCTION kenbun.lead_history(lead_id anyelement, since timestamptz DEFAULT NULL)
RETURNS TABLE (changed_at timestamptz, segment_id bigint, segment text, change text, reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM kenbun.lead_history(lead_history.lead_id::text, lead_history.since);
$$;
