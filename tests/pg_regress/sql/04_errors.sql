-- Every error class: SQLSTATE, a message naming the JSON path, and a hint where one helps.
SELECT try($$SELECT kenbun.compile('{"field":"countyr","op":"eq","value":"US"}')$$);
SELECT try($$SELECT kenbun.compile('{"all":[{"field":"score","op":"eq","value":"5"}]}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"country","op":"gt","value":5}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"vip","op":"eq","value":"yes"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"score","op":"contains","value":"5"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"signed_up","op":"after","value":"soon"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"signed_up","op":"eq","value":"2024-13-01"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"country.code","op":"eq","value":"US"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"attributes.since","op":"within_last","value":"3 days"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"country","op":"matches","value":"(["}')$$);
SELECT try($$SELECT kenbun.compile('{"level":"engagment","op":"eq","value":"Warm"}')$$);
SELECT try($$SELECT kenbun.compile('{"level":"engagement","op":"eq","value":"Tepid"}')$$);
SELECT try($$SELECT kenbun.compile('{"segment":"nope"}')$$);
SELECT try($$SELECT kenbun.compile('{"leads":{}}')$$);
SELECT try($$SELECT kenbun.compile('{"event":{}}', 'account')$$);
SELECT try($$SELECT kenbun.compile('{"account":{"account":{"all":[]}}}')$$);
SELECT try($$SELECT kenbun.compile('{"event":{"where":{"event":{}}}}')$$);
SELECT try($$SELECT kenbun.compile('{"all":[]}', 'acount')$$);
SELECT try($$SELECT * FROM kenbun.segment_preview('{"all":[]}', 'lead', -1)$$);
-- binding errors
SELECT try($$SELECT kenbun.bind_leads('no_such_table')$$);
SELECT try($$SELECT kenbun.bind_leads('leads', 'ident')$$);
SELECT try($$SELECT kenbun.bind_leads('leads', 'id', 'acount_id')$$);
SELECT try($$SELECT kenbun.bind_leads('leads', 'signed_up')$$);
SELECT try($$SELECT kenbun.bind_events('events', time_column => 'type')$$);
SELECT try($$SELECT kenbun.map_field('lead', 'x', 'country.code', 'text')$$);
SELECT try($$SELECT kenbun.map_field('lead', 'x', 'nope.code', 'text')$$);
SELECT try($$SELECT kenbun.map_field('lead', 'x', 'attributes..a', 'text')$$);
SELECT try($$SELECT kenbun.map_field('person', 'x', 'attributes.a', 'text')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'score', '[]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'score', '[{"name":"A","min":10},{"name":"B","min":5}]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'score', '[{"name":"A","min":0},{"name":"A","min":5}]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'score', '[{"name":"A","min":"0"}]')$$);
SELECT try($$SELECT kenbun.define_levels('bad', 'country', '[{"name":"A","min":0}]')$$);
SELECT try($$SELECT kenbun.compile('{"level":"bad","op":"eq","value":"A"}')$$);
SELECT kenbun.drop_levels('bad'), kenbun.drop_levels('bad');
-- nothing was changed by the failed calls
SELECT kind, relid, key_column, account_column FROM kenbun.bindings ORDER BY kind;
SELECT kind, name, path, type FROM kenbun.fields ORDER BY kind, name;
SELECT name FROM kenbun.levels ORDER BY name;
-- unbound kinds
BEGIN;
DELETE FROM kenbun.bindings WHERE kind = 'event';
SELECT try($$SELECT kenbun.compile('{"event":{"type":"x"}}')$$);
SELECT try($$SELECT kenbun.map_field('event', 'url', 'metadata.url', 'text')$$);
ROLLBACK;
-- segment references multiply: each of these uses the previous one twice; the expansion is bounded
BEGIN;
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('d0', 'lead', '{"field":"country","op":"eq","value":"US"}');
INSERT INTO kenbun.segments (name, kind, rule)
  SELECT 'd' || i, 'lead', format('{"any":[{"segment":"d%s"},{"not":{"segment":"d%s"}}]}', i - 1, i - 1)::jsonb::kenbun.segment_rule
    FROM generate_series(1, 8) i;
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('d_all', 'lead', '{"all":[{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"}]}')$$);
SELECT try($$SELECT kenbun.compile('{"all":[{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"},{"segment":"d8"}]}')$$);
ROLLBACK;
-- and so does their nesting
BEGIN;
INSERT INTO kenbun.segments (name, kind, rule) VALUES ('n0', 'lead', '{"all":[]}');
DO $$ BEGIN
  FOR i IN 1..31 LOOP
    INSERT INTO kenbun.segments (name, kind, rule) VALUES ('n' || i, 'lead', format('{"segment":"n%s"}', i - 1)::jsonb::kenbun.segment_rule);
  END LOOP;
END $$;
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES ('n32', 'lead', '{"segment":"n31"}')$$);
ROLLBACK;
-- a segment name goes into every NOTIFY payload (8000 bytes at most): 255 characters at most
SELECT try($$INSERT INTO kenbun.segments (name, kind, rule) VALUES (repeat('é', 256), 'lead', '{"all":[]}')$$);
-- a type that is not even a type name is a clean document error
SELECT try($$SELECT kenbun.import_definitions('{"fields":[{"kind":"lead","name":"x","path":"country","type":"''"}]}')$$);
SELECT try($$SELECT kenbun.import_definitions('{"fields":[{"kind":"lead","name":"x","path":"country","type":"text; DROP TABLE leads"}]}')$$);
SELECT try($$SELECT kenbun.import_definitions('{"fields":[{"kind":"lead","name":"x","path":"country","type":"a.b.c.d"}]}')$$);
SELECT try($q$SELECT kenbun.import_definitions('{"fields":[{"kind":"lead","name":"x","path":"country","type":"$$"}]}')$q$);
