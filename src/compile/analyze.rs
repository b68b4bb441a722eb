//! Troubleshooting without a database: the per-condition plan of `segment_diagnose` and the
//! static checks of `segment_lint`.
use super::{compile, Catalog, Kind};
use crate::error::Result;
use crate::rule::{AggFunc, FieldCond, LevelOp, Op, Rule};

const TIME_WINDOW: &str = "time window: membership changes as time passes; a saved segment is refreshed every refresh_every (default 1 hour) when kenbun.refresh_due() is scheduled";
use serde_json::Value;

/// One row of `segment_diagnose`: a condition, the SQL counting it alone, and the SQL counting it
/// together with the preceding conditions of its group.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagRow {
    pub path: String,
    pub condition: String,
    pub alone: String,
    pub with_previous: String,
    /// For field conditions: the condition, to look for hints when it matches nothing.
    pub field: Option<FieldCond>,
}

/// A short human form of a condition.
pub fn describe(r: &Rule) -> String {
    match r {
        Rule::All(v) => format!("all of {} condition(s)", v.len()),
        Rule::Any(v) => format!("any of {} condition(s)", v.len()),
        Rule::Not(_) => "not".into(),
        Rule::Field(f) => {
            let tz = f.tz.as_ref().map(|z| format!(" (time zone {})", serde_json::json!(z))).unwrap_or_default();
            match &f.value {
                Some(v) => format!("{} {} {v}{tz}", f.field, f.op.name()),
                None => format!("{} {}", f.field, f.op.name()),
            }
        }
        Rule::Level(l) => {
            let v = if matches!(l.op, LevelOp::In | LevelOp::NotIn) {
                serde_json::json!(l.tiers).to_string()
            } else {
                serde_json::json!(l.tiers[0]).to_string()
            };
            format!("level {} {} {v}", l.level, l.op.name())
        }
        Rule::Segment(s, _) => format!("segment {}", serde_json::json!(s)),
        other => other.to_canonical_string(),
    }
}

/// The diagnose plan: every node of the group tree (conditions inside account, event and leads
/// conditions count as part of their condition), in document order.
pub fn diagnose(rule: &Rule, kind: Kind, cat: &Catalog) -> Result<Vec<DiagRow>> {
    let mut out = vec![];
    let sql = compile(rule, kind, cat)?.sql;
    out.push(DiagRow {
        path: "$".into(),
        condition: describe(rule),
        alone: sql.clone(),
        with_previous: sql,
        field: field_of(rule),
    });
    walk(rule, "$", kind, cat, &mut out)?;
    Ok(out)
}

fn field_of(r: &Rule) -> Option<FieldCond> {
    match r {
        Rule::Field(f) => Some(f.clone()),
        _ => None,
    }
}

fn walk(rule: &Rule, path: &str, kind: Kind, cat: &Catalog, out: &mut Vec<DiagRow>) -> Result<()> {
    match rule {
        Rule::All(children) | Rule::Any(children) => {
            let key = if matches!(rule, Rule::All(_)) { "all" } else { "any" };
            for (i, child) in children.iter().enumerate() {
                let p = format!("{path}.{key}[{i}]");
                let prefix: Vec<Rule> = children[..=i].to_vec();
                let combined = if matches!(rule, Rule::All(_)) {
                    Rule::All(prefix)
                } else {
                    Rule::Any(prefix)
                };
                out.push(DiagRow {
                    path: p.clone(),
                    condition: describe(child),
                    alone: compile(child, kind, cat)?.sql,
                    with_previous: compile(&combined, kind, cat)?.sql,
                    field: field_of(child),
                });
                walk(child, &p, kind, cat, out)?;
            }
        }
        Rule::Not(child) => {
            let p = format!("{path}.not");
            let sql = compile(child, kind, cat)?.sql;
            out.push(DiagRow {
                path: p.clone(),
                condition: describe(child),
                alone: sql.clone(),
                with_previous: sql,
                field: field_of(child),
            });
            walk(child, &p, kind, cat, out)?;
        }
        _ => {}
    }
    Ok(())
}

