//! The rule language: types, parsing from JSON with path-precise errors, structural validation and
//! the canonical JSON form. No pgrx here: `cargo test` runs all of it without a database.
pub mod schema;
mod values;

pub use values::{interval_fields, is_iso_datetime, parse_interval};

use crate::error::{did_you_mean, KenbunError, Result, SqlState};
use serde_json::{json, Map, Value};

/// Hard limits on a rule document, enforced at parse time.
pub const MAX_DEPTH: usize = 32;
pub const MAX_NODES: usize = 2000;
pub const MAX_TEXT: usize = 1 << 20;
/// Longest time zone name (`"tz"`), in bytes.
pub const MAX_TZ_BYTES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Matches,
    IsSet,
    IsNotSet,
    Before,
    After,
    WithinLast,
    NotWithinLast,
    /// `has_any` / `has_all` / `has_none` (value: a non-empty array of strings): a `text[]` or
    /// `character varying[]` field has at least one / every / none of the values as an element; a
    /// jsonb field or an untyped JSON path is a JSON array with at least one / every / none of them
    /// as a string element. A NULL field, a JSON value that is not an array: not a member of
    /// has_any or has_all, a member of has_none (the exact complement of has_any); an empty array
    /// is a member of has_none only.
    HasAny,
    HasAll,
    HasNone,
    /// `in_period` (value: one of [`PERIODS`], optional `"tz"`): a date/time field falls in the
    /// calendar period, computed in the condition's time zone, else the catalog's (kenbun.timezone,
    /// else the session's), else UTC. From the period's start (inclusive) to the next period's start
    /// (exclusive); weeks start on Monday, quarters in January, April, July and October.
    InPeriod,
    /// `between_ago` (value: `[older, newer]` intervals): `now() - older <= field < now() - newer`.
    BetweenAgo,
    /// `in_next` (value: an interval): `now() <= field <= now() + interval`.
    InNext,
}

pub const ALL_OPS: &[Op] = &[
    Op::Eq,
    Op::Neq,
    Op::Gt,
    Op::Gte,
    Op::Lt,
    Op::Lte,
    Op::Between,
    Op::In,
    Op::NotIn,
    Op::Contains,
    Op::NotContains,
    Op::StartsWith,
    Op::EndsWith,
    Op::Matches,
    Op::IsSet,
    Op::IsNotSet,
    Op::Before,
    Op::After,
    Op::WithinLast,
    Op::NotWithinLast,
    Op::HasAny,
    Op::HasAll,
    Op::HasNone,
    Op::InPeriod,
    Op::BetweenAgo,
    Op::InNext,
];

/// The calendar periods of `in_period`: (name, date_trunc unit, offset of the period in units).
/// A period runs from the start of its unit (weeks start on Monday) to the start of the next one.
pub const PERIODS: &[(&str, &str, i32)] = &[
    ("today", "day", 0),
    ("yesterday", "day", -1),
    ("this_week", "week", 0),
    ("last_week", "week", -1),
    ("this_month", "month", 0),
    ("last_month", "month", -1),
    ("this_quarter", "quarter", 0),
    ("last_quarter", "quarter", -1),
    ("this_year", "year", 0),
    ("last_year", "year", -1),
];

/// The calendar period named `name`: (date_trunc unit, offset in units).
pub fn period(name: &str) -> Option<(&'static str, i32)> {
    PERIODS.iter().find(|p| p.0 == name).map(|p| (p.1, p.2))
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Between => "between",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::NotContains => "not_contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Matches => "matches",
            Op::IsSet => "is_set",
            Op::IsNotSet => "is_not_set",
            Op::Before => "before",
            Op::After => "after",
            Op::WithinLast => "within_last",
            Op::NotWithinLast => "not_within_last",
            Op::HasAny => "has_any",
            Op::HasAll => "has_all",
            Op::HasNone => "has_none",
            Op::InPeriod => "in_period",
            Op::BetweenAgo => "between_ago",
            Op::InNext => "in_next",
        }
    }
    pub fn from_name(s: &str) -> Option<Op> {
        ALL_OPS.iter().copied().find(|o| o.name() == s)
    }
    /// Negative operators are the exact complement of a positive one; a missing value makes them true.
    pub fn positive(self) -> Option<Op> {
        match self {
            Op::Neq => Some(Op::Eq),
            Op::NotIn => Some(Op::In),
            Op::NotContains => Some(Op::Contains),
            Op::IsNotSet => Some(Op::IsSet),
            Op::NotWithinLast => Some(Op::WithinLast),
            Op::HasNone => Some(Op::HasAny),
            _ => None,
        }
    }
    /// Operators whose result changes as time passes with no write.
    pub fn is_time_window(self) -> bool {
        matches!(
            self,
            Op::WithinLast | Op::NotWithinLast | Op::InPeriod | Op::BetweenAgo | Op::InNext
        )
    }
    /// Operators that take the optional `"tz"` key (calendar operators).
    pub fn is_calendar(self) -> bool {
        self == Op::InPeriod
    }
}

/// The JSON shape of a field condition's `"value"`, per operator: `check_value_shape` checks it and
/// `schema::rule_schema` renders it (the field's type is checked later, by the compiler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueShape {
    /// No `"value"` key.
    None,
    /// A string, number or boolean.
    Scalar,
    /// Any JSON but null (a scalar, or an array or object for a jsonb field).
    ScalarOrJson,
    /// A string.
    String,
    /// A string, or an array or object (jsonb containment).
    StringOrJson,
    /// An interval such as "30 days" ([`parse_interval`]).
    Interval,
    /// An ISO date or timestamp ([`is_iso_datetime`]).
    IsoDate,
    /// A non-empty array of scalars, all of one JSON type.
    NonEmptyScalarArray,
    /// `[low, high]`: two scalars of one JSON type.
    Pair,
    /// `[older, newer]`: two intervals, the first longer.
    PairOfIntervals,
    /// A non-empty array of strings.
    NonEmptyStringArray,
    /// One of the [`PERIODS`].
    Period,
}

impl Op {
    /// The shape of this operator's value.
    pub fn value_shape(self) -> ValueShape {
        match self {
            Op::IsSet | Op::IsNotSet => ValueShape::None,
            Op::Eq | Op::Neq => ValueShape::ScalarOrJson,
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => ValueShape::Scalar,
            Op::Between => ValueShape::Pair,
            Op::In | Op::NotIn => ValueShape::NonEmptyScalarArray,
            Op::Contains | Op::NotContains => ValueShape::StringOrJson,
            Op::StartsWith | Op::EndsWith | Op::Matches => ValueShape::String,
            Op::Before | Op::After => ValueShape::IsoDate,
            Op::WithinLast | Op::NotWithinLast | Op::InNext => ValueShape::Interval,
            Op::BetweenAgo => ValueShape::PairOfIntervals,
            Op::HasAny | Op::HasAll | Op::HasNone => ValueShape::NonEmptyStringArray,
            Op::InPeriod => ValueShape::Period,
        }
    }
}

