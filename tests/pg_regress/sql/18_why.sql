-- kenbun.segment_why: why a lead or account is (not) in a segment. Its own database and fixed data;
-- the only times are events an hour or sixty days old, judged against a 30-day window.
CREATE DATABASE kenbun_why;
\c kenbun_why
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN ' (hint: ' || hint || ')' ELSE '' END;
END $$;

CREATE TABLE accounts (id bigint PRIMARY KEY, name text, industry text, employees int);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, country text, score int, vip boolean, attributes jsonb);
CREATE TABLE events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO accounts VALUES (1, 'Acme', 'SaaS', 50), (2, 'Bolt', 'Retail', 500), (3, 'Corp', NULL, NULL);
INSERT INTO leads VALUES
  (1, 1,    'US', 80,   true,  '{"plan":"pro","seats":5}'),
  (2, 1,    'CA', 30,   false, '{"plan":"free"}'),
  (3, 2,    NULL, NULL, NULL,  NULL),                 -- NULL values, no events
  (4, 99,   'US', 60,   false, '{}'),                 -- its account does not exist
  (5, NULL, 'us', 10,   true,  '{"seats":"many"}'),   -- no account at all
  (6, 3,    'DE', 55,   NULL,  '{"plan":"pro"}');
INSERT INTO events VALUES
  (1, 'page_view', now() - interval '1 hour', '{"url":"/pricing"}'),
  (1, 'page_view', now() - interval '1 hour', '{"url":"/pricing"}'),
  (1, 'page_view', now() - interval '1 hour', '{"url":"/docs"}'),
  (2, 'page_view', now() - interval '60 days', '{"url":"/pricing"}'),
  (4, 'page_view', now() - interval '1 hour', '{"url":"/"}'),
  (6, 'demo_request', now() - interval '1 hour', '{}');
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
SELECT kenbun.define_levels('engagement', 'score',
  '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]');
SELECT kenbun.map_field('lead', 'plan', 'attributes.plan', 'text');
-- a segment is defined after the segments it references
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('big', 'account', '{"field":"employees","op":"gte","value":100}'),
  ('us hot', 'lead', '{"all":[{"field":"country","op":"eq","value":"US"},{"field":"score","op":"gte","value":50},
                              {"event":{"type":"page_view","within":"30 days","count":{"op":"gte","value":3}}}]}'),
  ('not us', 'lead', '{"not":{"field":"country","op":"eq","value":"US"}}');
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('saas', 'lead', '{"account":{"all":[{"field":"industry","op":"eq","value":"SaaS"},{"not":{"segment":"big"}}]}}'),
  ('warm or ref', 'lead', '{"any":[{"segment":"us hot"},{"level":"engagement","op":"in","value":["Warm","Hot"]},
                                   {"field":"attributes.seats","op":"gt","value":2},{"field":"plan","op":"eq","value":"pro"}]}'),
  ('busy', 'account', '{"all":[{"leads":{"where":{"event":{"type":"page_view"}},"count":{"op":"gte","value":2}}},
                               {"not":{"segment":"big"}}]}');

-- 1. saved segments: the membership row, then the tree
SELECT * FROM kenbun.segment_why('us hot', '1');
SELECT * FROM kenbun.segment_why('us hot', '3');        -- NULL values, no events
SELECT * FROM kenbun.segment_why('us hot', '5');        -- 'us' is not "US"
SELECT * FROM kenbun.segment_why('saas', '1');
SELECT * FROM kenbun.segment_why('saas', '3');          -- Retail, and its account is big
SELECT * FROM kenbun.segment_why('saas', '4');          -- its account row is missing
SELECT * FROM kenbun.segment_why('saas', '5');          -- no account
SELECT * FROM kenbun.segment_why('not us', '3');        -- a negated condition on a NULL value
SELECT * FROM kenbun.segment_why('not us', '1');
SELECT * FROM kenbun.segment_why('warm or ref', '2');
SELECT * FROM kenbun.segment_why('warm or ref', '5');
SELECT * FROM kenbun.segment_why('busy', '1');          -- account segments
SELECT * FROM kenbun.segment_why('busy', '2');
SELECT * FROM kenbun.segment_why('big', '3');
-- the key as text in any form the key type reads
SELECT path, result FROM kenbun.segment_why('us hot', ' 01 ') WHERE path IN ('segment', '$');

