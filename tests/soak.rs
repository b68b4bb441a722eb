//! Concurrent soak test against the installed extension in the private cluster (`make soak`).
//!
//! 8 clients run for KENBUN_SOAK_SECS seconds (default 15) in database `kenbun_soak`, READ
//! COMMITTED (KENBUN_SOAK_ISOLATION to change it), mixing:
//! - data writes: lead inserts, updates, deletes, re-keys, upserts and MERGE, leads moving between
//!   accounts, account inserts, updates, re-keys and deletes (the foreign key's ON UPDATE CASCADE /
//!   ON DELETE SET NULL update leads from inside the accounts statement), event inserts, COPY,
//!   updates and deletes, bulk statements above the 32-row threshold, multi-statement transactions
//!   with savepoints, a foreign-key error caught inside a PL/pgSQL block, deliberate rollbacks, and
//!   an application trigger that raises a lead's score when a demo event is inserted;
//! - reads: preview, count, members, compare, export, lead_segments;
//! - definition changes: rule edits that cascade to dependent segments, activations and
//!   deactivations, deletions and re-creations, copies, refreshes, level and field redefinitions.
//!
//! A transaction is retried only on SQLSTATE 40001 or 40P01; any other error fails the test. During
//! the run a monitor checks, every 2 s in one snapshot of the committed state, that no segment
//! drifts, no compiled rule is stale and no reference dangles. After the run: segment_drift is empty
//! for every non-time-dependent segment (and for the time-dependent one right after a refresh), the
//! change log replays to the membership, no membership row belongs to a missing segment, NOTIFY
//! delivered exactly the logged changes, and the server log (KENBUN_SERVER_LOG) shows no crashed
//! backend. Without KENBUN_TEST_DSN it skips.
use postgres::fallible_iterator::FallibleIterator;
#[path = "common/db.rs"]
mod db;

use db::{drift_rows, dsn, recreate_database, replay_mismatches};
use postgres::Client;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const DB: &str = "kenbun_soak";
const CLIENTS: usize = 8;
const INITIAL_ACCOUNTS: i64 = 40;
const INITIAL_LEADS: i64 = 600;
/// Leads 1..=PROTECTED_LEADS are never deleted or re-keyed: upserts and MERGE target them.
const PROTECTED_LEADS: i64 = 200;
/// The few leads and accounts that a large share of the statements touch, so that they contend.
const HOT_LEADS: i64 = 16;
const HOT_ACCOUNTS: i64 = 4;
/// Segments each client owns, named c<client>_s<slot>: slots 0-2 are lead segments, slot 3 an
/// account segment. A slot may reference a lower slot of the same client.
const SLOTS: usize = 4;
/// Give up on a transaction (and fail) after this many deadlocks or serialization failures in a row.
const MAX_ATTEMPTS: u32 = 200;

fn connect(db: &str) -> Result<Client, postgres::Error> {
    db::try_connect(db, "application_name=kenbun_soak")
}

fn connect_client() -> Client {
    let mut c = connect(DB).unwrap_or_else(|e| panic!("connect {DB}: {e}"));
    c.batch_execute(&session()).unwrap();
    c
}

/// KENBUN_SOAK_ISOLATION: the isolation level of the clients' transactions (default read committed,
/// the level kenbun maintains membership under; the monitor always reads in repeatable read).
fn isolation() -> String {
    let level = std::env::var("KENBUN_SOAK_ISOLATION").unwrap_or_else(|_| "read committed".into());
    let level = level.replace(['_', '-'], " ").to_lowercase();
    assert!(
        ["read committed", "repeatable read", "serializable"].contains(&level.as_str()),
        "KENBUN_SOAK_ISOLATION must be read committed, repeatable read or serializable"
    );
    level
}

fn session() -> String {
    format!("{SESSION}; SET default_transaction_isolation = '{}'", isolation())
}

/// Session settings of every client: a hang (an undetected lock cycle) becomes an error (57014)
/// instead of a stuck test, and deadlocks (segment changes lock every bound table, so they
/// deadlock with transactions that write several tables) are detected after 100 ms, not 1 s.
const SESSION: &str =
    "SET client_min_messages = warning; SET statement_timeout = '120s'; SET deadlock_timeout = '100ms'";

// ---------------------------------------------------------------------------------------------
// The segments

/// Shared segments, created at setup and never deleted or renamed. Rule edits pick one of the
/// variants; a variant references only segments listed before it, so no edit can make a cycle.
const BASE: &[(&str, &str, &[&str])] = &[
    (
        "hot",
        "lead",
        &[
            r#"{"level":"engagement","op":"gte","value":"Hot"}"#,
            r#"{"level":"engagement","op":"in","value":["Warm","Hot"]}"#,
            r#"{"field":"score","op":"between","value":[40,80]}"#,
            r#"{"all":[{"level":"engagement","op":"gte","value":"Warm"},{"field":"country","op":"neq","value":"DE"}]}"#,
        ],
    ),
    (
        "viewers",
        "lead",
        &[
            r#"{"event":{"type":"view","count":{"op":"gte","value":3}}}"#,
            r#"{"event":{"type":["view","click"],"count":{"op":"gte","value":2}}}"#,
            r#"{"event":{"type":"view","where":{"field":"metadata.url","op":"eq","value":"/pricing"}}}"#,
            r#"{"all":[{"event":{"type":"demo","count":{"op":"eq","value":0}}},{"event":{"type":"view"}}]}"#,
        ],
    ),
    (
        "us_saas",
        "lead",
        &[
            r#"{"all":[{"field":"country","op":"eq","value":"US"},{"account":{"field":"industry","op":"eq","value":"SaaS"}}]}"#,
            r#"{"any":[{"field":"country","op":"in","value":["US","CA"]},{"account":{"field":"employees","op":"gte","value":200}}]}"#,
            r#"{"account":{"field":"plan","op":"eq","value":"enterprise"}}"#,
            r#"{"not":{"account":{"field":"industry","op":"eq","value":"Retail"}}}"#,
        ],
    ),
    (
        "hot_viewers",
        "lead",
        &[
            r#"{"all":[{"segment":"hot"},{"segment":"viewers"}]}"#,
            r#"{"any":[{"segment":"hot"},{"segment":"viewers"}]}"#,
            r#"{"all":[{"segment":"hot"},{"not":{"segment":"viewers"}}]}"#,
            r#"{"all":[{"segment":"viewers"},{"field":"plan","op":"in","value":["pro","team"]}]}"#,
        ],
    ),
    (
        "chain",
        "lead",
        &[
            r#"{"any":[{"segment":"hot_viewers"},{"segment":"us_saas"}]}"#,
            r#"{"all":[{"segment":"hot_viewers"},{"field":"plan","op":"in","value":["pro","team"]}]}"#,
            r#"{"all":[{"segment":"us_saas"},{"not":{"segment":"hot_viewers"}}]}"#,
        ],
    ),
    (
        "big",
        "account",
        &[
            r#"{"field":"employees","op":"gte","value":500}"#,
            r#"{"field":"industry","op":"in","value":["SaaS","Fintech"]}"#,
            r#"{"all":[{"field":"plan","op":"eq","value":"enterprise"},{"field":"employees","op":"gte","value":100}]}"#,
        ],
    ),
    (
        "hot_accounts",
        "account",
        &[
            r#"{"leads":{"where":{"segment":"hot"},"count":{"op":"gte","value":2}}}"#,
            r#"{"leads":{"where":{"segment":"chain"}}}"#,
            r#"{"all":[{"segment":"big"},{"leads":{"where":{"segment":"viewers"}}}]}"#,
        ],
    ),
    (
        "busy",
        "account",
        &[
            r#"{"leads":{"count":{"op":"gte","value":15}}}"#,
            r#"{"leads":{"where":{"event":{"type":"view"}},"count":{"op":"gte","value":3}}}"#,
            r#"{"leads":{"where":{"field":"score","op":"gte","value":90},"count":{"op":"eq","value":0}}}"#,
        ],
    ),
    // lead rules over the lead's account's leads: a change to one lead or its events re-evaluates its
    // siblings, under the account's lock
    (
        "hot_team",
        "lead",
        &[
            r#"{"account":{"leads":{"where":{"segment":"hot"},"count":{"op":"gte","value":2}}}}"#,
            r#"{"account":{"segment":"busy"}}"#,
            r#"{"all":[{"field":"country","op":"neq","value":"DE"},{"account":{"leads":{"where":{"event":{"type":"view"}},"count":{"op":"gte","value":2}}}}]}"#,
        ],
    ),
    // the one time-dependent segment (not checked for drift; refreshed by the "refresh" operation)
    (
        "recent",
        "lead",
        &[
            r#"{"field":"last_seen_at","op":"within_last","value":"10 minutes"}"#,
            r#"{"field":"last_seen_at","op":"within_last","value":"1 hour"}"#,
        ],
    ),
];

