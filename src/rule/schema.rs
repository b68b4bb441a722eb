//! The JSON Schema (draft 2020-12) of the rule language, for clients (`kenbun.rule_schema()`).
//!
//! Built from the parser's own definitions: the key lists ([`RULE_KEYS`], [`FIELD_KEYS`],
//! [`EVENT_KEYS`], …), the operators ([`ALL_OPS`] with [`Op::value_shape`], [`ALL_LEVEL_OPS`],
//! [`ALL_COUNT_OPS`]), the aggregates ([`AGG_FUNCS`]), [`PERIODS`], [`EVENT_EXCLUSIVE`] and the limits.
//! An operator, construct or shape added without a description here does not compile (the matches
//! below are exhaustive); a key added to a list without a schema panics in the unit tests.
//! `schema/tests.rs` checks with an independent validator (Python's jsonschema) that the schema
//! accepts a document exactly when [`Rule::parse`](super::Rule::parse) does.
use super::values::{unit_group, MAX_INTERVAL_BYTES, MAX_INTERVAL_YEARS, MAX_NUMBER_CHARS, UNITS};
use super::*;
use serde_json::{json, Map, Value};

/// The `$id` of the schema: one per kenbun version (clients cache by it).
pub fn schema_id() -> String {
    format!("urn:kenbun:rule-schema:{}", env!("CARGO_PKG_VERSION"))
}

/// The rule language as a JSON Schema (draft 2020-12).
pub fn rule_schema() -> Value {
    let mut defs = Map::new();
    let mut rule_branches = vec![];
    for key in RULE_KEYS {
        let (name, schema) = construct(key);
        rule_branches.push(json!({ "$ref": format!("#/$defs/{name}") }));
        defs.insert(name.into(), schema);
    }
    defs.insert(
        "rule".into(),
        json!({
            "description": format!(
                "A rule: an object with exactly one of the keys {}. Every rule is true or false for a lead or account, never NULL.",
                RULE_KEYS.join(", ")
            ),
            "oneOf": rule_branches,
        }),
    );
    for (name, schema) in helpers() {
        defs.insert(name.into(), schema);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id(),
        "title": "kenbun segment rule",
        "description": top_description(),
        "$ref": "#/$defs/rule",
        "$defs": defs,
    })
}

/// What only the server checks (listed in the schema's top-level description).
pub fn server_checks() -> Vec<String> {
    vec![
        "field, level and segment names, event types and event fields exist, and the value's JSON type fits the field's type \
         (gt on a number field takes a number, has_any only text[], varchar[] or jsonb fields, and so on)"
            .into(),
        "which conditions a kind allows: event and account conditions only in lead rules, leads only in account rules, \
         segment references of the same kind and without cycles"
            .into(),
        "matches: the value is a valid POSIX regular expression".into(),
        format!("tz: the time zone is one of pg_timezone_names; at most {MAX_TZ_BYTES} bytes (the schema counts characters)"),
        format!(
            "depth: at most {MAX_DEPTH} nested levels of rules (the root is level 0); size: at most {MAX_NODES} rule objects \
             and {MAX_TEXT} bytes of text; no \\u0000 in any string"
        ),
        format!(
            "intervals: at most {MAX_INTERVAL_YEARS} years in total; at most {MAX_INTERVAL_BYTES} bytes (the schema counts characters)"
        ),
        "between_ago: the first (older) interval is longer than the second when both are whole numbers of units".into(),
        "between: the first bound is not greater than the second when both are numbers, or both ISO dates or timestamps \
         with the same UTC offset or none"
            .into(),
        "counts, count_distinct values and min_before are written as whole numbers without a fraction or exponent \
         (1, not 1.0 or 1e0), which JSON Schema cannot tell apart"
            .into(),
    ]
}

fn top_description() -> String {
    format!(
        "A kenbun segment rule (kenbun {}): the JSON accepted by the type kenbun.segment_rule. \
         The schema accepts a document exactly when the server's parser does, except for what is checked by the server only: {}.",
        env!("CARGO_PKG_VERSION"),
        server_checks().join("; ")
    )
}

fn object(props: Map<String, Value>, required: &[&str], description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "required": required,
        "properties": props,
        "additionalProperties": false,
    })
}

fn props(keys: &[&str], schema: impl Fn(&str) -> Value) -> Map<String, Value> {
    keys.iter().map(|k| (k.to_string(), schema(k))).collect()
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{name}") })
}