/// Comparison of a count (events of a lead, leads of an account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CountOp {
    pub fn name(self) -> &'static str {
        match self {
            CountOp::Eq => "eq",
            CountOp::Neq => "neq",
            CountOp::Gt => "gt",
            CountOp::Gte => "gte",
            CountOp::Lt => "lt",
            CountOp::Lte => "lte",
        }
    }
    pub fn sql(self) -> &'static str {
        match self {
            CountOp::Eq => "=",
            CountOp::Neq => "<>",
            CountOp::Gt => ">",
            CountOp::Gte => ">=",
            CountOp::Lt => "<",
            CountOp::Lte => "<=",
        }
    }
    fn from_name(s: &str) -> Option<CountOp> {
        ALL_COUNT_OPS.iter().copied().find(|o| o.name() == s)
    }
}

pub const ALL_COUNT_OPS: &[CountOp] = &[
    CountOp::Eq,
    CountOp::Neq,
    CountOp::Gt,
    CountOp::Gte,
    CountOp::Lt,
    CountOp::Lte,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub op: CountOp,
    pub value: i64,
}

impl Default for Count {
    fn default() -> Self {
        Count {
            op: CountOp::Gte,
            value: 1,
        }
    }
}

impl Count {
    /// True when the count condition means "at least one".
    pub fn is_exists(&self) -> bool {
        matches!(
            (self.op, self.value),
            (CountOp::Gte, 1) | (CountOp::Gt, 0) | (CountOp::Neq, 0)
        )
    }
    /// True when the count condition means "none".
    pub fn is_not_exists(&self) -> bool {
        matches!(
            (self.op, self.value),
            (CountOp::Eq, 0) | (CountOp::Lt, 1) | (CountOp::Lte, 0)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldCond {
    pub field: String,
    pub op: Op,
    /// None for is_set / is_not_set.
    pub value: Option<Value>,
    /// The time zone of a calendar operator (`in_period`), when the condition names one.
    pub tz: Option<String>,
    /// JSON path of this condition in the document, for error messages.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
}

impl LevelOp {
    pub fn name(self) -> &'static str {
        match self {
            LevelOp::Eq => "eq",
            LevelOp::Neq => "neq",
            LevelOp::Gt => "gt",
            LevelOp::Gte => "gte",
            LevelOp::Lt => "lt",
            LevelOp::Lte => "lte",
            LevelOp::In => "in",
            LevelOp::NotIn => "not_in",
        }
    }
    fn from_name(s: &str) -> Option<LevelOp> {
        ALL_LEVEL_OPS.iter().copied().find(|o| o.name() == s)
    }
    /// Operators whose value is a list of tiers (else one tier name).
    pub fn takes_list(self) -> bool {
        match self {
            LevelOp::In | LevelOp::NotIn => true,
            LevelOp::Eq | LevelOp::Neq | LevelOp::Gt | LevelOp::Gte | LevelOp::Lt | LevelOp::Lte => false,
        }
    }
}

pub const ALL_LEVEL_OPS: &[LevelOp] = &[
    LevelOp::Eq,
    LevelOp::Neq,
    LevelOp::Gt,
    LevelOp::Gte,
    LevelOp::Lt,
    LevelOp::Lte,
    LevelOp::In,
    LevelOp::NotIn,
];

#[derive(Debug, Clone, PartialEq)]
pub struct LevelCond {
    pub level: String,
    pub op: LevelOp,
    /// One tier name, or several for in / not_in.
    pub tiers: Vec<String>,
    pub path: String,
}

/// An aggregate over the matching events of a lead (`"sum"`, `"avg"`, `"min"`, `"max"`,
/// `"count_distinct"` in an event condition).
///
/// Over no matching events `sum` and `count_distinct` are 0; `avg`, `min` and `max` have no value,
/// so the condition is false (and true under `not`). Values that are NULL (and, for a JSON path
/// read as a number, values that are not JSON numbers) are ignored. `count_distinct` counts the
/// distinct non-NULL values of the field (a JSON path by its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
}

pub const AGG_FUNCS: &[AggFunc] = &[AggFunc::Sum, AggFunc::Avg, AggFunc::Min, AggFunc::Max, AggFunc::CountDistinct];

impl AggFunc {
    /// The key of the event condition.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::CountDistinct => "count_distinct",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub func: AggFunc,
    /// An event field: a column, a mapped field or a dotted path into the metadata.
    pub field: String,
    pub op: CountOp,
    /// Any number; a non-negative integer for count_distinct.
    pub value: serde_json::Number,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventCond {
    /// Empty: any type.
    pub types: Vec<String>,
    pub types_is_array: bool,
    pub filter: Option<Box<Rule>>,
    pub within: Option<String>,
    pub count: Count,
    pub count_given: bool,
    /// An aggregate compared instead of the count.
    pub agg: Option<Aggregate>,
    /// `first_within`: the lead's first matching event (of all time, by the time column) happened
    /// at or after `now() - interval`. A lead with no matching event is not a member.
    pub first_within: Option<String>,
    /// `stopped`: at least `min_before` matching events before `now() - interval` (exclusive) and
    /// none at or after it. Events whose time is NULL count on neither side.
    pub stopped: Option<String>,
    /// With `stopped` (default 1).
    pub min_before: i64,
    pub path: String,
}

/// One step of a sequence: an event of one of `types` (any if empty) that matches `filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqStep {
    pub types: Vec<String>,
    pub types_is_array: bool,
    pub filter: Option<Box<Rule>>,
}

/// `{"sequence":{"steps":[…],"max_gap":…,"within":…}}`: the lead has events e1..en, one per step,
/// each strictly later than the one before and, with `max_gap`, at most `max_gap` after it; with
/// `within`, every one of them within the window.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceCond {
    pub steps: Vec<SeqStep>,
    pub max_gap: Option<String>,
    pub within: Option<String>,
    pub path: String,
}

/// Fewest and most steps of a sequence.
pub const MIN_SEQUENCE_STEPS: usize = 2;
pub const MAX_SEQUENCE_STEPS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct LeadsCond {
    pub filter: Option<Box<Rule>>,
    pub count: Count,
    pub count_given: bool,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Field(FieldCond),
    Level(LevelCond),
    Account(Box<Rule>, String),
    Event(EventCond),
    Leads(LeadsCond),
    Sequence(SequenceCond),
    Segment(String, String),
}

