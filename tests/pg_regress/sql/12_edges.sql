-- Membership at the edges (issue 10): a lead rule over its account's leads stays true when a sibling
-- changes; a definition may read only columns its author may read; levels are checked when defined;
-- repair and refresh cascade to the segments that use a segment; inactive segments have no members.
CREATE DATABASE kenbun_edges;
\c kenbun_edges
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
GRANT EXECUTE ON FUNCTION try(text) TO PUBLIC;

-- 1. the issue's scenario, as written
CREATE TABLE accounts(id bigint PRIMARY KEY, name text);
CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, score int);
INSERT INTO accounts VALUES (1,'a'),(2,'b');
INSERT INTO leads VALUES (1,1,10),(2,1,60),(3,2,70);
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
INSERT INTO kenbun.segments(name, kind, rule) VALUES ('team of two hot', 'lead',
 '{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}');
UPDATE leads SET score = 90 WHERE id = 1;   -- account 1 now has two hot leads
SELECT lead_id FROM kenbun.lead_members ORDER BY 1;
SELECT * FROM kenbun.segment_drift('team of two hot');
INSERT INTO leads VALUES (4,2,99);          -- account 2 now has two hot leads
SELECT * FROM kenbun.segment_drift('team of two hot');
SELECT lead_id FROM kenbun.lead_members ORDER BY 1;
-- through a segment that references it, and through an account segment used in {"account": …}
INSERT INTO kenbun.segments(name, kind, rule) VALUES
  ('not on a hot team', 'lead', '{"not":{"segment":"team of two hot"}}'),
  ('two hot leads', 'account', '{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}'),
  ('on a two-hot account', 'lead', '{"account":{"segment":"two hot leads"}}');
CREATE FUNCTION drift() RETURNS TABLE (segment text, member_id text, problem text) LANGUAGE sql AS $$
  SELECT s.name, d.member_id, d.problem FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2
$$;
DELETE FROM leads WHERE id = 2;             -- a sibling leaves: lead 1's team has one hot lead
SELECT * FROM drift();
UPDATE leads SET account_id = 1 WHERE id = 4;   -- a lead moves: both accounts' leads change
SELECT * FROM drift();
SELECT s.name, array_agg(m.lead_id ORDER BY m.lead_id) AS members
  FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id GROUP BY 1 ORDER BY 1;
-- many rows at once (the bulk path), and an upsert
INSERT INTO leads SELECT i, 2, 40 + i % 30 FROM generate_series(10, 60) i;
SELECT * FROM drift();
INSERT INTO leads VALUES (3, 1, 5) ON CONFLICT (id) DO UPDATE SET account_id = 1, score = 80;
UPDATE leads SET score = 0 WHERE account_id = 2;
SELECT * FROM drift();
TRUNCATE leads;
SELECT * FROM drift();
SELECT count(*) AS members_left FROM kenbun.lead_members;

-- 2. a segment reads columns its author may not
CREATE TABLE people(id bigint PRIMARY KEY, account_id bigint, country text, salary int, score int);
INSERT INTO people VALUES (1, 1, 'US', 150000, 10), (2, 1, 'DE', 50000, 90);
SELECT kenbun.bind_leads('people', account_key => 'account_id');
DELETE FROM kenbun.segments WHERE name IN ('not on a hot team', 'on a two-hot account');
DELETE FROM kenbun.segments WHERE name IN ('team of two hot', 'two hot leads');
CREATE ROLE kb_edges_admin IN ROLE kenbun_admin;
GRANT SELECT (id, account_id, country) ON people TO kb_edges_admin;
SET ROLE kb_edges_admin;
SELECT try($$SELECT count(*) FROM people WHERE salary > 100000$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('rich', 'lead', '{"field":"salary","op":"gt","value":100000}')$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us', 'lead', '{"field":"country","op":"eq","value":"US"}')$$);
SELECT try($$UPDATE kenbun.segments SET rule = '{"all":[{"field":"country","op":"eq","value":"US"},{"field":"salary","op":"gt","value":1}]}' WHERE name = 'us'$$);
SELECT rule FROM kenbun.segments WHERE name = 'us';
SELECT try($$SELECT kenbun.map_field('lead', 'pay', 'salary', 'int')$$);
SELECT try($$SELECT kenbun.define_levels('pay band', 'salary', '[{"name":"low","min":0},{"name":"high","min":100000}]')$$);
SELECT try($$SELECT kenbun.import_definitions('{"version":1,"segments":[{"name":"rich2","kind":"lead","rule":{"field":"salary","op":"gt","value":1}}]}')$$);
RESET ROLE;
SELECT name FROM kenbun.segments ORDER BY 1;
SELECT count(*) AS fields, (SELECT count(*) FROM kenbun.levels) AS levels FROM kenbun.fields;
-- the owner's own recompiles are not the author's: a grant later, it works
GRANT SELECT (salary) ON people TO kb_edges_admin;
SET ROLE kb_edges_admin;
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('rich', 'lead', '{"field":"salary","op":"gt","value":100000}')$$);
RESET ROLE;
SELECT s.name, m.lead_id FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id ORDER BY 1, 2;
-- leads were re-bound from "leads" to "people": the old table keeps no trigger of kenbun's, and its
-- writes no longer touch membership
SELECT count(*) AS triggers_left_on_old_table FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND NOT tgisinternal;
INSERT INTO leads VALUES (1, 1, 10);
DELETE FROM leads;
SELECT * FROM drift();

