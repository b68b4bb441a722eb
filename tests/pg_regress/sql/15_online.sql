-- Online definition changes (0.5.0): over a table larger than kenbun.sync_max_rows a definition
-- change saves the segment as 'building' and CALL kenbun.segment_build() fills it in batches, each
-- its own transaction; catalog-only changes take no lock on the bound tables.
CREATE DATABASE kenbun_online;
\c kenbun_online
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE TABLE accounts(id bigint PRIMARY KEY, industry text);
CREATE TABLE leads(id text PRIMARY KEY, account_id bigint, country text, score int);
CREATE TABLE events(lead_id text, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO accounts VALUES (1, 'SaaS'), (2, 'Retail');
-- text keys: the batches walk them in the column's collation ('10' < '2')
INSERT INTO leads SELECT g::text, 1 + g % 2, CASE WHEN g % 2 = 0 THEN 'US' ELSE 'DE' END, g FROM generate_series(1, 40) g;
INSERT INTO events SELECT (1 + g % 40)::text, CASE WHEN g % 3 = 0 THEN 'demo' ELSE 'view' END, now() - g * interval '1 hour', '{}'
  FROM generate_series(1, 100) g;
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
CREATE FUNCTION drift() RETURNS TABLE (segment text, member text, problem text) LANGUAGE sql AS $$
  SELECT s.name, d.member_id, d.problem FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2
$$;
CREATE FUNCTION progress() RETURNS TABLE (name text, status text, operation text, rows_done bigint, rows_total bigint,
                                          percent numeric, entered bigint, exited bigint, last_error text)
LANGUAGE sql AS $$
  SELECT name, status, operation, rows_done, rows_total, percent, entered, exited, last_error
    FROM kenbun.segment_progress ORDER BY segment_id
$$;
CREATE FUNCTION members(seg text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name = seg
$$;
ANALYZE leads;

-- up to kenbun.sync_max_rows rows (40 <= 100), the defining statement fills: status ready
SET kenbun.sync_max_rows = 100;
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us now', 'lead', '{"field":"country","op":"eq","value":"US"}');
SELECT * FROM progress();
SELECT members('us now');

-- above it (0: always), the segment is saved as building, with a NOTICE saying what fills it
SET kenbun.sync_max_rows = 0;
SET client_min_messages = notice;
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us', 'lead', '{"field":"country","op":"eq","value":"US"}');
SET client_min_messages = warning;
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('demo', 'lead', '{"event":{"type":"demo","count":{"op":"gte","value":1},"within":"30 days"}}'),
  ('saas', 'account', '{"field":"industry","op":"eq","value":"SaaS"}');
SELECT * FROM progress();
-- readers see no members yet, except those writes touched: writes maintain a building segment
SELECT members('us');
UPDATE leads SET country = 'US' WHERE id = '3';
UPDATE leads SET country = 'DE' WHERE id = '4';
SELECT m.lead_id FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name = 'us' ORDER BY 1;
-- the maintenance of a building segment: the statement-level functions (stripe locks, fresh snapshot),
-- not the row trigger, which decides from the old and new row
SELECT tgname, tgargs <> '' AS has_args FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND NOT tgisinternal ORDER BY 1;

-- CALL segment_build: batches of at least 500 rows, so one batch here; then ready
SET client_min_messages = notice;
CALL kenbun.segment_build('us');
SET client_min_messages = warning;
SELECT * FROM progress();
SELECT members('us'), (SELECT count(*) FROM leads WHERE country = 'US') AS expected;
CALL kenbun.segment_build();
SELECT * FROM progress();
SELECT * FROM drift();
SELECT reason, change, count(*) FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
 WHERE s.name = 'us' GROUP BY 1, 2 ORDER BY 1, 2;

-- a rule change re-evaluates in batches (reason rule_change): members of the old rule stay until then
UPDATE kenbun.segments SET rule = '{"field":"country","op":"eq","value":"DE"}' WHERE name = 'us';
SELECT * FROM progress();
SELECT members('us');
CALL kenbun.segment_build();
SELECT members('us'), (SELECT count(*) FROM leads WHERE country = 'DE') AS expected;
SELECT reason, change, count(*) FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
 WHERE s.name = 'us' GROUP BY 1, 2 ORDER BY 1, 2;

-- refresh and repair without blocking writers: the segment and those using it
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('de demo', 'lead', '{"all":[{"segment":"us"},{"segment":"demo"}]}');
CALL kenbun.segment_build();
DELETE FROM kenbun.lead_members m USING kenbun.segments s
 WHERE s.id = m.segment_id AND s.name = 'de demo'
   AND m.lead_id = (SELECT min(x.lead_id) FROM kenbun.lead_members x WHERE x.segment_id = s.id);
SELECT * FROM drift();
CALL kenbun.segment_repair_concurrently('demo');
SELECT * FROM drift();
SELECT reason, change, count(*) FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
 WHERE s.name = 'de demo' AND reason = 'repair' GROUP BY 1, 2;
-- (time passing, as a refresh sees it: events move out of the window behind kenbun's back)
SET session_replication_role = replica;
UPDATE events SET occurred_at = occurred_at - interval '60 days' WHERE lead_id IN ('7', '8') AND type = 'demo';
RESET session_replication_role;
SELECT * FROM drift();
CALL kenbun.segment_refresh_concurrently('demo');
SELECT * FROM drift();
SELECT s.name, c.member_id, c.change FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
 WHERE c.reason = 'refresh' ORDER BY 1, 2;
SELECT * FROM progress();

-- catalog-only changes take no lock on the bound tables (and leave status alone)
BEGIN;
UPDATE kenbun.segments SET description = 'German leads', refresh_every = '2 hours' WHERE name = 'us';
UPDATE kenbun.segments SET name = 'demo viewers' WHERE name = 'saas';
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND c.relname IN ('leads', 'accounts', 'events') ORDER BY 1, 2;
COMMIT;
-- while a definition change that alters maintenance locks them until it commits
BEGIN;
UPDATE kenbun.segments SET active = false WHERE name = 'demo viewers';
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND c.relname IN ('leads', 'accounts', 'events') ORDER BY 1, 2;
ROLLBACK;
-- (SHARE ROW EXCLUSIVE: triggers are created or replaced, not dropped, so readers never wait; a
-- trigger no longer needed at all is dropped, which takes ACCESS EXCLUSIVE for that moment)
-- status is kenbun's: a value written by anyone else is replaced
UPDATE kenbun.segments SET status = 'building' WHERE name = 'us';
SELECT name, status FROM kenbun.segments ORDER BY id;

-- a build restarted by a rule change, and one stopped by deactivation
UPDATE kenbun.segments SET rule = '{"field":"score","op":"gt","value":30}' WHERE name = 'us';
UPDATE kenbun.segments SET rule = '{"field":"score","op":"gt","value":35}' WHERE name = 'us';
SELECT * FROM progress();
UPDATE kenbun.segments SET active = false WHERE name = 'de demo';
UPDATE kenbun.segments SET rule = '{"field":"score","op":"gt","value":20}' WHERE name = 'de demo';
SELECT name, status, active FROM kenbun.segments ORDER BY id;
CALL kenbun.segment_build();
SELECT * FROM drift();
SELECT members('us'), members('de demo');

-- a failing batch: rolled back, the batches before it kept, the segment left building with
-- last_error; the next CALL resumes after the last batch done. (A trigger on the membership table
-- stands in for any error in the middle of a build.)
SET kenbun.build_batch_rows = 300;
INSERT INTO leads SELECT g::text, 1, 'XX', 0 FROM generate_series(100, 2100) g;
UPDATE kenbun.segments SET rule = '{"field":"country","op":"eq","value":"XX"}' WHERE name = 'us';
CREATE FUNCTION fail_on_1500() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.lead_id = '1500' THEN RAISE EXCEPTION 'injected failure at lead 1500' USING ERRCODE = 'XX123'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_on_1500 BEFORE INSERT ON kenbun.lead_members FOR EACH ROW EXECUTE FUNCTION fail_on_1500();
\set VERBOSITY default
CALL kenbun.segment_build('us');
\set VERBOSITY terse
SELECT name, status, operation, rows_done > 0 AND rows_done % 300 = 0 AS whole_batches_done, last_error FROM progress() WHERE name = 'us';
-- what is there is exact up to the last batch done; past it, the old rule's members (score > 35) wait
SELECT count(*) FILTER (WHERE m.lead_id::text <= b.after_key) = (SELECT count(*) FROM leads l WHERE l.country = 'XX' AND l.id <= b.after_key) AS exact_so_far,
       array_agg(m.lead_id ORDER BY m.lead_id) FILTER (WHERE m.lead_id::text > b.after_key) AS old_rule_past_it
  FROM kenbun.segment_builds b JOIN kenbun.segments s ON s.id = b.segment_id AND s.name = 'us'
  LEFT JOIN kenbun.lead_members m ON m.segment_id = s.id
 GROUP BY b.after_key;
DROP TRIGGER fail_on_1500 ON kenbun.lead_members;
CALL kenbun.segment_build('us');
SELECT * FROM progress() WHERE name = 'us';
SELECT * FROM drift();
RESET kenbun.build_batch_rows;

-- errors
\set VERBOSITY default
BEGIN;
CALL kenbun.segment_build();
ROLLBACK;
CALL kenbun.segment_build('no such segment');
SET kenbun.sync_max_rows = 'lots';
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('x', 'lead', '{"field":"country","op":"eq","value":"US"}');
RESET kenbun.sync_max_rows;
SET kenbun.build_batch_ms = -5;
CALL kenbun.segment_build();
RESET kenbun.build_batch_ms;
SET kenbun.build_batch_rows = '1e3';
CALL kenbun.segment_build();
RESET kenbun.build_batch_rows;
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE kenbun.segments SET description = 'x' WHERE name = 'us';
ROLLBACK;
\set VERBOSITY terse

\c kenbun_regress
DROP DATABASE kenbun_online;