fn invalid(path: &str, msg: impl std::fmt::Display) -> KenbunError {
    KenbunError::at(SqlState::InvalidParameterValue, path, msg)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The keys that make a rule object what it is: each rule object has exactly one of them.
pub const RULE_KEYS: &[&str] = &[
    "all", "any", "not", "field", "level", "account", "event", "leads", "sequence", "segment",
];

/// The keys of a field condition.
pub const FIELD_KEYS: &[&str] = &["field", "op", "value", "tz"];

/// The keys of a level condition.
pub const LEVEL_KEYS: &[&str] = &["level", "op", "value"];

/// The keys of a count (`"count"` of an event or leads condition).
pub const COUNT_KEYS: &[&str] = &["op", "value"];

/// The keys of an aggregate (`"sum"`, `"avg"`, … of an event condition).
pub const AGGREGATE_KEYS: &[&str] = &["field", "op", "value"];

/// The keys of a leads condition.
pub const LEADS_KEYS: &[&str] = &["where", "count"];

/// The keys of a sequence condition.
pub const SEQUENCE_KEYS: &[&str] = &["steps", "max_gap", "within"];

/// The keys of a sequence step.
pub const STEP_KEYS: &[&str] = &["type", "where"];

/// The keys of an event condition.
pub const EVENT_KEYS: &[&str] = &[
    "type", "where", "within", "count", "sum", "avg", "min", "max", "count_distinct", "first_within", "stopped",
    "min_before",
];

/// Keys of an event condition that exclude each other: (key, the keys it cannot be combined with).
pub const EVENT_EXCLUSIVE: &[(&str, &[&str])] = &[
    ("sum", &["avg", "min", "max", "count_distinct"]),
    ("avg", &["min", "max", "count_distinct"]),
    ("min", &["max", "count_distinct"]),
    ("max", &["count_distinct"]),
    ("count", &["sum", "avg", "min", "max", "count_distinct"]),
    ("first_within", &["within", "count", "sum", "avg", "min", "max", "count_distinct", "stopped"]),
    ("stopped", &["within", "count", "sum", "avg", "min", "max", "count_distinct"]),
];

const INTERVAL_HINT: &str = "write an interval such as \"30 days\", \"12 hours\" or \"2 weeks\"";

/// The hint of an interval given as something else than a string.
const DURATION_HINT: &str = "write a duration such as \"30 days\" (a PostgreSQL interval as a string)";

/// The hint of a `between` value that is not two bounds.
const BETWEEN_HINT: &str = "write two bounds such as [10, 50] or [\"2026-01-01\", \"2026-02-01\"]";

/// The hint of an ISO date or timestamp value that is not valid, or not a string.
const ISO_DATE_HINT: &str = "write \"2024-01-31\" or \"2024-01-31T12:00:00Z\"";

/// Names of operators from other languages (SQL, MongoDB, JavaScript, English): (synonym, operator).
/// Matched like [`name_key`]; suggested only where the operator exists (a level or a count has fewer).
pub const OP_SYNONYMS: &[(&str, &str)] = &[
    ("equals", "eq"),
    ("equal", "eq"),
    ("equal_to", "eq"),
    ("is", "eq"),
    ("=", "eq"),
    ("==", "eq"),
    ("===", "eq"),
    ("not_equals", "neq"),
    ("not_equal", "neq"),
    ("not_equal_to", "neq"),
    ("ne", "neq"),
    ("not_eq", "neq"),
    ("is_not", "neq"),
    ("!=", "neq"),
    ("!==", "neq"),
    ("<>", "neq"),
    ("greater_than", "gt"),
    ("greater", "gt"),
    ("more_than", "gt"),
    ("above", "gt"),
    (">", "gt"),
    ("greater_than_or_equal", "gte"),
    ("greater_than_or_equal_to", "gte"),
    ("greater_or_equal", "gte"),
    ("at_least", "gte"),
    ("ge", "gte"),
    (">=", "gte"),
    ("less_than", "lt"),
    ("less", "lt"),
    ("fewer_than", "lt"),
    ("below", "lt"),
    ("<", "lt"),
    ("less_than_or_equal", "lte"),
    ("less_than_or_equal_to", "lte"),
    ("less_or_equal", "lte"),
    ("at_most", "lte"),
    ("le", "lte"),
    ("<=", "lte"),
    ("one_of", "in"),
    ("any_of", "in"),
    ("is_in", "in"),
    ("nin", "not_in"),
    ("none_of", "not_in"),
    ("is_not_in", "not_in"),
    ("like", "contains"),
    ("ilike", "contains"),
    ("includes", "contains"),
    ("include", "contains"),
    ("contains_text", "contains"),
    ("not_like", "not_contains"),
    ("excludes", "not_contains"),
    ("does_not_contain", "not_contains"),
    ("not_includes", "not_contains"),
    ("begins_with", "starts_with"),
    ("prefix", "starts_with"),
    ("suffix", "ends_with"),
    ("regex", "matches"),
    ("regexp", "matches"),
    ("~", "matches"),
    ("exists", "is_set"),
    ("not_null", "is_set"),
    ("is_not_null", "is_set"),
    ("present", "is_set"),
    ("is_present", "is_set"),
    ("has_value", "is_set"),
    ("not_exists", "is_not_set"),
    ("does_not_exist", "is_not_set"),
    ("not_set", "is_not_set"),
    ("null", "is_not_set"),
    ("is_null", "is_not_set"),
    ("missing", "is_not_set"),
    ("is_missing", "is_not_set"),
    ("earlier_than", "before"),
    ("later_than", "after"),
    ("since", "after"),
    ("within", "within_last"),
    ("in_last", "within_last"),
    ("in_the_last", "within_last"),
    ("within_next", "in_next"),
    ("in_the_next", "in_next"),
    ("contains_any", "has_any"),
    ("overlaps", "has_any"),
    ("contains_all", "has_all"),
    ("contains_none", "has_none"),
    ("during", "in_period"),
];

/// Names written for the keys of a rule object: (synonym, key).
pub const RULE_KEY_SYNONYMS: &[(&str, &str)] = &[
    ("and", "all"),
    ("&&", "all"),
    ("all_of", "all"),
    ("every", "all"),
    ("conditions", "all"),
    ("rules", "all"),
    ("or", "any"),
    ("||", "any"),
    ("any_of", "any"),
    ("some", "any"),
    ("!", "not"),
    ("column", "field"),
    ("attribute", "field"),
];

/// Rule keys for "none of": the language writes it `{"not":{"any":[…]}}`.
const NONE_KEYS: &[&str] = &["none", "none_of", "nor"];

/// Names written for the other keys (of a condition, an event, …): (synonym, key).
pub const KEY_SYNONYMS: &[(&str, &str)] = &[
    ("operator", "op"),
    ("operation", "op"),
    ("timezone", "tz"),
    ("filter", "where"),
];

/// A name as compared with the names of the language for a hint: lower case, without `_`, `-` and
/// spaces (`"Not-In"`, `"NOT_IN"` and `"notin"` are all `"notin"`).
fn name_key(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The "did you mean" hint for an unknown name among `names`: the name written in another case or
/// with other separators, else a synonym from `synonyms` (when its target is among `names`), else,
/// with `typos`, the closest name by edit distance.
fn suggest<'a>(name: &str, names: &[&'a str], synonyms: &[(&str, &'a str)], typos: bool) -> Option<String> {
    if name.chars().count() > crate::error::TYPO_MAX_CHARS {
        return None;
    }
    let key = name_key(name);
    let found = names.iter().find(|n| name_key(n) == key).copied().or_else(|| {
        synonyms
            .iter()
            .find(|(s, target)| name_key(s) == key && names.contains(target))
            .map(|(_, target)| *target)
    });
    match found {
        Some(n) => Some(format!("did you mean \"{n}\"?")),
        None if typos => did_you_mean(name, names.iter().copied()),
        None => None,
    }
}

/// The order of the bounds of `between` when it does not depend on the field's type: two numbers,
/// or two ISO dates/timestamps with the same UTC offset or none (compared as written). None otherwise
/// (text compares by collation, and a date with an offset against one without depends on the zone).
fn bound_order(lo: &Value, hi: &Value) -> Option<std::cmp::Ordering> {
    match (lo, hi) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                return Some(a.cmp(&b));
            }
            if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                return Some(a.cmp(&b));
            }
            // rounding to f64 keeps the order (never makes a < b into a > b)
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (Value::String(a), Value::String(b)) => {
            let (a, za) = iso_datetime_parts(a)?;
            let (b, zb) = iso_datetime_parts(b)?;
            (za == zb).then(|| a.cmp(&b))
        }
        _ => None,
    }
}

