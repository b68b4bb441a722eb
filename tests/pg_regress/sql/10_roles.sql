-- Roles and privileges, in a database of their own: kenbun_admin defines, kenbun_reader reads, an
-- application role with DML on its own tables only keeps membership true through the triggers.
CREATE DATABASE kenbun_roles;
\c kenbun_roles
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN st || ': ' || msg;
END $$;
GRANT EXECUTE ON FUNCTION try(text) TO PUBLIC;
-- the roles exist, admin is a reader too
SELECT rolname, rolcanlogin, pg_has_role(rolname, 'kenbun_reader', 'MEMBER') AS reads
  FROM pg_roles WHERE rolname LIKE 'kenbun\_%' ORDER BY 1;

CREATE ROLE kb_app;                          -- the application: owns its tables, nothing else
CREATE ROLE kb_admin IN ROLE kenbun_admin;   -- a marketing-ops engineer
CREATE ROLE kb_reader IN ROLE kenbun_reader; -- a BI tool
CREATE ROLE kb_nobody;
GRANT CREATE ON SCHEMA public TO kb_app;
SET ROLE kb_app;
CREATE TABLE accounts (id bigint PRIMARY KEY, industry text);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, country text, score int);
CREATE TABLE events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO accounts VALUES (1, 'SaaS'), (2, 'Retail');
INSERT INTO leads VALUES (1, 1, 'US', 80), (2, 1, 'CA', 10), (3, 2, 'US', 55);
-- an admin can bind only what the app lets it read and put triggers on
GRANT SELECT ON accounts, leads, events TO kb_admin;
RESET ROLE;

SET ROLE kb_admin;
SELECT try($$SELECT kenbun.bind_leads('leads', account_key => 'account_id')$$);
RESET ROLE;
SET ROLE kb_app;
GRANT TRIGGER ON accounts, leads, events TO kb_admin;
RESET ROLE;
SET ROLE kb_admin;
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
SELECT kenbun.define_levels('engagement', 'score', '[{"name":"Cold","min":0},{"name":"Hot","min":50}]');
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('us_hot', 'lead', '{"all":[{"field":"country","op":"eq","value":"US"},{"level":"engagement","op":"eq","value":"Hot"}]}'),
  ('saas_leads', 'lead', '{"account":{"field":"industry","op":"eq","value":"SaaS"}}'),
  ('clicked', 'lead', '{"event":{"type":"click","count":{"op":"gte","value":1}}}'),
  ('big_accounts', 'account', '{"leads":{"count":{"op":"gte","value":2}}}');
SELECT name, (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = s.id)
           + (SELECT count(*) FROM kenbun.account_members m WHERE m.segment_id = s.id) AS members
  FROM kenbun.segments s ORDER BY id;
RESET ROLE;
-- the generated trigger functions belong to the extension's owner, whoever changed the segments
SELECT DISTINCT pg_get_userbyid(p.proowner) = pg_get_userbyid(e.extowner) AS owned_by_extension_owner
  FROM pg_proc p, pg_extension e
 WHERE e.extname = 'kenbun' AND p.pronamespace = 'kenbun'::regnamespace AND p.proname LIKE '\_maintain\_%';

-- the application writes with DML on its own tables only: membership follows
SET ROLE kb_app;
INSERT INTO leads VALUES (4, 2, 'US', 90), (5, 1, 'DE', 5);
UPDATE leads SET score = 20 WHERE id = 1;
UPDATE leads SET account_id = 1 WHERE id = 3;
DELETE FROM leads WHERE id = 2;
INSERT INTO events VALUES (5, 'click', now(), '{}');
UPDATE accounts SET industry = 'SaaS' WHERE id = 2;
TRUNCATE events;
INSERT INTO events VALUES (4, 'click', now(), '{}');
-- ... but reads nothing of kenbun's
SELECT try($$SELECT count(*) FROM kenbun.lead_members$$);
SELECT try($$SELECT count(*) FROM kenbun.membership_changes$$);
SELECT try($$SELECT * FROM kenbun.segment_preview('{"all":[]}')$$);
RESET ROLE;
SELECT s.name, array_agg(m.lead_id ORDER BY m.lead_id) AS members
  FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id GROUP BY s.name ORDER BY 1;
