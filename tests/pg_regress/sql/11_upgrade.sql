-- ALTER EXTENSION kenbun UPDATE from the previous release (0.1.0): definitions and membership
-- survive, maintenance goes on, and the result is the same extension a fresh install gives.
CREATE DATABASE kenbun_upgrade;
\c kenbun_upgrade
SET client_min_messages = warning;
CREATE EXTENSION kenbun VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'kenbun';
CREATE TABLE accounts (id bigint PRIMARY KEY, industry text);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, country text, score int, attributes jsonb);
CREATE TABLE events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
INSERT INTO accounts VALUES (1, 'SaaS'), (2, 'Retail');
INSERT INTO leads SELECT i, 1 + i % 2, CASE WHEN i % 3 = 0 THEN 'US' ELSE 'DE' END, i * 7 % 100,
                         jsonb_build_object('plan', CASE WHEN i % 4 = 0 THEN 'pro' ELSE 'free' END)
                    FROM generate_series(1, 40) i;
INSERT INTO events SELECT i, 'click', now(), '{}' FROM generate_series(1, 40, 5) i;
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
SELECT kenbun.map_field('lead', 'plan', 'attributes.plan', 'text');
SELECT kenbun.define_levels('engagement', 'score', '[{"name":"Cold","min":0},{"name":"Warm","min":30},{"name":"Hot","min":70}]');
INSERT INTO kenbun.segments (name, kind, description, rule) VALUES
  ('us_pro', 'lead', 'US on the pro plan', '{"all":[{"field":"country","op":"eq","value":"US"},{"field":"plan","op":"eq","value":"pro"}]}'),
  ('hot', 'lead', NULL, '{"level":"engagement","op":"eq","value":"Hot"}'),
  ('hot_clickers', 'lead', NULL, '{"all":[{"segment":"hot"},{"event":{"type":"click","count":{"op":"gte","value":1}}}]}'),
  ('saas_accounts', 'account', NULL, '{"field":"industry","op":"eq","value":"SaaS"}');
UPDATE leads SET score = 95 WHERE id IN (1, 6);
UPDATE kenbun.segments SET active = false WHERE name = 'us_pro';
UPDATE kenbun.segments SET active = true WHERE name = 'us_pro';
CREATE TABLE before_defs AS SELECT kenbun.export_definitions() AS d;
CREATE TABLE before_members AS
  SELECT s.name, m.lead_id::text AS member FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id
  UNION ALL
  SELECT s.name, m.account_id::text FROM kenbun.segments s JOIN kenbun.account_members m ON m.segment_id = s.id;
CREATE TABLE before_log AS SELECT count(*) AS n FROM kenbun.membership_changes;
SELECT name, count(*) FROM before_members GROUP BY 1 ORDER BY 1;

ALTER EXTENSION kenbun UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'kenbun';
-- definitions, membership and the change log survive
SELECT kenbun.export_definitions() = d AS same_definitions FROM before_defs;
SELECT count(*) AS membership_differences FROM (
  (SELECT * FROM before_members EXCEPT
   (SELECT s.name, m.lead_id::text FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id
    UNION ALL SELECT s.name, m.account_id::text FROM kenbun.segments s JOIN kenbun.account_members m ON m.segment_id = s.id))
  UNION ALL
  ((SELECT s.name, m.lead_id::text FROM kenbun.segments s JOIN kenbun.lead_members m ON m.segment_id = s.id
    UNION ALL SELECT s.name, m.account_id::text FROM kenbun.segments s JOIN kenbun.account_members m ON m.segment_id = s.id)
   EXCEPT SELECT * FROM before_members)) d;
SELECT (SELECT count(*) FROM kenbun.membership_changes) = n AS log_kept FROM before_log;
-- what 0.1.0 generated now belongs to the extension's owner and is readable by kenbun_reader
SELECT count(*) AS not_owned_by_extension_owner FROM pg_proc p, pg_extension e
 WHERE e.extname = 'kenbun' AND p.pronamespace = 'kenbun'::regnamespace AND p.proowner <> e.extowner;
SELECT has_table_privilege('kenbun_reader', 'kenbun.lead_members', 'SELECT') AS reader_reads_members,
       has_table_privilege('kenbun_reader', 'kenbun.account_members', 'SELECT') AS reader_reads_accounts;
-- maintenance goes on after the update, through the triggers and through segment changes
UPDATE leads SET score = 99, country = 'US', attributes = '{"plan":"pro"}' WHERE id = 2;
DELETE FROM leads WHERE id = 6;
INSERT INTO events VALUES (2, 'click', now(), '{}');
UPDATE accounts SET industry = 'SaaS' WHERE id = 2;
UPDATE kenbun.segments SET rule = '{"level":"engagement","op":"gte","value":"Warm"}' WHERE name = 'hot';
SELECT name, (SELECT count(*) FROM kenbun.segment_drift(name)) AS drift,
       (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = s.id)
     + (SELECT count(*) FROM kenbun.account_members m WHERE m.segment_id = s.id) AS members
  FROM kenbun.segments s ORDER BY id;

