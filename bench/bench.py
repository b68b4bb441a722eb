#!/usr/bin/env python3
"""kenbun benchmark: membership maintenance against what a user would do instead, on the same data
in the same run, every figure as a ratio to its baseline. Started by `make bench` (see BENCHMARKS.md).

  bench/bench.py [--leads 100000] [--runs 3] [--quick] [--only fill,bulk,lowchange,unread,compile,diy,pgbench,online]
                 [--clients 1,2,8] [--setup-only] [--db NAME] [--reuse] [--online-seconds 2]

  bench/bench.py --only online [--leads N]   writers' latency during online definition changes (0.5.0), online vs
                                             synchronous fill, prune_changes (bench/online.py); database
                                             kenbun_bench_online, results bench/results/<date>-online[-N].md/.json
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from segments import account_segments, lead_segments  # noqa: E402
import online  # noqa: E402

DB = "kenbun_bench"


def env():
    out = subprocess.check_output(
        ["bash", "-c", f"source {ROOT}/scripts/env.sh; echo $SOCKDIR; echo $PGPORT_PRIVATE; echo $PG_BIN"], text=True
    ).split("\n")
    return out[0], out[1], out[2]


SOCK, PORT, PG_BIN = env()
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def psql(sql, db=None, check=True):
    db = db or DB  # resolved per call: --db changes DB after these functions are defined
    p = subprocess.run(
        AS_PG + [f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", SOCK, "-p", PORT, "-U", "postgres", "-d", db],
        input=sql, text=True, capture_output=True,
    )
    if check and p.returncode != 0:
        sys.exit(f"psql failed:\n{p.stderr}\n--- SQL ---\n{sql[:3000]}")
    return p.stdout


def timed(statements, db=None, setup="", per=None):
    """Runs setup, then each (label, sql) with \\timing; returns {label: [ms, ...]}."""
    script = [setup, "\\timing on"]
    for label, sql in statements:
        script.append(f"\\echo @@{label}")
        script.append(sql if sql.rstrip().endswith(";") else sql + ";")
    out = psql("\n".join(script), db)
    res, current = {}, None
    for line in out.splitlines():
        if line.startswith("@@"):
            current = line[2:]
        elif line.startswith("Time: ") and current is not None:
            ms = float(re.match(r"Time: ([\d.]+) ms", line).group(1))
            res.setdefault(current, []).append(ms)
    return res


def q(s):
    return "'" + s.replace("'", "''") + "'"


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


COPIES = """
-- identical copies without kenbun: the baselines
CREATE TABLE app.leads_plain (LIKE app.leads INCLUDING ALL);
INSERT INTO app.leads_plain SELECT * FROM app.leads;
CREATE TABLE app.events_plain (LIKE app.events INCLUDING ALL);
INSERT INTO app.events_plain SELECT * FROM app.events;
CREATE TABLE app.leads_diy (LIKE app.leads INCLUDING ALL);
INSERT INTO app.leads_diy SELECT * FROM app.leads;
"""


def generate(n_leads, copies=True):
    """copies: the plain copies of leads and events (the baselines of fill, bulk, lowchange, unread,
    diy and pgbench); measure online does not use them."""
    n_acc = max(n_leads // 20, 10)
    n_ev = n_leads * 20
    t0 = time.time()
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "postgres")
    psql(f"CREATE DATABASE {DB}", "postgres")
    psql(f"""
SET client_min_messages = warning;
CREATE EXTENSION kenbun;
CREATE SCHEMA app;
CREATE TABLE app.accounts (id bigint PRIMARY KEY, name text, industry text, employees int, plan text, country text);
CREATE TABLE app.leads (id bigint PRIMARY KEY, account_id bigint, email text, country text, title text, score int,
                        vip boolean, last_seen_at timestamptz, notes text, attributes jsonb NOT NULL DEFAULT '{{}}');
CREATE TABLE app.events (id bigserial PRIMARY KEY, lead_id bigint NOT NULL, type text NOT NULL,
                         occurred_at timestamptz NOT NULL, metadata jsonb NOT NULL DEFAULT '{{}}');
SELECT setseed(0.42);
INSERT INTO app.accounts
SELECT i, 'Account ' || i,
       (ARRAY['SaaS','Retail','Fintech','Healthcare','Education'])[1 + floor(random() * 5)::int],
       (ARRAY[8, 40, 150, 800, 5000])[1 + floor(random() * 5)::int],
       (ARRAY['free','starter','growth','enterprise'])[1 + floor(random() * 4)::int],
       (ARRAY['US','US','GB','DE','FR'])[1 + floor(random() * 5)::int]
FROM generate_series(1, {n_acc}) i;
INSERT INTO app.leads
SELECT i, CASE WHEN random() < 0.95 THEN 1 + floor(random() * {n_acc})::int END,
       'lead' || i || '@' || (ARRAY['gmail.com','acme.io','corp.example','uni.edu'])[1 + floor(random() * 4)::int],
       (ARRAY['US','US','US','CA','GB','DE','FR','BR',NULL])[1 + floor(random() * 9)::int],
       (ARRAY['Engineer','VP Marketing','CTO','Analyst','Head of Growth',NULL])[1 + floor(random() * 6)::int],
       floor(random() * 100)::int, random() < 0.1, now() - random() * interval '120 days', NULL,
       jsonb_build_object('plan', (ARRAY['free','trial','pro','team'])[1 + floor(random() * 4)::int],
                          'source', (ARRAY['ads','organic','referral','event'])[1 + floor(random() * 4)::int],
                          'newsletter', random() < 0.4, 'seats', floor(random() * 50)::int)
FROM generate_series(1, {n_leads}) i;
INSERT INTO app.events (lead_id, type, occurred_at, metadata)
SELECT 1 + floor(random() * {n_leads})::int, t,
       now() - random() * interval '90 days',
       CASE t WHEN 'page_view' THEN jsonb_build_object('url', (ARRAY['/pricing','/docs','/blog','/','/careers'])[1 + floor(random() * 5)::int])
              WHEN 'email_open' THEN jsonb_build_object('campaign', (ARRAY['spring','launch','webinar'])[1 + floor(random() * 3)::int])
              ELSE '{{}}'::jsonb END
FROM (SELECT (ARRAY['page_view','page_view','page_view','page_view','email_open','email_open','email_click','demo_request','signup'])[1 + floor(random() * 9)::int] AS t
        FROM generate_series(1, {n_ev})) g;
