-- The change log as an interface (issue 12), in a database of its own: changes_since pages through
-- committed changes in id order, named consumers get each change once and move only when their
-- transaction commits, prune_changes keeps what a consumer has not consumed, and a publication of
-- the log for logical decoding. (The concurrent cases — commit order, two workers, prune beside
-- writers, the decoded stream — are in tests/changes.rs.)
CREATE DATABASE kenbun_changes;
\c kenbun_changes
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

CREATE TABLE leads (id bigint PRIMARY KEY, score int);
INSERT INTO leads SELECT g, g * 10 FROM generate_series(1, 6) g;
SELECT kenbun.bind_leads('leads');
-- ids printed relative to the log before the first segment
CREATE TABLE base AS SELECT COALESCE(max(id), 0) AS id FROM kenbun.membership_changes;
CREATE FUNCTION show(after_id bigint, lim int DEFAULT 1000)
RETURNS TABLE (n bigint, segment text, member_id text, change text, reason text) LANGUAGE sql AS $$
  SELECT c.id - (SELECT id FROM base), s.name, c.member_id, c.change, c.reason
    FROM kenbun.changes_since(after_id + (SELECT id FROM base), lim) c
    LEFT JOIN kenbun.segments s ON s.id = c.segment_id ORDER BY c.id
$$;
CREATE FUNCTION consumed(consumer text, lim int DEFAULT 1000)
RETURNS TABLE (n bigint, member_id text, change text) LANGUAGE sql AS $$
  SELECT c.id - (SELECT id FROM base), c.member_id, c.change FROM kenbun.consume_changes(consumer, lim) c ORDER BY c.id
$$;
CREATE FUNCTION positions() RETURNS TABLE (name text, pos bigint, moved boolean) LANGUAGE sql AS $$
  SELECT c.name, c.position - (SELECT id FROM base), c.updated_at > c.created_at
    FROM kenbun.change_consumers c ORDER BY 1
$$;

-- 1. changes_since: leads 4, 5, 6 enter, then 6 exits and 1 enters
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('hot', 'lead', '{"field":"score","op":"gte","value":40}');
SELECT * FROM show(0);
UPDATE leads SET score = 5 WHERE id = 6;
UPDATE leads SET score = 45 WHERE id = 1;
SELECT * FROM show(0);
-- pages of two: pass the last id read
SELECT * FROM show(0, 2);
SELECT * FROM show(2, 2);
SELECT * FROM show(4, 2);
SELECT * FROM show(5, 2);
-- a transaction does not get its own changes before they commit (nor what follows them), and a
-- rolled-back change is never returned: its id stays a gap
BEGIN;
UPDATE leads SET score = 99 WHERE id = 2;
SELECT * FROM show(0);
ROLLBACK;
BEGIN;
UPDATE leads SET score = 99 WHERE id = 3;
SELECT count(*) AS before_commit FROM show(5);
COMMIT;
SELECT * FROM show(5);
-- arguments
SELECT try($$SELECT * FROM kenbun.changes_since(NULL)$$);
SELECT try($$SELECT * FROM kenbun.changes_since(0, 0)$$);
SELECT try($$SELECT * FROM kenbun.changes_since(0, 100001)$$);
SELECT try($$SELECT * FROM kenbun.changes_since(0, NULL)$$);
SELECT count(*) AS all_of_them FROM kenbun.changes_since(-1, 100000);
SET kenbun.changes_max_wait = 'soon';
SELECT try($$SELECT * FROM kenbun.changes_since(0)$$);
SET kenbun.changes_max_wait = '-1s';
SELECT try($$SELECT * FROM kenbun.changes_since(0)$$);
SET kenbun.changes_max_wait = '0';
SELECT count(*) FROM kenbun.changes_since(0);
RESET kenbun.changes_max_wait;
-- only in READ COMMITTED: a REPEATABLE READ snapshot predates what the horizon waits for
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT * FROM kenbun.changes_since(0)$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT try($$SELECT * FROM kenbun.consume_changes('x')$$);
ROLLBACK;