/// Base lead segments a client segment may reference (not "recent": it would make it time-dependent).
const BASE_LEAD_REFS: &[&str] = &["hot", "viewers", "us_saas", "hot_viewers", "chain"];
const BASE_ACCOUNT_REFS: &[&str] = &["big", "hot_accounts", "busy"];

const LEAD_RULES: &[&str] = &[
    r#"{"field":"country","op":"in","value":["US","CA"]}"#,
    r#"{"level":"engagement","op":"gte","value":"Warm"}"#,
    r#"{"all":[{"field":"score","op":"between","value":[20,70]},{"not":{"field":"country","op":"eq","value":"DE"}}]}"#,
    r#"{"account":{"field":"industry","op":"eq","value":"SaaS"}}"#,
    r#"{"account":{"any":[{"field":"employees","op":"gte","value":300},{"field":"plan","op":"eq","value":"enterprise"}]}}"#,
    r#"{"event":{"type":"view","count":{"op":"gte","value":2}}}"#,
    r#"{"event":{"type":["click","signup"],"where":{"field":"metadata.url","op":"starts_with","value":"/pricing"}}}"#,
    r#"{"event":{"type":"demo","count":{"op":"eq","value":0}}}"#,
    r#"{"field":"plan","op":"in","value":["pro","team"]}"#,
    r#"{"field":"attributes.newsletter","op":"eq","value":true}"#,
    r#"{"not":{"account":{"field":"industry","op":"eq","value":"Retail"}}}"#,
    r#"{"any":[{"level":"engagement","op":"eq","value":"On Fire"},{"all":[{"event":{"type":"view"}},{"account":{"field":"employees","op":"lt","value":100}}]}]}"#,
    r#"{"all":[{"level":"engagement","op":"neq","value":"Cold"},{"event":{"type":"click","count":{"op":"lt","value":3}}},{"field":"attributes.plan","op":"is_set"}]}"#,
];

/// Lead rules over another lead segment (REF).
const LEAD_REF_RULES: &[&str] = &[
    r#"{"all":[{"segment":"REF"},{"field":"country","op":"neq","value":"FR"}]}"#,
    r#"{"any":[{"segment":"REF"},{"level":"engagement","op":"eq","value":"Hot"}]}"#,
    r#"{"not":{"segment":"REF"}}"#,
    r#"{"all":[{"segment":"REF"},{"account":{"field":"industry","op":"eq","value":"SaaS"}}]}"#,
    r#"{"all":[{"segment":"REF"},{"event":{"type":"click"}}]}"#,
];

const ACCOUNT_RULES: &[&str] = &[
    r#"{"field":"industry","op":"in","value":["SaaS","Fintech"]}"#,
    r#"{"leads":{"count":{"op":"gte","value":12}}}"#,
    r#"{"leads":{"where":{"level":"engagement","op":"gte","value":"Hot"},"count":{"op":"gte","value":2}}}"#,
    r#"{"leads":{"where":{"event":{"type":"view","count":{"op":"gte","value":2}}},"count":{"op":"gte","value":3}}}"#,
    r#"{"all":[{"field":"employees","op":"gte","value":200},{"leads":{"where":{"field":"country","op":"eq","value":"US"}}}]}"#,
    r#"{"leads":{"where":{"field":"score","op":"gte","value":90},"count":{"op":"eq","value":0}}}"#,
];

/// Account rules over a lead segment (REF).
const ACCOUNT_LEAD_REF_RULES: &[&str] = &[
    r#"{"leads":{"where":{"segment":"REF"},"count":{"op":"gte","value":2}}}"#,
    r#"{"any":[{"field":"industry","op":"eq","value":"SaaS"},{"leads":{"where":{"not":{"segment":"REF"}},"count":{"op":"gte","value":5}}}]}"#,
];

/// Account rules over another account segment (REF).
const ACCOUNT_ACCOUNT_REF_RULES: &[&str] = &[
    r#"{"all":[{"segment":"REF"},{"field":"employees","op":"gte","value":50}]}"#,
    r#"{"any":[{"segment":"REF"},{"field":"plan","op":"eq","value":"free"}]}"#,
];

/// Tier variants of the level "engagement" (same names, other bounds): redefining it recompiles
/// and recomputes every segment.
const TIERS: &[&str] = &[
    r#"[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]"#,
    r#"[{"name":"Cold","min":0},{"name":"Warm","min":30},{"name":"Hot","min":60},{"name":"On Fire","min":85}]"#,
    r#"[{"name":"Cold","min":5},{"name":"Warm","min":20},{"name":"Hot","min":45},{"name":"On Fire","min":70}]"#,
];
const COUNTRIES: &[&str] = &["US", "CA", "DE", "FR", "GB"];
const INDUSTRIES: &[&str] = &["SaaS", "Retail", "Fintech", "Health"];
const PLANS: &[&str] = &["free", "pro", "enterprise"];
const EVENT_TYPES: &[&str] = &["view", "view", "view", "click", "signup", "demo"];
const URLS: &[&str] = &["/pricing", "/docs", "/pricing/enterprise", "/blog"];
const ATTRIBUTES: &[&str] = &[
    r#"{"plan":"pro","newsletter":true}"#,
    r#"{"plan":"team","newsletter":false}"#,
    r#"{"plan":"free","tier":"pro"}"#,
    r#"{"newsletter":true}"#,
    r#"{}"#,
];

/// The operations and their weights (out of the sum).
const OPS: &[(&str, u64)] = &[
    ("lead insert", 16),
    ("lead update", 28),
    ("lead move", 18),
    ("lead delete", 8),
    ("lead re-key", 4),
    ("lead upsert", 6),
    ("lead merge", 6),
    ("bulk update", 6),
    ("account insert", 2),
    ("account re-key", 2),
    ("account delete", 1),
    ("account update", 16),
    ("event insert", 28),
    ("event copy", 4),
    ("event update", 4),
    ("event delete", 6),
    ("mixed tx", 8),
    ("caught fk error", 4),
    ("rollback", 4),
    ("read", 8),
    // segment definition changes lock every bound table: rarer, as in real use (about 6%)
    ("rule edit", 4),
    ("segment on/off", 2),
    ("segment create", 2),
    ("segment delete", 2),
    ("segment copy", 1),
    ("segment refresh", 1),
    ("levels/field edit", 1),
];

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// The workload

struct Shared {
    next_lead: AtomicI64,
    next_account: AtomicI64,
    /// Accounts known to be committed (leads reference them through a foreign key).
    accounts: Mutex<Vec<i64>>,
    abort: AtomicBool,
    /// The clients are done: the monitor stops.
    stop: AtomicBool,
}

