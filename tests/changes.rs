//! The change log as an interface (issue 12), with several connections against the private cluster:
//! two workers of one consumer while writers commit out of id order (every change once), the commit
//! order of changes_since (a change committed later with a smaller id is never skipped, also when the
//! later transaction is the older one), prune_changes beside writers (they never wait for it), the
//! logical decoding of kenbun.membership_changes (test_decoding through SQL and through
//! pg_recvlogical, pgoutput through kenbun.create_publication), and the publication and consumers
//! across pg_dump/pg_restore.
//! `scripts/test.sh live` sets KENBUN_TEST_DSN, KENBUN_PG_BIN, KENBUN_DUMP_DIR and, as root,
//! KENBUN_RUN_AS; without KENBUN_TEST_DSN every test skips. Needs wal_level = logical
//! (scripts/cluster.sh sets it).
#[path = "common/db.rs"]
mod db;

use db::{connect, dsn, recreate_database};
use postgres::{Client, NoTls};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

macro_rules! dsn_or_skip {
    () => {
        if dsn().is_none() {
            eprintln!("KENBUN_TEST_DSN not set: skipped");
            return;
        }
    };
}

/// A fresh database with the extension, `leads` (ids 1..=n, score 0) and an empty `accounts` bound,
/// segment "hot" (score >= 50) and an unrelated table `other`. Logical replication slots of an earlier failed run that
/// point at this database are dropped first (DROP DATABASE refuses while they exist).
fn fresh(db: &str, n: i64) -> Client {
    drop_slots_of(db);
    recreate_database(db);
    let mut c = connect(db);
    c.batch_execute(&format!(
        r#"SET client_min_messages = warning;
           CREATE EXTENSION kenbun;
           CREATE TABLE leads (id bigint PRIMARY KEY, score int NOT NULL);
           CREATE TABLE other (x int);
           CREATE TABLE accounts (id bigint PRIMARY KEY);
           INSERT INTO leads SELECT g, 0 FROM generate_series(1, {n}) g;
           SELECT kenbun.bind_leads('leads');
           SELECT kenbun.bind_accounts('accounts');
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('hot', 'lead', '{{"field":"score","op":"gte","value":50}}');"#
    ))
    .unwrap();
    c
}

fn drop_slots_of(db: &str) {
    let mut admin = connect("postgres");
    admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
            &[&db],
        )
        .unwrap();
}

/// A connection whose NOTICEs are collected.
fn connect_with_notices(db: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(vec![]));
    let sink = notices.clone();
    let mut cfg: postgres::Config = format!("{} dbname={db}", dsn().unwrap()).parse().unwrap();
    cfg.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    (cfg.connect(NoTls).unwrap(), notices)
}

fn max_id(c: &mut Client) -> i64 {
    c.query_one("SELECT COALESCE(max(id), 0) FROM kenbun.membership_changes", &[])
        .unwrap()
        .get(0)
}

