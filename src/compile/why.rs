//! `kenbun.segment_why`: why one member is (not) in a segment. Pure (no pgrx): this module turns a
//! rule into one row per node of its tree, each with the SQL of the node's two-valued truth and of
//! the value it compared, over the member's row; the pgrx layer (`src/analysis.rs`) evaluates them
//! all in one query for one member and zips the results with the rows.
//!
//! Every truth is the compiler's own SQL for that node (the node compiled as a rule on its own), so
//! the tree agrees with `kenbun.compile` by construction: the root's truth is `compile(rule)`'s
//! public SQL. Nodes inside `{"account": …}` are evaluated on the lead's account; the nodes of an
//! event's or leads' `where` on the rows that condition counts (true when one of them satisfies the
//! node; value: how many do); `{"segment": …}` references are one row (not expanded). A node kind
//! this module does not know in detail still gets its truth (compiled on its own) with no value.
use super::sql::{ident, literal, typed};
use super::{compile, is_uuid, root_alias, Catalog, Cx, Kind, Resolved};
use crate::error::{KenbunError, Result, SqlState};
use crate::rule::{Count, CountOp, EventCond, LeadsCond, LevelOp, Rule};
use serde_json::json;

/// One node of the rule tree, ready to evaluate for one member.
#[derive(Debug, Clone, PartialEq)]
pub struct WhyNode {
    /// JSON path of the node in the rule document (`$`, `$.all[0]`, `$.all[1].account`, …).
    pub path: String,
    pub depth: usize,
    /// A short human form of the node, without indentation.
    pub label: String,
    /// A boolean expression over the member's row (aliased `root_alias(kind)`), never NULL.
    pub truth: String,
    /// A text expression over the member's row: what the node compared; None when there is nothing
    /// to show (groups get "k of n" from their children's results, see `rows`).
    pub value: Option<String>,
    /// For `all` / `any`: the indexes (in the plan) of the direct children.
    pub children: Vec<usize>,
}

/// One output row of `kenbun.segment_why`.
#[derive(Debug, Clone, PartialEq)]
pub struct WhyRow {
    pub path: String,
    /// The label indented by two spaces per depth, so that psql shows the tree.
    pub condition: String,
    pub result: bool,
    pub value: Option<String>,
}

/// Where a node is evaluated: on the member's own row, or on rows related to the row of an outer
/// context (the account of a lead; the events of a lead or the leads of an account that an event or
/// leads condition counts, for the nodes of its `where`).
#[derive(Debug, Clone)]
enum Ctx {
    Root,
    Sub {
        /// `<table> AS <alias> WHERE <join and conditions>`, over the outer context's alias.
        body: String,
        alias: String,
        kind: Kind,
        /// For counted rows (event / leads `where`): the words for one and many; a node's value is
        /// then how many of the rows satisfy it, and its truth that one does. None: the account.
        counted: Option<(&'static str, &'static str)>,
        outer: Box<Ctx>,
    },
}

/// The aliases of SQL nested `d` levels down are numbered from `STRIDE * (d + 1)`: more than a
/// rule's conditions can take (`MAX_EXPANDED`), so that the ranges of two levels never meet.
const STRIDE: usize = 100_000;
const _: () = assert!(super::MAX_EXPANDED < STRIDE);

struct Planner<'a> {
    cat: &'a Catalog,
    /// The kind of the rule (of the member).
    kind: Kind,
    out: Vec<WhyNode>,
}

/// The plan of a rule for `kind`: its nodes in document order (pre-order). Errors are the
/// compiler's (the pgrx layer compiles the whole rule first, so they show there).
pub fn plan(rule: &Rule, kind: Kind, cat: &Catalog) -> Result<Vec<WhyNode>> {
    // the whole rule must compile (unknown fields, cycles, kinds…) before its parts are looked at
    compile(rule, kind, cat)?;
    let mut p = Planner { cat, kind, out: vec![] };
    p.node(rule, "$", 0, &Ctx::Root)?;
    Ok(p.out)
}