fn rule_ref(description: &str) -> Value {
    json!({ "$ref": "#/$defs/rule", "description": description })
}

fn non_empty_string(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "description": description })
}

/// The definition of the construct a rule key introduces: (name in `$defs`, schema).
fn construct(key: &str) -> (&'static str, Value) {
    let one = |name: &'static str, v: Value, description: &str| {
        let mut p = Map::new();
        p.insert(key.to_string(), v);
        (name, object(p, &[key], description))
    };
    match key {
        "all" => one(
            "all",
            json!({ "type": "array", "items": r("rule") }),
            "Every rule of the array holds; {\"all\":[]} matches everyone.",
        ),
        "any" => one(
            "any",
            json!({ "type": "array", "items": r("rule") }),
            "At least one rule of the array holds; {\"any\":[]} matches no one.",
        ),
        "not" => one(
            "not",
            r("rule"),
            "The exact complement of the rule: true exactly when it is false (rules are never NULL).",
        ),
        "account" => one(
            "account_condition",
            r("rule"),
            "In a lead rule: the rule holds for the lead's account; false for a lead without an account (so true under not).",
        ),
        "segment" => one(
            "segment_condition",
            non_empty_string("The name of a saved segment."),
            "Member of another saved segment of the same kind (its rule is compiled in, so it holds on current data).",
        ),
        "event" => one(
            "event_condition",
            r("event"),
            "In a lead rule: a condition on the lead's events (how many, an aggregate, the first one, or that they stopped).",
        ),
        "leads" => one(
            "leads_condition",
            r("leads"),
            "In an account rule: how many of the account's leads match a lead rule (default: at least one).",
        ),
        "sequence" => one(
            "sequence_condition",
            r("sequence"),
            "In a lead rule: the lead has one event per step, each strictly later than the one before.",
        ),
        "field" => ("field_condition", field_condition()),
        "level" => ("level_condition", level_condition()),
        other => panic!("rule key \"{other}\" has no schema"),
    }
}

/// One sentence per operator: what it means, including missing values.
pub fn op_description(op: Op) -> &'static str {
    match op {
        Op::Eq => "Equal to the value (exact, case-sensitive; any JSON for a jsonb field); false when the field is missing (NULL).",
        Op::Neq => "Not equal to the value: the exact complement of eq, so true when the field is missing (NULL).",
        Op::Gt => "Greater than the value (text, numbers, dates/times); false when the field is missing.",
        Op::Gte => "Greater than or equal to the value; false when the field is missing.",
        Op::Lt => "Less than the value; false when the field is missing.",
        Op::Lte => "Less than or equal to the value; false when the field is missing.",
        Op::Between => "Between [low, high], both inclusive, bounds of one JSON type; false when the field is missing.",
        Op::In => "Equal to one of the values (a non-empty array of scalars of one JSON type); false when the field is missing.",
        Op::NotIn => "Equal to none of the values: the exact complement of in, so true when the field is missing.",
        Op::Contains => "Contains the string as a case-insensitive substring, or for a jsonb field contains the object/array (@>); false when the field is missing.",
        Op::NotContains => "The exact complement of contains, so true when the field is missing.",
        Op::StartsWith => "Starts with the string, case-insensitive; false when the field is missing.",
        Op::EndsWith => "Ends with the string, case-insensitive; false when the field is missing.",
        Op::Matches => "Matches the POSIX regular expression (case-sensitive); false when the field is missing.",
        Op::IsSet => "The field has a value (not SQL NULL, not an absent or null JSON key); takes no value.",
        Op::IsNotSet => "The field is missing (SQL NULL, an absent or null JSON key): the exact complement of is_set; takes no value.",
        Op::Before => "A date/time before the ISO date or timestamp; false when the field is missing.",
        Op::After => "A date/time after the ISO date or timestamp; false when the field is missing.",
        Op::WithinLast => "A date/time at or after now() - interval; false when the field is missing.",
        Op::NotWithinLast => "The exact complement of within_last, so true when the field is missing.",
        Op::HasAny => "A text[]/varchar[] field (or a JSON array) has at least one of the strings as an element; false when the field is missing or not an array.",
        Op::HasAll => "A text[]/varchar[] field (or a JSON array) has every one of the strings as an element; false when the field is missing or not an array.",
        Op::HasNone => "The exact complement of has_any: none of the strings is an element, so true when the field is missing or not an array.",
        Op::InPeriod => "A date/time in the calendar period (start inclusive, next period's start exclusive; weeks start on Monday), in the time zone \"tz\", else kenbun.timezone, else the session's; false when the field is missing.",
        Op::BetweenAgo => "A date/time with now() - older <= field < now() - newer, for the value [older, newer]; false when the field is missing.",
        Op::InNext => "A date/time with now() <= field <= now() + interval; false when the field is missing.",
    }
}

