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