impl Planner<'_> {
    /// The kind of the rows a context evaluates on.
    fn kind_in(&self, ctx: &Ctx) -> Kind {
        match ctx {
            Ctx::Root => self.kind,
            Ctx::Sub { kind, .. } => *kind,
        }
    }

    /// The alias of the context's row.
    fn alias_in(&self, ctx: &Ctx) -> String {
        match ctx {
            Ctx::Root => root_alias(self.kind).to_string(),
            Ctx::Sub { alias, .. } => alias.clone(),
        }
    }

    /// A compiler for SQL nested `depth` levels down: its aliases (`x_<n>`) start past those of
    /// the enclosing levels, so none shadows an alias that the nested SQL refers to.
    fn cx(&self, depth: usize) -> Cx<'_> {
        let mut cx = Cx::new(self.cat, self.kind, vec![]);
        cx.n = STRIDE * (depth + 1);
        cx
    }

    /// `s`, a boolean over the context's row, as a boolean over the member's row: true when some
    /// row of the context (and of each outer one) satisfies it.
    fn lift_truth(&self, ctx: &Ctx, s: String) -> String {
        match ctx {
            Ctx::Root => s,
            Ctx::Sub { body, outer, .. } => self.lift_truth(outer, format!("EXISTS (SELECT 1 FROM {body} AND ({s}))")),
        }
    }

    /// `v`, a text over the context's row, as a text over the member's row; None through counted
    /// rows (many rows have no one value).
    fn lift_value(&self, ctx: &Ctx, v: String) -> Option<String> {
        match ctx {
            Ctx::Root => Some(v),
            Ctx::Sub { counted: Some(_), .. } => None,
            Ctx::Sub { body, outer, .. } => {
                self.lift_value(outer, format!("COALESCE((SELECT {v} FROM {body} LIMIT 1), '(no account)')"))
            }
        }
    }

    fn push(&mut self, path: &str, depth: usize, label: String, truth: String, value: Option<String>) -> usize {
        self.out.push(WhyNode {
            path: path.to_string(),
            depth,
            label,
            truth,
            value,
            children: vec![],
        });
        self.out.len() - 1
    }

    fn node(&mut self, r: &Rule, path: &str, depth: usize, ctx: &Ctx) -> Result<()> {
        let kind = self.kind_in(ctx);
        let alias = self.alias_in(ctx);
        // the truth: the node compiled on its own (on the member's row: exactly kenbun.compile's)
        let (truth, counted) = match ctx {
            Ctx::Root => (compile(r, kind, self.cat)?.public_sql(), None),
            Ctx::Sub { body, counted, outer, .. } => {
                let sql = self.cx(depth).expr(r, kind, &alias)?;
                let counted = counted.and_then(|(one, many)| {
                    self.lift_value(outer, count_text(&format!("{body} AND ({sql})"), one, many))
                });
                (self.lift_truth(ctx, sql), counted)
            }
        };
        // the value: in counted rows how many satisfy the node, else what the node compared
        let in_counted = matches!(ctx, Ctx::Sub { counted: Some(_), .. });
        let value = |own: Option<String>| -> Option<String> {
            if in_counted {
                counted.clone()
            } else {
                own.and_then(|v| self.lift_value(ctx, v))
            }
        };
        #[allow(unreachable_patterns)]
        match r {
            Rule::All(v) | Rule::Any(v) => {
                let key = if matches!(r, Rule::All(_)) { "all" } else { "any" };
                let value = value(None);
                let me = self.push(path, depth, key.to_string(), truth, value);
                for (i, child) in v.iter().enumerate() {
                    let idx = self.out.len();
                    self.out[me].children.push(idx);
                    self.node(child, &format!("{path}.{key}[{i}]"), depth + 1, ctx)?;
                }
            }
            Rule::Not(child) => {
                let value = value(None);
                self.push(path, depth, "not".into(), truth, value);
                self.node(child, &format!("{path}.not"), depth + 1, ctx)?;
            }
            Rule::Field(f) => {
                let v = value(self.field_value(kind, &f.field, &alias));
                self.push(path, depth, label(r), truth, v);
            }
            Rule::Level(l) => {
                let v = value(self.level_value(kind, &l.level, &alias));
                self.push(path, depth, label(r), truth, v);
            }
            Rule::Account(inner, _) => {
                let Some((own, body)) = self.account_ctx(&alias, depth) else {
                    // not reached: the rule compiled, so leads and accounts are bound with an account key
                    return Err(KenbunError::new(SqlState::ObjectNotInPrerequisiteState, "no account binding"));
                };
                let v = value(Some(own));
                self.push(path, depth, label(r), truth, v);
                let sub = Ctx::Sub {
                    body,
                    alias: format!("a_{}", STRIDE * (depth + 1) - 1),
                    kind: Kind::Account,
                    counted: None,
                    outer: Box::new(ctx.clone()),
                };
                self.node(inner, &format!("{path}.account"), depth + 1, &sub)?;
            }
            Rule::Event(e) => {
                let v = value(self.event_value(e, kind, &alias, depth));
                self.push(path, depth, label(r), truth, v);
                if let Some(f) = &e.filter {
                    let base = EventCond { filter: None, ..e.clone() };
                    if let Some((body, x)) = self.event_body(&base, kind, &alias, depth) {
                        let sub = Ctx::Sub { body, alias: x, kind: Kind::Event, counted: Some(("event", "events")), outer: Box::new(ctx.clone()) };
                        self.node(f, &format!("{path}.event.where"), depth + 1, &sub)?;
                    }
                }
            }
            Rule::Leads(l) => {
                let v = value(self.leads_value(l, kind, &alias, depth));
                self.push(path, depth, label(r), truth, v);
                if let Some(f) = &l.filter {
                    let base = LeadsCond { filter: None, ..l.clone() };
                    if let Some((body, x)) = self.leads_body(&base, kind, &alias, depth) {
                        let sub = Ctx::Sub { body, alias: x, kind: Kind::Lead, counted: Some(("lead", "leads")), outer: Box::new(ctx.clone()) };
                        self.node(f, &format!("{path}.leads.where"), depth + 1, &sub)?;
                    }
                }
            }
            Rule::Segment(name, _) => {
                let v = value(self.segment_value(name, kind, &alias));
                self.push(path, depth, label(r), truth, v);
            }
            // a kind of node added later: its truth, compiled on its own, and no value
            _ => {
                let v = value(None);
                self.push(path, depth, label(r), truth, v);
            }
        }
        Ok(())
    }

    /// The field's value as JSON text (`null` when missing).
    fn field_value(&self, kind: Kind, field: &str, alias: &str) -> Option<String> {
        let mut cx = Cx::new(self.cat, kind, vec![]);
        Some(match cx.resolve(kind, field, alias, "$").ok()? {
            Resolved::Typed { sql, .. } => format!("COALESCE(pg_catalog.to_jsonb({sql})::text, 'null')"),
            Resolved::JsonPath { json, .. } => format!("COALESCE(({json})::text, 'null')"),
        })
    }

    /// The level's field as JSON text and the tier it falls in: `72 (tier "Hot")`, `null (no tier)`.
    fn level_value(&self, kind: Kind, level: &str, alias: &str) -> Option<String> {
        let lv = self.cat.levels.iter().find(|x| x.name == level)?;
        let mut cx = Cx::new(self.cat, kind, vec![]);
        let (num, shown) = match cx.resolve(kind, &lv.field, alias, "$").ok()? {
            Resolved::Typed { sql, .. } => (sql.clone(), format!("pg_catalog.to_jsonb({sql})::text")),
            Resolved::JsonPath { json, .. } => (
                format!("(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'number' THEN ({json})::numeric END)"),
                format!("({json})::text"),
            ),
        };
        let mut tiers = String::new();
        for t in lv.tiers.iter().rev() {
            tiers.push_str(&format!(
                " WHEN {num} >= {} THEN {}",
                typed(&t.min.to_string(), "numeric"),
                literal(&format!(" (tier {})", json!(t.name)))
            ));
        }
        Some(format!(
            "(COALESCE({shown}, 'null') || CASE{tiers} ELSE ' (no tier)' END)"
        ))
    }

    /// The value of a lead's `{"account": …}` node over the lead's alias (the account's key as
    /// JSON text, `null (no account)` or `7 (no such account)`), and the body of its context.
    fn account_ctx(&self, alias: &str, depth: usize) -> Option<(String, String)> {
        let leads = self.cat.binding(Kind::Lead)?;
        let acc = self.cat.binding(Kind::Account)?;
        let acc_key = leads.account_key.clone()?;
        let key = acc.key.clone()?;
        let table = acc.qualified();
        let a = format!("a_{}", STRIDE * (depth + 1) - 1);
        let k = format!("{alias}.{}", ident(&acc_key));
        let v = format!(
            "(CASE WHEN {k} IS NULL THEN 'null (no account)' \
             WHEN EXISTS (SELECT 1 FROM {table} AS {a} WHERE {a}.{} = {k}) THEN pg_catalog.to_jsonb({k})::text \
             ELSE pg_catalog.to_jsonb({k})::text || ' (no such account)' END)",
            ident(&key)
        );
        let body = format!("{table} AS {a} WHERE {a}.{} = {k}", ident(&key));
        Some((v, body))
    }

    /// `<events> AS <alias> WHERE <join, type, window, where>` of an event condition, and the alias.
    fn event_body(&self, e: &EventCond, kind: Kind, alias: &str, depth: usize) -> Option<(String, String)> {
        let probe = EventCond {
            count: PROBE,
            count_given: true,
            ..e.clone()
        };
        let mut cx = self.cx(depth);
        // the first alias the compiler takes is the events'
        let x = format!("{}_{}", root_alias(Kind::Event), cx.n + 1);
        let sql = cx.event(&probe, kind, alias).ok()?;
        let table = self.cat.binding(Kind::Event)?.qualified();
        Some((probe_body(&sql, &table, &x)?, x))
    }

    /// `<leads> AS <alias> WHERE <join, where>` of a leads condition, and the alias.
    fn leads_body(&self, l: &LeadsCond, kind: Kind, alias: &str, depth: usize) -> Option<(String, String)> {
        let probe = LeadsCond {
            count: PROBE,
            count_given: true,
            ..l.clone()
        };
        let mut cx = self.cx(depth);
        // the first alias the compiler takes is the leads'
        let x = format!("{}_{}", root_alias(Kind::Lead), cx.n + 1);
        let sql = cx.leads(&probe, kind, alias).ok()?;
        let table = self.cat.binding(Kind::Lead)?.qualified();
        Some((probe_body(&sql, &table, &x)?, x))
    }

    /// The number of the member's events the condition counts: `3 events`.
    fn event_value(&self, e: &EventCond, kind: Kind, alias: &str, depth: usize) -> Option<String> {
        let (body, _) = self.event_body(e, kind, alias, depth)?;
        Some(count_text(&body, "event", "events"))
    }

    /// The number of the account's leads the condition counts: `2 leads`.
    fn leads_value(&self, l: &LeadsCond, kind: Kind, alias: &str, depth: usize) -> Option<String> {
        let (body, _) = self.leads_body(l, kind, alias, depth)?;
        Some(count_text(&body, "lead", "leads"))
    }

    /// Whether the member is in the referenced segment's membership table.
    fn segment_value(&self, name: &str, kind: Kind, alias: &str) -> Option<String> {
        let seg = self.cat.segments.iter().find(|s| s.name == name)?;
        let key = self.cat.binding(kind)?.key.clone()?;
        let (table, col) = super::maintain::members_table(kind);
        let n = json!(name).to_string();
        Some(format!(
            "(CASE WHEN EXISTS (SELECT 1 FROM {table} AS m WHERE m.segment_id = {} AND m.{} = {alias}.{}) \
             THEN {} ELSE {} END)",
            seg.id,
            ident(col),
            ident(&key),
            literal(&format!("member of {n}")),
            literal(&format!("not a member of {n}"))
        ))
    }
}

