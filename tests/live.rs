//! Live tests against the installed extension in the private cluster, with several connections:
//! NOTIFY delivery, concurrent writers, uuid keys and the pg_cron refresh path.
//! `scripts/test.sh live` sets KENBUN_TEST_DSN; without it (e.g. under `cargo pgrx test`) they skip.
use postgres::fallible_iterator::FallibleIterator;
#[path = "common/db.rs"]
mod db;

use db::{connect, dsn, recreate_database};
use postgres::Client;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh database with the extension and the standard test tables.
fn fresh_db(db: &str, key_type: &str) -> Client {
    recreate_database(db);
    let mut c = connect(db);
    c.batch_execute(&format!(
        r#"
        SET client_min_messages = warning;
        CREATE EXTENSION kenbun;
        CREATE TABLE accounts (id {key_type} PRIMARY KEY, industry text);
        CREATE TABLE leads (id {key_type} PRIMARY KEY, account_id {key_type}, country text, score int, last_seen_at timestamptz);
        CREATE TABLE events (lead_id {key_type}, type text, occurred_at timestamptz, metadata jsonb);
        CREATE INDEX ON events (lead_id);
        CREATE INDEX ON leads (account_id);
        SELECT kenbun.bind_accounts('accounts');
        SELECT kenbun.bind_leads('leads', account_key => 'account_id');
        SELECT kenbun.bind_events('events');
        SELECT kenbun.define_levels('engagement', 'score', '[{{"name":"Cold","min":0}},{{"name":"Warm","min":25}},{{"name":"Hot","min":50}}]');
        "#
    ))
    .unwrap();
    c
}

fn total_drift(c: &mut Client) -> usize {
    db::drift_rows(c).len()
}

fn replay_mismatches(c: &mut Client) -> usize {
    db::replay_mismatches(c).len()
}

#[test]
fn notify_is_sent_after_commit_and_not_after_rollback() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let mut w = fresh_db("kenbun_live_notify", "bigint");
    w.batch_execute(
        r#"INSERT INTO accounts VALUES (1, 'SaaS');
           INSERT INTO leads VALUES (1, 1, 'CA', 10, now()), (2, 1, 'US', 10, now());
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('us', 'lead', '{"field":"country","op":"eq","value":"US"}');"#,
    )
    .unwrap();
    let mut l = connect("kenbun_live_notify");
    l.batch_execute("LISTEN kenbun_membership").unwrap();
    let drain = |l: &mut Client, wait: Duration| -> Vec<serde_json::Value> {
        let mut out = vec![];
        let mut n = l.notifications();
        let mut it = n.timeout_iter(wait);
        while let Ok(Some(m)) = it.next() {
            out.push(serde_json::from_str(m.payload()).unwrap());
        }
        out
    };
    // lead 1 enters, lead 2 exits, in one transaction
    w.batch_execute(
        "BEGIN; UPDATE leads SET country = 'US' WHERE id = 1; UPDATE leads SET country = 'DE' WHERE id = 2;",
    )
    .unwrap();
    assert!(
        drain(&mut l, Duration::from_millis(300)).is_empty(),
        "notified before commit"
    );
    w.batch_execute("COMMIT").unwrap();
    let got = drain(&mut l, Duration::from_millis(1500));
    assert_eq!(got.len(), 2, "{got:?}");
    let enter = got
        .iter()
        .find(|p| p["change"] == "enter")
        .expect("an enter notification");
    let exit = got
        .iter()
        .find(|p| p["change"] == "exit")
        .expect("an exit notification");
    assert_eq!(enter["segment"], "us");
    assert_eq!(enter["kind"], "lead");
    assert_eq!(enter["reason"], "data_change");
    assert_eq!(enter["member_ids"], serde_json::json!(["1"]));
    assert_eq!(exit["member_ids"], serde_json::json!(["2"]));
    assert!(enter["segment_id"].is_i64());
    // a rolled-back change sends nothing
    w.batch_execute("BEGIN; UPDATE leads SET country = 'US' WHERE id = 2; ROLLBACK;")
        .unwrap();
    assert!(drain(&mut l, Duration::from_millis(800)).is_empty());
    // a bulk statement sends one notification per segment and change, with every member
    w.batch_execute("INSERT INTO leads SELECT g, 1, 'US', 0, now() FROM generate_series(10, 59) g")
        .unwrap();
    let got = drain(&mut l, Duration::from_millis(1500));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["member_ids"].as_array().unwrap().len(), 50);
}

/// Retries a transaction when PostgreSQL reports a serialization failure or deadlock.
fn with_retry(c: &mut Client, sql: &str, retries: &mut u32) {
    loop {
        match c.batch_execute(sql) {
            Ok(()) => return,
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                let _ = c.batch_execute("ROLLBACK");
                if code == "40001" || code == "40P01" {
                    *retries += 1;
                    continue;
                }
                panic!("{sql}: {e}");
            }
        }
    }
}