fn ids(c: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Vec<i64> {
    c.query(sql, params).unwrap().iter().map(|r| r.get(0)).collect()
}

fn since(c: &mut Client, after: i64) -> Vec<i64> {
    ids(c, "SELECT id FROM kenbun.changes_since($1)", &[&after])
}

fn backend_pid(c: &mut Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

/// Whether process `pid` is waiting for a heavyweight lock.
fn waits_for_lock(c: &mut Client, pid: i32) -> bool {
    c.query_one(
        "SELECT COALESCE((SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1), false)",
        &[&pid],
    )
    .unwrap()
    .get(0)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// (a) Two workers of one consumer, while three writers commit changes out of id order (some of
/// their transactions write an unrelated table first, hold on between two membership changes, or
/// roll back): each change is delivered to exactly one worker, once, none is missing; a worker
/// that rolls back its consume gets nothing of it counted, and the changes come again.
#[test]
fn two_workers_of_one_consumer_get_every_change_once() {
    dsn_or_skip!();
    const DB: &str = "kenbun_changes_workers";
    let mut c = fresh(DB, 90);
    let start: i64 = c
        .query_one("SELECT kenbun.register_consumer('workers')", &[])
        .unwrap()
        .get(0);
    let writing = Arc::new(AtomicBool::new(true));
    let barrier = Arc::new(Barrier::new(5));
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut w = connect(DB);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1) * 0x2545_F491);
                barrier.wait();
                let mut committed = 0;
                for _ in 0..70 {
                    // each writer toggles leads of its own (id % 3 = t): no deadlocks between writers
                    let a = 1 + t + 3 * rng.next(30);
                    let b = 1 + t + 3 * rng.next(30);
                    let first = if rng.next(2) == 0 {
                        "INSERT INTO other VALUES (1);"
                    } else {
                        ""
                    };
                    let end = if rng.next(8) == 0 { "ROLLBACK" } else { "COMMIT" };
                    let pause = rng.next(4);
                    w.batch_execute(&format!(
                        "BEGIN; {first} SELECT pg_sleep(0.00{pause});
                         UPDATE leads SET score = 100 - score WHERE id = {a};
                         SELECT pg_sleep(0.00{pause});
                         UPDATE leads SET score = 100 - score WHERE id = {b} AND {b} <> {a};
                         {end};"
                    ))
                    .unwrap();
                    if end == "COMMIT" {
                        committed += 1;
                    }
                }
                committed
            })
        })
        .collect();
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let barrier = barrier.clone();
            let writing = writing.clone();
            thread::spawn(move || {
                let mut w = connect(DB);
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 7) * 0x9E37);
                let mut got: Vec<Vec<i64>> = vec![];
                let mut rolled_back = 0;
                barrier.wait();
                let mut idle_after_writers = 0;
                while idle_after_writers < 2 {
                    let done = !writing.load(Ordering::SeqCst);
                    let mut tx = w.transaction().unwrap();
                    let batch: Vec<i64> = tx
                        .query("SELECT id FROM kenbun.consume_changes('workers', 5)", &[])
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    tx.execute("SELECT pg_sleep($1)", &[&(rng.next(3) as f64 / 1000.0)])
                        .unwrap();
                    if rng.next(10) == 0 && !batch.is_empty() {
                        tx.rollback().unwrap();
                        rolled_back += 1;
                        continue;
                    }
                    tx.commit().unwrap();
                    if batch.is_empty() && done {
                        idle_after_writers += 1;
                    }
                    if !batch.is_empty() {
                        got.push(batch);
                    }
                }
                (got, rolled_back)
            })
        })
        .collect();
    let committed: u32 = writers.into_iter().map(|h| h.join().expect("writer")).sum();
    writing.store(false, Ordering::SeqCst);
    let results: Vec<(Vec<Vec<i64>>, u32)> = workers.into_iter().map(|h| h.join().expect("worker")).collect();

    let expected: Vec<i64> = ids(
        &mut c,
        "SELECT id FROM kenbun.membership_changes WHERE id > $1 ORDER BY id",
        &[&start],
    );
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for (w, (batches, _)) in results.iter().enumerate() {
        for b in batches {
            assert!(
                b.windows(2).all(|p| p[0] < p[1]),
                "worker {w}: a batch out of id order: {b:?}"
            );
            for id in b {
                *seen.entry(*id).or_default() += 1;
            }
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "changes delivered more than once: {dups:?}");
    let got: BTreeSet<i64> = seen.keys().copied().collect();
    let want: BTreeSet<i64> = expected.iter().copied().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, not in the log {extra:?}"
    );
    let per_worker: Vec<usize> = results.iter().map(|(b, _)| b.iter().map(|x| x.len()).sum()).collect();
    let rolled: u32 = results.iter().map(|(_, r)| r).sum();
    eprintln!(
        "workers: {committed} writer transactions committed, {} changes, delivered {per_worker:?}, {rolled} consumes rolled back",
        want.len()
    );
    assert!(
        want.len() > 100,
        "the writers should have logged changes (only {})",
        want.len()
    );
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "both workers should have consumed: {per_worker:?}"
    );
    // the consumer ends at the last change, and the log still replays to the membership
    let pos: i64 = c
        .query_one(
            "SELECT position FROM kenbun.change_consumers WHERE name = 'workers'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        pos >= *expected.last().unwrap(),
        "position {pos} behind the last change"
    );
    assert!(db::replay_mismatches(&mut c).is_empty());
}

