//! What the live tests (live, soak, injection, fuzz_db) share: connections to the private cluster
//! (`KENBUN_TEST_DSN`, set by scripts/test.sh), a fresh database, and the two end-state checks.
#![allow(dead_code)]
use postgres::{Client, NoTls};

pub fn dsn() -> Option<String> {
    std::env::var("KENBUN_TEST_DSN").ok()
}

/// A connection to `db`; `params` are appended to the DSN (e.g. "application_name=kenbun_soak").
pub fn try_connect(db: &str, params: &str) -> Result<Client, postgres::Error> {
    let base = dsn().expect("KENBUN_TEST_DSN is not set");
    Client::connect(&format!("{base} dbname={db} {params}"), NoTls)
}

pub fn connect(db: &str) -> Client {
    try_connect(db, "").unwrap_or_else(|e| panic!("connect {db}: {e}"))
}

/// Drops database `db` (disconnecting its sessions) and creates it empty.
pub fn recreate_database(db: &str) {
    let mut admin = connect("postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
}

/// (segment, problem, member) of segment_drift over every segment that is not time-dependent and not
/// building (0.5.0: a batched build is under way; read through to_jsonb for older versions).
pub fn drift_rows(c: &mut Client) -> Vec<(String, String, String)> {
    c.query(
        "SELECT s.name, d.problem, d.member_id FROM kenbun.segments s, kenbun.segment_drift(s.name) d
          WHERE NOT s.time_dependent AND pg_catalog.to_jsonb(s) ->> 'status' IS DISTINCT FROM 'building' ORDER BY 1, 2, 3",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// (segment id, member, "log only" | "table only"): where the change log, replayed (last change per
/// segment and member), disagrees with the membership tables.
pub fn replay_mismatches(c: &mut Client) -> Vec<(i64, String, String)> {
    c.query(
        r#"WITH last AS (
             SELECT DISTINCT ON (segment_id, member_id) segment_id, member_id, change
               FROM kenbun.membership_changes ORDER BY segment_id, member_id, id DESC),
           replayed AS (SELECT segment_id, member_id FROM last WHERE change = 'enter'),
           actual AS (SELECT segment_id, lead_id::text AS member_id FROM kenbun.lead_members
                      UNION ALL SELECT segment_id, account_id::text FROM kenbun.account_members)
           SELECT segment_id, member_id, 'log only' FROM (SELECT * FROM replayed EXCEPT SELECT * FROM actual) a
           UNION ALL
           SELECT segment_id, member_id, 'table only' FROM (SELECT * FROM actual EXCEPT SELECT * FROM replayed) b
           ORDER BY 1, 2"#,
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}
