-- Saved segments: membership kept true by triggers in the same transaction.
SET client_min_messages = warning;
CREATE FUNCTION members(seg text) RETURNS text[] LANGUAGE sql AS $$
  SELECT COALESCE(array_agg(m.lead_id::text ORDER BY m.lead_id), '{}') FROM kenbun.lead_members m
   WHERE m.segment_id = (SELECT id FROM kenbun.segments WHERE name = seg)
  UNION ALL
  SELECT COALESCE(array_agg(m.account_id::text ORDER BY m.account_id), '{}') FROM kenbun.account_members m
   WHERE m.segment_id = (SELECT id FROM kenbun.segments WHERE name = seg)
  LIMIT 1
$$;
-- drift of every segment that is not time-dependent (must always be 0)
CREATE FUNCTION drift_all() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM kenbun.segments s, kenbun.segment_drift(s.name) d WHERE NOT s.time_dependent
$$;
CREATE TABLE mark (id bigint);
INSERT INTO mark SELECT COALESCE(max(id), 0) FROM kenbun.membership_changes;
-- the changes logged since the last call, then move the mark
CREATE FUNCTION changes() RETURNS TABLE (segment text, member text, change text, reason text) LANGUAGE sql AS $$
  SELECT COALESCE(s.name, '(deleted)'), c.member_id, c.change, c.reason
    FROM kenbun.membership_changes c LEFT JOIN kenbun.segments s ON s.id = c.segment_id
   WHERE c.id > (SELECT id FROM mark) ORDER BY 1, 2, 3, 4;
$$;
CREATE FUNCTION advance() RETURNS void LANGUAGE sql AS $$
  UPDATE mark SET id = (SELECT COALESCE(max(id), 0) FROM kenbun.membership_changes)
$$;

INSERT INTO kenbun.segments (name, kind, description, rule) VALUES
 ('us', 'lead', 'Leads in the US', '{"field":"country","op":"eq","value":"US"}'),
 ('hot', 'lead', NULL, '{"level":"engagement","op":"gte","value":"Hot"}'),
 ('hot_us', 'lead', NULL, '{"all":[{"segment":"us"},{"segment":"hot"}]}'),
 ('saas', 'lead', NULL, '{"account":{"field":"industry","op":"eq","value":"SaaS"}}'),
 ('pricing', 'lead', NULL, '{"event":{"type":"page_view","where":{"field":"metadata.url","op":"eq","value":"/pricing"},"count":{"op":"gte","value":2}}}'),
 ('active_week', 'lead', NULL, '{"field":"last_seen_at","op":"within_last","value":"7 days"}'),
 ('everyone', 'lead', NULL, '{"all":[]}'),
 ('big_accounts', 'account', NULL, '{"field":"employees","op":"gte","value":100}'),
 ('engaged_accounts', 'account', NULL, '{"leads":{"where":{"segment":"hot"}}}');
SELECT name, kind, active, time_dependent, refresh_every, depends_on, last_refreshed_at IS NOT NULL AS refreshed,
       members(name) FROM kenbun.segments ORDER BY id;
SELECT * FROM changes(); SELECT advance();
SELECT drift_all();

-- lead UPDATE of a column some segments read: only those are re-evaluated
UPDATE leads SET score = 60 WHERE id = 2;
SELECT * FROM changes(); SELECT advance();
-- an UPDATE of a column no segment reads changes nothing and fires no maintenance
UPDATE leads SET email = 'cy@bolt.example' WHERE id = 3;
SELECT * FROM changes(); SELECT advance();
SELECT tgname FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'kenbun%' ORDER BY 1;
-- a time-window column
UPDATE leads SET last_seen_at = now() WHERE id = 6;
SELECT * FROM changes(); SELECT advance();
-- a lead moving to another account
UPDATE leads SET account_id = 3 WHERE id = 1;
SELECT * FROM changes(); SELECT advance();
-- account rows
UPDATE accounts SET industry = 'SaaS' WHERE id = 3;
SELECT * FROM changes(); SELECT advance();
INSERT INTO accounts VALUES (4, 'Dyna', 'SaaS', 1000);
SELECT * FROM changes(); SELECT advance();
-- event rows
INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES (2, 'page_view', now(), '{"url":"/pricing"}');
SELECT * FROM changes(); SELECT advance();
DELETE FROM events WHERE lead_id = 1 AND metadata ->> 'url' = '/pricing';
SELECT * FROM changes(); SELECT advance();
UPDATE events SET lead_id = 1 WHERE lead_id = 2 AND type = 'page_view';
SELECT * FROM changes(); SELECT advance();
-- lead INSERT and DELETE
INSERT INTO leads VALUES (7, 2, 'gus@bolt.io', 'US', 90, true, now(), '2024-05-05', '{"plan":"team"}');
SELECT * FROM changes(); SELECT advance();
DELETE FROM leads WHERE id = 5;
SELECT * FROM changes(); SELECT advance();
-- account DELETE (its leads first leave it)
UPDATE leads SET account_id = NULL WHERE account_id = 3;
SELECT * FROM changes(); SELECT advance();
DELETE FROM accounts WHERE id = 3;
SELECT * FROM changes(); SELECT advance();
-- a bulk statement is one pass; a rolled-back one leaves nothing
UPDATE leads SET score = score + 20;
SELECT * FROM changes(); SELECT advance();
BEGIN;
UPDATE leads SET country = 'US';
SELECT members('us');
ROLLBACK;
SELECT members('us');
SELECT drift_all();