/// A count no condition asks for: compiled with it, an event or leads condition is
/// `((SELECT pg_catalog.count(*) FROM … WHERE …) >= PROBE)`, from which the count is taken.
const PROBE: Count = Count {
    op: CountOp::Gte,
    value: i64::MAX,
};

/// The body of a probe's count, `<table> AS <alias> WHERE <conditions>`; None when the SQL is not a
/// plain count of `table AS alias` (an aggregate, say), so the node shows no value rather than a
/// wrong one.
fn probe_body(sql: &str, table: &str, alias: &str) -> Option<String> {
    // the shape of `count_sql` for PROBE (a general count: not EXISTS / NOT EXISTS)
    let body = sql
        .strip_prefix("((SELECT pg_catalog.count(*) FROM ")?
        .strip_suffix(&format!(") >= {})", PROBE.value))?;
    body.starts_with(&format!("{table} AS {alias} WHERE ")).then(|| body.to_string())
}

/// How many rows `<body>` selects, as text: `1 event`, `3 events`.
fn count_text(body: &str, one: &str, many: &str) -> String {
    format!(
        "(SELECT CASE WHEN pg_catalog.count(*) = 1 THEN {} ELSE pg_catalog.count(*)::text || {} END FROM {body})",
        literal(&format!("1 {one}")),
        literal(&format!(" {many}"))
    )
}

