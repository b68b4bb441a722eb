use super::*;
use crate::rule::Rule;
use serde_json::json;

fn cat() -> Catalog {
    let col = |n: &str, t: &str| json!({"name": n, "type": t});
    serde_json::from_value(json!({
        "bindings": [
            {"kind": "lead", "schema": "public", "table": "leads", "key": "id", "account_key": "account_id",
             "columns": [col("id", "bigint"), col("account_id", "bigint"), col("country", "text"),
                         col("score", "integer"), col("vip", "boolean"), col("attributes", "jsonb"),
                         col("last_seen_at", "timestamp with time zone")]},
            {"kind": "account", "schema": "public", "table": "accounts", "key": "id",
             "columns": [col("id", "bigint"), col("industry", "text"), col("employees", "integer")]},
            {"kind": "event", "schema": "app", "table": "events", "lead_key": "lead_id", "type_column": "type",
             "time_column": "occurred_at", "metadata_column": "metadata",
             "columns": [col("lead_id", "bigint"), col("type", "text"),
                         col("occurred_at", "timestamp with time zone"), col("metadata", "jsonb")]}
        ],
        "fields": [{"kind": "lead", "name": "plan", "path": "attributes.plan", "type": "text"}],
        "levels": [{"name": "engagement", "field": "score",
                    "tiers": [{"name": "Cold", "min": 0}, {"name": "Warm", "min": 25},
                              {"name": "Hot", "min": 50}, {"name": "On Fire", "min": 75}]}],
        "segments": [
            {"id": 7, "name": "us", "kind": "lead", "rule": {"field": "country", "op": "eq", "value": "US"}},
            {"id": 8, "name": "big", "kind": "account", "rule": {"field": "employees", "op": "gte", "value": 100}}
        ]
    }))
    .unwrap()
}

fn rule(s: &str) -> Rule {
    Rule::parse_text(s).unwrap()
}

fn plan_of(s: &str, kind: Kind) -> Vec<WhyNode> {
    plan(&rule(s), kind, &cat()).unwrap()
}

const MAIN: &str = r#"{"all":[{"field":"country","op":"eq","value":"US"},{"field":"score","op":"gte","value":50},
    {"event":{"type":"page_view","within":"30 days","count":{"op":"gte","value":3}}}]}"#;