/// (b) Commit order. A logs a change (smaller id) and stays open while B logs one (larger id) and
/// commits: a poll returns neither until A ends — first with A the older transaction, then with B the
/// older one (it wrote elsewhere first), where "txid < xmin of the snapshot" would have returned B's
/// change and skipped A's. A poll that waits for A returns both once A commits; a consumer behaves
/// the same; a second worker of a consumer waits for the first and continues after it (or gets the
/// same changes when the first rolls back).
#[test]
fn changes_since_never_skips_a_change_committed_later_with_a_smaller_id() {
    dsn_or_skip!();
    const DB: &str = "kenbun_changes_order";
    let mut c = fresh(DB, 20);
    c.batch_execute("SELECT kenbun.register_consumer('order')").unwrap();
    let mut a = connect(DB);
    let mut b = connect(DB);
    let (mut p, notices) = connect_with_notices(DB);
    p.batch_execute("SET kenbun.changes_max_wait = '300ms'").unwrap();

    let mut held_back = vec![];
    for b_is_older in [false, true] {
        let base = max_id(&mut c);
        if b_is_older {
            b.batch_execute("BEGIN; INSERT INTO other VALUES (1)").unwrap();
        }
        a.batch_execute("BEGIN; UPDATE leads SET score = 100 - score WHERE id = 1")
            .unwrap();
        let ia = ids(&mut a, "SELECT max(id) FROM kenbun.membership_changes", &[])[0];
        if !b_is_older {
            b.batch_execute("BEGIN").unwrap();
        }
        b.batch_execute("UPDATE leads SET score = 100 - score WHERE id = 2")
            .unwrap();
        let ib = ids(&mut b, "SELECT max(id) FROM kenbun.membership_changes", &[])[0];
        b.batch_execute("COMMIT").unwrap();
        assert!(ia > base && ib > ia, "ids: a {ia}, b {ib}");
        let xid = |x: &mut Client, id: i64| -> i64 {
            // B's change is visible; A's xid from its own session
            x.query_one(
                "SELECT (txid::text)::bigint FROM kenbun.membership_changes WHERE id = $1",
                &[&id],
            )
            .unwrap()
            .get(0)
        };
        let (xa, xb) = (xid(&mut a, ia), xid(&mut c, ib));
        assert_eq!(xb < xa, b_is_older, "xids: a {xa}, b {xb}");
        // what "txid < xmin of the snapshot" returns right now (with B the older one: B's change
        // while A's is in flight, unless a transaction elsewhere in the cluster holds xmin back)
        let by_xmin = ids(
            &mut c,
            "SELECT id FROM kenbun.membership_changes WHERE id > $1 AND txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY id",
            &[&base],
        );
        eprintln!(
            "order: b_is_older {b_is_older}: ids a {ia} b {ib}, xids a {xa} b {xb}; the xmin rule returns {by_xmin:?}"
        );

        notices.lock().unwrap().clear();
        let t = Instant::now();
        let got = since(&mut p, base);
        let waited = t.elapsed();
        assert!(
            got.is_empty(),
            "b_is_older {b_is_older}: returned {got:?} while change {ia} is in flight"
        );
        // (checked after the loop, so that a failure above shows first)
        held_back.push((b_is_older, base, waited, notices.lock().unwrap().clone()));
        // the consumer: nothing either, and its position stays
        let before: i64 = c
            .query_one("SELECT position FROM kenbun.change_consumers WHERE name = 'order'", &[])
            .unwrap()
            .get(0);
        let got = ids(&mut p, "SELECT id FROM kenbun.consume_changes('order')", &[]);
        assert!(
            got.is_empty(),
            "b_is_older {b_is_older}: consumed {got:?} while change {ia} is in flight"
        );
        let after: i64 = c
            .query_one("SELECT position FROM kenbun.change_consumers WHERE name = 'order'", &[])
            .unwrap()
            .get(0);
        assert_eq!(before, after);

        a.batch_execute("COMMIT").unwrap();
        assert_eq!(
            since(&mut p, base),
            vec![ia, ib],
            "b_is_older {b_is_older}: after A commits"
        );
        assert_eq!(
            ids(&mut p, "SELECT id FROM kenbun.consume_changes('order')", &[]),
            vec![ia, ib]
        );
    }
    // each of those polls waited changes_max_wait for A, then said why it returned nothing
    for (b_is_older, base, waited, n) in held_back {
        assert!(
            waited >= Duration::from_millis(280),
            "b_is_older {b_is_older}: returned after {waited:?}, before changes_max_wait"
        );
        assert!(
            n.iter()
                .any(|m| m.contains(&format!("changes after id {base} are held back"))),
            "b_is_older {b_is_older}: NOTICE {n:?}"
        );
    }

    // a poll that waits long enough returns both, in id order
    let base = max_id(&mut c);
    a.batch_execute("BEGIN; INSERT INTO other VALUES (1); UPDATE leads SET score = 100 - score WHERE id = 3")
        .unwrap();
    c.batch_execute("UPDATE leads SET score = 100 - score WHERE id = 4")
        .unwrap();
    let committer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(250));
        a.batch_execute("COMMIT").unwrap();
        a
    });
    p.batch_execute("SET kenbun.changes_max_wait = '10s'").unwrap();
    let t = Instant::now();
    let got = since(&mut p, base);
    let waited = t.elapsed();
    let _a = committer.join().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0] < got[1]);
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );

    // two workers of one consumer take turns: the second waits for the first, then continues after it
    ids(&mut c, "SELECT id FROM kenbun.consume_changes('order')", &[]);
    for first_commits in [true, false] {
        let base = max_id(&mut c);
        c.batch_execute("UPDATE leads SET score = 100 - score WHERE id IN (5, 6)")
            .unwrap();
        let mut w1 = connect(DB);
        w1.batch_execute("BEGIN").unwrap();
        let first = ids(&mut w1, "SELECT id FROM kenbun.consume_changes('order', 1)", &[]);
        assert_eq!(first, vec![base + 1]);
        let mut w2 = connect(DB);
        let pid2 = backend_pid(&mut w2);
        let second = thread::spawn(move || ids(&mut w2, "SELECT id FROM kenbun.consume_changes('order', 1)", &[]));
        thread::sleep(Duration::from_millis(300));
        assert!(
            waits_for_lock(&mut c, pid2),
            "the second worker should wait for the first"
        );
        assert!(!second.is_finished());
        w1.batch_execute(if first_commits { "COMMIT" } else { "ROLLBACK" })
            .unwrap();
        let second = second.join().unwrap();
        assert_eq!(
            second,
            vec![if first_commits { base + 2 } else { base + 1 }],
            "first_commits {first_commits}"
        );
        ids(&mut c, "SELECT id FROM kenbun.consume_changes('order')", &[]);
    }
}