fn count_label(c: &Count) -> String {
    let op = match c.op {
        CountOp::Eq => "=",
        CountOp::Neq => "≠",
        CountOp::Gt => ">",
        CountOp::Gte => "≥",
        CountOp::Lt => "<",
        CountOp::Lte => "≤",
    };
    format!("×{op}{}", c.value)
}

/// The keys of an event or leads condition that `label` does not spell out (added to the rule
/// language later: an aggregate, say), as ` key: value` in the canonical JSON, so that the label
/// never hides what the condition asks.
fn other_keys(r: &Rule, key: &str, known: &[&str]) -> String {
    let doc = r.to_json();
    let Some(obj) = doc.get(key).and_then(|v| v.as_object()) else { return String::new() };
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| format!(" {k}: {v}"))
        .collect()
}

/// A short human form of a node (its children are rows of their own).
pub fn label(r: &Rule) -> String {
    #[allow(unreachable_patterns)]
    match r {
        Rule::All(_) => "all".into(),
        Rule::Any(_) => "any".into(),
        Rule::Not(_) => "not".into(),
        Rule::Account(..) => "account".into(),
        Rule::Field(f) => match &f.value {
            Some(v) => format!("{} {} {v}", f.field, f.op.name()),
            None => format!("{} {}", f.field, f.op.name()),
        },
        Rule::Level(l) => {
            let v = if matches!(l.op, LevelOp::In | LevelOp::NotIn) {
                json!(l.tiers)
            } else {
                json!(l.tiers[0])
            };
            format!("level {} {} {v}", l.level, l.op.name())
        }
        Rule::Event(e) => {
            let mut s = String::from("event ");
            s.push_str(&match e.types.as_slice() {
                [] => "(any type)".to_string(),
                [t] if !e.types_is_array => t.clone(),
                ts => json!(ts).to_string(),
            });
            if e.count_given && !(e.count.op == CountOp::Gte && e.count.value == 1) {
                s.push(' ');
                s.push_str(&count_label(&e.count));
            }
            if let Some(w) = &e.within {
                s.push_str(&format!(" within {w}"));
            }
            s.push_str(&other_keys(r, "event", &["type", "where", "within", "count"]));
            s
        }
        Rule::Leads(l) => {
            let mut s = String::from("leads");
            if l.count_given && !(l.count.op == CountOp::Gte && l.count.value == 1) {
                s.push(' ');
                s.push_str(&count_label(&l.count));
            }
            s.push_str(&other_keys(r, "leads", &["where", "count"]));
            s
        }
        Rule::Segment(s, _) => format!("segment {}", json!(s)),
        other => other.to_canonical_string(),
    }
}

