-- The 0.6 rule language through SQL: multi-value operators, calendar periods with time zones,
-- windows in the past and future, event aggregates, first_within, stopped, sequences; exact results
-- on fixed data (times relative to now(), placed so that no result depends on the day the test runs),
-- and maintenance of saved segments on event INSERT/UPDATE/DELETE.
CREATE DATABASE kenbun_behaviour;
\c kenbun_behaviour
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, tags text[], attrs jsonb,
                    seen_at timestamptz, local_seen timestamp, signed date, trial_ends timestamptz, last_visit timestamptz);
CREATE TABLE events (id bigserial PRIMARY KEY, lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
-- the start of this month in Auckland, as an instant
CREATE TABLE t AS SELECT date_trunc('month', now() AT TIME ZONE 'Pacific/Auckland') AT TIME ZONE 'Pacific/Auckland' AS akl_month;
INSERT INTO accounts VALUES (1, 'Acme'), (2, 'Bolt');
INSERT INTO leads SELECT v.id, v.acc, v.tags, v.attrs, v.seen, v.lseen, v.signed, v.trial, v.visit FROM t, LATERAL (VALUES
  (1, 1, '{a,b}'::text[], '{"tags":["x","y"]}'::jsonb, t.akl_month, (t.akl_month AT TIME ZONE 'Pacific/Auckland'),
      (now() AT TIME ZONE 'Pacific/Auckland')::date, now() + interval '3 days', now() - interval '10 days'),
  (2, 1, '{}', '{"tags":[]}', t.akl_month - interval '1 second', (t.akl_month AT TIME ZONE 'Pacific/Auckland') - interval '1 second',
      (now() AT TIME ZONE 'Pacific/Auckland')::date - 1, now() + interval '10 days', NULL),
  (3, 2, NULL, '{}', NULL, NULL, NULL, NULL, now() - interval '7 days' + interval '1 minute'),
  (4, 2, '{b,c}', '{"tags":"x"}', t.akl_month - interval '40 days', NULL, NULL, now() - interval '1 day', now() - interval '3 days'),
  (5, NULL, '{a}', '{"tags":["x"]}', t.akl_month - interval '45 days', NULL, NULL, now() + interval '7 days' - interval '1 minute',
      now() - interval '30 days' + interval '1 minute')
) v(id, acc, tags, attrs, seen, lseen, signed, trial, visit);
INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES
  (1, 'purchase', now() - interval '20 days', '{"amount":300}'),
  (1, 'purchase', now() - interval '2 days', '{"amount":250}'),
  (1, 'purchase', now() - interval '2 days', '{"amount":"n/a"}'),
  (2, 'purchase', now() - interval '200 days', '{"amount":100}'),
  (4, 'purchase', now() - interval '1 day', '{}'),
  (5, 'view', now() - interval '1 day', '{"url":"/pricing"}'),
  (1, 'signup', now() - interval '3 days', '{}'),
  (2, 'signup', now() - interval '30 days', '{}'),
  (2, 'signup', now() - interval '2 days', '{}'),
  (1, 'login', now() - interval '40 days', '{}'), (1, 'login', now() - interval '41 days', '{}'), (1, 'login', now() - interval '42 days', '{}'),
  (2, 'login', now() - interval '40 days', '{}'), (2, 'login', now() - interval '41 days', '{}'), (2, 'login', now() - interval '5 days', '{}'),
  (3, 'login', now() - interval '40 days', '{}'),
  (1, 'pricing_view', now() - interval '10 days', '{}'), (1, 'demo', now() - interval '5 days', '{}'),
  (2, 'demo', now() - interval '10 days', '{}'), (2, 'pricing_view', now() - interval '5 days', '{}'),
  (3, 'pricing_view', now() - interval '20 days', '{}'), (3, 'demo', now() - interval '5 days', '{}');
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN ' | HINT: ' || hint ELSE '' END;
END $$;
-- the members a rule selects, and (checked) that its "not" selects exactly the others
CREATE FUNCTION ids(r text, k text DEFAULT 'lead') RETURNS text LANGUAGE plpgsql AS $$
DECLARE yes text; total bigint; want bigint := CASE k WHEN 'lead' THEN 5 ELSE 2 END;
BEGIN
  SELECT string_agg(member_id, ',' ORDER BY member_id::int) INTO yes FROM kenbun.segment_preview(r::kenbun.segment_rule, k, 1000);
  SELECT count(*) INTO total FROM kenbun.segment_preview(('{"any":[' || r || ',{"not":' || r || '}]}')::kenbun.segment_rule, k, 1000);
  IF total <> want THEN
    RETURN 'NOT TWO-VALUED';
  END IF;
  RETURN COALESCE(yes, '');
END $$;

-- == has_any / has_all / has_none: text[] and JSON arrays; NULL, empty and non-array values
SELECT r, ids(r) FROM (VALUES
  ('{"field":"tags","op":"has_any","value":["a","c"]}'),
  ('{"field":"tags","op":"has_all","value":["a","b"]}'),
  ('{"field":"tags","op":"has_none","value":["a"]}'),
  ('{"field":"attrs.tags","op":"has_any","value":["x"]}'),
  ('{"field":"attrs.tags","op":"has_all","value":["x","y"]}'),
  ('{"field":"attrs.tags","op":"has_none","value":["x"]}')) v(r);
SELECT try($$SELECT kenbun.compile('{"field":"tags","op":"has_any","value":[]}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"tags","op":"eq","value":"a"}')$$);

-- == in_period: the condition's time zone, kenbun.timezone, date and timestamp fields
SELECT r, ids(r) FROM (VALUES
  ('{"field":"seen_at","op":"in_period","value":"this_month","tz":"Pacific/Auckland"}'),
  ('{"field":"seen_at","op":"in_period","value":"last_month","tz":"Pacific/Auckland"}'),
  ('{"field":"local_seen","op":"in_period","value":"this_month","tz":"Pacific/Auckland"}'),
  ('{"field":"signed","op":"in_period","value":"today","tz":"Pacific/Auckland"}'),
  ('{"field":"signed","op":"in_period","value":"yesterday","tz":"Pacific/Auckland"}')) v(r);
-- in UTC the same instants fall where PostgreSQL's own date_trunc says
SELECT ids('{"field":"seen_at","op":"in_period","value":"this_month","tz":"UTC"}') =
       (SELECT COALESCE(string_agg(id::text, ',' ORDER BY id), '') FROM leads
         WHERE seen_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           AND seen_at < (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC') AS utc_agrees;
SET kenbun.timezone = 'Pacific/Auckland';
SELECT ids('{"field":"seen_at","op":"in_period","value":"this_month"}') AS default_zone;
RESET kenbun.timezone;
SELECT try($$SELECT kenbun.compile('{"field":"seen_at","op":"in_period","value":"this_month","tz":"Mars/Olympus"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"seen_at","op":"in_period","value":"this_mnth"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"seen_at","op":"eq","value":"2024-01-01","tz":"UTC"}')$$);

-- == between_ago and in_next
SELECT r, ids(r) FROM (VALUES
  ('{"field":"last_visit","op":"between_ago","value":["30 days","7 days"]}'),
  ('{"field":"trial_ends","op":"in_next","value":"7 days"}')) v(r);
SELECT try($$SELECT kenbun.compile('{"field":"seen_at","op":"between_ago","value":["7 days","30 days"]}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"trial_ends","op":"in_next","value":7}')$$);

-- == event aggregates: a metadata path read where it holds a number; no events: sum 0, avg no value
SELECT r, ids(r) FROM (VALUES
  ('{"event":{"type":"purchase","sum":{"field":"metadata.amount","op":"gte","value":500}}}'),
  ('{"event":{"type":"purchase","sum":{"field":"metadata.amount","op":"lt","value":100}}}'),
  ('{"event":{"type":"purchase","within":"30 days","sum":{"field":"metadata.amount","op":"gte","value":500}}}'),
  ('{"event":{"type":"purchase","avg":{"field":"metadata.amount","op":"gte","value":200}}}'),
  ('{"not":{"event":{"type":"purchase","avg":{"field":"metadata.amount","op":"gte","value":200}}}}'),
  ('{"event":{"type":"purchase","max":{"field":"metadata.amount","op":"gt","value":280}}}'),
  ('{"event":{"type":"purchase","min":{"field":"metadata.amount","op":"lte","value":100}}}'),
  ('{"event":{"count_distinct":{"field":"type","op":"gte","value":4}}}')) v(r);
SELECT try($$SELECT kenbun.compile('{"event":{"type":"purchase","count":{"op":"gte","value":1},"sum":{"field":"metadata.amount","op":"gte","value":1}}}')$$);

-- == first_within, stopped, sequence
SELECT r, ids(r) FROM (VALUES
  ('{"event":{"type":"signup","first_within":"7 days"}}'),
  ('{"event":{"type":"login","stopped":"30 days","min_before":2}}'),
  ('{"event":{"type":"login","stopped":"30 days"}}'),
  ('{"sequence":{"steps":[{"type":"pricing_view"},{"type":"demo"}],"max_gap":"7 days"}}'),
  ('{"sequence":{"steps":[{"type":"pricing_view"},{"type":"demo"}]}}'),
  ('{"sequence":{"steps":[{"type":"pricing_view"},{"type":"demo"}],"max_gap":"7 days","within":"8 days"}}')) v(r);
-- accounts through their leads
SELECT ids('{"leads":{"where":{"event":{"type":"purchase","sum":{"field":"metadata.amount","op":"gte","value":500}}}}}', 'account') AS big_spender_accounts,
       ids('{"leads":{"where":{"sequence":{"steps":[{"type":"pricing_view"},{"type":"demo"}],"max_gap":"7 days"}}}}', 'account') AS sequence_accounts;
SELECT try($$SELECT kenbun.compile('{"sequence":{"steps":[{"type":"demo"}]}}')$$);
SELECT try($$SELECT kenbun.compile('{"sequence":{"steps":[{"type":"a"},{"type":"b"}]}}', 'account')$$);

-- == saved segments: time zone kept, boundaries, refresh at the start of a period
SET kenbun.timezone = 'Pacific/Auckland';
INSERT INTO kenbun.segments (name, kind, rule, refresh_every) VALUES
  ('seen this month', 'lead', '{"field":"seen_at","op":"in_period","value":"this_month"}', '1 year');
RESET kenbun.timezone;
SELECT rule::text, time_dependent, boundaries FROM kenbun.segments WHERE name = 'seen this month';
SELECT string_agg(member_id::text, ',') AS members FROM kenbun.lead_segment_members WHERE segment_name = 'seen this month';
UPDATE kenbun.segments SET last_refreshed_at = (SELECT akl_month FROM t) - interval '1 second' WHERE name = 'seen this month';
SELECT kenbun._due(s) AS due_after_month_start FROM kenbun.segments s WHERE name = 'seen this month';
UPDATE kenbun.segments SET last_refreshed_at = (SELECT akl_month FROM t) + interval '1 second' WHERE name = 'seen this month';
SELECT kenbun._due(s) AS due_within_month FROM kenbun.segments s WHERE name = 'seen this month';

-- == maintenance of the event conditions on event INSERT, UPDATE and DELETE
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('big spenders', 'lead', '{"event":{"type":"purchase","sum":{"field":"metadata.amount","op":"gte","value":500}}}'),
  ('high average', 'lead', '{"event":{"type":"purchase","avg":{"field":"metadata.amount","op":"gte","value":200}}}'),
  ('pricing then demo', 'lead', '{"sequence":{"steps":[{"type":"pricing_view"},{"type":"demo"}],"max_gap":"7 days"}}'),
  ('big spender accounts', 'account', '{"leads":{"where":{"segment":"big spenders"}}}'),
  ('many types', 'lead', '{"event":{"count_distinct":{"field":"type","op":"gte","value":4}}}');
CREATE FUNCTION state() RETURNS TABLE (segment text, members text, drift bigint) LANGUAGE sql AS $$
  SELECT s.name, COALESCE((SELECT string_agg(m.member_id::text, ',' ORDER BY m.member_id) FROM kenbun.lead_segment_members m WHERE m.segment_id = s.id),
                          (SELECT string_agg(m.member_id::text, ',' ORDER BY m.member_id) FROM kenbun.account_segment_members m WHERE m.segment_id = s.id), ''),
         (SELECT count(*) FROM kenbun.segment_drift(s.name))
    FROM kenbun.segments s WHERE NOT s.time_dependent ORDER BY s.id
$$;
SELECT * FROM state();
-- an amount changes within a matching event (the rule reads the value, not only which events match)
UPDATE events SET metadata = '{"amount":50}' WHERE lead_id = 1 AND metadata = '{"amount":300}';
SELECT * FROM state();
INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES (2, 'purchase', now(), '{"amount":450}');
SELECT * FROM state();
UPDATE events SET occurred_at = now() - interval '12 days' WHERE lead_id = 2 AND type = 'pricing_view';
SELECT * FROM state();
DELETE FROM events WHERE lead_id = 2 AND type = 'purchase' AND metadata = '{"amount":450}';
UPDATE events SET lead_id = 3 WHERE lead_id = 1 AND type = 'purchase';
SELECT * FROM state();
-- == the rule language as JSON Schema (the full agreement with the parser is a unit test)
SELECT kenbun.rule_schema() ->> '$schema' AS dialect, kenbun.rule_schema() ->> '$id' AS id,
       (SELECT count(*) FROM jsonb_object_keys(kenbun.rule_schema() -> '$defs')) > 10 AS constructs;
\c kenbun_regress
DROP DATABASE kenbun_behaviour;
