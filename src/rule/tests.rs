use super::*;
use crate::error::SqlState;

fn err(text: &str) -> crate::error::KenbunError {
    Rule::parse_text(text).expect_err(text)
}

#[test]
fn parses_groups_and_conditions() {
    let r =
        Rule::parse_text(r#"{"all":[{"field":"country","op":"in","value":["US","CA"]},{"not":{"any":[]}}]}"#).unwrap();
    match &r {
        Rule::All(v) => {
            assert_eq!(v.len(), 2);
            assert!(matches!(&v[0], Rule::Field(f) if f.op == Op::In && f.path == "$.all[0]"));
            assert!(matches!(&v[1], Rule::Not(b) if matches!(**b, Rule::Any(ref x) if x.is_empty())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn canonical_form_is_stable_and_round_trips() {
    let text = r#"{ "value": 3, "op":"gte", "field": "score" }"#;
    let r = Rule::parse_text(text).unwrap();
    let c = r.to_canonical_string();
    assert_eq!(c, r#"{"field":"score","op":"gte","value":3}"#);
    assert_eq!(Rule::parse_text(&c).unwrap(), r);
    let ev = r#"{"event":{"type":["a","b"],"within":"30 days","count":{"op":"eq","value":0},"where":{"field":"metadata.url","op":"contains","value":"/pricing"}}}"#;
    let r = Rule::parse_text(ev).unwrap();
    assert_eq!(Rule::parse_text(&r.to_canonical_string()).unwrap(), r);
}

#[test]
fn every_operator_parses() {
    for op in ALL_OPS {
        let v = match op {
            Op::IsSet | Op::IsNotSet => String::new(),
            Op::Between => r#","value":[1,2]"#.into(),
            Op::In | Op::NotIn => r#","value":["a"]"#.into(),
            Op::WithinLast | Op::NotWithinLast => r#","value":"7 days""#.into(),
            Op::Before | Op::After => r#","value":"2024-01-31""#.into(),
            Op::HasAny | Op::HasAll | Op::HasNone => r#","value":["a"]"#.into(),
            Op::InPeriod => r#","value":"this_month""#.into(),
            Op::BetweenAgo => r#","value":["30 days","7 days"]"#.into(),
            Op::InNext => r#","value":"7 days""#.into(),
            _ => r#","value":"x""#.into(),
        };
        let text = format!(r#"{{"field":"f","op":"{}"{v}}}"#, op.name());
        Rule::parse_text(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn malformed_json_is_22p02() {
    let e = err("{\"all\":[");
    assert_eq!(e.code, SqlState::InvalidTextRepresentation);
    assert!(
        e.message.contains("invalid input syntax for type kenbun.segment_rule"),
        "{}",
        e.message
    );
}

#[test]
fn errors_name_the_json_path() {
    let e = err(
        r#"{"all":[{"field":"a","op":"eq","value":1},{"field":"b","op":"eq","value":2},{"field":"c","op":"equals","value":3}]}"#,
    );
    assert_eq!(e.code, SqlState::InvalidParameterValue);
    assert!(
        e.message
            .starts_with("invalid rule at $.all[2].op: unknown operator \"equals\""),
        "{}",
        e.message
    );
    let e = err(r#"{"any":[{"field":"a","op":"eq","valeu":1}]}"#);
    assert!(e.message.contains("$.any[0].valeu"), "{}", e.message);
    assert_eq!(e.hint.as_deref(), Some("did you mean \"value\"?"));
    let e = err(r#"{"al":[]}"#);
    assert_eq!(e.hint.as_deref(), Some("did you mean \"all\"?"));
}

#[test]
fn structural_errors() {
    let cases: &[(&str, SqlState, &str)] = &[
        (r#"[]"#, SqlState::InvalidParameterValue, "expected a rule object"),
        (r#"{}"#, SqlState::InvalidParameterValue, "empty rule object"),
        (
            r#"{"all":{}}"#,
            SqlState::InvalidParameterValue,
            "$.all: expected an array",
        ),
        (
            r#"{"all":[],"any":[]}"#,
            SqlState::InvalidParameterValue,
            "cannot have both",
        ),
        (
            r#"{"field":"a","op":"in","value":[]}"#,
            SqlState::InvalidParameterValue,
            "is empty",
        ),
        (
            r#"{"field":"a","op":"in","value":"x"}"#,
            SqlState::InvalidParameterValue,
            "takes an array",
        ),
        (
            r#"{"field":"a","op":"in","value":["x",1]}"#,
            SqlState::InvalidParameterValue,
            "$.value[1]",
        ),
        (
            r#"{"field":"a","op":"between","value":[1]}"#,
            SqlState::InvalidParameterValue,
            "[low, high]",
        ),
        (
            r#"{"field":"a","op":"between","value":[1,"b"]}"#,
            SqlState::InvalidParameterValue,
            "same type",
        ),
        (
            r#"{"field":"a","op":"is_set","value":1}"#,
            SqlState::InvalidParameterValue,
            "takes no value",
        ),
        (
            r#"{"field":"a","op":"eq"}"#,
            SqlState::InvalidParameterValue,
            "needs a \"value\"",
        ),
        (
            r#"{"field":"a","op":"eq","value":null}"#,
            SqlState::InvalidParameterValue,
            "value is null",
        ),
        (
            r#"{"field":"a","op":"within_last","value":"30 dayz"}"#,
            SqlState::InvalidDatetimeFormat,
            "unknown unit",
        ),
        (
            r#"{"field":"a","op":"within_last","value":"-3 days"}"#,
            SqlState::InvalidDatetimeFormat,
            "non-negative",
        ),
        (
            r#"{"field":"a","op":"within_last","value":30}"#,
            SqlState::InvalidParameterValue,
            "expected an interval",
        ),
        (
            r#"{"field":"a","op":"before","value":"2024-02-30"}"#,
            SqlState::InvalidDatetimeFormat,
            "not an ISO date",
        ),
        (
            r#"{"field":"a","op":"matches","value":1}"#,
            SqlState::InvalidParameterValue,
            "takes a string",
        ),
        (
            r#"{"field":"","op":"eq","value":1}"#,
            SqlState::InvalidParameterValue,
            "expected a field name",
        ),
        (
            r#"{"field":"a","op":5,"value":1}"#,
            SqlState::InvalidParameterValue,
            "expected an operator name",
        ),
        (
            r#"{"level":"eng","op":"between","value":"Warm"}"#,
            SqlState::InvalidParameterValue,
            "unknown level operator",
        ),
        (
            r#"{"level":"eng","op":"in","value":[]}"#,
            SqlState::InvalidParameterValue,
            "empty",
        ),
        (
            r#"{"event":{"type":[]}}"#,
            SqlState::InvalidParameterValue,
            "$.event.type",
        ),
        (
            r#"{"event":{"typ":"x"}}"#,
            SqlState::InvalidParameterValue,
            "$.event.typ",
        ),
        (
            r#"{"event":{"count":{"op":"gte","value":-1}}}"#,
            SqlState::InvalidParameterValue,
            "$.event.count.value",
        ),
        (
            r#"{"event":{"count":{"op":"about","value":1}}}"#,
            SqlState::InvalidParameterValue,
            "unknown count operator",
        ),
        (
            r#"{"event":{"within":"soon"}}"#,
            SqlState::InvalidDatetimeFormat,
            "$.event.within",
        ),
        (
            r#"{"leads":{"where":{"field":"a"}}}"#,
            SqlState::InvalidParameterValue,
            "$.leads.where",
        ),
        (
            r#"{"segment":""}"#,
            SqlState::InvalidParameterValue,
            "expected a segment name",
        ),
        (r#"{"account":[]}"#, SqlState::InvalidParameterValue, "$.account"),
    ];
    for (text, code, needle) in cases {
        let e = err(text);
        assert_eq!(e.code, *code, "{text}: {}", e.message);
        assert!(
            e.message.contains(needle),
            "{text}: {} should contain {needle}",
            e.message
        );
    }
}

#[test]
fn limits_are_enforced() {
    let mut deep = String::from(r#"{"all":[]}"#);
    for _ in 0..=MAX_DEPTH {
        deep = format!(r#"{{"not":{deep}}}"#);
    }
    assert_eq!(err(&deep).code, SqlState::ProgramLimitExceeded);
    let wide = format!(
        r#"{{"any":[{}]}}"#,
        vec![r#"{"field":"a","op":"is_set"}"#; MAX_NODES + 1].join(",")
    );
    assert_eq!(err(&wide).code, SqlState::ProgramLimitExceeded);
}

#[test]
fn intervals_and_dates() {
    for ok in [
        "30 days",
        "1 day 12 hours",
        "2.5 hours",
        "90 minutes",
        " 1 week ",
        "3 Months",
    ] {
        parse_interval(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        "days",
        "30",
        "30 days ago",
        "1e3 days",
        "1 day; DROP TABLE x",
        "1..2 days",
    ] {
        assert!(parse_interval(bad).is_err(), "{bad}");
    }
    for ok in [
        "2024-01-31",
        "2024-02-29",
        "2024-01-31T12:00",
        "2024-01-31 12:00:59",
        "2024-01-31T12:00:00Z",
        "2024-01-31T12:00:00.123+02:00",
        "2024-01-31T12:00:00-05",
    ] {
        assert!(is_iso_datetime(ok), "{ok}");
    }
    for bad in [
        "2023-02-29",
        "2024-13-01",
        "2024-1-1",
        "2024-01-31T25:00",
        "2024-01-31T12:00:00+",
        "yesterday",
        "2024-01-31'; --",
    ] {
        assert!(!is_iso_datetime(bad), "{bad}");
    }
}

#[test]
fn segment_refs_are_collected() {
    let r = Rule::parse_text(r#"{"any":[{"segment":"a"},{"not":{"segment":"b"}}]}"#).unwrap();
    assert_eq!(r.segment_refs(), vec!["a".to_string(), "b".to_string()]);
}

/// (document, SQLSTATE, the whole message, hint) for the rule-language extensions of 0.6.
const NEW_CONSTRUCT_ERRORS: &[(&str, SqlState, &str, Option<&str>)] = &[
    (
        r#"{"field":"tags","op":"has_any","value":[]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: the list of \"has_any\" is empty",
        None,
    ),
    (
        r#"{"field":"tags","op":"has_all","value":["a",1]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value[1]: expected a string, found number",
        None,
    ),
    (
        r#"{"field":"tags","op":"has_none","value":"a"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: \"has_none\" takes an array of strings, found string",
        Some("write {\"op\":\"has_none\",\"value\":[\"a\",\"b\"]}"),
    ),
    (
        r#"{"field":"tags","op":"has_any"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $: operator \"has_any\" needs a \"value\" (a non-empty array of strings)",
        None,
    ),
    (
        r#"{"field":"d","op":"in_period","value":"this_mnth"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: unknown period \"this_mnth\"",
        Some("did you mean \"this_month\"?"),
    ),
    (
        r#"{"field":"d","op":"in_period","value":"fortnight"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: unknown period \"fortnight\"",
        Some("periods are today yesterday this_week last_week this_month last_month this_quarter last_quarter this_year last_year"),
    ),
    (
        r#"{"field":"d","op":"in_period","value":3}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: expected a period such as \"this_month\", found number",
        Some("periods are today yesterday this_week last_week this_month last_month this_quarter last_quarter this_year last_year"),
    ),
    (
        r#"{"field":"d","op":"within_last","value":"7 days","tz":"UTC"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.tz: operator \"within_last\" takes no time zone",
        Some("\"tz\" is only allowed with the calendar operator \"in_period\""),
    ),
    (
        r#"{"field":"d","op":"in_period","value":"today","tz":""}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.tz: expected a time zone name such as \"Europe/Paris\", found an empty string",
        None,
    ),
    (
        r#"{"field":"d","op":"in_period","value":"today","tz":1}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.tz: expected a time zone name such as \"Europe/Paris\", found number",
        None,
    ),
    (
        r#"{"field":"d","op":"in_period","value":"today","tzz":"UTC"}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.tzz: unknown key \"tzz\"",
        Some("did you mean \"tz\"?"),
    ),
    (
        r#"{"field":"d","op":"between_ago","value":["7 days","30 days"]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: \"between_ago\" runs from \"7 days\" ago to \"30 days\" ago: the first must be longer than the second",
        Some("write the older bound first: [\"30 days\", \"7 days\"]"),
    ),
    (
        r#"{"field":"d","op":"between_ago","value":["7 days","1 week"]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: \"between_ago\" runs from \"7 days\" ago to \"1 week\" ago: the first must be longer than the second",
        Some("write the older bound first: [\"30 days\", \"7 days\"]"),
    ),
    (
        r#"{"field":"d","op":"between_ago","value":["30 days"]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: \"between_ago\" takes [older, newer], found an array of 1 element(s)",
        Some("write [\"30 days\", \"7 days\"]: from 30 days ago to 7 days ago"),
    ),
    (
        r#"{"field":"d","op":"between_ago","value":["30 days","7 dayz"]}"#,
        SqlState::InvalidDatetimeFormat,
        "invalid rule at $.value[1]: \"7 dayz\" is not an interval: unknown unit \"dayz\"",
        Some("write an interval such as \"30 days\", \"12 hours\" or \"2 weeks\""),
    ),
    (
        r#"{"field":"d","op":"in_next","value":7}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.value: expected an interval such as \"30 days\", found number",
        Some("write a duration such as \"30 days\" (a PostgreSQL interval as a string)"),
    ),
    (
        r#"{"event":{"type":"x","count":{"op":"gte","value":2},"sum":{"field":"amount","op":"gte","value":5}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event: an event condition cannot have both \"count\" and \"sum\"",
        Some("combine separate event conditions with {\"all\":[…]}"),
    ),
    (
        r#"{"event":{"avg":{"field":"amount","op":"gte","value":5},"max":{"field":"amount","op":"gte","value":5}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event: an event condition cannot have both \"avg\" and \"max\"",
        Some("combine separate event conditions with {\"all\":[…]}"),
    ),
    (
        r#"{"event":{"sum":{"field":"amount","op":"gte","value":"5"}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.sum.value: expected a number, found string",
        Some("write the value as a JSON number, without quotes"),
    ),
    (
        r#"{"event":{"count_distinct":{"field":"url","op":"gte","value":1.5}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.count_distinct.value: expected a non-negative integer, found 1.5",
        None,
    ),
    (
        r#"{"event":{"min":{"field":"amount","op":"atleast","value":1}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.min.op: unknown count operator \"atleast\"",
        Some("did you mean \"gte\"?"),
    ),
    (
        r#"{"event":{"max":{"op":"gte","value":1}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.max: missing key \"field\"",
        None,
    ),
    (
        r#"{"event":{"sum":3}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.sum: expected {\"field\":…,\"op\":…,\"value\":…}, found number",
        Some("write {\"sum\":{\"field\":\"amount\",\"op\":\"gte\",\"value\":500}}"),
    ),
    (
        r#"{"event":{"type":"signup","first_within":"7 days","within":"30 days"}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event: an event condition cannot have both \"first_within\" and \"within\"",
        Some("combine separate event conditions with {\"all\":[…]}"),
    ),
    (
        r#"{"event":{"type":"login","stopped":"30 days","count":{"op":"gte","value":1}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event: an event condition cannot have both \"stopped\" and \"count\"",
        Some("combine separate event conditions with {\"all\":[…]}"),
    ),
    (
        r#"{"event":{"type":"login","first_within":"3 days","stopped":"30 days"}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event: an event condition cannot have both \"first_within\" and \"stopped\"",
        Some("combine separate event conditions with {\"all\":[…]}"),
    ),
    (
        r#"{"event":{"type":"login","min_before":3}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.min_before: \"min_before\" is only allowed with \"stopped\"",
        Some("write {\"type\":\"login\",\"stopped\":\"30 days\",\"min_before\":3}"),
    ),
    (
        r#"{"event":{"type":"login","stopped":"30 days","min_before":0}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.min_before: expected a positive integer, found 0",
        None,
    ),
    (
        r#"{"event":{"type":"login","stopped":"30 dais"}}"#,
        SqlState::InvalidDatetimeFormat,
        "invalid rule at $.event.stopped: \"30 dais\" is not an interval: unknown unit \"dais\"",
        Some("write an interval such as \"30 days\", \"12 hours\" or \"2 weeks\""),
    ),
    (
        r#"{"event":{"type":"signup","first_within":7}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.first_within: expected an interval such as \"30 days\", found number",
        Some("write a duration such as \"30 days\" (a PostgreSQL interval as a string)"),
    ),
    (
        r#"{"event":{"type":"x","firs_within":"7 days"}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.event.firs_within: unknown key \"firs_within\"",
        Some("did you mean \"first_within\"?"),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"}]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps: a sequence has 2 to 5 steps, found 1",
        Some("for a single event use {\"event\":{…}}"),
    ),
    (
        r#"{"sequence":{"steps":[{},{},{},{},{},{}]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps: a sequence has 2 to 5 steps, found 6",
        Some("for a single event use {\"event\":{…}}"),
    ),
    (
        r#"{"sequence":{"steps":{}}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps: expected an array of steps, found object",
        None,
    ),
    (
        r#"{"sequence":{"within":"30 days"}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence: missing key \"steps\"",
        None,
    ),
    (
        r#"{"sequence":[]}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence: expected a sequence object, found array",
        Some("write {\"steps\":[{\"type\":\"pricing_view\"},{\"type\":\"demo_request\"}],\"within\":\"30 days\"}"),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},"b"]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps[1]: expected a step object, found string",
        Some("a step is {\"type\":…, \"where\":…}, both optional"),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},{"typ":"b"}]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps[1].typ: unknown key \"typ\"",
        Some("did you mean \"type\"?"),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},{"type":[]}]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps[1].type: the list of event types is empty",
        None,
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},{"where":{"field":"url","op":"equals","value":"x"}}]}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.steps[1].where.op: unknown operator \"equals\"",
        Some("did you mean \"eq\"?"),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},{"type":"b"}],"max_gap":"soon"}}"#,
        SqlState::InvalidDatetimeFormat,
        "invalid rule at $.sequence.max_gap: \"soon\" is not an interval: expected pairs of a number and a unit",
        Some("write an interval such as \"30 days\", \"12 hours\" or \"2 weeks\""),
    ),
    (
        r#"{"sequence":{"steps":[{"type":"a"},{"type":"b"}],"maxgap":"1 day"}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $.sequence.maxgap: unknown key \"maxgap\"",
        Some("did you mean \"max_gap\"?"),
    ),
    (
        r#"{"sequense":{}}"#,
        SqlState::InvalidParameterValue,
        "invalid rule at $: unknown key \"sequense\"",
        Some("did you mean \"sequence\"?"),
    ),
];

#[test]
fn new_construct_errors_name_path_message_and_hint() {
    for (doc, code, message, hint) in NEW_CONSTRUCT_ERRORS {
        let e = err(doc);
        assert_eq!((e.code, e.message.as_str()), (*code, *message), "{doc}");
        if hint.is_some() {
            assert_eq!(e.hint.as_deref(), *hint, "{doc}");
        }
    }
}

#[test]
fn new_constructs_parse_and_round_trip_canonically() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"op":"has_any","field":"tags","value":["a","b"]}"#,
            r#"{"field":"tags","op":"has_any","value":["a","b"]}"#,
        ),
        (
            r#"{"field":"d","op":"in_period","value":"this_month","tz":" Europe/Paris "}"#,
            r#"{"field":"d","op":"in_period","tz":"Europe/Paris","value":"this_month"}"#,
        ),
        (
            r#"{"field":"d","op":"between_ago","value":["30 days","7 days"]}"#,
            r#"{"field":"d","op":"between_ago","value":["30 days","7 days"]}"#,
        ),
        (
            r#"{"event":{"type":"purchase","within":" 90 days","sum":{"value":500,"op":"gte","field":"amount"}}}"#,
            r#"{"event":{"sum":{"field":"amount","op":"gte","value":500},"type":"purchase","within":"90 days"}}"#,
        ),
        (
            r#"{"event":{"count_distinct":{"field":"metadata.url","op":"gte","value":3}}}"#,
            r#"{"event":{"count_distinct":{"field":"metadata.url","op":"gte","value":3}}}"#,
        ),
        (
            r#"{"event":{"type":"signup","first_within":"7 days"}}"#,
            r#"{"event":{"first_within":"7 days","type":"signup"}}"#,
        ),
        // min_before 1 is the default and dropped, like count
        (
            r#"{"event":{"type":"login","stopped":"30 days","min_before":1}}"#,
            r#"{"event":{"stopped":"30 days","type":"login"}}"#,
        ),
        (
            r#"{"event":{"type":"login","stopped":"30 days","min_before":3}}"#,
            r#"{"event":{"min_before":3,"stopped":"30 days","type":"login"}}"#,
        ),
        (
            r#"{"sequence":{"within":"30 days","max_gap":"7 days","steps":[{"type":"pricing_view","where":{"field":"url","op":"contains","value":"/pricing"}},{"type":["demo_request"]},{}]}}"#,
            r#"{"sequence":{"max_gap":"7 days","steps":[{"type":"pricing_view","where":{"field":"url","op":"contains","value":"/pricing"}},{"type":["demo_request"]},{}],"within":"30 days"}}"#,
        ),
    ];
    for (text, canon) in cases {
        let r = Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(r.to_canonical_string(), *canon, "{text}");
        assert_eq!(Rule::parse_text(canon).unwrap(), r, "{canon}");
    }
    let r = Rule::parse_text(r#"{"event":{"type":"login","stopped":"30 days"}}"#).unwrap();
    assert!(matches!(&r, Rule::Event(e) if e.min_before == 1 && e.stopped.as_deref() == Some("30 days")));
    // longer-first is checked only when the fields compare exactly: a month against days is left alone
    Rule::parse_text(r#"{"field":"d","op":"between_ago","value":["1 month","30 days"]}"#).unwrap();
    Rule::parse_text(r#"{"field":"d","op":"between_ago","value":["1.5 days","2 days"]}"#).unwrap();
    assert_eq!(interval_fields("1 year 2 weeks 3 hours"), Some([12, 14, 3 * 3_600_000_000]));
    assert_eq!(interval_fields("1.5 days"), None);
}

#[test]
fn sequence_steps_are_walked_and_counted() {
    let r = Rule::parse_text(
        r#"{"sequence":{"steps":[{"where":{"segment":"a"}},{"where":{"all":[{"segment":"b"},{"field":"url","op":"is_set"}]}}]}}"#,
    )
    .unwrap();
    assert_eq!(r.segment_refs(), vec!["a".to_string(), "b".to_string()]);
    let mut n = 0;
    r.walk(&mut |_| n += 1);
    assert_eq!(n, 5);
    // a step's where counts towards the depth limit like an event's where
    let mut leaf = serde_json::json!({"field":"url","op":"is_set"});
    for nots in 0..=32 {
        let seq = serde_json::json!({"sequence":{"steps":[{"where": leaf},{}]}});
        let ev = serde_json::json!({"event":{"where": leaf}});
        assert_eq!(Rule::parse(&seq).is_ok(), nots <= 31, "{nots} nots");
        assert_eq!(Rule::parse(&ev).is_ok(), nots <= 31, "{nots} nots");
        leaf = serde_json::json!({ "not": leaf });
    }
}

/// (document, SQLSTATE, message, hint): every entry asserts the exact hint (None: no hint).
fn assert_errors(cases: &[(&str, SqlState, &str, Option<&str>)]) {
    for (doc, code, message, hint) in cases {
        let e = err(doc);
        assert_eq!((e.code, e.message.as_str(), e.hint.as_deref()), (*code, *message, *hint), "{doc}");
    }
}

/// The hint for an unknown field operator.
fn op_hint(op: &str) -> String {
    let doc = serde_json::json!({"field": "f", "op": op, "value": 1});
    let e = Rule::parse(&doc).expect_err(op);
    assert_eq!(e.message, format!("invalid rule at $.op: unknown operator {}", serde_json::json!(op)));
    e.hint.unwrap()
}

#[test]
fn operator_synonyms_suggest_the_operator() {
    let cases: &[(&[&str], &str)] = &[
        (&["equals", "equal", "Equal_To", "is", "IS", "==", "=", "===", "EQ", "Eq"], "eq"),
        (&["not_equals", "not_equal", "ne", "!=", "<>", "is_not", "isNot", "not-equal", "NEQ"], "neq"),
        (&["greater_than", "greaterThan", "greater than", ">", "more_than", "above"], "gt"),
        (&["greater_than_or_equal", "greater_than_or_equal_to", ">=", "at_least", "atleast", "ge", "GTE"], "gte"),
        (&["less_than", "lessThan", "<", "below"], "lt"),
        (&["<=", "at_most", "less_than_or_equal", "le"], "lte"),
        (&["one_of", "is_in", "IN"], "in"),
        (&["nin", "NOT_IN", "not-in", "notin", "Not In", "none_of"], "not_in"),
        (&["like", "ilike", "includes", "contains_text", "CONTAINS"], "contains"),
        (&["not_like", "excludes", "does_not_contain", "NotContains"], "not_contains"),
        (&["startswith", "startsWith", "Starts With", "begins_with", "prefix"], "starts_with"),
        (&["endswith", "EndsWith", "suffix"], "ends_with"),
        (&["regex", "regexp", "~"], "matches"),
        (&["exists", "not_null", "is_not_null", "isSet", "present"], "is_set"),
        (&["not_exists", "is_null", "null", "missing", "not_set", "IS_NOT_SET"], "is_not_set"),
        (&["earlier_than"], "before"),
        (&["later_than", "since"], "after"),
        (&["within", "in_last", "in the last"], "within_last"),
        (&["within_next"], "in_next"),
        (&["contains_any", "overlaps"], "has_any"),
        (&["contains_all"], "has_all"),
        (&["during"], "in_period"),
        // no synonym: the closest name by edit distance, as before
        (&["betwen", "betweeen"], "between"),
        (&["no_in"], "not_in"),
    ];
    for (names, op) in cases {
        for name in *names {
            assert_eq!(op_hint(name), format!("did you mean \"{op}\"?"), "{name}");
        }
    }
    // nothing close: the list of operators
    assert_eq!(
        op_hint("frobnicate"),
        "operators are eq neq gt gte lt lte between in not_in contains not_contains starts_with ends_with matches \
         is_set is_not_set before after within_last not_within_last has_any has_all has_none in_period between_ago in_next"
    );
}

#[test]
fn synonym_tables_name_real_names() {
    let ops: Vec<&str> = ALL_OPS.iter().map(|o| o.name()).collect();
    let mut keys = std::collections::BTreeSet::new();
    for (syn, op) in OP_SYNONYMS {
        assert!(ops.contains(op), "{syn} -> {op}: no such operator");
        assert!(!ops.iter().any(|o| name_key(o) == name_key(syn)), "{syn} is an operator's name");
        assert!(keys.insert(name_key(syn)), "{syn} given twice");
    }
    let all_keys: Vec<&str> = [FIELD_KEYS, LEVEL_KEYS, COUNT_KEYS, AGGREGATE_KEYS, LEADS_KEYS, SEQUENCE_KEYS, STEP_KEYS, EVENT_KEYS]
        .concat();
    for (table, names) in [(RULE_KEY_SYNONYMS, RULE_KEYS), (KEY_SYNONYMS, &all_keys[..])] {
        let mut keys = std::collections::BTreeSet::new();
        for (syn, key) in table {
            assert!(names.contains(key), "{syn} -> {key}: no such key");
            assert!(!names.iter().any(|k| name_key(k) == name_key(syn)), "{syn} is a key");
            assert!(keys.insert(name_key(syn)), "{syn} given twice");
        }
    }
}

#[test]
fn level_and_count_operators_suggest_synonyms_they_have() {
    let level_list = Some("level operators are eq neq gt gte lt lte in not_in");
    let count_list = Some("count operators are eq neq gt gte lt lte");
    assert_errors(&[
        (
            r#"{"level":"eng","op":"equals","value":"Hot"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"equals\"",
            Some("did you mean \"eq\"?"),
        ),
        (
            r#"{"level":"eng","op":">=","value":"Warm"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \">=\"",
            Some("did you mean \"gte\"?"),
        ),
        (
            r#"{"level":"eng","op":"at_most","value":"Warm"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"at_most\"",
            Some("did you mean \"lte\"?"),
        ),
        (
            r#"{"level":"eng","op":"nin","value":["Cold"]}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"nin\"",
            Some("did you mean \"not_in\"?"),
        ),
        (
            r#"{"level":"eng","op":"NOT_IN","value":["Cold"]}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"NOT_IN\"",
            Some("did you mean \"not_in\"?"),
        ),
        // a synonym of an operator levels do not have: the list
        (
            r#"{"level":"eng","op":"like","value":"Hot"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"like\"",
            level_list,
        ),
        (
            r#"{"level":"eng","op":"between","value":"Warm"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.op: unknown level operator \"between\"",
            level_list,
        ),
        (
            r#"{"event":{"count":{"op":"==","value":0}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.count.op: unknown count operator \"==\"",
            Some("did you mean \"eq\"?"),
        ),
        (
            r#"{"event":{"count":{"op":"at_least","value":3}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.count.op: unknown count operator \"at_least\"",
            Some("did you mean \"gte\"?"),
        ),
        (
            r#"{"leads":{"count":{"op":"less_than","value":3}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.leads.count.op: unknown count operator \"less_than\"",
            Some("did you mean \"lt\"?"),
        ),
        (
            r#"{"event":{"sum":{"field":"amount","op":"<>","value":3}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.sum.op: unknown count operator \"<>\"",
            Some("did you mean \"neq\"?"),
        ),
        (
            r#"{"event":{"count":{"op":"in","value":3}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.count.op: unknown count operator \"in\"",
            count_list,
        ),
        (
            r#"{"event":{"count":{"op":"about","value":1}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.count.op: unknown count operator \"about\"",
            count_list,
        ),
    ]);
}

#[test]
fn rule_key_synonyms_suggest_the_key() {
    let unknown = |k: &str, hint: &str| {
        let doc = serde_json::json!({ k: [{"field": "a", "op": "is_set"}] });
        let e = Rule::parse(&doc).expect_err(k);
        assert_eq!(
            (e.code, e.message.as_str(), e.hint.as_deref()),
            (SqlState::InvalidParameterValue, format!("invalid rule at $: unknown key \"{k}\"").as_str(), Some(hint)),
            "{k}"
        );
    };
    for k in ["and", "AND", "And", "&&", "conditions", "rules", "all_of", "every", "ALL"] {
        unknown(k, "did you mean \"all\"?");
    }
    for k in ["or", "OR", "||", "any_of", "some", "Any"] {
        unknown(k, "did you mean \"any\"?");
    }
    for k in ["NOT", "!"] {
        unknown(k, "did you mean \"not\"?");
    }
    unknown("none", "for none of several rules write {\"not\":{\"any\":[…]}}, not {\"none\":[…]}");
    unknown("NONE_OF", "for none of several rules write {\"not\":{\"any\":[…]}}, not {\"NONE_OF\":[…]}");
    unknown("column", "did you mean \"field\"?");
    // typos still go by edit distance
    unknown("al", "did you mean \"all\"?");
    unknown("anyy", "did you mean \"any\"?");
    assert_errors(&[
        (
            r#"{"field":"a","operator":"eq","value":1}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.operator: unknown key \"operator\"",
            Some("did you mean \"op\"?"),
        ),
        (
            r#"{"field":"d","op":"in_period","value":"today","timezone":"UTC"}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.timezone: unknown key \"timezone\"",
            Some("did you mean \"tz\"?"),
        ),
        (
            r#"{"event":{"type":"x","filter":{"field":"a","op":"is_set"}}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.filter: unknown key \"filter\"",
            Some("did you mean \"where\"?"),
        ),
        (
            r#"{"event":{"type":"x","Within":"7 days"}}"#,
            SqlState::InvalidParameterValue,
            "invalid rule at $.event.Within: unknown key \"Within\"",
            Some("did you mean \"within\"?"),
        ),
    ]);
}

#[test]
fn values_of_the_wrong_shape_hint_the_shape() {
    let duration = Some("write a duration such as \"30 days\" (a PostgreSQL interval as a string)");
    let bounds = Some("write two bounds such as [10, 50] or [\"2026-01-01\", \"2026-02-01\"]");
    let list = Some("write a JSON array such as [\"US\", \"CA\"]");
    let iso = Some("write \"2024-01-31\" or \"2024-01-31T12:00:00Z\"");
    let p = SqlState::InvalidParameterValue;
    assert_errors(&[
        (
            r#"{"field":"d","op":"within_last","value":30}"#,
            p,
            "invalid rule at $.value: expected an interval such as \"30 days\", found number",
            duration,
        ),
        (
            r#"{"field":"d","op":"not_within_last","value":["30 days"]}"#,
            p,
            "invalid rule at $.value: expected an interval such as \"30 days\", found array",
            duration,
        ),
        (
            r#"{"field":"d","op":"in_next","value":7}"#,
            p,
            "invalid rule at $.value: expected an interval such as \"30 days\", found number",
            duration,
        ),
        (
            r#"{"field":"d","op":"between_ago","value":[30,7]}"#,
            p,
            "invalid rule at $.value[0]: expected an interval such as \"30 days\", found number",
            duration,
        ),
        (
            r#"{"event":{"type":"x","within":30}}"#,
            p,
            "invalid rule at $.event.within: expected an interval such as \"30 days\", found number",
            duration,
        ),
        (
            r#"{"sequence":{"steps":[{},{}],"max_gap":1}}"#,
            p,
            "invalid rule at $.sequence.max_gap: expected an interval such as \"30 days\", found number",
            duration,
        ),
        (
            r#"{"field":"n","op":"between","value":10}"#,
            p,
            "invalid rule at $.value: \"between\" takes [low, high], found number",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between","value":"10-50"}"#,
            p,
            "invalid rule at $.value: \"between\" takes [low, high], found string",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between","value":[10]}"#,
            p,
            "invalid rule at $.value: \"between\" takes [low, high], found an array of 1 element(s)",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between","value":[10,20,30]}"#,
            p,
            "invalid rule at $.value: \"between\" takes [low, high], found an array of 3 element(s)",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between","value":[[10],[20]]}"#,
            p,
            "invalid rule at $.value: \"between\" takes [low, high], found an array of 2 element(s)",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between","value":[10,"20"]}"#,
            p,
            "invalid rule at $.value: both bounds of \"between\" must have the same type",
            bounds,
        ),
        (
            r#"{"field":"n","op":"between"}"#,
            p,
            "invalid rule at $: operator \"between\" needs a \"value\" ([low, high])",
            bounds,
        ),
        (
            r#"{"field":"country","op":"in","value":"US"}"#,
            p,
            "invalid rule at $.value: \"in\" takes an array of values, found string",
            list,
        ),
        (
            r#"{"field":"country","op":"not_in","value":{"a":1}}"#,
            p,
            "invalid rule at $.value: \"not_in\" takes an array of values, found object",
            list,
        ),
        (
            r#"{"level":"eng","op":"in","value":"Hot"}"#,
            p,
            "invalid rule at $.value: expected an array of tier names, found string",
            Some("write a JSON array such as [\"Warm\", \"Hot\"]"),
        ),
        (
            r#"{"level":"eng","op":"eq","value":["Hot","Warm"]}"#,
            p,
            "invalid rule at $.value: expected a tier name, found array",
            Some("\"eq\" takes one tier such as \"Hot\"; for several tiers use \"in\" or \"not_in\""),
        ),
        (
            r#"{"level":"eng","op":"gte","value":2}"#,
            p,
            "invalid rule at $.value: expected a tier name, found number",
            Some("write a tier name as a string, such as \"Hot\""),
        ),
        (
            r#"{"field":"d","op":"before","value":20240131}"#,
            p,
            "invalid rule at $.value: expected an ISO date or timestamp such as \"2024-01-31\", found number",
            iso,
        ),
        (
            r#"{"field":"d","op":"after","value":"31/01/2024"}"#,
            SqlState::InvalidDatetimeFormat,
            "invalid rule at $.value: \"31/01/2024\" is not an ISO date or timestamp",
            iso,
        ),
        (
            r#"{"field":"zip","op":"starts_with","value":750}"#,
            p,
            "invalid rule at $.value: \"starts_with\" takes a string, found number",
            Some("write the value as a JSON string: \"750\""),
        ),
        (
            r#"{"field":"email","op":"contains","value":true}"#,
            p,
            "invalid rule at $.value: \"contains\" takes a string, found boolean",
            Some("write the value as a JSON string: \"true\""),
        ),
        (
            r#"{"field":"email","op":"ends_with","value":[".com"]}"#,
            p,
            "invalid rule at $.value: \"ends_with\" takes a string, found array",
            Some("write a string such as \"acme\""),
        ),
        (
            r#"{"field":"code","op":"matches","value":["^A"]}"#,
            p,
            "invalid rule at $.value: \"matches\" takes a string, found array",
            Some("write a POSIX regular expression as a string, such as \"^[A-Z]{2}$\""),
        ),
        (
            r#"{"field":"score","op":"gt","value":[10,50]}"#,
            p,
            "invalid rule at $.value: expected a string, number or boolean, found array",
            Some("\"gt\" compares with one value such as 10; for a range use \"between\" with [low, high]"),
        ),
        (
            r#"{"field":"score","op":"lte","value":{"v":1}}"#,
            p,
            "invalid rule at $.value: expected a string, number or boolean, found object",
            Some("\"lte\" compares with one value such as 10 or \"2026-01-01\""),
        ),
        (
            r#"{"field":"email","op":"is_set","value":true}"#,
            p,
            "invalid rule at $.value: operator \"is_set\" takes no value",
            Some("remove \"value\": write {\"field\":…,\"op\":\"is_set\"}"),
        ),
    ]);
}

#[test]
fn reversed_between_bounds_are_rejected() {
    let p = SqlState::InvalidParameterValue;
    assert_errors(&[
        (
            r#"{"field":"score","op":"between","value":[50,10]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (50 > 10)",
            Some("write the lower bound first: [10, 50]"),
        ),
        (
            r#"{"all":[{"field":"a","op":"is_set"},{"not":{"field":"ratio","op":"between","value":[0.5,-1.25]}}]}"#,
            p,
            "invalid rule at $.all[1].not.value: \"between\" bounds are reversed (0.5 > -1.25)",
            Some("write the lower bound first: [-1.25, 0.5]"),
        ),
        (
            r#"{"field":"n","op":"between","value":[9223372036854775807,-9223372036854775808]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (9223372036854775807 > -9223372036854775808)",
            Some("write the lower bound first: [-9223372036854775808, 9223372036854775807]"),
        ),
        (
            r#"{"field":"n","op":"between","value":[18446744073709551615,1.5]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (18446744073709551615 > 1.5)",
            Some("write the lower bound first: [1.5, 18446744073709551615]"),
        ),
        (
            r#"{"field":"signed_up","op":"between","value":["2026-02-01","2026-01-01"]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (\"2026-02-01\" > \"2026-01-01\")",
            Some("write the lower bound first: [\"2026-01-01\", \"2026-02-01\"]"),
        ),
        (
            r#"{"event":{"where":{"field":"at","op":"between","value":["2026-01-01T12:00:00Z","2026-01-01 09:30Z"]}}}"#,
            p,
            "invalid rule at $.event.where.value: \"between\" bounds are reversed (\"2026-01-01T12:00:00Z\" > \"2026-01-01 09:30Z\")",
            Some("write the lower bound first: [\"2026-01-01 09:30Z\", \"2026-01-01T12:00:00Z\"]"),
        ),
        (
            r#"{"field":"at","op":"between","value":["2026-01-02","2026-01-01T23:59:59.999999"]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (\"2026-01-02\" > \"2026-01-01T23:59:59.999999\")",
            Some("write the lower bound first: [\"2026-01-01T23:59:59.999999\", \"2026-01-02\"]"),
        ),
        // +02 and +02:00 are one offset
        (
            r#"{"field":"at","op":"between","value":["2026-01-01T12:00+02","2026-01-01T11:00+02:00"]}"#,
            p,
            "invalid rule at $.value: \"between\" bounds are reversed (\"2026-01-01T12:00+02\" > \"2026-01-01T11:00+02:00\")",
            Some("write the lower bound first: [\"2026-01-01T11:00+02:00\", \"2026-01-01T12:00+02\"]"),
        ),
    ]);
    for ok in [
        // equal bounds are allowed
        r#"{"field":"score","op":"between","value":[10,10]}"#,
        r#"{"field":"score","op":"between","value":[1,1.0]}"#,
        r#"{"field":"d","op":"between","value":["2026-01-01","2026-01-01"]}"#,
        r#"{"field":"d","op":"between","value":["2026-01-01T12:00:00.000","2026-01-01T12:00"]}"#,
        r#"{"field":"d","op":"between","value":["2026-01-01","2026-01-01T00:00:00"]}"#,
        r#"{"field":"d","op":"between","value":["2026-01-01T00:00Z","2026-01-01T00:00+00:00"]}"#,
        // in order
        r#"{"field":"score","op":"between","value":[-1e+39,1e+39]}"#,
        r#"{"field":"d","op":"between","value":["2026-01-01T12:00:00.5","2026-01-01T12:00:00.50001"]}"#,
        // text compares by collation; booleans are left alone
        r#"{"field":"country","op":"between","value":["Z","A"]}"#,
        r#"{"field":"vip","op":"between","value":[true,false]}"#,
        // different offsets: the first is 10:00 UTC, before the second, though it reads greater
        r#"{"field":"d","op":"between","value":["2026-01-01T12:00+02:00","2026-01-01T11:00Z"]}"#,
        // an offset against none depends on the time zone
        r#"{"field":"d","op":"between","value":["2026-01-02T00:00Z","2026-01-01"]}"#,
        // an ISO date against other text
        r#"{"field":"d","op":"between","value":["2026-02-01","2026-01"]}"#,
    ] {
        Rule::parse_text(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}