/// A finding of `segment_lint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: &'static str,
    pub path: String,
    pub message: String,
}

fn finding(severity: &'static str, path: &str, message: impl Into<String>) -> Finding {
    Finding {
        severity,
        path: path.to_string(),
        message: message.into(),
    }
}

/// A numeric interval [lo, hi] with open/closed ends, for contradiction and redundancy checks.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: f64,
    lo_incl: bool,
    hi: f64,
    hi_incl: bool,
}

fn range_of(f: &FieldCond) -> Option<Range> {
    let num = |v: &Value| v.as_f64();
    let inf = f64::INFINITY;
    match (f.op, f.value.as_ref()?) {
        (Op::Gt, v) => Some(Range {
            lo: num(v)?,
            lo_incl: false,
            hi: inf,
            hi_incl: false,
        }),
        (Op::Gte, v) => Some(Range {
            lo: num(v)?,
            lo_incl: true,
            hi: inf,
            hi_incl: false,
        }),
        (Op::Lt, v) => Some(Range {
            lo: -inf,
            lo_incl: false,
            hi: num(v)?,
            hi_incl: false,
        }),
        (Op::Lte, v) => Some(Range {
            lo: -inf,
            lo_incl: false,
            hi: num(v)?,
            hi_incl: true,
        }),
        (Op::Eq, v) => {
            let x = num(v)?;
            Some(Range {
                lo: x,
                lo_incl: true,
                hi: x,
                hi_incl: true,
            })
        }
        (Op::Between, Value::Array(a)) if a.len() == 2 => Some(Range {
            lo: num(&a[0])?,
            lo_incl: true,
            hi: num(&a[1])?,
            hi_incl: true,
        }),
        _ => None,
    }
}

fn empty(r: Range) -> bool {
    r.lo > r.hi || (r.lo == r.hi && !(r.lo_incl && r.hi_incl))
}

fn intersect(a: Range, b: Range) -> Range {
    let (lo, lo_incl) = if a.lo > b.lo || (a.lo == b.lo && !a.lo_incl) {
        (a.lo, a.lo_incl)
    } else {
        (b.lo, b.lo_incl)
    };
    let (hi, hi_incl) = if a.hi < b.hi || (a.hi == b.hi && !a.hi_incl) {
        (a.hi, a.hi_incl)
    } else {
        (b.hi, b.hi_incl)
    };
    Range {
        lo,
        lo_incl,
        hi,
        hi_incl,
    }
}

/// Does `a` contain `b` (every value satisfying b satisfies a)?
fn contains(a: Range, b: Range) -> bool {
    let lo_ok = a.lo < b.lo || (a.lo == b.lo && (a.lo_incl || !b.lo_incl));
    let hi_ok = a.hi > b.hi || (a.hi == b.hi && (a.hi_incl || !b.hi_incl));
    lo_ok && hi_ok
}