#[test]
fn concurrent_writers_leave_zero_drift() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let mut c = fresh_db("kenbun_live_concurrency", "bigint");
    c.batch_execute(
        r#"INSERT INTO accounts SELECT g, CASE WHEN g % 2 = 0 THEN 'SaaS' ELSE 'Retail' END FROM generate_series(1, 3) g;
           INSERT INTO leads SELECT g, 1 + g % 3, CASE WHEN g % 2 = 0 THEN 'US' ELSE 'CA' END, (g * 7) % 60, now() FROM generate_series(1, 12) g;
           INSERT INTO kenbun.segments (name, kind, rule) VALUES
             ('three_views', 'lead', '{"event":{"type":"view","count":{"op":"gte","value":3}}}'),
             ('five_views', 'lead', '{"event":{"type":"view","count":{"op":"gte","value":5}}}'),
             ('hot', 'lead', '{"level":"engagement","op":"gte","value":"Hot"}'),
             ('saas_us', 'lead', '{"all":[{"field":"country","op":"eq","value":"US"},{"account":{"field":"industry","op":"eq","value":"SaaS"}}]}'),
             ('two_hot_leads', 'account', '{"leads":{"where":{"segment":"hot"},"count":{"op":"gte","value":2}}}'),
             ('four_leads', 'account', '{"leads":{"count":{"op":"gte","value":4}}}'),
             ('viewers', 'account', '{"leads":{"where":{"segment":"three_views"},"count":{"op":"gte","value":2}}}');
           -- 0.6.0: a static list, overrides (of 'hot', set by the writers), aggregates and sequences
           INSERT INTO kenbun.segments (name, kind, type) VALUES ('vip_list', 'lead', 'static');
           INSERT INTO kenbun.segments (name, kind, rule) VALUES
             ('vip_or_hot', 'lead', '{"any":[{"segment":"vip_list"},{"segment":"hot"}]}'),
             ('vip_accounts', 'account', '{"leads":{"where":{"segment":"vip_list"}}}'),
             ('view_then_click', 'lead', '{"sequence":{"steps":[{"type":"view"},{"type":"click"}],"max_gap":"1 day"}}'),
             ('two_kinds', 'lead', '{"event":{"count_distinct":{"field":"type","op":"gte","value":2}}}');"#,
    )
    .unwrap();
    // three passes of 8 writers; drift is checked after each
    for pass in 0..3u64 {
        let threads = 8;
        let rounds = 120;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let mut c = connect("kenbun_live_concurrency");
                    let mut retries = 0;
                    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ (t as u64 + 1 + 8 * pass) * 0x9E37_79B9;
                    let mut rnd = |n: u64| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % n
                    };
                    barrier.wait();
                    for _ in 0..rounds {
                        // few leads and accounts: every statement contends with the others
                        let lead = 1 + rnd(4);
                        let sql = match rnd(9) {
                            6 => {
                                let f = ["segment_include", "segment_exclude", "segment_clear_override"][rnd(3) as usize];
                                format!("BEGIN; SELECT kenbun.{f}('hot', ARRAY['{lead}']); SELECT pg_sleep(0.002); COMMIT;")
                            }
                            7 => {
                                let f = if rnd(2) == 0 { "segment_add" } else { "segment_remove" };
                                format!("BEGIN; SELECT kenbun.{f}('vip_list', ARRAY['{lead}']); SELECT pg_sleep(0.002); COMMIT;")
                            }
                            8 => format!("BEGIN; INSERT INTO events VALUES ({lead}, 'click', now(), '{{}}'); SELECT pg_sleep(0.002); COMMIT;"),
                            0 | 1 => format!("BEGIN; INSERT INTO events VALUES ({lead}, 'view', now(), '{{}}'); SELECT pg_sleep(0.002); COMMIT;"),
                            2 => format!("BEGIN; DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE lead_id = {lead} LIMIT 1); SELECT pg_sleep(0.002); COMMIT;"),
                            3 => format!("BEGIN; UPDATE leads SET score = {} WHERE id = {lead}; SELECT pg_sleep(0.002); COMMIT;", rnd(70)),
                            4 => format!("BEGIN; UPDATE leads SET account_id = {} WHERE id = {lead}; SELECT pg_sleep(0.002); COMMIT;", 1 + rnd(3)),
                            _ => format!(
                                "BEGIN; UPDATE accounts SET industry = '{}' WHERE id = {}; SELECT pg_sleep(0.002); COMMIT;",
                                if rnd(2) == 0 { "SaaS" } else { "Retail" },
                                1 + rnd(3)
                            ),
                        };
                        with_retry(&mut c, &sql, &mut retries);
                    }
                    retries
                })
            })
            .collect();
        let retries: u32 = handles.into_iter().map(|h| h.join().expect("writer thread")).sum();
        eprintln!(
            "concurrency: {} transactions, {retries} retried after deadlock/serialization failure",
            threads * rounds
        );
        assert_eq!(total_drift(&mut c), 0, "drift after pass {pass}");
    }
    let changes: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.membership_changes WHERE reason = 'data_change'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        changes > 20,
        "the workload should move members in and out (only {changes} changes)"
    );
    assert_eq!(total_drift(&mut c), 0, "drift after concurrent writers");
    // every override the writers left holds, and the list's members are members of what uses it
    let broken: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.member_overrides o JOIN kenbun.segments s ON s.id = o.segment_id
              WHERE o.include <> EXISTS (SELECT 1 FROM kenbun.lead_members m WHERE m.segment_id = s.id AND m.lead_id::text = o.member_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(broken, 0, "overrides that do not hold after concurrent writers");
    let manual: i64 = c
        .query_one("SELECT count(*) FROM kenbun.membership_changes WHERE reason = 'manual'", &[])
        .unwrap()
        .get(0);
    assert!(manual > 10, "the workload should change lists and overrides (only {manual} manual changes)");
    assert_eq!(
        replay_mismatches(&mut c),
        0,
        "the change log does not replay to the membership"
    );
}

