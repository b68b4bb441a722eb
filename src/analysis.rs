//! Troubleshooting functions that need the compiler: diagnose, lint, explain, level distribution.
use crate::api::{compile_rule, cached_catalog, parse_kind, raise, segment_rule};
use crate::compile::analyze::{self, DiagRow};
use crate::compile::why;
use crate::compile::sql::{ident, literal};
use crate::compile::{self, root_alias, Catalog, Kind};
use crate::error::{did_you_mean, KenbunError, SqlState};
use crate::rule::{Op, Rule};
use pgrx::prelude::*;
use serde_json::Value;

extension_sql_file!(
    "../sql/analysis.sql",
    name = "analysis",
    requires = ["segments", _rule_query, segment_why_saved, segment_why_rule]
);

extension_sql_file!("../sql/manual.sql", name = "manual", requires = ["analysis"]);
// every public object's COMMENT, once every object exists (docs/reference.md is generated from them)
extension_sql_file!(
    "../sql/comments.sql",
    name = "comments",
    requires = [
        "manual", "changes", "api_functions", "catalog_touch", segment_diagnose, segment_lint, segment_explain,
        segment_levels, segment_why_saved, segment_why_rule
    ]
);

fn spi_err(e: pgrx::spi::SpiError) -> ! {
    raise(KenbunError::new(
        SqlState::ObjectNotInPrerequisiteState,
        format!("kenbun: {e}"),
    ))
}

/// `SELECT <key> AS mid FROM <bound table> WHERE <rule>` for an ad-hoc rule.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn _rule_query(rule: segment_rule, kind: &str) -> String {
    let kind = parse_kind(kind);
    let cat = cached_catalog();
    let c = compile_rule(&rule.rule(), kind, &cat, None);
    let b = cat.binding(kind).unwrap();
    let a = root_alias(kind);
    format!(
        "SELECT {a}.{} AS mid FROM {} AS {a} WHERE {}",
        ident(b.key.as_deref().unwrap_or("id")),
        b.qualified(),
        c.sql
    )
}

/// A saved segment's (kind, rule, active).
fn saved(name: &str) -> (Kind, Rule, bool) {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT kind, rule::text, active, type FROM kenbun.segments WHERE name = $1",
            Some(1),
            &[name.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        if r.get::<String>(4)?.as_deref() == Some("static") {
            raise(
                KenbunError::new(SqlState::FeatureNotSupported, format!("segment \"{name}\" is static: a list kept by hand, not a rule"))
                    .hint("its members are in kenbun.lead_segment_members / kenbun.account_segment_members; kenbun.segment_why(name, member_id) says whether one is in it"),
            );
        }
        Ok::<_, pgrx::spi::SpiError>(Some((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<bool>(3)?.unwrap_or(false),
        )))
    })
    .unwrap_or_else(|e| spi_err(e));
    let Some((kind, rule, active)) = row else { no_segment(name) };
    (
        parse_kind(&kind),
        Rule::parse_text(&rule).unwrap_or_else(|e| raise(e)),
        active,
    )
}

/// 42704 for a saved segment that does not exist, with the closest name.
fn no_segment(name: &str) -> ! {
    {
        let names: Vec<String> = Spi::connect(|c| {
            let mut v = vec![];
            for r in c.select("SELECT name FROM kenbun.segments", None, &[])? {
                v.push(r.get::<String>(1)?.unwrap_or_default());
            }
            Ok::<_, pgrx::spi::SpiError>(v)
        })
        .unwrap_or_default();
        let e = KenbunError::new(SqlState::UndefinedObject, format!("segment \"{name}\" does not exist"));
        raise(match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(h) => e.hint(h),
            None => e.hint("the saved segments are listed in kenbun.segments"),
        })
    }
}

