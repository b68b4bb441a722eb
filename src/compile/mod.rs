//! Rule → SQL. The only place in kenbun that writes SQL text about user data. Identifiers come from
//! the catalog and are always quoted; values become quoted, typed literals.
pub mod analyze;
pub mod catalog;
pub mod maintain;
pub mod sql;
pub mod why;

pub use catalog::{Binding, Catalog, Kind};

use crate::error::{did_you_mean, KenbunError, Result, SqlState};
use crate::rule::{
    is_iso_datetime, period, AggFunc, Count, CountOp, EventCond, FieldCond, LeadsCond, LevelCond, LevelOp, Op, Rule,
    SequenceCond,
};
use serde_json::Value;
use sql::{ident, like_escape, literal, typed};
use std::collections::BTreeSet;

/// The result of compiling a rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    /// A boolean expression over the bound table aliased `root_alias(kind)`. It is TRUE for members
    /// and FALSE or NULL for everyone else: use it in WHERE. `public_sql` is strictly two-valued.
    pub sql: String,
    /// Regular expressions to validate (pattern, JSON path).
    pub regexes: Vec<(String, String)>,
    /// Uses now(): membership changes as time passes.
    pub time_dependent: bool,
    /// (kind, column) pairs the rule reads, including join keys.
    pub reads: BTreeSet<(Kind, String)>,
    /// The part of `reads` read from the *other* leads of a lead's own account (`{"account":{"leads":…}}`
    /// in a lead rule, directly or through a referenced segment): a change to one lead (or to an event
    /// of one lead) in these columns can change the membership of its siblings. Empty for account rules.
    pub sibling_reads: BTreeSet<(Kind, String)>,
    /// Saved segments used, directly or through other segments.
    pub segments: BTreeSet<String>,
    /// The conditions on the rows of other tables the rule reads through subqueries
    /// (`{"account": …}`, `{"event": …}`, `{"leads": …}`, `{"sequence": …}`), one per subquery.
    pub filters: Vec<Filter>,
    /// Reads kenbun's own membership or overrides (a static segment's list, a segment with manual
    /// overrides, directly or through a reference): never decided from the changed row alone.
    pub reads_membership: bool,
    /// (date_trunc unit, time zone) of every calendar period the rule uses (`in_period`): its
    /// membership changes at each start of that unit in that zone.
    pub boundaries: BTreeSet<(String, String)>,
    /// Every time zone the rule names (to validate; the compiler cannot).
    pub time_zones: BTreeSet<String>,
}

/// What a subquery of a rule asks of each row of the table it reads (besides the join to the
/// member): the rule's result depends on that table only through the set of rows for which this is
/// true. A change to such a row that leaves it false before and after, or true before and after
/// (with the same join key), cannot change the rule's result for any member.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub table: Kind,
    /// The alias the row has in `sql` (the subquery's alias).
    pub alias: String,
    /// A boolean expression over the row; NULL counts as false.
    pub sql: String,
    /// `sql` reads only that row (no nested subquery): it can be evaluated on a changed row.
    pub row_only: bool,
    /// A condition on the member's own row outside any subquery (a field or level condition of the
    /// rule itself): the rule is a function of these and of its subqueries, so a change of the row
    /// that leaves all of them (and the row's keys) as they were leaves the rule's result as it was.
    pub own: bool,
}

impl Compiled {
    /// The two-valued form (never NULL), as returned by `kenbun.compile`.
    pub fn public_sql(&self) -> String {
        match self.sql.as_str() {
            "true" | "false" => self.sql.clone(),
            s => format!("COALESCE({s}, false)"),
        }
    }
}

/// The alias the top-level table has in compiled SQL.
pub fn root_alias(kind: Kind) -> &'static str {
    match kind {
        Kind::Lead => "l",
        Kind::Account => "a",
        Kind::Event => "e",
    }
}

/// Compiles `rule` for `kind` (lead or account) against the catalog.
pub fn compile(rule: &Rule, kind: Kind, cat: &Catalog) -> Result<Compiled> {
    compile_with_stack(rule, kind, cat, vec![])
}

/// Compiles the rule of saved segment `name` (so that a reference back to it is reported as a cycle).
pub fn compile_segment(rule: &Rule, kind: Kind, cat: &Catalog, name: &str) -> Result<Compiled> {
    compile_with_stack(rule, kind, cat, vec![name.to_string()])
}

/// The membership condition of saved segment `seg` (which must be in `cat.segments`) as it is
/// stored and maintained: for a static segment its own member list (its rule, if any, only filled
/// it once: `rule` is then compiled as the second result), for a dynamic one
/// its rule, with its manual overrides when it has some.
pub fn compile_saved(rule: Option<&Rule>, kind: Kind, cat: &Catalog, seg: &catalog::SegmentDef) -> Result<(Compiled, Option<Compiled>)> {
    let key = binding(cat, kind)?.key.clone().unwrap_or_default();
    let alias = root_alias(kind);
    if seg.is_static {
        let fill = match rule {
            Some(r) => Some(compile_segment(r, kind, cat, &seg.name)?),
            None => None,
        };
        let mut c = Compiled { sql: static_lookup(seg.id, kind, "sm", alias, &key), reads_membership: true, ..Default::default() };
        c.reads.insert((kind, key));
        // what the fill reads counts as read: its author must be allowed to read it (the privilege
        // check of kenbun.segments), or a list filled once would tell who matches a hidden column
        if let Some(f) = &fill {
            c.reads.extend(f.reads.iter().cloned());
        }
        return Ok((c, fill));
    }
    let rule = rule.ok_or_else(|| {
        KenbunError::new(SqlState::InvalidObjectDefinition, format!("dynamic segment \"{}\" needs a rule", seg.name))
            .hint("give it a rule, or make it a static list: type => 'static'")
    })?;
    let mut c = compile_segment(rule, kind, cat, &seg.name)?;
    if seg.overrides {
        c.sql = with_overrides(&c.sql, seg.id, "so", alias, &key);
        c.reads_membership = true;
        c.reads.insert((kind, key));
    }
    Ok((c, None))
}

/// Is the member (`alias`.`key`) in the member list of static segment `id`?
fn static_lookup(id: i64, kind: Kind, m: &str, alias: &str, key: &str) -> String {
    let (table, col) = maintain::members_table(kind);
    format!("EXISTS (SELECT 1 FROM {table} AS {m} WHERE {m}.segment_id = {id} AND {m}.{} = {alias}.{})", ident(col), ident(key))
}

/// A rule with the manual overrides of segment `id`: an included member is in, an excluded one out,
/// the others as the rule says.
fn with_overrides(sql: &str, id: i64, o: &str, alias: &str, key: &str) -> String {
    format!(
        "COALESCE((SELECT {o}.include FROM kenbun.member_overrides AS {o} WHERE {o}.segment_id = {id} AND {o}.member_id = ({alias}.{})::text), {sql})",
        ident(key)
    )
}

