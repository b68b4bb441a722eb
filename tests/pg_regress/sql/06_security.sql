-- preview and count run with the caller's rights: privileges and row-level security apply.
CREATE ROLE kenbun_test_analyst IN ROLE kenbun_reader;
CREATE ROLE kenbun_test_nobody;
GRANT SELECT ON leads, accounts, events TO kenbun_test_analyst;
ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_us ON leads FOR SELECT TO kenbun_test_analyst USING (country = 'US');
SET ROLE kenbun_test_analyst;
SELECT member_id FROM kenbun.segment_preview('{"all":[]}');
SELECT kenbun.segment_count('{"field":"vip","op":"is_set"}');
SELECT try($$SELECT kenbun.map_field('lead', 'x', 'email', 'text')$$);
RESET ROLE;
SET ROLE kenbun_test_nobody;
SELECT try($$SELECT * FROM kenbun.segment_preview('{"all":[]}')$$);
SELECT try($$SELECT kenbun.segment_count('{"all":[]}', 'account')$$);
SELECT try($$SELECT kenbun.bind_leads('leads')$$);
RESET ROLE;
-- the extension's own functions pin search_path (SECURITY DEFINER ones: see 10_roles)
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'kenbun'::regnamespace
   AND p.proname IN ('compile', 'segment_preview', 'segment_count', 'bind_leads', 'map_field', 'define_levels')
 ORDER BY 1;
-- functions without a pinned search_path run no SQL (type I/O, casts, the capture trigger) or, like
-- the row triggers, run theirs as the owner with search_path = pg_catalog, pg_temp set in Rust
SELECT proname FROM pg_proc
 WHERE pronamespace = 'kenbun'::regnamespace
   AND NOT COALESCE(proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)
 ORDER BY 1;
DROP POLICY only_us ON leads;
ALTER TABLE leads DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON leads, accounts, events FROM kenbun_test_analyst;
DROP ROLE kenbun_test_analyst;
DROP ROLE kenbun_test_nobody;