#[derive(Clone, Copy)]
struct Slot {
    /// The lower slot of the same client this segment references, if any.
    refs: Option<usize>,
}

enum After {
    Nothing,
    AccountAdded(i64),
    PrivateAccountAdded(i64),
    PrivateAccountDeleted(i64),
    SlotSet(usize, Slot),
    SlotDeleted(usize),
}

struct Op {
    kind: &'static str,
    sql: String,
    /// (COPY statement, data) run after `sql` in the same transaction.
    copy: Option<(String, String)>,
    after: After,
}

struct Gen {
    t: usize,
    seed: u64,
    sh: Arc<Shared>,
    slots: [Option<Slot>; SLOTS],
    /// Accounts this client created under a key it then changed: no other client knows them, so
    /// re-keying and deleting them cannot break another client's foreign key.
    private_accounts: Vec<i64>,
}

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as i64) as usize]
    }

    fn lead(&mut self) -> i64 {
        if self.chance(40) {
            1 + self.below(HOT_LEADS)
        } else {
            1 + self.below(self.sh.next_lead.load(Ordering::Relaxed) - 1)
        }
    }
    fn protected_lead(&mut self) -> i64 {
        if self.chance(50) {
            1 + self.below(HOT_LEADS)
        } else {
            1 + self.below(PROTECTED_LEADS)
        }
    }
    fn unprotected_lead(&mut self) -> i64 {
        let top = self.sh.next_lead.load(Ordering::Relaxed) - 1;
        PROTECTED_LEADS + 1 + self.below(top - PROTECTED_LEADS)
    }
    fn fresh_leads(&self, n: i64) -> i64 {
        self.sh.next_lead.fetch_add(n, Ordering::Relaxed)
    }
    fn account(&mut self) -> i64 {
        if self.chance(40) {
            return 1 + self.below(HOT_ACCOUNTS);
        }
        let r = self.next();
        let v = self.sh.accounts.lock().unwrap();
        v[(r % v.len() as u64) as usize]
    }
    fn account_or_null(&mut self) -> String {
        if self.chance(10) {
            "NULL".into()
        } else {
            self.account().to_string()
        }
    }
    fn lead_row(&mut self, id: i64) -> String {
        let acc = self.account_or_null();
        let country = self.pick(COUNTRIES);
        let score = self.below(100);
        let ago = self.below(120);
        let attrs = self.pick(ATTRIBUTES);
        format!("({id}, {acc}, '{country}', {score}, now() - interval '{ago} minutes', '{attrs}')")
    }
    fn event_row(&mut self, lead: i64) -> String {
        let ty = self.pick(EVENT_TYPES);
        let ago = self.below(600);
        let url = self.pick(URLS);
        format!("({lead}, '{ty}', now() - interval '{ago} minutes', '{{\"url\":\"{url}\"}}')")
    }
    fn lead_set(&mut self) -> String {
        match self.below(6) {
            0 | 1 => format!("score = {}", self.below(100)),
            2 => format!("score = (score + {}) % 100", 1 + self.below(30)),
            3 => format!("country = '{}'", self.pick(COUNTRIES)),
            4 => format!("attributes = '{}', last_seen_at = now()", self.pick(ATTRIBUTES)),
            _ => format!("score = {}, country = '{}'", self.below(100), self.pick(COUNTRIES)),
        }
    }

    fn slot_name(&self, k: usize) -> String {
        format!("c{}_s{}", self.t, k)
    }
    /// A rule for slot k and the lower own slot it references. Slots 0-2 are lead segments,
    /// slot 3 an account segment.
    fn slot_rule(&mut self, k: usize) -> (String, Option<usize>) {
        let own: Vec<usize> = (0..k.min(3)).filter(|&j| self.slots[j].is_some()).collect();
        let own_ref = if own.is_empty() {
            None
        } else {
            Some(own[self.below(own.len() as i64) as usize])
        };
        let r = self.below(10);
        if k < 3 {
            match (r, own_ref) {
                (0..=3, _) => (self.pick(LEAD_RULES).to_string(), None),
                (7..=9, Some(j)) => {
                    let name = self.slot_name(j);
                    (self.pick(LEAD_REF_RULES).replace("REF", &name), Some(j))
                }
                _ => {
                    let base = self.pick(BASE_LEAD_REFS);
                    (self.pick(LEAD_REF_RULES).replace("REF", base), None)
                }
            }
        } else {
            match (r, own_ref) {
                (0..=2, _) => (self.pick(ACCOUNT_RULES).to_string(), None),
                (3, _) => {
                    let base = self.pick(BASE_ACCOUNT_REFS);
                    (self.pick(ACCOUNT_ACCOUNT_REF_RULES).replace("REF", base), None)
                }
                (6..=9, Some(j)) => {
                    let name = self.slot_name(j);
                    (self.pick(ACCOUNT_LEAD_REF_RULES).replace("REF", &name), Some(j))
                }
                _ => {
                    let base = self.pick(BASE_LEAD_REFS);
                    (self.pick(ACCOUNT_LEAD_REF_RULES).replace("REF", base), None)
                }
            }
        }
    }
    fn slot_has_users(&self, k: usize) -> bool {
        self.slots.iter().flatten().any(|s| s.refs == Some(k))
    }

    fn op(&mut self) -> Op {
        let total: u64 = OPS.iter().map(|(_, w)| w).sum();
        let mut r = self.next() % total;
        let mut kind = OPS[0].0;
        for (k, w) in OPS {
            if r < *w {
                kind = k;
                break;
            }
            r -= w;
        }
        let mut after = After::Nothing;
        let mut copy = None;
        let body = match kind {
            "lead insert" => {
                let n = match self.below(10) {
                    0..=6 => 1,
                    7 | 8 => 2 + self.below(4),
                    _ => 40,
                };
                let first = self.fresh_leads(n);
                let rows: Vec<String> = (first..first + n).map(|id| self.lead_row(id)).collect();
                format!("INSERT INTO leads VALUES {};", rows.join(", "))
            }
            "lead update" => {
                let set = self.lead_set();
                let id = self.lead();
                format!("UPDATE leads SET {set} WHERE id = {id};")
            }
            "lead move" => {
                if self.chance(20) {
                    // a few leads of one account at once
                    let (from, to) = (self.account(), self.account_or_null());
                    format!("UPDATE leads SET account_id = {to} WHERE id IN (SELECT id FROM leads WHERE account_id = {from} ORDER BY id LIMIT 3);")
                } else {
                    let to = self.account_or_null();
                    let id = self.lead();
                    format!("UPDATE leads SET account_id = {to} WHERE id = {id};")
                }
            }
            "lead delete" => {
                let ids: Vec<String> = (0..1 + self.below(3))
                    .map(|_| self.unprotected_lead().to_string())
                    .collect();
                format!("DELETE FROM leads WHERE id IN ({});", ids.join(", "))
            }
            "lead re-key" => {
                let (old, new) = (self.unprotected_lead(), self.fresh_leads(1));
                format!("UPDATE leads SET id = {new} WHERE id = {old};")
            }
            "lead upsert" => {
                let (p, f) = (self.protected_lead(), self.fresh_leads(1));
                let rows = [self.lead_row(p), self.lead_row(f)];
                format!(
                    "INSERT INTO leads VALUES {} ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score, country = EXCLUDED.country, account_id = EXCLUDED.account_id;",
                    rows.join(", ")
                )
            }
            "lead merge" => {
                let (p, f) = (self.protected_lead(), self.fresh_leads(1));
                let acc = self.account_or_null();
                let (s1, s2) = (self.below(100), self.below(100));
                let (c1, c2) = (self.pick(COUNTRIES), self.pick(COUNTRIES));
                format!(
                    "MERGE INTO leads t USING (VALUES ({p}::bigint, {s1}, '{c1}'), ({f}, {s2}, '{c2}')) AS s(id, score, country) ON t.id = s.id \
                     WHEN MATCHED THEN UPDATE SET score = s.score, country = s.country \
                     WHEN NOT MATCHED THEN INSERT (id, account_id, country, score, last_seen_at) VALUES (s.id, {acc}, s.country, s.score, now());"
                )
            }
            "bulk update" => match self.below(4) {
                0 => {
                    let from = 1 + self.below(self.sh.next_lead.load(Ordering::Relaxed));
                    format!(
                        "UPDATE leads SET score = (score + {}) % 100 WHERE id BETWEEN {from} AND {};",
                        1 + self.below(40),
                        from + 59
                    )
                }
                1 => {
                    let from = 1 + self.below(self.sh.next_lead.load(Ordering::Relaxed));
                    let acc = self.account();
                    format!(
                        "UPDATE leads SET account_id = {acc} WHERE id BETWEEN {from} AND {} AND id % 2 = 0;",
                        from + 79
                    )
                }
                2 => format!(
                    "UPDATE accounts SET employees = (employees + {}) % 1000 WHERE id % 2 = {};",
                    1 + self.below(300),
                    self.below(2)
                ),
                _ => {
                    let rows: Vec<String> = (0..50)
                        .map(|_| {
                            let l = self.lead();
                            self.event_row(l)
                        })
                        .collect();
                    format!(
                        "INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES {};",
                        rows.join(", ")
                    )
                }
            },
            "account insert" => {
                let id = self.sh.next_account.fetch_add(1, Ordering::Relaxed);
                after = After::AccountAdded(id);
                let ind = self.pick(INDUSTRIES);
                let plan = self.pick(PLANS);
                format!(
                    "INSERT INTO accounts VALUES ({id}, '{ind}', {}, '{plan}');",
                    self.below(1000)
                )
            }
            "account re-key" | "account delete" if kind == "account re-key" || self.private_accounts.is_empty() => {
                // a new account takes a few leads, then changes its key: the foreign key's
                // ON UPDATE CASCADE updates those leads from inside the accounts UPDATE
                let (a, b) = (
                    self.sh.next_account.fetch_add(1, Ordering::Relaxed),
                    self.sh.next_account.fetch_add(1, Ordering::Relaxed),
                );
                let ids: Vec<String> = (0..3).map(|_| self.lead().to_string()).collect();
                let ind = self.pick(INDUSTRIES);
                after = After::PrivateAccountAdded(b);
                format!(
                    "INSERT INTO accounts VALUES ({a}, '{ind}', {}, 'pro'); \
                     UPDATE leads SET account_id = {a} WHERE id IN ({}); \
                     UPDATE accounts SET id = {b} WHERE id = {a};",
                    self.below(1000),
                    ids.join(", ")
                )
            }
            "account delete" => {
                // ON DELETE SET NULL: the account's leads lose their account from inside the DELETE
                let i = self.below(self.private_accounts.len() as i64) as usize;
                let id = self.private_accounts[i];
                after = After::PrivateAccountDeleted(id);
                format!("DELETE FROM accounts WHERE id = {id};")
            }
            "account update" => {
                let set = match self.below(3) {
                    0 => format!("industry = '{}'", self.pick(INDUSTRIES)),
                    1 => format!("employees = {}", self.below(1000)),
                    _ => format!("plan = '{}', employees = employees + 1", self.pick(PLANS)),
                };
                let id = self.account();
                format!("UPDATE accounts SET {set} WHERE id = {id};")
            }
            "event insert" => {
                let n = if self.chance(70) { 1 } else { 2 + self.below(5) };
                let rows: Vec<String> = (0..n)
                    .map(|_| {
                        let l = self.lead();
                        self.event_row(l)
                    })
                    .collect();
                format!(
                    "INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES {};",
                    rows.join(", ")
                )
            }
            "event copy" => {
                let n = 1 + self.below(40);
                let mut data = String::new();
                for _ in 0..n {
                    let (l, ty, url) = (self.lead(), self.pick(EVENT_TYPES), self.pick(URLS));
                    data.push_str(&format!("{l}\t{ty}\t{{\"url\":\"{url}\"}}\n"));
                }
                copy = Some(("COPY events (lead_id, type, metadata) FROM STDIN".to_string(), data));
                String::new()
            }
            "event update" => {
                let l = self.lead();
                if self.chance(50) {
                    let ty = self.pick(EVENT_TYPES);
                    format!(
                        "UPDATE events SET type = '{ty}' WHERE id = (SELECT max(id) FROM events WHERE lead_id = {l});"
                    )
                } else {
                    let to = self.lead();
                    format!(
                        "UPDATE events SET lead_id = {to} WHERE id = (SELECT min(id) FROM events WHERE lead_id = {l});"
                    )
                }
            }
            "event delete" => {
                let l = self.lead();
                format!("DELETE FROM events WHERE id = (SELECT min(id) FROM events WHERE lead_id = {l});")
            }
            "mixed tx" => {
                let fresh = self.fresh_leads(1);
                let row = self.lead_row(fresh);
                let (e1, p) = (self.event_row(fresh), self.protected_lead());
                let e2 = self.event_row(p);
                let (set1, set2) = (self.lead_set(), self.lead_set());
                let (acc, acc2) = (self.account(), self.account_or_null());
                let ind = self.pick(INDUSTRIES);
                format!(
                    "INSERT INTO leads VALUES {row}; \
                     INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES {e1}, {e2}; \
                     SAVEPOINT a; UPDATE leads SET {set1} WHERE id = {p}; UPDATE accounts SET industry = '{ind}' WHERE id = {acc}; ROLLBACK TO SAVEPOINT a; \
                     SAVEPOINT b; UPDATE leads SET account_id = {acc2} WHERE id = {fresh}; RELEASE SAVEPOINT b; \
                     UPDATE leads SET {set2} WHERE id = {p};"
                )
            }
            "caught fk error" => {
                // the first row's account change passes its foreign-key check, the second fails
                // (-1 does not exist) after kenbun's capture trigger has seen the first
                let (a, b) = (self.protected_lead(), self.protected_lead());
                let b = if a == b { a % PROTECTED_LEADS + 1 } else { b };
                let acc = self.account();
                let set = self.lead_set();
                format!(
                    "DO $$ BEGIN UPDATE leads SET account_id = CASE WHEN id = {a} THEN {acc} ELSE -1 END WHERE id IN ({a}, {b}); \
                     EXCEPTION WHEN foreign_key_violation THEN NULL; END $$; \
                     UPDATE leads SET {set} WHERE id = {a};"
                )
            }
            "rollback" => {
                let (l, set) = (self.lead(), self.lead_set());
                let e = self.event_row(l);
                let acc = self.account();
                return Op {
                    kind,
                    sql: format!(
                        "BEGIN; UPDATE leads SET {set} WHERE id = {l}; INSERT INTO events (lead_id, type, occurred_at, metadata) VALUES {e}; \
                         UPDATE accounts SET employees = employees + 500 WHERE id = {acc}; ROLLBACK;"
                    ),
                    copy: None,
                    after,
                };
            }
            "read" => match self.below(6) {
                // members, export and compare refuse an inactive segment (55000), and another client
                // may just have deactivated it: that documented refusal is caught, nothing else
                0 => format!(
                    "DO $$ BEGIN PERFORM count(*) FROM kenbun.segment_members({}, 50); \
                     EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$;",
                    q(self.pick(BASE_LEAD_REFS))
                ),
                1 => format!("SELECT kenbun.segment_count({});", q(self.pick(LEAD_RULES))),
                2 => format!(
                    "SELECT count(*) FROM kenbun.segment_preview({}, 'account', 10);",
                    q(self.pick(ACCOUNT_RULES))
                ),
                3 => format!("SELECT count(*) FROM kenbun.lead_segments('{}');", self.lead()),
                4 => format!(
                    "DO $$ BEGIN PERFORM * FROM kenbun.segment_compare({}, {}); \
                     EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$;",
                    q(self.pick(BASE_LEAD_REFS)),
                    q(self.pick(BASE_LEAD_REFS))
                ),
                _ => format!(
                    "DO $$ BEGIN PERFORM count(*) FROM kenbun.segment_export({}); \
                     EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$;",
                    q(self.pick(BASE_ACCOUNT_REFS))
                ),
            },
            "rule edit" => {
                let k = self.below(SLOTS as i64) as usize;
                if self.chance(50) || self.slots[k].is_none() {
                    let (name, _, variants) = BASE[self.below(BASE.len() as i64) as usize];
                    let rule = self.pick(variants);
                    format!("UPDATE kenbun.segments SET rule = {} WHERE name = '{name}';", q(rule))
                } else {
                    let (rule, refs) = self.slot_rule(k);
                    after = After::SlotSet(k, Slot { refs });
                    format!(
                        "UPDATE kenbun.segments SET rule = {} WHERE name = '{}';",
                        q(&rule),
                        self.slot_name(k)
                    )
                }
            }
            "segment on/off" => {
                let on = self.chance(65);
                let k = self.below(SLOTS as i64) as usize;
                let name = if self.chance(50) || self.slots[k].is_none() {
                    BASE[self.below(BASE.len() as i64) as usize].0.to_string()
                } else {
                    self.slot_name(k)
                };
                format!("UPDATE kenbun.segments SET active = {on} WHERE name = '{name}';")
            }
            "segment create" | "segment delete" | "segment copy" => {
                let empty: Vec<usize> = (0..SLOTS).filter(|&k| self.slots[k].is_none()).collect();
                let deletable: Vec<usize> = (0..SLOTS)
                    .filter(|&k| self.slots[k].is_some() && !self.slot_has_users(k))
                    .collect();
                let create = !empty.is_empty() && (kind != "segment delete" || deletable.is_empty());
                if create {
                    let k = empty[self.below(empty.len() as i64) as usize];
                    let name = self.slot_name(k);
                    after = After::SlotSet(k, Slot { refs: None });
                    if kind == "segment copy" && k < 3 {
                        format!(
                            "SELECT kenbun.segment_copy({}, '{name}');",
                            q(self.pick(BASE_LEAD_REFS))
                        )
                    } else {
                        let (rule, refs) = self.slot_rule(k);
                        after = After::SlotSet(k, Slot { refs });
                        let (active, lead_kind) = (self.chance(85), if k < 3 { "lead" } else { "account" });
                        format!(
                            "INSERT INTO kenbun.segments (name, kind, rule, active) VALUES ('{name}', '{lead_kind}', {}, {active});",
                            q(&rule)
                        )
                    }
                } else {
                    let k = deletable[self.below(deletable.len() as i64) as usize];
                    after = After::SlotDeleted(k);
                    format!("DELETE FROM kenbun.segments WHERE name = '{}';", self.slot_name(k))
                }
            }
            "levels/field edit" => {
                if self.chance(70) {
                    format!(
                        "SELECT kenbun.define_levels('engagement', 'score', {});",
                        q(self.pick(TIERS))
                    )
                } else {
                    // the mapped field "plan" moves between two JSON paths
                    let path = self.pick(&["attributes.plan", "attributes.tier"]);
                    format!("SELECT kenbun.map_field('lead', 'plan', '{path}', 'text');")
                }
            }
            "segment refresh" => "SELECT kenbun.segment_refresh('recent');".to_string(),
            other => unreachable!("{other}"),
        };
        Op {
            kind,
            sql: if copy.is_some() {
                body
            } else {
                format!("BEGIN; {body} COMMIT;")
            },
            copy,
            after,
        }
    }

    fn committed(&mut self, after: &After) {
        match *after {
            After::Nothing => {}
            After::AccountAdded(id) => self.sh.accounts.lock().unwrap().push(id),
            After::PrivateAccountAdded(id) => self.private_accounts.push(id),
            After::PrivateAccountDeleted(id) => self.private_accounts.retain(|&a| a != id),
            After::SlotSet(k, s) => self.slots[k] = Some(s),
            After::SlotDeleted(k) => self.slots[k] = None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running and counting

#[derive(Default)]
struct KindStats {
    committed: u64,
    retried: u64,
    micros: u128,
}

struct ErrorRec {
    kind: &'static str,
    code: String,
    message: String,
    sql: String,
}

#[derive(Default)]
struct Stats {
    kinds: BTreeMap<&'static str, KindStats>,
    retries: BTreeMap<String, u64>,
    errors: Vec<ErrorRec>,
    reconnects: u64,
}

fn describe(e: &postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" DETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!(" HINT: {h}"));
            }
            if let Some(w) = db.where_() {
                m.push_str(&format!(" CONTEXT: {}", w.replace('\n', " | ")));
            }
            (db.code().code().to_string(), m)
        }
        None => ("(no SQLSTATE)".to_string(), e.to_string()),
    }
}

