//! Model-based test of membership maintenance against the installed extension (`make model`).
//!
//! Each case is generated from one seed (tests/common/fuzzgen.rs's splitmix64): a fresh database
//! `kenbun_model` with the extension, tables `accounts`, `leads` and `events` (half the cases with
//! a foreign key leads.account_id -> accounts ON UPDATE CASCADE ON DELETE SET NULL), mapped fields
//! over JSON paths, two level definitions, a small data domain (4-6 accounts, 10-20 leads, ~30
//! events, so that changes collide), then 8-15 random saved segments of both kinds that together
//! use every construct of the rule language and every dependency shape: field, JSON-path, mapped
//! field and level conditions, `account` conditions in lead rules, `leads` counts in account
//! rules, `account` → `leads` inside lead rules (the sibling shape: a lead's membership depends on
//! the other leads of its account), lead rules over an account segment that counts leads, event
//! conditions (type, where, count; rarely `within`, whose segments drift checks skip), segment
//! references (nested, of both kinds), not / all / any. Most cases are made to hold a sibling shape.
//!
//! Then 30-60 random transactions over all three tables: single-row and bulk (more than 32 rows,
//! kenbun's combined-statement path) inserts, updates of every column (jsonb replaced, merged,
//! key removed), key changes (a lead to another account or to no account, an event to another
//! lead, account and lead re-keys), deletes, upserts, TRUNCATE, multi-statement transactions with
//! savepoints, rollbacks, and now and then a definition change (rule edit, deactivation and
//! reactivation, levels or mapped field redefined).
//!
//! The model: after every statement of a multi-statement transaction, and after every transaction
//! (committed or rolled back), `segment_drift` is empty for every segment that is not
//! time-dependent, i.e. membership equals what each rule says over the current data. At the end
//! of a case the change log replays to the membership tables.
//!
//! On a failure the test prints the case seed, the failing transaction (and statement), each
//! drifting segment with its rule and problem rows (with the rows involved), and writes the whole
//! case as a psql script. Environment:
//! - `KENBUN_MODEL_SEED=<n>`: replay just that case (as printed);
//! - `KENBUN_MODEL_CASES=<n>`: how many cases (default 60, about 80 s on 2 cores; `make model` runs 400);
//! - `KENBUN_MODEL_BASE_SEED=<n>`: the base seed the case seeds derive from;
//! - `KENBUN_MODEL_TXS=<n>`: transactions per case (default 30-60, from the seed);
//! - `KENBUN_MODEL_KEEP_GOING=1`: run every case instead of stopping at the first failure;
//! - `KENBUN_MODEL_VERBOSE=1`: print every transaction.
//!
//! Without KENBUN_TEST_DSN it skips.
#[path = "common/db.rs"]
mod db;
#[path = "common/fuzzgen.rs"]
mod fuzzgen;