CREATE INDEX ON app.events (lead_id, type, occurred_at);
CREATE INDEX ON app.leads (account_id);
{COPIES if copies else ""}
VACUUM ANALYZE;
""")
    return {"leads": n_leads, "accounts": n_acc, "events": n_ev, "seconds": round(time.time() - t0, 1)}


def define_segments():
    psql("""
SET client_min_messages = warning;
SELECT kenbun.bind_accounts('app.accounts');
SELECT kenbun.bind_leads('app.leads', account_key => 'account_id');
SELECT kenbun.bind_events('app.events');
SELECT kenbun.define_levels('engagement', 'score',
  '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]');
""")
    rows = []
    for name, rule, _ in lead_segments():
        rows.append(f"({q(name)}, 'lead', {q(json.dumps(rule))})")
    for name, rule, _ in account_segments():
        rows.append(f"({q(name)}, 'account', {q(json.dumps(rule))})")
    t0 = time.time()
    # one statement: segments referencing others come after them in the list. Filled in this statement
    # at every size, as before 0.5.0 (from 0.5.0, over kenbun.sync_max_rows rows, default 100,000, a
    # definition change would only mark them building and leave the fill to CALL kenbun.segment_build();
    # the setting is a placeholder that older versions ignore)
    psql("SET client_min_messages = warning;\nSET kenbun.sync_max_rows = -1;\n"
         "INSERT INTO kenbun.segments (name, kind, rule) VALUES\n" + ",\n".join(rows) + ";")
    return round(time.time() - t0, 2)


def bench_fill(runs):
    """1. full fill of each segment (rule evaluated over the table, members inserted, every enter
    logged and notified) vs the hand-written INSERT … SELECT into an empty table plus one row per
    member entered into a plain copy of the change log (one statement, the query evaluated once)."""
    segs = [(n, "lead", sql) for n, _, sql in lead_segments()] + [(n, "account", sql) for n, _, sql in account_segments()]
    res = {"kenbun": {}, "hand": {}, "mismatch": []}
    # the hand-written fill writes what kenbun writes: membership rows (same columns and indexes as
    # kenbun.lead_members; account ids go into lead_id) and one change-log row per member entered
    psql("""SET client_min_messages = warning;
DROP TABLE IF EXISTS app.fill, app.fill_changes;
CREATE TABLE app.fill (LIKE kenbun.lead_members INCLUDING ALL);
CREATE TABLE app.fill_changes (LIKE kenbun.membership_changes INCLUDING ALL);""")
    for i, (name, kind, sql) in enumerate(segs):
        tbl = "kenbun.lead_members" if kind == "lead" else "kenbun.account_members"
        frm = "app.leads_plain l" if kind == "lead" else "app.accounts a"
        key = "l.id" if kind == "lead" else "a.id"
        stmts_k, stmts_h = [], []
        for r in range(runs):
            # kenbun: empty the membership (untimed, vacuumed), then time the fill: segment_repair of an
            # empty segment takes the same path as the initial fill on INSERT or activation
            psql(f"DELETE FROM {tbl} WHERE segment_id = (SELECT id FROM kenbun.segments WHERE name = {q(name)})")
            psql(f"VACUUM {tbl}")
            stmts_k.append(("fill", f"SELECT * FROM kenbun.segment_repair({q(name)})"))
            stmts_h.append(("clear", "TRUNCATE app.fill, app.fill_changes"))
            stmts_h.append(("fill", f"WITH m AS (INSERT INTO app.fill (segment_id, lead_id) SELECT {i}, {key} FROM {frm} WHERE {sql} "
                                    f"RETURNING lead_id) INSERT INTO app.fill_changes (segment_id, kind, member_id, change, reason) "
                                    f"SELECT {i}, {q(kind)}, lead_id::text, 'enter', 'initial' FROM m"))
            k = timed(stmts_k, setup="SET client_min_messages = warning;")["fill"]
            stmts_k = []
            res["kenbun"].setdefault(name, []).extend(k)
        res["kenbun"][name] = stats(res["kenbun"][name])
        res["hand"][name] = stats(timed(stmts_h)["fill"])
        # counts are compared in one statement, so that time windows are evaluated at the same instant
        got, want = psql(
            f"SELECT (SELECT count(*) FROM kenbun.segment_preview((SELECT rule FROM kenbun.segments WHERE name = {q(name)}), {q(kind)}, 2147483647)),"
            f" (SELECT count(*) FROM {frm} WHERE {sql})"
        ).strip().split("|")
        members = psql(f"SELECT count(*) FROM {tbl} WHERE segment_id = (SELECT id FROM kenbun.segments WHERE name = {q(name)})").strip()
        timed_seg = psql(f"SELECT time_dependent FROM kenbun.segments WHERE name = {q(name)}").strip() == "t"
        if got != want or (members != got and not timed_seg):
            res["mismatch"].append({"segment": name, "kenbun_rule": got, "hand": want, "members": members})
    tk = sum(v["median"] for v in res["kenbun"].values())
    th = sum(v["median"] for v in res["hand"].values())
    res["total_kenbun_ms"], res["total_hand_ms"], res["ratio"] = tk, th, tk / th
    return res


def bulk_update_sql(table, r):
    return (f"UPDATE {table} SET score = (score + 37) % 100, "
            f"attributes = attributes || jsonb_build_object('seats', ((attributes ->> 'seats')::int + 7) % 50) "
            f"WHERE id % 10 = {r}")


def lowchange_update_sql(table, r):
    """An UPDATE of 10% of the leads that writes two fields segments read (score, attributes) but
    rarely changes membership: score + 1 crosses a threshold of the segments only from 24, 49 and 74
    (3 in 100), and the jsonb key written (visits) is read by no segment."""
    return (f"UPDATE {table} SET score = score + 1, "
            f"attributes = attributes || jsonb_build_object('visits', COALESCE((attributes ->> 'visits')::int, 0) + 1) "
            f"WHERE id % 10 = {r}")


def rss_detail():
    """VmHWM (peak), RssAnon (private, now) and RssShmem (shared buffers touched, now) of the backend, kB."""
    st = "pg_read_file('/proc/self/status')"
    return (f"SELECT substring({st} from 'VmHWM:\\s*(\\d+)')::bigint, substring({st} from 'RssAnon:\\s*(\\d+)')::bigint, "
            f"substring({st} from 'RssShmem:\\s*(\\d+)')::bigint")


MINIMAL_SETUP = """
SET client_min_messages = warning;
-- the minimal-write baseline: plain copies of kenbun's membership tables (same columns and indexes,
-- same content) and of its change log, and the changes kenbun made, typed and split in advance
DROP TABLE IF EXISTS app.min_lead_members, app.min_account_members, app.min_changes, app.delta_log,
  app.delta_lead_enter, app.delta_lead_exit, app.delta_account_enter, app.delta_account_exit;