#[test]
fn paths_and_labels_in_document_order() {
    let p = plan_of(MAIN, Kind::Lead);
    let got: Vec<(&str, String)> = p.iter().map(|n| (n.path.as_str(), format!("{}{}", "  ".repeat(n.depth), n.label))).collect();
    assert_eq!(
        got,
        vec![
            ("$", "all".to_string()),
            ("$.all[0]", "  country eq \"US\"".to_string()),
            ("$.all[1]", "  score gte 50".to_string()),
            ("$.all[2]", "  event page_view ×≥3 within 30 days".to_string()),
        ]
    );
    assert_eq!(p[0].children, vec![1, 2, 3]);
    // nested groups, not, segment references (not expanded), levels, leads
    let p = plan_of(
        r#"{"any":[{"not":{"all":[{"field":"vip","op":"is_set"},{"segment":"us"}]}},{"level":"engagement","op":"in","value":["Hot","On Fire"]}]}"#,
        Kind::Lead,
    );
    let got: Vec<(&str, usize, &str)> = p.iter().map(|n| (n.path.as_str(), n.depth, n.label.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("$", 0, "any"),
            ("$.any[0]", 1, "not"),
            ("$.any[0].not", 2, "all"),
            ("$.any[0].not.all[0]", 3, "vip is_set"),
            ("$.any[0].not.all[1]", 3, "segment \"us\""),
            ("$.any[1]", 1, "level engagement in [\"Hot\",\"On Fire\"]"),
        ]
    );
    assert_eq!(p[0].children, vec![1, 5]);
    assert_eq!(p[2].children, vec![3, 4]);
    let p = plan_of(
        r#"{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"eq","value":0}}}"#,
        Kind::Account,
    );
    let got: Vec<(&str, usize, &str)> = p.iter().map(|n| (n.path.as_str(), n.depth, n.label.as_str())).collect();
    assert_eq!(got, vec![("$", 0, "leads ×=0"), ("$.leads.where", 1, "score gt 50")]);
    assert_eq!(label(&rule(r#"{"event":{}}"#)), "event (any type)");
    assert_eq!(label(&rule(r#"{"event":{"type":["a","b"]}}"#)), r#"event ["a","b"]"#);
}

/// The property: the root's truth is what `kenbun.compile` returns, and every node in the member's
/// own row is that node compiled on its own.
#[test]
fn root_truth_is_the_public_sql() {
    let c = cat();
    let cases = [
        (MAIN, Kind::Lead),
        (r#"{"field":"country","op":"neq","value":"US"}"#, Kind::Lead),
        (r#"{"all":[]}"#, Kind::Lead),
        (r#"{"any":[]}"#, Kind::Lead),
        (r#"{"not":{"field":"plan","op":"eq","value":"pro"}}"#, Kind::Lead),
        (r#"{"account":{"all":[{"field":"industry","op":"eq","value":"SaaS"},{"segment":"big"}]}}"#, Kind::Lead),
        (r#"{"all":[{"segment":"us"},{"level":"engagement","op":"neq","value":"Cold"}]}"#, Kind::Lead),
        (r#"{"leads":{"where":{"event":{"type":"demo"}},"count":{"op":"gte","value":2}}}"#, Kind::Account),
        (r#"{"any":[{"field":"attributes.seats","op":"gt","value":3},{"field":"last_seen_at","op":"within_last","value":"7 days"}]}"#, Kind::Lead),
    ];
    for (s, k) in cases {
        let r = rule(s);
        let p = plan(&r, k, &c).unwrap();
        assert_eq!(p[0].truth, compile(&r, k, &c).unwrap().public_sql(), "{s}");
        // every node, the nodes of event and leads "where" included (segments are not expanded)
        let mut n = 0;
        r.walk(&mut |_| n += 1);
        assert_eq!(p.len(), n, "{s}");
    }
    let p = plan_of(MAIN, Kind::Lead);
    let Rule::All(children) = rule(MAIN) else { panic!() };
    for (i, ch) in children.iter().enumerate() {
        assert_eq!(p[i + 1].truth, compile(ch, Kind::Lead, &c).unwrap().public_sql());
    }
}

#[test]
fn values_of_fields_and_levels() {
    let p = plan_of(
        r#"{"all":[{"field":"country","op":"eq","value":"US"},{"field":"attributes.seats","op":"gt","value":3},{"field":"plan","op":"eq","value":"pro"},{"level":"engagement","op":"eq","value":"Hot"}]}"#,
        Kind::Lead,
    );
    assert_eq!(p[0].value, None);
    assert_eq!(p[1].value.as_deref(), Some(r#"COALESCE(pg_catalog.to_jsonb(l."country")::text, 'null')"#));
    assert_eq!(p[2].value.as_deref(), Some(r#"COALESCE(((l."attributes" -> 'seats'))::text, 'null')"#));
    assert_eq!(p[3].value.as_deref(), Some(r#"COALESCE(pg_catalog.to_jsonb((l."attributes" ->> 'plan'))::text, 'null')"#));
    let lv = p[4].value.as_deref().unwrap();
    assert!(lv.starts_with(r#"(COALESCE(pg_catalog.to_jsonb(l."score")::text, 'null') || CASE WHEN l."score" >= '75'::numeric THEN ' (tier "On Fire")'"#), "{lv}");
    assert!(lv.ends_with(r#"WHEN l."score" >= '0'::numeric THEN ' (tier "Cold")' ELSE ' (no tier)' END)"#), "{lv}");
}

#[test]
fn account_children_read_the_account() {
    let s = r#"{"account":{"all":[{"field":"industry","op":"eq","value":"SaaS"},{"not":{"segment":"big"}}]}}"#;
    let p = plan_of(s, Kind::Lead);
    let got: Vec<(&str, &str)> = p.iter().map(|n| (n.path.as_str(), n.label.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("$", "account"),
            ("$.account", "all"),
            ("$.account.all[0]", "industry eq \"SaaS\""),
            ("$.account.all[1]", "not"),
            ("$.account.all[1].not", "segment \"big\""),
        ]
    );
    let v = p[0].value.as_deref().unwrap();
    assert!(v.contains(r#"WHEN l."account_id" IS NULL THEN 'null (no account)'"#), "{v}");
    assert!(v.contains(r#"(no such account)"#), "{v}");
    assert_eq!(
        p[2].truth,
        r#"EXISTS (SELECT 1 FROM "public"."accounts" AS a_99999 WHERE a_99999."id" = l."account_id" AND ((a_99999."industry" = 'SaaS'::text)))"#
    );
    assert_eq!(
        p[2].value.as_deref(),
        Some(r#"COALESCE((SELECT COALESCE(pg_catalog.to_jsonb(a_99999."industry")::text, 'null') FROM "public"."accounts" AS a_99999 WHERE a_99999."id" = l."account_id" LIMIT 1), '(no account)')"#)
    );
    // a negated condition on a missing account is false too: the account's conditions hold of no row
    assert!(p[3].truth.starts_with(r#"EXISTS (SELECT 1 FROM "public"."accounts" AS a_99999 WHERE a_99999."id" = l."account_id" AND ((("#), "{}", p[3].truth);
    let seg = p[4].value.as_deref().unwrap();
    assert!(seg.contains(r#"FROM kenbun.account_members AS m WHERE m.segment_id = 8 AND m."account_id" = a_99999."id""#), "{seg}");
    assert!(seg.contains(r#"'member of "big"'"#), "{seg}");
}

#[test]
fn event_and_leads_values_are_counts() {
    let p = plan_of(MAIN, Kind::Lead);
    let v = p[3].value.as_deref().unwrap();
    assert_eq!(
        v,
        r#"(SELECT CASE WHEN pg_catalog.count(*) = 1 THEN '1 event' ELSE pg_catalog.count(*)::text || ' events' END FROM "app"."events" AS e_200001 WHERE e_200001."lead_id" = l."id" AND e_200001."type" IN ('page_view'::text) AND e_200001."occurred_at" >= (pg_catalog.now() - '30 days'::interval))"#
    );
    // an exists condition counts the same rows
    let p = plan_of(r#"{"not":{"event":{"type":"demo"}}}"#, Kind::Lead);
    assert!(p[1].value.as_deref().unwrap().contains(r#"e_200001."type" IN ('demo'::text)"#));
    assert_eq!(p[0].truth, r#"COALESCE((EXISTS (SELECT 1 FROM "app"."events" AS e_1 WHERE e_1."lead_id" = l."id" AND e_1."type" IN ('demo'::text)) IS NOT TRUE), false)"#);
    let p = plan_of(r#"{"leads":{"where":{"field":"score","op":"gt","value":50}}}"#, Kind::Account);
    assert_eq!(
        p[0].value.as_deref(),
        Some(r#"(SELECT CASE WHEN pg_catalog.count(*) = 1 THEN '1 lead' ELSE pg_catalog.count(*)::text || ' leads' END FROM "public"."leads" AS l_100001 WHERE l_100001."account_id" = a."id" AND (l_100001."score" > '50'::bigint))"#)
    );
    assert_eq!(probe_body("EXISTS (SELECT 1)", "t", "x"), None);
    assert_eq!(probe_body(&format!("((SELECT pg_catalog.sum(x) FROM t AS x WHERE c) >= {})", i64::MAX), "t", "x"), None);
}

#[test]
fn segment_reference_is_one_row_with_membership() {
    let p = plan_of(r#"{"segment":"us"}"#, Kind::Lead);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].truth, r#"COALESCE((l."country" = 'US'::text), false)"#);
    assert_eq!(
        p[0].value.as_deref(),
        Some(r#"(CASE WHEN EXISTS (SELECT 1 FROM kenbun.lead_members AS m WHERE m.segment_id = 7 AND m."lead_id" = l."id") THEN 'member of "us"' ELSE 'not a member of "us"' END)"#)
    );
}

#[test]
fn errors_are_the_compilers() {
    let c = cat();
    let e = plan(&rule(r#"{"all":[{"field":"countyr","op":"eq","value":"US"}]}"#), Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::UndefinedColumn);
    assert!(e.hint.unwrap().contains("country"));
    let e = plan(&rule(r#"{"segment":"uss"}"#), Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::UndefinedObject);
    let e = plan(&rule(r#"{"segment":"big"}"#), Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::InvalidParameterValue);
    let e = plan(&rule(r#"{"account":{"field":"industry","op":"eq","value":"x"}}"#), Kind::Account, &c).unwrap_err();
    assert_eq!(e.code, SqlState::InvalidParameterValue);
}

#[test]
fn rows_indent_and_count_groups() {
    let p = plan_of(MAIN, Kind::Lead);
    let r = rows(
        &p,
        &[Some(false), Some(false), Some(true), None],
        &[None, Some("\"USA\"".into()), Some("72".into()), Some("1 event".into())],
    );
    assert_eq!(
        r,
        vec![
            WhyRow { path: "$".into(), condition: "all".into(), result: false, value: Some("1 of 3".into()) },
            WhyRow { path: "$.all[0]".into(), condition: "  country eq \"US\"".into(), result: false, value: Some("\"USA\"".into()) },
            WhyRow { path: "$.all[1]".into(), condition: "  score gte 50".into(), result: true, value: Some("72".into()) },
            WhyRow {
                path: "$.all[2]".into(),
                condition: "  event page_view ×≥3 within 30 days".into(),
                result: false,
                value: Some("1 event".into())
            },
        ]
    );
}

#[test]
fn member_ids_and_the_query() {
    let c = cat();
    assert!(check_member_id("42", Kind::Lead, &c).is_ok());
    assert!(check_member_id(" 42 ", Kind::Lead, &c).is_ok());
    let e = check_member_id("abc", Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::InvalidTextRepresentation);
    assert_eq!(e.message, "member_id \"abc\" is not a valid lead key: column \"id\" of public.leads is bigint");
    assert!(check_member_id("99999999999999999999", Kind::Account, &c).is_err());
    let e = no_member("9", Kind::Lead, &c);
    assert_eq!(e.code, SqlState::InvalidParameterValue);
    assert_eq!(e.message, "lead \"9\" does not exist");
    assert_eq!(e.hint.as_deref(), Some("check the key: member_id is matched against column \"id\" of public.leads"));

    let p = plan_of(r#"{"all":[{"field":"country","op":"eq","value":"US"},{"not":{"field":"vip","op":"eq","value":true}}]}"#, Kind::Lead);
    let q = member_query(&p, Kind::Lead, &c, &["x".into()]).unwrap();
    assert_eq!(
        q,
        r#"SELECT ARRAY[COALESCE(((l."country" = 'US'::text) AND ((l."vip" = true) IS NOT TRUE)), false), COALESCE((l."country" = 'US'::text), false), COALESCE(((l."vip" = true) IS NOT TRUE), false), COALESCE((l."vip" = true), false)]::boolean[], ARRAY[NULL::text, (COALESCE(pg_catalog.to_jsonb(l."country")::text, 'null'))::text, NULL::text, (COALESCE(pg_catalog.to_jsonb(l."vip")::text, 'null'))::text]::text[], x FROM "public"."leads" AS l WHERE l."id" = $1::bigint"#
    );
    let q = member_query(&[], Kind::Account, &c, &[]).unwrap();
    assert_eq!(q, r#"SELECT ARRAY[]::boolean[], ARRAY[]::text[] FROM "public"."accounts" AS a WHERE a."id" = $1::bigint"#);
    let mut unbound = c.clone();
    unbound.bindings.retain(|b| b.kind != "account");
    assert_eq!(member_query(&[], Kind::Account, &unbound, &[]).unwrap_err().code, SqlState::ObjectNotInPrerequisiteState);
}

#[test]
fn the_segment_row() {
    let c = cat();
    let mut seg = SavedSegment {
        id: 7,
        name: "us".into(),
        kind: Kind::Lead,
        active: true,
        status: "ready".into(),
        static_list: false,
        has_overrides: false,
    };
    let m = membership_sql(&seg, &c).unwrap();
    assert_eq!(m[0], r#"EXISTS (SELECT 1 FROM kenbun.lead_members AS m WHERE m.segment_id = 7 AND m."lead_id" = l."id")"#);
    assert_eq!(m[1], "NULL::boolean");
    seg.has_overrides = true;
    let m = membership_sql(&seg, &c).unwrap();
    assert!(m[1].contains(r#"FROM kenbun.member_overrides AS o WHERE o.segment_id = 7 AND o.member_id = (l."id")::text"#));
    let why = |seg: &SavedSegment, inm, over, rule, td| segment_row(seg, inm, over, rule, td).value.unwrap();
    assert_eq!(why(&seg, true, None, Some(true), false), "rule");
    assert_eq!(why(&seg, false, None, Some(false), false), "rule");
    assert_eq!(why(&seg, true, Some(true), Some(false), false), "override: included");
    assert_eq!(why(&seg, false, Some(false), Some(true), false), "override: excluded");
    assert!(why(&seg, false, None, Some(true), false).contains("kenbun.segment_repair('us')"));
    assert!(why(&seg, false, None, Some(true), true).contains("refresh_due"));
    seg.status = "building".into();
    assert_eq!(why(&seg, false, None, Some(true), false), "building: membership may lag the rule");
    seg.status = "ready".into();
    seg.active = false;
    assert_eq!(why(&seg, false, None, Some(true), false), "inactive: no members");
    seg.active = true;
    seg.static_list = true;
    let r = segment_row(&seg, true, None, None, false);
    assert_eq!((r.path.as_str(), r.condition.as_str(), r.result, r.value.as_deref()), ("segment", "\"us\"", true, Some("static list")));
}


#[test]
fn where_nodes_count_the_rows_they_hold_for() {
    let s = r#"{"event":{"type":"page_view","within":"30 days","where":{"any":[{"field":"metadata.url","op":"eq","value":"/pricing"},{"not":{"field":"metadata.url","op":"is_set"}}]},"count":{"op":"gte","value":3}}}"#;
    let p = plan_of(s, Kind::Lead);
    let got: Vec<(&str, usize, &str)> = p.iter().map(|n| (n.path.as_str(), n.depth, n.label.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("$", 0, "event page_view ×≥3 within 30 days"),
            ("$.event.where", 1, "any"),
            ("$.event.where.any[0]", 2, "metadata.url eq \"/pricing\""),
            ("$.event.where.any[1]", 2, "not"),
            ("$.event.where.any[1].not", 3, "metadata.url is_set"),
        ]
    );
    let base = r#""app"."events" AS e_100001 WHERE e_100001."lead_id" = l."id" AND e_100001."type" IN ('page_view'::text) AND e_100001."occurred_at" >= (pg_catalog.now() - '30 days'::interval)"#;
    assert_eq!(
        p[2].truth,
        format!(r#"EXISTS (SELECT 1 FROM {base} AND (((e_100001."metadata" ->> 'url') = '/pricing'::text)))"#)
    );
    assert_eq!(
        p[2].value.as_deref().unwrap(),
        format!(r#"(SELECT CASE WHEN pg_catalog.count(*) = 1 THEN '1 event' ELSE pg_catalog.count(*)::text || ' events' END FROM {base} AND (((e_100001."metadata" ->> 'url') = '/pricing'::text)))"#)
    );
    // a group in counted rows shows its count, not "k of n"
    let r = rows(&p, &[Some(false), Some(true), Some(true), Some(false), Some(true)], &[None, Some("2 events".into()), None, None, None]);
    assert_eq!(r[1].value.as_deref(), Some("2 events"));
    // account rule: leads whose events…, and a lead rule: the account's leads
    let p = plan_of(r#"{"leads":{"where":{"all":[{"event":{"type":"demo"}},{"field":"score","op":"gt","value":50}]}}}"#, Kind::Account);
    let got: Vec<&str> = p.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(got, vec!["$", "$.leads.where", "$.leads.where.all[0]", "$.leads.where.all[1]"]);
    assert!(p[2].truth.starts_with(r#"EXISTS (SELECT 1 FROM "public"."leads" AS l_100001 WHERE l_100001."account_id" = a."id" AND (EXISTS (SELECT 1 FROM "app"."events" AS e_300001 WHERE e_300001."lead_id" = l_100001."id""#), "{}", p[2].truth);
    assert!(p[2].value.as_deref().unwrap().contains("' leads'"));
    let p = plan_of(r#"{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}"#, Kind::Lead);
    let got: Vec<&str> = p.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(got, vec!["$", "$.account", "$.account.leads.where"]);
    // the leads of the lead's account (l_200001 over a_99999 over l)
    assert_eq!(
        p[2].truth,
        r#"EXISTS (SELECT 1 FROM "public"."accounts" AS a_99999 WHERE a_99999."id" = l."account_id" AND (EXISTS (SELECT 1 FROM "public"."leads" AS l_200001 WHERE l_200001."account_id" = a_99999."id" AND ((l_200001."score" > '50'::bigint)))))"#
    );
    assert_eq!(
        p[2].value.as_deref().unwrap(),
        r#"COALESCE((SELECT (SELECT CASE WHEN pg_catalog.count(*) = 1 THEN '1 lead' ELSE pg_catalog.count(*)::text || ' leads' END FROM "public"."leads" AS l_200001 WHERE l_200001."account_id" = a_99999."id" AND ((l_200001."score" > '50'::bigint))) FROM "public"."accounts" AS a_99999 WHERE a_99999."id" = l."account_id" LIMIT 1), '(no account)')"#
    );
    assert!(p[1].value.as_deref().unwrap().contains("' leads'"));
}
