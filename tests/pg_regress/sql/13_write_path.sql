-- The write path (0.4.0): an UPDATE of a rule that reads only the member's own row is decided in the
-- row trigger, from the old and new row; the catalog is cached per backend for compile and preview.
CREATE DATABASE kenbun_write;
\c kenbun_write
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE TABLE accounts(id bigint PRIMARY KEY, industry text);
CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, country text, score int, attrs jsonb,
                   seen timestamptz, note text);
INSERT INTO accounts VALUES (1, 'SaaS'), (2, 'Retail');
INSERT INTO leads SELECT g, 1 + g % 2, CASE WHEN g % 2 = 0 THEN 'US' ELSE 'DE' END, g * 10,
                         jsonb_build_object('plan', CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END),
                         now() - g * interval '1 day', 'n'
                    FROM generate_series(1, 10) g;
SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.define_levels('engagement', 'score', '[{"name":"Cold","min":0},{"name":"Hot","min":50}]');
SELECT kenbun.map_field('lead', 'plan', 'attrs.plan', 'text');
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('us', 'lead', '{"field":"country","op":"eq","value":"US"}'),
  ('hot', 'lead', '{"level":"engagement","op":"gte","value":"Hot"}'),
  ('pro', 'lead', '{"field":"plan","op":"eq","value":"pro"}'),
  ('hot us', 'lead', '{"all":[{"segment":"us"},{"segment":"hot"}]}'),
  ('recent', 'lead', '{"field":"seen","op":"within_last","value":"3 days"}'),
  ('saas lead', 'lead', '{"account":{"field":"industry","op":"eq","value":"SaaS"}}'),
  ('saas', 'account', '{"field":"industry","op":"eq","value":"SaaS"}'),
  ('two hot', 'account', '{"leads":{"where":{"segment":"hot"},"count":{"op":"gte","value":2}}}');
CREATE FUNCTION drift() RETURNS TABLE (segment text, member text, problem text) LANGUAGE sql AS $$
  SELECT s.name, d.member_id, d.problem FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2
$$;
CREATE FUNCTION changes() RETURNS TABLE (segment text, member text, change text) LANGUAGE sql AS $$
  SELECT s.name, c.member_id, c.change FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
   WHERE c.reason = 'data_change' AND c.id > coalesce(current_setting('t.seen', true), '0')::bigint ORDER BY c.id
$$;
CREATE FUNCTION advance() RETURNS void LANGUAGE sql AS $$
  SELECT set_config('t.seen', (SELECT coalesce(max(id), 0)::text FROM kenbun.membership_changes), false)
$$;
SELECT advance();

-- which segments the row trigger decides (the rest stay with the statement-level functions)
-- (arguments: kind, key, account key, the row-only segments, the segments captured for the
-- statement-level function)
SELECT tgname, substring(pg_get_triggerdef(t.oid) from 'EXECUTE FUNCTION (.*)$') AS function
  FROM pg_trigger t WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'kenbun_maintain_row%' ORDER BY 1;

-- 1. single-row UPDATEs: a column, a JSON path through a mapped field, a level, a key change
UPDATE leads SET score = 20 WHERE id = 6;            -- leaves hot, hot us; account 1 loses a hot lead
SELECT * FROM changes(); SELECT advance();
UPDATE leads SET attrs = '{"plan":"pro"}' WHERE id = 1;
UPDATE leads SET country = 'US' WHERE id = 9;         -- enters us and (score 90) hot us
SELECT * FROM changes(); SELECT advance();
UPDATE leads SET id = 100 WHERE id = 10;              -- the old id leaves everything, the new one enters
SELECT * FROM changes(); SELECT advance();
-- an UPDATE that changes no value a rule reads, and one of a column nobody reads, change nothing
UPDATE leads SET score = score, note = 'x' WHERE id = 2;
SELECT * FROM changes();
SELECT * FROM drift();

-- 2. time-dependent rules compare with the membership table, not with the old row
UPDATE leads SET seen = now() WHERE id = 8;           -- 8 days ago -> now: enters recent
UPDATE leads SET seen = now() - interval '10 days' WHERE id = 1;  -- 1 day ago -> 10: leaves
SELECT * FROM changes(); SELECT advance();

-- 3. a rolled-back savepoint forgets its decisions; a statement that changes nothing writes nothing
BEGIN;
UPDATE leads SET score = 99 WHERE id = 2;
SAVEPOINT s;
UPDATE leads SET country = 'US' WHERE id = 3;
ROLLBACK TO s;
UPDATE leads SET score = 98 WHERE id = 3;
COMMIT;
SELECT * FROM changes(); SELECT advance();
SELECT * FROM drift();