/// (c) prune_changes never blocks a writer: while it deletes a large backlog (and after, while its
/// transaction stays open) writers log changes under statement_timeout, and a poll does not wait
/// for the prune either. It stops at a consumer's position. A second prune at the same time returns
/// 0 at once with a NOTICE.
#[test]
fn prune_does_not_block_writers() {
    dsn_or_skip!();
    const DB: &str = "kenbun_changes_prune";
    let mut c = fresh(DB, 60);
    c.batch_execute(
        "INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason, changed_at)
         SELECT 1, 'lead', (1 + g % 60)::text, CASE WHEN g % 2 = 0 THEN 'enter' ELSE 'exit' END, 'data_change',
                now() - interval '60 days'
           FROM generate_series(1, 300000) g;",
    )
    .unwrap();
    // a consumer that has consumed half of them: the prune keeps the other half
    c.batch_execute(
        "SELECT kenbun.register_consumer('halfway', from_now => false);
         UPDATE kenbun.change_consumers SET position = (SELECT min(id) + 149999 FROM kenbun.membership_changes);",
    )
    .unwrap();
    let old: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.membership_changes
              WHERE changed_at < now() - interval '30 days' AND id <= (SELECT position FROM kenbun.change_consumers)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(old, 150000);
    let pruning = Arc::new(AtomicBool::new(true));
    let started = Arc::new(Barrier::new(2));
    let pruner = {
        let pruning = pruning.clone();
        let started = started.clone();
        thread::spawn(move || {
            let mut p = connect(DB);
            p.batch_execute("BEGIN").unwrap();
            started.wait();
            let t = Instant::now();
            let n: i64 = p
                .query_one("SELECT kenbun.prune_changes('30 days')", &[])
                .unwrap()
                .get(0);
            let took = t.elapsed();
            // the transaction stays open a while with every deleted row locked
            thread::sleep(Duration::from_millis(1500));
            pruning.store(false, Ordering::SeqCst);
            p.batch_execute("COMMIT").unwrap();
            (n, took)
        })
    };
    let mut w = connect(DB);
    w.batch_execute("SET statement_timeout = '1s'").unwrap();
    let (mut poll, _) = connect_with_notices(DB);
    poll.batch_execute("SET statement_timeout = '1s'").unwrap();
    started.wait();
    let (mut writes, mut slowest) = (0, Duration::ZERO);
    let mut k = 0;
    while pruning.load(Ordering::SeqCst) {
        k = k % 60 + 1;
        let t = Instant::now();
        w.batch_execute(&format!(
            "BEGIN; UPDATE leads SET score = 100 - score WHERE id = {k}; COMMIT;"
        ))
        .unwrap_or_else(|e| {
            panic!(
                "a write waited for the prune: {}",
                e.as_db_error().map(|d| d.message()).unwrap_or("?")
            )
        });
        let top = max_id(&mut w);
        slowest = slowest.max(t.elapsed());
        writes += 1;
        let t = Instant::now();
        let got = since(&mut poll, top - 1);
        assert_eq!(got, vec![top], "the poll");
        slowest = slowest.max(t.elapsed());
        thread::sleep(Duration::from_millis(5));
    }
    // a second prune while the first is open: returns at once
    let (mut q, notices) = connect_with_notices(DB);
    let (n, took) = pruner.join().unwrap();
    assert_eq!(n, old, "pruned");
    eprintln!("prune: {n} changes in {took:?}; {writes} writes and polls meanwhile, slowest {slowest:?}");
    assert!(writes >= 5, "only {writes} writes while pruning");
    assert!(slowest < Duration::from_millis(900), "a write or poll took {slowest:?}");
    let left: i64 = c
        .query_one("SELECT count(*) FROM kenbun.membership_changes", &[])
        .unwrap()
        .get(0);
    assert!(left >= 150000 + writes, "{left} changes left after {writes} writes");
    // the consumer gets every change it had not consumed, the first one first
    let next = ids(&mut c, "SELECT id FROM kenbun.consume_changes('halfway', 1)", &[]);
    let pos: i64 = c
        .query_one("SELECT min(id) FROM kenbun.membership_changes", &[])
        .unwrap()
        .get(0);
    assert_eq!(next, vec![pos]);
    c.batch_execute("SELECT kenbun.drop_consumer('halfway')").unwrap();

    let mut p = connect(DB);
    p.batch_execute("BEGIN; SELECT kenbun.prune_changes('0')").unwrap();
    let t = Instant::now();
    let n: i64 = q.query_one("SELECT kenbun.prune_changes('0')", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(
        notices.lock().unwrap().iter().any(|m| m.contains("already running")),
        "{:?}",
        notices.lock().unwrap()
    );
    p.batch_execute("ROLLBACK").unwrap();
}

/// One decoded transaction: (id, member, change) of each insert into kenbun.membership_changes,
/// and whether the transaction deleted from it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tx {
    inserts: Vec<(i64, String, String)>,
    deletes: usize,
    other_tables: BTreeSet<String>,
}

