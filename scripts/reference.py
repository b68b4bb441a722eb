#!/usr/bin/env python3
"""docs/reference.md, generated from the catalog of an installed kenbun (COMMENT ON text, pg_proc).

    reference.py write   regenerate docs/reference.md and README.md's function table (make docs)
    reference.py check   regenerate and compare with docs/reference.md and the README's table; also compare with the
                         reference of a database upgraded from the previous release (make test)

The reference is built from a database where scripts/demo.sql ran, so that the membership tables and
views kenbun creates when tables are bound are there too. Every public object (name not starting with
an underscore) must have a comment; a function's comment has the lines "Returns:", "Errors:" and
"Example:" (the example is run by scripts/doctest.py, each in a transaction rolled back).
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "reference.md")
SEP = "\x1f"


def fail(msg):
    print("reference: " + msg, file=sys.stderr)
    sys.exit(1)


def psql(db, sql, rows=False):
    cmd = [os.path.join(os.environ["PG_BIN"], "psql"), "-X", "-h", os.environ["SOCKDIR"], "-p",
           os.environ["PGPORT_PRIVATE"], "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-q"]
    if rows:
        cmd += ["-A", "-t", "-F", SEP, "-R", "\x1e"]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    r = subprocess.run(cmd, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if r.returncode != 0:
        fail(f"psql on {db} failed: {r.stderr[-2000:]}")
    if not rows:
        return None
    return [rec.split(SEP) for rec in r.stdout.split("\x1e") if rec.strip("\n")]


def previous_version():
    """The newest version that has an upgrade script to the current one."""
    current = cargo_version()
    for name in os.listdir(os.path.join(ROOT, "sql")):
        m = re.match(r"kenbun--([\d.]+)--([\d.]+)\.sql$", name)
        if m and m.group(2) == current:
            return m.group(1)
    return None


def cargo_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        return re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)


def make_db(db, from_version=None):
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE);\nCREATE DATABASE {db};\n")
    if from_version:
        psql(db, f"SET client_min_messages = warning; CREATE EXTENSION kenbun VERSION '{from_version}';\n"
                 "ALTER EXTENSION kenbun UPDATE;\n")
    with open(os.path.join(ROOT, "scripts", "demo.sql")) as f:
        psql(db, f.read())


FUNCS = r"""
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_arguments(p.oid),
       CASE p.prokind WHEN 'p' THEN '' ELSE pg_get_function_result(p.oid) END, p.prokind,
       p.provolatile, p.prosecdef, coalesce(d.description, ''),
       has_function_privilege('kenbun_reader', p.oid, 'EXECUTE'), has_function_privilege('kenbun_admin', p.oid, 'EXECUTE'),
       has_function_privilege('public', p.oid, 'EXECUTE')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  LEFT JOIN pg_description d ON d.classoid = 'pg_proc'::regclass AND d.objoid = p.oid AND d.objsubid = 0
 WHERE n.nspname = 'kenbun' AND p.proname !~ '^_'
 ORDER BY p.proname, pg_get_function_identity_arguments(p.oid);
"""
RELS = r"""
SELECT c.relname, c.relkind, coalesce(obj_description(c.oid, 'pg_class'), ''),
       EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e'),
       has_table_privilege('kenbun_reader', c.oid, 'SELECT'),
       has_table_privilege('kenbun_admin', c.oid, 'INSERT,UPDATE,DELETE')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'kenbun' AND c.relkind IN ('r', 'v', 'p') AND c.relname !~ '^_'
 ORDER BY c.relname;
"""
COLS = r"""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), coalesce(col_description(c.oid, a.attnum), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE n.nspname = 'kenbun' AND c.relkind IN ('r', 'v', 'p') AND c.relname !~ '^_'
 ORDER BY c.relname, a.attnum;
"""
OTHER = r"""
SELECT 'schema', 'kenbun', coalesce(obj_description('kenbun'::regnamespace, 'pg_namespace'), '')
UNION ALL
SELECT 'type', format_type(t.oid, NULL), coalesce(obj_description(t.oid, 'pg_type'), '')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'kenbun' AND t.typtype IN ('b', 'd', 'e') AND t.typname !~ '^_'
UNION ALL
SELECT 'cast', format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL)
       || CASE c.castcontext WHEN 'i' THEN ' (implicit)' WHEN 'a' THEN ' (on assignment)' ELSE ' (explicit)' END,
       coalesce(obj_description(c.oid, 'pg_cast'), '')
  FROM pg_cast c
 WHERE c.castsource = 'kenbun.segment_rule'::regtype OR c.casttarget = 'kenbun.segment_rule'::regtype;
