//! Fuzzing of the pure core: generated documents (tests/common/fuzzgen.rs) and the checked-in corpus
//! (tests/fuzz/corpus.jsonl) go through parsing, validation and compilation against a fixed catalog.
//!
//! Properties checked for every input:
//! - nothing panics (each case runs under `catch_unwind`; a failure names its seed and document);
//! - a rejection is a `KenbunError` with a SQLSTATE and a non-empty message;
//! - an accepted rule's canonical form parses again to the same canonical form, and compiles to
//!   the same SQL (the database stores and recompiles the canonical form);
//! - accepted rules compile to non-empty SQL whose literals and quoted identifiers are terminated,
//!   with no `;`, comment or parameter outside them and balanced parentheses.
//!
//! `KENBUN_FUZZ_CASES` (default 30000), `KENBUN_FUZZ_SEED` (base seed, default fixed) and
//! `KENBUN_FUZZ_ONE=<case seed>` (replay one case) steer the run.
#[path = "../tests/common/fuzzgen.rs"]
mod fuzzgen;

use crate::compile::{self, Catalog, Kind};
use crate::error::KenbunError;
use crate::rule::Rule;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

const DEFAULT_CASES: u64 = 30_000;
const DEFAULT_SEED: u64 = 0x6B65_6E62_756E_2101;

/// The catalog of the fuzz schema: the same tables, fields, levels and segments as the database of
/// tests/fuzz_db.rs, plus two segments that reference each other (which the database would refuse).
/// Built as the document `kenbun._catalog()` returns, so fields the catalog gains later take their
/// serde defaults.
fn catalog() -> Catalog {
    use serde_json::{json, Value};
    let binding = |t: &fuzzgen::Table| {
        let ev = t.kind == "event";
        json!({
            "kind": t.kind, "schema": t.schema, "table": t.name,
            "key": match t.kind { "lead" => Some(fuzzgen::LEAD_KEY), "account" => Some(fuzzgen::ACCOUNT_KEY), _ => None },
            "account_key": (t.kind == "lead").then_some(fuzzgen::LEAD_ACCOUNT_KEY),
            "lead_key": ev.then_some(fuzzgen::EVENT_LEAD_KEY),
            "type_column": ev.then_some(fuzzgen::EVENT_TYPE),
            "time_column": ev.then_some(fuzzgen::EVENT_TIME),
            "metadata_column": ev.then_some(fuzzgen::EVENT_METADATA),
            "columns": t.columns.iter().map(|(n, ty)| json!({"name": n, "type": ty})).collect::<Vec<_>>(),
        })
    };
    let mut segments: Vec<Value> = fuzzgen::SEGMENTS
        .iter()
        .enumerate()
        .map(|(i, (name, kind, rule))| {
            json!({"id": i + 1, "name": name, "kind": kind, "rule": serde_json::from_str::<Value>(rule).unwrap()})
        })
        .collect();
    segments.push(json!({"id": 100, "name": "loop_a", "kind": "lead", "rule": {"segment": "loop_b"}}));
    segments.push(json!({"id": 101, "name": "loop_b", "kind": "lead", "rule": {"segment": "loop_a"}}));
    let doc = json!({
        "bindings": fuzzgen::TABLES.iter().map(|t| binding(t)).collect::<Vec<_>>(),
        "fields": fuzzgen::MAPPED.iter().map(|(kind, name, path, ty)| {
            json!({"kind": kind, "name": name, "path": path, "type": ty})
        }).collect::<Vec<_>>(),
        "levels": fuzzgen::LEVELS.iter().map(|(name, field, tiers)| {
            let tiers: Vec<Value> = tiers
                .iter()
                .map(|(n, m)| json!({"name": n, "min": serde_json::from_str::<Value>(m).unwrap()}))
                .collect();
            json!({"name": name, "field": field, "tiers": tiers})
        }).collect::<Vec<_>>(),
        "segments": segments,
    });
    serde_json::from_value(doc).expect("the fuzz catalog document")
}