-- rule changes recompute as a diff and cascade to segments that use the segment
UPDATE kenbun.segments SET rule = '{"field":"country","op":"in","value":["US","CA"]}' WHERE name = 'us';
SELECT * FROM changes(); SELECT advance();
SELECT name, members(name) FROM kenbun.segments WHERE name IN ('us', 'hot_us') ORDER BY 1;
-- cycles, references, bad rules: clear errors and nothing changes
SELECT try($$UPDATE kenbun.segments SET rule = '{"segment":"hot_us"}' WHERE name = 'us'$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('self', 'lead', '{"not":{"segment":"self"}}')$$);
SELECT try($$DELETE FROM kenbun.segments WHERE name = 'hot'$$);
SELECT try($$UPDATE kenbun.segments SET name = 'hot!' WHERE name = 'hot'$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('bad', 'lead', '{"field":"countyr","op":"eq","value":"US"}')$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('bad', 'lead', '{"field":"country","op":"equals","value":"US"}')$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('bad', 'account', '{"segment":"us"}')$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us', 'lead', '{"all":[]}')$$);
SELECT try($$UPDATE kenbun.segments SET kind = 'account' WHERE name = 'everyone'$$);
SELECT try($$TRUNCATE kenbun.segments$$);
SELECT try($$SELECT kenbun.segment_refresh('nope')$$);
SELECT try($$SELECT kenbun.unbind('lead')$$);
SELECT * FROM changes();
SELECT count(*) FROM kenbun.segments;

-- deactivate empties membership and stops maintenance; activate refills
UPDATE kenbun.segments SET active = false WHERE name = 'hot';
SELECT * FROM changes(); SELECT advance();
UPDATE leads SET score = 99 WHERE id = 4;
SELECT members('hot'), members('hot_us');
UPDATE kenbun.segments SET active = true WHERE name = 'hot';
SELECT * FROM changes(); SELECT advance();
-- copy: definition and description, membership recomputed
SELECT kenbun.segment_copy('us', 'us_copy') > 0 AS copied;
SELECT name, kind, description, rule, members(name) FROM kenbun.segments WHERE name = 'us_copy';
DELETE FROM kenbun.segments WHERE name = 'us_copy';
SELECT * FROM changes(); SELECT advance();
SELECT count(*) FROM kenbun.lead_members m WHERE NOT EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.id = m.segment_id);

-- time windows: membership changes with no write; refresh recomputes as a diff
ALTER TABLE leads DISABLE TRIGGER USER;
UPDATE leads SET last_seen_at = now() - interval '8 days' WHERE id = 6;
ALTER TABLE leads ENABLE TRIGGER USER;
SELECT * FROM kenbun.segment_drift('active_week');
SELECT * FROM kenbun.segment_refresh('active_week');
SELECT * FROM changes(); SELECT advance();
SELECT * FROM kenbun.segment_drift('active_week');
UPDATE kenbun.segments SET last_refreshed_at = now() - interval '2 hours' WHERE name = 'active_week';
SELECT kenbun.refresh_due(), kenbun.refresh_due();
-- repair: membership tampered with by hand
DELETE FROM kenbun.lead_members WHERE segment_id = (SELECT id FROM kenbun.segments WHERE name = 'everyone') AND lead_id = 1;
INSERT INTO kenbun.lead_members (segment_id, lead_id) SELECT id, 5 FROM kenbun.segments WHERE name = 'us';
SELECT s.name, d.* FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2;
SELECT * FROM kenbun.segment_repair('everyone');
SELECT * FROM kenbun.segment_repair('us');
SELECT * FROM changes(); SELECT advance();
SELECT drift_all();

-- TRUNCATE of a bound table
TRUNCATE events;
SELECT * FROM changes(); SELECT advance();
SELECT drift_all();

-- "segments of this lead" and "members of this segment" are index scans
-- (index only, plain or bitmap scan depending on the visibility map: the test names the index only)
SET enable_seqscan = off;
CREATE FUNCTION pg_temp.index_used(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE l text; found text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    found := COALESCE(found, substring(l from 'lead_members_[a-z_]+'));
  END LOOP;
  RETURN found;
END $f$;
SELECT pg_temp.index_used('SELECT segment_id FROM kenbun.lead_members WHERE lead_id = 1');
SELECT pg_temp.index_used('SELECT lead_id FROM kenbun.lead_members WHERE segment_id = 1');
RESET enable_seqscan;

-- deleting segments empties their membership; then the tables can be unbound
DELETE FROM kenbun.segments WHERE name IN ('hot_us', 'engaged_accounts');
DELETE FROM kenbun.segments;
SELECT count(*) FROM kenbun.lead_members;
SELECT count(*) FROM kenbun.account_members;
SELECT kenbun.unbind('event');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass AND tgname LIKE 'kenbun%';
SELECT kenbun.bind_events('events');
-- NOTIFY payloads stay under PostgreSQL's 8000 bytes whatever the ids and the segment name: each call
-- returns how many notifications it sent
BEGIN;
SELECT kenbun._notify(1, 'short', 'lead', 'enter', 'initial', ARRAY(SELECT g::text FROM generate_series(1, 20000) g)) AS batches;
SELECT kenbun._notify(1, repeat(chr(1), 255), 'lead', 'enter', 'initial',
                      ARRAY(SELECT repeat(chr(2), 40) || g FROM generate_series(1, 3000) g)) AS batches;
ROLLBACK;