/// Parses test_decoding output (include-xids 0): BEGIN, "table s.t: INSERT: col[type]:value …", COMMIT.
fn parse_test_decoding(lines: &[String]) -> Vec<Tx> {
    let mut out = vec![];
    let mut cur: Option<Tx> = None;
    for l in lines {
        let l = l.trim_end();
        if l.starts_with("BEGIN") {
            cur = Some(Tx::default());
        } else if l.starts_with("COMMIT") {
            out.push(cur.take().expect("COMMIT without BEGIN"));
        } else if let Some(rest) = l.strip_prefix("table ") {
            let tx = cur.as_mut().expect("change outside a transaction");
            let (table, rest) = rest.split_once(": ").unwrap();
            if table != "kenbun.membership_changes" {
                tx.other_tables.insert(table.to_string());
                continue;
            }
            if rest.starts_with("DELETE") {
                tx.deletes += 1;
                continue;
            }
            assert!(rest.starts_with("INSERT: "), "{l}");
            let field = |name: &str| -> String {
                let key = format!("{name}[");
                let at = rest.find(&key).unwrap_or_else(|| panic!("{name} in {l}"));
                let v = &rest[at..];
                let v = &v[v.find(':').unwrap() + 1..];
                if let Some(q) = v.strip_prefix('\'') {
                    q[..q.find('\'').unwrap()].to_string()
                } else {
                    v.split(' ').next().unwrap().to_string()
                }
            };
            tx.inserts
                .push((field("id").parse().unwrap(), field("member_id"), field("change")));
        }
    }
    out.into_iter().filter(|t| t != &Tx::default()).collect()
}