"""


def parse_comment(text):
    """(description, returns, errors, example) from a function's comment."""
    parts = {"": [], "Returns": [], "Errors": [], "Example": []}
    key = ""
    for line in text.split("\n"):
        m = re.match(r"^(Returns|Errors|Example):\s*(.*)$", line)
        if m:
            key = m.group(1)
            line = m.group(2)
        parts[key].append(line)
    return tuple("\n".join(parts[k]).strip() for k in ("", "Returns", "Errors", "Example"))


def anchor(text):
    return re.sub(r"[^a-z0-9 _-]", "", text.lower()).replace(" ", "-")


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def generate(db):
    funcs = psql(db, FUNCS, rows=True)
    rels = psql(db, RELS, rows=True)
    cols = psql(db, COLS, rows=True)
    other = psql(db, OTHER, rows=True)
    missing = []
    out = ["<!-- doctest: isolated -->",
           f"# kenbun {cargo_version()} SQL reference",
           "",
           "Generated by `make docs` (scripts/reference.py) from the `COMMENT ON` text and the catalog of an",
           "installed kenbun: do not edit it here, edit the comments in `sql/comments.sql`. `make test` fails when",
           "this file is not what the extension says. Every example runs in `make test` on the demo database",
           "(`make demo`), each in a transaction that is rolled back.",
           "",
           "Who may call what: `kenbun_reader` reads, `kenbun_admin` also defines and changes (see the README,",
           "\"Security\"). Errors name their SQLSTATE; every error also says what to do in its HINT where one helps.",
           "",
           "## Contents",
           ""]
    toc_funcs = []
    seen = set()
    for f in funcs:
        if f[0] not in seen:
            seen.add(f[0])
            toc_funcs.append(f"[{f[0]}](#{anchor('kenbun.' + f[0])})")
    out.append("**Functions and procedures:** " + ", ".join(toc_funcs) + ".")
    out.append("")
    out.append("**Tables and views:** " + ", ".join(f"[{r[0]}](#{anchor('kenbun.' + r[0])})" for r in rels) + ".")
    out.append("")
    out.append("**Schema, type and casts:** [below](#schema-type-and-casts).")
    out.append("")
    out.append("## Functions and procedures")
    out.append("")
    by_name = {}
    for f in funcs:
        by_name.setdefault(f[0], []).append(f)
    for name, overloads in by_name.items():
        out.append(f"### kenbun.{name}")
        out.append("")
        for (proname, ident, args, result, kind, vol, secdef, comment, reader, admin, public) in overloads:
            what = "CALL kenbun" if kind == "p" else "kenbun"
            sig = f"{what}.{proname}({args})" + (f" RETURNS {result}" if kind != "p" else "")
            out.append("Signature:")
            out.append("")
            out.append("```text")
            out.append(sig)
            out.append("```")
            out.append("")
            desc, returns, errors, example = parse_comment(comment)
            if not comment:
                missing.append(f"function kenbun.{proname}({ident}): no comment")
            elif not (returns and errors and example) and proname not in ("segment_rule_in", "segment_rule_out"):
                missing.append(f"function kenbun.{proname}({ident}): the comment lacks "
                               + ", ".join(k for k, v in (("Returns:", returns), ("Errors:", errors), ("Example:", example)) if not v))
            out.append(desc)
            out.append("")
            if returns:
                out.append(f"**Returns:** {returns}")
                out.append("")
            if errors:
                out.append(f"**Errors:** {errors}")
                out.append("")
            needs_reader = public == "t" and "42501" in errors
            callers = ("kenbun_reader, kenbun_admin (any role may execute it, but what it reads needs kenbun_reader)"
                       if needs_reader else "everyone") if public == "t" else ", ".join(
                r for r, ok in (("kenbun_reader", reader), ("kenbun_admin", admin)) if ok == "t") or "the extension's owner only"
            facts = [{"i": "immutable", "s": "stable", "v": "volatile"}[vol] if kind != "p" else "procedure",
                     "SECURITY DEFINER" if secdef == "t" else "SECURITY INVOKER (runs with the caller's rights)"]
            out.append(f"**Callable by:** {callers}; {', '.join(facts)}.")
            out.append("")
            if example:
                out.append("**Example:**")
                out.append("")
                out.append("```sql")
                out.append(example)
                out.append("```")
                out.append("")
    out.append("## Tables and views")
    out.append("")
    colmap = {}
    for c in cols:
        colmap.setdefault(c[0], []).append(c)
    for (relname, relkind, comment, member, reader, admin) in rels:
        out.append(f"### kenbun.{relname}")
        out.append("")
        kind = "view" if relkind == "v" else "table"
        if not comment:
            missing.append(f"{kind} kenbun.{relname}: no comment")
        out.append(f"*{kind}*. " + comment)
        out.append("")
        rights = []
        if reader == "t":
            rights.append("`kenbun_reader` may read it")
        if admin == "t":
            rights.append("`kenbun_admin` may write it")
        if rights:
            out.append("Access: " + "; ".join(rights) + ".")
            out.append("")
        out.append("| column | type | | description |")
        out.append("|---|---|---|---|")
        for (_, att, typ, notnull, default, ccomment) in colmap.get(relname, []):
            if not ccomment:
                missing.append(f"column kenbun.{relname}.{att}: no comment")
            flags = ("NOT NULL" if notnull == "t" else "") + (f" DEFAULT {default}" if default else "")
            out.append(f"| `{att}` | `{typ}` | {cell(flags.strip())} | {cell(ccomment)} |")
        out.append("")
    out.append("## Schema, type and casts")
    out.append("")
    for (what, name, comment) in other:
        if not comment:
            missing.append(f"{what} {name}: no comment")
        out.append(f"- **{what} `{name}`**: {comment}")
    out.append("")
    return "\n".join(out), missing, funcs