fn count_all(cat: &Catalog, kind: Kind, exprs: &[String]) -> Vec<i64> {
    let b = cat.binding(kind).unwrap();
    let a = root_alias(kind);
    let mut out = vec![];
    for chunk in exprs.chunks(500) {
        let cols: Vec<String> = chunk
            .iter()
            .map(|e| format!("pg_catalog.count(*) FILTER (WHERE {e})"))
            .collect();
        let q = format!("SELECT {} FROM {} AS {a}", cols.join(", "), b.qualified());
        let row = Spi::connect(|c| {
            let t = c.select(&q, Some(1), &[])?;
            let r = t.first();
            (1..=chunk.len())
                .map(|i| r.get::<i64>(i).map(|v| v.unwrap_or(0)))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| spi_err(e));
        out.extend(row);
    }
    out
}

/// Hints for a field condition that matches nothing: a field that is never set, or values that
/// occur in no row with the closest value that does.
fn hints(cat: &Catalog, kind: Kind, row: &DiagRow) -> Vec<String> {
    let Some(f) = &row.field else { return vec![] };
    let Ok(expr) = compile::field_text_expr(kind, &f.field, cat) else {
        return vec![];
    };
    let b = cat.binding(kind).unwrap();
    let a = root_alias(kind);
    let set = count_all(cat, kind, &[format!("({expr}) IS NOT NULL")])[0];
    if set == 0 {
        return vec![format!("hint: field \"{}\" is never set in {}", f.field, b.display())];
    }
    let wanted: Vec<String> = match (&f.op, &f.value) {
        (Op::Eq | Op::In, Some(Value::String(s))) => vec![s.clone()],
        (Op::Eq | Op::In, Some(Value::Array(v))) => v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => return vec![],
    };
    let q = format!(
        "SELECT v, n FROM (SELECT ({expr}) AS v, pg_catalog.count(*) AS n FROM {} AS {a} WHERE ({expr}) IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1000) s",
        b.qualified()
    );
    let values: Vec<(String, i64)> = Spi::connect(|c| {
        let mut v = vec![];
        for r in c.select(&q, None, &[])? {
            v.push((r.get::<String>(1)?.unwrap_or_default(), r.get::<i64>(2)?.unwrap_or(0)));
        }
        Ok::<_, pgrx::spi::SpiError>(v)
    })
    .unwrap_or_else(|e| spi_err(e));
    let mut out = vec![];
    for w in wanted {
        if values.iter().any(|(v, _)| *v == w) {
            continue;
        }
        use crate::error::TYPO_MAX_CHARS;
        let closest = values
            .iter()
            .filter(|(v, _)| w.chars().count() <= TYPO_MAX_CHARS && v.chars().count() <= TYPO_MAX_CHARS)
            .map(|(v, n)| (crate::error::edit_distance(&w.to_lowercase(), &v.to_lowercase()), v, n))
            .min_by_key(|(d, _, n)| (*d, -**n));
        match closest {
            Some((d, v, n)) if d <= 2.max(w.chars().count() / 2) => out.push(format!(
                "hint: no row has {} = {}; the closest value is {} ({n} rows)",
                f.field,
                serde_json::json!(w),
                serde_json::json!(v)
            )),
            _ => out.push(format!("hint: no row has {} = {}", f.field, serde_json::json!(w))),
        }
    }
    out
}

fn rule_or_saved(rule_or_name: &str, kind: &str) -> (Kind, Rule) {
    if rule_or_name.trim_start().starts_with('{') {
        (
            parse_kind(kind),
            Rule::parse_text(rule_or_name).unwrap_or_else(|e| raise(e)),
        )
    } else {
        let (k, r, _) = saved(rule_or_name);
        (k, r)
    }
}

/// For each condition (by JSON path): how many rows match it alone, and how many are left after the
/// preceding conditions of its group; plus hints for conditions that match nothing.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn segment_diagnose(
    rule_or_name: &str,
    kind: default!(&str, "'lead'"),
) -> TableIterator<
    'static,
    (
        name!(path, String),
        name!(condition, String),
        name!(matches, Option<i64>),
        name!(matches_with_previous, Option<i64>),
    ),