-- 2. consumers: "audit" from the start of the log, "crm" from now
SELECT kenbun.register_consumer('audit', from_now => false) - (SELECT id FROM base) AS audit_at;
SELECT kenbun.register_consumer('crm') - (SELECT id FROM base) AS crm_at;
SET client_min_messages = notice;
SELECT kenbun.register_consumer('crm', from_now => false) - (SELECT id FROM base) AS crm_still_at;
SET client_min_messages = warning;
SELECT * FROM positions();
SELECT * FROM consumed('audit', 2);
SELECT * FROM consumed('audit', 2);
SELECT * FROM positions();
-- a rolled-back consume does not move the position: the same changes come again
BEGIN;
SELECT * FROM consumed('audit');
ROLLBACK;
SELECT * FROM positions();
SELECT * FROM consumed('audit');
SELECT * FROM consumed('audit');
-- crm gets only what was committed after it registered
SELECT * FROM consumed('crm');
UPDATE leads SET score = 0 WHERE id IN (4, 5);
SELECT * FROM consumed('crm');
SELECT * FROM positions();
-- arguments
SELECT try($$SELECT * FROM kenbun.consume_changes('nobody')$$);
SELECT try($$SELECT * FROM kenbun.consume_changes(NULL)$$);
SELECT try($$SELECT * FROM kenbun.consume_changes('audit', 0)$$);
SELECT try($$SELECT * FROM kenbun.consume_changes('audit', 100001)$$);
SELECT try($$SELECT kenbun.register_consumer('')$$);
SELECT try($$SELECT kenbun.register_consumer(NULL)$$);
SELECT try($$SELECT kenbun.register_consumer('x', NULL)$$);
SELECT try($$SELECT kenbun.drop_consumer(NULL)$$);
SELECT try(format('SELECT kenbun.register_consumer(%L)', repeat('x', 256)));
-- any other name is just text
SELECT kenbun.register_consumer(E'it''s "%I" %s \\ $$ ;--', false);
SELECT count(*) FROM kenbun.consume_changes(E'it''s "%I" %s \\ $$ ;--', 1);
SELECT kenbun.drop_consumer(E'it''s "%I" %s \\ $$ ;--');

-- 3. prune_changes: ages the first changes (as a superuser may), then prunes what is older than
-- 30 days and consumed; "audit" lags behind the two newest changes
UPDATE kenbun.membership_changes SET changed_at = changed_at - interval '40 days';
SELECT count(*) AS logged FROM kenbun.membership_changes;
SET client_min_messages = notice;
-- audit consumed up to n = 7, crm up to 9: nothing after 7 goes, and a NOTICE names audit
SELECT kenbun.prune_changes('30 days') AS pruned;
SELECT min(id) - (SELECT id FROM base) AS oldest_left, count(*) AS left FROM kenbun.membership_changes;
SELECT * FROM consumed('audit');
SELECT kenbun.prune_changes('30 days') AS pruned;
-- a change younger than the cut stops the prune there (the log stays a suffix, without holes)
UPDATE leads SET score = 77 WHERE id = 5;
SELECT kenbun.prune_changes('30 days') AS pruned;
SELECT * FROM consumed('audit');
SELECT * FROM consumed('crm');
SELECT kenbun.prune_changes('30 days') AS pruned;
SELECT count(*) AS left FROM kenbun.membership_changes;
-- without consumers, age alone decides
SELECT kenbun.drop_consumer('audit'), kenbun.drop_consumer('crm'), kenbun.drop_consumer('crm') AS again;
SELECT kenbun.prune_changes('0') AS pruned;
SELECT count(*) AS left FROM kenbun.membership_changes;
SET client_min_messages = warning;
SELECT try($$SELECT kenbun.prune_changes(NULL)$$);
SELECT try($$SELECT kenbun.prune_changes('-1 day')$$);
-- the log goes on after a prune
UPDATE leads SET score = 1 WHERE id = 5;
SELECT * FROM show(10);