/// Regex metacharacters: a pattern `^literal` without them is a prefix test.
fn literal_prefix(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix('^')?;
    let meta = ['.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\', '^', '$'];
    (!rest.is_empty() && !rest.contains(meta)).then_some(rest)
}

/// Checks that need no database.
pub fn lint(rule: &Rule) -> Vec<Finding> {
    let mut out = vec![];
    lint_node(rule, "$", &mut out, false);
    if matches!(rule, Rule::All(v) if v.is_empty()) {
        out.push(finding("warning", "$", "the rule matches everyone"));
    }
    out
}

fn lint_node(rule: &Rule, path: &str, out: &mut Vec<Finding>, under_not: bool) {
    match rule {
        Rule::All(children) | Rule::Any(children) => {
            let all = matches!(rule, Rule::All(_));
            let key = if all { "all" } else { "any" };
            if !all && children.is_empty() && path != "$" {
                out.push(finding("warning", path, "an empty \"any\" matches no one"));
            }
            if !all && children.is_empty() && path == "$" {
                out.push(finding("warning", path, "the rule matches no one"));
            }
            if children.len() == 1 {
                out.push(finding(
                    "info",
                    path,
                    format!("a group with a single condition: the \"{key}\" can be removed"),
                ));
            }
            // duplicates
            for i in 0..children.len() {
                for j in 0..i {
                    if children[i] == children[j]
                        || children[i].to_canonical_string() == children[j].to_canonical_string()
                    {
                        out.push(finding(
                            "warning",
                            &format!("{path}.{key}[{i}]"),
                            format!("redundant: the same condition as {path}.{key}[{j}]"),
                        ));
                    }
                }
            }
            if all {
                // numeric bounds on the same field
                let ranges: Vec<(usize, &FieldCond, Range)> = children
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| match c {
                        Rule::Field(f) => range_of(f).map(|r| (i, f, r)),
                        _ => None,
                    })
                    .collect();
                for (x, (i, fi, ri)) in ranges.iter().enumerate() {
                    for (j, fj, rj) in ranges.iter().take(x) {
                        if fi.field != fj.field {
                            continue;
                        }
                        if empty(intersect(*ri, *rj)) {
                            out.push(finding(
                                "error",
                                &format!("{path}.{key}[{i}]"),
                                format!(
                                    "contradictory: no value of \"{}\" satisfies both this and {path}.{key}[{j}], so the group matches no one",
                                    fi.field
                                ),
                            ));
                        } else if contains(*ri, *rj) {
                            out.push(finding(
                                "warning",
                                &format!("{path}.{key}[{i}]"),
                                format!("redundant: implied by {path}.{key}[{j}]"),
                            ));
                        } else if contains(*rj, *ri) {
                            out.push(finding(
                                "warning",
                                &format!("{path}.{key}[{j}]"),
                                format!("redundant: implied by {path}.{key}[{i}]"),
                            ));
                        }
                    }
                }
            }
            for (i, c) in children.iter().enumerate() {
                lint_node(c, &format!("{path}.{key}[{i}]"), out, under_not);
            }
        }
        Rule::Not(child) => {
            if matches!(**child, Rule::Not(_)) {
                out.push(finding("info", path, "double negation: {\"not\":{\"not\":R}} is R"));
            }
            lint_node(child, &format!("{path}.not"), out, !under_not);
        }
        Rule::Field(f) => {
            if f.op == Op::Matches {
                if let Some(prefix) = f.value.as_ref().and_then(Value::as_str).and_then(literal_prefix) {
                    out.push(finding(
                        "info",
                        path,
                        format!(
                            "the regular expression only tests a prefix: {{\"op\":\"starts_with\",\"value\":{}}} is simpler (and ignores case)",
                            serde_json::json!(prefix)
                        ),
                    ));
                }
            }
            if matches!(f.op, Op::In | Op::NotIn)
                && f.value.as_ref().and_then(Value::as_array).is_some_and(|a| a.len() == 1)
            {
                let op = if f.op == Op::In { "eq" } else { "neq" };
                out.push(finding(
                    "info",
                    path,
                    format!("a list of one value: \"{op}\" says the same"),
                ));
            }
            if f.op == Op::InPeriod {
                let name = f.value.as_ref().and_then(Value::as_str).unwrap_or_default();
                let (unit, _) = crate::rule::period(name).unwrap_or(("day", 0));
                let zone = match &f.tz {
                    Some(tz) => format!("time zone {}", serde_json::json!(tz)),
                    None => "time zone (kenbun.timezone, else the session's TimeZone)".into(),
                };
                out.push(finding(
                    "info",
                    path,
                    format!(
                        "calendar period: \"{name}\" changes at the start of each {unit} in its {zone}; a saved segment is refreshed at that boundary when kenbun.refresh_due() is scheduled"
                    ),
                ));
            } else if f.op.is_time_window() {
                out.push(finding("info", path, TIME_WINDOW));
            }
        }
        Rule::Event(e) => {
            if e.within.is_some() || e.first_within.is_some() || e.stopped.is_some() {
                out.push(finding("info", path, TIME_WINDOW));
            }
            if let Some(a) = e.agg.as_ref().filter(|a| matches!(a.func, AggFunc::Avg | AggFunc::Min | AggFunc::Max)) {
                out.push(finding(
                    "info",
                    path,
                    format!(
                        "\"{}\" of no events has no value: a lead with no matching event is not a member ({})",
                        a.func.name(),
                        if under_not { "and is one under this \"not\"" } else { "and is one under \"not\"" }
                    ),
                ));
            }
            if let Some(w) = &e.filter {
                lint_node(w, &format!("{path}.event.where"), out, false);
            }
        }
        Rule::Sequence(q) => {
            if q.within.is_some() {
                out.push(finding("info", path, TIME_WINDOW));
            }
            for (i, st) in q.steps.iter().enumerate() {
                if let Some(w) = &st.filter {
                    lint_node(w, &format!("{path}.sequence.steps[{i}].where"), out, false);
                }
            }
        }
        Rule::Leads(l) => {
            if let Some(w) = &l.filter {
                lint_node(w, &format!("{path}.leads.where"), out, false);
            }
        }
        Rule::Account(inner, _) => lint_node(inner, &format!("{path}.account"), out, false),
        Rule::Level(_) | Rule::Segment(..) => {}
    }
}