SELECT s.name, array_agg(m.account_id ORDER BY m.account_id) AS members
  FROM kenbun.segments s JOIN kenbun.account_members m ON m.segment_id = s.id GROUP BY s.name ORDER BY 1;
SELECT name, (SELECT count(*) FROM kenbun.segment_drift(name)) AS drift FROM kenbun.segments ORDER BY id;

-- a reader reads membership, the change log and the catalog ...
SET ROLE kb_reader;
SELECT count(*) > 0 AS reads_members FROM kenbun.lead_members;
SELECT count(*) > 0 AS reads_log FROM kenbun.membership_changes;
SELECT name FROM kenbun.segments ORDER BY id;
SELECT kenbun.compile('{"field":"country","op":"eq","value":"US"}');
-- ... changes nothing ...
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('mine', 'lead', '{"all":[]}')$$);
SELECT try($$UPDATE kenbun.segments SET active = false$$);
SELECT try($$UPDATE kenbun.segments SET rule = '{"all":[]}' WHERE name = 'us_hot'$$);
SELECT try($$DELETE FROM kenbun.segments$$);
SELECT try($$SELECT kenbun.segment_copy('us_hot', 'mine')$$);
SELECT try($$SELECT kenbun.segment_refresh('us_hot')$$);
SELECT try($$SELECT kenbun.segment_repair('us_hot')$$);
SELECT try($$SELECT kenbun.map_field('lead', 'c', 'country', 'text')$$);
SELECT try($$SELECT kenbun.define_levels('x', 'score', '[{"name":"a","min":0}]')$$);
SELECT try($$SELECT kenbun.unbind('event')$$);
SELECT try($$SELECT kenbun.import_definitions('{}')$$);
SELECT try($$DELETE FROM kenbun.lead_members$$);
SELECT try($$INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason) VALUES (1, 'lead', '1', 'enter', 'repair')$$);
SELECT try($$SELECT kenbun._recompute(1, 'repair')$$);
SELECT try($$SELECT kenbun._rebuild_maintenance()$$);
SELECT try($$SELECT kenbun._catalog_changed(true)$$);
-- ... and, without SELECT on the leads table, cannot preview or export them
SELECT try($$SELECT * FROM kenbun.segment_preview('{"field":"country","op":"eq","value":"US"}')$$);
SELECT try($$SELECT * FROM kenbun.segment_export('us_hot')$$);
SELECT try($$SELECT * FROM kenbun.segment_members('us_hot')$$);
RESET ROLE;

-- with SELECT and a row-level security policy, preview and export show only the allowed rows
SET ROLE kb_app;
GRANT SELECT ON leads, accounts, events TO kb_reader;
ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_sees_us ON leads FOR SELECT TO kb_reader USING (country = 'US');
RESET ROLE;
SET ROLE kb_reader;
SELECT member_id FROM kenbun.segment_preview('{"all":[]}') ORDER BY 1;
SELECT kenbun.segment_count('{"field":"score","op":"gte","value":0}');
SELECT member_id FROM kenbun.segment_export('saas_leads') ORDER BY 1;
SELECT member_id FROM kenbun.segment_members('saas_leads') ORDER BY 1;
RESET ROLE;
-- the row-level policy does not bend membership: the triggers see every row
SELECT array_agg(m.lead_id ORDER BY m.lead_id) FROM kenbun.lead_members m
  JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name = 'saas_leads';

-- nobody: no kenbun role at all
SET ROLE kb_nobody;
SELECT try($$SELECT * FROM kenbun.segment_preview('{"all":[]}')$$);
SELECT try($$SELECT count(*) FROM kenbun.segments$$);
SELECT try($$SELECT * FROM kenbun.segment_export('us_hot')$$);
RESET ROLE;

