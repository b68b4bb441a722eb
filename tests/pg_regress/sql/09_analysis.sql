-- Manage, analyze and troubleshoot: compare, export, definitions, members, history, engagement,
-- levels, lead_segments, diagnose, explain, lint, drift_report. Fresh tables with fixed data.
SET client_min_messages = warning;
CREATE TABLE a_accounts (id bigint PRIMARY KEY, name text, industry text, employees int);
CREATE TABLE a_leads (id bigint PRIMARY KEY, account_id bigint, country text, score int, vip boolean,
                      nickname text, last_seen_at timestamptz, attributes jsonb);
CREATE TABLE a_events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO a_accounts VALUES (1, 'Acme', 'SaaS', 50), (2, 'Bolt', 'Retail', 500);
INSERT INTO a_leads VALUES
  (1, 1, 'US', 80, true, NULL, now(), '{"plan":"pro"}'),
  (2, 1, 'US', 60, false, NULL, now(), '{"plan":"free"}'),
  (3, 1, 'CA', 30, true, NULL, now(), '{"plan":"pro"}'),
  (4, 2, 'US', 10, false, NULL, now(), '{}'),
  (5, 2, 'DE', 90, true, NULL, now(), '{"plan":"team"}'),
  (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO a_leads SELECT g, NULL, 'FR', NULL, NULL, NULL, now(), '{}' FROM generate_series(101, 350) g;
INSERT INTO a_events VALUES
  (1, 'page_view', now() - interval '1 day', '{"url":"/pricing"}'),
  (1, 'page_view', now() - interval '2 days', '{"url":"/pricing"}'),
  (1, 'page_view', now() - interval '3 days', '{"url":"/docs"}'),
  (1, 'email_open', now() - interval '1 day', '{}'),
  (2, 'page_view', now() - interval '1 day', '{"url":"/"}'),
  (5, 'email_open', now() - interval '4 days', '{}'),
  (5, 'email_open', now() - interval '5 days', '{}'),
  (3, 'page_view', now() - interval '60 days', '{"url":"/pricing"}');
SELECT kenbun.unmap_field('lead', 'beta');
SELECT kenbun.bind_accounts('a_accounts');
SELECT kenbun.bind_leads('a_leads', account_key => 'account_id');
SELECT kenbun.bind_events('a_events');
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('us', 'lead', '{"field":"country","op":"eq","value":"US"}'),
  ('hot', 'lead', '{"level":"engagement","op":"gte","value":"Hot"}'),
  ('vip', 'lead', '{"field":"vip","op":"eq","value":true}'),
  ('french', 'lead', '{"field":"country","op":"eq","value":"FR"}'),
  ('nobody', 'lead', '{"all":[{"field":"country","op":"eq","value":"USA"},{"field":"score","op":"gt","value":50}]}'),
  ('big', 'account', '{"field":"employees","op":"gte","value":100}'),
  ('engaged', 'account', '{"leads":{"where":{"segment":"hot"}}}');

-- compare
SELECT * FROM kenbun.segment_compare('us', 'hot');
SELECT * FROM kenbun.segment_compare('us', 'vip');
SELECT * FROM kenbun.segment_compare('nobody', 'nobody');
SELECT * FROM kenbun.segment_compare_members('us', 'hot');
SELECT * FROM kenbun.segment_compare('{"field":"country","op":"eq","value":"US"}'::kenbun.segment_rule,
                                     '{"field":"vip","op":"eq","value":true}'::kenbun.segment_rule);
SELECT * FROM kenbun.segment_compare_members('{"field":"industry","op":"eq","value":"SaaS"}'::kenbun.segment_rule,
                                             '{"field":"employees","op":"gt","value":10}'::kenbun.segment_rule, 'account');
SELECT try($$SELECT * FROM kenbun.segment_compare('us', 'big')$$);
SELECT try($$SELECT * FROM kenbun.segment_compare('us', 'hto')$$);

-- members: keyset pagination over a large segment, and account segments
SELECT count(*), min(member_id::int), max(member_id::int) FROM kenbun.segment_members('french');
SELECT count(*), min(member_id::int), max(member_id::int) FROM kenbun.segment_members('french', 100, '200');
SELECT count(*), min(member_id::int), max(member_id::int) FROM kenbun.segment_members('french', 100, '300');
SELECT count(*) FROM kenbun.segment_members('french', 100, '350');
WITH RECURSIVE pages (n, last, total) AS (
  SELECT 1, (SELECT max(member_id::int) FROM kenbun.segment_members('french', 60))::text,
         (SELECT count(*) FROM kenbun.segment_members('french', 60))
  UNION ALL
  SELECT n + 1, (SELECT max(member_id::int) FROM kenbun.segment_members('french', 60, last))::text,
         total + (SELECT count(*) FROM kenbun.segment_members('french', 60, last))
    FROM pages WHERE last IS NOT NULL)
SELECT max(n) AS pages, max(total) AS members FROM pages;
SELECT member_id, member->>'name' AS name FROM kenbun.segment_members('engaged');
SELECT try($$SELECT * FROM kenbun.segment_members('us', -1)$$);

-- export
SELECT member_id, member->>'country' AS country FROM kenbun.segment_export('us');
COPY (SELECT member_id, member->>'country' AS country, member->>'score' AS score FROM kenbun.segment_export('vip')) TO STDOUT WITH CSV HEADER;
SELECT count(*) FROM kenbun.segment_export('nobody');

-- history: size at the end of each bucket equals the membership count
UPDATE a_leads SET country = 'CA' WHERE id = 4;
SELECT row_number() OVER (ORDER BY bucket_start) AS bucket, entered, exited, size
  FROM kenbun.segment_history('us', '1 hour', now() - interval '3 hours');
SELECT (SELECT size FROM kenbun.segment_history('us', '1 hour', now() - interval '3 hours') ORDER BY bucket_start DESC LIMIT 1)
     = (SELECT count(*) FROM kenbun.segment_members('us')) AS size_matches;
SELECT try($$SELECT * FROM kenbun.segment_history('us', '0 seconds')$$);
SELECT try($$SELECT * FROM kenbun.segment_history('us', '1 second', now() - interval '10 years')$$);

-- engagement and level distribution
SELECT event_type, members_with_event, events, round(events_per_member::numeric, 3) AS per_member
  FROM kenbun.segment_engagement('us');
SELECT event_type, members_with_event, events, round(events_per_member::numeric, 3) AS per_member
  FROM kenbun.segment_engagement('engaged');
SELECT * FROM kenbun.segment_engagement('nobody');
SELECT * FROM kenbun.segment_levels('vip', 'engagement');
SELECT * FROM kenbun.segment_levels('french', 'engagement');
SELECT try($$SELECT * FROM kenbun.segment_levels('vip', 'engagment')$$);

-- routing
SELECT segment FROM kenbun.lead_segments('1');
SELECT segment FROM kenbun.lead_segments('6');
SELECT try($$SELECT * FROM kenbun.lead_segments('not-a-number')$$);

-- diagnose: the condition that empties a segment, with hints
SELECT * FROM kenbun.segment_diagnose('nobody');
SELECT * FROM kenbun.segment_diagnose('{"any":[{"field":"nickname","op":"eq","value":"Al"},{"field":"attributes.plan","op":"in","value":["Pro","team"]}]}');
SELECT * FROM kenbun.segment_diagnose('{"not":{"leads":{"count":{"op":"gte","value":3}}}}', 'account');
SELECT try($$SELECT * FROM kenbun.segment_diagnose('nobdy')$$);

-- explain: the plan, index advice, measured maintenance cost
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('pro_viewers', 'lead', '{"all":[{"field":"attributes.plan","op":"eq","value":"pro"},{"event":{"type":"page_view"}}]}');
SELECT line FROM kenbun.segment_explain('pro_viewers') WHERE line LIKE 'advice%';
SELECT count(*) FILTER (WHERE line LIKE 'maintenance: about % ms per changed row%') AS cost_lines,
       count(*) FILTER (WHERE line ~ 'Scan') > 0 AS has_plan
  FROM kenbun.segment_explain('pro_viewers');
SELECT count(*) FILTER (WHERE line ~ 'actual time') > 0 AS analyzed FROM kenbun.segment_explain('pro_viewers', true);
CREATE INDEX ON a_leads ((attributes ->> 'plan'));
CREATE INDEX ON a_events (lead_id, type);
SELECT line FROM kenbun.segment_explain('pro_viewers') WHERE line LIKE 'advice%';

-- lint
SELECT * FROM kenbun.segment_lint('{"all":[{"field":"score","op":"gt","value":50},{"field":"score","op":"lt","value":10}]}');
SELECT * FROM kenbun.segment_lint('{"all":[{"field":"score","op":"gte","value":10},{"field":"score","op":"gte","value":20},{"field":"country","op":"matches","value":"^U"}]}');
SELECT * FROM kenbun.segment_lint('{"any":[{"field":"attributes.tier","op":"eq","value":"gold"},{"field":"last_seen_at","op":"within_last","value":"7 days"}]}');
UPDATE kenbun.segments SET active = false WHERE name = 'hot';
SELECT * FROM kenbun.segment_lint('{"segment":"hot"}');
UPDATE kenbun.segments SET active = true WHERE name = 'hot';
SELECT * FROM kenbun.segment_lint('{"field":"id","op":"gt","value":0}');
SELECT * FROM kenbun.segment_lint('{"field":"industry","op":"eq","value":"SaaS"}', 'account');

-- statements that change many rows take the combined path; membership stays exact
UPDATE a_leads SET score = (id * 7) % 100, attributes = '{"plan":"pro"}' WHERE country = 'FR';
UPDATE a_leads SET country = 'US' WHERE id BETWEEN 101 AND 140;
SELECT count(*) AS hot_members FROM kenbun.segment_members('hot', 1000);
SELECT count(*) AS us_members FROM kenbun.segment_members('us', 1000);
DELETE FROM a_leads WHERE id BETWEEN 301 AND 350;
SELECT count(*) AS french_members FROM kenbun.segment_members('french', 1000);
-- drift over all segments at once
SELECT * FROM kenbun.drift_report();

-- definitions move between databases: export, import (all or nothing)
SELECT jsonb_pretty(kenbun.export_definitions() - 'segments');
SELECT s ->> 'name' AS name FROM jsonb_array_elements(kenbun.export_definitions() -> 'segments') s;
CREATE TABLE saved_doc AS SELECT kenbun.export_definitions() AS doc;
SELECT try($$SELECT kenbun.import_definitions((SELECT doc FROM saved_doc))$$);
SELECT try($$SELECT kenbun.import_definitions('{"segments":[{"name":"x","kind":"lead","rule":{"field":"country","op":"equals","value":"US"}}]}')$$);
SELECT try($$SELECT kenbun.import_definitions('{"fields":[{"kind":"lead","name":"x","path":"attributes.x","type":"nosuchtype"}]}')$$);
SELECT try($$SELECT kenbun.import_definitions('{"segmnts":[]}')$$);
SELECT try($$SELECT kenbun.import_definitions('[]')$$);
-- a document whose second segment does not compile leaves nothing behind
SELECT try($$SELECT kenbun.import_definitions('{"segments":[{"name":"new1","kind":"lead","rule":{"all":[]}},{"name":"new2","kind":"lead","rule":{"field":"nope","op":"is_set"}}]}')$$);
SELECT count(*) FROM kenbun.segments WHERE name LIKE 'new%';
-- round trip: delete everything, import, export again
DELETE FROM kenbun.segments WHERE name IN ('engaged', 'pro_viewers');
DELETE FROM kenbun.segments;
SELECT kenbun.drop_levels('engagement'), kenbun.unmap_field('lead', 'plan');
SELECT kenbun.import_definitions((SELECT doc FROM saved_doc));
SELECT kenbun.export_definitions() = (SELECT doc FROM saved_doc) AS same;
SELECT * FROM kenbun.segment_compare('us', 'hot');
SELECT kenbun.import_definitions((SELECT doc FROM saved_doc), replace => true);
SELECT count(*) FROM kenbun.segments;
DROP TABLE saved_doc;