fn compile_with_stack(rule: &Rule, kind: Kind, cat: &Catalog, stack: Vec<String>) -> Result<Compiled> {
    if kind == Kind::Event {
        return Err(
            KenbunError::new(SqlState::InvalidParameterValue, "kind must be \"lead\" or \"account\"")
                .hint("event conditions go inside a lead rule: {\"event\":{…}}"),
        );
    }
    binding(cat, kind)?;
    let mut cx = Cx::new(cat, kind, stack);
    let sql = cx.expr(rule, kind, root_alias(kind))?;
    let mut out = cx.out;
    out.sql = sql;
    Ok(out)
}

/// A field as a text expression over `root_alias(kind)` (to list the values it takes).
pub fn field_text_expr(kind: Kind, field: &str, cat: &Catalog) -> Result<String> {
    let mut cx = Cx::new(cat, kind, vec![]);
    Ok(match cx.resolve(kind, field, root_alias(kind), "$")? {
        Resolved::Typed { sql, .. } => format!("({sql})::text"),
        Resolved::JsonPath { text, .. } => text,
    })
}

/// Checks the field of a level (`kenbun.define_levels`) against the bound lead and account tables. A
/// level has no kind: a rule reads the field of its own kind. The field must be numeric (a numeric
/// column or mapped field, or a JSON path, read where it holds a number) in at least one of them.
/// Returns the (kind, column) pairs the field reads in the kinds where it is usable.
pub fn level_field_reads(field: &str, cat: &Catalog) -> Result<BTreeSet<(Kind, String)>> {
    let mut reads = BTreeSet::new();
    let mut usable = false;
    let mut not_numeric: Option<KenbunError> = None;
    let mut unknown: Option<KenbunError> = None;
    for kind in [Kind::Lead, Kind::Account] {
        if cat.binding(kind).is_none() {
            continue;
        }
        let mut cx = Cx::new(cat, kind, vec![]);
        match cx.resolve(kind, field, root_alias(kind), "$") {
            Ok(Resolved::Typed {
                class: Class::Int | Class::Num,
                ..
            })
            | Ok(Resolved::JsonPath { .. }) => {
                usable = true;
                reads.extend(cx.out.reads)
            }
            Ok(Resolved::Typed { type_name, .. }) => {
                not_numeric.get_or_insert_with(|| {
                    KenbunError::new(
                        SqlState::DatatypeMismatch,
                        format!(
                            "field \"{field}\" of kind \"{}\" is {type_name}, not numeric",
                            kind.name()
                        ),
                    )
                    .hint("levels are tiers over a number: a numeric column, a numeric mapped field, or a JSON path holding numbers")
                });
            }
            Err(e) => {
                unknown.get_or_insert(KenbunError {
                    message: e.message.trim_start_matches("invalid rule at $.field: ").to_string(),
                    ..e
                });
            }
        }
    }
    if usable {
        return Ok(reads);
    }
    // not usable anywhere: say why (not numeric before unknown), or that nothing is bound to check it
    Err(not_numeric.or(unknown).unwrap_or_else(|| {
        KenbunError::new(
            SqlState::ObjectNotInPrerequisiteState,
            "no lead or account table is bound: a level's field cannot be checked",
        )
        .hint("bind the tables first with kenbun.bind_leads / kenbun.bind_accounts")
    }))
}

fn binding(cat: &Catalog, kind: Kind) -> Result<&Binding> {
    cat.binding(kind).ok_or_else(|| {
        KenbunError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("no table is bound for kind \"{}\"", kind.name()),
        )
        .hint(format!(
            "bind one first, e.g. SELECT {}('public.{}s');",
            kind.bind_function(),
            kind.name()
        ))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Text,
    Int,
    Num,
    Bool,
    Time,
    Jsonb,
    Other,
}

pub(crate) fn class_of(type_name: &str) -> Class {
    match type_name {
        "text" | "character varying" | "character" | "name" => Class::Text,
        t if t == "citext" || t.ends_with(".citext") => Class::Text,
        "smallint" | "integer" | "bigint" => Class::Int,
        "numeric" | "real" | "double precision" => Class::Num,
        "boolean" => Class::Bool,
        "date" | "timestamp without time zone" | "timestamp with time zone" => Class::Time,
        "jsonb" => Class::Jsonb,
        _ => Class::Other,
    }
}

fn class_desc(c: Class) -> &'static str {
    match c {
        Class::Text => "text",
        Class::Int | Class::Num => "numeric",
        Class::Bool => "boolean",
        Class::Time => "a date/time",
        Class::Jsonb => "jsonb",
        Class::Other => "of another type",
    }
}

/// A field resolved to SQL.
#[derive(Debug, Clone)]
enum Resolved {
    /// A typed value expression.
    Typed {
        sql: String,
        class: Class,
        type_name: String,
    },
    /// A JSON path with no declared type: `json` yields jsonb, `text` yields its text.
    JsonPath { json: String, text: String },
}

struct Cx<'a> {
    cat: &'a Catalog,
    n: usize,
    out: Compiled,
    /// Segments being expanded, for cycle detection.
    stack: Vec<String>,
    /// Conditions compiled so far, with referenced segments inlined (bounded by MAX_EXPANDED).
    expanded: usize,
    /// The kind the rule is compiled for, and how many `account` conditions enclose the current one.
    root: Kind,
    in_account: usize,
}

impl<'a> Cx<'a> {
    fn new(cat: &'a Catalog, root: Kind, stack: Vec<String>) -> Self {
        Cx {
            cat,
            n: 0,
            out: Compiled::default(),
            stack,
            expanded: 0,
            root,
            in_account: 0,
        }
    }
}

/// Most conditions a rule may have once the segments it references are inlined: each rule is
/// limited to MAX_NODES, but references multiply (a segment using another twice, which uses another
/// twice, …), and the compiled SQL must stay small.
pub const MAX_EXPANDED: usize = 10 * crate::rule::MAX_NODES;

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_path(column_sql: &str, keys: &[&str], last_text: bool) -> String {
    let mut s = column_sql.to_string();
    for (i, k) in keys.iter().enumerate() {
        let op = if last_text && i + 1 == keys.len() {
            " ->> "
        } else {
            " -> "
        };
        s.push_str(op);
        s.push_str(&literal(k));
    }
    format!("({s})")
}

impl<'a> Cx<'a> {
    fn alias(&mut self, kind: Kind) -> String {
        self.n += 1;
        format!("{}_{}", root_alias(kind), self.n)
    }