fn exec(c: &mut Client, op: &Op) -> Result<(), postgres::Error> {
    match &op.copy {
        None => c.batch_execute(&op.sql),
        Some((stmt, data)) => {
            let mut tx = c.transaction()?;
            if !op.sql.is_empty() {
                tx.batch_execute(&op.sql)?;
            }
            let mut w = tx.copy_in(stmt.as_str())?;
            // a failed write shows up as the error of finish()
            let _ = w.write_all(data.as_bytes());
            w.finish()?;
            tx.commit()
        }
    }
}

/// Runs one operation, retrying it on 40001 and 40P01 only. Returns whether it completed.
fn run(c: &mut Client, op: &Op, st: &mut Stats, g: &mut Gen) -> bool {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let e = match exec(c, op) {
            Ok(()) => {
                let k = st.kinds.entry(op.kind).or_default();
                k.committed += 1;
                k.micros += started.elapsed().as_micros();
                return true;
            }
            Err(e) => e,
        };
        let (code, message) = describe(&e);
        if !c.is_closed() {
            let _ = c.batch_execute("ROLLBACK");
        }
        if (code == "40001" || code == "40P01") && attempts < MAX_ATTEMPTS {
            *st.retries.entry(code).or_default() += 1;
            st.kinds.entry(op.kind).or_default().retried += 1;
            // random exponential backoff: two transactions that deadlocked should not meet again at once
            let pause = g.below((5i64 << attempts.min(6)).min(250)) as u64;
            thread::sleep(Duration::from_millis(pause));
            continue;
        }
        let sql = match &op.copy {
            Some((stmt, data)) => format!("{} {stmt} -- {} rows", op.sql, data.lines().count()),
            None => op.sql.clone(),
        };
        st.errors.push(ErrorRec {
            kind: op.kind,
            code,
            message,
            sql,
        });
        if c.is_closed() {
            // the backend is gone (a crash restarts every backend): wait for the server to come back
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                thread::sleep(Duration::from_millis(500));
                if let Ok(mut n) = connect(DB) {
                    let _ = n.batch_execute(&session());
                    *c = n;
                    st.reconnects += 1;
                    break;
                }
                if Instant::now() > until {
                    g.sh.abort.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        return false;
    }
}

fn client(t: usize, seed: u64, sh: Arc<Shared>, start: Arc<Barrier>, secs: u64) -> Stats {
    let mut c = connect_client();
    let mut g = Gen {
        t,
        seed: seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        sh: sh.clone(),
        slots: [None; SLOTS],
        private_accounts: vec![],
    };
    g.next();
    let mut st = Stats::default();
    start.wait();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline && !sh.abort.load(Ordering::Relaxed) {
        let op = g.op();
        if run(&mut c, &op, &mut st, &mut g) {
            g.committed(&op.after);
        }
        if st.errors.len() > 100 {
            sh.abort.store(true, Ordering::Relaxed);
        }
    }
    st
}

/// Counts the members announced by NOTIFY until the sentinel notification arrives.
#[derive(Default, Debug)]
struct Heard {
    notifications: u64,
    enter: u64,
    exit: u64,
    bad_payloads: u64,
    got_sentinel: bool,
}

/// What the monitor saw in its snapshots of the committed state taken during the soak.
#[derive(Default)]
struct Monitor {
    samples: u64,
    skipped: u64,
    /// (seconds into the soak, problem)
    problems: Vec<(f64, String)>,
}

/// Every committed state must be consistent, not only the last one (a later write can heal drift
/// and a later catalog change can recompile a stale rule). Every 2 s, in one REPEATABLE READ READ
/// ONLY transaction (one snapshot of the committed state): drift of the segments that are not
/// time-dependent, compiled rules that differ from their rule compiled now, dangling references.
fn monitor(sh: Arc<Shared>, t0: Instant) -> Monitor {
    let mut c = connect_client();
    let mut m = Monitor::default();
    while !sh.stop.load(Ordering::Relaxed) {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !sh.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let at = t0.elapsed().as_secs_f64();
        let sample = (|| -> Result<Vec<String>, postgres::Error> {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut found: Vec<String> = vec![];
            for r in tx.query(
                "SELECT s.name, d.problem, d.member_id FROM kenbun.segments s, kenbun.segment_drift(s.name) d
                  WHERE NOT s.time_dependent ORDER BY 1, 2, 3 LIMIT 20",
                &[],
            )? {
                found.push(format!(
                    "drift: {} {} {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                ));
            }
            for r in tx.query(STALE_SQL, &[])? {
                found.push(format!(
                    "stale compiled rule: {} is {} but its rule compiles to {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                ));
            }
            for r in tx.query(DANGLING_SQL, &[])? {
                found.push(format!("dangling reference: {}", r.get::<_, String>(0)));
            }
            tx.commit()?;
            Ok(found)
        })();
        match sample {
            Ok(found) => {
                m.samples += 1;
                m.problems.extend(found.into_iter().map(|p| (at, p)));
            }
            Err(e) => {
                let (code, message) = describe(&e);
                if !c.is_closed() {
                    let _ = c.batch_execute("ROLLBACK");
                }
                if code == "40P01" || code == "40001" {
                    m.skipped += 1;
                } else {
                    m.problems.push((at, format!("monitor query failed: {code} {message}")));
                    if c.is_closed() {
                        break;
                    }
                }
            }
        }
    }
    m
}

/// Saved segments whose compiled SQL is not what their rule compiles to now.
const STALE_SQL: &str = "SELECT s.name, s.compiled_sql, kenbun.compile(s.rule, s.kind) FROM kenbun.segments s
  WHERE kenbun.compile(s.rule, s.kind) NOT IN (s.compiled_sql, 'COALESCE(' || s.compiled_sql || ', false)') ORDER BY 1";

/// References (depends_on) to segments that do not exist.
const DANGLING_SQL: &str = "SELECT s.name || ' -> ' || r FROM kenbun.segments s, unnest(s.depends_on) r
  WHERE NOT EXISTS (SELECT 1 FROM kenbun.segments t WHERE t.name = r) ORDER BY 1";

fn listener(ready: Arc<Barrier>) -> Heard {
    let mut c = connect(DB).unwrap();
    c.batch_execute("LISTEN kenbun_membership; LISTEN kenbun_soak_done")
        .unwrap();
    ready.wait();
    let mut h = Heard::default();
    let mut last = Instant::now();
    while !h.got_sentinel && last.elapsed() < Duration::from_secs(180) {
        let mut n = c.notifications();
        let mut it = n.timeout_iter(Duration::from_millis(500));
        while let Ok(Some(m)) = it.next() {
            last = Instant::now();
            if m.channel() == "kenbun_soak_done" {
                h.got_sentinel = true;
                break;
            }
            h.notifications += 1;
            match serde_json::from_str::<serde_json::Value>(m.payload()) {
                Ok(p) => {
                    let n = p["member_ids"].as_array().map_or(0, |a| a.len()) as u64;
                    match p["change"].as_str() {
                        Some("enter") => h.enter += n,
                        Some("exit") => h.exit += n,
                        _ => h.bad_payloads += 1,
                    }
                }
                Err(_) => h.bad_payloads += 1,
            }
        }
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Setup and checks

fn fresh_db() -> Client {
    recreate_database(DB);
    let mut c = connect_client();
    c.batch_execute(&format!(
        r#"
        CREATE EXTENSION kenbun;
        CREATE TABLE accounts (id bigint PRIMARY KEY, industry text, employees int, plan text);
        CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id) ON UPDATE CASCADE ON DELETE SET NULL, country text,
                            score int, last_seen_at timestamptz, attributes jsonb NOT NULL DEFAULT '{{}}');
        CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, lead_id bigint NOT NULL,
                             type text NOT NULL, occurred_at timestamptz NOT NULL DEFAULT now(),
                             metadata jsonb NOT NULL DEFAULT '{{}}');
        CREATE INDEX ON events (lead_id);
        CREATE INDEX ON leads (account_id);
        INSERT INTO accounts SELECT g, (ARRAY['SaaS','Retail','Fintech','Health'])[1 + g % 4], (g * 37) % 1000,
                                    (ARRAY['free','pro','enterprise'])[1 + g % 3]
          FROM generate_series(1, {INITIAL_ACCOUNTS}) g;
        INSERT INTO leads SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 1 + g % {INITIAL_ACCOUNTS} END,
                                 (ARRAY['US','CA','DE','FR','GB'])[1 + g % 5], (g * 7) % 100,
                                 now() - (g % 120) * interval '1 minute',
                                 jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g % 3], 'newsletter', g % 2 = 0)
          FROM generate_series(1, {INITIAL_LEADS}) g;
        INSERT INTO events (lead_id, type, occurred_at, metadata)
          SELECT 1 + (g * 13) % {INITIAL_LEADS}, (ARRAY['view','view','click','signup','demo'])[1 + g % 5],
                 now() - (g % 600) * interval '1 minute',
                 jsonb_build_object('url', (ARRAY['/pricing','/docs','/pricing/enterprise','/blog'])[1 + g % 4])
            FROM generate_series(1, 3000) g;
        SELECT kenbun.bind_accounts('accounts');
        SELECT kenbun.bind_leads('leads', account_key => 'account_id');
        SELECT kenbun.bind_events('events');
        SELECT kenbun.define_levels('engagement', 'score',
          '[{{"name":"Cold","min":0}},{{"name":"Warm","min":25}},{{"name":"Hot","min":50}},{{"name":"On Fire","min":75}}]');
        SELECT kenbun.map_field('lead', 'plan', 'attributes.plan', 'text');
        -- the application's own lead scoring: a demo request raises the lead's score, so an event
        -- insert runs a nested UPDATE of leads (and its kenbun triggers) inside its own triggers
        CREATE FUNCTION bump_score() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE leads SET score = LEAST(score + 10, 99) WHERE id = NEW.lead_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER events_bump_score AFTER INSERT ON events FOR EACH ROW WHEN (NEW.type = 'demo')
            EXECUTE FUNCTION bump_score();
        "#
    ))
    .unwrap();
    for (name, kind, variants) in BASE {
        let refresh = if *name == "recent" { "'1 minute'" } else { "NULL" };
        c.batch_execute(&format!(
            "INSERT INTO kenbun.segments (name, kind, rule, refresh_every) VALUES ('{name}', '{kind}', {}, {refresh})",
            q(variants[0])
        ))
        .unwrap_or_else(|e| panic!("base segment {name}: {e}"));
    }
    // every rule the clients can write must be valid: a bad one here is a bug of this test
    let mut all: Vec<(String, &str)> = vec![];
    for (_, kind, variants) in BASE {
        all.extend(variants.iter().map(|r| (r.to_string(), *kind)));
    }
    all.extend(LEAD_RULES.iter().map(|r| (r.to_string(), "lead")));
    all.extend(LEAD_REF_RULES.iter().map(|r| (r.replace("REF", "hot"), "lead")));
    all.extend(ACCOUNT_RULES.iter().map(|r| (r.to_string(), "account")));
    all.extend(
        ACCOUNT_LEAD_REF_RULES
            .iter()
            .map(|r| (r.replace("REF", "hot"), "account")),
    );
    all.extend(
        ACCOUNT_ACCOUNT_REF_RULES
            .iter()
            .map(|r| (r.replace("REF", "big"), "account")),
    );
    for (rule, kind) in all {
        c.batch_execute(&format!("SELECT kenbun.segment_count({}, '{kind}')", q(&rule)))
            .unwrap_or_else(|e| panic!("rule {rule} ({kind}): {}", describe(&e).1));
    }
    c
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e).1))
        .get(0)
}

