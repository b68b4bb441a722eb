-- Every operator on text, numeric, boolean, date/timestamp and jsonb-path fields, with the
-- two-valued NULL semantics: each row checks the expected ids, the exact complement under "not",
-- and segment_count. Expected ids are written by hand from the fixture in 00_setup.
SELECT * FROM check_cases('lead', $$[
 {"rule": {"field":"country","op":"eq","value":"US"}, "expect": [1,4]},
 {"rule": {"field":"country","op":"neq","value":"US"}, "expect": [2,3,5,6]},
 {"rule": {"field":"country","op":"gt","value":"M"}, "expect": [1,4,5]},
 {"rule": {"field":"country","op":"gte","value":"US"}, "expect": [1,4,5]},
 {"rule": {"field":"country","op":"lt","value":"D"}, "expect": [2]},
 {"rule": {"field":"country","op":"lte","value":"DE"}, "expect": [2,6]},
 {"rule": {"field":"country","op":"between","value":["CA","DE"]}, "expect": [2,6]},
 {"rule": {"field":"country","op":"in","value":["US","CA"]}, "expect": [1,2,4]},
 {"rule": {"field":"country","op":"not_in","value":["US","CA"]}, "expect": [3,5,6]},
 {"rule": {"field":"country","op":"contains","value":"u"}, "expect": [1,4,5]},
 {"rule": {"field":"country","op":"not_contains","value":"u"}, "expect": [2,3,6]},
 {"rule": {"field":"country","op":"starts_with","value":"u"}, "expect": [1,4,5]},
 {"rule": {"field":"country","op":"ends_with","value":"e"}, "expect": [6]},
 {"rule": {"field":"country","op":"matches","value":"^[A-Z]{2}$"}, "expect": [1,2,4,6]},
 {"rule": {"field":"country","op":"is_set"}, "expect": [1,2,4,5,6]},
 {"rule": {"field":"country","op":"is_not_set"}, "expect": [3]},
 {"rule": {"field":"email","op":"contains","value":"%"}, "expect": [6]},
 {"rule": {"field":"email","op":"contains","value":"_"}, "expect": [6]},
 {"rule": {"field":"email","op":"ends_with","value":".COM"}, "expect": [1,2]},
 {"rule": {"field":"email","op":"starts_with","value":"dee@example"}, "expect": [4]},
 {"rule": {"field":"email","op":"eq","value":"dee@example.org"}, "expect": []}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('lead', $$[
 {"rule": {"field":"score","op":"eq","value":30}, "expect": [2]},
 {"rule": {"field":"score","op":"neq","value":30}, "expect": [1,3,4,5,6]},
 {"rule": {"field":"score","op":"gt","value":50}, "expect": [1,5]},
 {"rule": {"field":"score","op":"gte","value":55}, "expect": [1,5]},
 {"rule": {"field":"score","op":"lt","value":25}, "expect": [4]},
 {"rule": {"field":"score","op":"lte","value":25}, "expect": [4,6]},
 {"rule": {"field":"score","op":"gt","value":24.5}, "expect": [1,2,5,6]},
 {"rule": {"field":"score","op":"between","value":[25,55]}, "expect": [2,5,6]},
 {"rule": {"field":"score","op":"in","value":[10,80]}, "expect": [1,4]},
 {"rule": {"field":"score","op":"not_in","value":[10,80]}, "expect": [2,3,5,6]},
 {"rule": {"field":"score","op":"is_set"}, "expect": [1,2,4,5,6]},
 {"rule": {"field":"score","op":"is_not_set"}, "expect": [3]},
 {"rule": {"field":"vip","op":"eq","value":true}, "expect": [1,5]},
 {"rule": {"field":"vip","op":"eq","value":false}, "expect": [2,4]},
 {"rule": {"field":"vip","op":"neq","value":true}, "expect": [2,3,4,6]},
 {"rule": {"field":"vip","op":"in","value":[false]}, "expect": [2,4]},
 {"rule": {"field":"vip","op":"not_in","value":[false]}, "expect": [1,3,5,6]},
 {"rule": {"field":"vip","op":"is_not_set"}, "expect": [3,6]}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('lead', $$[
 {"rule": {"field":"last_seen_at","op":"within_last","value":"7 days"}, "expect": [1,4]},
 {"rule": {"field":"last_seen_at","op":"within_last","value":"30 days"}, "expect": [1,4,6]},
 {"rule": {"field":"last_seen_at","op":"not_within_last","value":"7 days"}, "expect": [2,3,5,6]},
 {"rule": {"field":"last_seen_at","op":"before","value":"2000-01-01"}, "expect": []},
 {"rule": {"field":"last_seen_at","op":"after","value":"2000-01-01T00:00:00Z"}, "expect": [1,2,4,5,6]},
 {"rule": {"field":"signed_up","op":"before","value":"2024-01-01"}, "expect": [2,5]},
 {"rule": {"field":"signed_up","op":"after","value":"2024-01-15"}, "expect": [4]},
 {"rule": {"field":"signed_up","op":"after","value":"2024-01-14T12:00:00"}, "expect": [1,4,6]},
 {"rule": {"field":"signed_up","op":"eq","value":"2024-01-15"}, "expect": [1,6]},
 {"rule": {"field":"signed_up","op":"neq","value":"2024-01-15"}, "expect": [2,3,4,5]},
 {"rule": {"field":"signed_up","op":"gte","value":"2024-01-15"}, "expect": [1,4,6]},
 {"rule": {"field":"signed_up","op":"lt","value":"2023-06-01"}, "expect": [5]},
 {"rule": {"field":"signed_up","op":"between","value":["2023-01-01","2024-01-15"]}, "expect": [1,2,6]},
 {"rule": {"field":"signed_up","op":"in","value":["2024-03-10","2022-12-31"]}, "expect": [4,5]},
 {"rule": {"field":"signed_up","op":"is_not_set"}, "expect": [3]}
]$$::jsonb) ORDER BY 1;

SELECT * FROM check_cases('lead', $$[
 {"rule": {"field":"attributes.plan","op":"eq","value":"pro"}, "expect": [1,4]},
 {"rule": {"field":"attributes.plan","op":"neq","value":"pro"}, "expect": [2,3,5,6]},
 {"rule": {"field":"attributes.plan","op":"in","value":["free","pro"]}, "expect": [1,2,4]},
 {"rule": {"field":"attributes.plan","op":"starts_with","value":"P"}, "expect": [1,4]},
 {"rule": {"field":"attributes.plan","op":"is_set"}, "expect": [1,2,4]},
 {"rule": {"field":"attributes.plan","op":"is_not_set"}, "expect": [3,5,6]},
 {"rule": {"field":"attributes.seats","op":"gt","value":1}, "expect": [1]},
 {"rule": {"field":"attributes.seats","op":"eq","value":1}, "expect": [2]},
 {"rule": {"field":"attributes.seats","op":"between","value":[1,5]}, "expect": [1,2]},
 {"rule": {"field":"attributes.seats","op":"lte","value":5}, "expect": [1,2]},
 {"rule": {"field":"attributes.seats","op":"eq","value":"many"}, "expect": [5]},
 {"rule": {"field":"attributes.beta","op":"eq","value":true}, "expect": [1]},
 {"rule": {"field":"attributes.beta","op":"eq","value":false}, "expect": [4]},
 {"rule": {"field":"attributes.beta","op":"neq","value":true}, "expect": [2,3,4,5,6]},
 {"rule": {"field":"attributes.tags.src","op":"eq","value":"ads"}, "expect": [1]},
 {"rule": {"field":"attributes","op":"contains","value":{"plan":"pro"}}, "expect": [1,4]},
 {"rule": {"field":"attributes.tags","op":"contains","value":{"src":"ads"}}, "expect": [1]},
 {"rule": {"field":"attributes","op":"is_not_set"}, "expect": [3]},
 {"rule": {"field":"plan","op":"eq","value":"pro"}, "expect": [1,4]},
 {"rule": {"field":"plan","op":"matches","value":"^fr"}, "expect": [2]},
 {"rule": {"field":"beta","op":"eq","value":false}, "expect": [4]}
]$$::jsonb) ORDER BY 1;

-- nested groups and not
SELECT * FROM check_cases('lead', $$[
 {"rule": {"all":[]}, "expect": [1,2,3,4,5,6]},
 {"rule": {"any":[]}, "expect": []},
 {"rule": {"not":{"not":{"field":"vip","op":"eq","value":true}}}, "expect": [1,5]},
 {"rule": {"all":[{"field":"country","op":"eq","value":"US"},{"any":[{"field":"vip","op":"eq","value":true},{"field":"score","op":"lt","value":20}]}]}, "expect": [1,4]},
 {"rule": {"any":[{"all":[{"field":"country","op":"in","value":["CA","DE"]},{"field":"score","op":"gte","value":30}]},{"not":{"field":"email","op":"is_set"}}]}, "expect": [2,5]},
 {"rule": {"not":{"any":[{"field":"country","op":"eq","value":"US"},{"field":"vip","op":"eq","value":true}]}}, "expect": [2,3,6]},
 {"rule": {"all":[{"not":{"field":"score","op":"gt","value":50}},{"field":"country","op":"is_set"}]}, "expect": [2,4,6]}
]$$::jsonb) ORDER BY 1;

-- the compiled SQL is two-valued and shows how values are typed
SELECT kenbun.compile('{"all":[{"field":"country","op":"eq","value":"US"},{"level":"engagement","op":"gte","value":"Warm"}]}');
SELECT kenbun.compile('{"field":"email","op":"contains","value":"50%_off"}');
SELECT kenbun.compile('{"field":"plan","op":"neq","value":"pro"}');
SELECT kenbun.compile('{"all":[]}'), kenbun.compile('{"any":[]}');
SELECT kenbun.segment_count('{"all":[]}'), kenbun.segment_count('{"all":[]}', 'account');
SELECT member_id, member->>'email' AS email, member->'attributes' AS attributes
  FROM kenbun.segment_preview('{"field":"country","op":"eq","value":"US"}', lim => 1);
SELECT count(*) FROM kenbun.segment_preview('{"all":[]}', lim => 0);