    fn expr(&mut self, r: &Rule, kind: Kind, alias: &str) -> Result<String> {
        self.expanded += 1;
        if self.expanded > MAX_EXPANDED {
            return Err(KenbunError::new(
                SqlState::ProgramLimitExceeded,
                format!("rule has more than {MAX_EXPANDED} conditions once the segments it references are inlined"),
            )
            .hint(
                "reference fewer segments, or fewer times; each {\"segment\": …} condition copies that segment's rule",
            ));
        }
        match r {
            Rule::All(v) if v.is_empty() => Ok("true".into()),
            Rule::Any(v) if v.is_empty() => Ok("false".into()),
            Rule::All(v) | Rule::Any(v) => {
                let parts = v
                    .iter()
                    .map(|x| self.expr(x, kind, alias))
                    .collect::<Result<Vec<_>>>()?;
                if parts.len() == 1 {
                    return Ok(parts.into_iter().next().unwrap());
                }
                let sep = if matches!(r, Rule::All(_)) { " AND " } else { " OR " };
                Ok(format!("({})", parts.join(sep)))
            }
            Rule::Not(x) => Ok(negate(&self.expr(x, kind, alias)?)),
            Rule::Field(_) | Rule::Level(_) => {
                let sql = match r {
                    Rule::Field(f) => self.field(f, kind, alias)?,
                    Rule::Level(l) => self.level(l, kind, alias)?,
                    _ => unreachable!(),
                };
                if kind == self.root && alias == root_alias(self.root) && !self.out.filters.iter().any(|f| f.own && f.sql == sql) {
                    self.out.filters.push(Filter { table: kind, alias: alias.to_string(), sql: sql.clone(), row_only: true, own: true });
                }
                Ok(sql)
            }
            Rule::Account(inner, path) => self.account(inner, path, kind, alias),
            Rule::Event(e) => self.event(e, kind, alias),
            Rule::Leads(l) => self.leads(l, kind, alias),
            Rule::Sequence(q) => self.sequence(q, kind, alias),
            Rule::Segment(name, path) => self.segment(name, path, kind, alias),
        }
    }

    fn resolve(&mut self, kind: Kind, name: &str, alias: &str, path: &str) -> Result<Resolved> {
        let b = binding(self.cat, kind)?;
        let col_sql = |c: &str| format!("{alias}.{}", ident(c));
        if let Some(m) = self.cat.fields.iter().find(|m| m.kind == kind.name() && m.name == name) {
            let mut parts = m.path.split('.');
            let col = parts.next().unwrap_or_default();
            let keys: Vec<&str> = parts.collect();
            let c = b.column(col).ok_or_else(|| {
                KenbunError::at(
                    SqlState::UndefinedColumn,
                    path,
                    format!(
                        "field \"{name}\" is mapped to \"{}\", but {} has no column \"{col}\"",
                        m.path,
                        b.display()
                    ),
                )
                .hint(format!(
                    "re-map it with kenbun.map_field('{}', '{name}', <path>, <type>)",
                    kind.name()
                ))
            })?;
            if !m.builtin {
                return Err(KenbunError::at(
                    SqlState::DatatypeMismatch,
                    path,
                    format!(
                        "field \"{name}\" is mapped to type {}, which is not a built-in type",
                        m.type_name
                    ),
                )
                .hint(format!(
                    "re-map it to a built-in type with kenbun.map_field('{}', '{name}', '{}', 'text')",
                    kind.name(),
                    m.path
                )));
            }
            self.out.reads.insert((kind, col.to_string()));
            let class = class_of(&m.type_name);
            let sql = if keys.is_empty() {
                if c.type_name == m.type_name {
                    b.column_sql(alias, c)
                } else {
                    format!("({}::{})", b.column_sql(alias, c), m.type_name)
                }
            } else if class == Class::Jsonb {
                json_path(&col_sql(col), &keys, false)
            } else if m.type_name == "text" {
                json_path(&col_sql(col), &keys, true)
            } else {
                format!("({}::{})", json_path(&col_sql(col), &keys, true), m.type_name)
            };
            return Ok(Resolved::Typed {
                sql,
                class,
                type_name: m.type_name.clone(),
            });
        }
        if let Some(c) = b.column(name) {
            self.out.reads.insert((kind, c.name.clone()));
            return Ok(Resolved::Typed {
                sql: b.column_sql(alias, c),
                class: class_of(&c.type_name),
                type_name: c.type_name.clone(),
            });
        }
        let mut parts = name.split('.');
        let head = parts.next().unwrap_or_default();
        let keys: Vec<&str> = parts.collect();
        if !keys.is_empty() {
            if let Some(c) = b.column(head) {
                if class_of(&c.type_name) != Class::Jsonb {
                    return Err(KenbunError::at(
                        SqlState::DatatypeMismatch,
                        &format!("{path}.field"),
                        format!(
                            "field \"{name}\": column \"{head}\" of {} is {}, not jsonb",
                            b.display(),
                            c.type_name
                        ),
                    )
                    .hint("dotted paths are only allowed into jsonb columns"));
                }
                if keys.iter().any(|k| k.is_empty()) {
                    return Err(KenbunError::at(
                        SqlState::InvalidParameterValue,
                        path,
                        format!("field \"{name}\" has an empty path element"),
                    ));
                }
                self.out.reads.insert((kind, head.to_string()));
                let col = col_sql(head);
                return Ok(Resolved::JsonPath {
                    json: json_path(&col, &keys, false),
                    text: json_path(&col, &keys, true),
                });
            }
        }
        let mut candidates: Vec<&str> = b.columns.iter().map(|c| c.name.as_str()).collect();
        candidates.extend(
            self.cat
                .fields
                .iter()
                .filter(|m| m.kind == kind.name())
                .map(|m| m.name.as_str()),
        );
        let e = KenbunError::at(
            SqlState::UndefinedColumn,
            &format!("{path}.field"),
            format!(
                "unknown field \"{name}\" for kind \"{}\" (table {})",
                kind.name(),
                b.display()
            ),
        );
        Err(match did_you_mean(name, candidates.iter().copied()) {
            Some(h) => e.hint(h),
            None => e.hint(format!(
                "fields are the columns of {} ({}), dotted paths into its jsonb columns, and fields added with kenbun.map_field",
                b.display(),
                candidates.join(", ")
            )),
        })
    }