-- the updated extension is the one a fresh 0.2.0 install creates: same functions (body, security,
-- settings, grants), tables (columns, grants), triggers
CREATE FUNCTION pg_temp.signature() RETURNS TABLE (what text) LANGUAGE sql AS $$
  SELECT 'function ' || p.oid::regprocedure || ' ' || p.prosecdef || ' ' || p.provolatile::text || ' '
         || COALESCE(p.proconfig::text, '') || ' ' || COALESCE(p.proacl::text, '') || ' ' || md5(p.prosrc)
         || ' ' || pg_get_function_result(p.oid) || ' ' || pg_get_function_arguments(p.oid)
    FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
   WHERE d.classid = 'pg_proc'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kenbun')
     AND d.deptype = 'e'
  UNION ALL
  SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || COALESCE(c.relacl::text, '') || ' '
         || COALESCE((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull, ',' ORDER BY a.attnum)
                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
    FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
   WHERE d.classid = 'pg_class'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kenbun')
     AND d.deptype = 'e'
  UNION ALL
  SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass || ' ' || t.tgfoid::regprocedure || ' ' || t.tgtype::text
    FROM pg_trigger t WHERE t.tgrelid IN ('kenbun.segments'::regclass, 'kenbun.bindings'::regclass)
  UNION ALL
  SELECT 'type ' || t.oid::regtype FROM pg_depend d JOIN pg_type t ON t.oid = d.objid
   WHERE d.classid = 'pg_type'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kenbun')
     AND d.deptype = 'e'
  UNION ALL
  SELECT 'cast ' || c.castsource::regtype || ' -> ' || c.casttarget::regtype || ' ' || c.castcontext::text || ' ' || c.castmethod::text
    FROM pg_depend d JOIN pg_cast c ON c.oid = d.objid
   WHERE d.classid = 'pg_cast'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kenbun')
  UNION ALL
  -- installed in pg_catalog, schema kenbun a member (DROP EXTENSION takes what kenbun generated in it)
  SELECT 'extension in ' || e.extnamespace::regnamespace || ', schemas ' || COALESCE((
           SELECT string_agg(d.objid::regnamespace::text || ' ' || d.deptype::text, ',') FROM pg_depend d
            WHERE d.classid = 'pg_namespace'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid), '')
         || ', depends on schemas ' || COALESCE((
           SELECT string_agg(d.refobjid::regnamespace::text, ',') FROM pg_depend d
            WHERE d.classid = 'pg_extension'::regclass AND d.objid = e.oid AND d.refclassid = 'pg_namespace'::regclass), '')
         || ', dumps ' || (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(e.extconfig) c)
    FROM pg_extension e WHERE e.extname = 'kenbun'
$$;
CREATE TABLE sig_updated AS SELECT * FROM pg_temp.signature();
SELECT what FROM sig_updated WHERE what LIKE 'extension %';
CREATE TABLE generated AS
  SELECT 'kenbun'::regnamespace::oid AS nsp, (SELECT oid FROM pg_extension WHERE extname = 'kenbun') AS ext;
-- without CASCADE it refuses (its DETAIL lists the generated objects; terse here, the list is long)
\set VERBOSITY terse
DROP EXTENSION kenbun;
\set VERBOSITY default
-- DROP EXTENSION kenbun CASCADE takes the generated trigger functions, membership tables and the
-- triggers on the bound tables with it; the application's tables stay writable
DROP EXTENSION kenbun CASCADE;
SELECT (SELECT count(*) FROM pg_namespace n, generated g WHERE n.oid = g.nsp OR n.nspname = 'kenbun') AS schemas,
       (SELECT count(*) FROM pg_class c, generated g WHERE c.relnamespace = g.nsp) AS relations,
       (SELECT count(*) FROM pg_proc p, generated g WHERE p.pronamespace = g.nsp) AS functions,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid IN ('leads'::regclass, 'accounts'::regclass, 'events'::regclass)) AS triggers,
       (SELECT count(*) FROM pg_depend d, generated g
         WHERE (d.refclassid = 'pg_extension'::regclass AND d.refobjid = g.ext)
            OR (d.refclassid = 'pg_namespace'::regclass AND d.refobjid = g.nsp)) AS dependencies;
INSERT INTO leads VALUES (100, 1, 'US', 99, '{}');
UPDATE leads SET score = score + 1;
UPDATE accounts SET industry = 'x';
DELETE FROM events;
CREATE EXTENSION kenbun;
CREATE TABLE sig_fresh AS SELECT * FROM pg_temp.signature();
SELECT count(*) > 80 AS compared_objects FROM sig_fresh;
SELECT 'only after update' AS side, what FROM (SELECT * FROM sig_updated EXCEPT SELECT * FROM sig_fresh) x
UNION ALL
SELECT 'only in fresh install', what FROM (SELECT * FROM sig_fresh EXCEPT SELECT * FROM sig_updated) y
ORDER BY 1, 2;

\c kenbun_regress
DROP DATABASE kenbun_upgrade;
