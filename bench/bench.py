#!/usr/bin/env python3
"""kenbun benchmark: membership maintenance against what a user would do instead, on the same data
in the same run, every figure as a ratio to its baseline. Started by `make bench` (see BENCHMARKS.md).

  bench/bench.py [--leads 100000] [--runs 3] [--quick] [--only fill,bulk,pgbench,unread,diy]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from segments import account_segments, lead_segments  # noqa: E402

DB = "kenbun_bench"


def env():
    out = subprocess.check_output(
        ["bash", "-c", f"source {ROOT}/scripts/env.sh; echo $SOCKDIR; echo $PGPORT_PRIVATE; echo $PG_BIN"], text=True
    ).split("\n")
    return out[0], out[1], out[2]


SOCK, PORT, PG_BIN = env()
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def psql(sql, db=DB, check=True):
    p = subprocess.run(
        AS_PG + [f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", SOCK, "-p", PORT, "-U", "postgres", "-d", db],
        input=sql, text=True, capture_output=True,
    )
    if check and p.returncode != 0:
        sys.exit(f"psql failed:\n{p.stderr}\n--- SQL ---\n{sql[:3000]}")
    return p.stdout


def timed(statements, db=DB, setup="", per=None):
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


def generate(n_leads):
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
-- identical copies without kenbun: the baselines
CREATE TABLE app.leads_plain (LIKE app.leads INCLUDING ALL);
INSERT INTO app.leads_plain SELECT * FROM app.leads;
CREATE TABLE app.events_plain (LIKE app.events INCLUDING ALL);
INSERT INTO app.events_plain SELECT * FROM app.events;
CREATE TABLE app.leads_diy (LIKE app.leads INCLUDING ALL);
INSERT INTO app.leads_diy SELECT * FROM app.leads;
CREATE TABLE app.fill (segment_id int, lead_id bigint, PRIMARY KEY (segment_id, lead_id));
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
    # one statement: segments referencing others come after them in the list
    psql("SET client_min_messages = warning;\nINSERT INTO kenbun.segments (name, kind, rule) VALUES\n" + ",\n".join(rows) + ";")
    return round(time.time() - t0, 2)


def bench_fill(runs):
    """1. full fill of each segment (rule evaluated over the table, members inserted, every enter
    logged and notified) vs the hand-written INSERT … SELECT into an empty table."""
    segs = [(n, "lead", sql) for n, _, sql in lead_segments()] + [(n, "account", sql) for n, _, sql in account_segments()]
    res = {"kenbun": {}, "hand": {}, "mismatch": []}
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
            stmts_h.append(("clear", "TRUNCATE app.fill"))
            stmts_h.append(("fill", f"INSERT INTO app.fill SELECT {i}, {key} FROM {frm} WHERE {sql}"))
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


def rss_kb():
    return "SELECT substring(pg_read_file('/proc/self/status') from 'VmHWM:\\s*(\\d+)')::bigint"


def bench_bulk(runs):
    """2. bulk UPDATE of 10% of leads touching read fields: kenbun vs no triggers vs matviews; 6. memory."""
    segs = [(n, sql, "app.leads_plain l") for n, _, sql in lead_segments()] + \
           [(n, sql, "app.accounts a") for n, _, sql in account_segments()]
    mv = []
    for i, (name, sql, frm) in enumerate(segs):
        key = "l.id" if frm.endswith(" l") else "a.id"
        mv.append(f"CREATE MATERIALIZED VIEW IF NOT EXISTS app.mv_{i} AS SELECT {key} FROM {frm} WHERE {sql};")
    psql("SET client_min_messages = warning;\n" + "\n".join(mv))
    refresh = "\n".join(f"REFRESH MATERIALIZED VIEW app.mv_{i};" for i in range(len(segs)))
    out = {"kenbun": [], "plain": [], "matview_refresh": [], "rss_kenbun_kb": [], "rss_plain_kb": []}
    for r in range(runs):
        k = timed([("u", bulk_update_sql("app.leads", r))], setup="BEGIN;")
        out["kenbun"] += k["u"]
        p = timed([("u", bulk_update_sql("app.leads_plain", r))], setup="BEGIN;")
        out["plain"] += p["u"]
        m = psql(f"\\timing on\nBEGIN;\n{bulk_update_sql('app.leads_plain', r)};\n\\echo @@start\n{refresh}\nROLLBACK;")
        after = m.split("@@start", 1)[1]
        out["matview_refresh"].append(sum(float(x) for x in re.findall(r"Time: ([\d.]+) ms", after)[:len(segs)]))
    # memory: peak resident size of the backend, before and after the bulk statement, same session
    for table, key in [("app.leads", "rss_kenbun_kb"), ("app.leads_plain", "rss_plain_kb")]:
        o = psql(f"BEGIN;\n{rss_kb()};\n{bulk_update_sql(table, 7)};\n{rss_kb()};\nROLLBACK;").split()
        out[key] = [int(o[0]), int(o[1])]
    res = {k: stats(v) if k.startswith(("kenbun", "plain", "matview")) else v for k, v in out.items()}
    res["ratio_vs_plain"] = res["kenbun"]["median"] / res["plain"]["median"]
    res["matview_ratio"] = (res["plain"]["median"] + res["matview_refresh"]["median"]) / res["kenbun"]["median"]
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
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir="/tmp") as f:
        f.write(script)
        path = f.name
    os.chmod(path, 0o644)
    p = subprocess.run(
        AS_PG + [f"{PG_BIN}/pgbench", "-n", "-h", SOCK, "-p", PORT, "-U", "postgres", "-f", path, "-c", str(clients),
                 "-j", str(clients), "-T", str(seconds), "-D", f"maxid={maxid}", DB],
        text=True, capture_output=True,
    )
    os.unlink(path)
    if p.returncode != 0:
        sys.exit(f"pgbench failed: {p.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", p.stdout).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", p.stdout).group(1))
    return {"tps": tps, "latency_ms": lat}


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
                                   "tps_ratio": a["tps"] / b["tps"]}
    return out


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
    L.append("| measure | kenbun | baseline | ratio | target |")
    L.append("|---|---|---|---|---|")
    if "fill" in r:
        f = r["fill"]
        L.append(f"| 1. full fill of all 60 segments (sum of medians) vs hand-written `INSERT … SELECT` | "
                 f"{fmt(f['total_kenbun_ms'])} | {fmt(f['total_hand_ms'])} | {f['ratio']:.2f}× | ≤ 1.2× |")
    if "bulk" in r:
        b = r["bulk"]
        L.append(f"| 2. bulk UPDATE of 10% of leads (score, attributes) vs the same UPDATE without kenbun | "
                 f"{fmt(b['kenbun']['median'])} [{fmt(b['kenbun']['min'])}–{fmt(b['kenbun']['max'])}] | "
                 f"{fmt(b['plain']['median'])} | {b['ratio_vs_plain']:.2f}× | ≤ 1.5× |")
        L.append(f"| 2b. same UPDATE + `REFRESH MATERIALIZED VIEW` of 60 matviews, vs kenbun | "
                 f"{fmt(b['kenbun']['median'])} | {fmt(b['plain']['median'] + b['matview_refresh']['median'])} | "
                 f"kenbun {b['matview_ratio']:.1f}× faster | |")
        L.append(f"| 6. peak backend RSS growth during the bulk UPDATE | "
                 f"{b['rss_kenbun_kb'][1] - b['rss_kenbun_kb'][0]:,} kB | {b['rss_plain_kb'][1] - b['rss_plain_kb'][0]:,} kB | | no growth with rows |")
    if "unread" in r:
        u = r["unread"]
        L.append(f"| 4. UPDATE of a column no segment reads (10%) | {fmt(u['kenbun']['median'])} | "
                 f"{fmt(u['plain']['median'])} | {u['ratio']:.2f}× | ≤ 1.05× |")
    if "diy" in r and "bulk" in r:
        d = r["diy"]["diy_3_segments"]
        L.append(f"| 5. bulk UPDATE: kenbun with 60 segments vs a hand-written PL/pgSQL row trigger for 3 | "
                 f"{fmt(r['bulk']['kenbun']['median'])} | {fmt(d['median'])} | {r['bulk']['kenbun']['median'] / d['median']:.2f}× | |")
    if "pgbench" in r:
        for k, x in r["pgbench"].items():
            base = "a hand-written PL/pgSQL trigger (3 segments)" if k.startswith("update_diy") else "no kenbun"
            label = k.replace("_c", ", clients ").replace("update_diy", "single-row UPDATE").replace("update", "single-row UPDATE").replace("event_insert", "event INSERT")
            if k.startswith("update_diy"):
                L.append(f"| 3. {label}: latency, DIY trigger vs no trigger | {fmt(x['with']['latency_ms'])} | "
                         f"{fmt(x['without']['latency_ms'])} | +{x['added_latency_ms']:.3f} ms | |")
            else:
                L.append(f"| 3. {label} (pgbench): latency, {x['with']['tps']:.0f} vs {x['without']['tps']:.0f} tps | "
                         f"{fmt(x['with']['latency_ms'])} | {fmt(x['without']['latency_ms'])} | "
                         f"+{x['added_latency_ms']:.3f} ms, {x['tps_ratio']:.2f}× tps | "
                         f"{'≤ +0.3 ms' if k == 'update_c1' else ''} |")
    if "bulk" in r and "pgbench" in r and "update_c1" in r["pgbench"]:
        b = r["bulk"]
        refresh_all = b["matview_refresh"]["median"]
        added = max(r["pgbench"]["update_c1"]["with"]["latency_ms"], 1e-6)
        L.append(f"| single-lead change vs refreshing all matviews | {fmt(added)} | {fmt(refresh_all)} | "
                 f"{refresh_all / added:,.0f}× cheaper | ≥ 100× |")
    if r.get("fill", {}).get("mismatch"):
        L.append("")
        L.append(f"**Count mismatches between kenbun and the hand-written SQL:** {r['fill']['mismatch']}")
    L.append("")
    L.append(f"Data generation {r['data']['seconds']} s; defining the 60 segments (compile + initial fill + "
             f"trigger generation) {r['define_seconds']} s; whole run {r['seconds']} s.")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small data, one run, short pgbench: a smoke test")
    ap.add_argument("--only", default="fill,bulk,unread,diy,pgbench")
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results")
    a = ap.parse_args()
    if a.quick:
        a.leads, a.runs, a.pgbench_seconds = min(a.leads, 5000), 1, 2
    only = set(a.only.split(","))
    t0 = time.time()
    r = {"date": datetime.date.today().isoformat(), "quick": a.quick, "runs": a.runs}
    print(f"generating {a.leads:,} leads …", flush=True)
    r["data"] = generate(a.leads)
    print("defining 60 segments …", flush=True)
    r["define_seconds"] = define_segments()
    r["versions"] = versions()
    if "fill" in only:
        print("1. fill …", flush=True)
        r["fill"] = bench_fill(a.runs)
    if "bulk" in only:
        print("2. bulk update …", flush=True)
        r["bulk"] = bench_bulk(a.runs)
    if "unread" in only:
        print("4. unread column …", flush=True)
        r["unread"] = bench_unread(a.runs)
    if "diy" in only:
        print("5. hand-written trigger …", flush=True)
        r["diy"] = bench_diy(a.runs)
    if "pgbench" in only:
        print("3. pgbench …", flush=True)
        r["pgbench"] = bench_pgbench(a.pgbench_seconds, [1] if a.quick else [1, 8], a.leads)
    drift = psql("SELECT count(*) FROM kenbun.segments s, kenbun.segment_drift(s.name) d WHERE NOT s.time_dependent").strip()
    r["drift_after"] = int(drift)
    r["seconds"] = round(time.time() - t0, 1)
    text = report(r) + f"\n\nDrift after the run (segments that are not time-dependent): {drift} rows.\n"
    print()
    print(text)
    if not a.no_write:
        suffix = "-quick" if a.quick else ("" if a.leads == 100000 else f"-{a.leads}")
        base = os.path.join(HERE, "results", f"{r['date']}{suffix}")
        with open(base + ".md", "w") as f:
            f.write(text)
        with open(base + ".json", "w") as f:
            json.dump(r, f, indent=2)
        print(f"written: {base}.md and .json")
    if int(drift) != 0 or r.get("fill", {}).get("mismatch"):
        sys.exit("the benchmark found drift or count mismatches")


if __name__ == "__main__":
    main()