README = os.path.join(ROOT, "README.md")
BEGIN_TABLE = "<!-- begin: function table generated by scripts/reference.py -->"
END_TABLE = "<!-- end: function table -->"


def readme_table(funcs):
    """The README's table of every function (rows of FUNCS): signature, return type, first sentence of its comment."""
    rows = ["| function | returns | what it does |", "|---|---|---|"]
    for (proname, _ident, args, result, kind, _vol, _secdef, comment, *_grants) in funcs:
        if proname in ("segment_rule_in", "segment_rule_out"):
            continue
        desc = parse_comment(comment)[0]
        first = re.split(r"(?<![ie]\.g)(?<=\.)\s", desc, maxsplit=1)[0].rstrip(".")
        call = ("CALL " if kind == "p" else "") + f"kenbun.{proname}({args})"
        rows.append(f"| `{cell(call)}` | {('`' + cell(result) + '`') if result else 'procedure'} | "
                    f"{cell(first)} ([more](docs/reference.md#{anchor('kenbun.' + proname)})) |")
    return "\n".join(rows)


def readme_with_table(table):
    with open(README) as f:
        text = f.read()
    i, j = text.index(BEGIN_TABLE) + len(BEGIN_TABLE), text.index(END_TABLE)
    return text, text[:i] + "\n" + table + "\n" + text[j:]


def diff(a, b, name_a, name_b):
    import difflib
    return "\n".join(list(difflib.unified_diff(a.split("\n"), b.split("\n"), name_a, name_b, lineterm="", n=1))[:80])


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    make_db("kenbun_reference")
    text, missing, funcs = generate("kenbun_reference")
    if missing and not os.environ.get("KENBUN_REFERENCE_DRAFT"):
        fail("objects without a complete comment (sql/comments.sql):\n  " + "\n  ".join(missing))
    have_readme, want_readme = readme_with_table(readme_table(funcs))
    if mode == "write":
        with open(OUT, "w") as f:
            f.write(text)
        with open(README, "w") as f:
            f.write(want_readme)
        print(f"reference: wrote {os.path.relpath(OUT, ROOT)}")
        return
    with open(OUT) as f:
        have = f.read()
    if have != text:
        fail("docs/reference.md is not what the catalog says; run `make docs` and commit it:\n"
             + diff(have, text, "docs/reference.md", "generated"))
    if have_readme != want_readme:
        fail("README.md's function table is not what the catalog says; run `make docs` and commit it")
    prev = previous_version()
    if prev:
        make_db("kenbun_reference_upgraded", from_version=prev)
        upgraded, _, _ = generate("kenbun_reference_upgraded")
        if upgraded != text:
            fail(f"a database upgraded from {prev} documents itself differently from a fresh install (the upgrade "
                 "script misses comments or objects):\n" + diff(text, upgraded, "fresh install", f"upgraded from {prev}"))
    print("reference: docs/reference.md is current" + (f"; a database upgraded from {prev} matches it" if prev else ""))


if __name__ == "__main__":
    main()