/// The rows of a plan, given each node's truth and value for the member (in plan order). A group's
/// value is how many of its conditions are true: `2 of 3`.
pub fn rows(nodes: &[WhyNode], truths: &[Option<bool>], values: &[Option<String>]) -> Vec<WhyRow> {
    let truth = |i: usize| truths.get(i).copied().flatten().unwrap_or(false);
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let value = if (n.label == "all" || n.label == "any") && n.value.is_none() {
                let k = n.children.iter().filter(|&&c| truth(c)).count();
                Some(format!("{k} of {}", n.children.len()))
            } else {
                values.get(i).cloned().flatten()
            };
            WhyRow {
                path: n.path.clone(),
                condition: format!("{}{}", "  ".repeat(n.depth), n.label),
                result: truth(i),
                value,
            }
        })
        .collect()
}

// ---- the member -------------------------------------------------------------------------------

/// Checks that `member_id` reads as the key of the bound table of `kind`, for the key types whose
/// text form is easy to check; kenbun's 22P02 names the key and its type. (Other types are cast by
/// PostgreSQL, with its own message.)
pub fn check_member_id(member_id: &str, kind: Kind, cat: &Catalog) -> Result<()> {
    let b = super::binding(cat, kind)?;
    let key = b.key.clone().unwrap_or_default();
    let Some(c) = b.column(&key) else { return Ok(()) };
    if c.as_text {
        return Ok(());
    }
    let s = member_id.trim();
    let ok = match c.type_name.as_str() {
        "smallint" => s.parse::<i16>().is_ok(),
        "integer" => s.parse::<i32>().is_ok(),
        "bigint" => s.parse::<i64>().is_ok(),
        "numeric" | "real" | "double precision" => s.parse::<f64>().is_ok(),
        "uuid" => is_uuid(s),
        "boolean" => matches!(s.to_lowercase().as_str(), "t" | "f" | "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(KenbunError::new(
        SqlState::InvalidTextRepresentation,
        format!(
            "member_id \"{member_id}\" is not a valid {} key: column \"{key}\" of {} is {}",
            kind.name(),
            b.display(),
            c.type_name
        ),
    )
    .hint(format!("pass the {}'s key as text, e.g. '42' for an integer key", kind.name())))
}