use db::{connect, drift_rows, dsn, recreate_database, replay_mismatches};
use fuzzgen::{case_seed, Rng};
use postgres::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const DB: &str = "kenbun_model";
const DEFAULT_CASES: u64 = 60;
const DEFAULT_BASE_SEED: u64 = 0x6B65_6E62_756E_30DE;
/// More rows than this in one statement take kenbun's combined ("bulk") path.
const BULK_ROWS: i64 = 32;
/// Ids of single leads are drawn from 1..=LEAD_DOMAIN first (re-using deleted ids), accounts
/// from 1..=ACCOUNT_DOMAIN; bulk-inserted leads get ids from BULK_LEAD_BASE up.
const LEAD_DOMAIN: i64 = 24;
const ACCOUNT_DOMAIN: i64 = 8;
const BULK_LEAD_BASE: i64 = 1000;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().to_string();
    Some(match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        None => v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")),
    })
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn jb(v: &Value) -> String {
    format!("{}::jsonb", q(&v.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const COUNTRIES: &[&str] = &["US", "CA", "DE", "FR", "GB"];
const EMAIL_USERS: &[&str] = &["ann", "bob", "Cy", "dana", "eve7", "Al.Bo"];
const EMAIL_DOMAINS: &[&str] = &["acme.io", "example.com", "Globex.org", "mail.de"];
const PLANS: &[&str] = &["free", "pro", "team"];
const SOURCES: &[&str] = &["ads", "seo", "referral"];
const TAGS: &[&str] = &["a", "b", "c"];
const NAMES: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "acme labs", "Hooli"];
const TIERS: &[&str] = &["gold", "silver", "bronze"];
const REGIONS: &[&str] = &["EU", "US", "APAC"];
const EVENT_TYPES: &[&str] = &["view", "view", "click", "signup", "demo"];
const URLS: &[&str] = &["/pricing", "/docs", "/blog", "/pricing/enterprise"];
const CAMPAIGNS: &[&str] = &["spring", "fall"];
const DATES: &[&str] = &["2023-06-01", "2024-01-01", "2024-03-15", "2024-07-01", "2024-10-31"];
const ENGAGEMENT: &[&str] = &["Cold", "Warm", "Hot", "On Fire"];
const ACCT_SIZE: &[&str] = &["Small", "Mid", "Large"];
const ENGAGEMENT_TIERS: &[&str] = &[
    r#"[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]"#,
    r#"[{"name":"Cold","min":0},{"name":"Warm","min":30},{"name":"Hot","min":60},{"name":"On Fire","min":85}]"#,
    r#"[{"name":"Cold","min":10},{"name":"Warm","min":20},{"name":"Hot","min":45},{"name":"On Fire","min":70}]"#,
];
const SIZE_TIERS: &[&str] = &[
    r#"[{"name":"Small","min":0},{"name":"Mid","min":5000},{"name":"Large","min":15000}]"#,
    r#"[{"name":"Small","min":1000},{"name":"Mid","min":8000},{"name":"Large","min":12000}]"#,
];
const COUNT_OPS: &[&str] = &["eq", "neq", "gt", "gte", "lt", "lte"];

// ---------------------------------------------------------------------------------------------
// The generator

#[derive(Clone)]
#[allow(dead_code)]
struct Seg {
    name: String,
    kind: String,
    /// Null for a static segment without a rule.
    rule: Value,
    active: bool,
    /// A static list (0.6.0): its members are what segment_add/segment_remove left, minus deleted leads.
    is_static: bool,
}

/// A transaction: its statements, run one by one; `begin` wraps them in BEGIN … COMMIT/ROLLBACK
/// (otherwise the one statement runs on its own).
struct Tx {
    label: String,
    stmts: Vec<String>,
    begin: bool,
    rollback: bool,
    /// Changes segment definitions: reload the segments afterwards, and errors from the
    /// definition statements (a rule that no longer compiles) are expected.
    defs: bool,
}

impl Tx {
    fn text(&self) -> String {
        let mut s = String::new();
        if self.begin {
            s.push_str("BEGIN;\n");
        }
        for st in &self.stmts {
            s.push_str(st);
            s.push_str(";\n");
        }
        if self.begin {
            s.push_str(if self.rollback { "ROLLBACK;\n" } else { "COMMIT;\n" });
        }
        s
    }
}

struct Gen {
    rng: Rng,
    fk: bool,
    accounts: BTreeSet<i64>,
    /// lead -> account
    leads: BTreeMap<i64, Option<i64>>,
    events: BTreeSet<i64>,
    next_lead: i64,
    next_bulk_lead: i64,
    next_account: i64,
    next_event: i64,
    segs: Vec<Seg>,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut rng = Rng::new(seed);
        let fk = rng.chance(50);
        Gen {
            rng,
            fk,
            accounts: BTreeSet::new(),
            leads: BTreeMap::new(),
            events: BTreeSet::new(),
            next_lead: LEAD_DOMAIN + 1,
            next_bulk_lead: BULK_LEAD_BASE,
            next_account: ACCOUNT_DOMAIN + 1,
            next_event: 1,
            segs: vec![],
        }
    }
    fn chance(&mut self, p: u32) -> bool {
        self.rng.chance(p)
    }
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1))
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.range(lo, hi)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *self.rng.pick(xs)
    }

    // --- ids

    fn some_account(&mut self) -> i64 {
        if self.accounts.is_empty() || self.chance(5) {
            return self.range(1, ACCOUNT_DOMAIN);
        }
        let v: Vec<i64> = self.accounts.iter().copied().collect();
        self.pick(&v)
    }
    /// An account key for a lead: an existing account, NULL, or (without the foreign key) one
    /// that does not exist (yet).
    fn account_ref(&mut self) -> String {
        let r = self.below(100);
        if r < 10 {
            "NULL".into()
        } else if r < 16 && !self.fk {
            self.range(1, ACCOUNT_DOMAIN + 2).to_string()
        } else if self.accounts.is_empty() {
            "NULL".into()
        } else {
            let v: Vec<i64> = self.accounts.iter().copied().collect();
            self.pick(&v).to_string()
        }
    }
    fn some_lead(&mut self) -> i64 {
        if self.leads.is_empty() || self.chance(4) {
            return self.range(1, LEAD_DOMAIN);
        }
        // mostly the small leads, so that they collide
        let small: Vec<i64> = self.leads.keys().copied().filter(|&l| l < BULK_LEAD_BASE).collect();
        if !small.is_empty() && self.chance(85) {
            return self.pick(&small);
        }
        let v: Vec<i64> = self.leads.keys().copied().collect();
        self.pick(&v)
    }
    fn some_event(&mut self) -> i64 {
        if self.events.is_empty() {
            return 1;
        }
        let v: Vec<i64> = self.events.iter().copied().collect();
        self.pick(&v)
    }
    fn fresh_lead(&mut self) -> i64 {
        let free: Vec<i64> = (1..=LEAD_DOMAIN).filter(|i| !self.leads.contains_key(i)).collect();
        if !free.is_empty() && self.chance(70) {
            return self.pick(&free);
        }
        self.next_lead += 1;
        self.next_lead - 1
    }
    fn fresh_account(&mut self) -> i64 {
        let free: Vec<i64> = (1..=ACCOUNT_DOMAIN).filter(|i| !self.accounts.contains(i)).collect();
        if !free.is_empty() && self.chance(70) {
            return self.pick(&free);
        }
        self.next_account += 1;
        self.next_account - 1
    }
    fn fresh_event(&mut self) -> i64 {
        self.next_event += 1;
        self.next_event - 1
    }

    // --- values

    fn attrs(&mut self) -> Value {
        let mut m = serde_json::Map::new();
        if self.chance(60) {
            m.insert(
                "plan".into(),
                if self.chance(8) {
                    Value::Null
                } else {
                    json!(self.pick(PLANS))
                },
            );
        }
        if self.chance(45) {
            m.insert("seats".into(), json!(self.range(0, 40)));
        }
        if self.chance(40) {
            m.insert("newsletter".into(), json!(self.chance(50)));
        }
        if self.chance(40) {
            m.insert("src".into(), json!(self.pick(SOURCES)));
        }
        if self.chance(25) {
            let n = 1 + self.below(2);
            let tags: Vec<&str> = (0..n).map(|_| self.pick(TAGS)).collect();
            m.insert("tags".into(), json!(tags));
        }
        Value::Object(m)
    }
    fn props(&mut self) -> Value {
        let mut m = serde_json::Map::new();
        if self.chance(70) {
            m.insert("region".into(), json!(self.pick(REGIONS)));
        }
        if self.chance(60) {
            m.insert("employees".into(), json!(self.range(1, 1000)));
        }
        if self.chance(40) {
            m.insert("public".into(), json!(self.chance(50)));
        }
        Value::Object(m)
    }
    fn metadata(&mut self) -> Value {
        let mut m = serde_json::Map::new();
        if self.chance(75) {
            m.insert("url".into(), json!(self.pick(URLS)));
        }
        if self.chance(30) {
            m.insert("amount".into(), json!(self.range(0, 100)));
        }
        if self.chance(25) {
            m.insert("campaign".into(), json!(self.pick(CAMPAIGNS)));
        }
        Value::Object(m)
    }
    fn null_or(&mut self, p_null: u32, s: String) -> String {
        if self.chance(p_null) {
            "NULL".into()
        } else {
            s
        }
    }
    fn email(&mut self) -> String {
        let e = format!("{}@{}", self.pick(EMAIL_USERS), self.pick(EMAIL_DOMAINS));
        self.null_or(8, q(&e))
    }
    fn country(&mut self) -> String {
        let c = self.pick(COUNTRIES);
        self.null_or(8, q(c))
    }
    fn score(&mut self) -> String {
        let s = self.range(0, 100).to_string();
        self.null_or(6, s)
    }
    fn vip(&mut self) -> String {
        let b = self.chance(40).to_string();
        self.null_or(15, b)
    }
    fn signup(&mut self) -> String {
        let d = format!("date {}", q(self.pick(DATES)));
        self.null_or(10, d)
    }
    fn attrs_sql(&mut self) -> String {
        let a = self.attrs();
        self.null_or(8, jb(&a))
    }
    fn lead_row(&mut self, id: i64) -> String {
        let acc = self.account_ref();
        format!(
            "({id}, {acc}, {}, {}, {}, {}, {}, {})",
            self.email(),
            self.country(),
            self.score(),
            self.attrs_sql(),
            self.vip(),
            self.signup()
        )
    }
    fn account_row(&mut self, id: i64) -> String {
        let name = self.pick(NAMES);
        let name = self.null_or(5, q(name));
        let tier = self.pick(TIERS);
        let tier = self.null_or(15, q(tier));
        let arr = self.range(0, 20000).to_string();
        let arr = self.null_or(10, arr);
        let props = self.props();
        let props = self.null_or(8, jb(&props));
        format!("({id}, {name}, {tier}, {arr}, {props})")
    }
    fn occurred_at(&mut self) -> String {
        if self.chance(15) {
            format!("now() - interval '{} hours'", self.range(1, 2000))
        } else {
            format!(
                "timestamptz '2024-{:02}-{:02} 12:00+00'",
                self.range(1, 12),
                self.range(1, 28)
            )
        }
    }
    fn event_row(&mut self, id: i64) -> String {
        let lead = if self.chance(90) || self.leads.is_empty() {
            self.some_lead()
        } else {
            self.range(1, LEAD_DOMAIN)
        };
        let ty = self.pick(EVENT_TYPES);
        let ty = self.null_or(4, q(ty));
        let at = self.occurred_at();
        let md = self.metadata();
        let md = self.null_or(6, jb(&md));
        format!("({id}, {lead}, {ty}, {at}, {md})")
    }

    // --- rules

    fn count(&mut self) -> Value {
        json!({"op": self.pick(COUNT_OPS), "value": self.range(0, 3)})
    }
    fn lead_field(&mut self) -> Value {
        if self.chance(6) {
            // multi-value operators over the JSON array attrs.tags (0.6.0): missing, not an array, empty
            let n = 1 + self.below(2);
            let tags: Vec<&str> = (0..n).map(|_| self.pick(TAGS)).collect();
            return json!({"field":"attrs.tags","op":self.pick(&["has_any","has_all","has_none"]),"value":tags});
        }
        match self.below(16) {
            0 => json!({"field":"country","op":self.pick(&["eq","neq"]),"value":self.pick(COUNTRIES)}),
            1 => {
                let (a, b) = (self.pick(COUNTRIES), self.pick(COUNTRIES));
                json!({"field":"country","op":self.pick(&["in","not_in"]),"value":[a,b]})
            }
            2 => json!({"field":self.pick(&["country","email","score","vip","signup","attrs","account_id"]),
                         "op":self.pick(&["is_set","is_not_set"])}),
            3 | 4 => {
                json!({"field":"score","op":self.pick(&["gt","gte","lt","lte","eq","neq"]),"value":self.range(0,100)})
            }
            5 => {
                let a = self.range(0, 80);
                let b = a + self.range(0, 40);
                json!({"field":"score","op":"between","value":[a,b]})
            }
            6 => json!({"field":"email","op":self.pick(&["contains","not_contains","starts_with","ends_with"]),
                         "value":self.pick(&["acme","@example.com","A","bob",".DE"])}),
            7 => json!({"field":"email","op":"matches","value":self.pick(&["^[a-c]","io$","[0-9]","^[A-Z]"])}),
            8 => json!({"field":"vip","op":self.pick(&["eq","neq"]),"value":self.chance(50)}),
            // a time window (rare: the segment becomes time-dependent, which drift checks skip)
            9 if self.chance(4) => {
                json!({"field":"signup","op":self.pick(&["within_last","not_within_last"]),"value":"400 days"})
            }
            9 => json!({"field":"signup","op":self.pick(&["before","after"]),"value":self.pick(DATES)}),
            10 => {
                let (a, b) = (self.pick(DATES), self.pick(DATES));
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                json!({"field":"signup","op":"between","value":[a,b]})
            }
            11 => {
                let v = if self.chance(60) {
                    json!({"src": self.pick(SOURCES)})
                } else {
                    json!({"tags": [self.pick(TAGS)]})
                };
                json!({"field":"attrs","op":self.pick(&["contains","not_contains"]),"value":v})
            }
            // JSON paths without a declared type
            12 => match self.below(5) {
                0 => json!({"field":"attrs.plan","op":self.pick(&["eq","neq"]),"value":self.pick(PLANS)}),
                1 => json!({"field":"attrs.seats","op":self.pick(&["gt","lte","eq"]),"value":self.range(0,40)}),
                2 => json!({"field":"attrs.newsletter","op":self.pick(&["eq","neq"]),"value":self.chance(50)}),
                3 => {
                    let (a, b) = (self.pick(SOURCES), self.pick(SOURCES));
                    json!({"field":"attrs.src","op":self.pick(&["in","not_in"]),"value":[a,b]})
                }
                _ => {
                    json!({"field":self.pick(&["attrs.plan","attrs.src","attrs.tags"]),"op":self.pick(&["is_set","is_not_set"])})
                }
            },
            // mapped fields
            13 => match self.below(3) {
                0 => {
                    let (a, b) = (self.pick(PLANS), self.pick(PLANS));
                    let (op, v) = if self.chance(50) {
                        (self.pick(&["in", "not_in"]), json!([a, b]))
                    } else {
                        (self.pick(&["eq", "neq"]), json!(a))
                    };
                    json!({"field":"plan","op":op,"value":v})
                }
                1 => {
                    let a = self.range(0, 30);
                    json!({"field":"seats","op":"between","value":[a, a + self.range(0, 20)]})
                }
                _ => json!({"field":"newsletter","op":self.pick(&["eq","neq"]),"value":self.chance(50)}),
            },
            _ => {
                if self.chance(30) {
                    let (a, b) = (self.pick(ENGAGEMENT), self.pick(ENGAGEMENT));
                    json!({"level":"engagement","op":self.pick(&["in","not_in"]),"value":[a,b]})
                } else {
                    json!({"level":"engagement","op":self.pick(&["eq","neq","gt","gte","lt","lte"]),"value":self.pick(ENGAGEMENT)})
                }
            }
        }
    }
    fn account_field(&mut self) -> Value {
        match self.below(10) {
            0 => json!({"field":"name","op":self.pick(&["starts_with","contains","eq","ends_with","matches"]),
                         "value":self.pick(&["Acme","acme","Glo","ex","^[A-H]"])}),
            1 => json!({"field":"tier","op":self.pick(&["eq","neq"]),"value":self.pick(TIERS)}),
            2 => {
                let (a, b) = (self.pick(TIERS), self.pick(TIERS));
                json!({"field":"tier","op":self.pick(&["in","not_in"]),"value":[a,b]})
            }
            3 => json!({"field":self.pick(&["tier","arr","props","name"]),"op":self.pick(&["is_set","is_not_set"])}),
            4 => {
                if self.chance(50) {
                    json!({"field":"arr","op":self.pick(&["gt","gte","lt","lte"]),"value":self.range(0,20000)})
                } else {
                    let a = self.range(0, 15000);
                    json!({"field":"arr","op":"between","value":[a, a + self.range(0, 8000)]})
                }
            }
            5 => match self.below(3) {
                0 => json!({"field":"props.region","op":self.pick(&["eq","neq"]),"value":self.pick(REGIONS)}),
                1 => json!({"field":"props.employees","op":self.pick(&["gt","lt"]),"value":self.range(0,1000)}),
                _ => json!({"field":"props.public","op":"eq","value":self.chance(50)}),
            },
            6 => {
                if self.chance(50) {
                    let (a, b) = (self.pick(REGIONS), self.pick(REGIONS));
                    json!({"field":"region","op":self.pick(&["in","not_in"]),"value":[a,b]})
                } else {
                    json!({"field":"employees","op":self.pick(&["gte","lt"]),"value":self.range(0,1000)})
                }
            }
            7 => {
                let v = if self.chance(50) {
                    json!({"public": true})
                } else {
                    json!({"region": self.pick(REGIONS)})
                };
                json!({"field":"props","op":self.pick(&["contains","not_contains"]),"value":v})
            }
            _ => json!({"level":"acct_size","op":self.pick(&["eq","neq","gte","lt"]),"value":self.pick(ACCT_SIZE)}),
        }
    }
    fn event_where(&mut self, depth: u32) -> Value {
        if depth > 0 && self.chance(25) {
            let a = self.event_where(depth - 1);
            let b = self.event_where(depth - 1);
            return match self.below(3) {
                0 => json!({"all":[a,b]}),
                1 => json!({"any":[a,b]}),
                _ => json!({"not":a}),
            };
        }
        match self.below(7) {
            0 => json!({"field":"type","op":"eq","value":self.pick(EVENT_TYPES)}),
            1 => json!({"field":"metadata.url","op":self.pick(&["eq","starts_with"]),"value":self.pick(URLS)}),
            2 => {
                let (a, b) = (self.pick(URLS), self.pick(URLS));
                json!({"field":"url","op":self.pick(&["in","not_in"]),"value":[a,b]})
            }
            3 => json!({"field":"metadata.amount","op":self.pick(&["gt","lte"]),"value":self.range(0,100)}),
            4 => json!({"field":"occurred_at","op":self.pick(&["before","after"]),"value":self.pick(DATES)}),
            5 => json!({"field":"metadata","op":"contains","value":{"campaign":self.pick(CAMPAIGNS)}}),
            _ => json!({"field":"metadata.campaign","op":self.pick(&["is_set","is_not_set"])}),
        }
    }
    /// A sequence of 2-3 events (0.6.0); without `within`, so that drift checks cover it.
    fn sequence(&mut self, depth: u32) -> Value {
        let steps: Vec<Value> = (0..2 + self.below(2))
            .map(|_| {
                let mut m = serde_json::Map::new();
                if self.chance(85) {
                    m.insert("type".into(), json!(self.pick(EVENT_TYPES)));
                }
                if self.chance(25) {
                    m.insert("where".into(), self.event_where(depth.min(1)));
                }
                Value::Object(m)
            })
            .collect();
        let mut q = serde_json::Map::new();
        q.insert("steps".into(), json!(steps));
        if self.chance(60) {
            q.insert("max_gap".into(), json!(self.pick(&["3 days", "60 days", "300 days"])));
        }
        json!({ "sequence": Value::Object(q) })
    }
    fn event_cond(&mut self, depth: u32) -> Value {
        let mut m = serde_json::Map::new();
        if self.chance(65) {
            let t = if self.chance(70) {
                json!(self.pick(EVENT_TYPES))
            } else {
                json!([self.pick(EVENT_TYPES), self.pick(&["demo", "signup", "click"])])
            };
            m.insert("type".into(), t);
        }
        if self.chance(50) {
            m.insert("where".into(), self.event_where(depth.min(1)));
        }
        if self.chance(12) {
            // an aggregate of a metadata number (0.6.0): the rule reads values, not only which events match
            let f = self.pick(&["sum", "avg", "min", "max", "count_distinct"]);
            let (field, value) = if f == "count_distinct" {
                (self.pick(&["metadata.url", "type", "metadata.amount"]), json!(self.range(0, 3)))
            } else {
                ("metadata.amount", json!(self.range(0, 150)))
            };
            m.insert(f.into(), json!({"field": field, "op": self.pick(COUNT_OPS), "value": value}));
        } else if self.chance(55) {
            m.insert("count".into(), self.count());
        }
        // time-dependent: rare (drift checks skip such segments)
        if self.chance(4) {
            m.insert("within".into(), json!(self.pick(&["30 days", "12 hours"])));
        }
        json!({ "event": Value::Object(m) })
    }
    fn leads_cond(&mut self, depth: u32) -> Value {
        let mut m = serde_json::Map::new();
        if self.chance(85) {
            m.insert("where".into(), self.lead_rule(depth, true));
        }
        if self.chance(80) {
            m.insert(
                "count".into(),
                json!({"op": self.pick(&["gte","gte","gt","eq","lt","neq"]), "value": self.range(0, 3)}),
            );
        }
        json!({ "leads": Value::Object(m) })
    }
    fn seg_of(&mut self, kind: &str) -> Option<String> {
        let v: Vec<String> = self
            .segs
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.name.clone())
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(v[self.below(v.len())].clone())
        }
    }
    fn group(&mut self, depth: u32, f: fn(&mut Gen, u32, bool) -> Value, nested: bool) -> Value {
        match self.below(10) {
            0..=3 => {
                let n = 2 + self.below(2);
                json!({"all": (0..n).map(|_| f(self, depth - 1, nested)).collect::<Vec<_>>()})
            }
            4..=6 => {
                let n = 2 + self.below(2);
                json!({"any": (0..n).map(|_| f(self, depth - 1, nested)).collect::<Vec<_>>()})
            }
            7 if self.chance(10) => {
                let k = self.pick(&["all", "any"]);
                let mut m = serde_json::Map::new();
                m.insert(k.to_string(), json!([]));
                Value::Object(m)
            }
            _ => json!({"not": f(self, depth - 1, nested)}),
        }
    }
    /// A lead rule; `nested`: inside an account or leads condition (fewer nested hops).
    fn lead_rule(&mut self, depth: u32, nested: bool) -> Value {
        if depth > 0 && self.chance(35) {
            return self.group(depth, Gen::lead_rule, nested);
        }
        let r = self.below(100);
        let d = depth.saturating_sub(1);
        match r {
            0..=39 => self.lead_field(),
            40..=51 if !nested || self.chance(30) => json!({"account": self.account_rule(d, true)}),
            52..=57 if self.chance(25) => self.sequence(d),
            52..=65 => self.event_cond(d),
            66..=77 if !nested => self.sibling(d),
            78..=89 => match self.seg_of("lead") {
                Some(s) => json!({"segment": s}),
                None => self.lead_field(),
            },
            90..=99 if !nested || self.chance(30) => match self.seg_of("account") {
                Some(s) => json!({"account": {"segment": s}}),
                None => self.sibling(d),
            },
            _ => self.lead_field(),
        }
    }
    /// The sibling shape: a lead rule over the other leads of its account.
    fn sibling(&mut self, depth: u32) -> Value {
        let leads = if self.chance(70) {
            let w = if self.chance(60) {
                self.lead_field()
            } else {
                self.lead_rule(depth, true)
            };
            json!({"leads": {"where": w, "count": {"op": self.pick(&["gte","gte","gt","eq","lt"]), "value": self.range(1, 3)}}})
        } else {
            self.leads_cond(depth)
        };
        let acc = if self.chance(30) {
            json!({"all": [leads, self.account_field()]})
        } else {
            leads
        };
        if self.chance(30) {
            json!({"all": [{"account": acc}, self.lead_field()]})
        } else {
            json!({"account": acc})
        }
    }
    fn account_rule(&mut self, depth: u32, nested: bool) -> Value {
        if depth > 0 && self.chance(35) {
            return self.group(depth, Gen::account_rule, nested);
        }
        match self.below(100) {
            0..=44 => self.account_field(),
            45..=79 => self.leads_cond(depth.saturating_sub(1)),
            80..=94 => match self.seg_of("account") {
                Some(s) => json!({"segment": s}),
                None => self.account_field(),
            },
            _ => self.account_field(),
        }
    }
    fn rule(&mut self, kind: &str) -> Value {
        if kind == "lead" {
            self.lead_rule(2, false)
        } else {
            self.account_rule(2, false)
        }
    }

    // --- data operations (one statement each)

    fn lead_set(&mut self) -> String {
        match self.below(16) {
            0 | 1 => format!("score = {}", self.score()),
            2 => format!("score = coalesce(score, 0) + {}", self.range(-30, 30)),
            3 => format!("account_id = {}", self.account_ref()),
            4 => "account_id = NULL".into(),
            5 => format!("email = {}", self.email()),
            6 => format!("country = {}", self.country()),
            7 => format!("attrs = {}", self.attrs_sql()),
            8 => {
                let a = self.attrs();
                format!("attrs = coalesce(attrs, '{{}}') || {}", jb(&a))
            }
            9 => format!(
                "attrs = attrs - {}",
                q(self.pick(&["plan", "seats", "newsletter", "src", "tags"]))
            ),
            10 => format!(
                "attrs = jsonb_set(coalesce(attrs, '{{}}'), '{{plan}}', {})",
                jb(&json!(self.pick(PLANS)))
            ),
            11 => format!("vip = {}", self.vip()),
            12 => format!("signup = {}", self.signup()),
            13 => format!("score = {}, account_id = {}", self.score(), self.account_ref()),
            14 => format!("country = {}, attrs = {}", self.country(), self.attrs_sql()),
            _ => format!(
                "score = {}, country = {}, vip = {}",
                self.score(),
                self.country(),
                self.vip()
            ),
        }
    }
    fn lead_where(&mut self) -> String {
        match self.below(10) {
            0..=5 => format!("id = {}", self.some_lead()),
            6 => format!("id IN ({}, {})", self.some_lead(), self.some_lead()),
            7 => format!("account_id = {}", self.some_account()),
            8 => format!("score > {}", self.range(20, 90)),
            _ => format!(
                "id IN (SELECT id FROM leads WHERE account_id = {} ORDER BY id LIMIT 2)",
                self.some_account()
            ),
        }
    }
    fn account_set(&mut self) -> String {
        match self.below(9) {
            0 => format!("name = {}", {
                let n = self.pick(NAMES);
                self.null_or(5, q(n))
            }),
            1 => format!("tier = {}", {
                let t = self.pick(TIERS);
                self.null_or(15, q(t))
            }),
            2 | 3 => format!("arr = {}", {
                let a = self.range(0, 20000).to_string();
                self.null_or(10, a)
            }),
            4 => {
                let p = self.props();
                format!("props = {}", self.null_or(8, jb(&p)))
            }
            5 => {
                let p = self.props();
                format!("props = coalesce(props, '{{}}') || {}", jb(&p))
            }
            6 => format!("props = props - {}", q(self.pick(&["region", "employees", "public"]))),
            7 => format!("arr = coalesce(arr, 0) + {}", self.range(-6000, 6000)),
            _ => format!("tier = {}, arr = {}", q(self.pick(TIERS)), self.range(0, 20000)),
        }
    }
    fn event_set(&mut self) -> String {
        match self.below(6) {
            0 | 1 => format!("lead_id = {}", self.some_lead()),
            2 => format!("type = {}", q(self.pick(EVENT_TYPES))),
            3 => format!("occurred_at = {}", self.occurred_at()),
            4 => {
                let m = self.metadata();
                format!("metadata = {}", jb(&m))
            }
            _ => format!("metadata = metadata || {}", jb(&json!({"url": self.pick(URLS)}))),
        }
    }
    fn event_where_sql(&mut self) -> String {
        match self.below(4) {
            0 | 1 => format!("id = {}", self.some_event()),
            2 => format!("lead_id = {}", self.some_lead()),
            _ => format!("id = (SELECT min(id) FROM events WHERE lead_id = {})", self.some_lead()),
        }
    }

    /// One data statement (updates the id model optimistically; resynced after each transaction).
    fn data_op(&mut self) -> String {
        let r = self.below(100);
        match r {
            // leads
            0..=27 => {
                let set = self.lead_set();
                let w = self.lead_where();
                format!("UPDATE leads SET {set} WHERE {w}")
            }
            28..=33 => {
                let n = if self.chance(75) { 1 } else { 2 + self.below(3) };
                let rows: Vec<String> = (0..n)
                    .map(|_| {
                        let id = self.fresh_lead();
                        self.leads.insert(id, None);
                        self.lead_row(id)
                    })
                    .collect();
                format!("INSERT INTO leads VALUES {}", rows.join(", "))
            }
            34..=37 => {
                let id = self.some_lead();
                self.leads.remove(&id);
                if self.chance(75) {
                    format!("DELETE FROM leads WHERE id = {id}")
                } else {
                    format!(
                        "DELETE FROM leads WHERE account_id = {} AND score < {}",
                        self.some_account(),
                        self.range(20, 80)
                    )
                }
            }
            38..=40 => {
                let (old, new) = (self.some_lead(), self.fresh_lead());
                if let Some(a) = self.leads.remove(&old) {
                    self.leads.insert(new, a);
                }
                format!("UPDATE leads SET id = {new} WHERE id = {old}")
            }
            41..=44 => {
                let (a, b) = (self.some_lead(), self.fresh_lead());
                self.leads.insert(b, None);
                // one row per key: ON CONFLICT DO UPDATE cannot touch a row twice
                let rows = if a == b {
                    vec![self.lead_row(a)]
                } else {
                    vec![self.lead_row(a), self.lead_row(b)]
                };
                let set = match self.below(3) {
                    0 => "account_id = EXCLUDED.account_id, score = EXCLUDED.score",
                    1 => "attrs = EXCLUDED.attrs, country = EXCLUDED.country, email = EXCLUDED.email",
                    _ => "account_id = EXCLUDED.account_id, score = EXCLUDED.score, attrs = EXCLUDED.attrs, vip = EXCLUDED.vip, signup = EXCLUDED.signup",
                };
                if self.chance(15) {
                    format!(
                        "INSERT INTO leads VALUES {} ON CONFLICT (id) DO NOTHING",
                        rows.join(", ")
                    )
                } else {
                    format!(
                        "INSERT INTO leads VALUES {} ON CONFLICT (id) DO UPDATE SET {set}",
                        rows.join(", ")
                    )
                }
            }
            // accounts
            45..=55 => {
                let set = self.account_set();
                let w = if self.chance(85) {
                    format!("id = {}", self.some_account())
                } else {
                    format!("tier = {}", q(self.pick(TIERS)))
                };
                format!("UPDATE accounts SET {set} WHERE {w}")
            }
            56..=57 => {
                let id = self.fresh_account();
                self.accounts.insert(id);
                let row = self.account_row(id);
                format!("INSERT INTO accounts VALUES {row}")
            }
            58..=59 => {
                let (old, new) = (self.some_account(), self.fresh_account());
                self.accounts.remove(&old);
                self.accounts.insert(new);
                format!("UPDATE accounts SET id = {new} WHERE id = {old}")
            }
            60 => {
                let id = self.some_account();
                self.accounts.remove(&id);
                format!("DELETE FROM accounts WHERE id = {id}")
            }
            61..=62 => {
                let (a, b) = (self.some_account(), self.fresh_account());
                self.accounts.insert(b);
                let rows = if a == b {
                    vec![self.account_row(a)]
                } else {
                    vec![self.account_row(a), self.account_row(b)]
                };
                format!(
                    "INSERT INTO accounts VALUES {} ON CONFLICT (id) DO UPDATE SET tier = EXCLUDED.tier, arr = EXCLUDED.arr, props = EXCLUDED.props",
                    rows.join(", ")
                )
            }
            // events
            63..=77 => {
                let n = if self.chance(70) { 1 } else { 2 + self.below(4) };
                let rows: Vec<String> = (0..n)
                    .map(|_| {
                        let id = self.fresh_event();
                        self.events.insert(id);
                        self.event_row(id)
                    })
                    .collect();
                format!("INSERT INTO events VALUES {}", rows.join(", "))
            }
            78..=86 => {
                let set = self.event_set();
                let w = self.event_where_sql();
                format!("UPDATE events SET {set} WHERE {w}")
            }
            87..=91 => {
                let w = self.event_where_sql();
                format!("DELETE FROM events WHERE {w}")
            }
            92..=93 => {
                let (old, new) = (self.some_event(), self.fresh_event());
                format!("UPDATE events SET id = {new} WHERE id = {old}")
            }
            94..=95 => {
                let (a, b) = (self.some_event(), self.fresh_event());
                let rows = [self.event_row(a), self.event_row(b)];
                format!(
                    "INSERT INTO events VALUES {} ON CONFLICT (id) DO UPDATE SET lead_id = EXCLUDED.lead_id, type = EXCLUDED.type, metadata = EXCLUDED.metadata",
                    rows.join(", ")
                )
            }
            // several tables in one statement
            _ => {
                let (l, a) = (self.some_lead(), self.account_ref());
                format!(
                    "WITH m AS (UPDATE leads SET account_id = {a}, score = {} WHERE id = {l} RETURNING id) \
                     INSERT INTO events SELECT {}, id, 'demo', now() - interval '1 day', '{{\"url\":\"/pricing\"}}' FROM m",
                    self.score(),
                    self.fresh_event()
                )
            }
        }
    }

    fn small_accounts_array(&mut self) -> String {
        let v: Vec<String> = if self.accounts.is_empty() {
            vec!["NULL".into()]
        } else {
            self.accounts.iter().take(6).map(|a| a.to_string()).collect()
        };
        format!("(ARRAY[{}]::bigint[])", v.join(","))
    }

    /// A statement touching more than BULK_ROWS rows (when the tables are that big).
    fn bulk_op(&mut self) -> String {
        let bulk_leads = self.leads.keys().filter(|&&l| l >= BULK_LEAD_BASE).count() as i64;
        let r = self.below(9);
        if (bulk_leads > 2 * BULK_ROWS && r < 6) || (bulk_leads > BULK_ROWS && r == 0) {
            self.leads.retain(|&l, _| l < BULK_LEAD_BASE);
            return format!("DELETE FROM leads WHERE id >= {BULK_LEAD_BASE}");
        }
        if self.events.len() as i64 > 4 * BULK_ROWS && r < 3 {
            return format!("DELETE FROM events WHERE id % 3 <> {}", self.below(3));
        }
        match r {
            0 | 1 => {
                let n = BULK_ROWS + 8;
                let first = self.next_bulk_lead;
                self.next_bulk_lead += n;
                for id in first..first + n {
                    self.leads.insert(id, None);
                }
                let accs = self.small_accounts_array();
                let k = self.range(2, 9);
                format!(
                    "INSERT INTO leads SELECT g, {accs}[1 + g % cardinality({accs})], 'bulk' || g || '@example.com', \
                     (ARRAY['US','DE','FR'])[1 + g % 3], (g * {k}) % 100, \
                     jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g % 3], 'seats', g % 17), \
                     g % 2 = 0, date '2024-01-01' + (g % 300)::int FROM generate_series({first}, {}) g",
                    first + n - 1
                )
            }
            2 | 3 => {
                let n = BULK_ROWS + 8;
                let first = self.next_event;
                self.next_event += n;
                for id in first..first + n {
                    self.events.insert(id);
                }
                let leads: Vec<String> = self
                    .leads
                    .keys()
                    .filter(|&&l| l < BULK_LEAD_BASE)
                    .map(|l| l.to_string())
                    .collect();
                let leads = if leads.is_empty() {
                    "1".to_string()
                } else {
                    leads.join(",")
                };
                let k = self.range(1, 7);
                format!(
                    "INSERT INTO events SELECT g, (ARRAY[{leads}]::bigint[])[1 + (g * {k}) % cardinality(ARRAY[{leads}])], \
                     (ARRAY['view','click','signup','demo'])[1 + g % 4], timestamptz '2024-01-01' + g * interval '1 hour', \
                     jsonb_build_object('url', (ARRAY['/pricing','/docs','/blog'])[1 + g % 3], 'amount', g % 50) \
                     FROM generate_series({first}, {}) g",
                    first + n - 1
                )
            }
            4 => match self.below(5) {
                0 => format!(
                    "UPDATE leads SET score = (coalesce(score, 0) * {} + {}) % 101",
                    self.range(2, 7),
                    self.range(0, 50)
                ),
                1 => {
                    let accs = self.small_accounts_array();
                    format!(
                        "UPDATE leads SET account_id = {accs}[1 + (id * {}) % cardinality({accs})]",
                        self.range(1, 5)
                    )
                }
                2 => format!(
                    "UPDATE leads SET attrs = coalesce(attrs, '{{}}') || {}",
                    jb(&json!({"plan": self.pick(PLANS)}))
                ),
                3 => format!(
                    "UPDATE leads SET country = (ARRAY['US','CA','DE'])[1 + (id + {}) % 3]",
                    self.range(0, 2)
                ),
                _ => format!(
                    "UPDATE leads SET vip = NOT coalesce(vip, false), signup = date {}",
                    q(self.pick(DATES))
                ),
            },
            5 => match self.below(3) {
                0 => format!("UPDATE events SET lead_id = {}", self.some_lead()),
                1 => format!(
                    "UPDATE events SET type = (ARRAY['view','click','demo'])[1 + (id + {}) % 3]",
                    self.range(0, 2)
                ),
                _ => format!(
                    "UPDATE events SET metadata = coalesce(metadata, '{{}}') || {}",
                    jb(&json!({"campaign": self.pick(CAMPAIGNS)}))
                ),
            },
            6 => format!("UPDATE leads SET id = id + 100000 WHERE id >= {BULK_LEAD_BASE}"),
            7 => {
                // many leads into one account (sibling recomputation for a whole account)
                let a = self.account_ref();
                format!("UPDATE leads SET account_id = {a} WHERE id % 2 = {}", self.below(2))
            }
            _ => format!(
                "UPDATE accounts SET arr = coalesce(arr, 0) + {}",
                self.range(-5000, 5000)
            ),
        }
    }

    fn truncate(&mut self) -> Vec<String> {
        let mut v = vec![];
        match self.below(3) {
            0 => {
                self.events.clear();
                v.push("TRUNCATE events".to_string());
            }
            1 => {
                self.leads.clear();
                v.push("TRUNCATE leads".to_string());
            }
            _ => {
                self.accounts.clear();
                if self.fk {
                    self.leads.clear();
                    v.push("TRUNCATE accounts CASCADE".to_string());
                } else {
                    v.push("TRUNCATE accounts".to_string());
                }
            }
        }
        // refill in the same transaction, sometimes
        if self.chance(50) {
            for _ in 0..3 {
                let id = self.fresh_account();
                self.accounts.insert(id);
                let row = self.account_row(id);
                v.push(format!("INSERT INTO accounts VALUES {row} ON CONFLICT DO NOTHING"));
            }
            let rows: Vec<String> = (0..6)
                .map(|_| {
                    let id = self.fresh_lead();
                    self.leads.insert(id, None);
                    self.lead_row(id)
                })
                .collect();
            v.push(format!(
                "INSERT INTO leads VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            ));
        }
        v
    }

    /// A manual membership change (0.6.0): members added to or removed from a static list (with the
    /// expected members in model_static, in the same transaction), or overrides of a dynamic segment
    /// set or cleared. Ids are sometimes of rows that do not exist (23503, the transaction rolls back).
    fn manual_op(&mut self) -> Vec<String> {
        let statics: Vec<String> = self.segs.iter().filter(|s| s.is_static).map(|s| s.name.clone()).collect();
        let dynamic: Vec<(String, String)> =
            self.segs.iter().filter(|s| !s.is_static).map(|s| (s.name.clone(), s.kind.clone())).collect();
        let n = 1 + self.below(3);
        if !statics.is_empty() && (dynamic.is_empty() || self.chance(60)) {
            let name = q(&statics[self.below(statics.len())]);
            let ids: Vec<String> = (0..n).map(|_| self.some_lead().to_string()).collect();
            let arr = format!("ARRAY[{}]::bigint[]", ids.join(", "));
            if self.chance(60) {
                vec![
                    format!("SELECT kenbun.segment_add({name}, {arr})"),
                    format!("INSERT INTO model_static SELECT {name}, x FROM unnest({arr}) x"),
                ]
            } else if self.chance(30) {
                vec![
                    format!("SELECT kenbun.segment_remove({name}, {})", if self.chance(50) { arr.clone() } else { format!("{arr}::text[]") }),
                    format!("DELETE FROM model_static WHERE segment = {name} AND lead_id = ANY ({arr})"),
                ]
            } else {
                // members the list should have: each removal then removes something
                let k = self.below(4);
                vec![
                    format!("CREATE TEMP TABLE pick ON COMMIT DROP AS SELECT DISTINCT lead_id FROM model_static WHERE segment = {name} ORDER BY lead_id LIMIT {n} OFFSET {k}"),
                    format!("SELECT kenbun.segment_remove({name}, ARRAY(SELECT lead_id FROM pick))"),
                    format!("DELETE FROM model_static WHERE segment = {name} AND lead_id IN (SELECT lead_id FROM pick)"),
                ]
            }
        } else if !dynamic.is_empty() {
            let (name, kind) = dynamic[self.below(dynamic.len())].clone();
            let ids: Vec<String> = (0..n)
                .map(|_| format!("'{}'", if kind == "lead" { self.some_lead() } else { self.some_account() }))
                .collect();
            let f = self.pick(&["segment_include", "segment_include", "segment_exclude", "segment_exclude", "segment_clear_override"]);
            vec![format!("SELECT kenbun.{f}({}, ARRAY[{}])", q(&name), ids.join(", "))]
        } else {
            vec!["SELECT 1".into()]
        }
    }

    /// A segment definition change (one statement).
    fn def_op(&mut self) -> String {
        if self.segs.is_empty() {
            return "SELECT 1".into();
        }
        let i = self.below(self.segs.len());
        let name = self.segs[i].name.clone();
        match self.below(10) {
            0..=4 => {
                // a new rule referencing only segments before this one: no cycle
                let kind = self.segs[i].kind.clone();
                let saved = std::mem::replace(&mut self.segs, vec![]);
                self.segs = saved[..i].to_vec();
                let rule = self.rule(&kind);
                self.segs = saved;
                format!(
                    "UPDATE kenbun.segments SET rule = {} WHERE name = {}",
                    q(&rule.to_string()),
                    q(&name)
                )
            }
            5..=7 => format!(
                "UPDATE kenbun.segments SET active = NOT active WHERE name = {}",
                q(&name)
            ),
            8 => format!(
                "SELECT kenbun.define_levels('engagement', 'score', {})",
                q(self.pick(ENGAGEMENT_TIERS))
            ),
            _ => {
                if self.chance(50) {
                    format!(
                        "SELECT kenbun.define_levels('acct_size', 'arr', {})",
                        q(self.pick(SIZE_TIERS))
                    )
                } else {
                    format!(
                        "SELECT kenbun.map_field('lead', 'plan', {}, 'text')",
                        q(self.pick(&["attrs.plan", "attrs.src"]))
                    )
                }
            }
        }
    }

    fn tx(&mut self) -> Tx {
        let r = self.below(100);
        let mut tx = Tx {
            label: String::new(),
            stmts: vec![],
            begin: false,
            rollback: false,
            defs: false,
        };
        match r {
            0..=49 => {
                tx.label = "single".into();
                tx.stmts.push(self.data_op());
            }
            50..=63 => {
                tx.label = "multi".into();
                tx.begin = true;
                for _ in 0..2 + self.below(3) {
                    tx.stmts.push(self.data_op());
                }
            }
            64..=68 => {
                tx.label = "savepoint".into();
                tx.begin = true;
                tx.stmts.push(self.data_op());
                tx.stmts.push("SAVEPOINT a".into());
                tx.stmts.push(self.data_op());
                tx.stmts.push(self.data_op());
                tx.stmts.push(
                    if self.chance(70) {
                        "ROLLBACK TO SAVEPOINT a"
                    } else {
                        "RELEASE SAVEPOINT a"
                    }
                    .into(),
                );
                tx.stmts.push(self.data_op());
            }
            69..=75 => {
                tx.label = "rollback".into();
                tx.begin = true;
                tx.rollback = true;
                for _ in 0..1 + self.below(3) {
                    tx.stmts.push(self.data_op());
                }
                if self.chance(30) {
                    tx.stmts.push(self.bulk_op());
                }
            }
            76..=85 => {
                tx.label = "bulk".into();
                tx.stmts.push(self.bulk_op());
                if self.chance(30) {
                    tx.begin = true;
                    tx.stmts.push(self.data_op());
                }
            }
            86..=87 => {
                tx.label = "truncate".into();
                tx.stmts = self.truncate();
                tx.begin = tx.stmts.len() > 1;
            }
            88..=93 => {
                tx.label = "manual".into();
                tx.begin = true;
                tx.stmts = self.manual_op();
                if self.chance(30) {
                    tx.stmts.push(self.data_op());
                }
                if self.chance(10) {
                    tx.rollback = true;
                }
            }
            _ => {
                tx.label = "definition".into();
                tx.defs = true;
                tx.stmts.push(self.def_op());
                if self.chance(30) {
                    tx.begin = true;
                    tx.stmts.push(self.data_op());
                    if self.chance(30) {
                        tx.rollback = true;
                    }
                }
            }
        }
        tx
    }
}

// ---------------------------------------------------------------------------------------------
// Rule shapes (for the coverage summary, and to make sure of a sibling shape)

fn segment_rule<'a>(segs: &'a [Seg], name: &str) -> Option<&'a Seg> {
    segs.iter().find(|s| s.name == name)
}