// ---------------------------------------------------------------------------------------------
// The SQL checker

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// A small lexer over compiled SQL: string literals (standard and `E''`), quoted identifiers and
/// dollar quotes must be terminated; outside them there must be no `;`, comment, parameter or NUL,
/// and parentheses must balance. A standard literal must not contain a backslash (it would read
/// differently with `standard_conforming_strings = off`).
pub(crate) fn check_sql(sql: &str) -> Result<(), String> {
    let b: Vec<char> = sql.chars().collect();
    let n = b.len();
    let mut i = 0;
    let mut depth: i64 = 0;
    let at = |i: usize| {
        format!(
            "at char {i}: …{}…",
            b[i.saturating_sub(20)..(i + 20).min(n)].iter().collect::<String>()
        )
    };
    while i < n {
        let c = b[i];
        match c {
            '\'' => {
                let e = i > 0 && matches!(b[i - 1], 'E' | 'e') && (i < 2 || !is_ident_char(b[i - 2]));
                let start = i;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(format!("unterminated string literal {}", at(start))),
                        Some('\\') if e => {
                            if i + 1 >= n {
                                return Err(format!("unterminated E'' literal {}", at(start)));
                            }
                            i += 2;
                        }
                        Some('\\') => {
                            return Err(format!("backslash in a standard string literal {}", at(i)));
                        }
                        Some('\'') if b.get(i + 1) == Some(&'\'') => i += 2,
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some('\0') => return Err(format!("NUL in a literal {}", at(i))),
                        Some(_) => i += 1,
                    }
                }
            }
            '"' => {
                let start = i;
                let mut len = 0;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(format!("unterminated quoted identifier {}", at(start))),
                        Some('"') if b.get(i + 1) == Some(&'"') => {
                            i += 2;
                            len += 1;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\0') => return Err(format!("NUL in an identifier {}", at(i))),
                        Some(_) => {
                            i += 1;
                            len += 1;
                        }
                    }
                }
                if len == 0 {
                    return Err(format!("zero-length quoted identifier {}", at(start)));
                }
            }
            '$' if i > 0 && is_ident_char(b[i - 1]) => i += 1, // part of an identifier
            '$' => {
                // a dollar quote $tag$…$tag$; a parameter ($1) is an error
                let start = i;
                let mut j = i + 1;
                while j < n && (b[j].is_alphanumeric() || b[j] == '_') {
                    j += 1;
                }
                if j >= n || b[j] != '$' || b[i + 1..j].first().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(format!("parameter or stray '$' outside literals {}", at(start)));
                }
                let tag: String = b[i..=j].iter().collect();
                let body: String = b[j + 1..].iter().collect();
                match body.find(&tag) {
                    None => return Err(format!("unterminated dollar quote {}", at(start))),
                    Some(k) => i = j + 1 + body[..k].chars().count() + tag.chars().count(),
                }
            }
            '-' if b.get(i + 1) == Some(&'-') => return Err(format!("comment outside literals {}", at(i))),
            '/' if b.get(i + 1) == Some(&'*') => return Err(format!("comment outside literals {}", at(i))),
            ';' => return Err(format!("';' outside literals {}", at(i))),
            '\0' => return Err(format!("NUL outside literals {}", at(i))),
            '(' => {
                depth += 1;
                i += 1;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced ')' {}", at(i)));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if depth != 0 {
        return Err(format!("{depth} unclosed '('"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One case

/// The outcome of a case: "ok" or the SQLSTATE it was rejected with.
fn outcome(text: &str, kind: &str, cat: &Catalog) -> Result<String, String> {
    fn rejected(e: KenbunError, stage: &str) -> Result<String, String> {
        let code = e.code.code();
        if code.len() != 5 || !code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
            return Err(format!("{stage}: bad SQLSTATE {code:?}"));
        }
        if e.message.trim().is_empty() {
            return Err(format!("{stage}: {code} with an empty message"));
        }
        if e.hint.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(format!("{stage}: {code} with an empty hint"));
        }
        Ok(code.to_string())
    }
    let rule = match Rule::parse_text(text) {
        Ok(r) => r,
        Err(e) => return rejected(e, "parse"),
    };
    // the database stores the canonical form and parses it again on every use
    let canon = rule.to_canonical_string();
    let again = match Rule::parse_text(&canon) {
        Ok(r) => r,
        Err(e) if canon.len() > crate::rule::MAX_TEXT => return rejected(e, "canonical reparse"),
        Err(e) => return Err(format!("canonical form does not parse again: {e}\ncanonical: {canon}")),
    };
    let canon2 = again.to_canonical_string();
    if canon2 != canon {
        // serde_json (without its float_roundtrip feature) may parse a float to a neighbour of the
        // nearest f64: tolerated here up to the last digits, checked exactly from then on
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&canon).unwrap(),
            serde_json::from_str(&canon2).unwrap(),
        );
        if float_roundtrip() || !same_up_to_float_rounding(&a, &b) {
            return Err(format!("canonical form is not a fixpoint:\n{canon}\n{canon2}"));
        }
        FLOAT_DRIFT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // kind names as the SQL layer reads them (api::parse_kind)
    let k = match Kind::from_name(kind) {
        Some(k @ (Kind::Lead | Kind::Account)) => k,
        _ => return Ok("22023".into()),
    };
    let compiled = compile::compile(&rule, k, cat);
    let recompiled = compile::compile(&again, k, cat);
    match (compiled, recompiled) {
        (Err(e), Err(e2)) => {
            if e.code != e2.code {
                return Err(format!("canonical form fails differently: {e:?} vs {e2:?}"));
            }
            rejected(e, "compile")
        }
        (Ok(c), Ok(c2)) => {
            if c.sql != c2.sql && canon2 == canon {
                return Err(format!("canonical form compiles differently:\n{}\n{}", c.sql, c2.sql));
            }
            let public = c.public_sql();
            if c.sql.trim().is_empty() || public.trim().is_empty() {
                return Err("empty SQL".into());
            }
            check_sql(&public).map_err(|m| format!("compiled SQL: {m}\nSQL: {}", clip(&public, 2000)))?;
            Ok("ok".into())
        }
        (a, b) => Err(format!(
            "original and canonical form disagree: {:?} vs {:?}",
            a.map(|c| c.sql),
            b.map(|c| c.sql)
        )),
    }
}