#[test]
fn uuid_and_text_keys_are_maintained() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    for key_type in ["uuid", "text", "integer"] {
        let db = format!("kenbun_live_{key_type}");
        let mut c = fresh_db(&db, key_type);
        let id = |i: u32| -> String {
            match key_type {
                "uuid" => format!("'00000000-0000-0000-0000-{i:012}'"),
                "text" => format!("'k-{i}'"),
                _ => i.to_string(),
            }
        };
        c.batch_execute(&format!(
            r#"INSERT INTO accounts VALUES ({a1}, 'SaaS'), ({a2}, 'Retail');
               INSERT INTO leads VALUES ({l1}, {a1}, 'US', 60, now()), ({l2}, {a2}, 'CA', 10, now());
               INSERT INTO kenbun.segments (name, kind, rule) VALUES
                 ('saas', 'lead', '{{"account":{{"field":"industry","op":"eq","value":"SaaS"}}}}'),
                 ('viewed', 'lead', '{{"event":{{"type":"view"}}}}'),
                 ('busy', 'account', '{{"leads":{{"where":{{"level":"engagement","op":"gte","value":"Hot"}}}}}}');
               UPDATE leads SET account_id = {a1} WHERE id = {l2};
               UPDATE leads SET score = 70 WHERE id = {l2};
               INSERT INTO events VALUES ({l2}, 'view', now(), '{{}}');
               UPDATE leads SET id = {l3} WHERE id = {l1};
               UPDATE accounts SET industry = 'Retail' WHERE id = {a1};
               DELETE FROM leads WHERE id = {l2};"#,
            a1 = id(1),
            a2 = id(2),
            l1 = id(11),
            l2 = id(12),
            l3 = id(13)
        ))
        .unwrap();
        assert_eq!(total_drift(&mut c), 0, "{key_type}: drift");
        assert_eq!(replay_mismatches(&mut c), 0, "{key_type}: replay");
        let busy: Vec<String> = c
            .query("SELECT account_id::text FROM kenbun.account_members ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(busy, vec![id(1).trim_matches('\'').to_string()], "{key_type}");
        let ty: String = c
            .query_one("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'kenbun.lead_members'::regclass AND attname = 'lead_id'", &[])
            .unwrap()
            .get(0);
        assert_eq!(ty, key_type);
    }
}