/// Parses pgoutput messages (proto_version 1): B, R, I, U, D, T, C.
fn parse_pgoutput(msgs: &[Vec<u8>]) -> Vec<Tx> {
    fn i32_at(b: &[u8], at: usize) -> i32 {
        i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn cstr(b: &[u8], at: &mut usize) -> String {
        let end = *at + b[*at..].iter().position(|x| *x == 0).unwrap();
        let s = String::from_utf8(b[*at..end].to_vec()).unwrap();
        *at = end + 1;
        s
    }
    let mut relations: BTreeMap<i32, String> = BTreeMap::new();
    let mut out = vec![];
    let mut cur: Option<Tx> = None;
    for m in msgs {
        match m[0] {
            b'B' => cur = Some(Tx::default()),
            b'C' => out.push(cur.take().expect("commit without begin")),
            b'R' => {
                let id = i32_at(m, 1);
                let mut at = 5;
                let nsp = cstr(m, &mut at);
                let rel = cstr(m, &mut at);
                relations.insert(id, format!("{nsp}.{rel}"));
            }
            b'I' => {
                let rel = relations[&i32_at(m, 1)].clone();
                let tx = cur.as_mut().unwrap();
                if rel != "kenbun.membership_changes" {
                    tx.other_tables.insert(rel);
                    continue;
                }
                assert_eq!(m[5], b'N');
                let n = i16::from_be_bytes([m[6], m[7]]) as usize;
                let mut at = 8;
                let mut cols = vec![];
                for _ in 0..n {
                    let kind = m[at];
                    at += 1;
                    if kind == b't' {
                        let len = i32_at(m, at) as usize;
                        at += 4;
                        cols.push(String::from_utf8(m[at..at + len].to_vec()).unwrap());
                        at += len;
                    } else {
                        cols.push(String::new());
                    }
                }
                // id, segment_id, kind, member_id, change, …
                tx.inserts
                    .push((cols[0].parse().unwrap(), cols[3].clone(), cols[4].clone()));
            }
            b'D' | b'U' | b'T' => {
                let tx = cur.as_mut().unwrap();
                let rels: Vec<String> = if m[0] == b'T' {
                    vec!["truncate".into()]
                } else {
                    vec![relations.get(&i32_at(m, 1)).cloned().unwrap_or_default()]
                };
                for r in rels {
                    if r == "kenbun.membership_changes" {
                        tx.deletes += 1;
                    } else {
                        tx.other_tables.insert(r);
                    }
                }
            }
            _ => {}
        }
    }
    out.into_iter().filter(|t| t != &Tx::default()).collect()
}

/// Drops the test's replication slots when it ends, also when it fails (a slot left behind holds
/// back WAL for the whole cluster).
struct Slots(Vec<String>);
impl Drop for Slots {
    fn drop(&mut self) {
        if let Ok(mut admin) = db::try_connect("postgres", "") {
            for s in &self.0 {
                let _ = admin.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[s],
                );
            }
        }
    }
}

