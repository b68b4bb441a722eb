#!/usr/bin/env python3
"""Runs every ```sql block of README.md and docs/*.md against a fresh copy of the demo database.

    doctest.py check    run, compare with docs/expected/, fail on any difference (part of make test)
    doctest.py accept   run, write docs/expected/ and the shown outputs in the documents (make docs)

Rules a document follows:
- Every fenced block names its language (```sql, ```sh, ```text, ```json, ...): an untagged block is an
  error, so an example cannot hide from this test.
- The ```sql blocks of a document run in order in ONE psql session (as a reader pasting them into
  `make psql` would), on a database created by scripts/demo.sql just before (one per document). psql runs with its
  defaults (in VERBOSITY verbose, to learn each error's SQLSTATE, printed back as the default prints it).
- A statement that is meant to fail says so with a comment `-- expected error: SQLSTATE`: the errors a
  block raises must be exactly its comments' SQLSTATEs, in order. Any other block must not raise one.
- A ```text block right after a ```sql block is the output the reader sees: it is generated (accept)
  and compared (check). Every block's status (ok, or its errors' SQLSTATEs) is compared too.
- A document whose first line is `<!-- doctest: isolated -->` runs each block inside BEGIN ... ROLLBACK
  (blocks that CALL a procedure or use a *_concurrently function run as they are), so that its
  examples do not depend on each other (docs/reference.md).
Expected outputs live in docs/expected/<document>/<NN>-<section>.out, one file per `##` section.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = os.path.join(ROOT, "docs", "expected")
DB = "kenbun_doctest"
FENCE = re.compile(r"^```(\S*)\s*$")
ERROR_MARK = re.compile(r"--\s*expected error:\s*([0-9A-Z]{5})\b")
BEGIN_MARK = "@@kenbun-doctest begin {}@@"
END_MARK = re.compile(r"^@@kenbun-doctest end (\d+)@@$")


def fail(msg):
    print("doctest: " + msg, file=sys.stderr)
    sys.exit(1)


def documents():
    docs = [os.path.join(ROOT, "README.md")]
    ddir = os.path.join(ROOT, "docs")
    for name in sorted(os.listdir(ddir)):
        if name.endswith(".md"):
            docs.append(os.path.join(ddir, name))
    return docs


def slug(title):
    s = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return s[:40].strip("-") or "top"


class Block:
    def __init__(self, doc, line, section, sql):
        self.doc, self.line, self.section, self.sql = doc, line, section, sql
        # one marker per statement that must fail; the last error's SQLSTATE is checked, and the number
        # of errors (a block whose output is shown compares every message too)
        self.errors = ERROR_MARK.findall(sql)
        self.shown = None  # (start, end) line indexes of the ```text block's body, if any
        self.output = None
        self.codes = None  # the SQLSTATEs of the errors it raised, in order

    def status(self):
        return "error " + " ".join(self.codes) if self.codes else "ok"

    def as_documented(self):
        return self.codes == self.errors


def parse(path):
    """The document's lines, its sql blocks, and its sections in order."""
    with open(path) as f:
        lines = f.read().split("\n")
    rel = os.path.relpath(path, ROOT)
    blocks, sections = [], ["top"]
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            sections.append(line[3:].strip())
        m = FENCE.match(line)
        if not m:
            i += 1
            continue
        lang = m.group(1)
        if not lang:
            fail(f"{rel}:{i + 1}: a fenced block without a language; write ```sql (it runs), ```text, ```sh, ...")
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        if j == len(lines):
            fail(f"{rel}:{i + 1}: unterminated fenced block")
        if FENCE.match(lines[j]).group(1):
            fail(f"{rel}:{j + 1}: a fence opens inside the block that starts at line {i + 1}")
        body = lines[i + 1:j]
        if lang == "sql":
            b = Block(rel, i + 1, len(sections) - 1, "\n".join(body))
            code = [l for l in body if l.strip() and not l.strip().startswith("--")]
            last = code[-1].split("--")[0].rstrip() if code else ""
            if not code or not (last.endswith(";") or code[-1].lstrip().startswith("\\")):
                fail(f"{rel}:{i + 1}: a sql block must end its last statement with ';'")
            # the output shown right after it
            k = j + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and FENCE.match(lines[k]) and FENCE.match(lines[k]).group(1) == "text":
                e = k + 1
                while e < len(lines) and not FENCE.match(lines[e]):
                    e += 1
                b.shown = (k + 1, e)
            blocks.append(b)
        i = j + 1
    return lines, blocks, sections