CREATE TABLE app.min_lead_members (LIKE kenbun.lead_members INCLUDING ALL);
INSERT INTO app.min_lead_members SELECT * FROM kenbun.lead_members;
CREATE TABLE app.min_account_members (LIKE kenbun.account_members INCLUDING ALL);
INSERT INTO app.min_account_members SELECT * FROM kenbun.account_members;
CREATE TABLE app.min_changes (LIKE kenbun.membership_changes INCLUDING ALL);
CREATE TABLE app.delta_log (segment_id bigint, kind text, member_id text, change text, reason text);
CREATE TABLE app.delta_lead_enter (segment_id bigint, lead_id bigint);
CREATE TABLE app.delta_lead_exit (segment_id bigint, lead_id bigint);
CREATE TABLE app.delta_account_enter (segment_id bigint, account_id bigint);
CREATE TABLE app.delta_account_exit (segment_id bigint, account_id bigint);
VACUUM ANALYZE app.min_lead_members, app.min_account_members, app.min_changes;
"""

CHANGE_COLS = "segment_id, kind, member_id, change, reason"
_minimal_ready = False


def minimal_setup():
    """Copies the membership once per process: nothing the measures commit before the copy is used
    changes membership (pgbench, which commits, runs last)."""
    global _minimal_ready
    if not _minimal_ready:
        psql(MINIMAL_SETUP)
        _minimal_ready = True


def kenbun_update_capturing(update):
    """Runs a bulk UPDATE of app.leads, timed, in a transaction that is rolled back, and returns
    (ms, the change-log rows it appended as COPY text)."""
    out = psql(f"""BEGIN;
SELECT coalesce(max(id), 0) AS before FROM kenbun.membership_changes \\gset
\\timing on
\\echo @@u
{update};
\\timing off
\\echo @@delta
COPY (SELECT {CHANGE_COLS} FROM kenbun.membership_changes WHERE id > :before ORDER BY id) TO STDOUT;
\\echo @@end
ROLLBACK;
""")
    head, rest = out.split("@@delta\n", 1)
    ms = float(re.search(r"Time: ([\d.]+) ms", head.split("@@u", 1)[1]).group(1))
    return ms, rest.split("@@end", 1)[0]


def load_delta(rows):
    """Loads kenbun's changes into app.delta_* (untimed) and returns their counts."""
    out = psql(f"""SET client_min_messages = warning;
TRUNCATE app.delta_log, app.delta_lead_enter, app.delta_lead_exit, app.delta_account_enter, app.delta_account_exit;
COPY app.delta_log ({CHANGE_COLS}) FROM STDIN;
{rows}\\.
INSERT INTO app.delta_lead_enter SELECT segment_id, member_id::bigint FROM app.delta_log WHERE kind = 'lead' AND change = 'enter';
INSERT INTO app.delta_lead_exit SELECT segment_id, member_id::bigint FROM app.delta_log WHERE kind = 'lead' AND change = 'exit';
INSERT INTO app.delta_account_enter SELECT segment_id, member_id::bigint FROM app.delta_log WHERE kind = 'account' AND change = 'enter';
INSERT INTO app.delta_account_exit SELECT segment_id, member_id::bigint FROM app.delta_log WHERE kind = 'account' AND change = 'exit';
VACUUM ANALYZE app.delta_log, app.delta_lead_enter, app.delta_lead_exit, app.delta_account_enter, app.delta_account_exit;
SELECT count(*), count(*) FILTER (WHERE kind = 'lead'), count(*) FILTER (WHERE kind = 'account'),
       count(DISTINCT member_id) FILTER (WHERE kind = 'lead'), count(DISTINCT member_id) FILTER (WHERE kind = 'account')
  FROM app.delta_log;
""")
    n = [int(x) for x in out.strip().split("|")]
    return {"changes": n[0], "lead_changes": n[1], "account_changes": n[2], "leads_changed": n[3], "accounts_changed": n[4]}


def minimal_write(update):
    """The same UPDATE on the copy without triggers, then in the same transaction the membership
    changes kenbun made (app.delta_*) written by hand to the plain copies, and as many change-log rows;
    rolled back. Returns the sum of the statements' times in ms."""
    out = psql(f"""BEGIN;
\\timing on
\\echo @@m
{update};
DELETE FROM app.min_lead_members m USING app.delta_lead_exit d WHERE m.segment_id = d.segment_id AND m.lead_id = d.lead_id;
INSERT INTO app.min_lead_members (segment_id, lead_id) SELECT segment_id, lead_id FROM app.delta_lead_enter;
DELETE FROM app.min_account_members m USING app.delta_account_exit d WHERE m.segment_id = d.segment_id AND m.account_id = d.account_id;
INSERT INTO app.min_account_members (segment_id, account_id) SELECT segment_id, account_id FROM app.delta_account_enter;
INSERT INTO app.min_changes ({CHANGE_COLS}) SELECT {CHANGE_COLS} FROM app.delta_log;
\\timing off
ROLLBACK;
""")
    return sum(float(x) for x in re.findall(r"Time: ([\d.]+) ms", out.split("@@m", 1)[1]))


def settle():
    """Untimed, before each timed bulk statement: removes the row versions the previous (rolled-back)
    runs left in the tables they wrote, so that no run pays for pruning another one's leftovers."""
    psql("VACUUM app.leads, app.leads_plain, kenbun.lead_members, kenbun.account_members, kenbun.membership_changes, "
         "app.min_lead_members, app.min_account_members, app.min_changes")