/// (d) Logical decoding: enters and exits of kenbun.membership_changes come out of a slot in commit
/// order (not id order) with their member ids — through test_decoding in SQL, through pg_recvlogical,
/// and through pgoutput with kenbun.create_publication, which publishes the inserts only (not the
/// deletes of prune_changes, not the bound table).
#[test]
fn logical_decoding_streams_the_changes_in_commit_order() {
    dsn_or_skip!();
    const DB: &str = "kenbun_changes_decoding";
    let mut admin = connect("postgres");
    let wal: String = admin.query_one("SHOW wal_level", &[]).unwrap().get(0);
    assert_eq!(
        wal, "logical",
        "the private cluster needs wal_level = logical: bash scripts/cluster.sh restart"
    );
    let names = ["kenbun_test_decoding", "kenbun_test_pgoutput", "kenbun_test_recv"];
    for s in names {
        admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&s],
            )
            .unwrap();
    }
    let mut c = fresh(DB, 10);
    c.batch_execute("SELECT kenbun.create_publication()").unwrap();
    let _slots = Slots(names.iter().map(|s| s.to_string()).collect());
    for (slot, plugin) in [
        ("kenbun_test_decoding", "test_decoding"),
        ("kenbun_test_pgoutput", "pgoutput"),
        ("kenbun_test_recv", "test_decoding"),
    ] {
        // each in a transaction of its own
        c.execute("SELECT pg_create_logical_replication_slot($1, $2)", &[&slot, &plugin])
            .unwrap();
    }

    // A enters leads 1 and 2 (smaller ids), B enters lead 3 and commits first, then A exits lead 1
    let mut a = connect(DB);
    let mut b = connect(DB);
    a.batch_execute("BEGIN; UPDATE leads SET score = 100 WHERE id IN (1, 2)")
        .unwrap();
    b.batch_execute("BEGIN; UPDATE leads SET score = 100 WHERE id = 3; COMMIT")
        .unwrap();
    a.batch_execute("UPDATE leads SET score = 0 WHERE id = 1; UPDATE leads SET score = 10 WHERE id = 4; COMMIT")
        .unwrap();
    // retention afterwards: deletes
    c.batch_execute("SELECT kenbun.prune_changes('0')").unwrap();
    let end_lsn: String = c
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .unwrap()
        .get(0);
    // a record after the end position, for pg_recvlogical to see that it got there; committed with
    // synchronous_commit on, so the WAL before it is flushed (the private cluster runs with it off,
    // and decoding reads only flushed WAL)
    c.batch_execute("SET synchronous_commit = on").unwrap();
    c.batch_execute("INSERT INTO other VALUES (2)").unwrap();
    c.batch_execute("RESET synchronous_commit").unwrap();
    let expect = |txs: &[Tx], how: &str| {
        let changes: Vec<Vec<(String, String)>> = txs
            .iter()
            .filter(|t| !t.inserts.is_empty())
            .map(|t| t.inserts.iter().map(|(_, m, ch)| (m.clone(), ch.clone())).collect())
            .collect();
        let e = |m: &str, ch: &str| (m.to_string(), ch.to_string());
        // the initial fill of "hot" is empty (every score 0); B first, then A
        assert_eq!(
            changes,
            vec![
                vec![e("3", "enter")],
                vec![e("1", "enter"), e("2", "enter"), e("1", "exit")]
            ],
            "{how}: {txs:?}"
        );
        let b_id = txs.iter().find(|t| t.inserts.len() == 1).unwrap().inserts[0].0;
        let a_first = txs.iter().find(|t| t.inserts.len() == 3).unwrap().inserts[0].0;
        assert!(a_first < b_id, "{how}: A's ids are smaller, yet it commits second");
    };

    // test_decoding through SQL: every table, deletes included
    let lines: Vec<String> = c
        .query(
            "SELECT data FROM pg_logical_slot_get_changes('kenbun_test_decoding', NULL, NULL, 'include-xids', '0', 'skip-empty-xacts', '1')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let txs = parse_test_decoding(&lines);
    expect(&txs, "test_decoding");
    assert_eq!(
        txs.iter().map(|t| t.deletes).sum::<usize>(),
        4,
        "prune's deletes: {txs:?}"
    );
    assert!(txs.iter().any(|t| t.other_tables.contains("public.leads")));

    // pgoutput with the publication: inserts into the change log only
    let msgs: Vec<Vec<u8>> = c
        .query(
            "SELECT data FROM pg_logical_slot_get_binary_changes('kenbun_test_pgoutput', NULL, NULL,
                     'proto_version', '1', 'publication_names', 'kenbun_changes')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let txs = parse_pgoutput(&msgs);
    expect(&txs, "pgoutput");
    assert!(
        txs.iter().all(|t| t.deletes == 0 && t.other_tables.is_empty()),
        "pgoutput: {txs:?}"
    );

    // pg_recvlogical, as the server's user when the tests run as root
    if let Ok(bin) = std::env::var("KENBUN_PG_BIN") {
        let path = format!("{bin}/pg_recvlogical");
        let conn = format!("{} dbname={DB}", dsn().unwrap());
        let args = [
            "-d",
            &conn,
            "--slot",
            "kenbun_test_recv",
            "--start",
            "--no-loop",
            "--endpos",
            &end_lsn,
            "-f",
            "-",
            "-o",
            "include-xids=0",
            "-o",
            "skip-empty-xacts=1",
        ];
        let mut cmd = match std::env::var("KENBUN_RUN_AS").ok().filter(|u| !u.is_empty()) {
            Some(u) => {
                let mut x = Command::new("runuser");
                x.args(["-u", &u, "--", &path]);
                x
            }
            None => Command::new(&path),
        };
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("pg_recvlogical did not stop at {end_lsn}");
            }
            thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pg_recvlogical: {stderr}");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        let txs = parse_test_decoding(&lines);
        expect(&txs, "pg_recvlogical");
    } else {
        eprintln!("KENBUN_PG_BIN not set: pg_recvlogical part skipped");
    }
    drop(_slots);
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kenbun\\_test\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "slots left behind");
}

