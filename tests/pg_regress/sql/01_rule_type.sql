-- The rule type: input validates structure, output is canonical JSON, casts from and to jsonb.
SELECT '{ "value": ["US","CA"], "op": "in", "field": "country" }'::kenbun.segment_rule;
SELECT '{"all":[{"field":"score","op":"gte","value":50},{"not":{"any":[]}}]}'::kenbun.segment_rule;
SELECT '{"event":{"within":"30 days","type":"page_view","count":{"value":3,"op":"gte"}}}'::kenbun.segment_rule;
SELECT '{"level":"engagement","op":"in","value":["Warm","Hot"]}'::kenbun.segment_rule;
SELECT '{"leads":{"where":{"field":"vip","op":"eq","value":true}}}'::kenbun.segment_rule;
SELECT '{"account":{"field":"industry","op":"eq","value":"SaaS"}}'::jsonb::kenbun.segment_rule;
SELECT '{"segment":"VIPs"}'::json::kenbun.segment_rule;
SELECT ('{"field":"x","op":"is_set"}'::kenbun.segment_rule)::jsonb -> 'op' AS op;
-- a column of the type rejects bad rows
CREATE TABLE saved (r kenbun.segment_rule);
INSERT INTO saved VALUES ('{"all":[]}');
INSERT INTO saved VALUES ('{"all":[{"field":"x","op":"nope","value":1}]}');
SELECT * FROM saved;
DROP TABLE saved;
-- structural errors: SQLSTATE, message naming the JSON path, hint
SELECT try($$SELECT '{"all":['::kenbun.segment_rule$$);
SELECT try($$SELECT 'null'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"al":[]}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"all":[{"field":"a","op":"eq","value":1},{"field":"c","op":"equals","value":3}]}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"eq","valeu":1}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"in","value":[]}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"between","value":[1]}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"eq","value":null}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"within_last","value":"30 dayz"}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"before","value":"2024-02-30"}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"event":{"type":"x","count":{"op":"gte","value":-1}}}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"all":[],"any":[]}'::kenbun.segment_rule$$);
SELECT try($$SELECT '{"field":"a","op":"eq","value":"\u0000"}'::kenbun.segment_rule$$);
SELECT try($$SELECT (repeat('{"not":', 40) || '{"all":[]}' || repeat('}', 40))::kenbun.segment_rule$$);
