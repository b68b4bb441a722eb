"""7. Online definition changes (kenbun 0.5.0): what a definition change, a refresh and a change-log
prune cost the application's writers while they run, and what the batched (online) fill costs
against the synchronous one. Run by `bench/bench.py --only online` (database kenbun_bench_online).

  A. writers' latency during each operation: a pgbench writer (2 clients, single-row UPDATEs of
     score and country of random leads, and event INSERTs for random leads, half and half) runs
     through each operation; the transactions that overlap the operation's window (from pgbench's
     per-transaction log: end time and latency) give p50 / p99 / max, against an undisturbed window
     of the same length (the same writer, no operation);
  B. the online fill (INSERT with kenbun.sync_max_rows = 0, then CALL kenbun.segment_build()) against
     the synchronous fill (sync_max_rows = -1) of the same rule, with no writer; after every online
     build, segment_drift must be empty and the member count must equal a hand-written count;
  C. kenbun.prune_changes('30 days') of a change log of 10 rows per lead spread over 60 days, while
     the writer runs (the writer's latency during it), and for comparison DROP TABLE of a table
     holding the rows pruned (what dropping whole time partitions would cost; an estimate).
"""
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time


class Conn:
    def __init__(self, as_pg, pg_bin, sock, port, db):
        self.as_pg, self.pg_bin, self.sock, self.port, self.db = as_pg, pg_bin, sock, port, db

    def cmd(self, tool, env=None):
        pre = list(self.as_pg)
        if env:
            pre += ["env"] + [f"{k}={v}" for k, v in env.items()]
        return pre + [f"{self.pg_bin}/{tool}", "-h", self.sock, "-p", self.port, "-U", "postgres"]


def q(s):
    return "'" + s.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------
# the writer

UPDATE_SCRIPT = """\\set id random(1, :maxid)
UPDATE app.leads SET score = (score + 7) % 100,
       country = CASE country WHEN 'US' THEN 'CA' WHEN 'CA' THEN 'US' ELSE country END
 WHERE id = :id;
"""
INSERT_SCRIPT = """\\set id random(1, :maxid)
\\set t random(1, 3)
INSERT INTO app.events (lead_id, type, occurred_at) VALUES (:id, (ARRAY['page_view','email_open','email_click'])[:t], now());
"""


