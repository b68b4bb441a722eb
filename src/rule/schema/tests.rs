//! The schema against the parser: every corpus document, a large sample of generated (valid and
//! mutated) documents and every rule literal of the tests is accepted by the schema, as judged by an
//! independent validator (Python's jsonschema, tests/schema.py), exactly when `Rule::parse` accepts
//! it, apart from the checks the schema's description lists as the server's.
//!
//! `KENBUN_SCHEMA_CASES` (default 20000) sets how many generated cases are checked;
//! `KENBUN_SCHEMA_OUT=<file>` also writes the schema there.
#[path = "../../../tests/common/fuzzgen.rs"]
mod fuzzgen;

use super::*;
use crate::error::SqlState;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every JSON object in `text` (as written in Rust raw strings, escaped Rust strings, `json!` and SQL
/// literals) that has a rule key.
fn harvest(text: &str) -> Vec<Value> {
    let mut out = vec![];
    for variant in [text.to_string(), text.replace("\\\"", "\""), text.replace("''", "'")] {
        for (i, _) in variant.match_indices('{') {
            let mut it = serde_json::Deserializer::from_str(&variant[i..]).into_iter::<Value>();
            if let Some(Ok(v @ Value::Object(_))) = it.next() {
                if RULE_KEYS.iter().any(|k| v.get(*k).is_some()) {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// The documents to check: (source, document), without duplicates.
fn documents() -> (Vec<(String, Value)>, BTreeMap<&'static str, usize>) {
    let mut seen = BTreeSet::new();
    let mut docs = vec![];
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut add = |source: &'static str, name: String, v: Value, docs: &mut Vec<(String, Value)>| {
        if seen.insert(v.to_string()) {
            *counts.entry(source).or_default() += 1;
            docs.push((format!("{source}: {name}"), v));
        }
    };
    for e in fuzzgen::read_corpus() {
        if let Ok(v) = serde_json::from_str::<Value>(&e.text) {
            add("corpus", format!("line {} ({})", e.line, e.name), v, &mut docs);
        }
    }
    let mut files: Vec<String> = vec!["src/rule/tests.rs".into(), "src/compile/tests.rs".into()];
    let dir = format!("{ROOT}/tests/pg_regress/sql");
    let mut sql: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| format!("tests/pg_regress/sql/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    sql.sort();
    files.extend(sql);
    for f in &files {
        let text = std::fs::read_to_string(format!("{ROOT}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
        for v in harvest(&text) {
            add("literals", f.clone(), v, &mut docs);
        }
    }
    for v in edges() {
        add("edges", "hand-written edge case".into(), v, &mut docs);
    }
    let n: u64 = std::env::var("KENBUN_SCHEMA_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for i in 0..n {
        let seed = fuzzgen::case_seed(0x7363_6865_6d61, i);
        let case = fuzzgen::gen_case(seed);
        if let Ok(v) = serde_json::from_str::<Value>(&case.text) {
            add("generated", format!("seed {seed} ({})", case.source), v, &mut docs);
        }
    }
    (docs, counts)
}

/// Hand-written edge cases of the regular expressions and numbers, where the generator is thin.
fn edges() -> Vec<Value> {
    let intervals = [
        "30 days",
        "  30 days ",
        "30\u{2003}days",
        "30\u{feff}days",
        "30\u{1c}days",
        "30 days\n",
        "30\ndays",
        "1 day 2 days",
        "1 day 2 hours 3 days",
        "1 Day 2 HOURS",
        "1 dayz",
        "30",
        "days",
        "1 day 1",
        "",
        " ",
        "1.5 seconds 3 milliseconds",
        "3 milliseconds 1.5 seconds",
        "1.0 seconds 3 ms",
        "1.0 seconds 3 milliseconds",
        "1.5 secs 2 microseconds",
        "1.5 minutes 2 milliseconds",
        "2 seconds 3 milliseconds",
        ".5 hours",
        "5. hours",
        ". hours",
        "1..5 hours",
        "123456789012 seconds",
        "1234567890123 seconds",
        "12345678.901 seconds",
        "123456789.012 seconds",
        "1 mon 2 months",
        "1 min 2 mins",
        "1 min 2 minutes",
        "2 yr",
        "-1 days",
        "+1 days",
        "1e2 days",
        "\u{0661} days",
        "1 day,",
    ];
    let dates = [
        "2024-02-29",
        "2023-02-29",
        "1900-02-29",
        "2000-02-29",
        "0000-01-01",
        "0001-01-01",
        "0004-02-29",
        "9999-12-31",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-01T24:00",
        "2024-01-01T23:59",
        "2024-01-01T23:60",
        "2024-01-01T23:59:59.1234567",
        "2024-01-01T23:59:59.123456+14:00",
        "2024-01-01T12:00+15",
        "2024-01-01T12:00+14",
        "2024-01-01T12:00-03:30",
        "2024-01-01T12:00+03:60",
        "2024-01-01 12:00Z",
        "2024-01-01t12:00",
        "2024-01-01\n",
        "2024-1-01",
        "2024-01-01T12",
        "2024-01-01T12:00:00.",
        "2024-01-01T12:00.5",
        "2024-01-01T12:00:00z",
        "\u{0662}024-01-01",
    ];
    let zones = ["Europe/Paris", " ", "\u{3000}", "\u{feff}", "", " UTC ", "\n"];
    let mut out = vec![];
    for i in intervals {
        out.push(json!({"field": "d", "op": "within_last", "value": i}));
        out.push(json!({"field": "d", "op": "between_ago", "value": [format!("{i} 3 weeks"), i]}));
        out.push(json!({"event": {"stopped": i}}));
    }
    for d in dates {
        out.push(json!({"field": "d", "op": "before", "value": d}));
    }
    for z in
        zones
            .iter()
            .map(|z| z.to_string())
            .chain(["x".repeat(100), "x".repeat(101), "é".repeat(60), "é".repeat(101)])
    {
        out.push(json!({"field": "d", "op": "in_period", "value": "today", "tz": z}));
        out.push(json!({"field": "d", "op": "within_last", "value": "1 day", "tz": z}));
    }
    for n in [
        "1",
        "1.0",
        "1e2",
        "0",
        "-1",
        "1.5",
        "9223372036854775807",
        "9223372036854775808",
    ] {
        let n: Value = serde_json::from_str(n).unwrap();
        out.push(json!({"event": {"count": {"op": "gte", "value": n}}}));
        out.push(json!({"event": {"stopped": "1 day", "min_before": n}}));
        out.push(json!({"event": {"count_distinct": {"field": "f", "op": "gte", "value": n}}}));
        out.push(json!({"event": {"sum": {"field": "f", "op": "gte", "value": n}}}));
    }
    for v in [
        json!([1, 2.5]),
        json!([1, "2"]),
        json!([true, false]),
        json!([null, null]),
        json!([[1], [2]]),
        json!([1]),
        json!([1, 2, 3]),
    ] {
        out.push(json!({"field": "n", "op": "between", "value": v}));
        out.push(json!({"field": "n", "op": "in", "value": v}));
    }
    out
}

/// A rejection the schema does not claim to express (listed in its description as the server's).
fn server_only(e: &crate::error::KenbunError) -> Option<&'static str> {
    let m = e.message.as_str();
    let float_found = |prefix: &str| {
        m.split_once(prefix).map(|(_, n)| n).is_some_and(|n| {
            n.contains(['.', 'e', 'E']) && n.parse::<f64>().is_ok_and(|x| x >= 0.0 && x.fract() == 0.0)
        })
    };
    if e.code == SqlState::ProgramLimitExceeded {
        Some("depth or size limit")
    } else if m.contains(&format!("longer than {} years", super::values::MAX_INTERVAL_YEARS)) {
        Some("interval longer than 1000 years")
    } else if m.contains("the interval is too long") {
        Some("interval over 200 bytes (at most 200 characters)")
    } else if m.contains("the first must be longer than the second") {
        Some("between_ago bounds in the wrong order")
    } else if m.contains("\"between\" bounds are reversed") {
        Some("between bounds in the wrong order")
    } else if float_found("expected a non-negative integer, found ")
        || float_found("expected a positive integer, found ")
    {
        Some("whole number written with a fraction or exponent")
    } else if m.contains("found a string longer than 100 bytes") {
        Some("tz over 100 bytes (at most 100 characters)")
    } else {
        None
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[test]
fn schema_is_derived_from_the_parser() {
    let s = rule_schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let defs = s["$defs"].as_object().unwrap();
    assert_eq!(defs["rule"]["oneOf"].as_array().unwrap().len(), RULE_KEYS.len());
    let fc = &defs["field_condition"];
    let ops: Vec<&str> = fc["properties"]["op"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ops, ALL_OPS.iter().map(|o| o.name()).collect::<Vec<_>>());
    assert_eq!(fc["allOf"].as_array().unwrap().len(), ALL_OPS.len());
    for b in fc["allOf"].as_array().unwrap() {
        assert!(b["description"].as_str().is_some_and(|d| !d.is_empty()), "{b}");
    }
    let ev = &defs["event"]["properties"];
    assert_eq!(ev.as_object().unwrap().len(), EVENT_KEYS.len());
    for (name, d) in defs {
        assert!(
            d["description"].as_str().is_some_and(|d| !d.is_empty()),
            "$defs/{name} has no description"
        );
    }
    assert_eq!(defs["sequence"]["properties"]["steps"]["maxItems"], MAX_SEQUENCE_STEPS);
}

#[test]
fn schema_accepts_exactly_what_the_parser_accepts() {
    let (docs, counts) = documents();
    let dir = std::env::temp_dir().join(format!("kenbun-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema_path = dir.join("schema.json");
    let docs_path = dir.join("docs.jsonl");
    let pretty = serde_json::to_string_pretty(&rule_schema()).unwrap();
    std::fs::write(&schema_path, &pretty).unwrap();
    if let Ok(out) = std::env::var("KENBUN_SCHEMA_OUT") {
        std::fs::write(&out, &pretty).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
    let mut lines = String::new();
    for (_, d) in &docs {
        lines.push_str(&d.to_string());
        lines.push('\n');
    }
    std::fs::write(&docs_path, lines).unwrap();
    let out = Command::new("python3")
        .arg(format!("{ROOT}/tests/schema.py"))
        .arg(&schema_path)
        .arg(&docs_path)
        .output()
        .expect("python3 (run scripts/setup.sh, which installs the jsonschema package)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "tests/schema.py failed (scripts/setup.sh installs the jsonschema package):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts = String::from_utf8(out.stdout).unwrap();
    let verdicts = verdicts.trim();
    assert_eq!(verdicts.len(), docs.len(), "one verdict per document");
    let mut agree = 0usize;
    let mut accepted = 0usize;
    let mut server: BTreeMap<&str, usize> = BTreeMap::new();
    let mut bad = vec![];
    for ((source, doc), verdict) in docs.iter().zip(verdicts.bytes()) {
        let schema_ok = verdict == b'1';
        let parsed = Rule::parse(doc);
        match (&parsed, schema_ok) {
            (Ok(_), true) => {
                agree += 1;
                accepted += 1;
            }
            (Err(_), false) => agree += 1,
            (Err(e), true) if server_only(e).is_some() => *server.entry(server_only(e).unwrap()).or_default() += 1,
            (Err(e), true) => bad.push(format!(
                "{source}: the parser rejects ({}: {}), the schema accepts: {}",
                e.code.code(),
                e.message,
                clip(&doc.to_string(), 300)
            )),
            (Ok(_), false) => bad.push(format!(
                "{source}: the parser accepts, the schema rejects: {}",
                clip(&doc.to_string(), 300)
            )),
        }
    }
    eprintln!(
        "rule schema: {} documents ({counts:?}); {agree} agree ({accepted} accepted by both, {} rejected by both); \
         {} rejected only by the server's checks {server:?}; {} disagreements",
        docs.len(),
        agree - accepted,
        server.values().sum::<usize>(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} disagreements between the schema and the parser; the first:\n{}",
        bad.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        accepted > 100 && agree - accepted > 100,
        "too few documents of one verdict"
    );
}

#[test]
fn hints_built_from_the_lists_read_as_before() {
    let hint = |doc: Value| Rule::parse(&doc).unwrap_err().hint.unwrap();
    assert_eq!(
        hint(json!({})),
        "a rule object has one of the keys all, any, not, field, level, account, event, leads, sequence, segment"
    );
    assert_eq!(hint(json!({"level": "l", "op": "zz", "value": "a"})), "level operators are eq neq gt gte lt lte in not_in");
    assert_eq!(hint(json!({"event": {"count": {"op": "zz", "value": 1}}})), "count operators are eq neq gt gte lt lte");
}