/// (e) The publication and the consumers across pg_dump/pg_restore: the restore succeeds without an
/// error or warning, the consumers keep their positions and go on from there, and the publication
/// is restored empty (pg_dump does not dump which publications an extension's table is in), so
/// create_publication adds the change log to it again.
#[test]
fn publication_and_consumers_survive_dump_and_restore() {
    dsn_or_skip!();
    let (Ok(bin), Ok(dir)) = (std::env::var("KENBUN_PG_BIN"), std::env::var("KENBUN_DUMP_DIR")) else {
        eprintln!("KENBUN_PG_BIN or KENBUN_DUMP_DIR not set: skipped");
        return;
    };
    let run_as = std::env::var("KENBUN_RUN_AS").ok().filter(|u| !u.is_empty());
    let run = |program: &str, args: &[&str]| {
        let path = format!("{bin}/{program}");
        let mut cmd = match &run_as {
            Some(u) => {
                let mut x = Command::new("runuser");
                x.args(["-u", u, "--", &path]);
                x
            }
            None => Command::new(&path),
        };
        let out = cmd.args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && err.trim().is_empty(),
            "{program} {args:?}: {err}"
        );
    };
    const SRC: &str = "kenbun_changes_dump";
    const DST: &str = "kenbun_changes_restored";
    let mut c = fresh(SRC, 10);
    // (each its own transaction)
    for sql in [
        "SELECT kenbun.create_publication()",
        "SELECT kenbun.register_consumer('early', from_now => false)",
        "UPDATE leads SET score = 100 WHERE id <= 4",
        "SELECT kenbun.register_consumer('late')",
        "UPDATE leads SET score = 0 WHERE id = 1",
    ] {
        c.batch_execute(sql).unwrap();
    }
    ids(&mut c, "SELECT id FROM kenbun.consume_changes('early', 2)", &[]);
    let positions = |c: &mut Client| -> Vec<(String, i64)> {
        c.query("SELECT name, position FROM kenbun.change_consumers ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = positions(&mut c);
    let file = format!("{dir}/{SRC}.custom");
    let _ = std::fs::remove_file(&file);
    let conninfo = |db: &str| format!("{} dbname={db}", dsn().unwrap());
    run("pg_dump", &["-Fc", "-f", &file, "-d", &conninfo(SRC)]);
    recreate_database(DST);
    run("pg_restore", &["--exit-on-error", "-d", &conninfo(DST), &file]);
    let mut r = connect(DST);
    assert_eq!(positions(&mut r), before);
    let published = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'kenbun_changes' AND tablename = 'membership_changes'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let exists: i64 = r
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = 'kenbun_changes' AND pubinsert AND NOT pubdelete",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(exists, 1, "the publication is restored");
    assert_eq!(
        published(&mut r),
        0,
        "pg_dump is expected to leave the extension's table out of the publication"
    );
    r.batch_execute("SELECT kenbun.create_publication()").unwrap();
    assert_eq!(published(&mut r), 1);
    // the consumers go on from their positions, in both databases alike
    let rest_src = ids(&mut c, "SELECT id FROM kenbun.consume_changes('early')", &[]);
    let rest_dst = ids(&mut r, "SELECT id FROM kenbun.consume_changes('early')", &[]);
    assert_eq!(rest_src, rest_dst);
    assert_eq!(rest_dst.len(), 3, "{rest_dst:?}");
    r.batch_execute("UPDATE leads SET score = 100 WHERE id = 9").unwrap();
    let late = ids(&mut r, "SELECT id FROM kenbun.consume_changes('late')", &[]);
    assert_eq!(late.len(), 2, "late: the exit of lead 1, the enter of lead 9: {late:?}");
    assert!(late[1] > *rest_dst.last().unwrap());
    drop(r);
    let _ = std::fs::remove_file(&file);
}
