-- Static segments (hand-kept lists, snapshots), manual overrides of dynamic segments, the BI views
-- and each lead's history: through SQL as a user calls them, in a database of their own.
CREATE DATABASE kenbun_manual;
\c kenbun_manual
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, country text, score int);
CREATE TABLE events (id bigserial PRIMARY KEY, lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO accounts VALUES (1, 'Acme'), (2, 'Bolt');
INSERT INTO leads VALUES (1, 1, 'US', 80), (2, 1, 'CA', 30), (3, 2, 'US', NULL), (4, NULL, NULL, 10), (5, 2, 'DE', 60);
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_accounts('accounts');
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
CREATE FUNCTION members(seg text) RETURNS text LANGUAGE sql AS $$
  SELECT COALESCE(string_agg(member_id::text, ',' ORDER BY member_id), '')
    FROM (SELECT segment_name, member_id FROM kenbun.lead_segment_members
          UNION ALL SELECT segment_name, member_id FROM kenbun.account_segment_members) m
   WHERE m.segment_name = seg
$$;
CREATE FUNCTION drift() RETURNS bigint LANGUAGE sql AS $$
  SELECT COALESCE(sum(missing + unexpected), 0) FROM kenbun.drift_report()
$$;
CREATE TABLE mark (id bigint DEFAULT 0);
INSERT INTO mark VALUES (0);
-- the changes logged since the last call (and move the mark)
CREATE FUNCTION changes() RETURNS TABLE (segment text, member text, change text, reason text) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT COALESCE(s.name, '(deleted)'), c.member_id, c.change, c.reason
    FROM kenbun.membership_changes c LEFT JOIN kenbun.segments s ON s.id = c.segment_id
   WHERE c.id > (SELECT id FROM mark) ORDER BY 1, 2, 3, 4;
  UPDATE mark SET id = (SELECT COALESCE(max(id), 0) FROM kenbun.membership_changes);
END $$;

-- == static segments
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us', 'lead', '{"field":"country","op":"eq","value":"US"}');
-- a static list filled once from a rule, and one kept entirely by hand
INSERT INTO kenbun.segments (name, kind, type, rule) VALUES ('launch_hot', 'lead', 'static', '{"field":"score","op":"gte","value":50}');
INSERT INTO kenbun.segments (name, kind, type) VALUES ('attendees', 'lead', 'static');
-- segments that use them: a lead segment, and an account segment counting the listed leads
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('us_attendees', 'lead', '{"all":[{"segment":"us"},{"segment":"attendees"}]}'),
  ('attending_accounts', 'account', '{"leads":{"where":{"segment":"attendees"}}}');
SELECT name, type, rule IS NULL AS no_rule, depends_on, time_dependent FROM kenbun.segments ORDER BY id;
SELECT members('launch_hot') AS launch_hot, members('attendees') AS attendees;
SELECT * FROM changes();
SELECT kenbun.segment_add('attendees', ARRAY['3', '4', '3']) AS added;
SELECT kenbun.segment_add('attendees', ARRAY[1, 4]::bigint[]) AS added_again;
SELECT members('attendees') AS attendees, members('us_attendees') AS us_attendees, members('attending_accounts') AS accounts;
SELECT * FROM changes();
SELECT kenbun.segment_remove('attendees', ARRAY['3', '5']) AS removed;
SELECT members('attendees') AS attendees, members('us_attendees') AS us_attendees, members('attending_accounts') AS accounts;
SELECT * FROM changes();
-- the rule does not move a static list; a data change does not either
UPDATE leads SET score = 99 WHERE id = 2;
UPDATE leads SET country = 'FR' WHERE id = 1;
SELECT members('launch_hot') AS launch_hot, members('attendees') AS attendees, members('us_attendees') AS us_attendees;
SELECT * FROM changes();
UPDATE leads SET country = 'US' WHERE id = 1;
SELECT * FROM changes();
-- a deleted lead leaves every list
DELETE FROM leads WHERE id = 4;
SELECT members('attendees') AS attendees, members('us_attendees') AS us_attendees;
SELECT * FROM changes();
SELECT drift() AS drift;
-- errors change nothing
SELECT try($$SELECT kenbun.segment_add('attendees', ARRAY['1', '404'])$$);
SELECT try($$SELECT kenbun.segment_add('attendees', ARRAY['x'])$$);
SELECT try($$SELECT kenbun.segment_add('attendees', NULL::text[])$$);
SELECT try($$SELECT kenbun.segment_add('us', ARRAY['2'])$$);
SELECT try($$SELECT kenbun.segment_add('nope', ARRAY['2'])$$);
SELECT try($$UPDATE kenbun.segments SET type = 'dynamic' WHERE name = 'attendees'$$);
SELECT try($$UPDATE kenbun.segments SET active = false WHERE name = 'attendees'$$);
SELECT try($$INSERT INTO kenbun.segments (name, kind) VALUES ('norule', 'lead')$$);
SELECT try($$SELECT kenbun.segment_diagnose('attendees', 'lead')$$) ~ '^0A000' AS diagnose_refused;
SELECT members('attendees') AS attendees;
-- the rule that fills a static list reads what it reads: its author must be allowed to (42501)
CREATE ROLE kenbun_manual_author IN ROLE kenbun_admin;
GRANT SELECT (id, country) ON leads TO kenbun_manual_author;
SET ROLE kenbun_manual_author;
SELECT try($$INSERT INTO kenbun.segments (name, kind, type, rule) VALUES ('by score', 'lead', 'static', '{"field":"score","op":"gte","value":50}')$$) ~ '^42501' AS hidden_column_refused;
SELECT try($$INSERT INTO kenbun.segments (name, kind, type, rule) VALUES ('by country', 'lead', 'static', '{"field":"country","op":"eq","value":"US"}')$$) AS readable_column;
RESET ROLE;
DELETE FROM kenbun.segments WHERE name = 'by country';
REVOKE ALL ON leads FROM kenbun_manual_author;
DROP ROLE kenbun_manual_author;
-- a snapshot freezes the current members
SELECT kenbun.segment_snapshot('us', 'us_launch') > 0 AS snapshot;
SELECT name, type, description LIKE 'snapshot of "us" taken at %' AS described FROM kenbun.segments WHERE name = 'us_launch';
UPDATE leads SET country = 'US' WHERE id = 2;
SELECT members('us') AS us, members('us_launch') AS us_launch;
SELECT * FROM changes();
SELECT try($$SELECT kenbun.segment_snapshot('us', 'us_launch')$$);
-- a copy of a static list has the same members
SELECT kenbun.segment_copy('attendees', 'attendees_copy') > 0 AS copied;
SELECT members('attendees_copy') AS attendees_copy;

-- == overrides of a dynamic segment
-- lead 5 (DE) kept in, lead 1 (US) kept out, whatever the rule says
SELECT kenbun.segment_include('us', ARRAY['5']) AS included, kenbun.segment_exclude('us', ARRAY['1']) AS excluded;
SELECT members('us') AS us, members('us_attendees') AS us_attendees;
SELECT * FROM changes();
SELECT segment, kind, member_id, override FROM kenbun.segment_overrides ORDER BY member_id;
-- maintenance respects them: data changes that would move them do not
UPDATE leads SET country = 'FR' WHERE id = 5;
UPDATE leads SET country = 'US', score = 1 WHERE id = 1;
SELECT members('us') AS us;
SELECT * FROM changes();
SELECT kenbun.segment_drift('us');
SELECT drift() AS drift;
-- the rule decides again once cleared
SELECT kenbun.segment_clear_override('us', ARRAY['1', '5']) AS cleared;
SELECT members('us') AS us, (SELECT count(*) FROM kenbun.member_overrides) AS overrides;
SELECT * FROM changes();
SELECT compiled_sql LIKE '%member_overrides%' AS wrapped FROM kenbun.segments WHERE name = 'us';
SELECT try($$SELECT kenbun.segment_include('attendees', ARRAY['1'])$$);
SELECT try($$SELECT kenbun.segment_exclude('us', ARRAY['404'])$$);
SELECT drift() AS drift;

-- == export and import carry members and overrides
SELECT kenbun.segment_exclude('us', ARRAY['2']) AS excluded;
SELECT jsonb_pretty(s) FROM jsonb_array_elements(kenbun.export_definitions() -> 'segments') s
 WHERE s ->> 'name' IN ('attendees', 'us');
CREATE TABLE doc AS SELECT kenbun.export_definitions() AS d;
SELECT kenbun.segment_clear_override('us', ARRAY['2']);
SELECT kenbun.segment_add('attendees', ARRAY['5']);
SELECT kenbun.import_definitions((SELECT d FROM doc), replace => true) AS imported;
SELECT members('attendees') AS attendees, members('us') AS us,
       (SELECT string_agg(member_id || ':' || override, ',') FROM kenbun.segment_overrides) AS overrides;
SELECT drift() AS drift;

-- == a static list works wherever a segment does: compare, members, export, history, engagement
INSERT INTO events (lead_id, type, occurred_at) VALUES (1, 'view', now());
SELECT only_a, "both", only_b FROM kenbun.segment_compare('attendees', 'us');
SELECT member_id FROM kenbun.segment_members('attendees');
SELECT member_id FROM kenbun.segment_export('attendees');
SELECT sum(entered) AS entered, sum(exited) AS exited FROM kenbun.segment_history('attendees', '1 day', now() - interval '1 day');
SELECT event_type, members_with_event FROM kenbun.segment_engagement('attendees');
SELECT segment FROM kenbun.lead_segments('1') ORDER BY 1;

-- == BI views and history
SELECT segment_name, kind, segment_type, member_id FROM kenbun.lead_segment_members ORDER BY segment_name, member_id;
SELECT segment_name, member_id FROM kenbun.account_segment_members ORDER BY 1, 2;
SELECT segment, change, reason FROM kenbun.lead_history('1');
SELECT count(*) AS none FROM kenbun.lead_history('1', now() + interval '1 day');
-- deleting a segment removes its overrides
SELECT kenbun.segment_include('us', ARRAY['5']);
DELETE FROM kenbun.segments WHERE name IN ('us_attendees');
DELETE FROM kenbun.segments WHERE name = 'us';
SELECT count(*) AS overrides_left FROM kenbun.member_overrides;
\c kenbun_regress
DROP DATABASE kenbun_manual;