> {
    let (kind, rule) = rule_or_saved(rule_or_name, kind);
    let cat = cached_catalog();
    compile_rule(&rule, kind, &cat, None);
    let rows = analyze::diagnose(&rule, kind, &cat).unwrap_or_else(|e| raise(e));
    let mut exprs = vec![];
    for r in &rows {
        exprs.push(r.alone.clone());
        exprs.push(r.with_previous.clone());
    }
    let counts = count_all(&cat, kind, &exprs);
    let mut out = vec![];
    for (i, r) in rows.iter().enumerate() {
        let (alone, prev) = (counts[2 * i], counts[2 * i + 1]);
        out.push((r.path.clone(), r.condition.clone(), Some(alone), Some(prev)));
        if alone == 0 {
            for h in hints(&cat, kind, r) {
                out.push((r.path.clone(), h, None, None));
            }
        }
    }
    TableIterator::new(out)
}

/// Index definitions on a table, as pg_get_indexdef prints them.
fn index_defs(table: &str) -> Vec<String> {
    Spi::connect(|c| {
        let mut v = vec![];
        for r in c.select(
            "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i WHERE i.indrelid = $1::regclass",
            None,
            &[table.into()],
        )? {
            v.push(r.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, pgrx::spi::SpiError>(v)
    })
    .unwrap_or_default()
}

/// Advice on indexes: JSON paths without an expression index, events without an index on the lead key.
fn index_advice(rule: &Rule, kind: Kind, cat: &Catalog) -> Vec<(String, String)> {
    let mut out = vec![];
    for (k, col, keys, path) in analyze::json_paths(rule, kind, cat) {
        let Some(b) = cat.binding(k) else { continue };
        // pg_get_indexdef prints (attributes ->> 'plan'::text), ((attributes -> 'a'::text) ->> 'b'::text)
        let mut printed = col.clone();
        let mut plain = ident(&col);
        for (i, key) in keys.iter().enumerate() {
            let op = if i + 1 == keys.len() { "->>" } else { "->" };
            printed = format!("({printed} {op} {}::text)", literal(key));
            plain = format!("{plain} {op} {}", literal(key));
        }
        if !index_defs(&b.qualified()).iter().any(|d| d.contains(&printed)) {
            out.push((
                path,
                format!(
                    "no index serves this JSON path; CREATE INDEX ON {} (({plain}));",
                    b.qualified()
                ),
            ));
        }
    }
    let mut has_event = false;
    rule.walk(&mut |r| has_event |= matches!(r, Rule::Event(_) | Rule::Sequence(_)));
    if has_event {
        if let Some(ev) = cat.binding(Kind::Event) {
            let lk = ev.lead_key.clone().unwrap_or_default();
            let leading = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = $1::regclass AND a.attname = $2)",
                &[ev.qualified().as_str().into(), lk.as_str().into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !leading {
                let tc = ev.type_column.clone().unwrap_or_default();
                let tm = ev.time_column.clone().unwrap_or_default();
                out.push((
                    "$".into(),
                    format!(
                        "event conditions look up events by lead; CREATE INDEX ON {} ({}, {}, {});",
                        ev.qualified(),
                        ident(&lk),
                        ident(&tc),
                        ident(&tm)
                    ),
                ));
            }
        }
    }
    out
}

/// Best-practice checks of a rule.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn segment_lint(
    rule: segment_rule,
    kind: default!(&str, "'lead'"),
) -> TableIterator<'static, (name!(severity, String), name!(path, String), name!(message, String))> {
    let kind = parse_kind(kind);
    let parsed = rule.rule();
    let cat = cached_catalog();
    let c = compile_rule(&parsed, kind, &cat, None);
    let mut out: Vec<(String, String, String)> = analyze::lint(&parsed)
        .into_iter()
        .map(|f| (f.severity.to_string(), f.path, f.message))
        .collect();
    for (path, msg) in index_advice(&parsed, kind, &cat) {
        out.push(("warning".into(), path, msg));
    }
    for name in &c.segments {
        let active = Spi::get_one_with_args::<bool>(
            "SELECT active FROM kenbun.segments WHERE name = $1",
            &[name.as_str().into()],
        )
        .ok()
        .flatten();
        if active == Some(false) {
            out.push((
                "info".into(),
                "$".into(),
                format!(
                    "references inactive segment \"{name}\": its rule still applies, but it has no members of its own"
                ),
            ));
        }
    }
    let b = cat.binding(kind).unwrap();
    let counts = count_all(&cat, kind, &["true".into(), c.sql.clone()]);
    if counts[0] > 0 && counts[1] == counts[0] && !matches!(&parsed, Rule::All(v) if v.is_empty()) {
        out.push((
            "warning".into(),
            "$".into(),
            format!("the rule matches every row of {} ({} rows)", b.display(), counts[0]),
        ));
    }
    if counts[0] > 0 && counts[1] == 0 {
        out.push((
            "warning".into(),
            "$".into(),
            "the rule matches no row today; kenbun.segment_diagnose shows which condition empties it".into(),
        ));
    }
    let rank = |s: &str| match s {
        "error" => 0,
        "warning" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| (rank(&a.0), &a.1).cmp(&(rank(&b.0), &b.1)));
    TableIterator::new(out)
}