/// Log lines since `offset` that show a crashed backend or a restart.
fn crash_lines(path: &str, offset: u64) -> Result<(u64, Vec<String>), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    // a log that shrank was rotated or truncated: read it whole
    let from = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(from)).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let bad = text
        .lines()
        .filter(|l| {
            l.contains("terminated by signal")
                || l.contains("PANIC")
                || l.contains("was terminated")
                || (l.contains("server process") && l.contains("exited with exit code"))
                || l.contains("database system is in recovery mode")
        })
        .map(str::to_string)
        .collect();
    Ok((buf.len() as u64, bad))
}

fn thousands(n: impl Into<i128>) -> String {
    let s = n.into().to_string();
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn sqlstate_name(code: &str) -> &'static str {
    match code {
        "40001" => "serialization_failure",
        "40P01" => "deadlock_detected",
        "57014" => "query_canceled (statement_timeout)",
        "23505" => "unique_violation",
        "23503" => "foreign_key_violation",
        "2BP01" => "dependent_objects_still_exist",
        "42P17" => "invalid_object_definition (cycle)",
        "XX000" => "internal_error",
        "55000" => "object_not_in_prerequisite_state",
        _ => "",
    }
}

#[test]
fn soak() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let secs: u64 = std::env::var("KENBUN_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("KENBUN_SOAK_SECS must be a number of seconds"))
        .unwrap_or(15);
    let seed: u64 = std::env::var("KENBUN_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_007
        });
    let log = std::env::var("KENBUN_SERVER_LOG").ok();
    let log_offset = log.as_deref().map(|p| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .unwrap_or_else(|e| panic!("KENBUN_SERVER_LOG {p}: {e}"))
    });

    let t0 = Instant::now();
    let mut c = fresh_db();
    let log_start: i64 = count(&mut c, "SELECT COALESCE(max(id), 0) FROM kenbun.membership_changes");
    let setup = t0.elapsed();

    let sh = Arc::new(Shared {
        next_lead: AtomicI64::new(INITIAL_LEADS + 1),
        next_account: AtomicI64::new(INITIAL_ACCOUNTS + 1),
        accounts: Mutex::new((1..=INITIAL_ACCOUNTS).collect()),
        abort: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let ready = Arc::new(Barrier::new(2));
    let heard = {
        let ready = ready.clone();
        thread::spawn(move || listener(ready))
    };
    ready.wait();
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (sh, start) = (sh.clone(), start.clone());
            thread::spawn(move || client(t, seed, sh, start, secs))
        })
        .collect();
    start.wait();
    let t1 = Instant::now();
    let monitor = {
        let sh = sh.clone();
        thread::spawn(move || monitor(sh, t1))
    };
    let mut st = Stats::default();
    for h in handles {
        let s = h.join().expect("client thread panicked");
        for (k, v) in s.kinds {
            let e = st.kinds.entry(k).or_default();
            e.committed += v.committed;
            e.retried += v.retried;
            e.micros += v.micros;
        }
        for (k, v) in s.retries {
            *st.retries.entry(k).or_default() += v;
        }
        st.errors.extend(s.errors);
        st.reconnects += s.reconnects;
    }
    let soaked = t1.elapsed();
    sh.stop.store(true, Ordering::Relaxed);
    let monitor = monitor.join().expect("monitor thread panicked");

    // checks
    let t2 = Instant::now();
    c.batch_execute("NOTIFY kenbun_soak_done").unwrap();
    let heard = heard.join().expect("listener thread panicked");
    let drift = drift_rows(&mut c);
    let replay = replay_mismatches(&mut c);
    let stale: Vec<String> = c.query(STALE_SQL, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let dangling: Vec<String> = c.query(DANGLING_SQL, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let orphans = count(
        &mut c,
        "SELECT (SELECT count(*) FROM kenbun.lead_members m WHERE NOT EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.id = m.segment_id))
              + (SELECT count(*) FROM kenbun.account_members m WHERE NOT EXISTS (SELECT 1 FROM kenbun.segments s WHERE s.id = m.segment_id))",
    );
    let logged_enter = count(
        &mut c,
        &format!("SELECT count(*) FROM kenbun.membership_changes WHERE id > {log_start} AND change = 'enter'"),
    );
    let logged_exit = count(
        &mut c,
        &format!("SELECT count(*) FROM kenbun.membership_changes WHERE id > {log_start} AND change = 'exit'"),
    );
    let by_reason: Vec<(String, i64)> = c
        .query(
            &format!("SELECT reason, count(*) FROM kenbun.membership_changes WHERE id > {log_start} GROUP BY 1 ORDER BY 2 DESC"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // the time-dependent segment: refreshed and checked in one transaction, so both see the same now()
    // (after the change log was counted against NOTIFY: its changes are not announced to the listener)
    c.batch_execute("BEGIN").unwrap();
    c.batch_execute("SELECT kenbun.segment_refresh('recent')").unwrap();
    let recent_drift = count(&mut c, "SELECT count(*) FROM kenbun.segment_drift('recent')");
    c.batch_execute("COMMIT").unwrap();
    let segments: Vec<(String, String, bool, bool, i64, Vec<String>)> = c
        .query(
            "SELECT s.name, s.kind, s.active, s.time_dependent,
                    CASE s.kind WHEN 'lead' THEN (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = s.id)
                                ELSE (SELECT count(*) FROM kenbun.account_members m WHERE m.segment_id = s.id) END,
                    s.depends_on
               FROM kenbun.segments s ORDER BY s.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let rows = (
        count(&mut c, "SELECT count(*) FROM leads"),
        count(&mut c, "SELECT count(*) FROM accounts"),
        count(&mut c, "SELECT count(*) FROM events"),
    );
    let crash = match (&log, log_offset) {
        (Some(p), Some(off)) => Some(crash_lines(p, off).unwrap_or_else(|e| panic!("server log: {e}"))),
        _ => None,
    };
    let checks = t2.elapsed();

    // the report
    let total: u64 = st.kinds.values().map(|k| k.committed).sum();
    let retried: u64 = st.kinds.values().map(|k| k.retried).sum();
    let rate = total as f64 / soaked.as_secs_f64();
    println!();
    println!(
        "kenbun soak: {CLIENTS} clients for {secs} s against database {DB}, {} (seed {seed}, KENBUN_SOAK_SEED to repeat the choices)",
        isolation()
    );
    println!(
        "  setup {:.1} s, soak {:.1} s, checks {:.1} s; start {} leads, {} accounts, 3,000 events; end {} leads, {} accounts, {} events",
        setup.as_secs_f64(),
        soaked.as_secs_f64(),
        checks.as_secs_f64(),
        thousands(INITIAL_LEADS),
        INITIAL_ACCOUNTS,
        thousands(rows.0),
        thousands(rows.1),
        thousands(rows.2)
    );
    println!();
    println!(
        "  {:<22} {:>10} {:>8} {:>9}",
        "transactions", "committed", "retried", "mean ms"
    );
    for (k, v) in &st.kinds {
        let mean = if v.committed > 0 {
            format!("{:.1}", v.micros as f64 / v.committed as f64 / 1000.0)
        } else {
            "-".into()
        };
        let label = if *k == "rollback" { "rollback (on purpose)" } else { k };
        println!(
            "  {:<22} {:>10} {:>8} {:>9}",
            label,
            thousands(v.committed as i64),
            v.retried,
            mean
        );
    }
    println!(
        "  {:<22} {:>10} {:>8}   ({:.0} per second)",
        "total",
        thousands(total as i64),
        retried,
        rate
    );
    println!();
    let retries: Vec<String> = st
        .retries
        .iter()
        .map(|(k, v)| format!("{k} {} {v}", sqlstate_name(k)))
        .collect();
    println!(
        "  retries by SQLSTATE: {}",
        if retries.is_empty() {
            "none".to_string()
        } else {
            retries.join(", ")
        }
    );
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &st.errors {
        *errors.entry(e.code.as_str()).or_default() += 1;
    }
    let errs: Vec<String> = errors
        .iter()
        .map(|(k, v)| format!("{k} {} {v}", sqlstate_name(k)))
        .collect();
    println!(
        "  errors by SQLSTATE:  {}",
        if errs.is_empty() {
            "none".to_string()
        } else {
            errs.join(", ")
        }
    );
    if st.reconnects > 0 {
        println!("  reconnects after a lost connection: {}", st.reconnects);
    }
    for e in st.errors.iter().take(10) {
        println!("    [{}] {} {}\n      statement: {}", e.kind, e.code, e.message, e.sql);
    }
    println!();
    let reasons: Vec<String> = by_reason
        .iter()
        .map(|(r, n)| format!("{r} {}", thousands(*n)))
        .collect();
    println!(
        "  membership changes logged: {} ({} enter, {} exit; {})",
        thousands(logged_enter + logged_exit),
        thousands(logged_enter),
        thousands(logged_exit),
        reasons.join(", ")
    );
    println!(
        "  NOTIFY delivered:          {} members in {} notifications ({} enter, {} exit){}",
        thousands((heard.enter + heard.exit) as i64),
        thousands(heard.notifications as i64),
        thousands(heard.enter as i64),
        thousands(heard.exit as i64),
        if heard.bad_payloads > 0 {
            format!(", {} bad payloads", heard.bad_payloads)
        } else {
            String::new()
        }
    );
    let checked = segments.iter().filter(|s| !s.3).count();
    println!(
        "  drift rows:                {} (over {checked} non-time-dependent segments)",
        drift.len()
    );
    for (s, p, m) in drift.iter().take(20) {
        println!("    {s}: {p} {m}");
    }
    println!("  replay mismatches:         {}", replay.len());
    for (s, m, w) in replay.iter().take(20) {
        println!("    segment id {s}: member {m} ({w})");
    }
    println!(
        "  stale compiled rules:      {}{}",
        stale.len(),
        if stale.is_empty() {
            String::new()
        } else {
            format!(" ({})", stale.join(", "))
        }
    );
    println!("  orphan membership rows:    {orphans}");
    println!(
        "  dangling segment refs:     {}{}",
        dangling.len(),
        if dangling.is_empty() {
            String::new()
        } else {
            format!(" ({})", dangling.join(", "))
        }
    );
    println!(
        "  during the soak:           {} problem(s) in {} snapshots of the committed state, one every 2 s{}",
        monitor.problems.len(),
        monitor.samples,
        if monitor.skipped > 0 {
            format!(" ({} skipped after a deadlock)", monitor.skipped)
        } else {
            String::new()
        }
    );
    for (at, p) in monitor.problems.iter().take(20) {
        println!("    at {at:.1} s: {p}");
    }
    println!(
        "  time-dependent drift:      {recent_drift} (segment recent, right after a refresh in the same transaction)"
    );
    match &crash {
        None => println!("  server log:                not checked (KENBUN_SERVER_LOG is not set)"),
        Some((bytes, lines)) if lines.is_empty() => {
            println!(
                "  server log:                no crash in the {} bytes written since the start",
                thousands(*bytes as i64)
            )
        }
        Some((_, lines)) => {
            println!("  server log:                {} crash line(s):", lines.len());
            for l in lines.iter().take(20) {
                println!("    {l}");
            }
        }
    }
    println!();
    let active = segments.iter().filter(|s| s.2).count();
    println!(
        "  segments at the end: {} ({} lead, {} account; {} active, {} time-dependent)",
        segments.len(),
        segments.iter().filter(|s| s.1 == "lead").count(),
        segments.iter().filter(|s| s.1 == "account").count(),
        active,
        segments.iter().filter(|s| s.3).count()
    );
    println!(
        "  {:<14} {:<8} {:<8} {:>8}  uses",
        "segment", "kind", "state", "members"
    );
    for (name, kind, on, td, n, deps) in &segments {
        let state = match (on, td) {
            (true, true) => "active*",
            (true, false) => "active",
            _ => "inactive",
        };
        println!(
            "  {:<14} {:<8} {:<8} {:>8}  {}",
            name,
            kind,
            state,
            thousands(*n),
            deps.join(", ")
        );
    }
    println!("  (* time-dependent: not checked for drift)");
    println!();

    // the verdict: every check, then one failure listing all that failed
    let mut failed: Vec<String> = vec![];
    if !st.errors.is_empty() {
        failed.push(format!(
            "{} transaction(s) failed with an error other than 40001/40P01",
            st.errors.len()
        ));
    }
    if !drift.is_empty() {
        failed.push(format!("segment_drift is not empty: {} row(s)", drift.len()));
    }
    if recent_drift != 0 {
        failed.push(format!(
            "the time-dependent segment drifts right after its refresh: {recent_drift} row(s)"
        ));
    }
    if !replay.is_empty() {
        failed.push(format!(
            "the change log does not replay to the membership: {} mismatch(es)",
            replay.len()
        ));
    }
    if !stale.is_empty() {
        failed.push(format!("compiled rules out of date: {}", stale.join(", ")));
    }
    if !dangling.is_empty() {
        failed.push(format!(
            "segments reference segments that do not exist: {}",
            dangling.join(", ")
        ));
    }
    if !monitor.problems.is_empty() {
        failed.push(format!(
            "{} problem(s) in snapshots taken during the soak",
            monitor.problems.len()
        ));
    }
    if orphans != 0 {
        failed.push(format!("{orphans} membership row(s) of segments that do not exist"));
    }
    if !heard.got_sentinel {
        failed.push("the NOTIFY listener did not receive the end marker".into());
    }
    if heard.bad_payloads != 0 || (heard.enter as i64, heard.exit as i64) != (logged_enter, logged_exit) {
        failed.push(format!(
            "NOTIFY announced {} enter / {} exit ({} bad payloads), the change log holds {logged_enter} / {logged_exit}",
            heard.enter, heard.exit, heard.bad_payloads
        ));
    }
    if let Some((_, lines)) = &crash {
        if !lines.is_empty() {
            failed.push(format!(
                "the server log shows a crashed backend ({} line(s))",
                lines.len()
            ));
        }
    }
    if total == 0 {
        failed.push("no transaction committed".into());
    }
    if log.is_none() {
        println!("KENBUN_SERVER_LOG not set: the server log was not checked for crashes");
    }
    assert!(
        failed.is_empty(),
        "soak failed (details above):\n  - {}",
        failed.join("\n  - ")
    );
}