def psql_cmd(db):
    pg_bin = os.environ["PG_BIN"]
    cmd = [os.path.join(pg_bin, "psql"), "-X", "-h", os.environ["SOCKDIR"], "-p", os.environ["PGPORT_PRIVATE"],
           "-U", "postgres", "-d", db]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def psql(db, script, check=True):
    r = subprocess.run(psql_cmd(db), input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=900)
    if check and r.returncode != 0:
        fail(f"psql on {db} failed:\n{r.stdout[-3000:]}")
    return r.stdout


def roles_of(blocks):
    return sorted(set(re.findall(r"CREATE ROLE\s+(\w+)", "\n".join(b.sql for b in blocks), re.I)))


def drop_demo(blocks):
    # roles are cluster-wide: the ones a document creates are dropped with its database
    script = f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);\n"
    script += "".join(f"DROP ROLE IF EXISTS {r};\n" for r in roles_of(blocks))
    psql("postgres", "\\set ON_ERROR_STOP on\n" + script)


def fresh_demo(blocks):
    drop_demo(blocks)
    psql("postgres", f"CREATE DATABASE {DB};\n")
    with open(os.path.join(ROOT, "scripts", "demo.sql")) as f:
        psql(DB, f.read())


def isolated(lines):
    return bool(lines) and lines[0].strip() == "<!-- doctest: isolated -->"


def run(doc_blocks, iso):
    # verbose, so that every error's SQLSTATE is known; normalize() prints it back as default verbosity
    script = ["\\set VERBOSITY verbose"]
    for n, b in enumerate(doc_blocks):
        script.append("\\echo '" + BEGIN_MARK.format(n) + "'")
        wrap = iso and not re.search(r"^\s*CALL\b|_concurrently\s*\(", b.sql, re.M | re.I)
        if wrap:
            script.append("\\set QUIET on\nBEGIN;\n\\set QUIET off")
        script.append(b.sql)
        if wrap:
            script.append("\\set QUIET on\nROLLBACK;\n\\set QUIET off")
        script.append(f"\\echo '@@kenbun-doctest end {n}@@'")
    out = psql(DB, "\n".join(script) + "\n", check=False)
    cur, buf = None, []
    for line in out.split("\n"):
        if cur is None:
            m = re.match(r"^@@kenbun-doctest begin (\d+)@@$", line)
            if m:
                cur, buf = int(m.group(1)), []
            continue
        m = END_MARK.match(line)
        if m:
            b = doc_blocks[cur]
            b.codes = [c.group(1) for c in (VERBOSE_ERROR.match(l) for l in buf) if c]
            b.output = normalize(buf)
            cur = None
            continue
        buf.append(line)
    for b in doc_blocks:
        if b.codes is None:
            fail(f"{b.doc}:{b.line}: the block did not finish (psql stopped?); psql's output ends with:\n{out[-2000:]}")


VERBOSE_ERROR = re.compile(r"^ERROR:  ([0-9A-Z]{5}): ")
VERBOSE_ONLY = re.compile(r"^(LOCATION|SCHEMA NAME|TABLE NAME|COLUMN NAME|DATATYPE NAME|CONSTRAINT NAME):  ")


def normalize(lines):
    """psql's output as a reader sees it (default verbosity), with the notifying backend's PID masked."""
    lines = [re.sub(r"^(ERROR|WARNING|NOTICE|INFO|LOG|DEBUG|FATAL):  [0-9A-Z]{5}: ", r"\1:  ", l)
             for l in lines if not VERBOSE_ONLY.match(l)]
    out = [re.sub(r"server process with PID \d+", "server process with PID <pid>", l).rstrip() for l in lines]
    while out and not out[-1]:
        out.pop()
    return out


