-- kenbun: manage, analyze and troubleshoot segments from SQL.

-- Every function that reads a saved segment's membership refuses an inactive segment the same way.
CREATE FUNCTION kenbun._require_active(seg kenbun.segments)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT seg.active THEN
        RAISE EXCEPTION 'segment "%" is inactive and has no members', seg.name
            USING ERRCODE = '55000', HINT = 'activate it, or preview its rule with kenbun.segment_preview';
    END IF;
END $$;

-- SQL selecting the members (column mid) of a saved, active segment: its membership table.
CREATE FUNCTION kenbun._member_set(seg kenbun.segments)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM kenbun._require_active(seg);
    RETURN format('SELECT m.%I AS mid FROM %s AS m WHERE m.segment_id = %s',
                  (kenbun._members_of(seg.kind)).col, (kenbun._members_of(seg.kind)).tbl, seg.id);
END $$;

CREATE FUNCTION kenbun._same_kind(a kenbun.segments, b kenbun.segments)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF a.kind <> b.kind THEN
        RAISE EXCEPTION 'cannot compare % segment "%" with % segment "%"', a.kind, a.name, b.kind, b.name
            USING ERRCODE = '22023', HINT = 'compare segments of the same kind';
    END IF;
END $$;

CREATE FUNCTION kenbun._compare(x text, y text)
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

CREATE FUNCTION kenbun._compare_members(x text, y text)
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

CREATE FUNCTION kenbun.segment_compare(a text, b text)
RETURNS TABLE (only_a bigint, "both" bigint, only_b bigint, jaccard float8) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sa kenbun.segments := kenbun._segment(a);
    sb kenbun.segments := kenbun._segment(b);
BEGIN
    PERFORM kenbun._same_kind(sa, sb);
    RETURN QUERY SELECT * FROM kenbun._compare(kenbun._member_set(sa), kenbun._member_set(sb));
END $$;

CREATE FUNCTION kenbun.segment_compare(a kenbun.segment_rule, b kenbun.segment_rule, kind text DEFAULT 'lead')
RETURNS TABLE (only_a bigint, "both" bigint, only_b bigint, jaccard float8) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM kenbun._compare(kenbun._rule_query(a, kind), kenbun._rule_query(b, kind));
END $$;

CREATE FUNCTION kenbun.segment_compare_members(a text, b text)
RETURNS TABLE (member_id text, side text) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sa kenbun.segments := kenbun._segment(a);
    sb kenbun.segments := kenbun._segment(b);
BEGIN
    PERFORM kenbun._same_kind(sa, sb);
    RETURN QUERY SELECT * FROM kenbun._compare_members(kenbun._member_set(sa), kenbun._member_set(sb));
END $$;

CREATE FUNCTION kenbun.segment_compare_members(a kenbun.segment_rule, b kenbun.segment_rule, kind text DEFAULT 'lead')
RETURNS TABLE (member_id text, side text) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM kenbun._compare_members(kenbun._rule_query(a, kind), kenbun._rule_query(b, kind));
END $$;

-- The bound table of a segment's kind, its key column and key type.
CREATE FUNCTION kenbun._bound(kind text, OUT tbl regclass, OUT key name, OUT keytype text)
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

-- A key given as text, checked against the type of the bound key: kenbun's error instead of a raw cast's.
CREATE FUNCTION kenbun._check_key(kind text, key text, arg text)
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

CREATE FUNCTION kenbun.segment_members(name text, lim int DEFAULT 100, after text DEFAULT NULL)
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

CREATE FUNCTION kenbun.segment_export(name text)
RETURNS TABLE (member_id text, entered_at timestamptz, member jsonb) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM kenbun.segment_members(name, 2147483647, NULL);
END $$;

CREATE FUNCTION kenbun.segment_history(name text, bucket interval DEFAULT '1 day',
                                       since timestamptz DEFAULT pg_catalog.now() - interval '30 days')
RETURNS TABLE (bucket_start timestamptz, entered bigint, exited bigint, size bigint) LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg kenbun.segments := kenbun._segment(name);
BEGIN
    IF bucket IS NULL OR bucket <= interval '0' THEN
        RAISE EXCEPTION 'bucket must be a positive interval (got %)', bucket USING ERRCODE = '22023';
    END IF;
    IF since IS NULL OR since > pg_catalog.now() THEN
        RAISE EXCEPTION 'since must be a time in the past' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.date_part('epoch', pg_catalog.now() - since) / pg_catalog.date_part('epoch', bucket) > 100000 THEN
        RAISE EXCEPTION 'too many buckets (at most 100000)' USING ERRCODE = '54000', HINT = 'use a larger bucket or a later since';
    END IF;
    RETURN QUERY
    WITH b AS (SELECT g AS s, g + bucket AS e FROM pg_catalog.generate_series(since, pg_catalog.now(), bucket) g),
    c AS (SELECT x.changed_at, x.change FROM kenbun.membership_changes x WHERE x.segment_id = seg.id)
    SELECT b.s,
           (SELECT pg_catalog.count(*) FROM c WHERE c.change = 'enter' AND c.changed_at >= b.s AND c.changed_at < b.e),
           (SELECT pg_catalog.count(*) FROM c WHERE c.change = 'exit' AND c.changed_at >= b.s AND c.changed_at < b.e),
           (SELECT pg_catalog.count(*) FILTER (WHERE c.change = 'enter') - pg_catalog.count(*) FILTER (WHERE c.change = 'exit')
              FROM c WHERE c.changed_at < b.e)
      FROM b ORDER BY b.s;
END $$;

CREATE FUNCTION kenbun.segment_engagement(name text, since timestamptz DEFAULT pg_catalog.now() - interval '30 days')
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

CREATE FUNCTION kenbun.lead_segments(lead_id text)
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

-- the key as it is (lead_segments(42)): any type, passed on as text
CREATE FUNCTION kenbun.lead_segments(lead_id anyelement)
RETURNS TABLE (segment text, entered_at timestamptz) LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM kenbun.lead_segments(lead_segments.lead_id::text);
$$;

CREATE FUNCTION kenbun.drift_report()
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

CREATE FUNCTION kenbun.export_definitions()
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


CREATE FUNCTION kenbun._doc_error(path text, msg text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'invalid definitions document at %: %', path, msg USING ERRCODE = '22023';
END $$;

CREATE FUNCTION kenbun.import_definitions(doc jsonb, replace boolean DEFAULT false)
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

-- segment_why (Rust, src/analysis.rs + src/compile/why.rs): runs with the caller's rights, like
-- segment_diagnose; readers may call it (it reads the bound tables, events and membership tables).
