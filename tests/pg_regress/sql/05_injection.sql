-- Hostile field names, JSON paths and values stay inside quoted identifiers and typed literals.
CREATE TABLE canary (x int);
INSERT INTO canary VALUES (1);
SELECT kenbun.compile($j${"field":"country","op":"eq","value":"x'); DROP TABLE canary; --"}$j$);
SELECT kenbun.compile($j${"field":"country","op":"in","value":["a\\'b", "$$; DROP TABLE canary; $$", "/* c */ 1=1 --"]}$j$);
SELECT kenbun.compile($j${"field":"attributes.x'y;--","op":"eq","value":"ü 日本 \" \\ ;"}$j$);
SELECT kenbun.compile($j${"field":"attributes.a\"b","op":"contains","value":"50%_'x"}$j$);
SELECT kenbun.compile($j${"event":{"type":"x' OR 1=1 --","within":"1 day"}}$j$);
SELECT count(*) FROM kenbun.segment_preview($j${"field":"country","op":"eq","value":"x'); DROP TABLE canary; --"}$j$);
SELECT count(*) FROM kenbun.segment_preview($j${"field":"attributes.x'y;--","op":"is_set"}$j$);
SELECT count(*) FROM kenbun.segment_preview($j${"field":"country","op":"matches","value":"'; DROP TABLE canary; --"}$j$);
SELECT try($$SELECT kenbun.compile('{"field":"country\"; DROP TABLE canary; --","op":"is_set"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"signed_up","op":"before","value":"2024-01-01''; DROP TABLE canary; --"}')$$);
SELECT try($$SELECT kenbun.compile('{"field":"last_seen_at","op":"within_last","value":"1 day''::interval); DROP TABLE canary; --"}')$$);
SELECT try($j$SELECT kenbun.map_field('lead', 'evil', 'attributes.a', 'text; DROP TABLE canary')$j$);
-- a table whose name and columns are hostile can still be bound and queried
CREATE TABLE "we'ird ""leads""" ("i;d" bigint PRIMARY KEY, "co'l" text, "js""on" jsonb);
INSERT INTO "we'ird ""leads""" VALUES (1, 'a', '{"k''1":"v"}'), (2, 'b', NULL);
BEGIN;
SELECT kenbun.bind_leads('"we''ird ""leads"""', 'i;d');
SELECT kenbun.compile($j${"all":[{"field":"co'l","op":"eq","value":"a"},{"field":"js\"on.k'1","op":"eq","value":"v"}]}$j$);
SELECT * FROM kenbun.segment_preview($j${"all":[{"field":"co'l","op":"eq","value":"a"},{"field":"js\"on.k'1","op":"eq","value":"v"}]}$j$);
ROLLBACK;
SELECT * FROM canary;
DROP TABLE "we'ird ""leads""";
