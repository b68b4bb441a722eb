-- Fixture shared by the SQL tests (pg_regress runs them in order in one database).
CREATE EXTENSION kenbun;
SET client_min_messages = warning;

CREATE TABLE accounts (id bigint PRIMARY KEY, name text, industry text, employees int);
CREATE TABLE leads (
    id bigint PRIMARY KEY,
    account_id bigint REFERENCES accounts,
    email text,
    country text,
    score int,
    vip boolean,
    last_seen_at timestamptz,
    signed_up date,
    attributes jsonb
);
CREATE TABLE events (id bigserial PRIMARY KEY, lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);

INSERT INTO accounts VALUES (1, 'Acme', 'SaaS', 50), (2, 'Bolt', 'Retail', 500), (3, 'Corp', NULL, NULL);
INSERT INTO leads VALUES
 (1, 1,    'ann@acme.com',    'US', 80,   true,  now() - interval '1 day',    '2024-01-15', '{"plan":"pro","seats":5,"beta":true,"tags":{"src":"ads"}}'),
 (2, 1,    'bob@acme.com',    'CA', 30,   false, now() - interval '40 days',  '2023-06-01', '{"plan":"free","seats":1}'),
 (3, 2,    'cy@bolt.io',      NULL, NULL, NULL,  NULL,                        NULL,         NULL),
 (4, NULL, 'dee@Example.org', 'US', 10,   false, now() - interval '2 hours',  '2024-03-10', '{"plan":"pro","beta":false}'),
 (5, 2,    NULL,              'us', 55,   true,  now() - interval '400 days', '2022-12-31', '{"plan":null,"seats":"many"}'),
 (6, 3,    'eve_1%@corp.de',  'DE', 25,   NULL,  now() - interval '10 days',  '2024-01-15', '{}');
INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES
 (1, 'page_view',    now() - interval '1 hour',  '{"url":"/pricing"}'),
 (1, 'page_view',    now() - interval '1 hour',  '{"url":"/pricing"}'),
 (1, 'page_view',    now() - interval '1 hour',  '{"url":"/home"}'),
 (1, 'demo_request', now() - interval '5 days',  '{}'),
 (2, 'page_view',    now() - interval '60 days', '{"url":"/pricing"}'),
 (4, 'email_open',   now() - interval '2 days',  '{"campaign":"spring"}'),
 (6, 'page_view',    now() - interval '1 day',   '{"url":"/blog"}');

SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_events('events');
SELECT kenbun.define_levels('engagement', 'score',
  '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]');
SELECT kenbun.map_field('lead', 'plan', 'attributes.plan', 'text');
SELECT kenbun.map_field('lead', 'beta', 'attributes.beta', 'boolean');
SELECT kind, relid, key_column, account_column, lead_column, type_column, time_column, metadata_column
  FROM kenbun.bindings ORDER BY kind;

-- Test helpers: the ids a rule selects, and the complement check.
CREATE FUNCTION ids(r kenbun.segment_rule, k text DEFAULT 'lead') RETURNS int[] LANGUAGE sql AS $$
  SELECT COALESCE(array_agg(member_id::int ORDER BY member_id::int), '{}') FROM kenbun.segment_preview(r, k, 1000)
$$;
CREATE FUNCTION universe(k text) RETURNS int[] LANGUAGE sql AS $$
  SELECT CASE k WHEN 'lead' THEN (SELECT array_agg(id::int ORDER BY id) FROM leads)
                ELSE (SELECT array_agg(id::int ORDER BY id) FROM accounts) END
$$;
CREATE FUNCTION minus(a int[], b int[]) RETURNS int[] LANGUAGE sql AS $$
  SELECT COALESCE(array_agg(x ORDER BY x), '{}') FROM unnest(a) x WHERE x <> ALL (b)
$$;
-- Runs a statement and reports its SQLSTATE, message and hint instead of failing.
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN ' | HINT: ' || hint ELSE '' END;
END $$;
-- Checks a table of (rule, expected ids): the rule selects exactly `expect`, its "not" exactly the
-- rest, and segment_count agrees with the preview.
CREATE FUNCTION check_cases(k text, cases jsonb) RETURNS TABLE (rule text, got int[], ok boolean) LANGUAGE sql AS $$
  SELECT c->>'rule',
         ids((c->>'rule')::kenbun.segment_rule, k),
         ids((c->>'rule')::kenbun.segment_rule, k) = ARRAY(SELECT jsonb_array_elements_text(c->'expect')::int)
         AND ids(('{"not":' || (c->>'rule') || '}')::kenbun.segment_rule, k)
             = minus(universe(k), ARRAY(SELECT jsonb_array_elements_text(c->'expect')::int))
         AND kenbun.segment_count((c->>'rule')::kenbun.segment_rule, k) = jsonb_array_length(c->'expect')
    FROM jsonb_array_elements(cases) c
$$;