-- 4. a row updated twice in one statement (a nested UPDATE from a user trigger): the last decision wins
CREATE FUNCTION bounce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.note = 'bounce' THEN
    UPDATE leads SET note = 'done', country = 'FR' WHERE id = NEW.id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER a_bounce AFTER UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION bounce();
UPDATE leads SET country = 'US', note = 'bounce' WHERE id = 5;
SELECT country FROM leads WHERE id = 5;
SELECT * FROM drift();
SELECT advance();
-- the same, with the nested UPDATE running after kenbun's row trigger, and a nested DELETE
ALTER TRIGGER a_bounce ON leads RENAME TO z_bounce;
UPDATE leads SET country = 'US', score = 99, note = 'bounce' WHERE id = 7;
SELECT country, score FROM leads WHERE id = 7;
SELECT * FROM drift();
DROP TRIGGER z_bounce ON leads;
CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM leads WHERE id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER a_vanish AFTER UPDATE ON leads FOR EACH ROW WHEN (NEW.note = 'vanish') EXECUTE FUNCTION vanish();
UPDATE leads SET country = 'US', note = 'vanish' WHERE id = 7;
SELECT count(*) FROM leads WHERE id = 7;
SELECT * FROM drift();
DROP TRIGGER a_vanish ON leads;
SELECT advance();

-- a nested UPDATE in a subtransaction that rolls back: its decisions go, the outer statement's stay
CREATE FUNCTION risky() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    UPDATE leads SET score = 0, country = 'FR' WHERE id = NEW.id + 1;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN NULL;
  END;
  RETURN NULL;
END $$;
CREATE TRIGGER z_risky AFTER UPDATE ON leads FOR EACH ROW WHEN (NEW.note = 'risky') EXECUTE FUNCTION risky();
UPDATE leads SET country = CASE WHEN country = 'US' THEN 'DE' ELSE 'US' END, score = 95, note = 'risky' WHERE id IN (1, 3);
SELECT id, country, score FROM leads WHERE id BETWEEN 1 AND 4 ORDER BY id;
SELECT * FROM changes();
SELECT * FROM drift();
DROP TRIGGER z_risky ON leads;
SELECT advance();

-- 5. a bulk UPDATE: decided row by row, written in one statement
UPDATE leads SET score = (score + 37) % 100, country = CASE WHEN country = 'US' THEN 'DE' ELSE 'US' END;
SELECT count(*) > 0 AS logged FROM changes();
SELECT * FROM drift();
SELECT advance();

-- 6. a writer without any right on kenbun's tables: the row trigger writes as the extension owner
CREATE ROLE kb_write_app;
GRANT SELECT, UPDATE ON leads TO kb_write_app;
SET ROLE kb_write_app;
UPDATE leads SET country = CASE WHEN country = 'US' THEN 'DE' ELSE 'US' END WHERE id = 1;
RESET ROLE;
SELECT * FROM changes(); SELECT advance();
SELECT * FROM drift();

-- 7. the compiled rules are rebuilt when the definitions change (the trigger is regenerated)...
UPDATE kenbun.segments SET rule = '{"field":"country","op":"eq","value":"DE"}' WHERE name = 'us';
SELECT advance();
UPDATE leads SET country = 'FR' WHERE id = 2;
UPDATE leads SET country = 'DE' WHERE id = 2;
SELECT * FROM changes(); SELECT advance();
-- ...and when the table changes under them
ALTER TABLE leads ADD COLUMN extra int;
UPDATE leads SET score = 1, extra = 1 WHERE id = 2;
SELECT * FROM changes(); SELECT advance();
SELECT * FROM drift();

-- 8. the catalog cache follows definition changes in this session at once...
SELECT kenbun.compile('{"field":"plan","op":"eq","value":"pro"}');
SELECT kenbun.map_field('lead', 'plan', 'note', 'text');
SELECT kenbun.compile('{"field":"plan","op":"eq","value":"pro"}');
SELECT kenbun.map_field('lead', 'tier', 'attrs.plan', 'text');
SELECT kenbun.compile('{"field":"tier","op":"eq","value":"pro"}');
BEGIN;
SELECT kenbun.unmap_field('lead', 'tier');
SELECT kenbun.compile('{"field":"tier","op":"eq","value":"pro"}');
ROLLBACK;
SELECT kenbun.compile('{"field":"tier","op":"eq","value":"pro"}');
-- ...and table changes
ALTER TABLE leads RENAME COLUMN note TO remark;
SELECT kenbun.compile('{"field":"plan","op":"eq","value":"pro"}');
SELECT kenbun.compile('{"field":"remark","op":"eq","value":"x"}');
-- a role that may not read kenbun's catalog still gets the permission error, cache or not
SET ROLE kb_write_app;
SELECT kenbun.compile('{"field":"country","op":"eq","value":"US"}');
RESET ROLE;

\c kenbun_regress
DROP DATABASE kenbun_write;
DROP ROLE kb_write_app;