def expected_text(blocks, sections):
    """docs/expected files for one document: {relative file name: text}."""
    files = {}
    for b in blocks:
        name = f"{b.section:02d}-{slug(sections[b.section])}.out"
        body = files.setdefault(name, [])
        n = sum(1 for x in blocks if x.section == b.section and x.line < b.line) + 1
        body.append(f"-- block {n}: {b.status()}")
        if b.shown:
            body.extend(b.output)
    return {k: "\n".join(v) + "\n" for k, v in files.items()}


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode not in ("check", "accept"):
        fail("usage: doctest.py check|accept")
    docs = [(d, *parse(d)) for d in documents()]
    problems = []
    for path, lines, blocks, sections in docs:
        rel = os.path.relpath(path, ROOT)
        fresh_demo(blocks)
        run(blocks, isolated(lines))
        if all(x.as_documented() for x in blocks):
            drop_demo(blocks)  # kept after a failure, to look into
        for b in blocks:
            if not b.as_documented():
                problems.append(f"{b.doc}:{b.line}: expected errors {b.errors or 'none'}, got {b.codes or 'none'}:\n    "
                                + "\n    ".join(b.output[-15:]))
        exp_dir = os.path.join(EXPECTED, os.path.splitext(rel)[0].replace("/", "_"))
        actual = expected_text(blocks, sections)
        results = os.path.join(os.environ.get("STATE", "/tmp"), "doctest", os.path.basename(exp_dir))
        os.makedirs(results, exist_ok=True)
        for name, text in actual.items():
            with open(os.path.join(results, name), "w") as f:
                f.write(text)
        if mode == "accept":
            os.makedirs(exp_dir, exist_ok=True)
            for old in os.listdir(exp_dir):
                if old not in actual:
                    os.remove(os.path.join(exp_dir, old))
            for name, text in actual.items():
                with open(os.path.join(exp_dir, name), "w") as f:
                    f.write(text)
            # the shown outputs, from the bottom up so that line numbers stay valid
            for b in sorted((b for b in blocks if b.shown), key=lambda b: -b.line):
                s, e = b.shown
                lines[s:e] = b.output
            with open(path, "w") as f:
                f.write("\n".join(lines))
            continue
        have = {}
        if os.path.isdir(exp_dir):
            for name in os.listdir(exp_dir):
                with open(os.path.join(exp_dir, name)) as f:
                    have[name] = f.read()
        for name in sorted(set(have) | set(actual)):
            if have.get(name) != actual.get(name):
                problems.append(f"{rel}: output differs from docs/expected/{os.path.basename(exp_dir)}/{name} "
                                f"(actual in {results}/{name}):\n" + diff(have.get(name, ""), actual.get(name, "")))
        for b in blocks:
            if b.shown:
                s, e = b.shown
                if [l.rstrip() for l in lines[s:e]] != b.output:
                    problems.append(f"{b.doc}:{s}: the output shown is not what the block at line {b.line} prints "
                                    "(run `make docs` to regenerate it):\n" + diff("\n".join(lines[s:e]), "\n".join(b.output)))
    n = sum(len(bl) for _, _, bl, _ in docs)
    if problems:
        for p in problems:
            print("doctest: " + p, file=sys.stderr)
        fail(f"{len(problems)} problem(s) in {n} sql blocks; `make docs` regenerates the expected outputs after a deliberate change")
    print(f"doctest: {n} sql blocks in {len(docs)} documents ran as documented" + (" (expected outputs written)" if mode == "accept" else ""))


def diff(a, b):
    import difflib
    d = difflib.unified_diff(a.split("\n"), b.split("\n"), "expected", "actual", lineterm="", n=2)
    return "\n".join(list(d)[:60])


if __name__ == "__main__":
    main()