def bulk_compare(sql_fn, r):
    """One run of a bulk UPDATE (rows id % 10 = r) with kenbun, on the copy without triggers, and as the
    minimal write; every transaction is rolled back and each timed statement is preceded by a VACUUM,
    so each run starts from the same state."""
    settle()
    k, rows = kenbun_update_capturing(sql_fn("app.leads", r))
    delta = load_delta(rows)
    settle()
    m = minimal_write(sql_fn("app.leads_plain", r))
    settle()
    p = timed([("u", sql_fn("app.leads_plain", r))], setup="BEGIN;")["u"][0]
    updated = int(psql(f"SELECT count(*) FROM app.leads WHERE id % 10 = {r}").strip())
    return {"kenbun": k, "plain": p, "minimal": m, "rows_updated": updated, **delta}


def bench_bulk(runs):
    """2. bulk UPDATE of 10% of leads touching read fields: kenbun vs no triggers vs the minimal write vs
    matviews; 6. memory."""
    segs = [(n, sql, "app.leads_plain l") for n, _, sql in lead_segments()] + \
           [(n, sql, "app.accounts a") for n, _, sql in account_segments()]
    mv = []
    for i, (name, sql, frm) in enumerate(segs):
        key = "l.id" if frm.endswith(" l") else "a.id"
        mv.append(f"CREATE MATERIALIZED VIEW IF NOT EXISTS app.mv_{i} AS SELECT {key} FROM {frm} WHERE {sql};")
    psql("SET client_min_messages = warning;\n" + "\n".join(mv))
    minimal_setup()
    refresh = "\n".join(f"REFRESH MATERIALIZED VIEW app.mv_{i};" for i in range(len(segs)))
    out = {"kenbun": [], "plain": [], "minimal": [], "matview_refresh": [], "changes": []}
    for r in range(runs):
        c = bulk_compare(bulk_update_sql, r)
        out["kenbun"].append(c.pop("kenbun"))
        out["plain"].append(c.pop("plain"))
        out["minimal"].append(c.pop("minimal"))
        out["changes"].append(c)
        settle()
        m = psql(f"\\timing on\nBEGIN;\n{bulk_update_sql('app.leads_plain', r)};\n\\echo @@start\n{refresh}\nROLLBACK;")
        after = m.split("@@start", 1)[1]
        out["matview_refresh"].append(sum(float(x) for x in re.findall(r"Time: ([\d.]+) ms", after)[:len(segs)]))
    res = {k: stats(v) for k, v in out.items() if k != "changes"}
    res["changes"] = out["changes"]
    # memory: peak resident size of the backend (VmHWM), before and after the bulk statement, same
    # session. "warm": the session first runs (and rolls back) the same UPDATE on 0.1% of the leads, so
    # that what a long-lived connection builds once (kenbun's compiled rules and the plans of its
    # generated statements; PostgreSQL's own caches) is not counted as the bulk statement's; "cold":
    # a fresh session, as measured up to 0.3.0.
    for mode in ("warm", "cold"):
        for table, key in [("app.leads", "kenbun"), ("app.leads_plain", "plain")]:
            warm = ""
            if mode == "warm":
                warm = f"BEGIN;\n{bulk_update_sql(table, 7).replace('id % 10 = 7', 'id % 1000 = 7')};\nROLLBACK;\n"
            o = psql(f"{warm}BEGIN;\n{rss_detail()};\n{bulk_update_sql(table, 7)};\n{rss_detail()};\nROLLBACK;").split()
            before, after = [int(x) for x in o[0].split("|")], [int(x) for x in o[1].split("|")]
            suffix = "" if mode == "warm" else "_cold"
            res[f"rss_{key}{suffix}_kb"] = [before[0], after[0]]
            res[f"rss_{key}{suffix}_detail_kb"] = {"before": dict(zip(["VmHWM", "RssAnon", "RssShmem"], before)),
                                                  "after": dict(zip(["VmHWM", "RssAnon", "RssShmem"], after))}
    for suffix in ("", "_cold"):
        gk = res[f"rss_kenbun{suffix}_kb"][1] - res[f"rss_kenbun{suffix}_kb"][0]
        gp = res[f"rss_plain{suffix}_kb"][1] - res[f"rss_plain{suffix}_kb"][0]
        res[f"rss_growth{suffix}_kb"] = {"kenbun": gk, "plain": gp}
        res[f"rss_ratio{suffix}"] = gk / gp if gp > 0 else None
    res["ratio_vs_plain"] = res["kenbun"]["median"] / res["plain"]["median"]
    res["ratio_vs_minimal"] = res["kenbun"]["median"] / res["minimal"]["median"]
    res["matview_ratio"] = (res["plain"]["median"] + res["matview_refresh"]["median"]) / res["kenbun"]["median"]
    return res


def bench_lowchange(runs):
    """2c. bulk UPDATE of 10% of leads writing read fields where few rows change membership: kenbun vs
    the same UPDATE without triggers (and vs the minimal write); the fraction of updated leads whose
    membership changed is measured from the change log."""
    minimal_setup()
    out = {"kenbun": [], "plain": [], "minimal": [], "changes": []}
    for r in range(runs):
        c = bulk_compare(lowchange_update_sql, r)
        for k in ("kenbun", "plain", "minimal"):
            out[k].append(c.pop(k))
        out["changes"].append(c)
    res = {k: stats(v) for k, v in out.items() if k != "changes"}
    res["changes"] = out["changes"]
    res["changed_fraction"] = max(c["leads_changed"] / c["rows_updated"] for c in out["changes"])
    res["ratio_vs_plain"] = res["kenbun"]["median"] / res["plain"]["median"]
    res["ratio_vs_minimal"] = res["kenbun"]["median"] / res["minimal"]["median"]
    return res


def bench_unread(runs):
    """4. an UPDATE of a column no segment reads."""
    k, p = [], []
    for r in range(runs):
        k += timed([("u", f"UPDATE app.leads SET notes = 'n{r}' WHERE id % 10 = {r}")], setup="BEGIN;")["u"]
        p += timed([("u", f"UPDATE app.leads_plain SET notes = 'n{r}' WHERE id % 10 = {r}")], setup="BEGIN;")["u"]
    return {"kenbun": stats(k), "plain": stats(p), "ratio": statistics.median(k) / statistics.median(p)}