/// The error for a member id no row of the bound table has.
pub fn no_member(member_id: &str, kind: Kind, cat: &Catalog) -> KenbunError {
    let (table, key) = cat
        .binding(kind)
        .map(|b| (b.display(), b.key.clone().unwrap_or_default()))
        .unwrap_or_default();
    KenbunError::new(
        SqlState::InvalidParameterValue,
        format!("{} \"{member_id}\" does not exist", kind.name()),
    )
    .hint(format!(
        "check the key: member_id is matched against column \"{key}\" of {table}"
    ))
}

/// The one query evaluating a plan for one member (`$1`, text): a row with the array of truths,
/// the array of values, then `extra` (SQL over the member's row, e.g. `membership_sql`). No row
/// when the member does not exist.
pub fn member_query(nodes: &[WhyNode], kind: Kind, cat: &Catalog, extra: &[String]) -> Result<String> {
    let b = super::binding(cat, kind)?;
    let a = root_alias(kind);
    let key = b.key.clone().unwrap_or_default();
    let keymatch = match b.column(&key) {
        Some(c) if !c.as_text => format!("{a}.{} = $1::{}", ident(&key), c.type_name),
        _ => format!("({a}.{})::text = $1", ident(&key)),
    };
    let truths = nodes.iter().map(|n| n.truth.as_str()).collect::<Vec<_>>().join(", ");
    let values = nodes
        .iter()
        .map(|n| match &n.value {
            Some(v) => format!("({v})::text"),
            None => "NULL::text".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut cols = vec![format!("ARRAY[{truths}]::boolean[]"), format!("ARRAY[{values}]::text[]")];
    cols.extend(extra.iter().cloned());
    Ok(format!("SELECT {} FROM {} AS {a} WHERE {keymatch}", cols.join(", "), b.qualified()))
}

// ---- the saved segment ------------------------------------------------------------------------

/// What `segment_why` reads of a saved segment (from `SEGMENT_SQL`).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSegment {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    pub active: bool,
    /// 'ready' or 'building'.
    pub status: String,
    /// `kenbun.segments.type = 'static'`: membership is a hand-kept list; the rule is not evaluated.
    pub static_list: bool,
    /// `kenbun.member_overrides` exists.
    pub has_overrides: bool,
}

/// INTEGRATION POINT (static segments and member overrides). The saved segment, by name ($1):
/// id, kind, rule, active, status, type, whether `kenbun.member_overrides` exists. `type` is read
/// through `to_jsonb(s)` so that this works before and after the column is added (NULL before).
pub const SEGMENT_SQL: &str = "SELECT s.id, s.kind, s.rule::text, s.active, s.status, \
     pg_catalog.to_jsonb(s) ->> 'type', \
     pg_catalog.to_regclass('kenbun.member_overrides') IS NOT NULL \
     FROM kenbun.segments AS s WHERE s.name = $1";

/// INTEGRATION POINT (member overrides). Columns for `member_query`'s `extra`, over the member's
/// row: whether the member is in the segment's membership table, and the member's override
/// (`kenbun.member_overrides.include`, the latest; NULL when none or when the table does not exist).
pub fn membership_sql(seg: &SavedSegment, cat: &Catalog) -> Result<Vec<String>> {
    let b = super::binding(cat, seg.kind)?;
    let a = root_alias(seg.kind);
    let key = format!("{a}.{}", ident(b.key.as_deref().unwrap_or("id")));
    let (table, col) = super::maintain::members_table(seg.kind);
    let member = format!(
        "EXISTS (SELECT 1 FROM {table} AS m WHERE m.segment_id = {} AND m.{} = {key})",
        seg.id,
        ident(col)
    );
    let over = if seg.has_overrides {
        format!(
            "(SELECT o.include FROM kenbun.member_overrides AS o WHERE o.segment_id = {} AND o.member_id = ({key})::text \
             ORDER BY o.created_at DESC LIMIT 1)",
            seg.id
        )
    } else {
        "NULL::boolean".to_string()
    };
    Ok(vec![member, over])
}

/// The `segment` row: whether the member is in the membership table, and why when it is not the
/// rule (`rule`: the rule's root truth; None when not evaluated).
pub fn segment_row(
    seg: &SavedSegment,
    in_members: bool,
    over: Option<bool>,
    rule: Option<bool>,
    time_dependent: bool,
) -> WhyRow {
    let mut why = vec![];
    if seg.static_list {
        why.push("static list".to_string());
    }
    match over {
        Some(true) => why.push("override: included".into()),
        Some(false) => why.push("override: excluded".into()),
        None => {}
    }
    if !seg.active {
        why.push("inactive: no members".into());
    }
    if seg.status == "building" {
        why.push("building: membership may lag the rule".into());
    }
    if why.is_empty() {
        why.push(match rule {
            Some(r) if r == in_members => "rule".into(),
            Some(_) if time_dependent => {
                "differs from the rule: a time window moved since the last refresh (kenbun.refresh_due)".into()
            }
            Some(_) => format!(
                "differs from the rule: membership has drifted (kenbun.segment_repair({}) fixes it)",
                literal(&seg.name)
            ),
            None => "rule".into(),
        });
    }
    WhyRow {
        path: "segment".into(),
        condition: json!(seg.name).to_string(),
        result: in_members,
        value: Some(why.join("; ")),
    }
}

#[cfg(test)]
mod tests;