/// An ISO date or timestamp ([`is_iso_datetime`]) as (year, month, day, hour, minute, second,
/// microsecond) and its UTC offset in minutes ("Z" is 0; None without one).
fn iso_datetime_parts(s: &str) -> Option<([u32; 7], Option<i32>)> {
    if !is_iso_datetime(s) {
        return None;
    }
    let num = |r: &str| r.parse::<u32>().ok();
    let mut f = [num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?, 0, 0, 0, 0];
    let mut rest = s.get(10..)?;
    if !rest.is_empty() {
        f[3] = num(&rest[1..3])?;
        f[4] = num(&rest[4..6])?;
        rest = &rest[6..];
        if let Some(r) = rest.strip_prefix(':') {
            f[5] = num(&r[0..2])?;
            rest = &r[2..];
            if let Some(r) = rest.strip_prefix('.') {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                f[6] = num(&format!("{:0<6}", &r[..n]))?;
                rest = &r[n..];
            }
        }
    }
    let zone = match rest.as_bytes() {
        [] => None,
        [b'Z'] => Some(0),
        [sign, ..] => {
            let h = num(&rest[1..3])? as i32;
            let m = if rest.len() > 3 { num(&rest[4..6])? as i32 } else { 0 };
            Some(if *sign == b'-' { -(h * 60 + m) } else { h * 60 + m })
        }
    };
    Some((f, zone))
}

/// The interval string at `vpath` (trimmed), or the error every interval of the language gives.
fn interval_at(v: &Value, vpath: &str) -> Result<String> {
    let s = v.as_str().ok_or_else(|| {
        invalid(
            vpath,
            format!("expected an interval such as \"30 days\", found {}", type_name(v)),
        )
        .hint(DURATION_HINT)
    })?;
    parse_interval(s).map_err(|m| KenbunError::at(SqlState::InvalidDatetimeFormat, vpath, m).hint(INTERVAL_HINT))?;
    Ok(s.trim().to_string())
}

struct Parser {
    nodes: usize,
}

impl Rule {
    /// Parses rule text (the input function of `kenbun.segment_rule`).
    pub fn parse_text(text: &str) -> Result<Rule> {
        if text.len() > MAX_TEXT {
            return Err(KenbunError::new(
                SqlState::ProgramLimitExceeded,
                format!("rule document is too large ({} bytes, at most {MAX_TEXT})", text.len()),
            ));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| {
            KenbunError::new(
                SqlState::InvalidTextRepresentation,
                format!("invalid input syntax for type kenbun.segment_rule: {e}"),
            )
            .hint("a rule is a JSON object such as {\"field\":\"country\",\"op\":\"eq\",\"value\":\"US\"}")
        })?;
        if has_nul(&v) {
            return Err(KenbunError::new(
                SqlState::InvalidTextRepresentation,
                "invalid input syntax for type kenbun.segment_rule: the text contains \\u0000, which PostgreSQL text cannot hold",
            ));
        }
        Rule::parse(&v)
    }

    /// Parses and validates the structure of a rule document (field names are not checked here).
    pub fn parse(v: &Value) -> Result<Rule> {
        Parser { nodes: 0 }.rule(v, "$", 0)
    }

