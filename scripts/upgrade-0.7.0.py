#!/usr/bin/env python3
"""Writes sql/kenbun--0.6.0--0.7.0.sql from the sources: the functions 0.7.0 changed or added, taken from
sql/*.sql as they are, and every COMMENT of sql/comments.sql. Run it after changing one of them;
11_upgrade and scripts/reference.py (make test) compare the upgraded extension with a fresh install."""
import os
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import re
src = {f: open(f'{ROOT}/sql/{f}.sql').read() for f in ('segments','analysis','manual')}
def fn(file, header):
    s = src[file]; i = s.index(header); j = s.index("$$;", i) + 3
    return s[i:j].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
parts = ["""-- kenbun 0.6.0 -> 0.7.0: every public object documented (COMMENT ON, docs/reference.md), key
-- arguments checked with kenbun's errors (a NULL rule in segment_compare), a rejected recompile names its segment, lead_segments and
-- lead_history take a key of any type, an override records who set it. The rule parser now rejects reversed "between" bounds: a saved
-- rule that has them would no longer parse, so the update refuses to run until it is fixed.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s.name), ', ') INTO bad
      FROM kenbun.segments s
     WHERE s.rule IS NOT NULL
       AND pg_catalog.jsonb_path_exists((s.rule::text)::jsonb,
             'strict $.** ? (@.op == "between" && @.value.size() == 2 && @.value[0] > @.value[1])');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'segment(s) % have "between" bounds in reverse order, which kenbun 0.7.0 rejects', bad
            USING ERRCODE = '22023', HINT = 'write the lower bound first (such a condition matched no one), then update again';
    END IF;
END $$;
"""]
parts.append("""CREATE FUNCTION kenbun._load_hooks() RETURNS void
STABLE PARALLEL SAFE STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '_load_hooks_wrapper';
""")
parts.append(fn('segments', 'CREATE FUNCTION kenbun._comment_members('))
parts.append(fn('segments', 'CREATE FUNCTION kenbun._ensure_members('))
parts.append(fn('segments', 'CREATE FUNCTION kenbun._recompile_failed('))
parts.append(fn('segments', 'CREATE FUNCTION kenbun._segments_before('))
parts.append(fn('segments', 'CREATE FUNCTION kenbun._catalog_changed('))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun._bound('))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun._compare(x text, y text)'))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun._compare_members(x text, y text)'))
parts.append(fn('segments', 'CREATE FUNCTION kenbun._segment('))
parts.append("DROP FUNCTION kenbun._override(text, text[], boolean);\n")
parts.append(fn('manual', 'CREATE FUNCTION kenbun._override('))
for w in ('segment_include', 'segment_exclude', 'segment_clear_override'):
    parts.append(fn('manual', f'CREATE FUNCTION kenbun.{w}('))
parts.append("""ALTER FUNCTION kenbun._override(text, text[], boolean, name) SECURITY DEFINER;
REVOKE ALL ON FUNCTION kenbun._override(text, text[], boolean, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kenbun._override(text, text[], boolean, name) TO kenbun_admin;
""")
parts.append(fn('analysis', 'CREATE FUNCTION kenbun._check_key('))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun.segment_members('))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun.lead_segments(lead_id text)'))
parts.append(fn('analysis', 'CREATE FUNCTION kenbun.lead_segments(lead_id anyelement)'))
parts.append(fn('manual', 'CREATE FUNCTION kenbun.lead_history(lead_id anyelement'))
parts.append("""-- CREATE OR REPLACE keeps no SECURITY DEFINER: as in privileges.sql
ALTER FUNCTION kenbun._catalog_changed(boolean) SECURITY DEFINER;
ALTER FUNCTION kenbun._ensure_members(text) SECURITY DEFINER;
ALTER FUNCTION kenbun._segments_before() SECURITY DEFINER;
-- the membership tables and views of the kinds bound already
SELECT kenbun._comment_members(k) FROM (VALUES ('lead'), ('account')) v(k);
""")
parts.append(open(ROOT + '/sql/comments.sql').read())
open(ROOT + '/sql/kenbun--0.6.0--0.7.0.sql','w').write("\n\n".join(parts))