/// The plan of a segment's compiled query, with index advice and its measured maintenance cost.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn segment_explain(name: &str, analyze: default!(bool, false)) -> TableIterator<'static, (name!(line, String),)> {
    let (kind, rule, _) = saved(name);
    let cat = cached_catalog();
    let c = compile_rule(&rule, kind, &cat, None);
    let b = cat.binding(kind).unwrap();
    let a = root_alias(kind);
    let key = ident(b.key.as_deref().unwrap_or("id"));
    let query = format!("SELECT {a}.{key} FROM {} AS {a} WHERE {}", b.qualified(), c.sql);
    let explain = format!(
        "EXPLAIN (COSTS true{}) {query}",
        if analyze { ", ANALYZE true" } else { "" }
    );
    let mut lines: Vec<String> = Spi::connect_mut(|cl| {
        let mut v = vec![];
        for r in cl.update(explain.as_str(), None, &[])? {
            v.push(r.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, pgrx::spi::SpiError>(v)
    })
    .unwrap_or_else(|e| spi_err(e));
    for (path, msg) in index_advice(&rule, kind, &cat) {
        lines.push(format!("advice ({path}): {msg}"));
    }
    // maintenance cost: the rule evaluated for a sample of keys, as the triggers do
    let sample = format!(
        "SELECT pg_catalog.array_agg(k) FROM (SELECT {a}.{key}::text AS k FROM {} AS {a} LIMIT 200) s",
        b.qualified()
    );
    let keys: Option<Vec<String>> = Spi::get_one(&sample).unwrap_or(None);
    let keys = keys.unwrap_or_default();
    if !keys.is_empty() {
        let ty: String = Spi::get_one_with_args(
            "SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2",
            &[b.qualified().as_str().into(), b.key.as_deref().unwrap_or("id").into()],
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| "text".into());
        let q = format!(
            "SELECT pg_catalog.count(*) FROM {} AS {a} WHERE {a}.{key} = ANY ($1::{ty}[]) AND {}",
            b.qualified(),
            c.sql
        );
        let n = keys.len();
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            Spi::connect(|cl| cl.select(&q, None, &[keys.clone().into()]).map(|_| ())).unwrap_or_else(|e| spi_err(e));
            best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        }
        lines.push(format!(
            "maintenance: about {:.4} ms per changed row (the rule evaluated for {n} rows in {:.3} ms, best of 3)",
            best / n as f64,
            best
        ));
    }
    if c.time_dependent {
        lines.push("time-dependent: refreshed by kenbun.refresh_due() every refresh_every".into());
    }
    TableIterator::new(lines.into_iter().map(|l| (l,)))
}