    /// The canonical JSON form (stable key order, defaults dropped).
    pub fn to_json(&self) -> Value {
        match self {
            Rule::All(v) => json!({ "all": v.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Any(v) => json!({ "any": v.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Not(r) => json!({ "not": r.to_json() }),
            Rule::Field(f) => {
                let mut m = Map::new();
                m.insert("field".into(), Value::String(f.field.clone()));
                m.insert("op".into(), Value::String(f.op.name().into()));
                if let Some(v) = &f.value {
                    m.insert("value".into(), v.clone());
                }
                if let Some(tz) = &f.tz {
                    m.insert("tz".into(), json!(tz));
                }
                Value::Object(m)
            }
            Rule::Level(l) => {
                let value = if matches!(l.op, LevelOp::In | LevelOp::NotIn) {
                    json!(l.tiers)
                } else {
                    json!(l.tiers[0])
                };
                json!({ "level": l.level, "op": l.op.name(), "value": value })
            }
            Rule::Account(r, _) => json!({ "account": r.to_json() }),
            Rule::Event(e) => {
                let mut m = types_and_where_json(&e.types, e.types_is_array, e.filter.as_deref());
                if let Some(w) = &e.within {
                    m.insert("within".into(), json!(w));
                }
                if e.count_given {
                    m.insert("count".into(), json!({"op": e.count.op.name(), "value": e.count.value}));
                }
                if let Some(a) = &e.agg {
                    m.insert(
                        a.func.name().into(),
                        json!({"field": a.field, "op": a.op.name(), "value": a.value}),
                    );
                }
                if let Some(w) = &e.first_within {
                    m.insert("first_within".into(), json!(w));
                }
                if let Some(w) = &e.stopped {
                    m.insert("stopped".into(), json!(w));
                    if e.min_before != 1 {
                        m.insert("min_before".into(), json!(e.min_before));
                    }
                }
                json!({ "event": Value::Object(m) })
            }
            Rule::Sequence(q) => {
                let steps: Vec<Value> = q
                    .steps
                    .iter()
                    .map(|s| Value::Object(types_and_where_json(&s.types, s.types_is_array, s.filter.as_deref())))
                    .collect();
                let mut m = Map::new();
                m.insert("steps".into(), Value::Array(steps));
                if let Some(g) = &q.max_gap {
                    m.insert("max_gap".into(), json!(g));
                }
                if let Some(w) = &q.within {
                    m.insert("within".into(), json!(w));
                }
                json!({ "sequence": Value::Object(m) })
            }
            Rule::Leads(l) => {
                let mut m = Map::new();
                if let Some(f) = &l.filter {
                    m.insert("where".into(), f.to_json());
                }
                if l.count_given {
                    m.insert("count".into(), json!({"op": l.count.op.name(), "value": l.count.value}));
                }
                json!({ "leads": Value::Object(m) })
            }
            Rule::Segment(s, _) => json!({ "segment": s }),
        }
    }

    pub fn to_canonical_string(&self) -> String {
        self.to_json().to_string()
    }

    /// Every saved segment this rule references, in document order.
    pub fn segment_refs(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |r| {
            if let Rule::Segment(s, _) = r {
                out.push(s.clone());
            }
        });
        out
    }

    /// Gives every calendar condition (`in_period`) that names no time zone the zone `tz`: a saved
    /// segment keeps the zone in effect when it was saved, whatever the session that later writes.
    /// Returns whether anything changed.
    pub fn fill_time_zone(&mut self, tz: &str) -> bool {
        let mut changed = false;
        self.walk_mut(&mut |r| {
            if let Rule::Field(f) = r {
                if f.op.is_calendar() && f.tz.is_none() {
                    f.tz = Some(tz.to_string());
                    changed = true;
                }
            }
        });
        changed
    }

    /// `walk`, with each node mutable.
    pub fn walk_mut(&mut self, f: &mut dyn FnMut(&mut Rule)) {
        f(self);
        match self {
            Rule::All(v) | Rule::Any(v) => v.iter_mut().for_each(|r| r.walk_mut(f)),
            Rule::Not(r) | Rule::Account(r, _) => r.walk_mut(f),
            Rule::Event(e) => e.filter.iter_mut().for_each(|r| r.walk_mut(f)),
            Rule::Leads(l) => l.filter.iter_mut().for_each(|r| r.walk_mut(f)),
            Rule::Sequence(q) => q.steps.iter_mut().for_each(|s| s.filter.iter_mut().for_each(|r| r.walk_mut(f))),
            Rule::Field(_) | Rule::Level(_) | Rule::Segment(..) => {}
        }
    }

    /// Visits this node and every nested rule (including account, event and leads sub-rules).
    pub fn walk(&self, f: &mut dyn FnMut(&Rule)) {
        f(self);
        match self {
            Rule::All(v) | Rule::Any(v) => v.iter().for_each(|r| r.walk(f)),
            Rule::Not(r) | Rule::Account(r, _) => r.walk(f),
            Rule::Event(e) => {
                if let Some(r) = &e.filter {
                    r.walk(f)
                }
            }
            Rule::Leads(l) => {
                if let Some(r) = &l.filter {
                    r.walk(f)
                }
            }
            Rule::Sequence(q) => q.steps.iter().filter_map(|s| s.filter.as_deref()).for_each(|r| r.walk(f)),
            Rule::Field(_) | Rule::Level(_) | Rule::Segment(..) => {}
        }
    }
}

impl Parser {
    fn rule(&mut self, v: &Value, path: &str, depth: usize) -> Result<Rule> {
        self.nodes += 1;
        if depth > MAX_DEPTH {
            return Err(KenbunError::at(
                SqlState::ProgramLimitExceeded,
                path,
                format!("rule is nested too deeply (at most {MAX_DEPTH} levels)"),
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(KenbunError::at(
                SqlState::ProgramLimitExceeded,
                path,
                format!("rule has too many conditions (at most {MAX_NODES})"),
            ));
        }
        let obj = match v {
            Value::Object(o) => o,
            other => {
                return Err(invalid(path, format!("expected a rule object, found {}", type_name(other)))
                    .hint("a rule is {\"all\":[…]}, {\"any\":[…]}, {\"not\":…}, or a condition such as {\"field\":\"country\",\"op\":\"eq\",\"value\":\"US\"}"))
            }
        };
        let kinds: Vec<&str> = RULE_KEYS.iter().copied().filter(|k| obj.contains_key(*k)).collect();
        let kind = match kinds.as_slice() {
            [k] => *k,
            [] => {
                let unknown = obj.keys().next();
                let mut e = invalid(
                    path,
                    match unknown {
                        Some(k) => format!("unknown key \"{k}\""),
                        None => "empty rule object".to_string(),
                    },
                );
                if let Some(k) = unknown.filter(|k| NONE_KEYS.iter().any(|n| name_key(n) == name_key(k))) {
                    e = e.hint(format!(
                        "for none of several rules write {{\"not\":{{\"any\":[…]}}}}, not {{\"{k}\":[…]}}"
                    ));
                } else if let Some(h) = unknown.and_then(|k| suggest(k, RULE_KEYS, RULE_KEY_SYNONYMS, true)) {
                    e = e.hint(h);
                } else {
                    e = e.hint(format!("a rule object has one of the keys {}", RULE_KEYS.join(", ")));
                }
                return Err(e);
            }
            [a, b, ..] => {
                return Err(
                    invalid(path, format!("a rule object cannot have both \"{a}\" and \"{b}\""))
                        .hint("combine conditions with {\"all\":[…]} or {\"any\":[…]}"),
                )
            }
        };
        let allowed: &[&str] = match kind {
            "field" => FIELD_KEYS,
            "level" => LEVEL_KEYS,
            other => std::slice::from_ref(RULE_KEYS.iter().find(|k| **k == other).unwrap()),
        };
        check_keys(obj, allowed, path)?;
        let sub = |k: &str| format!("{path}.{k}");
        match kind {
            "all" | "any" => {
                let p = sub(kind);
                let arr = obj[kind].as_array().ok_or_else(|| {
                    invalid(
                        &p,
                        format!("expected an array of rules, found {}", type_name(&obj[kind])),
                    )
                })?;
                let items = arr
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self.rule(r, &format!("{p}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                Ok(if kind == "all" {
                    Rule::All(items)
                } else {
                    Rule::Any(items)
                })
            }
            "not" => Ok(Rule::Not(Box::new(self.rule(&obj["not"], &sub("not"), depth + 1)?))),
            "account" => Ok(Rule::Account(
                Box::new(self.rule(&obj["account"], &sub("account"), depth + 1)?),
                path.to_string(),
            )),
            "segment" => match &obj["segment"] {
                Value::String(s) if !s.is_empty() => Ok(Rule::Segment(s.clone(), path.to_string())),
                other => Err(invalid(
                    &sub("segment"),
                    format!("expected a segment name, found {}", type_name(other)),
                )),
            },
            "field" => self.field(obj, path),
            "level" => self.level(obj, path),
            "event" => self.event(&obj["event"], &sub("event"), path, depth),
            "leads" => self.leads(&obj["leads"], &sub("leads"), path, depth),
            "sequence" => self.sequence(&obj["sequence"], &sub("sequence"), path, depth),
            _ => unreachable!(),
        }
    }

    fn field(&mut self, obj: &Map<String, Value>, path: &str) -> Result<Rule> {
        let field = match &obj["field"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            other => {
                return Err(invalid(
                    &format!("{path}.field"),
                    format!("expected a field name, found {}", type_name(other)),
                ))
            }
        };
        let op_path = format!("{path}.op");
        let op = match obj.get("op") {
            Some(Value::String(s)) => Op::from_name(s).ok_or_else(|| {
                let e = invalid(&op_path, format!("unknown operator \"{s}\""));
                let names: Vec<&str> = ALL_OPS.iter().map(|o| o.name()).collect();
                match suggest(s, &names, OP_SYNONYMS, true) {
                    Some(h) => e.hint(h),
                    None => e.hint(format!(
                        "operators are {}",
                        ALL_OPS.iter().map(|o| o.name()).collect::<Vec<_>>().join(" ")
                    )),
                }
            })?,
            Some(other) => {
                return Err(invalid(
                    &op_path,
                    format!("expected an operator name, found {}", type_name(other)),
                ))
            }
            None => return Err(invalid(path, "missing key \"op\"")),
        };
        let vpath = format!("{path}.value");
        let value = obj.get("value");
        check_value_shape(op, value, &vpath, path)?;
        let tz = match obj.get("tz") {
            None => None,
            Some(_) if !op.is_calendar() => {
                return Err(invalid(
                    &format!("{path}.tz"),
                    format!("operator \"{}\" takes no time zone", op.name()),
                )
                .hint("\"tz\" is only allowed with the calendar operator \"in_period\""))
            }
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_TZ_BYTES => Some(s.trim().to_string()),
            Some(other) => {
                return Err(invalid(
                    &format!("{path}.tz"),
                    format!("expected a time zone name such as \"Europe/Paris\", found {}", describe_tz(other)),
                ))
            }
        };
        Ok(Rule::Field(FieldCond {
            field,
            op,
            value: value.cloned(),
            tz,
            path: path.to_string(),
        }))
    }

    fn level(&mut self, obj: &Map<String, Value>, path: &str) -> Result<Rule> {
        let level = match &obj["level"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            other => {
                return Err(invalid(
                    &format!("{path}.level"),
                    format!("expected a level name, found {}", type_name(other)),
                ))
            }
        };
        let op_path = format!("{path}.op");
        let op = match obj.get("op") {
            Some(Value::String(s)) => LevelOp::from_name(s).ok_or_else(|| {
                let names: Vec<&str> = ALL_LEVEL_OPS.iter().map(|o| o.name()).collect();
                let e = invalid(&op_path, format!("unknown level operator \"{s}\""));
                // no edit distance: every two-letter name is within two edits of "eq"
                match suggest(s, &names, OP_SYNONYMS, false) {
                    Some(h) => e.hint(h),
                    None => e.hint(format!("level operators are {}", names.join(" "))),
                }
            })?,
            Some(other) => {
                return Err(invalid(
                    &op_path,
                    format!("expected an operator name, found {}", type_name(other)),
                ))
            }
            None => return Err(invalid(path, "missing key \"op\"")),
        };
        let vpath = format!("{path}.value");
        let tiers = match (op, obj.get("value")) {
            (op, Some(Value::Array(a))) if op.takes_list() => {
                if a.is_empty() {
                    return Err(invalid(&vpath, "the list of tiers is empty"));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, t)| match t {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(invalid(
                            &format!("{vpath}[{i}]"),
                            format!("expected a tier name, found {}", type_name(other)),
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            (op, Some(other)) if op.takes_list() => {
                return Err(invalid(
                    &vpath,
                    format!("expected an array of tier names, found {}", type_name(other)),
                )
                .hint("write a JSON array such as [\"Warm\", \"Hot\"]"))
            }
            (_, Some(Value::String(s))) => vec![s.clone()],
            (op, Some(other)) => {
                let e = invalid(&vpath, format!("expected a tier name, found {}", type_name(other)));
                return Err(if other.is_array() {
                    e.hint(format!(
                        "\"{}\" takes one tier such as \"Hot\"; for several tiers use \"in\" or \"not_in\"",
                        op.name()
                    ))
                } else {
                    e.hint("write a tier name as a string, such as \"Hot\"")
                });
            }
            (_, None) => return Err(invalid(path, "missing key \"value\"")),
        };
        Ok(Rule::Level(LevelCond {
            level,
            op,
            tiers,
            path: path.to_string(),
        }))
    }

    fn count(&self, v: &Value, path: &str) -> Result<Count> {
        let obj = v.as_object().ok_or_else(|| {
            invalid(
                path,
                format!("expected {{\"op\":…,\"value\":…}}, found {}", type_name(v)),
            )
        })?;
        check_keys(obj, COUNT_KEYS, path)?;
        let op = count_op(obj, path)?;
        let value = non_negative_integer(obj.get("value"), path)?;
        Ok(Count { op, value })
    }

    /// `{"field": …, "op": …, "value": …}` of an aggregate.
    fn aggregate(&self, func: AggFunc, v: &Value, path: &str) -> Result<Aggregate> {
        let obj = v.as_object().ok_or_else(|| {
            invalid(
                path,
                format!(
                    "expected {{\"field\":…,\"op\":…,\"value\":…}}, found {}",
                    type_name(v)
                ),
            )
            .hint(format!(
                "write {{\"{}\":{{\"field\":\"amount\",\"op\":\"gte\",\"value\":500}}}}",
                func.name()
            ))
        })?;
        check_keys(obj, AGGREGATE_KEYS, path)?;
        let field = match obj.get("field") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(invalid(
                    &format!("{path}.field"),
                    format!("expected an event field name, found {}", type_name(other)),
                ))
            }
            None => return Err(invalid(path, "missing key \"field\"")),
        };
        let op = count_op(obj, path)?;
        let value = if func == AggFunc::CountDistinct {
            non_negative_integer(obj.get("value"), path)?.into()
        } else {
            match obj.get("value") {
                Some(Value::Number(n)) => n.clone(),
                Some(other) => {
                    return Err(invalid(
                        &format!("{path}.value"),
                        format!("expected a number, found {}", type_name(other)),
                    )
                    .hint("write the value as a JSON number, without quotes"))
                }
                None => return Err(invalid(path, "missing key \"value\"")),
            }
        };
        Ok(Aggregate { func, field, op, value })
    }

    fn event(&mut self, v: &Value, path: &str, rule_path: &str, depth: usize) -> Result<Rule> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid(path, format!("expected an event object, found {}", type_name(v))))?;
        check_keys(obj, EVENT_KEYS, path)?;
        for (a, others) in EVENT_EXCLUSIVE {
            if let Some(b) = others.iter().find(|b| obj.contains_key(*a) && obj.contains_key(**b)) {
                return Err(invalid(path, format!("an event condition cannot have both \"{a}\" and \"{b}\""))
                    .hint("combine separate event conditions with {\"all\":[…]}"));
            }
        }
        if obj.contains_key("min_before") && !obj.contains_key("stopped") {
            return Err(invalid(
                &format!("{path}.min_before"),
                "\"min_before\" is only allowed with \"stopped\"",
            )
            .hint("write {\"type\":\"login\",\"stopped\":\"30 days\",\"min_before\":3}"));
        }
        let (types, types_is_array) = event_types(obj, path)?;
        let filter = self.event_where(obj, path, depth)?;
        let interval = |k: &str| obj.get(k).map(|v| interval_at(v, &format!("{path}.{k}"))).transpose();
        let within = interval("within")?;
        let first_within = interval("first_within")?;
        let stopped = interval("stopped")?;
        let (count, count_given) = match obj.get("count") {
            Some(c) => (self.count(c, &format!("{path}.count"))?, true),
            None => (Count::default(), false),
        };
        let agg = match AGG_FUNCS.iter().find(|f| obj.contains_key(f.name())) {
            Some(f) => Some(self.aggregate(*f, &obj[f.name()], &format!("{path}.{}", f.name()))?),
            None => None,
        };
        let min_before = match obj.get("min_before") {
            None => 1,
            Some(v) => match v.as_i64().filter(|n| *n >= 1) {
                Some(n) => n,
                None => {
                    return Err(invalid(
                        &format!("{path}.min_before"),
                        format!("expected a positive integer, found {v}"),
                    ))
                }
            },
        };
        Ok(Rule::Event(EventCond {
            types,
            types_is_array,
            filter,
            within,
            count,
            count_given,
            agg,
            first_within,
            stopped,
            min_before,
            path: rule_path.to_string(),
        }))
    }

    /// The `where` of an event condition or a sequence step: a rule over the event.
    fn event_where(&mut self, obj: &Map<String, Value>, path: &str, depth: usize) -> Result<Option<Box<Rule>>> {
        Ok(match obj.get("where") {
            Some(w) => Some(Box::new(self.rule(w, &format!("{path}.where"), depth + 1)?)),
            None => None,
        })
    }

    fn sequence(&mut self, v: &Value, path: &str, rule_path: &str, depth: usize) -> Result<Rule> {
        let obj = v.as_object().ok_or_else(|| {
            invalid(path, format!("expected a sequence object, found {}", type_name(v))).hint(
                "write {\"steps\":[{\"type\":\"pricing_view\"},{\"type\":\"demo_request\"}],\"within\":\"30 days\"}",
            )
        })?;
        check_keys(obj, SEQUENCE_KEYS, path)?;
        let spath = format!("{path}.steps");
        let steps = match obj.get("steps") {
            Some(Value::Array(a)) if (MIN_SEQUENCE_STEPS..=MAX_SEQUENCE_STEPS).contains(&a.len()) => a,
            Some(Value::Array(a)) => {
                return Err(invalid(
                    &spath,
                    format!("a sequence has {MIN_SEQUENCE_STEPS} to {MAX_SEQUENCE_STEPS} steps, found {}", a.len()),
                )
                .hint("for a single event use {\"event\":{…}}"))
            }
            Some(other) => {
                return Err(invalid(
                    &spath,
                    format!("expected an array of steps, found {}", type_name(other)),
                ))
            }
            None => return Err(invalid(path, "missing key \"steps\"")),
        };
        let steps = steps
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let p = format!("{spath}[{i}]");
                let o = st.as_object().ok_or_else(|| {
                    invalid(&p, format!("expected a step object, found {}", type_name(st)))
                        .hint("a step is {\"type\":…, \"where\":…}, both optional")
                })?;
                check_keys(o, STEP_KEYS, &p)?;
                let (types, types_is_array) = event_types(o, &p)?;
                let filter = self.event_where(o, &p, depth)?;
                Ok(SeqStep { types, types_is_array, filter })
            })
            .collect::<Result<Vec<_>>>()?;
        let interval = |k: &str| obj.get(k).map(|v| interval_at(v, &format!("{path}.{k}"))).transpose();
        Ok(Rule::Sequence(SequenceCond {
            steps,
            max_gap: interval("max_gap")?,
            within: interval("within")?,
            path: rule_path.to_string(),
        }))
    }

    fn leads(&mut self, v: &Value, path: &str, rule_path: &str, depth: usize) -> Result<Rule> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid(path, format!("expected a leads object, found {}", type_name(v))))?;
        check_keys(obj, LEADS_KEYS, path)?;
        let filter = match obj.get("where") {
            Some(w) => Some(Box::new(self.rule(w, &format!("{path}.where"), depth + 1)?)),
            None => None,
        };
        let (count, count_given) = match obj.get("count") {
            Some(c) => (self.count(c, &format!("{path}.count"))?, true),
            None => (Count::default(), false),
        };
        Ok(Rule::Leads(LeadsCond {
            filter,
            count,
            count_given,
            path: rule_path.to_string(),
        }))
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let mut e = invalid(&format!("{path}.{k}"), format!("unknown key \"{k}\""));
            e = match suggest(k, allowed, KEY_SYNONYMS, true) {
                Some(h) => e.hint(h),
                None => e.hint(format!("allowed keys here: {}", allowed.join(", "))),
            };
            return Err(e);
        }
    }
    Ok(())
}