/// The schema of a value of this shape.
pub fn shape_schema(shape: ValueShape) -> Value {
    let of_one_type = json!([
        { "items": { "type": "string" } },
        { "items": { "type": "number" } },
        { "items": { "type": "boolean" } },
    ]);
    match shape {
        // rendered as the absence of the key (see field_condition)
        ValueShape::None => json!(false),
        ValueShape::Scalar => {
            json!({ "type": ["string", "number", "boolean"], "description": "A string, number or boolean." })
        }
        ValueShape::ScalarOrJson => json!({
            "type": ["string", "number", "boolean", "array", "object"],
            "description": "A string, number or boolean; an array or object for a jsonb field. Never null: use is_set / is_not_set."
        }),
        ValueShape::String => json!({ "type": "string" }),
        ValueShape::StringOrJson => json!({
            "type": ["string", "array", "object"],
            "description": "A string; an object or array for a jsonb field."
        }),
        ValueShape::Interval => r("interval"),
        ValueShape::IsoDate => r("iso_datetime"),
        ValueShape::NonEmptyScalarArray => json!({
            "type": "array", "minItems": 1, "anyOf": of_one_type,
            "description": "A non-empty array of strings, numbers or booleans, all of one JSON type."
        }),
        ValueShape::Pair => json!({
            "type": "array", "minItems": 2, "maxItems": 2, "anyOf": of_one_type,
            "description": "[low, high]: two strings, numbers or booleans of one JSON type; low is not greater than high (checked by the server for numbers and ISO dates)."
        }),
        ValueShape::PairOfIntervals => json!({
            "type": "array", "minItems": 2, "maxItems": 2, "items": r("interval"),
            "description": "[older, newer], such as [\"30 days\", \"7 days\"]: the first must be the longer (checked by the server)."
        }),
        ValueShape::NonEmptyStringArray => json!({
            "type": "array", "minItems": 1, "items": { "type": "string" },
            "description": "A non-empty array of strings."
        }),
        ValueShape::Period => r("period"),
    }
}

fn field_condition() -> Value {
    let names: Vec<&str> = ALL_OPS.iter().map(|o| o.name()).collect();
    let p = props(FIELD_KEYS, |k| match k {
        "field" => non_empty_string(
            "A field: a column, a mapped field or a dotted JSON path (checked against the catalog by the server).",
        ),
        "op" => {
            json!({ "enum": names, "description": "The operator; each one's meaning and value are in the allOf branches." })
        }
        "value" => json!({ "description": "The value compared with; its shape depends on the operator." }),
        "tz" => r("time_zone"),
        other => panic!("field key \"{other}\" has no schema"),
    });
    let branches: Vec<Value> = ALL_OPS
        .iter()
        .map(|&op| {
            let shape = op.value_shape();
            let mut then = Map::new();
            let mut forbidden = vec![];
            if shape == ValueShape::None {
                forbidden.push("value");
            } else {
                then.insert("required".into(), json!(["value"]));
                then.insert("properties".into(), json!({ "value": shape_schema(shape) }));
            }
            if !op.is_calendar() {
                forbidden.push("tz");
            }
            match forbidden.as_slice() {
                [] => {}
                [k] => {
                    then.insert("not".into(), json!({ "required": [k] }));
                }
                ks => {
                    let any: Vec<Value> = ks.iter().map(|k| json!({ "required": [k] })).collect();
                    then.insert("not".into(), json!({ "anyOf": any }));
                }
            }
            json!({
                "title": op.name(),
                "description": op_description(op),
                "if": { "required": ["op"], "properties": { "op": { "const": op.name() } } },
                "then": Value::Object(then),
            })
        })
        .collect();
    let mut o = object(
        p,
        &["field", "op"],
        "A condition on a field of the lead or account (or of the event, inside an event's where): {\"field\":…, \"op\":…, \"value\":…}. \
         Negative operators (neq, not_in, not_contains, not_within_last, has_none, is_not_set) are the exact complement of their positive one, so a missing value makes them true; \"tz\" only with in_period.",
    );
    o["allOf"] = Value::Array(branches);
    o
}

