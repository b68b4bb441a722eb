//! Live tests of online definition changes (0.5.0): writers keep going while segments are created,
//! re-ruled, refreshed and repaired over a table large enough that the old locking (the whole fill
//! under SHARE ROW EXCLUSIVE on the bound tables) stopped them for seconds; membership is exact
//! afterwards; a build cancelled in the middle leaves a clear state and a second CALL completes it.
//! `scripts/test.sh live` sets KENBUN_TEST_DSN; without it they skip.
#[path = "common/db.rs"]
mod db;

use db::{connect, dsn, recreate_database, try_connect};
use postgres::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

const LEADS: i64 = 300_000;

fn setup(db: &str) -> Client {
    recreate_database(db);
    let mut c = connect(db);
    c.batch_execute(&format!(
        r#"
        SET client_min_messages = warning;
        CREATE EXTENSION kenbun;
        CREATE TABLE accounts (id bigint PRIMARY KEY, industry text);
        CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint, country text, score int);
        CREATE TABLE events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
        INSERT INTO accounts SELECT g, CASE WHEN g % 2 = 0 THEN 'SaaS' ELSE 'Retail' END FROM generate_series(1, {acc}) g;
        INSERT INTO leads SELECT g, 1 + g % {acc}, (ARRAY['US','DE','FR'])[1 + g % 3], (g * 37) % 100
          FROM generate_series(1, {LEADS}) g;
        -- events scattered over the leads, whole days + 12 h ago: no event crosses a window boundary
        -- while the test runs
        INSERT INTO events SELECT 1 + (g::bigint * 7919) % {LEADS}, CASE WHEN g % 4 = 0 THEN 'demo' ELSE 'view' END,
                                  now() - ((g % 20) + 0.5) * interval '1 day', '{{}}'
          FROM generate_series(1, {ev}) g;
        CREATE INDEX ON events (lead_id);
        CREATE INDEX ON leads (account_id);
        ANALYZE;
        SELECT kenbun.bind_accounts('accounts');
        SELECT kenbun.bind_leads('leads', account_key => 'account_id');
        SELECT kenbun.bind_events('events');
        "#,
        acc = LEADS / 20,
        ev = LEADS * 2,
    ))
    .unwrap();
    c
}

/// Every segment's drift (time-dependent ones too: no window boundary is crossed during the test).
fn drift(c: &mut Client) -> Vec<(String, String, String)> {
    c.query(
        "SELECT s.name, d.problem, d.member_id FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2, 3 LIMIT 20",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn members(c: &mut Client, name: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name = $1",
        &[&name],
    )
    .unwrap()
    .get(0)
}

/// Writers: single-row lead UPDATEs and event INSERTs on random leads, and one adversary that
/// updates the leads just past the build's cursor (kenbun.segment_builds.after_key), where a batch
/// is about to read. Each statement's (start, latency).
struct Writers {
    stop: Arc<AtomicBool>,
    /// held (shared) by each writer statement; taken exclusively to check drift between operations
    gate: Arc<RwLock<()>>,
    lat: Arc<Mutex<Vec<(Instant, Duration)>>>,
    handles: Vec<thread::JoinHandle<u64>>,
}

fn start_writers(db: &'static str) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(RwLock::new(()));
    let lat = Arc::new(Mutex::new(vec![]));
    let mut handles = vec![];
    for w in 0..3u64 {
        let (stop, lat, gate) = (stop.clone(), lat.clone(), gate.clone());
        handles.push(thread::spawn(move || {
            let mut c = try_connect(db, "application_name=kenbun_online_writer").unwrap();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = 1 + (seed % LEADS as u64) as i64;
                let past_cursor = format!(
                    "(SELECT COALESCE(max(after_key::bigint), 0) + 1 + {} FROM kenbun.segment_builds)",
                    (seed >> 4) % 500
                );
                let sql = match (w, seed % 3) {
                    (2, 0) => format!("INSERT INTO events SELECT {past_cursor}, 'demo', now() - interval '36 hours', '{{}}'"),
                    (2, 1) => format!("DELETE FROM events WHERE lead_id = {past_cursor} AND type = 'demo'"),
                    (2, _) => format!(
                        "UPDATE leads SET country = CASE country WHEN 'US' THEN 'DE' ELSE 'US' END, score = 100 - score \
                          WHERE id = {past_cursor}"
                    ),
                    (_, 0) => format!("INSERT INTO events VALUES ({id}, 'demo', now() - interval '36 hours', '{{}}')"),
                    (_, 1) => format!("DELETE FROM events WHERE lead_id = {id} AND type = 'demo'"),
                    _ => format!(
                        "UPDATE leads SET country = (ARRAY['US','DE','FR'])[1 + {} % 3], score = {} WHERE id = {id}",
                        seed >> 8,
                        (seed >> 16) % 100
                    ),
                };
                let _open = gate.read().unwrap();
                let t = Instant::now();
                match c.batch_execute(&sql) {
                    Ok(()) => {}
                    // a writer touching several stripes across statements can meet a batch in a
                    // deadlock; PostgreSQL cancels one side and the application retries
                    Err(e) if e.code().map(|c| c.code()) == Some("40P01") => continue,
                    Err(e) => panic!("{sql}: {e}"),
                }
                lat.lock().unwrap().push((t, t.elapsed()));
                n += 1;
            }
            n
        }));
    }
    Writers { stop, gate, lat, handles }
}