/// The operator of a count or an aggregate (`op`).
fn count_op(obj: &Map<String, Value>, path: &str) -> Result<CountOp> {
    match obj.get("op") {
        Some(Value::String(s)) => CountOp::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = ALL_COUNT_OPS.iter().map(|o| o.name()).collect();
            let e = invalid(&format!("{path}.op"), format!("unknown count operator \"{s}\""));
            // no edit distance: every two-letter name is within two edits of "eq"
            match suggest(s, &names, OP_SYNONYMS, false) {
                Some(h) => e.hint(h),
                None => e.hint(format!("count operators are {}", names.join(" "))),
            }
        }),
        Some(other) => Err(invalid(
            &format!("{path}.op"),
            format!("expected an operator name, found {}", type_name(other)),
        )),
        None => Err(invalid(path, "missing key \"op\"")),
    }
}

/// The `value` of a count or a count_distinct.
fn non_negative_integer(v: Option<&Value>, path: &str) -> Result<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
            invalid(
                &format!("{path}.value"),
                format!("expected a non-negative integer, found {n}"),
            )
        }),
        Some(other) => Err(invalid(
            &format!("{path}.value"),
            format!("expected a non-negative integer, found {}", type_name(other)),
        )),
        None => Err(invalid(path, "missing key \"value\"")),
    }
}