DIY = """
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS app.diy_members (segment_id int, lead_id bigint, entered_at timestamptz DEFAULT now(),
                                            PRIMARY KEY (segment_id, lead_id));
CREATE INDEX IF NOT EXISTS diy_members_lead_id_idx ON app.diy_members (lead_id);
-- the "do it yourself" baseline: a PL/pgSQL row trigger for three segments, writing only on change
CREATE OR REPLACE FUNCTION app.diy_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k bigint := COALESCE(NEW.id, OLD.id);
  want boolean[];
  have boolean[];
  i int;
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM app.diy_members WHERE lead_id = OLD.id;
    RETURN NULL;
  END IF;
  want := ARRAY[COALESCE(NEW.country = 'US', false), COALESCE(NEW.score >= 50, false),
                COALESCE(NEW.attributes ->> 'plan' = 'pro', false)];
  SELECT ARRAY[bool_or(segment_id = 1), bool_or(segment_id = 2), bool_or(segment_id = 3)] INTO have
    FROM app.diy_members WHERE lead_id = k;
  FOR i IN 1..3 LOOP
    IF want[i] AND NOT COALESCE(have[i], false) THEN
      INSERT INTO app.diy_members (segment_id, lead_id) VALUES (i, k);
    ELSIF NOT want[i] AND COALESCE(have[i], false) THEN
      DELETE FROM app.diy_members WHERE segment_id = i AND lead_id = k;
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
TRUNCATE app.diy_members;
INSERT INTO app.diy_members (segment_id, lead_id)
  SELECT 1, id FROM app.leads_diy WHERE country = 'US'
  UNION ALL SELECT 2, id FROM app.leads_diy WHERE score >= 50
  UNION ALL SELECT 3, id FROM app.leads_diy WHERE attributes ->> 'plan' = 'pro';
DROP TRIGGER IF EXISTS diy ON app.leads_diy;
CREATE TRIGGER diy AFTER INSERT OR UPDATE OR DELETE ON app.leads_diy FOR EACH ROW EXECUTE FUNCTION app.diy_trigger();
"""


def bench_diy(runs):
    """5. a hand-written PL/pgSQL row trigger for three segments, as the do-it-yourself baseline."""
    psql(DIY)
    d = []
    for r in range(runs):
        d += timed([("u", bulk_update_sql("app.leads_diy", r))], setup="BEGIN;")["u"]
    return {"diy_3_segments": stats(d)}


def pgbench(script, clients, seconds, maxid):
    """Runs a custom script; returns tps, mean latency (pgbench's own) and the median latency of the
    transactions (from pgbench's per-transaction log)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir="/tmp") as f:
        f.write(script)
        path = f.name
    os.chmod(path, 0o644)
    logdir = tempfile.mkdtemp(prefix="kenbun-pgbench-", dir="/tmp")
    os.chmod(logdir, 0o777)
    try:
        p = subprocess.run(
            AS_PG + [f"{PG_BIN}/pgbench", "-n", "-h", SOCK, "-p", PORT, "-U", "postgres", "-f", path, "-c", str(clients),
                     "-j", str(clients), "-T", str(seconds), "-D", f"maxid={maxid}",
                     "-l", f"--log-prefix={logdir}/tx", DB],
            text=True, capture_output=True,
        )
        if p.returncode != 0:
            sys.exit(f"pgbench failed: {p.stderr}")
        # per-transaction log: client_id transaction_no time_us script_no time_epoch time_us_part
        lat = []
        for name in os.listdir(logdir):
            with open(os.path.join(logdir, name)) as f:
                lat += [int(line.split()[2]) for line in f if line.strip()]
    finally:
        os.unlink(path)
        shutil.rmtree(logdir, ignore_errors=True)
    tps = float(re.search(r"tps = ([\d.]+)", p.stdout).group(1))
    mean = float(re.search(r"latency average = ([\d.]+) ms", p.stdout).group(1))
    return {"tps": tps, "latency_ms": mean, "median_latency_ms": statistics.median(lat) / 1000.0 if lat else mean,
            "transactions": len(lat)}


def bench_pgbench(seconds, clients_list, maxid):
    """3. single-row updates and event inserts with pgbench: with and without the extension."""
    upd = "\\set id random(1, :maxid)\nUPDATE {t} SET score = (score + 1) % 100 WHERE id = :id;\n"
    ins = "\\set id random(1, :maxid)\nINSERT INTO {t} (lead_id, type, occurred_at, metadata) VALUES (:id, 'page_view', now(), '{{\"url\":\"/pricing\"}}');\n"
    out = {}
    for c in clients_list:
        for name, tmpl, with_t, without_t in [("update", upd, "app.leads", "app.leads_plain"),
                                              ("event_insert", ins, "app.events", "app.events_plain"),
                                              ("update_diy", upd, "app.leads_diy", "app.leads_plain")]:
            if name == "update_diy" and c != 1:
                continue
            a = pgbench(tmpl.format(t=with_t), c, seconds, maxid)
            b = pgbench(tmpl.format(t=without_t), c, seconds, maxid)
            out[f"{name}_c{c}"] = {"with": a, "without": b,
                                   "added_latency_ms": a["latency_ms"] - b["latency_ms"],
                                   "added_median_latency_ms": a["median_latency_ms"] - b["median_latency_ms"],
                                   "tps_ratio": a["tps"] / b["tps"]}
    return out


# 4b. a 10-condition lead rule over plain columns, JSON paths, a level and account properties
RULE10 = {"all": [
    {"field": "country", "op": "in", "value": ["US", "CA", "GB", "DE"]},
    {"field": "score", "op": "gte", "value": 10},
    {"field": "email", "op": "ends_with", "value": ".com"},
    {"any": [{"field": "title", "op": "starts_with", "value": "VP"}, {"field": "title", "op": "starts_with", "value": "Head"}]},
    {"field": "attributes.plan", "op": "in", "value": ["pro", "team", "trial"]},
    {"field": "attributes.seats", "op": "gte", "value": 2},
    {"level": "engagement", "op": "gte", "value": "Warm"},
    {"account": {"all": [{"field": "industry", "op": "in", "value": ["SaaS", "Fintech", "Retail"]},
                         {"field": "employees", "op": "gte", "value": 40}]}},
]}


def bench_compile(leads, rounds):
    """4b. per-call overhead of kenbun.compile, segment_count and segment_preview for a 10-condition
    lead rule, vs the same query run directly (EXECUTE, parsed and planned every time, as a client's
    query would be). Server-side loops (clock_timestamp in a DO block), interleaved over rounds.

    kenbun runs the rule's SQL without the COALESCE(…, false) that kenbun.compile wraps around it for
    use outside a WHERE; the planner can plan the two forms differently (EXISTS inside COALESCE is not
    turned into a semi-join), so the overhead is measured against the form kenbun runs, and the
    compile output pasted as is is timed too ("…_public")."""
    rule = json.dumps(RULE10)
    public = psql(f"SELECT kenbun.compile({q(rule)})").strip()
    inner = public
    if public.startswith("COALESCE(") and public.endswith(", false)"):
        cand = public[len("COALESCE("):-len(", false)")]
        same = psql(f"SELECT (SELECT count(*) FROM app.leads AS l WHERE {cand}) = (SELECT count(*) FROM app.leads AS l WHERE {public})",
                    check=False).strip()
        if same == "t":
            inner = cand
    n = max(10, min(200, 1_000_000 // max(leads, 1)))

    def count_sql(w):
        return f"SELECT count(*) FROM app.leads AS l WHERE {w}"

    def preview_sql(w):
        return f"SELECT count(*) FROM (SELECT (l.id)::text, pg_catalog.to_jsonb(l) FROM app.leads AS l WHERE {w} ORDER BY l.id LIMIT 100) s"

    loops = [
        ("empty", "PERFORM rule;"),
        ("compile", "PERFORM kenbun.compile(rule::kenbun.segment_rule);"),
        ("count", "PERFORM kenbun.segment_count(rule::kenbun.segment_rule);"),
        ("count_direct", f"EXECUTE {q(count_sql(inner))} INTO c;"),
        ("count_direct_public", f"EXECUTE {q(count_sql(public))} INTO c;"),
        ("preview", "PERFORM count(*) FROM kenbun.segment_preview(rule::kenbun.segment_rule);"),
        ("preview_direct", f"EXECUTE {q(preview_sql(inner))} INTO c;"),
        ("preview_direct_public", f"EXECUTE {q(preview_sql(public))} INTO c;"),
    ]
    body = "\n".join(
        f"    t := clock_timestamp();\n    FOR i IN 1..{n} LOOP {stmt} END LOOP;\n"
        f"    INSERT INTO pg_temp.compile_bench VALUES ({q(label)}, r, extract(epoch FROM clock_timestamp() - t) * 1000 / {n});"
        for label, stmt in loops)
    warm = "\n".join(f"  {stmt}" for label, stmt in loops)
    out = psql(f"""SET client_min_messages = warning;