-- the triggers run as the extension's owner, so no user code may run inside them: a column of a
-- user-defined type (here a domain whose CHECK records who runs it) is read as text, never cast to,
-- and fields cannot be mapped to user-defined types
CREATE TABLE public.checked_by (who text, superuser boolean);
GRANT INSERT ON public.checked_by TO PUBLIC;
SET ROLE kb_app;
CREATE FUNCTION public.record_checker(v text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.checked_by SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
  RETURN true;
END $$;
CREATE DOMAIN public.tier AS text CHECK (public.record_checker(VALUE));
ALTER TABLE leads ADD COLUMN tier public.tier;
CREATE TYPE public.plan AS ENUM ('free', 'pro');
ALTER TABLE leads ADD COLUMN plan public.plan;
RESET ROLE;
SET ROLE kb_admin;
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('gold', 'lead', '{"field":"tier","op":"in","value":["gold","platinum"]}');
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('pro', 'lead', '{"field":"plan","op":"eq","value":"pro"}');
SELECT name, compiled_sql FROM kenbun.segments WHERE name IN ('gold', 'pro') ORDER BY 1;
-- an override records the role that set it, not kenbun's owner (its function is SECURITY DEFINER)
SELECT kenbun.segment_include('pro', ARRAY['1']);
SELECT segment, member_id, override, created_by FROM kenbun.segment_overrides WHERE segment = 'pro';
SELECT kenbun.segment_clear_override('pro', ARRAY['1']);
SELECT try($$SELECT kenbun.map_field('lead', 'tier2', 'country', 'public.tier')$$);
RESET ROLE;
SET ROLE kb_app;
INSERT INTO leads VALUES (6, 2, 'FR', 1, 'gold');
UPDATE leads SET tier = 'platinum' WHERE id = 3;
UPDATE leads SET tier = 'silver' WHERE id = 6;
UPDATE leads SET plan = 'pro' WHERE id IN (1, 4);
UPDATE leads SET plan = 'free' WHERE id = 4;
RESET ROLE;
SELECT s.name, array_agg(m.lead_id ORDER BY m.lead_id) AS members FROM kenbun.lead_members m
  JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name IN ('gold', 'pro') GROUP BY 1 ORDER BY 1;
SELECT who, superuser, count(*) FROM public.checked_by GROUP BY 1, 2 ORDER BY 1;

-- every SECURITY DEFINER function pins search_path; none but the trigger functions is callable by
-- a role outside kenbun_admin, except that readers consume the change log (consume_changes moves
-- their consumer's position, _change_horizon reads the log's sequence)
SELECT p.oid::regprocedure AS function, p.prorettype = 'trigger'::regtype AS is_trigger,
       has_function_privilege('kb_nobody', p.oid, 'EXECUTE') AS public,
       has_function_privilege('kb_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('kb_admin', p.oid, 'EXECUTE') AS admin
  FROM pg_proc p
 WHERE p.pronamespace = 'kenbun'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;
SELECT count(*) AS definer_without_search_path FROM pg_proc p
 WHERE p.pronamespace = 'kenbun'::regnamespace AND p.prosecdef
   AND NOT COALESCE(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);

-- A role granted neither kenbun role, in a fresh session: PostgreSQL's own permission error gets
-- kenbun's hint (emit_log_hook), also when the first function called is written in SQL
ALTER ROLE kb_nobody LOGIN;
\c kenbun_roles kb_nobody
SELECT * FROM kenbun.lead_segments('1');
\c kenbun_roles kb_nobody
SELECT * FROM kenbun.segment_members('us_hot');
\c kenbun_roles kb_nobody
SELECT kenbun.segment_refresh('us_hot');
\c kenbun_roles kb_nobody
SELECT count(*) FROM kenbun.segments;
\c kenbun_roles postgres
ALTER ROLE kb_nobody NOLOGIN;

\c kenbun_regress
DROP DATABASE kenbun_roles;
DROP ROLE kb_app, kb_admin, kb_reader, kb_nobody;