-- 3. levels are checked when they are defined
SELECT try($$SELECT kenbun.define_levels('bad', 'country', '[{"name":"A","min":0}]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'scor', '[{"name":"A","min":0}]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'no_such_field', '[{"name":"A","min":0}]')$$);
SELECT count(*) AS levels FROM kenbun.levels WHERE name = 'bad';
SELECT try($$SELECT kenbun.define_levels('engagement', 'score', '[{"name":"Cold","min":0},{"name":"Hot","min":50}]')$$);

-- 4. repair and refresh cascade to the segments that use a segment, in dependency order
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('hot', 'lead', '{"level":"engagement","op":"eq","value":"Hot"}'),
  ('hot us', 'lead', '{"all":[{"segment":"hot"},{"segment":"us"}]}'),
  ('not hot us', 'lead', '{"not":{"segment":"hot us"}}');
-- break membership behind kenbun's back (as a failed restore or a manual edit would)
ALTER TABLE people DISABLE TRIGGER USER;
UPDATE people SET score = 99, country = 'US' WHERE id = 2;
ALTER TABLE people ENABLE TRIGGER USER;
SELECT * FROM drift();
SELECT * FROM kenbun.segment_repair('hot');
SELECT * FROM drift();
ALTER TABLE people DISABLE TRIGGER USER;
UPDATE people SET score = 1 WHERE id = 2;
ALTER TABLE people ENABLE TRIGGER USER;
SELECT * FROM kenbun.segment_refresh('hot');
SELECT * FROM drift();
SELECT * FROM kenbun.segment_repair('us');
SELECT * FROM drift();
SELECT reason, change, count(*) FROM kenbun.membership_changes
 WHERE reason IN ('repair', 'refresh') GROUP BY 1, 2 ORDER BY 1, 2;

-- membership rows of a segment that does not exist (written behind kenbun's back) are reported
INSERT INTO kenbun.lead_members (segment_id, lead_id) VALUES (999, 1), (999, 2);
SELECT * FROM kenbun.drift_report() WHERE missing + unexpected > 0;
DELETE FROM kenbun.lead_members WHERE segment_id = 999;

-- 5. every function that reads a saved segment's membership refuses an inactive segment the same way
UPDATE kenbun.segments SET active = false WHERE name = 'us';
SELECT try($$SELECT * FROM kenbun.segment_members('us')$$);
SELECT try($$SELECT * FROM kenbun.segment_export('us')$$);
SELECT try($$SELECT * FROM kenbun.segment_compare('us', 'hot')$$);
SELECT try($$SELECT * FROM kenbun.segment_compare_members('hot', 'us')$$);
SELECT try($$SELECT * FROM kenbun.segment_levels('us', 'engagement')$$);
CREATE TABLE events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
SELECT kenbun.bind_events('events');
SELECT try($$SELECT * FROM kenbun.segment_engagement('us')$$);
-- the segments that use it still apply its rule
SELECT * FROM drift();

\c kenbun_regress
DROP DATABASE kenbun_edges;
DROP ROLE kb_edges_admin;