#[test]
fn pg_cron_runs_refresh_due() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    // the private cluster preloads pg_cron with cron.database_name = 'kenbun_cron'
    let mut admin = connect("postgres");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'kenbun_cron'", &[])
        .unwrap()
        .is_some();
    if !exists {
        admin.batch_execute("CREATE DATABASE kenbun_cron").unwrap();
    }
    let mut c = connect("kenbun_cron");
    c.batch_execute(
        r#"SET client_min_messages = warning;
           CREATE EXTENSION IF NOT EXISTS pg_cron;
           SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'kenbun-refresh-due';
           DROP EXTENSION IF EXISTS kenbun CASCADE;
           DROP TABLE IF EXISTS leads;
           CREATE EXTENSION kenbun;
           CREATE TABLE leads (id bigint PRIMARY KEY, last_seen_at timestamptz);
           INSERT INTO leads SELECT g, now() FROM generate_series(1, 5) g;
           SELECT kenbun.bind_leads('leads');
           INSERT INTO kenbun.segments (name, kind, rule, refresh_every)
             VALUES ('recent', 'lead', '{"field":"last_seen_at","op":"within_last","value":"1 hour"}', '1 second');
           -- time passes without a write (simulated by writing behind the triggers' back)
           ALTER TABLE leads DISABLE TRIGGER USER;
           UPDATE leads SET last_seen_at = now() - interval '2 hours' WHERE id <= 2;
           ALTER TABLE leads ENABLE TRIGGER USER;"#,
    )
    .unwrap();
    let stale: i64 = c
        .query_one("SELECT count(*) FROM kenbun.segment_drift('recent')", &[])
        .unwrap()
        .get(0);
    assert_eq!(stale, 2);
    let job: i64 = c
        .query_one(
            "SELECT cron.schedule('kenbun-refresh-due', '* * * * *', 'SELECT kenbun.refresh_due()')",
            &[],
        )
        .unwrap()
        .get(0);
    let started = Instant::now();
    let mut ran = false;
    while started.elapsed() < Duration::from_secs(90) {
        let done: i64 = c
            .query_one(
                "SELECT count(*) FROM cron.job_run_details WHERE jobid = $1 AND status = 'succeeded'",
                &[&job],
            )
            .unwrap()
            .get(0);
        if done > 0 {
            ran = true;
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    c.batch_execute("SELECT cron.unschedule('kenbun-refresh-due')").unwrap();
    assert!(ran, "pg_cron did not run kenbun.refresh_due() within 90 s");
    let drift: i64 = c
        .query_one("SELECT count(*) FROM kenbun.segment_drift('recent')", &[])
        .unwrap()
        .get(0);
    assert_eq!(drift, 0);
    let refreshed: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.membership_changes WHERE reason = 'refresh' AND change = 'exit'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(refreshed, 2);
}

/// A definition change (define_levels, map_field, …) and a segment written concurrently: whichever
/// commits first, the other sees it, because checks and recompiles run after the bound-table lock.
/// Also: a segment cannot be deleted while a concurrent transaction creates one that uses it.
#[test]
fn definition_changes_see_concurrent_segment_writes() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let mut s = fresh_db("kenbun_live_defs", "bigint");
    s.batch_execute("INSERT INTO leads (id, score) VALUES (1, 55), (2, 70)")
        .unwrap();
    // 1. the segment commits while define_levels waits for the lock
    s.batch_execute(
        r#"BEGIN; INSERT INTO kenbun.segments (name, kind, rule) VALUES ('hot', 'lead', '{"level":"engagement","op":"gte","value":"Hot"}')"#,
    )
    .unwrap();
    let levels = thread::spawn(|| {
        let mut l = connect("kenbun_live_defs");
        l.batch_execute(
            r#"SELECT kenbun.define_levels('engagement', 'score', '[{"name":"Cold","min":0},{"name":"Hot","min":60}]')"#,
        )
    });
    thread::sleep(Duration::from_millis(500));
    s.batch_execute("COMMIT").unwrap();
    levels.join().unwrap().unwrap();
    let row = s
        .query_one(
            "SELECT compiled_sql LIKE '%''60''::bigint%', \
                    ARRAY(SELECT m.lead_id FROM kenbun.lead_members m WHERE m.segment_id = s.id ORDER BY 1) \
               FROM kenbun.segments s WHERE name = 'hot'",
            &[],
        )
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the segment kept the rule compiled against the old levels"
    );
    assert_eq!(row.get::<_, Vec<i64>>(1), vec![2]);
    // 2. a segment using "hot" is being created: deleting "hot" waits, then refuses
    s.batch_execute(
        r#"BEGIN; INSERT INTO kenbun.segments (name, kind, rule) VALUES ('hot2', 'lead', '{"segment":"hot"}')"#,
    )
    .unwrap();
    let delete = thread::spawn(|| {
        let mut d = connect("kenbun_live_defs");
        d.batch_execute("DELETE FROM kenbun.segments WHERE name = 'hot'")
    });
    thread::sleep(Duration::from_millis(500));
    s.batch_execute("COMMIT").unwrap();
    let err = delete
        .join()
        .unwrap()
        .expect_err("deleting a segment another one uses must fail");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::DEPENDENT_OBJECTS_STILL_EXIST),
        "{err}"
    );
    assert_eq!(total_drift(&mut s), 0);
    // 3. outside READ COMMITTED, definition changes are refused (their snapshot would predate the lock)
    s.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    let err = s
        .batch_execute("UPDATE kenbun.segments SET active = false WHERE name = 'hot2'")
        .expect_err("must be refused under REPEATABLE READ");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{err}"
    );
    s.batch_execute("ROLLBACK").unwrap();
}
