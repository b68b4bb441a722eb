//! Deterministic fuzz input generator for kenbun rules, shared by the unit fuzz test
//! (`src/fuzz_tests.rs`, through `#[path]`) and the in-database run (`tests/fuzz_db.rs`).
//!
//! Pure Rust, only serde_json. Everything derives from one seeded splitmix64 generator, so a case
//! is reproduced from its seed alone. The module also declares the test schema (tables, mapped
//! fields, levels, saved segments) both runs compile against, so that structure-aware rules name
//! fields that exist.
#![allow(dead_code)]

use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// PRNG

/// splitmix64: tiny, fast, good enough for fuzzing, and trivially seedable.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (self.next_u64() as u128 % span) as i128) as i64
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        (self.next_u64() % 100) < percent as u64
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The seed of case `i` of a run with base seed `base` (each case is independent of the others).
pub fn case_seed(base: u64, i: u64) -> u64 {
    Rng::new(base ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

// ---------------------------------------------------------------------------------------------
// The test schema (shared by the unit catalog and the test database)

pub struct Table {
    pub kind: &'static str,
    pub schema: &'static str,
    pub name: &'static str,
    /// (column, type as `format_type` prints it)
    pub columns: &'static [(&'static str, &'static str)],
}

pub const LEADS: Table = Table {
    kind: "lead",
    schema: "public",
    name: "leads",
    columns: &[
        ("id", "bigint"),
        ("account_id", "bigint"),
        ("country", "text"),
        ("email", "character varying"),
        ("title", "text"),
        ("score", "integer"),
        ("small", "smallint"),
        ("revenue", "numeric"),
        ("ratio", "double precision"),
        ("weight", "real"),
        ("vip", "boolean"),
        ("last_seen_at", "timestamp with time zone"),
        ("signup_date", "date"),
        ("local_ts", "timestamp without time zone"),
        ("attributes", "jsonb"),
        ("ext_id", "uuid"),
        ("we\"ird", "text"),
        ("x'y;--", "integer"),
        ("Mixed Case", "text"),
        ("tags", "text[]"),
    ],
};

pub const ACCOUNTS: Table = Table {
    kind: "account",
    schema: "public",
    name: "accounts",
    columns: &[
        ("id", "bigint"),
        ("industry", "text"),
        ("employees", "integer"),
        ("arr", "numeric"),
        ("public", "boolean"),
        ("founded_on", "date"),
        ("props", "jsonb"),
    ],
};

/// Events live in a schema and table with hostile names: every subquery must quote them.
pub const EVENTS: Table = Table {
    kind: "event",
    schema: "app;--",
    name: "ev\"ents",
    columns: &[
        ("lead_id", "bigint"),
        ("type", "text"),
        ("occurred_at", "timestamp with time zone"),
        ("metadata", "jsonb"),
        ("amount", "numeric"),
    ],
};

pub const TABLES: [&Table; 3] = [&LEADS, &ACCOUNTS, &EVENTS];

/// Mapped fields: (kind, name, path, type).
pub const MAPPED: &[(&str, &str, &str, &str)] = &[
    ("lead", "plan", "attributes.plan", "text"),
    (
        "lead",
        "trial_ends",
        "attributes.trial_ends",
        "timestamp with time zone",
    ),
    ("lead", "mrr", "attributes.mrr", "numeric"),
    ("lead", "seats", "attributes.seats", "integer"),
    ("lead", "beta", "attributes.flags.beta", "boolean"),
    ("lead", "prefs", "attributes.prefs", "jsonb"),
    ("lead", "seen_day", "last_seen_at", "date"),
    ("lead", "score_text", "score", "text"),
    ("lead", "we'ird \"f\"", "attributes.we'ird", "text"),
    ("account", "tier", "props.tier", "text"),
    ("account", "founded", "props.founded", "date"),
    ("event", "url", "metadata.url", "text"),
    ("event", "amount_int", "amount", "integer"),
];

/// Levels: (name, field, [(tier, min as JSON number text)]).
pub const LEVELS: &[(&str, &str, &[(&str, &str)])] = &[
    (
        "engagement",
        "score",
        &[("Cold", "0"), ("Warm", "25"), ("Hot", "50"), ("On Fire", "75")],
    ),
    (
        "spend",
        "revenue",
        &[("Low", "0"), ("Mid", "99.5"), ("High", "1000"), ("Wh'ale\"", "1000000")],
    ),
    ("temp", "ratio", &[("Cold", "-10.5"), ("Warm", "0"), ("Hot", "30.25")]),
    ("mrr_level", "attributes.mrr", &[("Free", "0"), ("Paid", "1")]),
    ("acct_size", "employees", &[("Small", "0"), ("Big", "100")]),
    ("country_level", "country", &[("A", "0")]),
];

/// Saved segments, in dependency order: (name, kind, rule).
pub const SEGMENTS: &[(&str, &str, &str)] = &[
    ("us", "lead", r#"{"field":"country","op":"eq","value":"US"}"#),
    (
        "hot_us",
        "lead",
        r#"{"all":[{"segment":"us"},{"level":"engagement","op":"gte","value":"Hot"}]}"#,
    ),
    ("big", "account", r#"{"field":"employees","op":"gte","value":100}"#),
    (
        "abm",
        "account",
        r#"{"leads":{"where":{"segment":"hot_us"},"count":{"op":"gte","value":3}}}"#,
    ),
    (
        "we'ird \"seg\"",
        "lead",
        r#"{"event":{"type":"page_view","within":"30 days"}}"#,
    ),
];

/// Binding keys: (lead key, lead account key, account key, event lead key, type, time, metadata).
pub const LEAD_KEY: &str = "id";
pub const LEAD_ACCOUNT_KEY: &str = "account_id";
pub const ACCOUNT_KEY: &str = "id";
pub const EVENT_LEAD_KEY: &str = "lead_id";
pub const EVENT_TYPE: &str = "type";
pub const EVENT_TIME: &str = "occurred_at";
pub const EVENT_METADATA: &str = "metadata";

// ---------------------------------------------------------------------------------------------
// Vocabulary

/// Every key of the rule language.
pub const KEYWORDS: &[&str] = &[
    "all", "any", "not", "field", "op", "value", "level", "account", "event", "leads", "segment", "type", "where",
    "within", "count", "tz", "sum", "avg", "min", "max", "count_distinct", "first_within", "stopped", "min_before",
    "sequence", "steps", "max_gap",
];

/// The periods of `in_period`.
pub const PERIODS: &[&str] = &[
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
];

const TIME_ZONES: &[&str] = &["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "+05:30"];

pub const AGGREGATES: &[&str] = &["sum", "avg", "min", "max", "count_distinct"];

pub const FIELD_OPS: &[&str] = &[
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "matches",
    "is_set",
    "is_not_set",
    "before",
    "after",
    "within_last",
    "not_within_last",
    "has_any",
    "has_all",
    "has_none",
    "in_period",
    "between_ago",
    "in_next",
];
pub const LEVEL_OPS: &[&str] = &["eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in"];
pub const COUNT_OPS: &[&str] = &["eq", "neq", "gt", "gte", "lt", "lte"];
const BAD_OPS: &[&str] = &[
    "equals",
    "EQ",
    "Eq",
    " eq",
    "eq ",
    "=",
    "==",
    "!=",
    "<>",
    "like",
    "ilike",
    "~",
    "notin",
    "not in",
    "is_null",
    "exists",
    "",
    "gte;--",
    "in'",
    "\"",
    "$$",
    "within",
    "last",
    "before_or_on",
];

/// Hostile and boundary strings, used as values, field names, keys, tier and segment names.
const HOSTILE: &[&str] = &[
    "'",
    "''",
    "\"",
    "\"\"",
    "\\",
    "\\\\",
    "\\'",
    "'\\",
    "';--",
    "'); DROP TABLE leads; --",
    "\" OR 1=1 --",
    "--",
    "/*",
    "*/",
    "/* x */",
    "$$",
    "$tag$",
    "$1",
    "$",
    ";",
    "; SELECT pg_sleep(10);",
    "\u{0}",
    "a\u{0}b",
    "%",
    "_",
    "\\%",
    "\\_",
    "%_%",
    "E'",
    "e'\\x41'",
    "U&'\\0041'",
    "U&\"\\0041\"",
    "\n",
    "\r\n",
    "\t",
    "\u{b}",
    "\u{7f}",
    "é",
    "日本語",
    "🙂",
    "\u{202e}evil",
    "\u{feff}",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{85}",
    "\u{2028}",
    " ",
    "",
    ".",
    "..",
    "a.b",
    "attributes.",
    ".attributes",
    "attributes..plan",
    "attributes.plan.",
    "NULL",
    "null",
    "true",
    "0",
    "-1",
    "::text",
    "->>",
    "@>",
    ")",
    "(",
    "((",
    ")) OR ((",
    "?",
    "?|",
    "#>>",
    "\\N",
    "%s",
    "%I",
    "%L",
    "{}",
    "[]",
    "{\"a\":1}",
    "[1,2]",
    "nan",
    "NaN",
    "Infinity",
    "-infinity",
    "epoch",
    "now",
    "allballs",
];

const PLAIN_WORDS: &[&str] = &[
    "US",
    "CA",
    "DE",
    "SaaS",
    "Retail",
    "pro",
    "team",
    "free",
    "VP",
    "Head",
    "@acme.io",
    "page_view",
    "demo_request",
    "signup",
    "/pricing",
    "ads",
    "Cold",
    "Warm",
    "Hot",
    "On Fire",
    "x",
    "abc",
];

const EXTREME_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "0.0000000000000000000000001",
    "-0",
    "-0.0",
    "1E2",
    "1e+2",
    "1.5e308",
    "4.9e-324",
    "2.5",
    "100000000000000000000.5",
    "1e39",
    "-1e39",
    "3.4028235e38",
    "1e20",
];

/// Marker for a number literal that serde_json cannot represent: `Value::String(NUM_MARK + "1e400")`
/// is written as the bare literal `1e400` by [`to_text`].
const NUM_MARK: &str = "\u{1}#";

const UNITS: &[&str] = &[
    "microseconds",
    "milliseconds",
    "second",
    "seconds",
    "sec",
    "secs",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "mon",
    "mons",
    "year",
    "years",
    "yr",
    "yrs",
    "DAYS",
    "Hours",
];

const BAD_INTERVALS: &[&str] = &[
    "30 dayz",
    "-1 days",
    "1 day 2",
    "",
    " ",
    "P1D",
    "1e3 days",
    "30",
    "days",
    "1..5 days",
    ". days",
    "1 fortnight",
    "30 days; DROP",
    "30 days'",
    "1 day\u{0}",
    "1 day -- x",
    "infinity",
    "1 décennie",
    "999999999999999 days",
];

const GOOD_REGEXES: &[&str] = &[
    "^(VP|Head) ",
    "a.*b",
    "[[:alpha:]]+",
    "\\d+",
    "^$",
    ".",
    "x{2,3}",
    "(?i)acme",
    "\\mword\\M",
    "[^']",
    "'",
    "\\\\",
    "$$",
    "a|b|c",
    "(a)(b)\\2",
];
const BAD_REGEXES: &[&str] = &[
    "[", "(", "a{2,1}", "*", "\\", "(?<x>a)", "a{99999}", "[z-a]", "(?z)", ")",
];

// ---------------------------------------------------------------------------------------------
// Strings, numbers, dates, intervals

pub fn hostile_string(r: &mut Rng) -> String {
    match r.below(10) {
        0..=3 => r.pick(HOSTILE).to_string(),
        4 => {
            // a concatenation of several hostile pieces
            (0..r.range(2, 6)).map(|_| *r.pick(HOSTILE)).collect()
        }
        5 => {
            // a long string: usually some KB, rarely up to 200 KB
            let n = if r.chance(2) {
                r.range(10_000, 200_000)
            } else {
                r.range(64, 2_000)
            } as usize;
            let unit = *r.pick(&["a", "'", "\\", "é", "🙂", "$$", "''\\"]);
            unit.repeat(n / unit.len().max(1) + 1)
        }
        6 => {
            // random code points
            (0..r.range(1, 24))
                .map(|_| match r.below(4) {
                    0 => char::from_u32(r.range(0, 0x7f) as u32).unwrap(),
                    1 => char::from_u32(r.range(0x80, 0x7ff) as u32).unwrap(),
                    2 => char::from_u32(r.range(0xe000, 0xfffd) as u32).unwrap(),
                    _ => char::from_u32(r.range(0x10000, 0x10ffff) as u32).unwrap_or('x'),
                })
                .collect()
        }
        _ => r.pick(PLAIN_WORDS).to_string(),
    }
}

fn text_value(r: &mut Rng) -> String {
    if r.chance(60) {
        r.pick(PLAIN_WORDS).to_string()
    } else {
        hostile_string(r)
    }
}

pub fn number(r: &mut Rng) -> Value {
    match r.below(12) {
        0..=3 => json!(r.range(-5, 100)),
        4 => json!(r.range(i64::MIN, i64::MAX)),
        5 => json!(*r.pick(&[i64::MIN, i64::MAX, 0, -1, i32::MAX as i64 + 1, i16::MAX as i64 + 1])),
        6 => json!(*r.pick(&[u64::MAX, i64::MAX as u64 + 1])),
        7 => json!(r.range(-1000, 1000) as f64 / 8.0),
        8 => json!(*r.pick(&[
            1e300,
            -1e300,
            1e-300,
            3.5e38,
            1e39,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1,
            1e15 + 0.5
        ])),
        9 => Value::String(format!("{NUM_MARK}{}", r.pick(EXTREME_NUMBERS))),
        _ => json!(r.range(0, 10)),
    }
}

pub fn iso_datetime(r: &mut Rng) -> String {
    if r.chance(15) {
        return r
            .pick(&[
                "2024-02-30",
                "2023-02-29",
                "2024-13-01",
                "0000-01-01",
                "10000-01-01",
                "2024-1-1",
                "2024-01-31T24:00",
                "2024-01-31T12:60",
                "2024-01-31T12:00:00.1234567",
                "2024-01-31T12:00+15",
                "2024-01-31T12:00:00ZZ",
                "2024-01-31 12:00:00 PST",
                "31/01/2024",
                "2024-01-31T",
                "now",
                "today",
                "infinity",
                "-infinity",
                "epoch",
                "2024-01-31T12:00:00+14:60",
                "2024-01-31'",
            ])
            .to_string();
    }
    let y = if r.chance(10) {
        *r.pick(&[1, 9999, 1582, 2000, 1900])
    } else {
        r.range(1900, 2100)
    };
    let m = r.range(1, 12);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let md = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
    let d = r.range(1, md);
    let mut s = format!("{y:04}-{m:02}-{d:02}");
    if r.chance(60) {
        s.push(if r.chance(80) { 'T' } else { ' ' });
        s.push_str(&format!("{:02}:{:02}", r.range(0, 23), r.range(0, 59)));
        if r.chance(60) {
            s.push_str(&format!(":{:02}", r.range(0, 59)));
            if r.chance(30) {
                let digits = r.range(1, 6) as usize;
                s.push('.');
                s.push_str(&"123456"[..digits]);
            }
        }
        match r.below(4) {
            0 => s.push('Z'),
            1 => s.push_str(&format!("{}{:02}", r.pick(&["+", "-"]), r.range(0, 14))),
            2 => s.push_str(&format!(
                "{}{:02}:{:02}",
                r.pick(&["+", "-"]),
                r.range(0, 14),
                r.range(0, 59)
            )),
            _ => {}
        }
    }
    s
}

pub fn interval(r: &mut Rng) -> String {
    if r.chance(15) {
        return r.pick(BAD_INTERVALS).to_string();
    }
    let pairs = r.range(1, 3);
    let mut parts = vec![];
    for _ in 0..pairs {
        let n = match r.below(11) {
            0 => "999999999999".to_string(),
            1 => format!("{}", r.range(100_000, 99_999_999)),
            2 => format!("{}.{}", r.range(0, 99), r.range(0, 99)),
            3 => "0".into(),
            4 => ".5".into(),
            // around the 1000-year cap
            5 => r
                .pick(&[
                    "1000", "1001", "12000", "12001", "52178", "365250", "365251", "1.5", "0.000001",
                ])
                .to_string(),
            _ => format!("{}", r.range(1, 90)),
        };
        parts.push(format!("{n} {}", r.pick(UNITS)));
    }
    let s = parts.join(" ");
    if r.chance(10) {
        format!("  {s}\t")
    } else {
        s
    }
}

fn uuid(r: &mut Rng) -> String {
    if r.chance(20) {
        return hostile_string(r);
    }
    let h = format!("{:016x}{:016x}", r.next_u64(), r.next_u64());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn regex(r: &mut Rng) -> String {
    match r.below(10) {
        0..=5 => r.pick(GOOD_REGEXES).to_string(),
        6..=7 => r.pick(BAD_REGEXES).to_string(),
        _ => hostile_string(r),
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON

pub fn scalar(r: &mut Rng) -> Value {
    match r.below(6) {
        0 => Value::Null,
        1 => Value::Bool(r.chance(50)),
        2 | 3 => number(r),
        _ => Value::String(if r.chance(50) {
            hostile_string(r)
        } else {
            r.pick(KEYWORDS).to_string()
        }),
    }
}

fn key(r: &mut Rng) -> String {
    match r.below(10) {
        0..=5 => r.pick(KEYWORDS).to_string(),
        6 => {
            let w = *r.pick(KEYWORDS);
            typo(r, w)
        }
        7 => r.pick(FIELD_OPS).to_string(),
        _ => hostile_string(r),
    }
}

/// Arbitrary JSON, keys mostly from the rule language.
pub fn arbitrary_json(r: &mut Rng, depth: usize) -> Value {
    if depth == 0 || r.chance(30) {
        return scalar(r);
    }
    if r.chance(50) {
        let n = r.below(5);
        let mut m = Map::new();
        for _ in 0..n {
            let k = key(r);
            m.insert(k, arbitrary_json(r, depth - 1));
        }
        Value::Object(m)
    } else {
        Value::Array((0..r.below(5)).map(|_| arbitrary_json(r, depth - 1)).collect())
    }
}

/// A near miss of a word: one edit, a case change, or padding.
fn typo(r: &mut Rng, w: &str) -> String {
    let mut c: Vec<char> = w.chars().collect();
    match r.below(6) {
        0 if !c.is_empty() => {
            let i = r.below(c.len());
            c.remove(i);
        }
        1 => {
            let i = r.below(c.len() + 1);
            c.insert(i, *r.pick(&['x', 's', '_', ' ', '\'', '"', 'é']));
        }
        2 if c.len() > 1 => {
            let i = r.below(c.len() - 1);
            c.swap(i, i + 1);
        }
        3 => return w.to_uppercase(),
        4 => return format!("{w} "),
        _ => return format!("{w}{w}"),
    }
    c.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Structure-aware rules

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lead,
    Account,
    Event,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Account => "account",
            Kind::Event => "event",
        }
    }
    fn table(self) -> &'static Table {
        match self {
            Kind::Lead => &LEADS,
            Kind::Account => &ACCOUNTS,
            Kind::Event => &EVENTS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Int,
    Num,
    Bool,
    Time,
    Jsonb,
    /// a dotted path into a jsonb column, no declared type
    Path,
    /// text[]
    Array,
    /// uuid
    Other,
}

fn class_of(t: &str) -> Class {
    match t {
        "text" | "character varying" => Class::Text,
        "smallint" | "integer" | "bigint" => Class::Int,
        "numeric" | "real" | "double precision" => Class::Num,
        "boolean" => Class::Bool,
        "date" | "timestamp with time zone" | "timestamp without time zone" => Class::Time,
        "jsonb" => Class::Jsonb,
        "text[]" => Class::Array,
        _ => Class::Other,
    }
}

/// The fields of a kind with their class: columns, mapped fields and some JSON paths.
fn fields(kind: Kind) -> Vec<(String, Class)> {
    let t = kind.table();
    let mut v: Vec<(String, Class)> = t.columns.iter().map(|(n, ty)| (n.to_string(), class_of(ty))).collect();
    for (k, n, _, ty) in MAPPED {
        if *k == kind.name() {
            v.push((n.to_string(), class_of(ty)));
        }
    }
    let paths: &[&str] = match kind {
        Kind::Lead => &[
            "attributes.plan",
            "attributes.mrr",
            "attributes.flags.beta",
            "attributes.tags.src",
            "attributes.x'y",
            "attributes.\"q\"",
            "attributes.a.b.c.d.e",
            "attributes.$$",
            "attributes.;--",
        ],
        Kind::Account => &["props.tier", "props.size", "props.a'b"],
        Kind::Event => &["metadata.url", "metadata.utm.source", "metadata.n", "metadata.'"],
    };
    v.extend(paths.iter().map(|p| (p.to_string(), Class::Path)));
    v
}

/// Operators that apply to a class (the compiler's table, from the README).
fn ops_for(c: Class) -> &'static [&'static str] {
    match c {
        Class::Text => &[
            "eq",
            "neq",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "matches",
            "is_set",
            "is_not_set",
        ],
        Class::Int | Class::Num | Class::Other => &[
            "eq",
            "neq",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "in",
            "not_in",
            "is_set",
            "is_not_set",
        ],
        Class::Bool => &["eq", "neq", "in", "not_in", "is_set", "is_not_set"],
        Class::Time => &[
            "eq",
            "neq",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "in",
            "not_in",
            "is_set",
            "is_not_set",
            "before",
            "after",
            "within_last",
            "not_within_last",
            "in_period",
            "between_ago",
            "in_next",
        ],
        Class::Jsonb => &[
            "eq",
            "neq",
            "contains",
            "not_contains",
            "is_set",
            "is_not_set",
            "has_any",
            "has_all",
            "has_none",
        ],
        Class::Array => &["has_any", "has_all", "has_none", "is_set", "is_not_set"],
        Class::Path => FIELD_OPS,
    }
}

/// A scalar value fitting a class.
fn value_for(r: &mut Rng, c: Class) -> Value {
    match c {
        Class::Text => Value::String(text_value(r)),
        Class::Int | Class::Num => number(r),
        Class::Bool => Value::Bool(r.chance(50)),
        Class::Time => Value::String(iso_datetime(r)),
        Class::Jsonb => arbitrary_json(r, 3),
        Class::Other => Value::String(uuid(r)),
        Class::Array => json!([text_value(r)]),
        Class::Path => match r.below(3) {
            0 => Value::String(text_value(r)),
            1 => number(r),
            _ => Value::Bool(r.chance(50)),
        },
    }
}

fn field_cond(r: &mut Rng, kind: Kind) -> Value {
    let fs = fields(kind);
    let (name, class) = if r.chance(88) {
        r.pick(&fs).clone()
    } else {
        let other = fields(*r.pick(&[Kind::Lead, Kind::Account, Kind::Event]));
        let (n, c) = r.pick(&other).clone();
        match r.below(4) {
            0 => (n, c),
            1 => (typo(r, &n), c),
            2 => (hostile_string(r), Class::Text),
            _ => (format!("{n}.{}", hostile_string(r)), Class::Path),
        }
    };
    let op = if r.chance(80) {
        *r.pick(ops_for(class))
    } else {
        *r.pick(FIELD_OPS)
    };
    // the value's class: for untyped paths one type for the whole condition
    let vc = if class == Class::Path {
        *r.pick(&[Class::Text, Class::Num, Class::Bool])
    } else {
        class
    };
    let value = if r.chance(8) {
        Some(scalar(r))
    } else {
        match op {
            "is_set" | "is_not_set" => None,
            "between" => Some(json!([value_for(r, vc), value_for(r, vc)])),
            "in" | "not_in" => {
                let n = if r.chance(3) { 0 } else { r.range(1, 5) };
                Some(Value::Array((0..n).map(|_| value_for(r, vc)).collect()))
            }
            "contains" | "not_contains" if class == Class::Jsonb || (class == Class::Path && r.chance(30)) => {
                Some(if r.chance(50) {
                    json!({"source": text_value(r)})
                } else {
                    arbitrary_json(r, 3)
                })
            }
            "contains" | "not_contains" | "starts_with" | "ends_with" => Some(Value::String(text_value(r))),
            "matches" => Some(Value::String(regex(r))),
            "before" | "after" => Some(Value::String(iso_datetime(r))),
            "within_last" | "not_within_last" | "in_next" => Some(Value::String(interval(r))),
            "has_any" | "has_all" | "has_none" => {
                let n = if r.chance(3) { 0 } else { r.range(1, 4) };
                Some(Value::Array((0..n).map(|_| Value::String(text_value(r))).collect()))
            }
            "in_period" => Some(Value::String(period_name(r))),
            "between_ago" => Some(json!([interval(r), interval(r)])),
            _ => Some(value_for(r, vc)),
        }
    };
    let mut m = Map::new();
    m.insert("field".into(), Value::String(name));
    m.insert("op".into(), Value::String(op.into()));
    if let Some(v) = value {
        m.insert("value".into(), v);
    }
    if (op == "in_period" && r.chance(40)) || r.chance(2) {
        m.insert("tz".into(), time_zone(r));
    }
    Value::Object(m)
}

fn period_name(r: &mut Rng) -> String {
    match r.below(12) {
        0 => {
            let p = *r.pick(PERIODS);
            typo(r, p)
        }
        1 => hostile_string(r),
        _ => r.pick(PERIODS).to_string(),
    }
}

fn time_zone(r: &mut Rng) -> Value {
    match r.below(10) {
        0 => scalar(r),
        1 => Value::String(hostile_string(r)),
        _ => Value::String(r.pick(TIME_ZONES).to_string()),
    }
}

/// An event type: usually one of the known ones, sometimes a list, sometimes wrong.
fn event_type(r: &mut Rng) -> Value {
    if r.chance(75) {
        Value::String(r.pick(&["page_view", "demo_request", "signup"]).to_string())
    } else if r.chance(80) {
        Value::Array((0..r.range(0, 3)).map(|_| Value::String(text_value(r))).collect())
    } else {
        scalar(r)
    }
}

/// `{"field": …, "op": …, "value": …}` of an event aggregate.
fn aggregate(r: &mut Rng, name: &str) -> Value {
    let fs = fields(Kind::Event);
    let field = if name != "count_distinct" && r.chance(70) {
        r.pick(&["amount", "amount_int", "metadata.n"]).to_string()
    } else {
        r.pick(&fs).0.clone()
    };
    let c = count(r);
    let value = match r.below(10) {
        _ if name == "count_distinct" => c["value"].clone(),
        0..=5 => json!(r.range(-5, 1000)),
        6 => c["value"].clone(),
        _ => number(r),
    };
    json!({"field": field, "op": c["op"], "value": value})
}

/// The behaviour keys of an event condition besides type, where, within and count: an aggregate,
/// first_within or stopped (each now and then together with a key it excludes).
fn event_behaviour(r: &mut Rng, e: &mut Map<String, Value>) {
    match r.below(10) {
        0..=2 => {
            let a = *r.pick(AGGREGATES);
            e.insert(a.into(), aggregate(r, a));
            if r.chance(5) {
                let b = *r.pick(AGGREGATES);
                e.insert(b.into(), aggregate(r, b));
            }
        }
        3 => {
            e.insert("first_within".into(), Value::String(interval(r)));
        }
        4 => {
            e.insert("stopped".into(), Value::String(interval(r)));
            if r.chance(40) {
                let n = if r.chance(85) { json!(r.range(1, 5)) } else { scalar(r) };
                e.insert("min_before".into(), n);
            }
        }
        5 if r.chance(20) => {
            e.insert("min_before".into(), json!(r.range(0, 3)));
        }
        _ => {}
    }
}

fn sequence(r: &mut Rng, depth: usize, budget: &mut i64) -> Value {
    let n = if r.chance(5) { *r.pick(&[0, 1, 6]) } else { r.range(2, 5) as usize };
    let steps: Vec<Value> = (0..n)
        .map(|_| {
            let mut st = Map::new();
            if r.chance(80) {
                st.insert("type".into(), event_type(r));
            }
            if r.chance(40) && depth > 0 {
                st.insert("where".into(), rule(r, Kind::Event, depth - 1, budget));
            }
            Value::Object(st)
        })
        .collect();
    let mut q = Map::new();
    q.insert("steps".into(), Value::Array(steps));
    if r.chance(50) {
        q.insert("max_gap".into(), Value::String(interval(r)));
    }
    if r.chance(50) {
        q.insert("within".into(), Value::String(interval(r)));
    }
    json!({ "sequence": q })
}

fn level_cond(r: &mut Rng) -> Value {
    let (name, _, tiers) = *r.pick(LEVELS);
    let name = match r.below(12) {
        0 => typo(r, name),
        1 => hostile_string(r),
        _ => name.to_string(),
    };
    let op = if r.chance(90) {
        *r.pick(LEVEL_OPS)
    } else {
        *r.pick(FIELD_OPS)
    };
    let tier = |r: &mut Rng| -> Value {
        match r.below(12) {
            0 => {
                let w = r.pick(tiers).0;
                Value::String(typo(r, w))
            }
            1 => Value::String(hostile_string(r)),
            2 => scalar(r),
            _ => Value::String(r.pick(tiers).0.to_string()),
        }
    };
    let value = if op == "in" || op == "not_in" {
        let n = if r.chance(3) { 0 } else { r.range(1, 4) };
        Value::Array((0..n).map(|_| tier(r)).collect())
    } else {
        tier(r)
    };
    json!({"level": name, "op": op, "value": value})
}

fn count(r: &mut Rng) -> Value {
    let op = if r.chance(92) {
        r.pick(COUNT_OPS).to_string()
    } else {
        r.pick(BAD_OPS).to_string()
    };
    let value = match r.below(10) {
        0 => number(r),
        1 => scalar(r),
        _ => json!(r.range(0, 5)),
    };
    json!({"op": op, "value": value})
}

fn segment_name(r: &mut Rng) -> Value {
    match r.below(10) {
        0 => {
            let w = r.pick(SEGMENTS).0;
            Value::String(typo(r, w))
        }
        1 => Value::String(hostile_string(r)),
        2 => json!(["us"]),
        3 => Value::String("loop_a".into()),
        _ => Value::String(r.pick(SEGMENTS).0.to_string()),
    }
}

/// A rule for `kind`, built from the grammar. Mostly well-formed; a few percent of its choices are
/// deliberately wrong (wrong kind of condition, wrong shape).
pub fn rule(r: &mut Rng, kind: Kind, depth: usize, budget: &mut i64) -> Value {
    *budget -= 1;
    let leaf = depth == 0 || *budget <= 0;
    let pick = if leaf { r.range(3, 19) } else { r.range(0, 19) };
    match (pick, kind) {
        (0 | 1, _) => {
            let n = if r.chance(8) { 0 } else { r.range(1, 4) };
            let items: Vec<Value> = (0..n).map(|_| rule(r, kind, depth - 1, budget)).collect();
            let mut m = Map::new();
            m.insert(r.pick(&["all", "any"]).to_string(), Value::Array(items));
            Value::Object(m)
        }
        (2, _) => json!({"not": rule(r, kind, depth.saturating_sub(1), budget)}),
        (3, Kind::Lead) | (3, Kind::Event) if r.chance(70) => level_cond(r),
        (4, Kind::Lead) if depth > 0 => json!({"account": rule(r, Kind::Account, depth - 1, budget)}),
        (5, Kind::Lead) => {
            let mut e = Map::new();
            if r.chance(70) {
                let t = event_type(r);
                e.insert("type".into(), t);
            }
            if r.chance(50) && depth > 0 {
                e.insert("where".into(), rule(r, Kind::Event, depth - 1, budget));
            }
            if r.chance(40) {
                e.insert("within".into(), Value::String(interval(r)));
            }
            let behaviour = r.chance(50);
            if behaviour {
                event_behaviour(r, &mut e);
            }
            // count, within and the behaviour keys exclude each other (now and then both, on purpose)
            let exclusive = ["sum", "avg", "min", "max", "count_distinct", "first_within", "stopped"];
            let taken = exclusive.iter().any(|k| e.contains_key(*k));
            if (e.contains_key("first_within") || e.contains_key("stopped")) && !r.chance(5) {
                e.remove("within");
            }
            if r.chance(if taken { 3 } else { 50 }) {
                e.insert("count".into(), count(r));
            }
            json!({ "event": e })
        }
        (9, Kind::Lead) if depth > 0 && r.chance(60) => sequence(r, depth, budget),
        (6, Kind::Account) if depth > 0 => {
            let mut l = Map::new();
            if r.chance(75) {
                l.insert("where".into(), rule(r, Kind::Lead, depth - 1, budget));
            }
            if r.chance(60) {
                l.insert("count".into(), count(r));
            }
            json!({ "leads": l })
        }
        (3, Kind::Account) => level_cond(r),
        (7, Kind::Lead | Kind::Account) if r.chance(50) => json!({"segment": segment_name(r)}),
        (8, _) if r.chance(10) => {
            // a condition of the wrong kind of rule
            match r.below(3) {
                0 => json!({"account": {"field":"industry","op":"eq","value":"SaaS"}}),
                1 if r.chance(50) => json!({"sequence": {"steps":[{"type":"page_view"},{"type":"signup"}]}}),
                1 => json!({"event": {"type":"page_view"}}),
                _ => json!({"leads": {}}),
            }
        }
        _ => field_cond(r, kind),
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn all_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                here.push(Step::Key(k.clone()));
                all_paths(x, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(Step::Index(i));
                all_paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    let mut cur = v;
    for s in path {
        cur = match s {
            Step::Key(k) => cur.get_mut(k.as_str()).unwrap(),
            Step::Index(i) => cur.get_mut(*i).unwrap(),
        };
    }
    cur
}

/// Applies one random mutation at a random node.
pub fn mutate(r: &mut Rng, doc: &mut Value) {
    let mut paths = vec![];
    all_paths(doc, &mut vec![], &mut paths);
    let path = r.pick(&paths).clone();
    let node = node_mut(doc, &path);
    match r.below(14) {
        0 => {
            // drop a key
            if let Value::Object(m) = node {
                if !m.is_empty() {
                    let k = m.keys().nth(r.below(m.len())).unwrap().clone();
                    m.remove(&k);
                }
            }
        }
        1 => {
            // add a keyword (a second rule key, an unknown key, …) with some value
            if let Value::Object(m) = node {
                let k = key(r);
                let v = if r.chance(50) {
                    rule(r, Kind::Lead, 1, &mut 3)
                } else {
                    scalar(r)
                };
                m.insert(k, v);
            }
        }
        2 => {
            // rename a key
            if let Value::Object(m) = node {
                if !m.is_empty() {
                    let k = m.keys().nth(r.below(m.len())).unwrap().clone();
                    let v = m.remove(&k).unwrap();
                    let nk = if r.chance(50) { typo(r, &k) } else { key(r) };
                    m.insert(nk, v);
                }
            }
        }
        3 => *node = scalar(r),
        4 => *node = arbitrary_json(r, 3),
        5 => {
            // a wrong operator
            if let Value::Object(m) = node {
                let op = match r.below(4) {
                    0 => Value::String(r.pick(BAD_OPS).to_string()),
                    1 => Value::String(r.pick(LEVEL_OPS).to_string()),
                    2 => scalar(r),
                    _ => Value::String(r.pick(FIELD_OPS).to_string()),
                };
                m.insert("op".into(), op);
            }
        }
        6 => {
            let inner = node.take();
            *node = match r.below(4) {
                0 => json!([inner]),
                1 => json!({"not": inner}),
                2 => json!({"all": [inner]}),
                _ => json!({"any": [inner.clone(), inner]}),
            };
        }
        7 => {
            // duplicate an array element, or copy a value under another key
            match node {
                Value::Array(a) if !a.is_empty() => {
                    let x = a[r.below(a.len())].clone();
                    a.push(x);
                }
                Value::Object(m) if !m.is_empty() => {
                    let v = m.values().nth(r.below(m.len())).unwrap().clone();
                    m.insert(r.pick(KEYWORDS).to_string(), v);
                }
                _ => {}
            }
        }
        8 => {
            if node.is_number() || r.chance(30) {
                *node = number(r);
            }
        }
        9 => {
            if node.is_string() || r.chance(30) {
                *node = Value::String(hostile_string(r));
            }
        }
        10 => {
            *node = match node {
                Value::Array(_) => json!([]),
                Value::Object(_) => json!({}),
                _ => Value::Null,
            }
        }
        11 => {
            // a value of the wrong JSON type for "value"
            if let Value::Object(m) = node {
                if m.contains_key("value") {
                    let v = match r.below(5) {
                        0 => json!([]),
                        1 => json!({}),
                        2 => json!([1, "a"]),
                        3 => json!([[1], [2]]),
                        _ => scalar(r),
                    };
                    m.insert("value".into(), v);
                }
            }
        }
        12 => {
            // swap with a fresh sub-rule
            let k = *r.pick(&[Kind::Lead, Kind::Account, Kind::Event]);
            *node = rule(r, k, 2, &mut 6);
        }
        _ => {
            if let Value::Array(a) = node {
                if a.len() > 1 {
                    let i = r.below(a.len());
                    a.remove(i);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

/// `n` nested `not`s around a leaf: the leaf sits at depth `n` (the root is depth 0).
pub fn nest_not(n: usize) -> Value {
    nest_not_around(n, json!({"field":"country","op":"eq","value":"US"}))
}

/// `n` nested `not`s around `leaf`.
pub fn nest_not_around(n: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..n {
        v = json!({ "not": v });
    }
    v
}

/// `n` nested single-element groups of mixed kinds.
pub fn nest_groups(r: &mut Rng, n: usize) -> Value {
    let mut v = json!({"field":"score","op":"gt","value":1});
    for _ in 0..n {
        v = match r.below(3) {
            0 => json!({ "all": [v] }),
            1 => json!({ "any": [v] }),
            _ => json!({ "not": v }),
        };
    }
    v
}

/// `{"all":[…]}` with `n` leaf conditions: `n + 1` nodes.
pub fn wide_all(n: usize) -> Value {
    json!({ "all": (0..n).map(|i| json!({"field":"score","op":"gte","value": i})).collect::<Vec<_>>() })
}

/// A valid rule whose text is exactly `bytes` bytes long (bytes ≥ 64).
pub fn text_of_size(bytes: usize) -> String {
    let head = r#"{"field":"country","op":"eq","value":""#;
    let tail = r#""}"#;
    let pad = bytes - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// JSON text nested `n` deep without building the value (past serde_json's recursion limit).
pub fn deep_text(r: &mut Rng, n: usize) -> String {
    match r.below(3) {
        0 => format!("{}{}", "[".repeat(n), "]".repeat(n)),
        1 => format!("{}1{}", "{\"not\":".repeat(n), "}".repeat(n)),
        _ => format!("{}{{}}{}", "{\"all\":[".repeat(n), "]}".repeat(n)),
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

/// One fuzz case: the rule text as sent to `kenbun.segment_rule`, and the kind to compile for.
#[derive(Debug, Clone)]
pub struct Case {
    pub text: String,
    pub kind: String,
    /// Which generator made it (for statistics).
    pub source: &'static str,
}

/// Serializes a document, writing number markers as bare number literals.
pub fn to_text(v: &Value) -> String {
    let s = v.to_string();
    let mark = "\"\\u0001#";
    if !s.contains(mark) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find(mark) {
        out.push_str(&rest[..i]);
        let after = &rest[i + mark.len()..];
        let end = after.find('"').unwrap();
        out.push_str(&after[..end]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Corrupts JSON text: truncation, a spliced character, a deleted one, a broken escape.
fn corrupt_text(r: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return "{".into();
    }
    let i = r.below(chars.len());
    let mut c = chars.clone();
    match r.below(7) {
        0 => c.truncate(i),
        1 => {
            c.remove(i);
        }
        2 => c.insert(
            i,
            *r.pick(&['{', '}', '[', ']', '"', ',', ':', '\\', '\'', '\u{0}', ' ', 'x', '1']),
        ),
        3 => {
            let ins: Vec<char> = r
                .pick(&[
                    "\\u0000", "\\ud800", "\\uDFFF", "\\x41", "\\", "\\u12", "NaN", "Infinity", "//", "/*",
                ])
                .chars()
                .collect();
            c.splice(i..i, ins);
        }
        4 if s.len() > 2 && s.starts_with('{') && s.ends_with('}') => {
            // duplicate keys: the same object twice merged textually
            return format!("{},{}", &s[..s.len() - 1], &s[1..]);
        }
        5 => return format!("{s}{}", r.pick(&[" ", "\n", "x", "{}", ",", "\u{0}", ";--"])),
        _ => return format!("{}{s}", r.pick(&[" ", "\u{feff}", "\n\t", "[", "\"", "--"])),
    }
    c.into_iter().collect()
}

fn random_kind(r: &mut Rng, k: Kind) -> String {
    if r.chance(2) {
        r.pick(&["event", "Lead", "", "leads", "account;--", "'"]).to_string()
    } else if r.chance(5) {
        // a rule for the other kind
        if k == Kind::Lead { "account" } else { "lead" }.to_string()
    } else {
        k.name().to_string()
    }
}

/// Case number `seed`: a structure-aware rule (often mutated), arbitrary JSON, corrupted text or a
/// limit probe.
pub fn gen_case(seed: u64) -> Case {
    let r = &mut Rng::new(seed);
    let k = if r.chance(70) { Kind::Lead } else { Kind::Account };
    let kind = random_kind(r, k);
    let p = r.below(1000);
    let (text, source) = if p < 430 {
        let depth = r.range(0, 5) as usize;
        let mut budget = r.range(1, 40);
        let v = rule(r, k, depth, &mut budget);
        (to_text(&v), "grammar")
    } else if p < 730 {
        let depth = r.range(0, 5) as usize;
        let mut budget = r.range(1, 40);
        let mut v = rule(r, k, depth, &mut budget);
        for _ in 0..r.range(1, 4) {
            mutate(r, &mut v);
        }
        (to_text(&v), "mutated")
    } else if p < 840 {
        let depth = r.range(1, 6) as usize;
        (to_text(&arbitrary_json(r, depth)), "arbitrary")
    } else if p < 940 {
        let depth = r.range(0, 3) as usize;
        let v = rule(r, k, depth, &mut 10);
        let mut s = to_text(&v);
        for _ in 0..r.range(1, 3) {
            s = corrupt_text(r, &s);
        }
        (s, "corrupted")
    } else if p < 960 {
        (hostile_string(r), "raw")
    } else {
        // limit probes
        let s = match r.below(10) {
            0 | 1 => to_text(&nest_not(r.range(30, 35) as usize)),
            2 | 3 => {
                let n = r.range(30, 35) as usize;
                to_text(&nest_groups(r, n))
            }
            4 if r.chance(40) => to_text(&wide_all(r.range(1997, 2002) as usize)),
            5 => {
                let n = r.range(100, 3000) as usize;
                deep_text(r, n)
            }
            6 if r.chance(4) => text_of_size(*r.pick(&[(1 << 20) - 1, 1 << 20, (1 << 20) + 1])),
            7 => {
                // nested far, then mutated: errors must be reported at the right depth
                let n = r.range(25, 40) as usize;
                let mut v = nest_groups(r, n);
                mutate(r, &mut v);
                to_text(&v)
            }
            _ => {
                let mut v = json!({"event": {"where": nest_not(r.range(28, 33) as usize)}});
                if r.chance(50) {
                    v = json!({"leads": {"where": v}});
                }
                to_text(&v)
            }
        };
        (s, "limits")
    };
    Case { text, kind, source }
}

// ---------------------------------------------------------------------------------------------
// The corpus (tests/fuzz/corpus.jsonl; its format is described at its top)

pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus.jsonl");

/// One corpus entry: the text to send, the kind, and the expected outcomes ("ok" or a SQLSTATE).
pub struct CorpusEntry {
    pub line: usize,
    pub name: String,
    pub text: String,
    pub kind: String,
    /// In the pure core.
    pub expect: String,
    /// In the database (`expect_db`, or `expect` when absent).
    pub expect_db: String,
}

pub fn read_corpus() -> Vec<CorpusEntry> {
    let src = std::fs::read_to_string(CORPUS).unwrap_or_else(|e| panic!("{CORPUS}: {e}"));
    let mut out = vec![];
    for (i, line) in src.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let v: Value = serde_json::from_str(t).unwrap_or_else(|e| panic!("corpus line {line_no}: not JSON: {e}"));
        let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let text = if let Some(d) = v.get("doc") {
            d.to_string()
        } else if let Some(t) = get("text") {
            t
        } else if let Some(g) = v.get("gen") {
            corpus_gen(g).unwrap_or_else(|| panic!("corpus line {line_no}: unknown gen {g}"))
        } else {
            panic!("corpus line {line_no}: needs \"doc\", \"text\" or \"gen\"")
        };
        let expect = get("expect").unwrap_or_else(|| panic!("corpus line {line_no}: no \"expect\""));
        out.push(CorpusEntry {
            line: line_no,
            name: get("name").unwrap_or_else(|| format!("line {line_no}")),
            text,
            kind: get("kind").unwrap_or_else(|| "lead".into()),
            expect_db: get("expect_db").unwrap_or_else(|| expect.clone()),
            expect,
        });
    }
    out
}

/// Expands a generated corpus document (large inputs are not stored literally).
fn corpus_gen(g: &Value) -> Option<String> {
    let n = |k: &str| g.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
    let event_leaf = || json!({"field": "metadata.url", "op": "eq", "value": "/pricing"});
    Some(if let Some(d) = n("nest_not") {
        nest_not(d).to_string()
    } else if let Some(d) = n("nest_groups") {
        nest_groups(&mut Rng::new(n("seed").unwrap_or(1) as u64), d).to_string()
    } else if let Some(d) = n("event_where_not") {
        json!({"event": {"where": nest_not_around(d, event_leaf())}}).to_string()
    } else if let Some(d) = n("leads_event_not") {
        json!({"leads": {"where": {"event": {"where": nest_not_around(d, event_leaf())}}}}).to_string()
    } else if let Some(w) = n("wide_all") {
        wide_all(w).to_string()
    } else if let Some(b) = n("text_bytes") {
        text_of_size(b)
    } else if let Some(d) = n("deep_array") {
        format!("{}{}", "[".repeat(d), "]".repeat(d))
    } else {
        return None;
    })
}