class Writer:
    """pgbench with the two scripts (weights 1:1), per-transaction log; runs until stop(), which ends its
    sessions (pg_terminate_backend of the backends carrying this writer's application_name: pgbench
    then ends the run and writes its logs; the transactions in flight at that moment are not logged)."""

    def __init__(self, conn, maxid, clients=2):
        self.conn, self.maxid, self.clients = conn, maxid, clients

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="kenbun-online-", dir="/tmp")
        os.chmod(self.dir, 0o777)
        self.app = f"kenbun-online-writer-{os.getpid()}-{int(time.time() * 1000) % 10**9}"
        for name, body in (("upd.sql", UPDATE_SCRIPT), ("ins.sql", INSERT_SCRIPT)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(body)
            os.chmod(os.path.join(self.dir, name), 0o644)
        self.p = subprocess.Popen(
            self.conn.cmd("pgbench", env={"PGAPPNAME": self.app}) +
            ["-n", "-f", f"{self.dir}/upd.sql@1", "-f", f"{self.dir}/ins.sql@1", "-c", str(self.clients),
             "-j", str(self.clients), "-T", "36000", "-D", f"maxid={self.maxid}", "-l", f"--log-prefix={self.dir}/tx",
             self.conn.db],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.t_start = time.time()
        return self

    def stop(self, psql):
        """Returns the transactions [(end epoch s, latency ms, script 0 update / 1 insert)], sorted by end."""
        try:
            for _ in range(100):
                n = psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         f"WHERE application_name = {q(self.app)} AND datname = current_database()").strip()
                if self.p.poll() is not None:
                    break
                try:
                    self.p.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
            out, err = self.p.communicate(timeout=60)
            self.stdout, self.stderr = out, err
            txs = []
            for name in os.listdir(self.dir):
                if not name.startswith("tx"):
                    continue
                with open(os.path.join(self.dir, name)) as f:
                    for line in f:
                        x = line.split()
                        if len(x) >= 6 and x[2].isdigit():
                            txs.append((int(x[4]) + int(x[5]) / 1e6, int(x[2]) / 1000.0, int(x[3])))
            # the clients end by the termination (FATAL, "aborted"): anything else the server reported
            # (ERROR) or a failed transaction is a problem
            failed = re.search(r"number of failed transactions: (\d+)", out)
            errors = [l for l in err.splitlines() if re.match(r"\s*(ERROR|PANIC)", l) or
                      ("FATAL" in l and "terminating connection due to administrator command" not in l)]
            self.problem = err[-3000:] if errors or (failed and int(failed.group(1)) > 0) else None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        txs.sort()
        return txs


def pct(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def by_start(txs, spans):
    """Latency statistics of the transactions by the step of the operation in which they started (those
    that started before the operation count for its first step)."""
    keys = list(spans)
    groups = {k: [] for k in keys}
    t_end = spans[keys[-1]][1]
    for end, lat, s in txs:
        start = end - lat / 1000.0
        if end <= spans[keys[0]][0] or start >= t_end:
            continue
        k = next((k for k in reversed(keys) if start >= spans[k][0]), keys[0])
        groups[k].append(lat)
    return {k: {"seconds": spans[k][1] - spans[k][0], "transactions": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99),
                "max_ms": max(v) if v else None} for k, v in groups.items()}


def window(txs, t0, t1):
    """The writer's transactions that overlap [t0, t1] (started before t1 and ended after t0: a writer
    blocked through the whole operation counts), with its latency statistics."""
    sel = [(end, lat, s) for end, lat, s in txs if end - lat / 1000.0 < t1 and end > t0]
    lat = [x[1] for x in sel]
    done = sum(1 for end, _, _ in sel if t0 <= end <= t1)
    res = {"transactions": len(sel), "tps": done / (t1 - t0) if t1 > t0 else None,
           "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None}
    for s, name in ((0, "update"), (1, "insert")):
        ls = [x[1] for x in sel if x[2] == s]
        res[name] = {"n": len(ls), "p50_ms": pct(ls, 50), "p99_ms": pct(ls, 99), "max_ms": max(ls) if ls else None}
    # how long the writers were held: the longest stretch with no transaction completing
    ends = sorted(end for end, _, _ in txs if t0 - 1 <= end <= t1 + 60)
    gaps = [b - a for a, b in zip(ends, ends[1:]) if b > t0 and a < t1]
    res["longest_gap_ms"] = max(gaps) * 1000 if gaps else None
    return res


# ---------------------------------------------------------------------------------------------------
# operations

def run_op(conn, statements, setup=""):
    """Runs the statements in one psql session (autocommit, so CALL runs outside a transaction block)
    between two server clock readings; returns the window (epoch seconds), each statement's time
    (psql's \\timing), the NOTICEs, and the error if one failed."""
    # a runaway statement (a bad plan at a large size) ends as a reported error, not a run of hours
    script = ["SET client_min_messages = notice;", "SET statement_timeout = '30min';", setup,
              "SELECT '@@T0', extract(epoch FROM clock_timestamp());", "\\timing on"]
    for label, sql in statements:
        script += [f"\\echo @@{label}", sql if sql.rstrip().endswith(";") else sql + ";",
                   f"SELECT '@@C|{label}', extract(epoch FROM clock_timestamp());"]
    script += ["\\timing off", "SELECT '@@T1', extract(epoch FROM clock_timestamp());"]
    p = subprocess.run(conn.cmd("psql") + ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conn.db],
                       input="\n".join(script), text=True, capture_output=True)
    res = {"steps_ms": {}, "output": []}
    cur = None
    for line in p.stdout.splitlines():
        if line.startswith("@@T0|"):
            res["t0"] = float(line.split("|")[1])
        elif line.startswith("@@T1|"):
            res["t1"] = float(line.split("|")[1])
        elif line.startswith("@@C|"):
            res.setdefault("ends", {})[line.split("|")[1]] = float(line.split("|")[2])
        elif line.startswith("@@"):
            cur = line[2:]
        elif line.startswith("Time: ") and cur:
            res["steps_ms"][cur] = res["steps_ms"].get(cur, 0) + float(re.match(r"Time: ([\d.]+) ms", line).group(1))
        elif line.strip() and cur:
            res["output"].append(line)
    res["notices"] = [l for l in p.stderr.splitlines() if l.startswith("NOTICE")]
    if p.returncode != 0 or "t1" not in res:
        res["error"] = p.stderr[-3000:]
        res.setdefault("t0", time.time())
        res["t1"] = time.time()
    res["seconds"] = res["t1"] - res["t0"]
    # each statement's [start, end] on the server clock
    res["spans"], prev = {}, res["t0"]
    for label, _ in statements:
        if label in res.get("ends", {}):
            res["spans"][label] = (prev, res["ends"][label])
            prev = res["ends"][label]
    b = [int(m.group(1)) for n in res["notices"] for m in [re.search(r"(\d+) batches", n)] if m]
    if b:
        res["batches"] = sum(b)
    return res


def ev_sql(type_, within, n, op=">="):
    return (f"(SELECT count(*) FROM app.events e WHERE e.lead_id = l.id AND e.type = '{type_}' "
            f"AND e.occurred_at >= now() - interval '{within}') {op} {n}")


FIELD = {"name": "online field", "rule": {"all": [{"field": "country", "op": "eq", "value": "US"},
                                                 {"field": "score", "op": "gt", "value": 50}]},
         "sql": "l.country = 'US' AND l.score > 50", "aging": None}
EVENT = {"name": "online event", "rule": {"event": {"type": "email_click", "count": {"op": "gte", "value": 2}, "within": "30 days"}},
         "sql": ev_sql("email_click", "30 days", 2), "aging": ("email_click", "30 days")}
EVENT2 = {"name": "online event", "rule": {"event": {"type": "email_open", "count": {"op": "gte", "value": 3}, "within": "30 days"}},
          "sql": ev_sql("email_open", "30 days", 3), "aging": ("email_open", "30 days")}
# a time-window segment of bench/segments.py that no other segment uses
WINDOW = {"name": "opened email", "sql": ev_sql("email_open", "14 days", 1), "aging": ("email_open", "14 days")}

ONLINE = "SET kenbun.sync_max_rows = 0;"
SYNC = "SET kenbun.sync_max_rows = -1;"


def create_stmts(seg, online):
    ins = f"INSERT INTO kenbun.segments (name, kind, rule) VALUES ({q(seg['name'])}, 'lead', {q(json.dumps(seg['rule']))})"
    return [("define", ins)] + ([("build", "CALL kenbun.segment_build()")] if online else [])


def change_stmts(seg, online):
    upd = f"UPDATE kenbun.segments SET rule = {q(json.dumps(seg['rule']))} WHERE name = {q(seg['name'])}"
    return [("define", upd)] + ([("build", "CALL kenbun.segment_build()")] if online else [])


def drop_segment(psql, name):
    """Untimed, with no writer running: removes a segment of the measure (its members exit)."""
    psql(f"SET client_min_messages = warning; DELETE FROM kenbun.segments WHERE name = {q(name)}")
    psql("VACUUM kenbun.lead_members, kenbun.membership_changes, kenbun.segments")


def exactness(psql, seg, since):
    """After an online build (writer stopped): the segment is ready, no build is left, segment_drift is
    empty and the member count equals the hand-written count. For a time window, members whose
    qualifying event left the window since the operation started (since, epoch s) are drift by the
    clock, not by the build: counted apart (explained)."""
    aged = "false"
    if seg["aging"]:
        t, w = seg["aging"]
        aged = (f"EXISTS (SELECT 1 FROM app.events e WHERE e.lead_id = d.member_id::bigint AND e.type = '{t}' "
                f"AND e.occurred_at < now() - interval '{w}' "
                f"AND e.occurred_at >= to_timestamp({since}) - interval '{w}' - interval '5 seconds')")
    out = psql(f"""
WITH s AS (SELECT id, status FROM kenbun.segments WHERE name = {q(seg['name'])}),
d AS MATERIALIZED (SELECT * FROM kenbun.segment_drift({q(seg['name'])}))
SELECT (SELECT status FROM s),
       (SELECT count(*) FROM kenbun.segment_builds b WHERE b.segment_id = (SELECT id FROM s)),
       (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = (SELECT id FROM s)),
       (SELECT count(*) FROM app.leads l WHERE {seg['sql']}),
       (SELECT count(*) FROM d WHERE d.problem = 'missing'),
       (SELECT count(*) FROM d WHERE d.problem = 'unexpected'),
       (SELECT count(*) FROM d WHERE d.problem = 'unexpected' AND {aged})""").strip().split("|")
    r = {"segment": seg["name"], "status": out[0], "builds_left": int(out[1]), "members": int(out[2]),
         "hand_count": int(out[3]), "drift_missing": int(out[4]), "drift_unexpected": int(out[5]),
         "drift_explained_by_clock": int(out[6])}
    r["drift"] = r["drift_missing"] + r["drift_unexpected"]
    r["exact"] = (r["status"] == "ready" and r["builds_left"] == 0 and r["drift_missing"] == 0
                  and r["drift_unexpected"] == r["drift_explained_by_clock"]
                  and r["members"] - r["hand_count"] == r["drift_unexpected"])
    return r


def settle(psql):
    """Untimed, before each operation (and no writer running). ANALYZE matters: see REPORT NOTE 1 in
    report_lines (a synchronous re-evaluation plans its diff on the members' statistics)."""
    psql("VACUUM ANALYZE kenbun.lead_members, kenbun.account_members, kenbun.membership_changes, kenbun.segments, "
         "kenbun.segment_builds, app.leads, app.events")


def med(xs):
    xs = [x for x in xs if x is not None]
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None


def control_stmts(seconds):
    """A read-only load of the same length: the hand-written count of the event rule, over and over in
    one backend, no parallel workers (what a batch costs the writers in CPU alone, with no lock)."""
    return [("scan", f"""DO $$
DECLARE t_end timestamptz := clock_timestamp() + interval '{seconds:.3f} seconds'; c bigint;
BEGIN
  LOOP
    SELECT count(*) INTO c FROM app.leads l WHERE {EVENT['sql']};
    EXIT WHEN clock_timestamp() >= t_end;
  END LOOP;
END $$""")]


OPS = [
    # key, label, kind (online / sync / control), statements (a function of the clean timings), setup, segment checked after
    ("control", "read-only control: the event rule's hand-written count, looped for as long as (b) took without writers",
     "control", lambda est: control_stmts(est), "SET max_parallel_workers_per_gather = 0;", None),
    ("a", "(a) create a field segment online: INSERT + CALL segment_build()", "online",
     lambda est: create_stmts(FIELD, True), ONLINE, FIELD),
    ("b", "(b) create an event segment online: INSERT + CALL segment_build()", "online",
     lambda est: create_stmts(EVENT, True), ONLINE, EVENT),
    ("drop", [EVENT], None, None, None, None),
    ("b5", "(b) the same with SET kenbun.build_batch_ms = 5 (default 40)", "online",
     lambda est: create_stmts(EVENT, True), ONLINE + " SET kenbun.build_batch_ms = 5;", EVENT),
    ("c", "(c) change the event segment's rule online: UPDATE … SET rule + CALL segment_build()", "online",
     lambda est: change_stmts(EVENT2, True), ONLINE, EVENT2),
    ("drop", [FIELD, EVENT], None, None, None, None),
    ("d", "(d) refresh a time-window segment: CALL segment_refresh_concurrently()", "online",
     lambda est: [("refresh", f"CALL kenbun.segment_refresh_concurrently({q(WINDOW['name'])})")], "", WINDOW),
    ("e1", "(e) create the field segment synchronously (sync_max_rows = -1)", "sync",
     lambda est: create_stmts(FIELD, False), SYNC, FIELD),
    ("e2", "(e) create the event segment synchronously", "sync", lambda est: create_stmts(EVENT, False), SYNC, EVENT),
    ("e3", "(e) change the event segment's rule synchronously", "sync", lambda est: change_stmts(EVENT2, False), SYNC, EVENT2),
    ("drop", [FIELD, EVENT], None, None, None, None),
    ("f", "(f) refresh it synchronously: SELECT kenbun.segment_refresh()", "sync",
     lambda est: [("refresh", f"SELECT * FROM kenbun.segment_refresh({q(WINDOW['name'])})")], "", WINDOW),
]


def bench_online(psql, conn, leads, runs, lead_s=2.0, quick=False, parts="BAC"):
    res = {"problems": [], "writer": {
        "clients": 2, "scripts": {"update": UPDATE_SCRIPT, "insert": INSERT_SCRIPT}, "weights": "1:1",
        "lead_in_and_tail_seconds": lead_s,
        "window": "transactions that overlap [start, end] of the operation (started before its end, ended after its start)"}}

    def problem(what, **kw):
        kw["what"] = what
        res["problems"].append(kw)
        print(f"  PROBLEM: {what}: {json.dumps(kw, default=str)[:1500]}", flush=True)

    for seg in (FIELD, EVENT):
        drop_segment(psql, seg["name"])
    if psql(f"SELECT status FROM kenbun.segments WHERE name = {q(WINDOW['name'])}").strip() != "ready":
        problem("the time-window segment used by (d) and (f) is missing or not ready", segment=WINDOW["name"])
    settle(psql)

    # the machine's load (other sessions of the cluster count too): 1-minute load average per part
    res["loadavg_1min"] = {"B start": os.getloadavg()[0]}
    # B. online fill vs synchronous fill, no writer
    print("  B. online vs synchronous fill, no writer …", flush=True)
    fill = {}
    for key, seg in (("field", FIELD), ("event", EVENT)) if "B" in parts else ():
        f = {"rule": seg["rule"], "hand_sql": seg["sql"], "sync_ms": [], "online_ms": [], "online_define_ms": [],
             "online_build_ms": [], "batches": [], "checks": []}
        for r in range(runs):
            for mode in (("sync", "online") if r % 2 == 0 else ("online", "sync")):
                online = mode == "online"
                settle(psql)
                op = run_op(conn, create_stmts(seg, online), ONLINE if online else SYNC)
                if "error" in op:
                    problem(f"{mode} create of the {key} segment failed", sql=create_stmts(seg, online), error=op["error"])
                f[f"{mode}_ms"].append(op["seconds"] * 1000)
                chk = exactness(psql, seg, op["t0"])
                chk["mode"] = mode
                f["checks"].append(chk)
                if not chk["exact"]:
                    problem(f"{mode} create of the {key} segment is not exact", check=chk)
                if online:
                    f["online_define_ms"].append(op["steps_ms"].get("define"))
                    f["online_build_ms"].append(op["steps_ms"].get("build"))
                    f["batches"].append(op.get("batches"))
                drop_segment(psql, seg["name"])
        for k in ("sync_ms", "online_ms", "online_define_ms", "online_build_ms"):
            f[k] = med(f[k])
        f["ratio"] = f["online_ms"]["median"] / f["sync_ms"]["median"]
        f["members"] = f["checks"][-1]["members"]
        fill[key] = f
        print(f"    {key}: online {f['online_ms']['median']:.0f} ms vs sync {f['sync_ms']['median']:.0f} ms "
              f"({f['ratio']:.2f}×)", flush=True)
    if "A" not in parts:
        res["fill"] = fill
        return res
    # refresh of the time-window segment, both ways
    rf = {"sync_ms": [], "concurrently_ms": []}
    for r in range(runs):
        settle(psql)
        rf["sync_ms"].append(run_op(conn, [("refresh", f"SELECT * FROM kenbun.segment_refresh({q(WINDOW['name'])})")])["seconds"] * 1000)
        settle(psql)
        rf["concurrently_ms"].append(run_op(conn, [("refresh", f"CALL kenbun.segment_refresh_concurrently({q(WINDOW['name'])})")])["seconds"] * 1000)
    rf = {k: med(v) for k, v in rf.items()}
    rf["ratio"] = rf["concurrently_ms"]["median"] / rf["sync_ms"]["median"]
    fill["refresh"] = rf
    res["fill"] = fill

    # A. the writers during each operation
    res["loadavg_1min"]["A start"] = os.getloadavg()[0]
    print("  A. writers' latency during each operation …", flush=True)
    ops = []
    for key, label, kind, stmts, setup, seg in OPS:
        if key == "drop":
            for s in label:
                drop_segment(psql, s["name"])
            continue
        settle(psql)
        est = max(1.0, fill["event"]["online_ms"]["median"] / 1000.0)
        sql = stmts(est)
        w = Writer(conn, leads).start()
        time.sleep(lead_s)
        op = run_op(conn, sql, setup)
        time.sleep(lead_s)
        txs = w.stop(psql)
        o = {"key": key, "label": label, "kind": kind, "sql": [s for _, s in sql], "seconds": op["seconds"],
             "steps_ms": op["steps_ms"], "batches": op.get("batches"), "during": window(txs, op["t0"], op["t1"]),
             "before": window(txs, op["t0"] - lead_s + 0.5, op["t0"])}
        if kind == "online" and seg is not None:
            # the build's last transaction (marks the segment ready under the brief lock) sets updated_at
            fin = psql(f"SELECT extract(epoch FROM updated_at) FROM kenbun.segments WHERE name = {q(seg['name'])}").strip()
            spans = dict(op["spans"])
            if fin and "build" in spans:
                b0, b1 = spans.pop("build")
                spans["batches"], spans["finish"] = (b0, float(fin)), (float(fin), b1)
            elif fin and "refresh" in spans:
                b0, b1 = spans.pop("refresh")
                spans["mark + batches"], spans["finish"] = (b0, float(fin)), (float(fin), b1)
            o["spans"] = spans
            o["during_step"] = by_start(txs, spans)
        if "error" in op:
            problem(f"operation {key} failed", sql=o["sql"], error=op["error"])
        if w.problem:
            problem(f"the writer failed during operation {key}", stderr=w.problem)
        if seg is not None:
            o["check"] = exactness(psql, seg, op["t0"])
            if not o["check"]["exact"]:
                problem(f"operation {key} left the segment inexact (writer running during it)", sql=o["sql"], check=o["check"])
        d = o["during"]
        print(f"    {key}: {o['seconds']:.2f} s, writers p50 {d['p50_ms']} p99 {d['p99_ms']} max {d['max_ms']} ms, "
              f"{d['transactions']} transactions", flush=True)
        ops.append(o)
    # the undisturbed window: as long as the longest operation; each operation is compared with the
    # first stretch of it that has the operation's length
    length = max(2.0, max(o["seconds"] for o in ops))
    settle(psql)
    w = Writer(conn, leads).start()
    time.sleep(lead_s)
    u0 = time.time()
    time.sleep(length)
    u1 = time.time()
    time.sleep(lead_s)
    utx = w.stop(psql)
    if w.problem:
        problem("the writer failed during the undisturbed window", stderr=w.problem)
    res["undisturbed"] = window(utx, u0, u1)
    res["undisturbed"]["seconds"] = u1 - u0
    for o in ops:
        b = window(utx, u0, u0 + max(o["seconds"], 0.5))
        o["undisturbed"] = b
        d = o["during"]
        o["p99_ratio"] = d["p99_ms"] / b["p99_ms"] if d["p99_ms"] and b["p99_ms"] else None
        o["max_ratio"] = d["max_ms"] / b["max_ms"] if d["max_ms"] and b["max_ms"] else None
        if o["kind"] == "online":
            o["meets_max_100ms"] = d["max_ms"] is not None and d["max_ms"] <= 100
            o["meets_p99_2x"] = o["p99_ratio"] is not None and o["p99_ratio"] <= 2
    res["ops"] = ops

    # C. prune_changes
    print("  C. prune_changes …", flush=True)
    res["loadavg_1min"]["C start"] = os.getloadavg()[0]
    res["prune"] = bench_prune(psql, conn, leads, lead_s, problem)
    res["loadavg_1min"]["end"] = os.getloadavg()[0]
    return res


def bench_prune(psql, conn, leads, lead_s, problem):
    n = 10 * leads
    if psql("SELECT count(*) FROM pg_proc WHERE proname = 'prune_changes' AND pronamespace = 'kenbun'::regnamespace").strip() != "1":
        problem("kenbun.prune_changes does not exist in the installed extension")
        return None
    if psql("SELECT count(*) FROM kenbun.change_consumers").strip() != "0":
        problem("kenbun.change_consumers is not empty: prune_changes would keep what they have not consumed")
    # the log is replaced by n rows whose ids follow changed_at (60 days ago to now, evenly): prune_changes
    # deletes in id order up to the first change that is not old enough, so the changes the measure made
    # (all recent) would stop it at once
    segs = psql("SELECT array_agg(id ORDER BY id) FROM kenbun.segments WHERE kind = 'lead'").strip()
    t = run_op(conn, [
        ("truncate", "TRUNCATE kenbun.membership_changes"),
        ("fill", f"""INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason, changed_at)
SELECT ('{segs}'::bigint[])[1 + i % cardinality('{segs}'::bigint[])], 'lead', (1 + (i::bigint * 7919) % {leads})::text,
       CASE WHEN i % 2 = 0 THEN 'enter' ELSE 'exit' END, 'data_change',
       now() - interval '60 days' + (i - 1) * (interval '60 days' / {n})
  FROM generate_series(1, {n}) i"""),
        ("vacuum", "VACUUM ANALYZE kenbun.membership_changes")])
    if "error" in t:
        problem("filling the change log failed", error=t["error"])
        return None
    old = int(psql("SELECT count(*) FROM kenbun.membership_changes WHERE changed_at < now() - interval '30 days'").strip())
    size = psql("SELECT pg_total_relation_size('kenbun.membership_changes')").strip()
    # the alternative, estimated: the same old rows in a table of their own with the same indexes,
    # dropped whole (what dropping time partitions would cost; kenbun has no partitions)
    psql("""SET client_min_messages = warning; DROP TABLE IF EXISTS app.changes_old;
CREATE TABLE app.changes_old (LIKE kenbun.membership_changes INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO app.changes_old SELECT * FROM kenbun.membership_changes WHERE changed_at < now() - interval '30 days';
VACUUM ANALYZE app.changes_old;
CHECKPOINT;""")
    settle(psql)
    top = int(psql("SELECT max(id) FROM kenbun.membership_changes").strip())
    w = Writer(conn, leads).start()
    time.sleep(lead_s)
    op = run_op(conn, [("prune", "SELECT kenbun.prune_changes('30 days')")])
    time.sleep(lead_s)
    txs = w.stop(psql)
    if "error" in op:
        problem("prune_changes failed", error=op["error"])
    if w.problem:
        problem("the writer failed during prune_changes", stderr=w.problem)
    deleted = int(op["output"][0]) if op["output"] and op["output"][0].strip().isdigit() else None
    # exact: the synthetic rows are deleted from the oldest up to the first that is not 30 days old at the
    # prune's now() (its statement's start, just after t0): the oldest one left is within one row spacing
    # (60 days / n) after t0 - 30 days
    x = psql(f"""SELECT count(*), extract(epoch FROM min(changed_at)),
       extract(epoch FROM to_timestamp({op['t0']}) - interval '30 days')
  FROM kenbun.membership_changes WHERE id <= {top}""").strip().split("|")
    remaining, oldest, cutoff = int(x[0]), float(x[1]), float(x[2])
    spacing = 60 * 86400.0 / n
    written = int(psql(f"SELECT count(*) FROM kenbun.membership_changes WHERE id > {top}").strip())
    drop = run_op(conn, [("drop", "DROP TABLE app.changes_old")])
    r = {"rows": n, "old_rows": old, "table_bytes_before": int(size), "deleted": deleted, "seconds": op["seconds"],
         "rows_per_second": deleted / op["seconds"] if deleted else None, "remaining": remaining,
         "oldest_left_minus_cutoff_s": oldest - cutoff, "changes_logged_by_writer_meanwhile": written,
         "fill_seconds": t["seconds"], "during": window(txs, op["t0"], op["t1"]),
         "before": window(txs, op["t0"] - lead_s + 0.5, op["t0"]), "drop_table_estimate_ms": drop["steps_ms"].get("drop")}
    if deleted is None or deleted + remaining != n or not (-1 <= oldest - cutoff <= spacing + 1):
        problem("prune_changes did not delete exactly the changes older than 30 days", deleted=deleted, remaining=remaining,
                rows=n, oldest_left_minus_cutoff_seconds=oldest - cutoff, row_spacing_seconds=spacing)
    print(f"    prune of {deleted} of {n} rows: {op['seconds']:.1f} s; writers max {r['during']['max_ms']} ms; "
          f"DROP TABLE of the same rows {r['drop_table_estimate_ms']} ms", flush=True)
    return r


# ---------------------------------------------------------------------------------------------------
# report

def f1(x, unit=" ms"):
    if x is None:
        return "–"
    return f"{x:,.0f}{unit}" if x >= 100 else (f"{x:.1f}{unit}" if x >= 10 else f"{x:.2f}{unit}")


def report_lines(o):
    L = ["", "## Online operations", ""]
    u = o["undisturbed"]
    L.append(f"Writer: pgbench, {o['writer']['clients']} clients, a single-row UPDATE of a lead's score and country or an "
             f"event INSERT (1:1), closed loop. Per operation: the writer's transactions that overlap the operation "
             f"(p50 / p99 / max latency, how many, completions per second), against the first stretch of the same "
             f"length of an undisturbed window (the same writer, no operation: {u['seconds']:.1f} s, p50 / p99 / max "
             f"{f1(u['p50_ms'])} / {f1(u['p99_ms'])} / {f1(u['max_ms'])}, {u['tps']:.0f} tps). Targets for the online "
             f"operations: max ≤ 100 ms, p99 ≤ 2× undisturbed. Before each operation, with no writer running: "
             f"VACUUM ANALYZE of the bound tables and of kenbun's tables. By step: the writer's transactions by the "
             f"step in which they started (define: the INSERT or UPDATE of kenbun.segments, under its brief lock; "
             f"batches; finish: the last transaction of the build, which marks the segment ready under the brief lock).")
    L.append("")
    L.append("| operation | duration | writers p50 / p99 / max during it | writers' max by step of the operation (step's length) | transactions (tps) | "
             "undisturbed p50 / p99 / max | p99 ratio | max ratio | longest stall | targets |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for x in o["ops"]:
        d, b = x["during"], x["undisturbed"]
        dur = f"{x['seconds']:.2f} s"
        if x.get("batches"):
            dur += f" ({x['batches']} batches)"
        tgt = ""
        if x["kind"] == "online":
            tgt = ("max ✓" if x["meets_max_100ms"] else "**max ✗**") + ", " + ("p99 ✓" if x["meets_p99_2x"] else "**p99 ✗**")
        ex = x.get("check")
        if ex is not None and not ex["exact"]:
            tgt += " **not exact**"
        r = lambda v: f"{v:.1f}×" if v is not None else "–"
        st = x.get("during_step") or {}
        steps = "; ".join(f"{k} {f1(v['max_ms'])} ({v['seconds'] * 1000:,.0f} ms)" for k, v in st.items()) if st else ""
        L.append(f"| {x['label']} | {dur} | {f1(d['p50_ms'], '')} / {f1(d['p99_ms'], '')} / {f1(d['max_ms'])} | {steps} | "
                 f"{d['transactions']:,} ({d['tps']:.0f}) | {f1(b['p50_ms'], '')} / {f1(b['p99_ms'], '')} / {f1(b['max_ms'])} | "
                 f"{r(x['p99_ratio'])} | {r(x['max_ratio'])} | {f1(d['longest_gap_ms'])} | {tgt} |")
    checks = [x["check"] for x in o["ops"] if x.get("check")]
    L.append("")
    L.append("After each operation (writer stopped): " + "; ".join(
        f"{c['segment']}: {c['members']:,} members, hand-written count {c['hand_count']:,}, drift {c['drift']}"
        + (f" ({c['drift_explained_by_clock']} left the time window meanwhile)" if c["drift_explained_by_clock"] else "")
        for c in checks) + ".")
    L.append("")
    L.append("| fill without writers (median of runs [min–max]) | online: INSERT + CALL segment_build() | synchronous | ratio | target |")
    L.append("|---|---|---|---|---|")
    for key, what in (("field", "field rule `country = US and score > 50`"), ("event", "event rule `email_click ≥ 2 within 30 days`")):
        f = o["fill"][key]
        ok = all(c["exact"] for c in f["checks"])
        bt = [b for b in f["batches"] if b]
        L.append(f"| {what}, {f['members']:,} members; online: define {f1(f['online_define_ms']['median'])} + build "
                 f"{f1(f['online_build_ms']['median'])}{f' in {statistics.median(bt):.0f} batches' if bt else ''}; "
                 f"{'exact after every build (drift 0, count = hand-written)' if ok else '**NOT EXACT**'} | "
                 f"{f1(f['online_ms']['median'])} [{f1(f['online_ms']['min'], '')}–{f1(f['online_ms']['max'], '')}] | "
                 f"{f1(f['sync_ms']['median'])} [{f1(f['sync_ms']['min'], '')}–{f1(f['sync_ms']['max'], '')}] | "
                 f"{f['ratio']:.2f}× | ≤ 1.5× |")
    rf = o["fill"]["refresh"]
    L.append(f"| refresh of `{WINDOW['name']}`: `CALL segment_refresh_concurrently` vs `segment_refresh` | "
             f"{f1(rf['concurrently_ms']['median'])} | {f1(rf['sync_ms']['median'])} | {rf['ratio']:.2f}× | |")
    p = o.get("prune")
    if p:
        d = p["during"]
        L.append("")
        L.append(f"`kenbun.prune_changes('30 days')` of a change log of {p['rows']:,} rows spread evenly over 60 days "
                 f"({p['table_bytes_before'] / 2**20:,.0f} MB with indexes): deleted {p['deleted']:,} rows in "
                 f"{p['seconds']:.1f} s ({p['rows_per_second']:,.0f} rows/s), while the writer ran and logged "
                 f"{p['changes_logged_by_writer_meanwhile']:,} changes; writers during it: p50 / p99 / max "
                 f"{f1(d['p50_ms'], '')} / {f1(d['p99_ms'], '')} / {f1(d['max_ms'])}, {d['transactions']:,} transactions "
                 f"(before it: p99 {f1(p['before']['p99_ms'])}, max {f1(p['before']['max_ms'])}). "
                 f"Estimate of the alternative, not a kenbun feature: `DROP TABLE` of a table holding the same "
                 f"{p['old_rows']:,} rows with the same indexes (as dropping whole time partitions would) took "
                 f"{f1(p['drop_table_estimate_ms'])}.")
    if o.get("loadavg_1min"):
        L.append("")
        L.append("Load average (1 min; {} cores) at the start of each part: ".format(os.cpu_count()) +
                 ", ".join(f"{k} {v:.2f}" for k, v in o["loadavg_1min"].items()) +
                 ". The cluster is shared: other sessions' load shows in every figure.")
    if o["problems"]:
        L.append("")
        L.append(f"**Problems found by the online measure:** {json.dumps(o['problems'], default=str)[:4000]}")
    return L