/// How a segment's members distribute over the tiers of a level.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn segment_levels(name: &str, levels: &str) -> TableIterator<'static, (name!(tier, String), name!(members, i64))> {
    let (kind, _, active) = saved(name);
    if !active {
        raise(
            KenbunError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("segment \"{name}\" is inactive and has no members"),
            )
            .hint("activate it, or preview its rule with kenbun.segment_preview"),
        );
    }
    let cat = cached_catalog();
    let Some(level) = cat.levels.iter().find(|l| l.name == levels) else {
        let e = KenbunError::new(SqlState::UndefinedObject, format!("level \"{levels}\" does not exist"));
        raise(match did_you_mean(levels, cat.levels.iter().map(|l| l.name.as_str())) {
            Some(h) => e.hint(h),
            None => e.hint("define it with kenbun.define_levels(name, field, tiers)"),
        })
    };
    let b = cat.binding(kind).unwrap();
    // levels have no kind: a level applies to the segments of the kinds whose table has its field
    let root = level.field.split('.').next().unwrap_or("");
    if b.column(root).is_none() && !cat.fields.iter().any(|f| f.kind == kind.name() && f.name == level.field) {
        raise(
            KenbunError::new(
                SqlState::WrongObjectType,
                format!(
                    "level \"{}\" reads \"{}\", which the {} table does not have: segment \"{name}\" is {} {} segment",
                    level.name,
                    level.field,
                    kind.name(),
                    if kind == Kind::Account { "an" } else { "a" },
                    kind.name()
                ),
            )
            .hint(format!(
                "levels have no kind: a level counts the members of segments whose table has its field. For {} segments, define one over a field of theirs, e.g. kenbun.define_levels('size', 'employees', …)",
                kind.name()
            )),
        );
    }
    let a = root_alias(kind);
    let (members, col) = crate::compile::maintain::members_table(kind);
    let mut cols = vec![];
    let mut names = vec![];
    for t in &level.tiers {
        let r = Rule::parse(&serde_json::json!({"level": level.name, "op": "eq", "value": t.name}))
            .unwrap_or_else(|e| raise(e));
        let c = compile_rule(&r, kind, &cat, None);
        cols.push(format!("pg_catalog.count(*) FILTER (WHERE {})", c.sql));
        names.push(t.name.clone());
    }
    cols.push("pg_catalog.count(*)".into());
    let q = format!(
        "SELECT {} FROM {members} AS m JOIN {} AS {a} ON {a}.{} = m.{col} WHERE m.segment_id = (SELECT id FROM kenbun.segments WHERE name = $1)",
        cols.join(", "),
        b.qualified(),
        ident(b.key.as_deref().unwrap_or("id"))
    );
    let counts: Vec<i64> = Spi::connect(|cl| {
        let t = cl.select(&q, Some(1), &[name.into()])?;
        let r = t.first();
        (1..=cols.len())
            .map(|i| r.get::<i64>(i).map(|v| v.unwrap_or(0)))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_err(e));
    let total = *counts.last().unwrap();
    let in_tiers: i64 = counts[..names.len()].iter().sum();
    let mut out: Vec<(String, i64)> = names.into_iter().zip(counts).collect();
    out.push(("(none)".into(), total - in_tiers));
    TableIterator::new(out)
}

// the #[pg_extern] functions spell this type out: pgrx's SQL generation does not see through an alias
type WhyRows = TableIterator<
    'static,
    (
        name!(path, String),
        name!(condition, String),
        name!(result, bool),
        name!(value, Option<String>),
    ),
>;

fn why_table(rows: Vec<why::WhyRow>) -> WhyRows {
    TableIterator::new(rows.into_iter().map(|r| (r.path, r.condition, r.result, r.value)))
}