fn level_op_description(op: LevelOp) -> &'static str {
    match op {
        LevelOp::Eq => "The value's tier is the tier; false when the value is missing or below the lowest tier.",
        LevelOp::Neq => "The exact complement of eq, so true when the value is missing or below the lowest tier.",
        LevelOp::Gt => {
            "The value's tier comes after the tier; false when the value is missing or below the lowest tier."
        }
        LevelOp::Gte => {
            "The value's tier is the tier or comes after it; false when the value is missing or below the lowest tier."
        }
        LevelOp::Lt => {
            "The value's tier comes before the tier; false when the value is missing or below the lowest tier."
        }
        LevelOp::Lte => {
            "The value's tier is the tier or comes before it; false when the value is missing or below the lowest tier."
        }
        LevelOp::In => {
            "The value's tier is one of the tiers; false when the value is missing or below the lowest tier."
        }
        LevelOp::NotIn => "The exact complement of in, so true when the value is missing or below the lowest tier.",
    }
}

fn count_op_description(op: CountOp) -> &'static str {
    match op {
        CountOp::Eq => "Equal to the value.",
        CountOp::Neq => "Not equal to the value.",
        CountOp::Gt => "Greater than the value.",
        CountOp::Gte => "Greater than or equal to the value.",
        CountOp::Lt => "Less than the value.",
        CountOp::Lte => "Less than or equal to the value.",
    }
}

/// An operator property: the names as an `enum` (for validation and pickers) and each name's
/// meaning as a `oneOf` of `const`s with a description.
fn op_property<T: Copy>(
    ops: &[T],
    name: fn(T) -> &'static str,
    describe: fn(T) -> &'static str,
    description: &str,
) -> Value {
    json!({
        "description": description,
        "enum": ops.iter().map(|&o| name(o)).collect::<Vec<_>>(),
        "oneOf": ops.iter().map(|&o| json!({ "const": name(o), "description": describe(o) })).collect::<Vec<_>>(),
    })
}

fn level_condition() -> Value {
    let lists: Vec<&str> = ALL_LEVEL_OPS
        .iter()
        .filter(|o| o.takes_list())
        .map(|o| o.name())
        .collect();
    let p = props(LEVEL_KEYS, |k| match k {
        "level" => non_empty_string("The name of a level (defined with kenbun.define_levels)."),
        "op" => op_property(
            ALL_LEVEL_OPS,
            LevelOp::name,
            level_op_description,
            "Compares the tier of the level's field in the order of the tiers.",
        ),
        "value" => json!({ "description": "A tier name; a non-empty array of tier names for in / not_in." }),
        other => panic!("level key \"{other}\" has no schema"),
    });
    let mut o = object(
        p,
        LEVEL_KEYS,
        "The tier of a level's field compared with tiers in their order; a value missing or below the lowest tier is in no tier, so eq/gt/lt/in… are false and neq/not_in true.",
    );
    o["if"] = json!({ "required": ["op"], "properties": { "op": { "enum": lists } } });
    o["then"] = json!({ "properties": { "value": { "type": "array", "minItems": 1, "items": { "type": "string" } } } });
    o["else"] = json!({ "properties": { "value": { "type": "string" } } });
    o
}

fn agg_description(f: AggFunc) -> &'static str {
    match f {
        AggFunc::Sum => "Compares the sum of an event field over the matching events (0 over none).",
        AggFunc::Avg => "Compares the average of an event field over the matching events (false over none).",
        AggFunc::Min => "Compares the smallest value of an event field over the matching events (false over none).",
        AggFunc::Max => "Compares the largest value of an event field over the matching events (false over none).",
        AggFunc::CountDistinct => {
            "Compares the number of distinct non-NULL values of an event field over the matching events (0 over none)."
        }
    }
}