CREATE TEMP TABLE compile_bench (label text, round int, ms float8);
DO $bench$
DECLARE
  rule text := {q(rule)};
  t timestamptz;
  c bigint;
BEGIN
  -- warm-up: catalog caches, the rule type, the tables
{warm}
  FOR r IN 1..{rounds} LOOP
{body}
  END LOOP;
END $bench$;
SELECT label, round, ms FROM pg_temp.compile_bench ORDER BY round, label;
""")
    per = {}
    for line in out.strip().splitlines():
        label, rnd, ms = line.split("|")
        per.setdefault(label, {})[int(rnd)] = float(ms)
    res = {"calls_per_round": n, "rounds": rounds, "conditions": 10, "compiled_sql": public,
           "direct_sql_is_compile_output_unwrapped": inner != public,
           "per_call_ms": {k: stats(list(v.values())) for k, v in per.items()}}
    rs = sorted(per["empty"])
    # overhead per round (interleaved, so a slow moment hits both sides), then the median over rounds
    for name, base in [("compile", "empty"), ("count", "count_direct"), ("preview", "preview_direct"),
                       ("count_vs_public", "count_direct_public"), ("preview_vs_public", "preview_direct_public")]:
        res[f"{name}_overhead_ms"] = statistics.median(per[name.split("_vs")[0]][x] - per[base][x] for x in rs)
    res["matches"] = int(psql(f"SELECT kenbun.segment_count({q(rule)})").strip())
    return res


def versions():
    pg = psql("SHOW server_version", "postgres").strip()
    ext = psql("SELECT extversion FROM pg_extension WHERE extname = 'kenbun'").strip()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"postgres": pg, "kenbun": ext, "cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "kernel": platform.release()}


def fmt(x, unit="ms"):
    return f"{x:.1f} {unit}" if x >= 10 else f"{x:.3f} {unit}"


def report(r):
    L = []
    v = r["versions"]
    L.append(f"# kenbun benchmark, {r['date']}")
    L.append("")
    L.append(f"PostgreSQL {v['postgres']}, kenbun {v['kenbun']}, {v['cores']} cores ({v['cpu']}), {v['machine']}, "
             f"Linux {v['kernel']}. Data: {r['data']['leads']:,} leads, {r['data']['accounts']:,} accounts, "
             f"{r['data']['events']:,} events; 50 lead and 10 account segments; {r['runs']} runs per figure "
             f"(median, [min–max]). Mode: {'quick' if r['quick'] else 'full'}.")
    L.append("")
    if set(r) & {"fill", "bulk", "lowchange", "unread", "compile", "diy", "pgbench"}:
        L.append("| measure | kenbun | baseline | ratio | target |")
        L.append("|---|---|---|---|---|")
    if "fill" in r:
        f = r["fill"]
        L.append(f"| 1. full fill of all 60 segments (sum of medians) vs hand-written `INSERT … SELECT` plus one change-log row per member | "
                 f"{fmt(f['total_kenbun_ms'])} | {fmt(f['total_hand_ms'])} | {f['ratio']:.2f}× | ≤ 1.2× |")
    if "bulk" in r:
        b = r["bulk"]
        ch = b["changes"][0]
        L.append(f"| 2. bulk UPDATE of 10% of leads (score, attributes) vs the same UPDATE without kenbun | "
                 f"{fmt(b['kenbun']['median'])} [{fmt(b['kenbun']['min'])}–{fmt(b['kenbun']['max'])}] | "
                 f"{fmt(b['plain']['median'])} | {b['ratio_vs_plain']:.2f}× | |")
        L.append(f"| 2a. same bulk UPDATE vs minimal write: the UPDATE without kenbun, then the same "
                 f"{ch['lead_changes'] + ch['account_changes']:,} membership changes ({ch['leads_changed'] / ch['rows_updated']:.0%} of updated leads) "
                 f"inserted/deleted by hand and as many change-log rows | "
                 f"{fmt(b['kenbun']['median'])} | {fmt(b['minimal']['median'])} [{fmt(b['minimal']['min'])}–{fmt(b['minimal']['max'])}] | "
                 f"{b['ratio_vs_minimal']:.2f}× | ≤ 1.5× |")
        L.append(f"| 2b. same UPDATE + `REFRESH MATERIALIZED VIEW` of 60 matviews, vs kenbun | "
                 f"{fmt(b['kenbun']['median'])} | {fmt(b['plain']['median'] + b['matview_refresh']['median'])} | "
                 f"kenbun {b['matview_ratio']:.1f}× faster | |")
    if "lowchange" in r:
        c = r["lowchange"]
        ch = c["changes"][0]
        L.append(f"| 2c. bulk UPDATE of 10% of leads (score + 1, an unread jsonb key), {c['changed_fraction']:.1%} of updated leads "
                 f"change membership, vs the same UPDATE without kenbun | {fmt(c['kenbun']['median'])} "
                 f"[{fmt(c['kenbun']['min'])}–{fmt(c['kenbun']['max'])}] | {fmt(c['plain']['median'])} | "
                 f"{c['ratio_vs_plain']:.2f}× (vs minimal write {c['ratio_vs_minimal']:.2f}×) | ≤ 1.5× |")
    if "bulk" in r:
        b = r["bulk"]
        g = b["rss_growth_kb"]
        ratio = f"{b['rss_ratio']:.2f}×" if b["rss_ratio"] is not None else "n/a (baseline 0)"
        da = {k: b[f"rss_{k}_detail_kb"]["after"]["RssAnon"] - b[f"rss_{k}_detail_kb"]["before"]["RssAnon"] for k in ("kenbun", "plain")}
        L.append(f"| 6. peak backend RSS growth (VmHWM) during the bulk UPDATE vs the same UPDATE without kenbun, in a warm session "
                 f"(private RssAnon after it: +{da['kenbun']:,} vs +{da['plain']:,} kB) | "
                 f"{g['kenbun']:,} kB | {g['plain']:,} kB | {ratio} | ≤ 1.2× |")
        if "rss_growth_cold_kb" in b:
            gc = b["rss_growth_cold_kb"]
            rc = f"{b['rss_ratio_cold']:.2f}×" if b["rss_ratio_cold"] is not None else "n/a (baseline 0)"
            dc = {k: b[f"rss_{k}_cold_detail_kb"]["after"]["RssAnon"] - b[f"rss_{k}_cold_detail_kb"]["before"]["RssAnon"] for k in ("kenbun", "plain")}
            L.append(f"| 6. the same in a fresh session (kenbun builds its per-backend caches during it; private RssAnon: +{dc['kenbun']:,} vs +{dc['plain']:,} kB) | "
                     f"{gc['kenbun']:,} kB | {gc['plain']:,} kB | {rc} | |")
    if "unread" in r:
        u = r["unread"]
        L.append(f"| 4. UPDATE of a column no segment reads (10%) | {fmt(u['kenbun']['median'])} | "
                 f"{fmt(u['plain']['median'])} | {u['ratio']:.2f}× | ≤ 1.05× |")
    if "compile" in r:
        c = r["compile"]
        pc = c["per_call_ms"]
        L.append(f"| 4b. `kenbun.compile` of a 10-condition lead rule, per call ({c['calls_per_round']} calls × {c['rounds']} rounds, server-side) | "
                 f"{fmt(pc['compile']['median'])} | {fmt(pc['empty']['median'])} (empty loop) | {c['compile_overhead_ms']:+.3f} ms | ≤ +0.5 ms |")
        L.append(f"| 4b. `kenbun.segment_count` of that rule ({c['matches']:,} matches) vs the same query run directly "
                 f"(vs `kenbun.compile` output pasted as is: {fmt(pc['count_direct_public']['median'])}, {c['count_vs_public_overhead_ms']:+.3f} ms) | "
                 f"{fmt(pc['count']['median'])} | {fmt(pc['count_direct']['median'])} | {c['count_overhead_ms']:+.3f} ms | ≤ +0.5 ms |")
        L.append(f"| 4b. `kenbun.segment_preview` of that rule (first 100 rows) vs the same query run directly "
                 f"(vs `kenbun.compile` output pasted as is: {fmt(pc['preview_direct_public']['median'])}, {c['preview_vs_public_overhead_ms']:+.3f} ms) | "
                 f"{fmt(pc['preview']['median'])} | {fmt(pc['preview_direct']['median'])} | {c['preview_overhead_ms']:+.3f} ms | ≤ +0.5 ms |")
    if "diy" in r and "bulk" in r:
        d = r["diy"]["diy_3_segments"]
        L.append(f"| 5. bulk UPDATE: kenbun with 60 segments vs a hand-written PL/pgSQL row trigger for 3 | "
                 f"{fmt(r['bulk']['kenbun']['median'])} | {fmt(d['median'])} | {r['bulk']['kenbun']['median'] / d['median']:.2f}× | |")
    if "pgbench" in r:
        for k, x in r["pgbench"].items():
            clients = int(k.rsplit("_c", 1)[1])
            label = k.replace("_c", ", clients ").replace("update_diy", "single-row UPDATE").replace("update", "single-row UPDATE").replace("event_insert", "event INSERT")
            a, b = x["with"], x["without"]
            if k.startswith("update_diy"):
                L.append(f"| 3. {label}: median latency, DIY trigger vs no trigger | {fmt(a['median_latency_ms'])} | "
                         f"{fmt(b['median_latency_ms'])} | +{x['added_median_latency_ms']:.3f} ms | |")
                continue
            if clients == 1:
                target = "≤ +0.1 ms" if k.startswith("update") else "≤ +0.15 ms"
            else:
                target = "≥ 0.6× tps"
            L.append(f"| 3. {label} (pgbench): median latency (mean {fmt(a['latency_ms'])} vs {fmt(b['latency_ms'])}), "
                     f"{a['tps']:.0f} vs {b['tps']:.0f} tps | {fmt(a['median_latency_ms'])} | {fmt(b['median_latency_ms'])} | "
                     f"+{x['added_median_latency_ms']:.3f} ms, {x['tps_ratio']:.2f}× tps | {target} |")
    if "bulk" in r and "pgbench" in r and "update_c1" in r["pgbench"]:
        b = r["bulk"]
        refresh_all = b["matview_refresh"]["median"]
        added = max(r["pgbench"]["update_c1"]["with"]["latency_ms"], 1e-6)
        L.append(f"| single-lead change vs refreshing all matviews | {fmt(added)} | {fmt(refresh_all)} | "
                 f"{refresh_all / added:,.0f}× cheaper | ≥ 100× |")
    if "online" in r:
        L += online.report_lines(r["online"])
    if r.get("fill", {}).get("mismatch"):
        L.append("")
        L.append(f"**Count mismatches between kenbun and the hand-written SQL:** {r['fill']['mismatch']}")
    L.append("")
    L.append(f"Data generation {r['data']['seconds']} s; defining the 60 segments (compile + initial fill + "
             f"trigger generation) {r['define_seconds']} s; whole run {r['seconds']} s.")
    return "\n".join(L)


def main():
    global DB
    ap = argparse.ArgumentParser(
        description="kenbun benchmark (see BENCHMARKS.md). The database kenbun_bench is left in place after a run "
                    "(it is dropped and regenerated at the start of the next one), so bench/profile.sh can use it.")
    ap.add_argument("--leads", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small data, one run, short pgbench: a smoke test")
    ap.add_argument("--only", default=None,
                    help="comma-separated measures to run (default: fill,bulk,lowchange,unread,compile,diy,pgbench,online). "
                         "online: writers' latency during online definition changes, online vs synchronous fill, "
                         "prune_changes")
    ap.add_argument("--setup-only", action="store_true",
                    help="generate the data and define the segments, measure nothing (data for bench/profile.sh)")
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--clients", default="1,2,8", help="pgbench client counts (default 1,2,8)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results")
    ap.add_argument("--db", default=None,
                    help=f"database (default {DB}; kenbun_bench_online when --only is online alone, so that it can run "
                         f"beside the other measures)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the data and segments a previous run left in the database (same --leads) instead of "
                         "regenerating them: for developing a measure, not for results")
    ap.add_argument("--online-seconds", type=float, default=None,
                    help="online: seconds of writer load before and after each operation (default 2; 0.5 with --quick)")
    a = ap.parse_args()
    if a.quick:
        a.leads, a.runs, a.pgbench_seconds = min(a.leads, 5000), 1, 2
    if a.online_seconds is None:
        a.online_seconds = 0.5 if a.quick else 2.0
    if a.only is None:
        a.only = "fill,bulk,lowchange,unread,compile,diy,pgbench,online"
    only = set(a.only.split(","))
    unknown = only - {"fill", "bulk", "lowchange", "unread", "compile", "diy", "pgbench", "online"}
    if unknown:
        ap.error(f"unknown measure(s) in --only: {', '.join(sorted(unknown))}")
    DB = a.db or ("kenbun_bench_online" if only == {"online"} else DB)
    t0 = time.time()
    r = {"date": datetime.date.today().isoformat(), "quick": a.quick, "runs": a.runs, "database": DB}
    existing = psql(f"SELECT 1 FROM pg_database WHERE datname = {q(DB)}", "postgres").strip() == "1" if a.reuse else False
    if existing and psql("SELECT count(*) FROM app.leads").strip() == str(a.leads):
        print(f"reusing the data in database {DB} …", flush=True)
        n = psql("SELECT (SELECT count(*) FROM app.accounts), (SELECT count(*) FROM app.events)").strip().split("|")
        r["data"] = {"leads": a.leads, "accounts": int(n[0]), "events": int(n[1]), "seconds": 0, "reused": True}
        r["define_seconds"] = 0
    else:
        print(f"generating {a.leads:,} leads …", flush=True)
        r["data"] = generate(a.leads, copies=bool(only - {"online"}) or a.setup_only)
        print("defining 60 segments …", flush=True)
        r["define_seconds"] = define_segments()
    if a.setup_only:
        print(f"data and segments ready in database {DB} ({round(time.time() - t0, 1)} s)")
        return
    r["versions"] = versions()
    if "fill" in only:
        print("1. fill …", flush=True)
        r["fill"] = bench_fill(a.runs)
    if "bulk" in only:
        print("2. bulk update …", flush=True)
        r["bulk"] = bench_bulk(a.runs)
    if "lowchange" in only:
        print("2c. bulk update with few membership changes …", flush=True)
        r["lowchange"] = bench_lowchange(a.runs)
    if "unread" in only:
        print("4. unread column …", flush=True)
        r["unread"] = bench_unread(a.runs)
    if "compile" in only:
        print("4b. compile / preview / count overhead …", flush=True)
        r["compile"] = bench_compile(a.leads, 3 if a.quick else 5)
    if "diy" in only:
        print("5. hand-written trigger …", flush=True)
        r["diy"] = bench_diy(a.runs)
    if "pgbench" in only:
        print("3. pgbench …", flush=True)
        r["pgbench"] = bench_pgbench(a.pgbench_seconds, [int(c) for c in a.clients.split(",")], a.leads)
    if "online" in only:
        print("7. online definition changes …", flush=True)
        r["online"] = online.bench_online(psql, online.Conn(AS_PG, PG_BIN, SOCK, PORT, DB), a.leads, a.runs,
                                          lead_s=a.online_seconds, quick=a.quick)
    drift = psql("SELECT count(*) FROM kenbun.segments s, kenbun.segment_drift(s.name) d WHERE NOT s.time_dependent").strip()
    r["drift_after"] = int(drift)
    r["seconds"] = round(time.time() - t0, 1)
    text = report(r) + f"\n\nDrift after the run (segments that are not time-dependent): {drift} rows.\n"
    print()
    print(text)
    if not a.no_write:
        suffix = "-quick" if a.quick else ("" if a.leads == 100000 else f"-{a.leads}")
        if only == {"online"}:
            suffix = "-online" + suffix
        base = os.path.join(HERE, "results", f"{r['date']}{suffix}")
        with open(base + ".md", "w") as f:
            f.write(text)
        with open(base + ".json", "w") as f:
            json.dump(r, f, indent=2)
        print(f"written: {base}.md and .json")
    if int(drift) != 0 or r.get("fill", {}).get("mismatch") or r.get("online", {}).get("problems"):
        sys.exit("the benchmark found drift or count mismatches")


if __name__ == "__main__":
    main()