/// Evaluates a plan for one member in one query: each node's truth and value, and the `extra`
/// boolean columns. Raises kenbun's errors for a member id of the wrong type or that no row has.
fn why_eval(
    nodes: &[why::WhyNode],
    kind: Kind,
    cat: &Catalog,
    member_id: &str,
    extra: &[String],
) -> (Vec<Option<bool>>, Vec<Option<String>>, Vec<Option<bool>>) {
    why::check_member_id(member_id, kind, cat).unwrap_or_else(|e| raise(e));
    let q = why::member_query(nodes, kind, cat, extra).unwrap_or_else(|e| raise(e));
    let row = Spi::connect(|c| {
        let t = c.select(&q, Some(1), &[member_id.into()])?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        let truths = r.get::<Vec<Option<bool>>>(1)?.unwrap_or_default();
        let values = r.get::<Vec<Option<String>>>(2)?.unwrap_or_default();
        let more = (0..extra.len())
            .map(|i| r.get::<bool>(3 + i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, pgrx::spi::SpiError>(Some((truths, values, more)))
    })
    .unwrap_or_else(|e| spi_err(e));
    row.unwrap_or_else(|| raise(why::no_member(member_id, kind, cat)))
}

/// Why a member is (not) in a saved segment: the membership row, then the rule's tree.
#[pg_extern(stable, name = "segment_why")]
#[search_path(pg_catalog, pg_temp)]
fn segment_why_saved(segment: &str, member_id: &str) -> TableIterator<
    'static,
    (
        name!(path, String),
        name!(condition, String),
        name!(result, bool),
        name!(value, Option<String>),
    ),
> {
    let row = Spi::connect(|c| {
        let t = c.select(why::SEGMENT_SQL, Some(1), &[segment.into()])?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::SpiError>(Some((
            r.get::<i64>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<String>(3)?,
            r.get::<bool>(4)?.unwrap_or(false),
            r.get::<String>(5)?.unwrap_or_default(),
            r.get::<String>(6)?,
            r.get::<bool>(7)?.unwrap_or(false),
        )))
    })
    .unwrap_or_else(|e| spi_err(e));
    let Some((id, kind, rule, active, status, ty, has_overrides)) = row else {
        // rule text where a name goes (an unknown literal resolves to this overload), as segment_diagnose takes it
        if segment.trim_start().starts_with('{') {
            return why_adhoc(Rule::parse_text(segment).unwrap_or_else(|e| raise(e)), member_id, Kind::Lead);
        }
        no_segment(segment)
    };
    let seg = why::SavedSegment {
        id,
        name: segment.to_string(),
        kind: parse_kind(&kind),
        active,
        status,
        static_list: ty.as_deref() == Some("static"),
        has_overrides,
    };
    let cat = cached_catalog();
    let extra = why::membership_sql(&seg, &cat).unwrap_or_else(|e| raise(e));
    // a static segment's rule, if any, is not evaluated: its membership is a hand-kept list
    let (nodes, time_dependent) = match rule {
        Some(text) if !seg.static_list => {
            let r = Rule::parse_text(&text).unwrap_or_else(|e| raise(e));
            let c = compile_rule(&r, seg.kind, &cat, Some(segment));
            (why::plan(&r, seg.kind, &cat).unwrap_or_else(|e| raise(e)), c.time_dependent)
        }
        _ => (vec![], false),
    };
    let (truths, values, more) = why_eval(&nodes, seg.kind, &cat, member_id, &extra);
    let in_members = more.first().copied().flatten().unwrap_or(false);
    let over = more.get(1).copied().flatten();
    let by_rule = (!nodes.is_empty()).then(|| truths.first().copied().flatten().unwrap_or(false));
    let mut out = vec![why::segment_row(&seg, in_members, over, by_rule, time_dependent)];
    out.extend(why::rows(&nodes, &truths, &values));
    why_table(out)
}

/// Why a member does (not) match an ad-hoc rule: the rule's tree.
#[pg_extern(stable, name = "segment_why")]
#[search_path(pg_catalog, pg_temp)]
fn segment_why_rule(
    rule: segment_rule,
    member_id: &str,
    kind: default!(&str, "'lead'"),
) -> TableIterator<
    'static,
    (
        name!(path, String),
        name!(condition, String),
        name!(result, bool),
        name!(value, Option<String>),
    ),
> {
    why_adhoc(rule.rule(), member_id, parse_kind(kind))
}

fn why_adhoc(r: Rule, member_id: &str, kind: Kind) -> WhyRows {
    let cat = cached_catalog();
    compile_rule(&r, kind, &cat, None);
    let nodes = why::plan(&r, kind, &cat).unwrap_or_else(|e| raise(e));
    let (truths, values, _) = why_eval(&nodes, kind, &cat, member_id, &[]);
    why_table(why::rows(&nodes, &truths, &values))
}