-- 4. a publication of the change log: inserts only
SELECT kenbun.create_publication();
SELECT pubname, pubinsert, pubupdate, pubdelete, pubtruncate, puballtables FROM pg_publication ORDER BY 1;
SELECT * FROM pg_publication_tables ORDER BY 1;
SET client_min_messages = notice;
SELECT kenbun.create_publication();
SET client_min_messages = warning;
SELECT kenbun.create_publication('kenbun_second');
CREATE PUBLICATION other_pub FOR TABLE leads;
SELECT try($$SELECT kenbun.create_publication('other_pub')$$);
SELECT try($$SELECT kenbun.create_publication('')$$);
SELECT try($$SELECT kenbun.create_publication(NULL)$$);
SELECT try(format('SELECT kenbun.create_publication(%L)', repeat('p', 64)));
SELECT kenbun.create_publication(E'kenbun "changes"; --');
SELECT pubname FROM pg_publication ORDER BY 1;
DROP PUBLICATION "kenbun ""changes""; --";
DROP PUBLICATION other_pub, kenbun_second;

-- 5. privileges: readers read and consume, admins also register, drop, prune and publish
SELECT kenbun.register_consumer('bi');
CREATE ROLE kb_changes_reader IN ROLE kenbun_reader;
CREATE ROLE kb_changes_admin IN ROLE kenbun_admin;
CREATE ROLE kb_changes_nobody;
SELECT f AS function, has_function_privilege('kb_changes_nobody', f, 'EXECUTE') AS public,
       has_function_privilege('kb_changes_reader', f, 'EXECUTE') AS reader,
       has_function_privilege('kb_changes_admin', f, 'EXECUTE') AS admin
  FROM unnest(ARRAY['kenbun.changes_since(bigint,int)', 'kenbun.consume_changes(text,int)',
                    'kenbun.register_consumer(text,boolean)', 'kenbun.drop_consumer(text)',
                    'kenbun.prune_changes(interval)', 'kenbun.create_publication(text)']::regprocedure[]) f;
SELECT has_table_privilege('kb_changes_nobody', 'kenbun.change_consumers', 'SELECT') AS public_reads,
       has_table_privilege('kb_changes_reader', 'kenbun.change_consumers', 'SELECT') AS reader_reads,
       has_table_privilege('kb_changes_admin', 'kenbun.change_consumers', 'UPDATE') AS admin_updates;
SET ROLE kb_changes_reader;
SELECT count(*) FROM kenbun.changes_since(0);
SELECT count(*) FROM kenbun.consume_changes('bi');
SELECT try($$SELECT kenbun.register_consumer('mine')$$);
SELECT try($$SELECT kenbun.prune_changes('1 day')$$);
SELECT try($$UPDATE kenbun.change_consumers SET position = 0$$);
RESET ROLE;
SET ROLE kb_changes_admin;
SELECT kenbun.register_consumer('mine') > 0 AS registered;
SELECT kenbun.drop_consumer('mine');
SELECT kenbun.prune_changes('1 day');
RESET ROLE;
SET ROLE kb_changes_nobody;
SELECT try($$SELECT * FROM kenbun.changes_since(0)$$);
SELECT try($$SELECT * FROM kenbun.consume_changes('bi')$$);
RESET ROLE;
-- the internal helpers pin search_path like every other function
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig FROM pg_proc p
 WHERE p.pronamespace = 'kenbun'::regnamespace
   AND p.proname IN ('changes_since', 'consume_changes', 'register_consumer', 'drop_consumer', 'prune_changes',
                     'create_publication', '_change_horizon', '_check_limit')
 ORDER BY 1::text;

-- 6. dumped as data: the consumers table is extension configuration; DROP EXTENSION takes it and
-- removes the change log from the publication, which stays (empty) until dropped; create_publication
-- adds the new log to it again
SELECT extconfig::regclass[] @> ARRAY['kenbun.change_consumers'::regclass] AS consumers_dumped FROM pg_extension WHERE extname = 'kenbun';
DROP EXTENSION kenbun CASCADE;
SELECT pubname, (SELECT count(*) FROM pg_publication_rel r WHERE r.prpubid = p.oid) AS tables FROM pg_publication p;
SELECT count(*) AS kenbun_relations FROM pg_class WHERE relname IN ('change_consumers', 'membership_changes');
CREATE EXTENSION kenbun;
SELECT kenbun.create_publication();
SELECT * FROM pg_publication_tables ORDER BY 1;
DROP PUBLICATION kenbun_changes;

\c kenbun_regress
DROP DATABASE kenbun_changes;
DROP ROLE kb_changes_reader, kb_changes_admin, kb_changes_nobody;