/// JSON-path fields a rule reads on `kind`, as (column, keys), for index advice.
pub fn json_paths(rule: &Rule, kind: Kind, cat: &Catalog) -> Vec<(Kind, String, Vec<String>, String)> {
    let mut out = vec![];
    collect_paths(rule, "$", kind, cat, &mut out);
    out
}

fn collect_paths(
    rule: &Rule,
    path: &str,
    kind: Kind,
    cat: &Catalog,
    out: &mut Vec<(Kind, String, Vec<String>, String)>,
) {
    let Some(b) = cat.binding(kind) else { return };
    match rule {
        Rule::All(v) | Rule::Any(v) => {
            let key = if matches!(rule, Rule::All(_)) { "all" } else { "any" };
            for (i, c) in v.iter().enumerate() {
                collect_paths(c, &format!("{path}.{key}[{i}]"), kind, cat, out);
            }
        }
        Rule::Not(c) => collect_paths(c, &format!("{path}.not"), kind, cat, out),
        Rule::Account(c, _) => collect_paths(c, &format!("{path}.account"), Kind::Account, cat, out),
        Rule::Leads(l) => {
            if let Some(w) = &l.filter {
                collect_paths(w, &format!("{path}.leads.where"), Kind::Lead, cat, out)
            }
        }
        Rule::Event(e) => {
            if let Some(w) = &e.filter {
                collect_paths(w, &format!("{path}.event.where"), Kind::Event, cat, out)
            }
            if let Some(a) = &e.agg {
                // the aggregated field, read like a field condition on the event
                let f = Rule::Field(FieldCond {
                    field: a.field.clone(),
                    op: Op::IsSet,
                    value: None,
                    tz: None,
                    path: format!("{path}.event.{}", a.func.name()),
                });
                collect_paths(&f, &format!("{path}.event.{}", a.func.name()), Kind::Event, cat, out)
            }
        }
        Rule::Sequence(q) => {
            for (i, st) in q.steps.iter().enumerate() {
                if let Some(w) = &st.filter {
                    collect_paths(w, &format!("{path}.sequence.steps[{i}].where"), Kind::Event, cat, out)
                }
            }
        }
        Rule::Field(f) => {
            // a mapped field or a dotted path into a jsonb column
            let p = cat
                .fields
                .iter()
                .find(|m| m.kind == kind.name() && m.name == f.field)
                .map(|m| m.path.clone())
                .unwrap_or_else(|| f.field.clone());
            let mut parts = p.split('.').map(str::to_string);
            let col = parts.next().unwrap_or_default();
            let keys: Vec<String> = parts.collect();
            if !keys.is_empty() && b.column(&col).is_some() && b.column(&f.field).is_none() {
                out.push((kind, col, keys, path.to_string()));
            }
        }
        Rule::Level(_) | Rule::Segment(..) => {}
    }
}