fn event() -> Value {
    let p = props(EVENT_KEYS, |k| {
        if let Some(f) = AGG_FUNCS.iter().find(|f| f.name() == k) {
            let value = if *f == AggFunc::CountDistinct {
                r("non_negative_integer")
            } else {
                json!({ "type": "number" })
            };
            return object(
                props(AGGREGATE_KEYS, |k| match k {
                    "field" => {
                        non_empty_string("An event field: a column, a mapped field or a dotted path into the metadata.")
                    }
                    "op" => r("count_op"),
                    "value" => value.clone(),
                    other => panic!("aggregate key \"{other}\" has no schema"),
                }),
                AGGREGATE_KEYS,
                agg_description(*f),
            );
        }
        match k {
            "type" => r("event_types"),
            "where" => rule_ref("A rule over the event's columns and metadata.* paths."),
            "within" => {
                json!({ "$ref": "#/$defs/interval", "description": "Only events whose time is within this interval before now." })
            }
            "count" => {
                json!({ "$ref": "#/$defs/count", "description": "How many matching events (default: at least one); {\"op\":\"eq\",\"value\":0} means none." })
            }
            "first_within" => {
                json!({ "$ref": "#/$defs/interval", "description": "The lead's first matching event (of all time) happened within this interval before now; a lead with no matching event is not a member." })
            }
            "stopped" => {
                json!({ "$ref": "#/$defs/interval", "description": "At least min_before matching events before now() - interval and none since; events with a NULL time count on neither side." })
            }
            "min_before" => {
                json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX, "default": 1, "description": "With stopped: the fewest matching events before the interval (default 1)." })
            }
            other => panic!("event key \"{other}\" has no schema"),
        }
    });
    let mut o = object(
        p,
        &[],
        "An event condition: the lead's events of the types that match where (and within), compared by count (default at least one), by an aggregate, by first_within or by stopped.",
    );
    let mut dep = Map::new();
    for (a, others) in EVENT_EXCLUSIVE {
        let any: Vec<Value> = others.iter().map(|b| json!({ "required": [b] })).collect();
        dep.insert(a.to_string(), json!({ "not": { "anyOf": any } }));
    }
    o["dependentSchemas"] = Value::Object(dep);
    o["dependentRequired"] = json!({ "min_before": ["stopped"] });
    o
}

/// The case-insensitive (ASCII) regex of a word.
fn ci(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Rust's `char::is_whitespace` (which `split_whitespace` and `trim` use) as a regex class.
const WS: &str = r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// The end of the text: `$`, not before a final newline (where Python's `$` also matches).
const END: &str = r"$(?!\n)";

/// The units of an interval as alternatives, longest first; only those of `group` when given.
fn units_re(group: Option<&str>) -> String {
    let mut us: Vec<&str> = UNITS
        .iter()
        .copied()
        .filter(|u| group.is_none_or(|g| unit_group(u).0 == g))
        .collect();
    us.sort_by_key(|u| std::cmp::Reverse(u.len()));
    format!("(?:{})", us.iter().map(|u| ci(u)).collect::<Vec<_>>().join("|"))
}

fn interval() -> Value {
    let number = format!(r"(?=[0-9.]{{1,{MAX_NUMBER_CHARS}}}{WS})(?=\.?[0-9])[0-9]*\.?[0-9]*");
    let pair = format!("{number}{WS}+{}", units_re(None));
    let pattern = format!("^{WS}*{pair}(?:{WS}+{pair})*{WS}*{END}");
    let mut groups: Vec<&str> = UNITS.iter().map(|u| unit_group(u).0).collect();
    groups.dedup();
    let token = |g: Option<&str>| format!("(?:^|{WS}){}(?:{WS}|$)", units_re(g));
    let twice: Vec<String> = groups
        .iter()
        .map(|g| format!(r"(?:^|{WS}){}{WS}[\s\S]*{}", units_re(Some(g)), token(Some(g))))
        .collect();
    let fractional_seconds = format!(
        r"(?:^|{WS})[0-9]*\.[0-9]*[1-9][0-9]*{WS}+{}(?:{WS}|$)",
        units_re(Some("seconds"))
    );
    let subsecond = format!("{}|{}", token(Some("milliseconds")), token(Some("microseconds")));
    json!({
        "type": "string",
        "maxLength": MAX_INTERVAL_BYTES,
        "pattern": pattern,
        "not": { "anyOf": [
            { "pattern": twice.join("|") },
            { "allOf": [ { "pattern": fractional_seconds }, { "pattern": subsecond } ] },
        ] },
        "description": format!(
            "An interval: pairs of a non-negative number (digits and at most one dot, at most {MAX_NUMBER_CHARS} characters) and a unit ({}, any case), separated by white space, such as \"30 days\" or \"1 day 12 hours\"; each unit at most once (day and days are the same unit), no fractional seconds beside milliseconds or microseconds. The server also caps the total at {MAX_INTERVAL_YEARS} years and the text at {MAX_INTERVAL_BYTES} bytes (the schema counts characters).",
            UNITS.join(" ")
        ),
        "examples": ["30 days", "12 hours", "1 week 2 days"],
    })
}

fn iso_datetime() -> Value {
    let year = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})";
    let leap = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)";
    let date = format!(
        "(?:{year}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))|{leap}-02-29)"
    );
    let time = r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:0[0-9]|1[0-4])(?::[0-5][0-9])?)?)?";
    json!({
        "type": "string",
        "pattern": format!("^{date}{time}{END}"),
        "description": "An ISO 8601 date (2024-01-31) or timestamp (2024-01-31T12:00, 2024-01-31 12:00:00.5, …Z, …+02:00), a valid calendar date of the years 1 to 9999.",
        "examples": ["2024-01-31", "2024-01-31T12:00:00Z"],
    })
}