/// The `type` of an event condition or a sequence step: (types, given as an array).
fn event_types(obj: &Map<String, Value>, path: &str) -> Result<(Vec<String>, bool)> {
    Ok(match obj.get("type") {
        None => (vec![], false),
        Some(Value::String(s)) => (vec![s.clone()], false),
        Some(Value::Array(a)) => {
            if a.is_empty() {
                return Err(invalid(&format!("{path}.type"), "the list of event types is empty"));
            }
            let t = a
                .iter()
                .enumerate()
                .map(|(i, t)| match t {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid(
                        &format!("{path}.type[{i}]"),
                        format!("expected an event type, found {}", type_name(other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            (t, true)
        }
        Some(other) => {
            return Err(invalid(
                &format!("{path}.type"),
                format!("expected a string or an array of strings, found {}", type_name(other)),
            ))
        }
    })
}

/// The canonical `type` and `where` of an event condition or a sequence step.
fn types_and_where_json(types: &[String], is_array: bool, filter: Option<&Rule>) -> Map<String, Value> {
    let mut m = Map::new();
    if is_array {
        m.insert("type".into(), json!(types));
    } else if let Some(t) = types.first() {
        m.insert("type".into(), json!(t));
    }
    if let Some(f) = filter {
        m.insert("where".into(), f.to_json());
    }
    m
}

fn describe_tz(v: &Value) -> String {
    match v {
        Value::String(s) if s.trim().is_empty() => "an empty string".into(),
        Value::String(_) => "a string longer than 100 bytes".into(),
        other => type_name(other).into(),
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Checks that the value's JSON shape fits the operator (the field's type is checked by the compiler).
fn check_value_shape(op: Op, value: Option<&Value>, vpath: &str, path: &str) -> Result<()> {
    let need = |what: &str| invalid(path, format!("operator \"{}\" needs a \"value\" ({what})", op.name()));
    let shape = op.value_shape();
    match shape {
        ValueShape::None => {
            if value.is_some() {
                return Err(invalid(vpath, format!("operator \"{}\" takes no value", op.name()))
                    .hint(format!("remove \"value\": write {{\"field\":…,\"op\":\"{}\"}}", op.name())));
            }
        }
        ValueShape::Pair => {
            let v = value.ok_or_else(|| need("[low, high]").hint(BETWEEN_HINT))?;
            match v {
                Value::Array(a) if a.len() == 2 && a.iter().all(is_scalar) => {
                    if type_name(&a[0]) != type_name(&a[1]) {
                        return Err(invalid(vpath, "both bounds of \"between\" must have the same type").hint(BETWEEN_HINT));
                    }
                    if bound_order(&a[0], &a[1]) == Some(std::cmp::Ordering::Greater) {
                        return Err(invalid(
                            vpath,
                            format!("\"between\" bounds are reversed ({} > {})", a[0], a[1]),
                        )
                        .hint(format!("write the lower bound first: [{}, {}]", a[1], a[0])));
                    }
                }
                _ => {
                    return Err(invalid(
                        vpath,
                        format!("\"between\" takes [low, high], found {}", describe(v)),
                    )
                    .hint(BETWEEN_HINT))
                }
            }
        }
        ValueShape::NonEmptyScalarArray => {
            let v = value.ok_or_else(|| need("a non-empty array"))?;
            match v {
                Value::Array(a) if a.is_empty() => {
                    return Err(invalid(vpath, format!("the list of \"{}\" is empty", op.name()))
                        .hint("an empty list matches nothing; use {\"any\":[]} for a rule that matches no one"))
                }
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        if !is_scalar(x) {
                            return Err(invalid(
                                &format!("{vpath}[{i}]"),
                                format!("expected a string, number or boolean, found {}", type_name(x)),
                            ));
                        }
                        if type_name(x) != type_name(&a[0]) {
                            return Err(invalid(
                                &format!("{vpath}[{i}]"),
                                "all values of the list must have the same type",
                            ));
                        }
                    }
                }
                other => {
                    return Err(invalid(
                        vpath,
                        format!("\"{}\" takes an array of values, found {}", op.name(), type_name(other)),
                    )
                    .hint("write a JSON array such as [\"US\", \"CA\"]"))
                }
            }
        }
        ValueShape::Interval => {
            interval_at(value.ok_or_else(|| need("an interval such as \"30 days\""))?, vpath)?;
        }
        ValueShape::PairOfIntervals => {
            let v = value.ok_or_else(|| need("[older, newer] such as [\"30 days\", \"7 days\"]"))?;
            let a = match v {
                Value::Array(a) if a.len() == 2 => a,
                _ => {
                    return Err(invalid(
                        vpath,
                        format!("\"between_ago\" takes [older, newer], found {}", describe(v)),
                    )
                    .hint("write [\"30 days\", \"7 days\"]: from 30 days ago to 7 days ago"))
                }
            };
            let older = interval_at(&a[0], &format!("{vpath}[0]"))?;
            let newer = interval_at(&a[1], &format!("{vpath}[1]"))?;
            if let (Some(o), Some(n)) = (interval_fields(&older), interval_fields(&newer)) {
                if o.iter().zip(&n).all(|(o, n)| o <= n) {
                    return Err(invalid(
                        vpath,
                        format!("\"between_ago\" runs from \"{older}\" ago to \"{newer}\" ago: the first must be longer than the second"),
                    )
                    .hint("write the older bound first: [\"30 days\", \"7 days\"]"));
                }
            }
        }
        ValueShape::Period => {
            let names = || PERIODS.iter().map(|p| p.0);
            let v = value.ok_or_else(|| need("a period such as \"this_month\""))?;
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    vpath,
                    format!("expected a period such as \"this_month\", found {}", type_name(v)),
                )
                .hint(format!("periods are {}", names().collect::<Vec<_>>().join(" ")))
            })?;
            if period(s).is_none() {
                let e = invalid(vpath, format!("unknown period \"{s}\""));
                return Err(match did_you_mean(s, names()) {
                    Some(h) => e.hint(h),
                    None => e.hint(format!("periods are {}", names().collect::<Vec<_>>().join(" "))),
                });
            }
        }
        ValueShape::NonEmptyStringArray => {
            let v = value.ok_or_else(|| need("a non-empty array of strings"))?;
            match v {
                Value::Array(a) if a.is_empty() => {
                    return Err(invalid(vpath, format!("the list of \"{}\" is empty", op.name())))
                }
                Value::Array(a) => {
                    if let Some((i, x)) = a.iter().enumerate().find(|(_, x)| !x.is_string()) {
                        return Err(invalid(
                            &format!("{vpath}[{i}]"),
                            format!("expected a string, found {}", type_name(x)),
                        ));
                    }
                }
                other => {
                    return Err(invalid(
                        vpath,
                        format!("\"{}\" takes an array of strings, found {}", op.name(), type_name(other)),
                    )
                    .hint(format!("write {{\"op\":\"{}\",\"value\":[\"a\",\"b\"]}}", op.name())))
                }
            }
        }
        ValueShape::IsoDate => {
            let v = value.ok_or_else(|| need("an ISO date or timestamp"))?;
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    vpath,
                    format!(
                        "expected an ISO date or timestamp such as \"2024-01-31\", found {}",
                        type_name(v)
                    ),
                )
                .hint(ISO_DATE_HINT)
            })?;
            if !is_iso_datetime(s) {
                return Err(KenbunError::at(
                    SqlState::InvalidDatetimeFormat,
                    vpath,
                    format!("\"{s}\" is not an ISO date or timestamp"),
                )
                .hint(ISO_DATE_HINT));
            }
        }
        ValueShape::String => {
            let v = value.ok_or_else(|| need("a string"))?;
            if !v.is_string() {
                return Err(invalid(
                    vpath,
                    format!("\"{}\" takes a string, found {}", op.name(), type_name(v)),
                )
                .hint(string_hint(op, v)));
            }
        }
        ValueShape::StringOrJson => {
            // a string for text fields, an object or array for jsonb containment
            let v = value.ok_or_else(|| need("a string"))?;
            if matches!(v, Value::Null | Value::Bool(_) | Value::Number(_)) {
                return Err(invalid(
                    vpath,
                    format!("\"{}\" takes a string, found {}", op.name(), type_name(v)),
                )
                .hint(string_hint(op, v)));
            }
        }
        ValueShape::Scalar | ValueShape::ScalarOrJson => {
            let v = value.ok_or_else(|| need("a string, number or boolean"))?;
            if v.is_null() {
                return Err(invalid(vpath, "value is null").hint(format!(
                    "to test for a missing value use \"{}\"",
                    if op == Op::Neq { "is_set" } else { "is_not_set" }
                )));
            }
            if !is_scalar(v) && shape != ValueShape::ScalarOrJson {
                let e = invalid(
                    vpath,
                    format!("expected a string, number or boolean, found {}", type_name(v)),
                );
                return Err(if v.is_array() {
                    e.hint(format!(
                        "\"{}\" compares with one value such as 10; for a range use \"between\" with [low, high]",
                        op.name()
                    ))
                } else {
                    e.hint(format!("\"{}\" compares with one value such as 10 or \"2026-01-01\"", op.name()))
                });
            }
        }
    }
    Ok(())
}

/// The hint of a string operator given something else: a number or boolean is shown quoted.
fn string_hint(op: Op, v: &Value) -> String {
    match v {
        Value::Number(_) | Value::Bool(_) => format!("write the value as a JSON string: \"{v}\""),
        _ if op == Op::Matches => "write a POSIX regular expression as a string, such as \"^[A-Z]{2}$\"".into(),
        _ => "write a string such as \"acme\"".into(),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("an array of {} element(s)", a.len()),
        other => type_name(other).to_string(),
    }
}

#[cfg(test)]
mod tests;