/// Cases whose canonical form moved a float (counted while serde_json's float parsing is not exact).
static FLOAT_DRIFT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Does serde_json parse floats exactly (its `float_roundtrip` feature)? Without it, "1e-25" parses
/// to 9.999999999999999e-26 and back to 1e-25: a stored rule's float flips on every round trip.
/// The fixpoint check tolerates that only while the feature is off.
fn float_roundtrip() -> bool {
    serde_json::from_str::<serde_json::Value>("1e-25").unwrap().to_string() == "1e-25"
}

/// Equal JSON, except that numbers may differ in the last bits of an f64.
fn same_up_to_float_rounding(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            x == y || {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
            }
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_up_to_float_rounding(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_up_to_float_rounding(v, w)))
        }
        _ => a == b,
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Runs a case under catch_unwind: Ok(outcome) or Err(description of the violated property).
fn run_case(text: &str, kind: &str, cat: &Catalog) -> Result<String, String> {
    match catch_unwind(AssertUnwindSafe(|| outcome(text, kind, cat))) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        None => v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")),
    })
}

#[test]
fn fuzz_parse_validate_compile() {
    let cat = catalog();
    let seeds: Vec<u64> = match env_u64("KENBUN_FUZZ_ONE") {
        Some(s) => vec![s],
        None => {
            let base = env_u64("KENBUN_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
            let n = env_u64("KENBUN_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
            (0..n).map(|i| fuzzgen::case_seed(base, i)).collect()
        }
    };
    let start = Instant::now();
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut time_by_source: BTreeMap<&'static str, std::time::Duration> = BTreeMap::new();
    let mut slowest: Vec<(std::time::Duration, u64, &'static str, usize)> = vec![];
    let mut failures = vec![];
    for &seed in &seeds {
        let t0 = Instant::now();
        let case = fuzzgen::gen_case(seed);
        let result = run_case(&case.text, &case.kind, &cat);
        let took = t0.elapsed();
        *time_by_source.entry(case.source).or_default() += took;
        slowest.push((took, seed, case.source, case.text.len()));
        if slowest.len() > 64 {
            slowest.sort_by(|a, b| b.0.cmp(&a.0));
            slowest.truncate(8);
        }
        match result {
            Ok(o) => *counts.entry((o, case.source)).or_default() += 1,
            Err(m) => failures.push(format!(
                "case seed {seed:#x} (KENBUN_FUZZ_ONE={seed:#x}), kind {:?}: {m}\ndocument: {}",
                case.kind,
                clip(&case.text, 4000)
            )),
        }
    }
    let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
    for ((o, _), n) in &counts {
        *by_outcome.entry(o.as_str()).or_default() += n;
    }
    eprintln!(
        "fuzz: {} cases in {:.1?} (base seed {:#x}); outcomes: {by_outcome:?}",
        seeds.len(),
        start.elapsed(),
        env_u64("KENBUN_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
    );
    let drift = FLOAT_DRIFT.load(std::sync::atomic::Ordering::Relaxed);
    if drift > 0 {
        eprintln!(
            "fuzz: KNOWN ISSUE: in {drift} accepted rule(s) a float changed between the canonical form and its \
             reparse (serde_json without float_roundtrip: 1e-25 -> 9.999999999999999e-26 -> 1e-25 …)"
        );
    }
    if std::env::var_os("KENBUN_FUZZ_VERBOSE").is_some() {
        for ((o, src), n) in &counts {
            eprintln!("  {src:>10} {o}: {n}");
        }
        eprintln!("  time by generator: {time_by_source:?}");
        slowest.sort_by(|a, b| b.0.cmp(&a.0));
        for (t, seed, src, len) in slowest.iter().take(8) {
            eprintln!("  slow: {t:.1?} seed {seed:#x} ({src}, {len} bytes)");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fuzz cases violated a property; the first ones:\n\n{}",
        failures.len(),
        seeds.len(),
        failures
            .iter()
            .take(8)
            .map(|f| clip(f, 1500))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The corpus

#[test]
fn corpus_replays_with_expected_outcomes() {
    let cat = catalog();
    let entries = fuzzgen::read_corpus();
    assert!(entries.len() >= 40, "corpus has only {} entries", entries.len());
    let mut bad = vec![];
    for e in &entries {
        match run_case(&e.text, &e.kind, &cat) {
            Ok(o) if o == e.expect => {}
            Ok(o) => bad.push(format!("line {} ({}): expected {}, got {o}", e.line, e.name, e.expect)),
            Err(m) => bad.push(format!("line {} ({}): {m}", e.line, e.name)),
        }
    }
    assert!(bad.is_empty(), "corpus mismatches:\n{}", bad.join("\n"));
}

#[test]
fn sql_checker_rejects_broken_sql() {
    for ok in [
        r#"(l."country" = 'US'::text)"#,
        r#"(l."we""ird" = E'a\\''b'::text)"#,
        r#"((l."attributes" ->> 'x''y;--') = '$$'::text)"#,
        "(x = $q$ ' \" $q$)",
        r#"COALESCE(EXISTS (SELECT 1 FROM "app;--"."ev""ents" AS e_1 WHERE e_1."lead_id" = l."id"), false)"#,
    ] {
        check_sql(ok).unwrap_or_else(|m| panic!("{ok}: {m}"));
    }
    for bad in [
        "(l.\"country\" = 'US)",
        "(l.\"country = 'US')",
        "(l.\"country\" = 'a\\'b')",
        "(x = E'a\\')",
        "(x = 1); DROP TABLE leads",
        "(x = 1) -- c",
        "(x = 1) /* c */",
        "((x = 1)",
        "(x = 1))",
        "(x = $1)",
        "(x = $q$ abc)",
        "(\"\" = 1)",
    ] {
        assert!(check_sql(bad).is_err(), "accepted: {bad}");
    }
}

/// The grammar reaches every construct of the language, so that the properties above are checked on
/// accepted rules using each of them (not only on rejections).
#[test]
fn grammar_generates_every_construct_accepted() {
    use crate::rule::{AGG_FUNCS, ALL_OPS};
    let cat = catalog();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..20_000 {
        let case = fuzzgen::gen_case(fuzzgen::case_seed(DEFAULT_SEED ^ 0x5eed, i));
        let (Ok(rule), Some(k)) = (Rule::parse_text(&case.text), Kind::from_name(&case.kind)) else { continue };
        if !matches!(k, Kind::Lead | Kind::Account) || compile::compile(&rule, k, &cat).is_err() {
            continue;
        }
        rule.walk(&mut |r| {
            let mut hit = |s: String| *seen.entry(s).or_default() += 1;
            match r {
                Rule::Field(f) => {
                    hit(f.op.name().to_string());
                    if f.tz.is_some() {
                        hit("tz".into());
                    }
                }
                Rule::Event(e) => {
                    if let Some(a) = &e.agg {
                        hit(a.func.name().to_string());
                    }
                    if e.first_within.is_some() {
                        hit("first_within".into());
                    }
                    if e.stopped.is_some() {
                        hit(if e.min_before != 1 { "min_before" } else { "stopped" }.into());
                    }
                }
                Rule::Sequence(q) => {
                    hit("sequence".into());
                    if q.max_gap.is_some() && q.within.is_some() {
                        hit("sequence max_gap within".into());
                    }
                }
                _ => {}
            }
        });
    }
    let mut want: Vec<String> = ALL_OPS.iter().map(|o| o.name().to_string()).collect();
    want.extend(AGG_FUNCS.iter().map(|a| a.name().to_string()));
    want.extend(["tz", "first_within", "stopped", "min_before", "sequence", "sequence max_gap within"].map(String::from));
    let missing: Vec<&String> = want.iter().filter(|w| seen.get(*w).copied().unwrap_or(0) < 3).collect();
    assert!(missing.is_empty(), "accepted fewer than 3 times: {missing:?}\nseen: {seen:?}");
}