impl Writers {
    /// (statements, max latency) of the statements started within [from, to].
    fn window(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let l = self.lat.lock().unwrap();
        let inside: Vec<Duration> = l.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, d)| *d).collect();
        (inside.len(), inside.iter().max().copied().unwrap_or_default())
    }
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handles.into_iter().map(|h| h.join().unwrap()).sum()
    }
}

#[test]
fn writers_proceed_while_segments_are_built_rebuilt_refreshed_and_repaired() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    const DB: &str = "kenbun_live_online";
    let mut c = setup(DB);
    // the old path first, for comparison: the same event rule filled in the defining statement
    let writers = start_writers(DB);
    thread::sleep(Duration::from_millis(300));
    c.batch_execute("SET kenbun.sync_max_rows = -1").unwrap();
    let t = Instant::now();
    c.batch_execute(
        r#"INSERT INTO kenbun.segments (name, kind, rule) VALUES
           ('demo sync', 'lead', '{"event":{"type":"demo","count":{"op":"gte","value":1},"within":"10 days"}}')"#,
    )
    .unwrap();
    let (sync_n, sync_max) = writers.window(t, Instant::now());
    let sync_took = t.elapsed();
    eprintln!("synchronous fill: {sync_took:?}; writers: {sync_n} statements, max latency {sync_max:?}");

    // online: each operation's writers' latency
    c.batch_execute("SET kenbun.sync_max_rows = 0; SET kenbun.build_batch_ms = 40").unwrap();
    let ops: [(&str, &str); 5] = [
        (
            "create (row rule)",
            r#"INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us high', 'lead',
                 '{"all":[{"field":"country","op":"eq","value":"US"},{"field":"score","op":"gt","value":50}]}');
               CALL kenbun.segment_build()"#,
        ),
        (
            "create (event rule)",
            r#"INSERT INTO kenbun.segments (name, kind, rule) VALUES ('demo', 'lead',
                 '{"event":{"type":"demo","count":{"op":"gte","value":1},"within":"10 days"}}');
               CALL kenbun.segment_build()"#,
        ),
        (
            "re-rule",
            r#"UPDATE kenbun.segments SET rule = '{"all":[{"field":"country","op":"eq","value":"DE"},{"field":"score","op":"gt","value":50}]}'
                WHERE name = 'us high';
               CALL kenbun.segment_build()"#,
        ),
        ("refresh", "CALL kenbun.segment_refresh_concurrently('demo')"),
        ("repair", "CALL kenbun.segment_repair_concurrently('us high')"),
    ];
    let mut report = vec![];
    for (what, sql) in ops {
        let t = Instant::now();
        // one statement at a time: a multi-statement query string is one transaction, where CALL
        // cannot commit between batches
        for stmt in sql.split(';') {
            c.batch_execute(stmt).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        }
        let took = t.elapsed();
        let (n, max) = writers.window(t, Instant::now());
        eprintln!("online {what}: {took:?}; writers: {n} statements, max latency {max:?}");
        report.push((what, took, n, max));
        // exact after each operation (the next one would repair what this one left wrong): the
        // writers wait while drift is checked
        let closed = writers.gate.write().unwrap();
        let d = drift(&mut c);
        assert!(d.is_empty(), "drift after online {what}: {d:?}");
        drop(closed);
    }
    let total = writers.finish();
    eprintln!("writers: {total} statements in all");
    for (what, took, n, max) in &report {
        assert!(*n > 10, "online {what}: the writers made no progress during it ({n} statements in {took:?})");
        // generous for CI (the benchmark's target is 100 ms): what matters is that no writer waits
        // for the whole operation, as the old locking made them do
        assert!(
            *max < Duration::from_millis(1000) && *max * 3 < (*took).max(sync_took),
            "online {what} took {took:?} and held a writer for {max:?} (the synchronous fill held them {sync_max:?})"
        );
    }
    // exact at the end: no drift in any segment, and the counts of hand-written queries
    let d = drift(&mut c);
    assert!(d.is_empty(), "drift after the online operations: {d:?}");
    let expected: i64 = c
        .query_one("SELECT count(*) FROM leads WHERE country = 'DE' AND score > 50", &[])
        .unwrap()
        .get(0);
    assert_eq!(members(&mut c, "us high"), expected);
    let expected: i64 = c
        .query_one(
            "SELECT count(DISTINCT lead_id) FROM events e WHERE type = 'demo' AND occurred_at >= now() - interval '10 days'
                AND EXISTS (SELECT 1 FROM leads l WHERE l.id = e.lead_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(members(&mut c, "demo"), expected);
    assert_eq!(members(&mut c, "demo sync"), expected);
    let building: i64 = c
        .query_one("SELECT count(*) FROM kenbun.segments WHERE status <> 'ready'", &[])
        .unwrap()
        .get(0);
    assert_eq!(building, 0);
    // the change log agrees with the membership tables
    assert!(db::replay_mismatches(&mut c).is_empty(), "the change log does not replay to the membership");
    // the synchronous path right after a fill: the membership table has no statistics for the new
    // segment yet, and a nested-loop anti-join made this rule change take minutes under the lock
    // (one transaction: no autovacuum can analyze the new members in between)
    c.batch_execute("SET kenbun.sync_max_rows = -1; SET statement_timeout = '60s'").unwrap();
    let t = Instant::now();
    c.batch_execute(
        r#"BEGIN;
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('fresh', 'lead', '{"field":"country","op":"eq","value":"US"}');
           UPDATE kenbun.segments SET rule = '{"field":"country","op":"eq","value":"FR"}' WHERE name = 'fresh';
           COMMIT"#,
    )
    .unwrap_or_else(|e| panic!("a synchronous rule change right after the fill: {e}"));
    eprintln!("synchronous rule change right after the fill: {:?}", t.elapsed());
}

#[test]
fn a_cancelled_build_is_left_building_and_a_second_call_completes_it() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    const DB: &str = "kenbun_live_online_cancel";
    let mut c = setup(DB);
    c.batch_execute(
        r#"SET kenbun.sync_max_rows = 0;
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('demo', 'lead',
             '{"event":{"type":"demo","count":{"op":"gte","value":1},"within":"10 days"}}')"#,
    )
    .unwrap();
    let builder = thread::spawn(|| {
        let mut b = try_connect(DB, "application_name=kenbun_online_builder").unwrap();
        b.batch_execute("SET kenbun.build_batch_rows = 2000").unwrap();
        b.batch_execute("CALL kenbun.segment_build()")
    });
    // wait until some batches are done, then cancel the build in the middle of one
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 = c
            .query_one("SELECT COALESCE(max(rows_done), 0) FROM kenbun.segment_builds", &[])
            .unwrap()
            .get(0);
        if done >= 20_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the build made no progress");
        thread::sleep(Duration::from_millis(20));
    }
    c.batch_execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'kenbun_online_builder'")
        .unwrap();
    let err = builder.join().unwrap().expect_err("the cancelled build must fail");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    // a clear state: still building, the batches done are kept and exact, nothing past them
    let row = c
        .query_one(
            "SELECT s.status, b.rows_done, b.after_key::bigint FROM kenbun.segments s JOIN kenbun.segment_builds b ON b.segment_id = s.id",
            &[],
        )
        .unwrap();
    let (status, done, after): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(status, "building");
    assert!(done >= 20_000 && done < LEADS, "rows done: {done}");
    let (have, want, past): (i64, i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM kenbun.lead_members WHERE lead_id <= $1),
                        (SELECT count(DISTINCT lead_id) FROM events WHERE type = 'demo' AND lead_id <= $1
                            AND occurred_at >= now() - interval '10 days'),
                        (SELECT count(*) FROM kenbun.lead_members WHERE lead_id > $1)",
                &[&after],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((have, past), (want, 0), "membership after the cancelled build (keys up to {after})");
    // the second CALL resumes after the last batch done and completes it
    c.batch_execute("CALL kenbun.segment_build()").unwrap();
    let started_over: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.membership_changes WHERE reason = 'initial' GROUP BY member_id HAVING count(*) > 1 LIMIT 1",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(0);
    assert_eq!(started_over, 0, "a member entered twice: the second CALL did not resume");
    let d = drift(&mut c);
    assert!(d.is_empty(), "drift after the second CALL: {d:?}");
    let status: String = c.query_one("SELECT status FROM kenbun.segments", &[]).unwrap().get(0);
    assert_eq!(status, "ready");
}
