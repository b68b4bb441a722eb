-- kenbun bootstrap: catalog tables and the binding / mapping / level functions.
-- Every function pins search_path and names everything schema-qualified.

-- Schema kenbun is created by this script, so that it is a member of the extension: DROP EXTENSION
-- kenbun CASCADE then also drops what kenbun generates inside it (membership tables, trigger
-- functions, and through those the triggers on the bound tables), and pg_dump still dumps those
-- generated objects (they are not members). The extension itself lives in pg_catalog (kenbun.control):
-- PostgreSQL does not let the schema an extension is installed in be one of its members.
CREATE SCHEMA kenbun;
-- pgrx writes its CREATE FUNCTION and CREATE TYPE statements unqualified: they go here
SET LOCAL search_path = kenbun;

CREATE TABLE kenbun.bindings (
    kind            text PRIMARY KEY CHECK (kind IN ('lead', 'account', 'event')),
    relid           regclass NOT NULL,
    key_column      name,   -- leads, accounts: the key
    account_column  name,   -- leads: the account's key
    lead_column     name,   -- events: the lead's key
    type_column     name,   -- events
    time_column     name,   -- events
    metadata_column name,   -- events
    bound_at        timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE kenbun.fields (
    kind text NOT NULL CHECK (kind IN ('lead', 'account', 'event')),
    name text NOT NULL CHECK (name <> ''),
    path text NOT NULL,
    type regtype NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE kenbun.levels (
    name  text PRIMARY KEY CHECK (name <> ''),
    field text NOT NULL,
    tiers jsonb NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('kenbun.bindings', '');
SELECT pg_catalog.pg_extension_config_dump('kenbun.fields', '');
SELECT pg_catalog.pg_extension_config_dump('kenbun.levels', '');

GRANT USAGE ON SCHEMA kenbun TO PUBLIC;
GRANT SELECT ON kenbun.bindings, kenbun.fields, kenbun.levels TO PUBLIC;

-- The type of column `col` of `tbl`, or an error naming the table's columns.
CREATE FUNCTION kenbun._require_column(tbl regclass, col name, what text)
RETURNS regtype LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regtype;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = '22004';
    END IF;
    SELECT a.atttypid::regtype INTO t
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF t IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist (given as %)', col, tbl, what
            USING ERRCODE = '42703',
                  HINT = 'columns of ' || tbl::text || ': ' || COALESCE((
                      SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                        FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped), '(none)');
    END IF;
    RETURN t;
END $$;

CREATE FUNCTION kenbun._require_table(tbl regclass)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl
            USING ERRCODE = '42809', HINT = 'kenbun binds ordinary or partitioned tables';
    END IF;
END $$;

CREATE FUNCTION kenbun._require_key(tbl regclass, col name, what text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regtype := kenbun._require_column(tbl, col, what);
BEGIN
    IF t NOT IN ('bigint'::regtype, 'integer'::regtype, 'uuid'::regtype, 'text'::regtype) THEN
        RAISE EXCEPTION 'key column "%" of % has type %', col, tbl, t
            USING ERRCODE = '42804', HINT = 'key columns may be bigint, integer, uuid or text';
    END IF;
END $$;

-- A table can be bound as one kind only.
CREATE FUNCTION kenbun._check_bound_once(tbl regclass, kind text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    other text;
BEGIN
    SELECT b.kind INTO other FROM kenbun.bindings b WHERE b.relid = tbl AND b.kind <> _check_bound_once.kind;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'table % is already bound as kind "%"', tbl, other
            USING ERRCODE = '55000', HINT = 'bind a different table, or kenbun.unbind(''' || other || ''') first';
    END IF;
END $$;

CREATE FUNCTION kenbun.bind_leads(tbl regclass, key name DEFAULT 'id', account_key name DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM kenbun._require_table(tbl);
    PERFORM kenbun._require_key(tbl, key, 'key');
    IF account_key IS NOT NULL THEN
        PERFORM kenbun._require_key(tbl, account_key, 'account_key');
    END IF;
    INSERT INTO kenbun.bindings AS b (kind, relid, key_column, account_column)
    VALUES ('lead', tbl, key, account_key)
    ON CONFLICT (kind) DO UPDATE
       SET relid = EXCLUDED.relid, key_column = EXCLUDED.key_column,
           account_column = EXCLUDED.account_column, bound_at = pg_catalog.now();
    PERFORM kenbun._check_bound_once(tbl, 'lead');
    PERFORM kenbun._catalog_changed(true);
END $$;

CREATE FUNCTION kenbun.bind_accounts(tbl regclass, key name DEFAULT 'id')
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM kenbun._require_table(tbl);
    PERFORM kenbun._require_key(tbl, key, 'key');
    INSERT INTO kenbun.bindings AS b (kind, relid, key_column)
    VALUES ('account', tbl, key)
    ON CONFLICT (kind) DO UPDATE
       SET relid = EXCLUDED.relid, key_column = EXCLUDED.key_column, bound_at = pg_catalog.now();
    PERFORM kenbun._check_bound_once(tbl, 'account');
    PERFORM kenbun._catalog_changed(true);
END $$;

CREATE FUNCTION kenbun.bind_events(tbl regclass, lead_key name DEFAULT 'lead_id', type_column name DEFAULT 'type',
                                   time_column name DEFAULT 'occurred_at', metadata_column name DEFAULT 'metadata')
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regtype;
BEGIN
    PERFORM kenbun._require_table(tbl);
    PERFORM kenbun._require_key(tbl, lead_key, 'lead_key');
    PERFORM kenbun._require_column(tbl, type_column, 'type_column');
    t := kenbun._require_column(tbl, time_column, 'time_column');
    IF t NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'time column "%" of % has type %', time_column, tbl, t
            USING ERRCODE = '42804', HINT = 'the time column must be timestamptz, timestamp or date';
    END IF;
    IF metadata_column IS NOT NULL THEN
        t := kenbun._require_column(tbl, metadata_column, 'metadata_column');
        IF t <> 'jsonb'::regtype THEN
            RAISE EXCEPTION 'metadata column "%" of % has type %', metadata_column, tbl, t
                USING ERRCODE = '42804', HINT = 'the metadata column must be jsonb, or pass metadata_column => NULL';
        END IF;
    END IF;
    INSERT INTO kenbun.bindings AS b (kind, relid, lead_column, type_column, time_column, metadata_column)
    VALUES ('event', tbl, lead_key, type_column, time_column, metadata_column)
    ON CONFLICT (kind) DO UPDATE
       SET relid = EXCLUDED.relid, lead_column = EXCLUDED.lead_column, type_column = EXCLUDED.type_column,
           time_column = EXCLUDED.time_column, metadata_column = EXCLUDED.metadata_column,
           bound_at = pg_catalog.now();
    PERFORM kenbun._check_bound_once(tbl, 'event');
    PERFORM kenbun._catalog_changed(true);
END $$;

CREATE FUNCTION kenbun._require_kind(kind text)
RETURNS regclass LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r regclass;
BEGIN
    IF kind IS NULL OR kind NOT IN ('lead', 'account', 'event') THEN
        RAISE EXCEPTION 'invalid kind "%"', kind
            USING ERRCODE = '22023', HINT = 'kind is "lead", "account" or "event"';
    END IF;
    SELECT b.relid INTO r FROM kenbun.bindings b WHERE b.kind = _require_kind.kind;
    IF r IS NULL THEN
        RAISE EXCEPTION 'no table is bound for kind "%"', kind
            USING ERRCODE = '55000',
                  HINT = format('bind one first with kenbun.bind_%s', CASE kind WHEN 'lead' THEN 'leads' WHEN 'account' THEN 'accounts' ELSE 'events' END);
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION kenbun.map_field(kind text, field text, path text, type regtype)
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

CREATE FUNCTION kenbun.unmap_field(kind text, field text)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM kenbun.fields f WHERE f.kind = unmap_field.kind AND f.name = unmap_field.field;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM kenbun._catalog_changed();
    RETURN true;
END $$;

CREATE FUNCTION kenbun.define_levels(name text, field text, tiers jsonb)
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

CREATE FUNCTION kenbun.drop_levels(name text)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM kenbun.levels l WHERE l.name = drop_levels.name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM kenbun._catalog_changed();
    RETURN true;
END $$;

-- NULL when `pattern` is a valid POSIX regular expression, else PostgreSQL's message about it.
CREATE FUNCTION kenbun._regex_error(pattern text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM '' ~ pattern;
    RETURN NULL;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN SQLERRM;
END $$;