    fn field(&mut self, f: &FieldCond, kind: Kind, alias: &str) -> Result<String> {
        if matches!(f.op, Op::HasAny | Op::HasAll | Op::HasNone) {
            let resolved = self.resolve(kind, &f.field, alias, &f.path)?;
            return has_elements(f, resolved);
        }
        if let Some(pos) = f.op.positive() {
            let p = FieldCond { op: pos, ..f.clone() };
            return Ok(negate(&self.field(&p, kind, alias)?));
        }
        let resolved = self.resolve(kind, &f.field, alias, &f.path)?;
        if let Resolved::Typed { type_name, .. } = &resolved {
            // a text array holds elements, not one value: a scalar literal cast to it would fail
            if is_text_array(type_name) && f.op != Op::IsSet {
                return Err(KenbunError::at(
                    SqlState::DatatypeMismatch,
                    &format!("{}.op", f.path),
                    format!(
                        "operator \"{}\" does not apply to field \"{}\", which is an array ({type_name})",
                        f.op.name(),
                        f.field
                    ),
                )
                .hint("test its elements with has_any, has_all or has_none, or whether it is set with is_set"));
            }
        }
        let vpath = format!("{}.value", f.path);
        // untyped JSON paths take their type from the value
        let (sql, class, type_name) = match resolved {
            Resolved::Typed { sql, class, type_name } => (sql, class, type_name),
            Resolved::JsonPath { json, text } => {
                // the type of a list's elements for in and between; for contains an array is
                // containment, like an object
                let first = match (f.op, &f.value) {
                    (Op::In | Op::Between, Some(Value::Array(a))) => a.first().cloned(),
                    (_, v) => v.clone(),
                };
                match (f.op, first) {
                    (Op::IsSet, _) => return Ok(format!("({text} IS NOT NULL)")),
                    (Op::Before | Op::After | Op::WithinLast | Op::InPeriod | Op::BetweenAgo | Op::InNext, _) => {
                        return Err(KenbunError::at(
                            SqlState::DatatypeMismatch,
                            &format!("{}.op", f.path),
                            format!("operator \"{}\" needs a date/time field, and \"{}\" is a JSON path without a declared type", f.op.name(), f.field),
                        )
                        .hint(format!(
                            "declare its type: SELECT kenbun.map_field('{}', '<name>', '{}', 'timestamptz');",
                            kind.name(),
                            f.field.replace('\'', "''")
                        )))
                    }
                    (Op::Contains, Some(v @ (Value::Object(_) | Value::Array(_)))) => {
                        return Ok(format!("({json} @> {})", typed(&v.to_string(), "jsonb")))
                    }
                    (_, Some(Value::Number(_))) => (
                        format!("(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'number' THEN ({json})::numeric END)"),
                        Class::Num,
                        "numeric".to_string(),
                    ),
                    (_, Some(Value::Bool(_))) => (
                        format!("(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'boolean' THEN ({json})::boolean END)"),
                        Class::Bool,
                        "boolean".to_string(),
                    ),
                    _ => (text, Class::Text, "text".to_string()),
                }
            }
        };
        let allowed = match class {
            Class::Text => !matches!(
                f.op,
                Op::Before | Op::After | Op::WithinLast | Op::InPeriod | Op::BetweenAgo | Op::InNext
            ),
            Class::Int | Class::Num | Class::Other => {
                matches!(
                    f.op,
                    Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Between | Op::In | Op::IsSet
                )
            }
            Class::Bool => matches!(f.op, Op::Eq | Op::In | Op::IsSet),
            Class::Time => !matches!(f.op, Op::Contains | Op::StartsWith | Op::EndsWith | Op::Matches),
            Class::Jsonb => matches!(f.op, Op::Eq | Op::Contains | Op::IsSet),
        };
        if !allowed {
            return Err(op_not_applicable(f, class, &type_name));
        }
        let lit = |cx: &Self, v: &Value, p: &str| cx.literal(class, &type_name, v, p, &f.field);
        let v = f.value.as_ref();
        Ok(match f.op {
            Op::IsSet => format!("({sql} IS NOT NULL)"),
            Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Before | Op::After => {
                let o = match f.op {
                    Op::Eq => "=",
                    Op::Gt | Op::After => ">",
                    Op::Gte => ">=",
                    Op::Lt | Op::Before => "<",
                    _ => "<=",
                };
                format!("({sql} {o} {})", lit(self, v.unwrap(), &vpath)?)
            }
            Op::Between => {
                let a = v.unwrap().as_array().unwrap();
                format!(
                    "({sql} BETWEEN {} AND {})",
                    lit(self, &a[0], &format!("{vpath}[0]"))?,
                    lit(self, &a[1], &format!("{vpath}[1]"))?
                )
            }
            Op::In => {
                let a = v.unwrap().as_array().unwrap();
                let items = a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| lit(self, x, &format!("{vpath}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                format!("({sql} IN ({}))", items.join(", "))
            }
            Op::Contains if class == Class::Jsonb => format!("({sql} @> {})", typed(&v.unwrap().to_string(), "jsonb")),
            Op::Contains | Op::StartsWith | Op::EndsWith => {
                let s = v
                    .unwrap()
                    .as_str()
                    .ok_or_else(|| mismatch(&vpath, &f.field, class, v.unwrap()))?;
                let e = like_escape(s);
                let pat = match f.op {
                    Op::Contains => format!("%{e}%"),
                    Op::StartsWith => format!("{e}%"),
                    _ => format!("%{e}"),
                };
                format!("({sql} ILIKE {})", typed(&pat, "text"))
            }
            Op::Matches => {
                let s = v.unwrap().as_str().unwrap();
                self.out.regexes.push((s.to_string(), vpath.clone()));
                format!("({sql} ~ {})", typed(s, "text"))
            }
            Op::WithinLast => {
                self.out.time_dependent = true;
                let s = v.unwrap().as_str().unwrap();
                format!("({sql} >= {})", ago(s))
            }
            Op::BetweenAgo => {
                self.out.time_dependent = true;
                let a = v.unwrap().as_array().unwrap();
                let (older, newer) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
                format!("({sql} >= {} AND {sql} < {})", ago(older), ago(newer))
            }
            Op::InNext => {
                self.out.time_dependent = true;
                let s = v.unwrap().as_str().unwrap();
                format!(
                    "({sql} >= pg_catalog.now() AND {sql} <= (pg_catalog.now() + {}))",
                    typed(s.trim(), "interval")
                )
            }
            Op::InPeriod => self.in_period(f, &sql, &type_name),
            Op::Neq | Op::NotIn | Op::NotContains | Op::IsNotSet | Op::NotWithinLast | Op::HasNone => unreachable!(),
            Op::HasAny | Op::HasAll => unreachable!("has_elements"),
        })
    }

    /// `in_period`: the period's bounds are computed in local time of the zone (the condition's
    /// `tz`, else the catalog's, else UTC), start inclusive, end exclusive. A timestamptz compares
    /// with the bounds converted back to instants, a timestamp without time zone with the local
    /// bounds, a date with their dates.
    fn in_period(&mut self, f: &FieldCond, sql: &str, type_name: &str) -> String {
        self.out.time_dependent = true;
        let name = f.value.as_ref().and_then(Value::as_str).unwrap_or_default();
        let (unit, offset) = period(name).unwrap_or(("day", 0));
        let tz = f
            .tz
            .clone()
            .or_else(|| self.cat.timezone.clone())
            .unwrap_or_else(|| "UTC".into());
        self.out.boundaries.insert((unit.to_string(), tz.clone()));
        self.out.time_zones.insert(tz.clone());
        let z = typed(&tz, "text");
        let step = if unit == "quarter" { "3 months".to_string() } else { format!("1 {unit}") };
        let start = format!("pg_catalog.date_trunc({}, pg_catalog.now() AT TIME ZONE {z})", literal(unit));
        let at = |k: i32| match k {
            0 => format!("({start})"),
            k => format!("({start} {} {})", if k < 0 { "-" } else { "+" }, typed(&step, "interval")),
        };
        let (lo, hi) = (at(offset), at(offset + 1));
        let (lo, hi) = match type_name {
            "timestamp with time zone" => (format!("({lo} AT TIME ZONE {z})"), format!("({hi} AT TIME ZONE {z})")),
            "date" => (format!("{lo}::date"), format!("{hi}::date")),
            _ => (lo, hi),
        };
        format!("({sql} >= {lo} AND {sql} < {hi})")
    }

    /// A value as a typed literal fitting the field's class.
    fn literal(&self, class: Class, type_name: &str, v: &Value, vpath: &str, field: &str) -> Result<String> {
        Ok(match (class, v) {
            (Class::Text, Value::String(s)) => typed(s, "text"),
            (Class::Int, Value::Number(n)) => {
                // past i64::MAX a u64 does not fit a bigint: numeric
                if n.is_i64() {
                    typed(&n.to_string(), "bigint")
                } else {
                    typed(&n.to_string(), "numeric")
                }
            }
            (Class::Num, Value::Number(n)) => {
                // PostgreSQL refuses a real literal outside float4's range ('1e39'::real) while
                // planning; such values compare as double precision, to which real widens exactly
                let x = n.as_f64().unwrap_or(0.0).abs();
                let t = if type_name == "real" && x != 0.0 && !(1e-37..=3e38).contains(&x) {
                    "double precision"
                } else {
                    type_name
                };
                typed(&n.to_string(), t)
            }
            (Class::Bool, Value::Bool(b)) => b.to_string(),
            (Class::Time, Value::String(s)) => {
                if !is_iso_datetime(s) {
                    return Err(KenbunError::at(
                        SqlState::InvalidDatetimeFormat,
                        vpath,
                        format!("\"{s}\" is not an ISO date or timestamp (field \"{field}\" is {type_name})"),
                    )
                    .hint("write \"2024-01-31\" or \"2024-01-31T12:00:00Z\""));
                }
                let t = if type_name == "date" && s.len() > 10 {
                    "timestamp without time zone"
                } else {
                    type_name
                };
                typed(s, t)
            }
            (Class::Jsonb, v) => typed(&v.to_string(), "jsonb"),
            (Class::Other, v) if type_name == "uuid" && !v.is_string() => {
                return Err(KenbunError::at(
                    SqlState::DatatypeMismatch,
                    vpath,
                    format!("field \"{field}\" is uuid but the value is {}", value_type(v)),
                )
                .hint("write the uuid as a JSON string"));
            }
            (Class::Other, Value::String(s)) if type_name == "uuid" && !is_uuid(s) => {
                return Err(KenbunError::at(
                    SqlState::InvalidTextRepresentation,
                    vpath,
                    format!("\"{s}\" is not a UUID (field \"{field}\" is uuid)"),
                )
                .hint("write it as \"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""));
            }
            (Class::Other, Value::String(s)) => typed(s, type_name),
            (Class::Other, Value::Number(n)) => typed(&n.to_string(), type_name),
            (c, v) => return Err(mismatch(vpath, field, c, v)),
        })
    }

    fn level(&mut self, l: &LevelCond, kind: Kind, alias: &str) -> Result<String> {
        if matches!(l.op, LevelOp::Neq | LevelOp::NotIn) {
            let op = if l.op == LevelOp::Neq { LevelOp::Eq } else { LevelOp::In };
            return Ok(negate(&self.level(&LevelCond { op, ..l.clone() }, kind, alias)?));
        }
        let lv = self.cat.levels.iter().find(|x| x.name == l.level).ok_or_else(|| {
            let e = KenbunError::at(
                SqlState::UndefinedObject,
                &format!("{}.level", l.path),
                format!("level \"{}\" does not exist", l.level),
            );
            match did_you_mean(&l.level, self.cat.levels.iter().map(|x| x.name.as_str())) {
                Some(h) => e.hint(h),
                None => e.hint("define it with kenbun.define_levels(name, field, tiers)"),
            }
        })?;
        let n = lv.tiers.len();
        let index = |t: &str, i: Option<usize>| -> Result<usize> {
            lv.tiers.iter().position(|x| x.name == t).ok_or_else(|| {
                let p = match i {
                    Some(i) => format!("{}.value[{i}]", l.path),
                    None => format!("{}.value", l.path),
                };
                KenbunError::at(
                    SqlState::InvalidParameterValue,
                    &p,
                    format!("level \"{}\" has no tier \"{t}\"", lv.name),
                )
                .hint(format!(
                    "its tiers are {}",
                    lv.tiers
                        .iter()
                        .map(|x| format!("\"{}\"", x.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let mut set = vec![false; n];
        match l.op {
            LevelOp::In => {
                for (i, t) in l.tiers.iter().enumerate() {
                    set[index(t, Some(i))?] = true;
                }
            }
            _ => {
                let i = index(&l.tiers[0], None)?;
                for (j, s) in set.iter_mut().enumerate() {
                    *s = match l.op {
                        LevelOp::Eq => j == i,
                        LevelOp::Gt => j > i,
                        LevelOp::Gte => j >= i,
                        LevelOp::Lt => j < i,
                        LevelOp::Lte => j <= i,
                        _ => unreachable!(),
                    }
                }
            }
        }
        let fpath = format!("{}.level", l.path);
        let (sql, class, type_name) = match self.resolve(kind, &lv.field, alias, &fpath).map_err(|e| KenbunError {
            message: format!("{} (the field of level \"{}\")", e.message, lv.name),
            ..e
        })? {
            Resolved::Typed {
                sql,
                class: c @ (Class::Int | Class::Num),
                type_name,
            } => (sql, c, type_name),
            Resolved::JsonPath { json, .. } => (
                format!("(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'number' THEN ({json})::numeric END)"),
                Class::Num,
                "numeric".to_string(),
            ),
            Resolved::Typed { type_name, .. } => {
                return Err(KenbunError::at(
                    SqlState::DatatypeMismatch,
                    &fpath,
                    format!(
                        "level \"{}\" is over field \"{}\", which is {type_name}, not numeric",
                        lv.name, lv.field
                    ),
                ))
            }
        };
        // contiguous runs of selected tiers become ranges [min_lo, min_{hi+1})
        let mut ranges = vec![];
        let mut j = 0;
        while j < n {
            if !set[j] {
                j += 1;
                continue;
            }
            let lo = j;
            while j < n && set[j] {
                j += 1;
            }
            let lo_lit = self.literal(
                class,
                &type_name,
                &Value::Number(lv.tiers[lo].min.clone()),
                &fpath,
                &lv.field,
            )?;
            let mut r = format!("{sql} >= {lo_lit}");
            if j < n {
                let hi_lit = self.literal(
                    class,
                    &type_name,
                    &Value::Number(lv.tiers[j].min.clone()),
                    &fpath,
                    &lv.field,
                )?;
                r = format!("{r} AND {sql} < {hi_lit}");
            }
            ranges.push(format!("({r})"));
        }
        Ok(match ranges.len() {
            0 => "false".into(),
            1 => ranges.pop().unwrap(),
            _ => format!("({})", ranges.join(" OR ")),
        })
    }

    fn account(&mut self, inner: &Rule, path: &str, kind: Kind, alias: &str) -> Result<String> {
        if kind != Kind::Lead {
            return Err(KenbunError::at(
                SqlState::InvalidParameterValue,
                path,
                "\"account\" conditions are only allowed in lead rules",
            )
            .hint("in an account rule, write the account's conditions directly"));
        }
        let leads = binding(self.cat, Kind::Lead)?;
        let acc_key = leads.account_key.clone().ok_or_else(|| {
            KenbunError::at(
                SqlState::ObjectNotInPrerequisiteState,
                path,
                "leads are bound without an account key",
            )
            .hint(format!(
                "re-bind them: SELECT kenbun.bind_leads('{}', account_key => 'account_id');",
                leads.display().replace('\'', "''")
            ))
        })?;
        let acc = binding(self.cat, Kind::Account)?.clone();
        self.out.reads.insert((Kind::Lead, acc_key.clone()));
        let a = self.alias(Kind::Account);
        let key = acc.key.clone().unwrap_or_default();
        self.out.reads.insert((Kind::Account, key.clone()));
        self.in_account += 1;
        let n = self.n;
        let body = self.expr(inner, Kind::Account, &a);
        self.in_account -= 1;
        let body = body?;
        self.out.filters.push(Filter { table: Kind::Account, alias: a.clone(), sql: body.clone(), row_only: self.n == n, own: false });
        Ok(format!(
            "EXISTS (SELECT 1 FROM {} AS {a} WHERE {a}.{} = {alias}.{} AND {body})",
            acc.qualified(),
            ident(&key),
            ident(&acc_key)
        ))
    }

    /// The event binding for an event or sequence condition, which only lead rules have; records the
    /// join keys read. Returns (events binding, lead key).
    fn events_of_lead(&mut self, kind: Kind, path: &str, what: &str) -> Result<(Binding, String)> {
        if kind != Kind::Lead {
            let e = KenbunError::at(
                SqlState::InvalidParameterValue,
                path,
                format!(
                    "\"{what}\" conditions are only allowed in lead rules, not in {} rules",
                    kind.name()
                ),
            );
            return Err(if kind == Kind::Account {
                e.hint(format!(
                    "in an account rule, count leads with events: {{\"leads\":{{\"where\":{{\"{what}\":{{…}}}}}}}}"
                ))
            } else {
                e
            });
        }
        let lead_key = binding(self.cat, Kind::Lead)?.key.clone().unwrap_or_default();
        let ev = binding(self.cat, Kind::Event)?.clone();
        self.out.reads.insert((Kind::Lead, lead_key.clone()));
        self.out.reads.insert((Kind::Event, ev.lead_key.clone().unwrap_or_default()));
        Ok((ev, lead_key))
    }

    /// A new subquery over the events of the lead under `alias` (`ev`: the events binding and the
    /// lead key): the event alias, its join to the lead and its conditions on the event row. Records
    /// the row conditions as the subquery's `Filter`.
    fn event_scan(&mut self, ev: (&Binding, &str), alias: &str, s: Scan) -> Result<(String, String, Vec<String>)> {
        let (ev, lead_key) = ev;
        let Scan { types, filter, window, path, value_read } = s;
        let x = self.alias(Kind::Event);
        let join = format!(
            "{x}.{} = {alias}.{}",
            ident(ev.lead_key.as_deref().unwrap_or_default()),
            ident(lead_key)
        );
        let n = self.n;
        let mut conds = vec![];
        if !types.is_empty() {
            let f = FieldCond {
                field: ev.type_column.clone().unwrap_or_default(),
                op: Op::In,
                value: Some(Value::Array(types.iter().cloned().map(Value::String).collect())),
                tz: None,
                path: format!("{path}.type"),
            };
            conds.push(self.field_on_column(&f, ev, &x)?);
        }
        for (op, rhs) in window {
            conds.push(format!("{} {op} {rhs}", self.event_time(ev, &x)));
        }
        if let Some(fr) = filter {
            conds.push(self.expr(fr, Kind::Event, &x)?);
        }
        self.push_filter(Kind::Event, &x, &conds, n, value_read);
        Ok((x, join, conds))
    }

    /// The time column of event `x` (recorded as read).
    fn event_time(&mut self, ev: &Binding, x: &str) -> String {
        let tc = ev.time_column.clone().unwrap_or_default();
        self.out.reads.insert((Kind::Event, tc.clone()));
        format!("{x}.{}", ident(&tc))
    }

    /// `{"event": …}`: a count of the matching events (default: at least one), an aggregate over
    /// them, the time of the first one (`first_within`), or `stopped`.
    fn event(&mut self, e: &EventCond, kind: Kind, alias: &str) -> Result<String> {
        let (ev, lead_key) = self.events_of_lead(kind, &e.path, "event")?;
        let table = ev.qualified();
        let epath = format!("{}.event", e.path);
        if let Some(w) = &e.stopped {
            return self.stopped(e, w, &ev, &lead_key, alias);
        }
        let mut window = vec![];
        if let Some(w) = &e.within {
            self.out.time_dependent = true;
            window.push((">=", ago(w)));
        }
        let scan = Scan {
            types: &e.types,
            filter: e.filter.as_deref(),
            window: &window,
            path: &epath,
            value_read: e.agg.is_some() || e.first_within.is_some(),
        };
        let (x, join, conds) = self.event_scan((&ev, &lead_key), alias, scan)?;
        let cond = std::iter::once(join).chain(conds).collect::<Vec<_>>().join(" AND ");
        if let Some(w) = &e.first_within {
            self.out.time_dependent = true;
            let t = self.event_time(&ev, &x);
            return Ok(format!(
                "((SELECT pg_catalog.min({t}) FROM {table} AS {x} WHERE {cond}) >= {})",
                ago(w)
            ));
        }
        if let Some(a) = &e.agg {
            let apath = format!("{epath}.{}", a.func.name());
            let expr = self.aggregated(a.func, &a.field, &x, &apath)?;
            let (agg, value) = match a.func {
                AggFunc::CountDistinct => (format!("pg_catalog.count(DISTINCT {expr})"), a.value.to_string()),
                f => {
                    let v = self.literal(Class::Num, "numeric", &Value::Number(a.value.clone()), &apath, &a.field)?;
                    let agg = match f {
                        AggFunc::Sum => format!("COALESCE(pg_catalog.sum({expr}), 0)"),
                        AggFunc::Avg => format!("pg_catalog.avg({expr})"),
                        AggFunc::Min => format!("pg_catalog.min({expr})"),
                        _ => format!("pg_catalog.max({expr})"),
                    };
                    (agg, v)
                }
            };
            return Ok(format!(
                "((SELECT {agg} FROM {table} AS {x} WHERE {cond}) {} {value})",
                a.op.sql()
            ));
        }
        Ok(count_sql(&table, &x, &cond, e.count))
    }

    /// The value an aggregate reads of event `x`: a number for sum/avg/min/max (a JSON path where it
    /// holds a number), any field for count_distinct (a JSON path by its text).
    fn aggregated(&mut self, func: AggFunc, field: &str, x: &str, apath: &str) -> Result<String> {
        match self.resolve(Kind::Event, field, x, apath)? {
            Resolved::JsonPath { text, .. } if func == AggFunc::CountDistinct => Ok(text),
            Resolved::Typed { sql, .. } if func == AggFunc::CountDistinct => Ok(sql),
            Resolved::JsonPath { json, .. } => Ok(format!(
                "(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'number' THEN ({json})::numeric END)"
            )),
            Resolved::Typed {
                sql,
                class: Class::Int | Class::Num,
                ..
            } => Ok(sql),
            Resolved::Typed { type_name, class, .. } => Err(KenbunError::at(
                SqlState::DatatypeMismatch,
                &format!("{apath}.field"),
                format!(
                    "\"{}\" needs a numeric field, and event field \"{field}\" is {} ({type_name})",
                    func.name(),
                    class_desc(class)
                ),
            )
            .hint("aggregate a numeric column or mapped field, or a JSON path holding numbers; count_distinct takes any field")),
        }
    }

    /// `stopped`: at least `min_before` matching events before the window, and none within it. Two
    /// subqueries, each with its own time condition (set membership only).
    fn stopped(&mut self, e: &EventCond, w: &str, ev: &Binding, lead_key: &str, alias: &str) -> Result<String> {
        self.out.time_dependent = true;
        let epath = format!("{}.event", e.path);
        let table = ev.qualified();
        let part = |cx: &mut Self, op: &'static str, count: Count| -> Result<String> {
            let window = [(op, ago(w))];
            let scan = Scan { types: &e.types, filter: e.filter.as_deref(), window: &window, path: &epath, value_read: false };
            let (x, join, conds) = cx.event_scan((ev, lead_key), alias, scan)?;
            let cond = std::iter::once(join).chain(conds).collect::<Vec<_>>().join(" AND ");
            Ok(count_sql(&table, &x, &cond, count))
        };
        let before = part(self, "<", Count { op: CountOp::Gte, value: e.min_before })?;
        let within = part(self, ">=", Count { op: CountOp::Eq, value: 0 })?;
        Ok(format!("({before} AND {within})"))
    }

    /// `{"sequence": …}`: nested EXISTS, one event alias per step, each step's event strictly after
    /// the previous one (and at most `max_gap` after it).
    fn sequence(&mut self, q: &SequenceCond, kind: Kind, alias: &str) -> Result<String> {
        let (ev, lead_key) = self.events_of_lead(kind, &q.path, "sequence")?;
        let mut window = vec![];
        if let Some(w) = &q.within {
            self.out.time_dependent = true;
            window.push((">=", ago(w)));
        }
        let mut scans = vec![];
        for (i, st) in q.steps.iter().enumerate() {
            let spath = format!("{}.sequence.steps[{i}]", q.path);
            let scan = Scan { types: &st.types, filter: st.filter.as_deref(), window: &window, path: &spath, value_read: true };
            let (x, join, mut conds) = self.event_scan((&ev, &lead_key), alias, scan)?;
            conds.insert(0, join);
            let t = self.event_time(&ev, &x);
            if let Some((_, prev_t)) = scans.last() {
                conds.push(format!("{t} > {prev_t}"));
                if let Some(g) = &q.max_gap {
                    conds.push(format!("{t} <= ({prev_t} + {})", typed(g, "interval")));
                }
            }
            scans.push((format!("{} AS {x} WHERE {}", ev.qualified(), conds.join(" AND ")), t));
        }
        Ok(scans
            .into_iter()
            .rev()
            .fold(String::new(), |inner, (from, _)| {
                let inner = if inner.is_empty() { inner } else { format!(" AND {inner}") };
                format!("EXISTS (SELECT 1 FROM {from}{inner})")
            }))
    }

    /// A field condition on a named column (used for the event type column).
    fn field_on_column(&mut self, f: &FieldCond, b: &Binding, alias: &str) -> Result<String> {
        let c = b.column(&f.field).ok_or_else(|| {
            KenbunError::at(
                SqlState::UndefinedColumn,
                &f.path,
                format!("{} has no column \"{}\"", b.display(), f.field),
            )
        })?;
        let kind = Kind::from_name(&b.kind).unwrap_or(Kind::Event);
        self.out.reads.insert((kind, c.name.clone()));
        let class = class_of(&c.type_name);
        let items = f
            .value
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, v)| self.literal(class, &c.type_name, v, &format!("{}[{i}]", f.path), &f.field))
                    .collect::<Result<Vec<_>>>()
            })
            .unwrap_or_else(|| Ok(vec![]))?;
        Ok(format!("{} IN ({})", b.column_sql(alias, c), items.join(", ")))
    }

    fn leads(&mut self, l: &LeadsCond, kind: Kind, alias: &str) -> Result<String> {
        if kind != Kind::Account {
            return Err(KenbunError::at(
                SqlState::InvalidParameterValue,
                &l.path,
                "\"leads\" conditions are only allowed in account rules",
            ));
        }
        let leads = binding(self.cat, Kind::Lead)?.clone();
        let acc_key = leads.account_key.clone().ok_or_else(|| {
            KenbunError::at(
                SqlState::ObjectNotInPrerequisiteState,
                &l.path,
                "leads are bound without an account key",
            )
            .hint(format!(
                "re-bind them: SELECT kenbun.bind_leads('{}', account_key => 'account_id');",
                leads.display().replace('\'', "''")
            ))
        })?;
        let key = binding(self.cat, Kind::Account)?.key.clone().unwrap_or_default();
        // inside a lead rule's {"account": …}, these leads are the lead's siblings: record what is
        // read of them separately (maintenance re-evaluates the siblings when it changes)
        let sibling = self.root == Kind::Lead && self.in_account > 0;
        let outer = if sibling {
            Some(std::mem::take(&mut self.out.reads))
        } else {
            None
        };
        self.out.reads.insert((Kind::Account, key.clone()));
        self.out.reads.insert((Kind::Lead, acc_key.clone()));
        let x = self.alias(Kind::Lead);
        let n = self.n;
        let mut conds = vec![];
        if let Some(fr) = &l.filter {
            conds.push(self.expr(fr, Kind::Lead, &x)?);
        }
        self.push_filter(Kind::Lead, &x, &conds, n, false);
        conds.insert(0, format!("{x}.{} = {alias}.{}", ident(&acc_key), ident(&key)));
        if let Some(outer) = outer {
            let inner = std::mem::replace(&mut self.out.reads, outer);
            self.out.sibling_reads.extend(inner.iter().cloned());
            self.out.reads.extend(inner);
        }
        Ok(count_sql(&leads.qualified(), &x, &conds.join(" AND "), l.count))
    }

    /// Records a subquery's conditions on its rows (`n`: the alias counter before they were compiled,
    /// so that a nested subquery shows).
    /// `value_read`: the rule reads more of the matching rows than whether they match.
    fn push_filter(&mut self, table: Kind, alias: &str, conds: &[String], n: usize, value_read: bool) {
        let sql = if conds.is_empty() { "true".to_string() } else { conds.join(" AND ") };
        let row_only = self.n == n && !value_read;
        self.out.filters.push(Filter { table, alias: alias.to_string(), sql, row_only, own: false });
    }

    fn segment(&mut self, name: &str, path: &str, kind: Kind, alias: &str) -> Result<String> {
        let cat = self.cat;
        let seg = cat.segments.iter().find(|s| s.name == name).ok_or_else(|| {
            let e = KenbunError::at(
                SqlState::UndefinedObject,
                &format!("{path}.segment"),
                format!("segment \"{name}\" does not exist"),
            );
            match did_you_mean(name, cat.segments.iter().map(|s| s.name.as_str())) {
                Some(h) => e.hint(h),
                None => e,
            }
        })?;
        if seg.kind != kind.name() {
            return Err(KenbunError::at(
                SqlState::InvalidParameterValue,
                &format!("{path}.segment"),
                format!(
                    "segment \"{name}\" is a {} segment and cannot be used in a {} rule",
                    seg.kind,
                    kind.name()
                ),
            ));
        }
        if let Some(pos) = self.stack.iter().position(|s| s == name) {
            let mut cycle: Vec<&str> = self.stack[pos..].iter().map(String::as_str).collect();
            cycle.push(name);
            return Err(KenbunError::new(
                SqlState::InvalidObjectDefinition,
                format!("segments reference each other in a cycle: {}", cycle.join(" -> ")),
            )
            .hint("remove one of the {\"segment\": …} conditions of the cycle"));
        }
        if self.stack.len() >= crate::rule::MAX_DEPTH {
            return Err(KenbunError::at(
                SqlState::ProgramLimitExceeded,
                &format!("{path}.segment"),
                format!(
                    "segment references nest too deeply (at most {}): {} -> {name}",
                    crate::rule::MAX_DEPTH,
                    self.stack.join(" -> ")
                ),
            )
            .hint("reference the segments a level down directly"));
        }
        self.out.segments.insert(name.to_string());
        if seg.is_static {
            // a hand-kept list: its members, not its rule
            let key = binding(cat, kind)?.key.clone().unwrap_or_default();
            self.out.reads.insert((kind, key.clone()));
            let m = self.alias(kind);
            self.out.reads_membership = true;
            return Ok(static_lookup(seg.id, kind, &m, alias, &key));
        }
        let rule = Rule::parse(&seg.rule).map_err(|e| KenbunError {
            message: format!("stored rule of segment \"{name}\": {}", e.message),
            ..e
        })?;
        self.stack.push(name.to_string());
        let sql = self.expr(&rule, kind, alias);
        self.stack.pop();
        let sql = sql?;
        if seg.overrides {
            let key = binding(cat, kind)?.key.clone().unwrap_or_default();
            self.out.reads.insert((kind, key.clone()));
            let o = self.alias(kind);
            self.out.reads_membership = true;
            return Ok(with_overrides(&sql, seg.id, &o, alias, &key));
        }
        Ok(sql)
    }
}

/// The operator of `f` does not apply to its field's type.
fn op_not_applicable(f: &FieldCond, class: Class, type_name: &str) -> KenbunError {
    KenbunError::at(
        SqlState::DatatypeMismatch,
        &format!("{}.op", f.path),
        format!(
            "operator \"{}\" does not apply to field \"{}\", which is {} ({type_name})",
            f.op.name(),
            f.field,
            class_desc(class)
        ),
    )
}

fn mismatch(vpath: &str, field: &str, class: Class, v: &Value) -> KenbunError {
    let hint = match class {
        Class::Text => "write the value as a JSON string",
        Class::Int | Class::Num => "write the value as a JSON number, without quotes",
        Class::Bool => "write true or false, without quotes",
        Class::Time => "write an ISO date or timestamp as a JSON string",
        _ => "write the value as a JSON string",
    };
    KenbunError::at(
        SqlState::DatatypeMismatch,
        vpath,
        format!(
            "field \"{field}\" is {} but the value is {}",
            class_desc(class),
            value_type(v)
        ),
    )
    .hint(hint)
}

/// A UUID as PostgreSQL surely reads it: 32 hex digits, plain or grouped 8-4-4-4-12, optionally in braces.
fn is_uuid(s: &str) -> bool {
    let inner = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(s);
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = inner.split('-').collect();
    match parts.as_slice() {
        [all] => hex(all, 32),
        [a, b, c, d, e] => hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12),
        _ => false,
    }
}

/// What a subquery over events selects (`Cx::event_scan`).
struct Scan<'s> {
    /// Event types (any if empty).
    types: &'s [String],
    /// The `where` rule over the event.
    filter: Option<&'s Rule>,
    /// Comparisons of the event's time with SQL expressions, such as `(">=", now() - interval)`.
    window: &'s [(&'s str, String)],
    /// JSON path of the condition, for errors.
    path: &'s str,
    /// The rule reads more of the matching rows than whether they match (an aggregated value, a
    /// time compared elsewhere): the filter is not all the rule depends on (not row-only).
    value_read: bool,
}

/// `now() - interval`.
fn ago(interval: &str) -> String {
    format!("(pg_catalog.now() - {})", typed(interval.trim(), "interval"))
}

fn is_text_array(type_name: &str) -> bool {
    matches!(type_name, "text[]" | "character varying[]")
}

/// `has_any` / `has_all`: a text array overlaps / contains the values, or a JSON array holds any / all
/// of them as string elements. NULL, or a JSON value that is not an array: not a member.
/// `has_none` is the exact complement of `has_any` (NULL, no array, an empty array: a member).
fn has_elements(f: &FieldCond, resolved: Resolved) -> Result<String> {
    let items: Vec<String> = f
        .value
        .as_ref()
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(|s| typed(s, "text")).collect())
        .unwrap_or_default();
    let arr = format!("ARRAY[{}]::text[]", items.join(", "));
    let (array_op, json_op) = if f.op == Op::HasAll { ("@>", "?&") } else { ("&&", "?|") };
    let positive = match resolved {
        Resolved::Typed { sql, type_name, .. } if is_text_array(&type_name) => {
            format!("({sql}::text[] {array_op} {arr})")
        }
        Resolved::Typed {
            sql: json,
            class: Class::Jsonb,
            ..
        }
        | Resolved::JsonPath { json, .. } => {
            format!("(CASE WHEN pg_catalog.jsonb_typeof({json}) = 'array' THEN {json} {json_op} {arr} END)")
        }
        Resolved::Typed { class, type_name, .. } => return Err(op_not_applicable(f, class, &type_name)
        .hint("has_any, has_all and has_none test the elements of a text[] column or of a JSON array (a jsonb field or a dotted path)")),
    };
    Ok(if f.op == Op::HasNone { negate(&positive) } else { positive })
}

/// The exact complement of a TRUE-when-member expression (NULL counts as not a member).
fn negate(e: &str) -> String {
    match e {
        "true" => "false".into(),
        "false" => "true".into(),
        e => format!("({e} IS NOT TRUE)"),
    }
}

fn count_sql(table: &str, alias: &str, cond: &str, count: crate::rule::Count) -> String {
    if count.is_exists() {
        format!("EXISTS (SELECT 1 FROM {table} AS {alias} WHERE {cond})")
    } else if count.is_not_exists() {
        format!("(NOT EXISTS (SELECT 1 FROM {table} AS {alias} WHERE {cond}))")
    } else {
        format!(
            "((SELECT pg_catalog.count(*) FROM {table} AS {alias} WHERE {cond}) {} {})",
            count.op.sql(),
            count.value
        )
    }
}

#[cfg(test)]
mod tests;