-- 2. ad-hoc rules
SELECT * FROM kenbun.segment_why('{"field":"vip","op":"is_set"}'::kenbun.segment_rule, '3');
SELECT * FROM kenbun.segment_why('{"field":"vip","op":"is_set"}', '3');   -- rule text where a name goes
SELECT * FROM kenbun.segment_why('{"all":[]}', '3');
SELECT * FROM kenbun.segment_why('{"any":[{"field":"country","op":"neq","value":"US"},{"not":{"level":"engagement","op":"gte","value":"Hot"}}]}', '3');
SELECT * FROM kenbun.segment_why('{"event":{"type":"page_view","where":{"field":"metadata.url","op":"eq","value":"/pricing"},"within":"30 days"}}', '2');
SELECT * FROM kenbun.segment_why('{"event":{"type":["page_view","demo_request"],"count":{"op":"eq","value":0}}}', '3');
SELECT * FROM kenbun.segment_why('{"account":{"leads":{"where":{"field":"score","op":"gt","value":50}}}}', '2');
SELECT * FROM kenbun.segment_why('{"leads":{"where":{"field":"country","op":"eq","value":"US"}}}', '1', 'account');
SELECT * FROM kenbun.segment_why('{"any":[{"field":"industry","op":"is_not_set"},{"segment":"big"}]}', '3', kind => 'account');
-- the nodes of a "where": true when one counted row satisfies them, value how many do
SELECT * FROM kenbun.segment_why('{"event":{"type":"page_view","where":{"any":[{"field":"metadata.url","op":"eq","value":"/pricing"},{"not":{"field":"metadata.url","op":"eq","value":"/docs"}}]}}}', '1');
SELECT * FROM kenbun.segment_why('{"leads":{"where":{"all":[{"event":{"type":"page_view","where":{"field":"metadata.url","op":"eq","value":"/pricing"}}},{"field":"score","op":"gte","value":50}]}}}', '1', 'account');
SELECT * FROM kenbun.segment_why('{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}', '2');

-- 3. the root agrees with the rule's own evaluation (kenbun.compile / segment_preview) for every
-- member, and the tree's nodes are in document order
WITH rules (r) AS (VALUES
  ('{"all":[{"field":"country","op":"eq","value":"US"},{"field":"score","op":"gte","value":50}]}'),
  ('{"not":{"field":"country","op":"eq","value":"US"}}'),
  ('{"any":[{"field":"vip","op":"eq","value":true},{"event":{"type":"page_view","within":"30 days"}}]}'),
  ('{"account":{"field":"industry","op":"neq","value":"SaaS"}}'),
  ('{"not":{"account":{"field":"employees","op":"lt","value":100}}}'),
  ('{"level":"engagement","op":"not_in","value":["Cold","Warm"]}'),
  ('{"segment":"warm or ref"}'))
SELECT r, pg_catalog.count(*) AS members,
       pg_catalog.count(*) FILTER (WHERE w.result = (l.id::text IN (SELECT member_id FROM kenbun.segment_preview(r::kenbun.segment_rule, 'lead', 1000)))) AS agree
  FROM rules, leads l, kenbun.segment_why(r::kenbun.segment_rule, l.id::text) w
 WHERE w.path = '$'
 GROUP BY r ORDER BY r;
SELECT s.name, l.id
  FROM kenbun.segments s JOIN leads l ON s.kind = 'lead', kenbun.segment_why(s.name, l.id::text) w
 WHERE w.path = 'segment' AND w.value <> 'rule'
 ORDER BY 1, 2;
SELECT path, condition FROM kenbun.segment_why('warm or ref', '1');

-- 4. why membership is not the rule
UPDATE kenbun.segments SET active = false WHERE name = 'not us';
SELECT * FROM kenbun.segment_why('not us', '2');
UPDATE kenbun.segments SET active = true WHERE name = 'not us';
SELECT * FROM kenbun.segment_why('not us', '2');
DELETE FROM kenbun.lead_members WHERE segment_id = (SELECT id FROM kenbun.segments WHERE name = 'not us') AND lead_id = 2;
SELECT path, result, value FROM kenbun.segment_why('not us', '2') WHERE path = 'segment';   -- drift
SELECT * FROM kenbun.segment_repair('not us');
SELECT path, result, value FROM kenbun.segment_why('not us', '2') WHERE path = 'segment';

-- 5. static segments and overrides (kenbun 0.6.0)
SELECT kenbun.segment_include('us hot', ARRAY['4']);
SELECT kenbun.segment_exclude('us hot', ARRAY['1']);
SELECT * FROM kenbun.segment_why('us hot', '4');
SELECT * FROM kenbun.segment_why('us hot', '1');
SELECT kenbun.segment_clear_override('us hot', ARRAY['1', '4']);
SELECT path, result, value FROM kenbun.segment_why('us hot', '1') WHERE path = 'segment';
INSERT INTO kenbun.segments (name, kind, type) VALUES ('hand picked', 'lead', 'static');
SELECT kenbun.segment_add('hand picked', ARRAY['2']);
SELECT * FROM kenbun.segment_why('hand picked', '2');
SELECT * FROM kenbun.segment_why('hand picked', '3');

-- 6. errors
SELECT try($$SELECT * FROM kenbun.segment_why('us ht', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('nothing like it', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('us hot', 'abc')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('us hot', '99999999999999999999')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('us hot', '42')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('busy', '9')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"field":"countyr","op":"eq","value":"US"}', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"field":"score","op":"eq","value":"high"}', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"feild":"country"}', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"segment":"big"}', '1')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"event":{}}', '1', 'account')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"all":[]}', '1', 'event')$$);
SELECT try($$SELECT * FROM kenbun.segment_why('{"field":"country","op":"matches","value":"("}', '1')$$);
SELECT count(*) FROM kenbun.segment_why(NULL::text, '1');
SELECT count(*) FROM kenbun.segment_why('us hot', NULL);

\c kenbun_regress
DROP DATABASE kenbun_why;