/// The shared definitions besides the constructs.
fn helpers() -> Vec<(&'static str, Value)> {
    vec![
        ("event", event()),
        (
            "leads",
            object(
                props(LEADS_KEYS, |k| match k {
                    "where" => rule_ref("A lead rule (which may contain event conditions); omitted: every lead."),
                    "count" => {
                        json!({ "$ref": "#/$defs/count", "description": "How many of the account's leads (default: at least one)." })
                    }
                    other => panic!("leads key \"{other}\" has no schema"),
                }),
                &[],
                "How many of the account's leads match where.",
            ),
        ),
        (
            "sequence",
            object(
                props(SEQUENCE_KEYS, |k| match k {
                    "steps" => json!({
                        "type": "array", "minItems": MIN_SEQUENCE_STEPS, "maxItems": MAX_SEQUENCE_STEPS,
                        "items": r("sequence_step"),
                        "description": format!("{MIN_SEQUENCE_STEPS} to {MAX_SEQUENCE_STEPS} steps, in time order."),
                    }),
                    "max_gap" => {
                        json!({ "$ref": "#/$defs/interval", "description": "Each step's event at most this long after the previous one." })
                    }
                    "within" => {
                        json!({ "$ref": "#/$defs/interval", "description": "Every step's event within this interval before now." })
                    }
                    other => panic!("sequence key \"{other}\" has no schema"),
                }),
                &["steps"],
                "The lead has events e1..en, one per step, each strictly later than the one before.",
            ),
        ),
        (
            "sequence_step",
            object(
                props(STEP_KEYS, |k| match k {
                    "type" => r("event_types"),
                    "where" => rule_ref("A rule over the event's columns and metadata.* paths."),
                    other => panic!("step key \"{other}\" has no schema"),
                }),
                &[],
                "One step of a sequence: an event of one of the types (any when omitted) that matches where.",
            ),
        ),
        (
            "event_types",
            json!({
                "description": "An event type or a non-empty array of them; omitted: any type.",
                "anyOf": [ { "type": "string" }, { "type": "array", "minItems": 1, "items": { "type": "string" } } ],
            }),
        ),
        (
            "count",
            object(
                props(COUNT_KEYS, |k| match k {
                    "op" => r("count_op"),
                    "value" => r("non_negative_integer"),
                    other => panic!("count key \"{other}\" has no schema"),
                }),
                COUNT_KEYS,
                "A comparison of a count: {\"op\":…, \"value\": n}.",
            ),
        ),
        (
            "count_op",
            op_property(
                ALL_COUNT_OPS,
                CountOp::name,
                count_op_description,
                "A comparison of a count or an aggregate with the value.",
            ),
        ),
        (
            "non_negative_integer",
            json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX, "description": "A whole number from 0, written without a fraction or exponent." }),
        ),
        (
            "period",
            json!({
                "enum": PERIODS.iter().map(|p| p.0).collect::<Vec<_>>(),
                "description": "A calendar period: from its start (inclusive) to the next period's start (exclusive); weeks start on Monday, quarters in January, April, July and October.",
            }),
        ),
        (
            "time_zone",
            json!({
                "type": "string", "maxLength": MAX_TZ_BYTES, "pattern": format!("[^{}]", &WS[1..WS.len() - 1]),
                "description": "With in_period only: a time zone name such as \"Europe/Paris\" (checked against pg_timezone_names by the server); not blank.",
            }),
        ),
        ("interval", interval()),
        ("iso_datetime", iso_datetime()),
    ]
}

#[cfg(test)]
mod tests;