/// The rule with every segment reference replaced by that segment's rule.
fn inline(v: &Value, segs: &[Seg], depth: u32) -> Value {
    if depth > 20 {
        return v.clone();
    }
    match v {
        Value::Object(m) => {
            if let (1, Some(Value::String(n))) = (m.len(), m.get("segment")) {
                if let Some(s) = segment_rule(segs, n) {
                    if s.is_static {
                        // a hand-kept list: its rule, if any, is not what it means
                        return json!({"static_list": n});
                    }
                    return inline(&s.rule, segs, depth + 1);
                }
            }
            Value::Object(m.iter().map(|(k, x)| (k.clone(), inline(x, segs, depth + 1))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| inline(x, segs, depth + 1)).collect()),
        _ => v.clone(),
    }
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| k == key || has_key(x, key)),
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        _ => false,
    }
}

/// Does a lead rule (inlined) read other leads of the lead's account?
fn is_sibling(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| (k == "account" && has_key(x, "leads")) || is_sibling(x)),
        Value::Array(a) => a.iter().any(is_sibling),
        _ => false,
    }
}

/// Constructs used by a rule (as written, not inlined), for the coverage summary.
fn tags(v: &Value, kind: &str, segs: &[Seg], out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match k.as_str() {
                    "field" => {
                        let f = x.as_str().unwrap_or_default();
                        let t = if f.contains('.') {
                            "json path"
                        } else if ["plan", "seats", "newsletter", "region", "employees", "url"].contains(&f) {
                            "mapped field"
                        } else {
                            "column field"
                        };
                        out.insert(t.into());
                        if let Some(op) = m.get("op").and_then(|o| o.as_str()) {
                            out.insert(format!("op {op}"));
                        }
                    }
                    "level" => {
                        out.insert("level".into());
                    }
                    "segment" => {
                        let n = x.as_str().unwrap_or_default();
                        let k2 = segment_rule(segs, n).map(|s| s.kind.as_str()).unwrap_or("?");
                        out.insert(format!("segment ref {kind}->{k2}"));
                    }
                    "account" => {
                        out.insert("account (in lead rule)".into());
                        if has_key(x, "leads") {
                            out.insert("account->leads (sibling)".into());
                        }
                        if has_key(x, "segment") {
                            out.insert("account->segment".into());
                        }
                    }
                    "leads" => {
                        out.insert("leads count".into());
                    }
                    "sequence" => {
                        out.insert("sequence".into());
                    }
                    "sum" | "avg" | "min" | "max" | "count_distinct" => {
                        out.insert(format!("event {k}"));
                    }
                    "event" => {
                        out.insert("event".into());
                        if has_key(x, "within") {
                            out.insert("event within".into());
                        }
                        if has_key(x, "where") {
                            out.insert("event where".into());
                        }
                        if has_key(x, "count") {
                            out.insert("event count".into());
                        }
                    }
                    "not" | "all" | "any" => {
                        out.insert(k.clone());
                    }
                    _ => {}
                }
                tags(x, kind, segs, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| tags(x, kind, segs, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

#[derive(Default)]
struct Stats {
    cases: u64,
    txs: u64,
    stmts: u64,
    rolled_back: u64,
    expected_errors: BTreeMap<String, u64>,
    segments: u64,
    rejected: u64,
    reject_reasons: BTreeMap<String, u64>,
    sibling_cases: u64,
    shapes: BTreeMap<String, u64>,
    labels: BTreeMap<String, u64>,
    drift_checks: u64,
    /// cases run with online builds, and the build steps between their transactions
    online_cases: u64,
    build_steps: u64,
}

struct Failure {
    seed: u64,
    text: String,
}

fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| "-----".into())
}

fn errtext(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

fn setup_sql(g: &mut Gen) -> (String, String, String) {
    let fk = if g.fk {
        " REFERENCES accounts ON UPDATE CASCADE ON DELETE SET NULL"
    } else {
        ""
    };
    let tables = format!(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text, tier text, arr int, props jsonb);
CREATE TABLE leads (id bigint PRIMARY KEY, account_id bigint{fk}, email text, country text, score int, attrs jsonb, vip boolean, signup date);
CREATE INDEX ON leads (account_id);
CREATE TABLE events (id bigint PRIMARY KEY, lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
CREATE INDEX ON events (lead_id);
"
    );
    let bind = format!(
        "SELECT kenbun.bind_accounts('accounts');
SELECT kenbun.bind_leads('leads', account_key => 'account_id');
SELECT kenbun.bind_events('events');
SELECT kenbun.map_field('lead', 'plan', 'attrs.plan', 'text');
SELECT kenbun.map_field('lead', 'seats', 'attrs.seats', 'integer');
SELECT kenbun.map_field('lead', 'newsletter', 'attrs.newsletter', 'boolean');
SELECT kenbun.map_field('account', 'region', 'props.region', 'text');
SELECT kenbun.map_field('account', 'employees', 'props.employees', 'integer');
SELECT kenbun.map_field('event', 'url', 'metadata.url', 'text');
SELECT kenbun.define_levels('engagement', 'score', {});
SELECT kenbun.define_levels('acct_size', 'arr', {});
",
        q(ENGAGEMENT_TIERS[0]),
        q(SIZE_TIERS[0])
    );
    let mut data = String::new();
    let na = 4 + g.below(3) as i64;
    let accs: Vec<String> = (1..=na)
        .map(|id| {
            g.accounts.insert(id);
            g.account_row(id)
        })
        .collect();
    data.push_str(&format!("INSERT INTO accounts VALUES {};\n", accs.join(", ")));
    let nl = 10 + g.below(11) as i64;
    let leads: Vec<String> = (1..=nl)
        .map(|id| {
            g.leads.insert(id, None);
            g.lead_row(id)
        })
        .collect();
    data.push_str(&format!("INSERT INTO leads VALUES {};\n", leads.join(", ")));
    let ne = 20 + g.below(20);
    let evs: Vec<String> = (0..ne)
        .map(|_| {
            let id = g.fresh_event();
            g.events.insert(id);
            g.event_row(id)
        })
        .collect();
    data.push_str(&format!("INSERT INTO events VALUES {};\n", evs.join(", ")));
    (tables, bind, data)
}

/// Re-reads ids (the generator's model of what exists) and segments from the database.
fn resync(c: &mut Client, g: &mut Gen) {
    g.accounts = c
        .query("SELECT id FROM accounts", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    g.leads = c
        .query("SELECT id, account_id FROM leads", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    g.events = c
        .query("SELECT id FROM events", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let max_ev = g.events.iter().next_back().copied().unwrap_or(0);
    g.next_event = g.next_event.max(max_ev + 1);
    let max_lead = g
        .leads
        .keys()
        .copied()
        .filter(|&l| l < BULK_LEAD_BASE)
        .max()
        .unwrap_or(0);
    g.next_lead = g.next_lead.max(max_lead + 1);
    let max_acc = g.accounts.iter().next_back().copied().unwrap_or(0);
    g.next_account = g.next_account.max(max_acc + 1);
}

fn reload_segments(c: &mut Client, g: &mut Gen) {
    let rows = c
        .query(
            "SELECT name, kind, rule::text, active, type = 'static' FROM kenbun.segments ORDER BY id",
            &[],
        )
        .unwrap();
    g.segs = rows
        .iter()
        .map(|r| Seg {
            name: r.get(0),
            kind: r.get(1),
            rule: r.get::<_, Option<&str>>(2).map(|t| serde_json::from_str(t).unwrap()).unwrap_or(Value::Null),
            active: r.get(3),
            is_static: r.get(4),
        })
        .collect();
}

/// A readable account of drift: per segment its definition, the problem rows and the data
/// behind them.
fn describe_drift(c: &mut Client, rows: &[(String, String, String)]) -> String {
    let mut out = String::new();
    let mut by_seg: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (s, p, m) in rows {
        by_seg.entry(s).or_default().push((p, m));
    }
    for (seg, probs) in by_seg {
        let d = c
            .query_one(
                "SELECT kind, active, rule::text, time_dependent, coalesce(array_to_string(depends_on::text[], ', '), '') FROM kenbun.segments WHERE name = $1",
                &[&seg],
            )
            .ok();
        let (kind, active, rule, deps) = match &d {
            Some(r) => (
                r.get::<_, String>(0),
                r.get::<_, bool>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(4),
            ),
            None => ("?".into(), false, "?".into(), String::new()),
        };
        out.push_str(&format!(
            "  segment {seg:?} ({kind}, {}){}\n    rule: {rule}\n",
            if active { "active" } else { "inactive" },
            if deps.is_empty() {
                String::new()
            } else {
                format!(", depends on {deps}")
            }
        ));
        for (p, m) in probs.iter().take(12) {
            let row = if kind == "lead" {
                c.query_opt(
                    "SELECT to_jsonb(l)::text, (SELECT to_jsonb(a)::text FROM accounts a WHERE a.id = l.account_id), \
                            (SELECT string_agg(format('%s:%s', s.id, s.score), ' ') FROM leads s WHERE s.account_id = l.account_id), \
                            (SELECT count(*) FROM events e WHERE e.lead_id = l.id) \
                       FROM leads l WHERE l.id = $1::text::bigint",
                    &[m],
                )
                .ok()
                .flatten()
                .map(|r| {
                    format!(
                        "lead {}\n        account {}\n        leads of that account (id:score) {}; events of the lead: {}",
                        r.get::<_, String>(0),
                        r.get::<_, Option<String>>(1).unwrap_or("none".into()),
                        r.get::<_, Option<String>>(2).unwrap_or("-".into()),
                        r.get::<_, i64>(3)
                    )
                })
            } else {
                c.query_opt(
                    "SELECT to_jsonb(a)::text, (SELECT string_agg(format('%s:%s', l.id, l.score), ' ') FROM leads l WHERE l.account_id = a.id) \
                       FROM accounts a WHERE a.id = $1::text::bigint",
                    &[m],
                )
                .ok()
                .flatten()
                .map(|r| {
                    format!(
                        "account {}\n        its leads (id:score) {}",
                        r.get::<_, String>(0),
                        r.get::<_, Option<String>>(1).unwrap_or("-".into())
                    )
                })
            };
            out.push_str(&format!(
                "    {p} {m}: {}\n",
                row.unwrap_or_else(|| "(row does not exist)".into())
            ));
        }
        if probs.len() > 12 {
            out.push_str(&format!("    … {} more\n", probs.len() - 12));
        }
    }
    out
}

fn check_drift(c: &mut Client, stats: &mut Stats) -> Result<(), String> {
    stats.drift_checks += 1;
    let rows = drift_rows(c);
    if rows.is_empty() {
        Ok(())
    } else {
        Err(describe_drift(c, &rows))
    }
}

/// The manual memberships (0.6.0), after a transaction: every static list holds exactly the leads
/// model_static expects (what segment_add/segment_remove did, minus the leads deleted or re-keyed since),
/// and every override of a ready dynamic segment holds (an included member is in, an excluded one out).
fn check_manual(c: &mut Client) -> Result<(), String> {
    let rows = c
        .query(
            "WITH actual AS (SELECT s.name AS segment, m.lead_id FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.type = 'static'),
                  expected AS (SELECT DISTINCT segment, lead_id FROM model_static)
             SELECT segment, lead_id::text, 'missing from the static list' FROM (SELECT * FROM expected EXCEPT SELECT * FROM actual) a
             UNION ALL
             SELECT segment, lead_id::text, 'unexpected in the static list' FROM (SELECT * FROM actual EXCEPT SELECT * FROM expected) b
             UNION ALL
             SELECT s.name, o.member_id, CASE WHEN o.include THEN 'included but not a member' ELSE 'excluded but a member' END
               FROM kenbun.member_overrides o JOIN kenbun.segments s ON s.id = o.segment_id
              WHERE s.active AND s.status = 'ready'
                AND CASE s.kind WHEN 'lead' THEN EXISTS (SELECT 1 FROM leads l WHERE l.id::text = o.member_id)
                                ELSE EXISTS (SELECT 1 FROM accounts a WHERE a.id::text = o.member_id) END
                AND o.include <> (EXISTS (SELECT 1 FROM kenbun.lead_members m WHERE m.segment_id = s.id AND m.lead_id::text = o.member_id)
                                  OR EXISTS (SELECT 1 FROM kenbun.account_members m WHERE m.segment_id = s.id AND m.account_id::text = o.member_id))
             ORDER BY 1, 2, 3",
            &[],
        )
        .unwrap();
    if rows.is_empty() {
        return Ok(());
    }
    Err(rows
        .iter()
        .map(|r| format!("  {} {}: {}", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn run_case(seed: u64, txs_override: Option<u64>, verbose: bool, stats: &mut Stats) -> Result<(), Failure> {
    let mut g = Gen::new(seed);
    let mut script =
        format!("-- kenbun model case {seed:#x} (KENBUN_MODEL_SEED={seed:#x})\nCREATE EXTENSION kenbun;\n");
    let fail = |script: &str, text: String| -> Failure {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("model-{seed:#x}.sql"));
        let saved = match std::fs::write(&path, script) {
            Ok(()) => format!("the whole case as a psql script: {}", path.display()),
            Err(e) => format!("could not write {}: {e}", path.display()),
        };
        Failure {
            seed,
            text: format!(
                "{text}\n{saved}\nreplay: KENBUN_MODEL_SEED={seed:#x} cargo test --test model -- --nocapture"
            ),
        }
    };

    recreate_database(DB);
    let mut c = connect(DB);
    c.batch_execute("SET client_min_messages = warning; CREATE EXTENSION kenbun;")
        .map_err(|e| fail(&script, format!("CREATE EXTENSION failed: {}", errtext(&e))))?;
    let (tables, bind, data) = setup_sql(&mut g);
    // data before or after binding
    let order: Vec<&String> = if g.chance(50) {
        vec![&tables, &data, &bind]
    } else {
        vec![&tables, &bind, &data]
    };
    for part in order {
        script.push_str(part);
        c.batch_execute(part).map_err(|e| {
            fail(
                &script,
                format!("case {seed:#x}: setup failed: {}\n{part}", errtext(&e)),
            )
        })?;
    }

    // online builds (0.5.0), in some cases: every definition change that needs a fill leaves the segment
    // building, and batches of 4 rows run between the transactions (kenbun._build_step, one batch per
    // building segment, as CALL kenbun.segment_build() would commit them) or the whole build at once;
    // drift is checked for the segments that are ready, and for all of them once every build is done
    let online = g.chance(40);
    if online {
        let set = "SET kenbun.sync_max_rows = 0; SET kenbun.build_batch_rows = 4;\n";
        script.push_str(set);
        c.batch_execute(set).unwrap();
        stats.online_cases += 1;
    }

    // static lists (0.6.0), some filled once from a rule: the expected members go to model_static
    // in the same statement batch, the initial ones from segment_preview of that rule
    // (a lead that is deleted, truncated away or re-keyed leaves every list: the test's own triggers
    // say so in model_static)
    let shadow = "CREATE TABLE model_static (segment text, lead_id bigint);
CREATE FUNCTION model_static_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN DELETE FROM model_static; ELSE DELETE FROM model_static WHERE lead_id = OLD.id; END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER model_static_deleted AFTER DELETE ON leads FOR EACH ROW EXECUTE FUNCTION model_static_gone();
CREATE TRIGGER model_static_rekeyed AFTER UPDATE OF id ON leads FOR EACH ROW WHEN (OLD.id <> NEW.id) EXECUTE FUNCTION model_static_gone();
CREATE TRIGGER model_static_truncated AFTER TRUNCATE ON leads FOR EACH STATEMENT EXECUTE FUNCTION model_static_gone();
";
    script.push_str(shadow);
    c.batch_execute(shadow).unwrap();
    for i in 0..1 + g.below(2) {
        let name = format!("l{i}_static");
        let rule = if g.chance(80) { Some(g.rule("lead")) } else { None };
        let sql = match &rule {
            Some(r) => format!(
                "INSERT INTO kenbun.segments (name, kind, type, rule) VALUES ({n}, 'lead', 'static', {r});
INSERT INTO model_static SELECT {n}, member_id::bigint FROM kenbun.segment_preview({r}::kenbun.segment_rule, 'lead', 1000000)",
                n = q(&name),
                r = q(&r.to_string())
            ),
            None => format!("INSERT INTO kenbun.segments (name, kind, type) VALUES ({}, 'lead', 'static')", q(&name)),
        };
        c.batch_execute(&sql).map_err(|e| fail(&script, format!("case {seed:#x}: creating a static segment failed: {}\n{sql}", errtext(&e))))?;
        script.push_str(&sql);
        script.push_str(";\n");
        stats.segments += 1;
        *stats.shapes.entry("static list".into()).or_default() += 1;
        g.segs.push(Seg { name, kind: "lead".into(), rule: rule.unwrap_or(Value::Null), active: true, is_static: true });
    }

    // segments
    let nsegs = 8 + g.below(8);
    let sibling_at = if g.chance(90) {
        Some(g.below(nsegs * 2 / 3 + 1))
    } else {
        None
    };
    let mut sibling_count = 0;
    for i in 0..nsegs {
        let kind = if g.chance(60) { "lead" } else { "account" };
        let (kind, rule) = if Some(i) == sibling_at && sibling_count == 0 {
            // the sibling shape, one of three ways
            match g.below(3) {
                0 => ("lead", g.sibling(1)),
                1 => match g
                    .segs
                    .iter()
                    .filter(|s| s.kind == "account" && has_key(&inline(&s.rule, &g.segs, 0), "leads"))
                    .map(|s| s.name.clone())
                    .last()
                {
                    Some(a) => ("lead", json!({"all": [{"account": {"segment": a}}, g.lead_field()]})),
                    None => ("lead", g.sibling(1)),
                },
                _ => match g
                    .segs
                    .iter()
                    .filter(|s| s.kind == "lead" && is_sibling(&inline(&s.rule, &g.segs, 0)))
                    .map(|s| s.name.clone())
                    .last()
                {
                    Some(l) => ("lead", json!({"any": [{"segment": l}, g.lead_field()]})),
                    None => ("lead", g.sibling(1)),
                },
            }
        } else {
            (kind, g.rule(kind))
        };
        let name = format!("s{i:02}_{kind}");
        let sql = format!(
            "INSERT INTO kenbun.segments (name, kind, rule) VALUES ({}, '{kind}', {})",
            q(&name),
            q(&rule.to_string())
        );
        stats.segments += 1;
        match c.batch_execute(&sql) {
            Ok(()) => {
                script.push_str(&sql);
                script.push_str(";\n");
                let mut t = BTreeSet::new();
                tags(&rule, kind, &g.segs, &mut t);
                if kind == "lead" && is_sibling(&inline(&rule, &g.segs, 0)) {
                    t.insert("sibling (directly or through references)".into());
                    sibling_count += 1;
                }
                for x in t {
                    *stats.shapes.entry(x).or_default() += 1;
                }
                g.segs.push(Seg {
                    name,
                    kind: kind.into(),
                    rule,
                    active: true,
                    is_static: false,
                });
            }
            Err(e) => {
                let st = sqlstate(&e);
                if st.starts_with("XX") || e.is_closed() {
                    return Err(fail(
                        &script,
                        format!("case {seed:#x}: creating a segment failed: {}\n{sql}", errtext(&e)),
                    ));
                }
                script.push_str(&format!("-- rejected ({}): {sql};\n", errtext(&e)));
                stats.rejected += 1;
                let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
                let short: String = msg.chars().take(70).collect();
                *stats.reject_reasons.entry(format!("{st} {short}")).or_default() += 1;
            }
        }
    }
    if sibling_count > 0 {
        stats.sibling_cases += 1;
    }
    reload_segments(&mut c, &mut g);
    if let Err(d) = check_drift(&mut c, stats) {
        return Err(fail(
            &script,
            format!("case {seed:#x}: drift right after creating the segments:\n{d}"),
        ));
    }

    let ntx = txs_override.unwrap_or(30 + g.below(31) as u64);
    for n in 1..=ntx {
        let tx = g.tx();
        stats.txs += 1;
        *stats.labels.entry(tx.label.clone()).or_default() += 1;
        let text = tx.text();
        if verbose {
            eprintln!("model: case {seed:#x} tx {n} ({}):\n{text}", tx.label);
        }
        script.push_str(&format!("-- tx {n} ({})\n{text}", tx.label));
        let header = |k: usize| {
            format!(
                "case {seed:#x} (KENBUN_MODEL_SEED={seed:#x}), transaction {n} of {ntx} ({}){}:\n{}",
                tx.label,
                if k < tx.stmts.len() {
                    format!(", after its statement {}: {}", k + 1, tx.stmts[k])
                } else {
                    String::new()
                },
                text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
            )
        };
        if tx.begin {
            c.batch_execute("BEGIN").unwrap();
        }
        let mut aborted = false;
        for (k, st) in tx.stmts.iter().enumerate() {
            stats.stmts += 1;
            if let Err(e) = c.batch_execute(st) {
                let code = sqlstate(&e);
                let expected = ["23503", "23505"].contains(&code.as_str())
                    || (tx.defs && k == 0 && !code.starts_with("XX") && !e.is_closed());
                if !expected {
                    return Err(fail(
                        &script,
                        format!("{}\nunexpected error: {}", header(k), errtext(&e)),
                    ));
                }
                *stats.expected_errors.entry(code).or_default() += 1;
                aborted = true;
                break;
            }
            // inside a transaction: membership must already be true after each statement
            if tx.begin && !st.starts_with("SAVEPOINT") {
                if let Err(d) = check_drift(&mut c, stats) {
                    let _ = c.batch_execute("ROLLBACK");
                    return Err(fail(
                        &script,
                        format!("{}\nDRIFT inside the transaction:\n{d}", header(k)),
                    ));
                }
            }
        }
        if tx.begin {
            let end = if tx.rollback || aborted { "ROLLBACK" } else { "COMMIT" };
            if let Err(e) = c.batch_execute(end) {
                return Err(fail(
                    &script,
                    format!("{}\n{end} failed: {}", header(usize::MAX), errtext(&e)),
                ));
            }
        }
        if tx.rollback || aborted {
            stats.rolled_back += 1;
        }
        if let Err(d) = check_drift(&mut c, stats) {
            return Err(fail(
                &script,
                format!("{}\nDRIFT after the transaction:\n{d}", header(usize::MAX)),
            ));
        }
        if let Err(d) = check_manual(&mut c) {
            return Err(fail(
                &script,
                format!("{}\nMANUAL MEMBERSHIP wrong after the transaction:\n{d}", header(usize::MAX)),
            ));
        }
        resync(&mut c, &mut g);
        if tx.defs {
            reload_segments(&mut c, &mut g);
        }
        if online {
            let step = match g.below(10) {
                0..=4 => Some("SELECT kenbun._build_step(s.id, 4) FROM kenbun.segments s WHERE s.status = 'building' ORDER BY s.id"),
                5..=6 => Some("CALL kenbun.segment_build()"),
                _ => None,
            };
            if let Some(step) = step {
                script.push_str(&format!("{step};\n"));
                if let Err(e) = c.batch_execute(step) {
                    return Err(fail(&script, format!("{}\n{step} failed: {}", header(usize::MAX), errtext(&e))));
                }
                stats.build_steps += 1;
                if let Err(d) = check_drift(&mut c, stats) {
                    return Err(fail(&script, format!("{}\nDRIFT after {step}:\n{d}", header(usize::MAX))));
                }
            }
        }
    }
    if online {
        // every build completed: no segment is left out of the check
        let step = "CALL kenbun.segment_build()";
        script.push_str(&format!("{step};\n"));
        c.batch_execute(step).map_err(|e| fail(&script, format!("case {seed:#x}: {step} failed: {}", errtext(&e))))?;
        let building: i64 = c
            .query_one("SELECT count(*) FROM kenbun.segments WHERE status = 'building'", &[])
            .unwrap()
            .get(0);
        if building > 0 {
            return Err(fail(&script, format!("case {seed:#x}: {building} segment(s) still building after {step}")));
        }
        if let Err(d) = check_drift(&mut c, stats) {
            return Err(fail(&script, format!("case {seed:#x}: DRIFT once every build is done:\n{d}")));
        }
    }
    let replay = replay_mismatches(&mut c);
    if !replay.is_empty() {
        return Err(fail(
            &script,
            format!(
                "case {seed:#x}: the change log does not replay to the membership ({} mismatches): {:?}",
                replay.len(),
                &replay[..replay.len().min(20)]
            ),
        ));
    }
    stats.cases += 1;
    Ok(())
}

#[test]
fn model() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let base = env_u64("KENBUN_MODEL_BASE_SEED").unwrap_or(DEFAULT_BASE_SEED);
    let seeds: Vec<u64> = match env_u64("KENBUN_MODEL_SEED") {
        Some(s) => vec![s],
        None => {
            let n = env_u64("KENBUN_MODEL_CASES").unwrap_or(DEFAULT_CASES);
            (0..n).map(|i| case_seed(base, i)).collect()
        }
    };
    let txs = env_u64("KENBUN_MODEL_TXS");
    let flag = |n: &str| std::env::var(n).map(|v| !v.is_empty() && v != "0").unwrap_or(false);
    let verbose = flag("KENBUN_MODEL_VERBOSE");
    let keep_going = flag("KENBUN_MODEL_KEEP_GOING");
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut failures: Vec<Failure> = vec![];
    for (i, &seed) in seeds.iter().enumerate() {
        let t0 = Instant::now();
        let txs_before = stats.txs;
        let r = run_case(seed, txs, verbose, &mut stats);
        if verbose || seeds.len() <= 3 {
            eprintln!(
                "model: case {} of {} seed {seed:#x}: {} transactions in {:.1?}: {}",
                i + 1,
                seeds.len(),
                stats.txs - txs_before,
                t0.elapsed(),
                if r.is_ok() { "ok" } else { "FAILED" }
            );
        }
        if let Err(f) = r {
            eprintln!("\nmodel: FAILED {}\n", f.text);
            eprintln!(
                "model: the failure came in case {} of the run, after {} transactions in this case ({} in the run)\n",
                i + 1,
                stats.txs - txs_before,
                stats.txs
            );
            failures.push(f);
            if !keep_going {
                break;
            }
        }
    }
    eprintln!(
        "model: {} case(s) passed of {} run ({} failed), base seed {base:#x}, in {:.1?}: {} transactions ({} statements, {} rolled back), {} drift checks",
        stats.cases,
        stats.cases as usize + failures.len(),
        failures.len(),
        start.elapsed(),
        stats.txs,
        stats.stmts,
        stats.rolled_back,
        stats.drift_checks
    );
    eprintln!(
        "model: {} segments generated, {} rejected by the compiler; {} of {} cases held a sibling-shaped lead segment",
        stats.segments,
        stats.rejected,
        stats.sibling_cases,
        stats.cases as usize + failures.len()
    );
    eprintln!(
        "model: {} case(s) with online builds ({} build steps between transactions)",
        stats.online_cases, stats.build_steps
    );
    eprintln!("model: transactions by kind: {:?}", stats.labels);
    eprintln!(
        "model: expected errors (rolled back) by SQLSTATE: {:?}",
        stats.expected_errors
    );
    if verbose {
        eprintln!("model: segments by construct: {:#?}", stats.shapes);
        eprintln!("model: rejections: {:#?}", stats.reject_reasons);
    }
    assert!(
        failures.is_empty(),
        "model test failed in case(s) {}; replay one with KENBUN_MODEL_SEED=<seed> (details above)",
        failures
            .iter()
            .map(|f| format!("{:#x}", f.seed))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
