-- Levels, account conditions, event conditions and account rules with lead counts.
SELECT * FROM check_cases('lead', $$[
 {"rule": {"level":"engagement","op":"eq","value":"Warm"}, "expect": [2,6]},
 {"rule": {"level":"engagement","op":"neq","value":"Warm"}, "expect": [1,3,4,5]},
 {"rule": {"level":"engagement","op":"gt","value":"Warm"}, "expect": [1,5]},
 {"rule": {"level":"engagement","op":"gte","value":"Hot"}, "expect": [1,5]},
 {"rule": {"level":"engagement","op":"lt","value":"Hot"}, "expect": [2,4,6]},
 {"rule": {"level":"engagement","op":"lte","value":"Cold"}, "expect": [4]},
 {"rule": {"level":"engagement","op":"in","value":["Cold","On Fire"]}, "expect": [1,4]},
 {"rule": {"level":"engagement","op":"not_in","value":["Cold","On Fire"]}, "expect": [2,3,5,6]},
 {"rule": {"level":"engagement","op":"gt","value":"On Fire"}, "expect": []}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('lead', $$[
 {"rule": {"account":{"field":"industry","op":"eq","value":"SaaS"}}, "expect": [1,2]},
 {"rule": {"account":{"field":"industry","op":"is_not_set"}}, "expect": [6]},
 {"rule": {"account":{"field":"employees","op":"gte","value":100}}, "expect": [3,5]},
 {"rule": {"account":{"all":[]}}, "expect": [1,2,3,5,6]},
 {"rule": {"all":[{"account":{"field":"name","op":"eq","value":"Acme"}},{"field":"vip","op":"eq","value":true}]}, "expect": [1]}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('lead', $$[
 {"rule": {"event":{"type":"page_view"}}, "expect": [1,2,6]},
 {"rule": {"event":{"type":"page_view","within":"30 days"}}, "expect": [1,6]},
 {"rule": {"event":{"type":"page_view","where":{"field":"metadata.url","op":"eq","value":"/pricing"},"count":{"op":"gte","value":2}}}, "expect": [1]},
 {"rule": {"event":{"type":"page_view","where":{"field":"metadata.url","op":"eq","value":"/pricing"}}}, "expect": [1,2]},
 {"rule": {"event":{"type":["demo_request","email_open"]}}, "expect": [1,4]},
 {"rule": {"event":{"type":"page_view","count":{"op":"eq","value":0}}}, "expect": [3,4,5]},
 {"rule": {"event":{"count":{"op":"gte","value":3}}}, "expect": [1]},
 {"rule": {"event":{"count":{"op":"lt","value":2}}}, "expect": [2,3,4,5,6]},
 {"rule": {"event":{"count":{"op":"eq","value":1}}}, "expect": [2,4,6]},
 {"rule": {"event":{"type":"page_view","within":"7 days","count":{"op":"eq","value":0}}}, "expect": [2,3,4,5]},
 {"rule": {"event":{"where":{"field":"metadata.campaign","op":"eq","value":"spring"}}}, "expect": [4]},
 {"rule": {"event":{"where":{"field":"occurred_at","op":"within_last","value":"3 days"}}}, "expect": [1,4,6]}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('account', $$[
 {"rule": {"field":"industry","op":"eq","value":"SaaS"}, "expect": [1]},
 {"rule": {"field":"industry","op":"neq","value":"SaaS"}, "expect": [2,3]},
 {"rule": {"leads":{"count":{"op":"gte","value":2}}}, "expect": [1,2]},
 {"rule": {"leads":{"where":{"field":"vip","op":"eq","value":true}}}, "expect": [1,2]},
 {"rule": {"leads":{"where":{"event":{"type":"page_view","within":"30 days"}}}}, "expect": [1,3]},
 {"rule": {"leads":{"count":{"op":"eq","value":0}}}, "expect": []},
 {"rule": {"leads":{"where":{"level":"engagement","op":"eq","value":"Warm"},"count":{"op":"eq","value":1}}}, "expect": [1,3]},
 {"rule": {"all":[{"leads":{"where":{"field":"score","op":"gte","value":50}}},{"field":"employees","op":"lt","value":100}]}, "expect": [1]},
 {"rule": {"not":{"field":"employees","op":"gte","value":100}}, "expect": [1,3]}
]$$::jsonb) ORDER BY 1;

SELECT kenbun.compile('{"event":{"type":"page_view","within":"30 days","count":{"op":"gte","value":3}}}');
SELECT kenbun.compile('{"leads":{"where":{"field":"vip","op":"eq","value":true},"count":{"op":"gte","value":2}}}', 'account');
SELECT member_id, member->>'name' AS name FROM kenbun.segment_preview('{"leads":{"count":{"op":"gte","value":2}}}', 'account');
