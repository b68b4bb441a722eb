-- Keys may be bigint, integer, uuid or text; re-binding replaces the old binding.
CREATE TABLE uleads (id uuid PRIMARY KEY, org text, score numeric);
CREATE TABLE uorgs (code text PRIMARY KEY, tier text);
CREATE TABLE uevents (who uuid, kind text, at timestamp, data jsonb);
INSERT INTO uorgs VALUES ('acme', 'gold'), ('bolt', 'silver');
INSERT INTO uleads VALUES
  ('00000000-0000-0000-0000-000000000001', 'acme', 12.5),
  ('00000000-0000-0000-0000-000000000002', 'bolt', 99),
  ('00000000-0000-0000-0000-000000000003', NULL, NULL);
INSERT INTO uevents VALUES ('00000000-0000-0000-0000-000000000002', 'signup', now()::timestamp - interval '1 hour', '{"src":"ads"}');
BEGIN;
SELECT kenbun.bind_leads('uleads', 'id', 'org');
SELECT kenbun.bind_accounts('uorgs', 'code');
SELECT kenbun.bind_events('uevents', 'who', 'kind', 'at', 'data');
SELECT * FROM kenbun.segment_preview('{"field":"score","op":"gt","value":12}');
SELECT member_id FROM kenbun.segment_preview('{"account":{"field":"tier","op":"eq","value":"gold"}}');
SELECT member_id FROM kenbun.segment_preview('{"event":{"type":"signup","within":"1 day","where":{"field":"data.src","op":"eq","value":"ads"}}}');
SELECT member_id FROM kenbun.segment_preview('{"leads":{"where":{"field":"score","op":"gte","value":50}}}', 'account');
SELECT member_id FROM kenbun.segment_preview('{"field":"id","op":"eq","value":"00000000-0000-0000-0000-000000000003"}');
SELECT try($$SELECT kenbun.segment_count('{"field":"id","op":"eq","value":"not-a-uuid"}')$$);
SELECT try($$SELECT kenbun.compile('{"level":"engagement","op":"gte","value":"Warm"}')$$);
ROLLBACK;
SELECT kind, relid FROM kenbun.bindings ORDER BY kind;
DROP TABLE uleads, uorgs, uevents;
