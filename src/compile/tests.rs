use super::*;
use crate::error::SqlState;
use crate::rule::Rule;
use catalog::{Column, FieldMap, Level, SegmentDef, Tier};

fn col(name: &str, t: &str) -> Column {
    Column {
        name: name.into(),
        type_name: t.into(),
        not_null: false,
        as_text: false,
    }
}

fn cat() -> Catalog {
    Catalog {
        bindings: vec![
            Binding {
                kind: "lead".into(),
                schema: "public".into(),
                table: "leads".into(),
                key: Some("id".into()),
                account_key: Some("account_id".into()),
                lead_key: None,
                type_column: None,
                time_column: None,
                metadata_column: None,
                columns: vec![
                    col("id", "bigint"),
                    col("account_id", "bigint"),
                    col("country", "text"),
                    col("score", "integer"),
                    col("vip", "boolean"),
                    col("last_seen_at", "timestamp with time zone"),
                    col("attributes", "jsonb"),
                    col("we\"ird", "text"),
                ],
            },
            Binding {
                kind: "account".into(),
                schema: "public".into(),
                table: "accounts".into(),
                key: Some("id".into()),
                account_key: None,
                lead_key: None,
                type_column: None,
                time_column: None,
                metadata_column: None,
                columns: vec![
                    col("id", "bigint"),
                    col("industry", "text"),
                    col("employees", "integer"),
                ],
            },
            Binding {
                kind: "event".into(),
                schema: "app".into(),
                table: "events".into(),
                key: None,
                account_key: None,
                lead_key: Some("lead_id".into()),
                type_column: Some("type".into()),
                time_column: Some("occurred_at".into()),
                metadata_column: Some("metadata".into()),
                columns: vec![
                    col("lead_id", "bigint"),
                    col("type", "text"),
                    col("occurred_at", "timestamp with time zone"),
                    col("metadata", "jsonb"),
                ],
            },
        ],
        timezone: None,
        fields: vec![FieldMap {
            kind: "lead".into(),
            name: "plan".into(),
            path: "attributes.plan".into(),
            type_name: "text".into(),
            builtin: true,
        }],
        levels: vec![Level {
            name: "engagement".into(),
            field: "score".into(),
            tiers: ["Cold", "Warm", "Hot", "On Fire"]
                .iter()
                .zip([0, 25, 50, 75])
                .map(|(n, m)| Tier {
                    name: n.to_string(),
                    min: m.into(),
                })
                .collect(),
        }],
        segments: vec![
            SegmentDef {
                id: 1,
                name: "us".into(),
                kind: "lead".into(),
                rule: serde_json::json!({"field":"country","op":"eq","value":"US"}),
                ..Default::default()
            },
            SegmentDef {
                id: 2,
                name: "loop_a".into(),
                kind: "lead".into(),
                rule: serde_json::json!({"segment":"loop_b"}),
                ..Default::default()
            },
            SegmentDef {
                id: 3,
                name: "loop_b".into(),
                kind: "lead".into(),
                rule: serde_json::json!({"segment":"loop_a"}),
                ..Default::default()
            },
        ],
    }
}

fn sql(rule: &str) -> String {
    compile(&Rule::parse_text(rule).unwrap(), Kind::Lead, &cat())
        .unwrap_or_else(|e| panic!("{rule}: {e}"))
        .sql
}

fn err(rule: &str, kind: Kind) -> crate::error::KenbunError {
    compile(&Rule::parse_text(rule).unwrap(), kind, &cat()).expect_err(rule)
}

#[test]
fn field_operators() {
    assert_eq!(
        sql(r#"{"field":"country","op":"eq","value":"US"}"#),
        r#"(l."country" = 'US'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"neq","value":"US"}"#),
        r#"((l."country" = 'US'::text) IS NOT TRUE)"#
    );
    assert_eq!(
        sql(r#"{"field":"score","op":"between","value":[10,20]}"#),
        r#"(l."score" BETWEEN '10'::bigint AND '20'::bigint)"#
    );
    assert_eq!(
        sql(r#"{"field":"score","op":"gt","value":2.5}"#),
        r#"(l."score" > '2.5'::numeric)"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"in","value":["US","CA"]}"#),
        r#"(l."country" IN ('US'::text, 'CA'::text))"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"contains","value":"5%_x"}"#),
        r#"(l."country" ILIKE E'%5\\%\\_x%'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"starts_with","value":"U"}"#),
        r#"(l."country" ILIKE 'U%'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"ends_with","value":"S"}"#),
        r#"(l."country" ILIKE '%S'::text)"#
    );
    assert_eq!(sql(r#"{"field":"vip","op":"eq","value":true}"#), r#"(l."vip" = true)"#);
    assert_eq!(
        sql(r#"{"field":"vip","op":"is_not_set"}"#),
        r#"((l."vip" IS NOT NULL) IS NOT TRUE)"#
    );
    assert_eq!(
        sql(r#"{"field":"last_seen_at","op":"before","value":"2024-01-01"}"#),
        r#"(l."last_seen_at" < '2024-01-01'::timestamp with time zone)"#
    );
    assert_eq!(
        sql(r#"{"field":"last_seen_at","op":"within_last","value":"30 days"}"#),
        r#"(l."last_seen_at" >= (pg_catalog.now() - '30 days'::interval))"#
    );
    assert_eq!(
        sql(r#"{"field":"plan","op":"eq","value":"pro"}"#),
        r#"((l."attributes" ->> 'plan') = 'pro'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"attributes.a.b","op":"eq","value":"x"}"#),
        r#"((l."attributes" -> 'a' ->> 'b') = 'x'::text)"#
    );
    assert!(sql(r#"{"field":"attributes.n","op":"gt","value":3}"#)
        .contains("jsonb_typeof((l.\"attributes\" -> 'n')) = 'number'"));
    assert_eq!(
        sql(r#"{"field":"attributes","op":"contains","value":{"a":1}}"#),
        r#"(l."attributes" @> '{"a":1}'::jsonb)"#
    );
}

#[test]
fn groups_and_not() {
    assert_eq!(sql(r#"{"all":[]}"#), "true");
    assert_eq!(sql(r#"{"any":[]}"#), "false");
    assert_eq!(sql(r#"{"not":{"all":[]}}"#), "false");
    assert_eq!(
        sql(r#"{"any":[{"field":"vip","op":"eq","value":true},{"not":{"field":"score","op":"lt","value":5}}]}"#),
        r#"((l."vip" = true) OR ((l."score" < '5'::bigint) IS NOT TRUE))"#
    );
    let c = compile(
        &Rule::parse_text(r#"{"field":"vip","op":"eq","value":true}"#).unwrap(),
        Kind::Lead,
        &cat(),
    )
    .unwrap();
    assert_eq!(c.public_sql(), r#"COALESCE((l."vip" = true), false)"#);
}

#[test]
fn levels_compile_to_ranges() {
    assert_eq!(
        sql(r#"{"level":"engagement","op":"gte","value":"Warm"}"#),
        r#"(l."score" >= '25'::bigint)"#
    );
    assert_eq!(
        sql(r#"{"level":"engagement","op":"eq","value":"Warm"}"#),
        r#"(l."score" >= '25'::bigint AND l."score" < '50'::bigint)"#
    );
    assert_eq!(
        sql(r#"{"level":"engagement","op":"lt","value":"Warm"}"#),
        r#"(l."score" >= '0'::bigint AND l."score" < '25'::bigint)"#
    );
    assert_eq!(sql(r#"{"level":"engagement","op":"gt","value":"On Fire"}"#), "false");
    assert_eq!(
        sql(r#"{"level":"engagement","op":"in","value":["Cold","Hot"]}"#),
        r#"((l."score" >= '0'::bigint AND l."score" < '25'::bigint) OR (l."score" >= '50'::bigint AND l."score" < '75'::bigint))"#
    );
    let e = err(r#"{"level":"engagement","op":"eq","value":"Tepid"}"#, Kind::Lead);
    assert_eq!(e.code, SqlState::InvalidParameterValue);
    assert!(e.message.contains("no tier \"Tepid\""));
    let e = err(r#"{"level":"engagment","op":"eq","value":"Warm"}"#, Kind::Lead);
    assert_eq!(e.code, SqlState::UndefinedObject);
    assert_eq!(e.hint.as_deref(), Some("did you mean \"engagement\"?"));
}

#[test]
fn account_event_and_leads_conditions() {
    assert_eq!(
        sql(r#"{"account":{"field":"industry","op":"eq","value":"SaaS"}}"#),
        r#"EXISTS (SELECT 1 FROM "public"."accounts" AS a_1 WHERE a_1."id" = l."account_id" AND (a_1."industry" = 'SaaS'::text))"#
    );
    assert_eq!(
        sql(
            r#"{"event":{"type":"page_view","within":"7 days","where":{"field":"metadata.url","op":"contains","value":"/pricing"},"count":{"op":"gte","value":3}}}"#
        ),
        r#"((SELECT pg_catalog.count(*) FROM "app"."events" AS e_1 WHERE e_1."lead_id" = l."id" AND e_1."type" IN ('page_view'::text) AND e_1."occurred_at" >= (pg_catalog.now() - '7 days'::interval) AND ((e_1."metadata" ->> 'url') ILIKE '%/pricing%'::text)) >= 3)"#
    );
    assert!(sql(r#"{"event":{"type":"x","count":{"op":"eq","value":0}}}"#)
        .starts_with("(NOT EXISTS (SELECT 1 FROM \"app\".\"events\""));
    let c = compile(
        &Rule::parse_text(r#"{"leads":{"where":{"event":{"type":"demo"}},"count":{"op":"gte","value":2}}}"#).unwrap(),
        Kind::Account,
        &cat(),
    )
    .unwrap();
    assert_eq!(
        c.sql,
        r#"((SELECT pg_catalog.count(*) FROM "public"."leads" AS l_1 WHERE l_1."account_id" = a."id" AND EXISTS (SELECT 1 FROM "app"."events" AS e_2 WHERE e_2."lead_id" = l_1."id" AND e_2."type" IN ('demo'::text))) >= 2)"#
    );
    assert!(!c.time_dependent);
    assert!(c.reads.contains(&(Kind::Event, "type".into())));
}

#[test]
fn compile_errors() {
    let e = err(r#"{"field":"countyr","op":"eq","value":"US"}"#, Kind::Lead);
    assert_eq!(e.code, SqlState::UndefinedColumn);
    assert!(
        e.message
            .starts_with("invalid rule at $.field: unknown field \"countyr\""),
        "{}",
        e.message
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"country\"?"));
    let e = err(r#"{"all":[{"field":"score","op":"eq","value":"5"}]}"#, Kind::Lead);
    assert_eq!(e.code, SqlState::DatatypeMismatch);
    assert!(e.message.contains("$.all[0].value"), "{}", e.message);
    assert_eq!(
        err(r#"{"field":"score","op":"contains","value":"5"}"#, Kind::Lead).code,
        SqlState::DatatypeMismatch
    );
    assert_eq!(
        err(r#"{"field":"country.x","op":"eq","value":"5"}"#, Kind::Lead).code,
        SqlState::DatatypeMismatch
    );
    assert_eq!(
        err(
            r#"{"field":"attributes.x","op":"before","value":"2024-01-01"}"#,
            Kind::Lead
        )
        .code,
        SqlState::DatatypeMismatch
    );
    assert_eq!(err(r#"{"leads":{}}"#, Kind::Lead).code, SqlState::InvalidParameterValue);
    assert_eq!(
        err(r#"{"event":{}}"#, Kind::Account).code,
        SqlState::InvalidParameterValue
    );
    assert_eq!(
        err(
            r#"{"account":{"account":{}}}"#.replace("{}", r#"{"all":[]}"#).as_str(),
            Kind::Lead
        )
        .code,
        SqlState::InvalidParameterValue
    );
    assert_eq!(err(r#"{"segment":"nope"}"#, Kind::Lead).code, SqlState::UndefinedObject);
    assert_eq!(
        err(r#"{"segment":"us"}"#, Kind::Account).code,
        SqlState::InvalidParameterValue
    );
    let e = err(r#"{"segment":"loop_a"}"#, Kind::Lead);
    assert_eq!(e.code, SqlState::InvalidObjectDefinition);
    assert!(e.message.contains("loop_a -> loop_b -> loop_a"), "{}", e.message);
    let mut c = cat();
    c.bindings.retain(|b| b.kind != "event");
    let e = compile(&Rule::parse_text(r#"{"event":{}}"#).unwrap(), Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::ObjectNotInPrerequisiteState);
}

#[test]
fn segments_are_inlined() {
    assert_eq!(sql(r#"{"segment":"us"}"#), r#"(l."country" = 'US'::text)"#);
}

#[test]
fn hostile_input_stays_inside_literals_and_identifiers() {
    assert_eq!(
        sql(r#"{"field":"country","op":"eq","value":"x'); DROP TABLE leads; --"}"#),
        r#"(l."country" = 'x''); DROP TABLE leads; --'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"country","op":"eq","value":"a\\'b"}"#),
        r#"(l."country" = E'a\\''b'::text)"#
    );
    assert_eq!(
        sql(r#"{"field":"we\"ird","op":"is_set"}"#),
        r#"(l."we""ird" IS NOT NULL)"#
    );
    assert_eq!(
        sql(r#"{"field":"attributes.x'y;--","op":"eq","value":"$$"}"#),
        r#"((l."attributes" ->> 'x''y;--') = '$$'::text)"#
    );
}

mod maintenance {
    use super::*;
    use crate::compile::maintain::*;

    fn plan(id: i64, kind: Kind, rule: &str) -> SegmentPlan {
        let c = compile(&Rule::parse_text(rule).unwrap(), kind, &cat()).unwrap();
        SegmentPlan {
            id,
            kind,
            sql: c.sql,
            reads: c.reads,
            sibling_reads: c.sibling_reads,
            filters: c.filters,
            building: false,
            membership: c.reads_membership,
        }
    }

    fn plans() -> Vec<SegmentPlan> {
        vec![
            plan(1, Kind::Lead, r#"{"field":"country","op":"eq","value":"US"}"#),
            plan(2, Kind::Lead, r#"{"field":"score","op":"gt","value":50}"#),
            plan(
                3,
                Kind::Account,
                r#"{"leads":{"where":{"field":"vip","op":"eq","value":true},"count":{"op":"gte","value":2}}}"#,
            ),
            plan(
                4,
                Kind::Lead,
                r#"{"account":{"field":"industry","op":"eq","value":"SaaS"}}"#,
            ),
            plan(5, Kind::Lead, r#"{"event":{"type":"demo","within":"7 days"}}"#),
        ]
    }

    #[test]
    fn sibling_segments_re_evaluate_the_other_leads_of_the_changed_accounts() {
        let team = plan(
            7,
            Kind::Lead,
            r#"{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}"#,
        );
        let specs = maintenance(&cat(), &[team.clone()], false);
        for op in [TrigOp::Insert, TrigOp::Update, TrigOp::Delete] {
            let s = specs.iter().find(|s| s.table == Kind::Lead && s.op == op).unwrap();
            // candidates: the leads of the changed leads' old and new accounts, under the accounts' locks
            assert!(
                s.body.contains(r#"SELECT l."id" FROM "public"."leads" AS l WHERE l."account_id" IN (SELECT v.x FROM ch, LATERAL (VALUES (ch.a_new), (ch.a_old))"#),
                "{op:?}: {}",
                s.body
            );
            assert!(s.body.contains("748300002"), "{op:?} takes no account lock: {}", s.body);
        }
        // an own-column segment does not pay for it
        let own = plan(8, Kind::Lead, r#"{"field":"score","op":"gt","value":50}"#);
        let specs = maintenance(&cat(), &[own], false);
        let s = specs
            .iter()
            .find(|s| s.table == Kind::Lead && s.op == TrigOp::Update)
            .unwrap();
        assert!(!s.body.contains("l.\"account_id\" IN"), "{}", s.body);
        // events of siblings: the leads of the accounts of the events' leads
        let ev = plan(
            9,
            Kind::Lead,
            r#"{"account":{"leads":{"where":{"event":{"type":"demo"}}}}}"#,
        );
        let specs = maintenance(&cat(), &[ev], false);
        let s = specs
            .iter()
            .find(|s| s.table == Kind::Event && s.op == TrigOp::Insert)
            .unwrap();
        assert!(
            s.body
                .contains(r#"WHERE l."account_id" IN (SELECT o."account_id" FROM "public"."leads" AS o"#),
            "{}",
            s.body
        );
    }

    #[test]
    fn update_trigger_listens_only_to_read_columns() {
        let cols = update_columns(&cat(), &plans(), Kind::Lead);
        assert_eq!(cols, vec!["account_id", "country", "id", "score", "vip"]);
        assert!(!cols.contains(&"last_seen_at".to_string()));
        assert_eq!(update_columns(&cat(), &plans(), Kind::Account), vec!["id", "industry"]);
        assert_eq!(
            update_columns(&cat(), &plans(), Kind::Event),
            vec!["lead_id", "occurred_at", "type"]
        );
    }

    #[test]
    fn update_body_checks_only_the_columns_each_segment_reads() {
        let specs = maintenance(&cat(), &plans(), false);
        let upd = specs
            .iter()
            .find(|s| s.table == Kind::Lead && s.op == TrigOp::Update)
            .unwrap();
        // one capture trigger per read column; the statement pass reads what they captured
        assert!(
            upd.capture.contains(&("country".to_string(), 1, false)),
            "{:?}",
            upd.capture
        );
        assert!(upd.capture.contains(&("score".to_string(), 3, false)));
        assert!(!upd.capture.iter().any(|c| c.0 == "last_seen_at"));
        assert!(upd.body.contains("FROM kenbun._pending('lead') AS p"), "{}", upd.body);
        assert!(upd
            .body
            .contains("(p.k_new IS DISTINCT FROM p.k_old OR 1 = ANY (p.cols)) AS f_1"));
        assert!(!upd.body.contains("last_seen_at"));
        // segment 1 is a candidate only where country changed (flag f_1: account_id=f_0, country=f_1, id=f_2 …)
        // segment 1 (country) is its own unit, run only when some row's country changed
        assert!(
            upd.body.contains("COALESCE(pg_catalog.bool_or((ch.f_1)), false)"),
            "{}",
            upd.body
        );
        assert!(
            upd.body.contains("WHERE (ch.f_1) AND m.segment_id IN (1)"),
            "{}",
            upd.body
        );
        assert!(upd.body.contains("IF kenbun_u["), "{}", upd.body);
        // nothing is written unless something changed
        assert!(upd.body.contains("  IF kenbun_sids IS NOT NULL THEN"));
        // the account segment is reached through the lead's old and new account
        assert!(upd.body.contains("(VALUES (ch.a_new), (ch.a_old))"));
        assert!(upd.body.contains("kenbun.account_members"));
        // anchors are locked in one ordered pass, leads (1) first then accounts (2), before any evaluation
        let l = upd.body.find(&format!("1 AS o, {LOCK_LEAD} AS c")).unwrap();
        let a = upd.body.find(&format!("2 AS o, {LOCK_ACCOUNT} AS c")).unwrap();
        let order = upd.body.find("ORDER BY 1, 3) AS q)").unwrap();
        let first_unit = upd.body.find("should AS").unwrap();
        assert!(l < a && a < order && order < first_unit);
    }

    #[test]
    fn tables_no_segment_reads_get_an_empty_body() {
        let only_country = vec![plan(1, Kind::Lead, r#"{"field":"country","op":"eq","value":"US"}"#)];
        let specs = maintenance(&cat(), &only_country, false);
        let ev = specs
            .iter()
            .find(|s| s.table == Kind::Event && s.op == TrigOp::Insert)
            .unwrap();
        assert_eq!(ev.body, "BEGIN\n  RETURN NULL;\nEND");
        let ins = specs
            .iter()
            .find(|s| s.table == Kind::Lead && s.op == TrigOp::Insert)
            .unwrap();
        assert!(
            ins.body
                .contains("should AS (SELECT s.sid, l.\"id\" AS mid FROM ch JOIN"),
            "{}",
            ins.body
        );
    }

    #[test]
    fn event_changes_reach_lead_and_account_segments() {
        let specs = maintenance(&cat(), &plans(), false);
        let ins = specs
            .iter()
            .find(|s| s.table == Kind::Event && s.op == TrigOp::Insert)
            .unwrap();
        // the small path probes the membership of segment 5 once per event's lead
        assert!(
            ins.body.contains("WHERE p.lead_id = k.x AND p.segment_id IN (5))"),
            "{}",
            ins.body
        );
        assert!(!ins.body.contains("segment_id IN (1)"));
    }

    #[test]
    fn row_only_segments_go_to_the_row_trigger_on_update_only() {
        let ps = plans();
        // 1 (country), 2 (score level-like) read only the lead row; 3 reads the account, 5 events
        let row_only: Vec<i64> = ps.iter().filter(|p| p.row_only()).map(|p| p.id).collect();
        assert!(row_only.contains(&1) && !row_only.contains(&5), "{row_only:?}");
        let fast = fast_maintenance(&cat(), &ps);
        let lead = fast.iter().find(|f| f.table == Kind::Lead).unwrap();
        assert_eq!(lead.segment_ids, ps.iter().filter(|p| p.kind == Kind::Lead && p.row_only()).map(|p| p.id).collect::<Vec<_>>());
        assert!(lead.update_of.contains(&"country".to_string()) && lead.update_of.contains(&"id".to_string()));
        assert!(!lead.update_of.contains(&"last_seen_at".to_string()));
        let specs = maintenance(&cat(), &ps, true);
        let upd = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Update).unwrap();
        // the statement-level UPDATE no longer evaluates segment 1, INSERT and DELETE still do
        assert!(!upd.body.contains("m.segment_id IN (1)"), "{}", upd.body);
        let ins = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Insert).unwrap();
        assert!(ins.body.contains("(1::bigint,"), "{}", ins.body);
        // a table whose UPDATEs only row-only segments care about gets no statement-level UPDATE trigger
        let only_country = vec![plan(1, Kind::Lead, r#"{"field":"country","op":"eq","value":"US"}"#)];
        let specs = maintenance(&cat(), &only_country, true);
        let upd = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Update).unwrap();
        assert!(upd.update_of.is_empty() && upd.capture.is_empty(), "{upd:?}");
        // the row trigger's SQL: one boolean per segment over the table, and the apply statement
        assert_eq!(
            fast_eval_sql("\"public\".\"leads\"", Kind::Lead, &["l.\"x\" = 1".to_string()]),
            "SELECT ((l.\"x\" = 1) IS TRUE) FROM \"public\".\"leads\" AS l"
        );
        let apply = fast_apply_sql(Kind::Lead, "bigint");
        assert!(apply.contains("pg_catalog.unnest($4::text[])") && apply.contains("c.mid::bigint") && !apply.contains("INTO kenbun_n"), "{apply}");
        assert!(!apply.contains("account_members"));
    }

    #[test]
    fn building_segments_take_the_set_based_path_with_stripe_locks() {
        // a row-only segment that is building is maintained by the statement-level functions
        // (which lock the members' stripes, as the batched build does), not by the row trigger
        let mut only_country = vec![plan(1, Kind::Lead, r#"{"field":"country","op":"eq","value":"US"}"#)];
        only_country[0].building = true;
        assert!(!only_country[0].row_only());
        assert!(fast_maintenance(&cat(), &only_country).is_empty());
        let specs = maintenance(&cat(), &only_country, true);
        for op in [TrigOp::Insert, TrigOp::Update, TrigOp::Delete] {
            let spec = specs.iter().find(|s| s.table == Kind::Lead && s.op == op).unwrap();
            assert!(spec.body.contains("pg_advisory_xact_lock") && spec.body.contains(&LOCK_LEAD.to_string()), "{op:?}: {}", spec.body);
            assert!(spec.body.contains("(1::bigint,") || spec.body.contains("segment_id IN (1)") || spec.body.contains("'{1}'"), "{op:?}: {}", spec.body);
        }
        let upd = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Update).unwrap();
        assert!(upd.update_of.contains(&"country".to_string()), "{upd:?}");
    }

    #[test]
    fn filters_record_what_subqueries_ask_of_each_row() {
        let c = cat();
        let hot = compile(
            &Rule::parse_text(r#"{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}"#).unwrap(),
            Kind::Account,
            &c,
        )
        .unwrap();
        assert_eq!(hot.filters.len(), 1);
        let f = &hot.filters[0];
        assert!(!f.own);
        assert_eq!((f.table, f.row_only), (Kind::Lead, true));
        // the join to the account is not part of the filter, the condition is
        assert!(f.sql.contains("\"score\"") && !f.sql.contains("account_id"), "{}", f.sql);
        // leads with events: the lead filter reads another table, the event filter does not
        let nested = compile(
            &Rule::parse_text(r#"{"leads":{"where":{"event":{"type":"demo","within":"7 days"}}}}"#).unwrap(),
            Kind::Account,
            &c,
        )
        .unwrap();
        let lead_f = nested.filters.iter().find(|f| f.table == Kind::Lead).unwrap();
        let ev_f = nested.filters.iter().find(|f| f.table == Kind::Event).unwrap();
        assert!(!lead_f.row_only && ev_f.row_only, "{:?}", nested.filters);
        assert!(ev_f.sql.contains("'demo'") && ev_f.sql.contains("now()"), "{}", ev_f.sql);
        // an event condition with nothing but the join: every event of the lead counts
        let any = compile(&Rule::parse_text(r#"{"event":{}}"#).unwrap(), Kind::Lead, &c).unwrap();
        assert_eq!(any.filters[0].sql, "true");
    }

    #[test]
    fn capture_plans_use_filters_only_for_other_tables() {
        let c = cat();
        let comp = |rule: &str, kind: Kind| compile(&Rule::parse_text(rule).unwrap(), kind, &c).unwrap();
        let acc = plan(3, Kind::Account, r#"{"leads":{"where":{"field":"vip","op":"eq","value":true},"count":{"op":"gte","value":2}}}"#);
        let cp = capture_plan(&c, &acc, &comp(r#"{"leads":{"where":{"field":"vip","op":"eq","value":true},"count":{"op":"gte","value":2}}}"#, Kind::Account).filters, Kind::Lead);
        assert_eq!(cp.own, vec!["account_id".to_string(), "vip".to_string()]);
        assert!(cp.sibling.is_empty());
        assert_eq!(cp.filters.as_ref().map(|f| f.len()), Some(1));
        // a lead segment reading its own row and events: the lead table by columns, events by filter
        let rule = r#"{"all":[{"field":"score","op":"gt","value":50},{"event":{"type":"demo"}}]}"#;
        let mixed = plan(6, Kind::Lead, rule);
        let f = comp(rule, Kind::Lead).filters;
        // a lead segment reading its own row and events: its own row through its field conditions,
        // events through the event condition's filter
        let own = capture_plan(&c, &mixed, &f, Kind::Lead).filters.unwrap();
        assert_eq!(own.len(), 1);
        assert!(own[0].own && own[0].sql.contains("\"score\""), "{own:?}");
        assert!(capture_plan(&c, &mixed, &f, Kind::Event).filters.is_some_and(|f| f.len() == 1 && !f[0].own));
        // siblings: what the other leads' condition reads, and the account key
        let team_rule = r#"{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}"#;
        let team = plan(7, Kind::Lead, team_rule);
        let cp = capture_plan(&c, &team, &comp(team_rule, Kind::Lead).filters, Kind::Lead);
        assert!(cp.sibling.contains(&"score".to_string()) && cp.sibling.contains(&"account_id".to_string()), "{cp:?}");
        // its own row: the siblings' condition (which also reads the lead itself) decides
        assert_eq!(cp.filters.as_ref().map(|f| f.len()), Some(1));
        // an account rule that reaches accounts again through its leads: that condition counts too
        let again_rule = r#"{"leads":{"where":{"account":{"field":"industry","op":"eq","value":"SaaS"}}}}"#;
        let again = plan(8, Kind::Account, again_rule);
        let cp = capture_plan(&c, &again, &comp(again_rule, Kind::Account).filters, Kind::Account);
        assert!(cp.filters.is_some_and(|f| f.len() == 1 && !f[0].own && f[0].sql.contains("industry")));
        // the generated UPDATE function asks the capture trigger which segments a row affects
        let specs = maintenance(&c, &[acc, team], true);
        let upd = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Update).unwrap();
        assert_eq!(upd.capture_ids, vec![3, 7]);
        assert!(upd.capture.is_empty());
        assert!(upd.body.contains("FROM kenbun._pending_rows('lead') AS p"), "{}", upd.body);
        assert!(upd.body.starts_with("DECLARE") && upd.body.contains("BEGIN\n  IF NOT kenbun._pending_rows_exist('lead') THEN\n    RETURN NULL;"), "{}", upd.body);
        assert!(upd.body.contains("(ch.s && '{3}'::bigint[])") && upd.body.contains("(ch.s && '{-7}'::bigint[])"), "{}", upd.body);
    }

    #[test]
    fn inserted_rows_reach_only_the_segments_whose_row_conditions_they_meet() {
        let specs = maintenance(&cat(), &plans(), true);
        let ins = specs.iter().find(|s| s.table == Kind::Event && s.op == TrigOp::Insert).unwrap();
        // segment 5 counts demo events of the last 7 days: an inserted event is a candidate only if it is one
        assert!(ins.body.contains("IS TRUE AS g_0 FROM kenbun_new AS n CROSS JOIN LATERAL (SELECT n.*) AS e_1"), "{}", ins.body);
        assert!(ins.body.contains("'demo'"), "{}", ins.body);
        // nothing else to do: the function returns after the flags, before the account locks and any unit
        let flags = ins.body.find("INTO kenbun_n, kenbun_u, kenbun_rows").unwrap();
        let ret = ins.body.find("IF NOT (true = ANY (kenbun_u)) THEN").unwrap();
        let unit = ins.body.find("should AS").unwrap();
        assert!(flags < ret && ret < unit, "{}", ins.body);
        assert!(ins.body.contains("IF kenbun_u[1] THEN"), "{}", ins.body);
        // a lead's own segments on a lead INSERT stay unconditional, so no early return there
        let lead_ins = specs.iter().find(|s| s.table == Kind::Lead && s.op == TrigOp::Insert).unwrap();
        assert!(!lead_ins.body.contains("IF NOT (true = ANY (kenbun_u))"), "{}", lead_ins.body);
        // the legacy generation (older SQL during an upgrade) is unchanged
        let old = maintenance(&cat(), &plans(), false);
        let ins = old.iter().find(|s| s.table == Kind::Event && s.op == TrigOp::Insert).unwrap();
        assert!(!ins.body.contains("g_0"));
    }

    #[test]
    fn dollar_tag_never_occurs_in_the_body() {
        assert_eq!(dollar_tag("x"), "$kenbun$");
        assert_eq!(dollar_tag("a $kenbun$ b"), "$kenbun1$");
        assert_eq!(dollar_tag("$kenbun$ $kenbun1$"), "$kenbun2$");
    }
}

mod analysis {
    use super::*;
    use crate::compile::analyze::{diagnose, lint};

    fn findings(rule: &str) -> Vec<(String, String, String)> {
        lint(&Rule::parse_text(rule).unwrap())
            .into_iter()
            .map(|f| (f.severity.to_string(), f.path, f.message))
            .collect()
    }

    #[test]
    fn lint_finds_contradictions_and_redundancy() {
        let f = findings(r#"{"all":[{"field":"score","op":"gt","value":50},{"field":"score","op":"lt","value":10}]}"#);
        assert!(
            f.iter()
                .any(|(s, p, m)| s == "error" && p == "$.all[1]" && m.starts_with("contradictory")),
            "{f:?}"
        );
        let f =
            findings(r#"{"all":[{"field":"score","op":"gte","value":10},{"field":"score","op":"gte","value":20}]}"#);
        assert!(
            f.iter()
                .any(|(s, p, m)| s == "warning" && p == "$.all[0]" && m == "redundant: implied by $.all[1]"),
            "{f:?}"
        );
        let f = findings(r#"{"any":[{"field":"a","op":"is_set"},{"field":"a","op":"is_set"}]}"#);
        assert!(
            f.iter()
                .any(|(_, p, m)| p == "$.any[1]" && m.contains("the same condition as $.any[0]")),
            "{f:?}"
        );
        // between and a compatible bound: neither contradictory nor redundant
        let f = findings(
            r#"{"all":[{"field":"score","op":"between","value":[10,60]},{"field":"score","op":"gt","value":50}]}"#,
        );
        assert!(!f.iter().any(|(s, _, _)| s == "error"), "{f:?}");
        // conditions on different fields never contradict
        let f = findings(r#"{"all":[{"field":"a","op":"gt","value":50},{"field":"b","op":"lt","value":10}]}"#);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn lint_suggests_simpler_forms() {
        let f = findings(r#"{"field":"email","op":"matches","value":"^acme"}"#);
        assert!(
            f.iter().any(|(s, _, m)| s == "info" && m.contains("starts_with")),
            "{f:?}"
        );
        assert!(findings(r#"{"field":"email","op":"matches","value":"^ac.me"}"#).is_empty());
        let f = findings(r#"{"field":"country","op":"in","value":["US"]}"#);
        assert!(f.iter().any(|(_, _, m)| m.contains("\"eq\" says the same")), "{f:?}");
        let f = findings(r#"{"event":{"type":"x","within":"7 days"}}"#);
        assert!(f.iter().any(|(_, _, m)| m.starts_with("time window")), "{f:?}");
        let f = findings(r#"{"all":[]}"#);
        assert!(
            f.iter()
                .any(|(s, _, m)| s == "warning" && m == "the rule matches everyone"),
            "{f:?}"
        );
        let f = findings(r#"{"not":{"not":{"field":"a","op":"is_set"}}}"#);
        assert!(
            f.iter().any(|(_, p, m)| p == "$" && m.starts_with("double negation")),
            "{f:?}"
        );
    }

    #[test]
    fn diagnose_lists_conditions_with_their_group_prefix() {
        let rule = Rule::parse_text(
            r#"{"all":[{"field":"country","op":"eq","value":"US"},{"any":[{"field":"vip","op":"eq","value":true},{"field":"score","op":"gt","value":5}]}]}"#,
        )
        .unwrap();
        let rows = diagnose(&rule, Kind::Lead, &cat()).unwrap();
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["$", "$.all[0]", "$.all[1]", "$.all[1].any[0]", "$.all[1].any[1]"]
        );
        assert_eq!(rows[1].condition, r#"country eq "US""#);
        assert_eq!(rows[1].alone, rows[1].with_previous);
        assert_eq!(rows[2].with_previous, rows[0].alone);
        assert_eq!(
            rows[4].with_previous,
            r#"((l."vip" = true) OR (l."score" > '5'::bigint))"#
        );
        assert!(rows[1].field.is_some() && rows[2].field.is_none());
    }
}

/// Columns of types that are not built in are read as text, and nothing is ever cast to them: the
/// generated triggers run as the extension's owner, and a cast to a user-defined domain would run
/// its CHECK (user code) with the owner's rights.
#[test]
fn user_defined_types_are_read_as_text_and_never_cast_to() {
    let mut c = cat();
    c.bindings[0].columns.push(Column {
        name: "tier".into(),
        type_name: "text".into(),
        not_null: false,
        as_text: true,
    });
    let r = Rule::parse_text(r#"{"field":"tier","op":"in","value":["gold","x'y"]}"#).unwrap();
    let sql = compile(&r, Kind::Lead, &c).unwrap().sql;
    assert!(sql.contains(r#"(l."tier")::text"#), "{sql}");
    assert!(!sql.contains("public."), "{sql}");
    c.fields.push(FieldMap {
        kind: "lead".into(),
        name: "evil".into(),
        path: "country".into(),
        type_name: "public.evil".into(),
        builtin: false,
    });
    let r = Rule::parse_text(r#"{"field":"evil","op":"eq","value":"x"}"#).unwrap();
    let e = compile(&r, Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::DatatypeMismatch);
    assert!(e.message.contains("not a built-in type"), "{}", e.message);
}

/// Segment references multiply: a chain where each segment uses the previous one twice would
/// compile to 2^n copies. The expansion is bounded, and so is the nesting of references.
#[test]
fn segment_references_are_bounded() {
    let mut c = cat();
    c.segments.push(SegmentDef {
        id: 1,
        name: "s0".into(),
        kind: "lead".into(),
        rule: serde_json::json!({"field":"country","op":"eq","value":"US"}),
        ..Default::default()
    });
    for i in 1..=20 {
        c.segments.push(SegmentDef {
            id: i + 1,
            name: format!("s{i}"),
            kind: "lead".into(),
            rule: serde_json::json!({"any":[{"segment": format!("s{}", i - 1)},{"not":{"segment": format!("s{}", i - 1)}}]}),
            ..Default::default()
        });
    }
    let r = Rule::parse_text(r#"{"segment":"s8"}"#).unwrap();
    assert!(compile(&r, Kind::Lead, &c).is_ok());
    let r = Rule::parse_text(r#"{"segment":"s20"}"#).unwrap();
    let e = compile(&r, Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::ProgramLimitExceeded);
    assert!(e.message.contains("inlined"), "{}", e.message);
    // a straight chain deeper than MAX_DEPTH
    for i in 0..40 {
        c.segments.push(SegmentDef {
            id: 100 + i,
            name: format!("c{i}"),
            kind: "lead".into(),
            rule: if i == 0 {
                serde_json::json!({"all":[]})
            } else {
                serde_json::json!({"segment": format!("c{}", i - 1)})
            },
            ..Default::default()
        });
    }
    assert!(compile(&Rule::parse_text(r#"{"segment":"c30"}"#).unwrap(), Kind::Lead, &c).is_ok());
    let e = compile(&Rule::parse_text(r#"{"segment":"c39"}"#).unwrap(), Kind::Lead, &c).unwrap_err();
    assert_eq!(e.code, SqlState::ProgramLimitExceeded);
    assert!(e.message.contains("nest too deeply"), "{}", e.message);
}

#[test]
fn sibling_reads_are_what_a_lead_rule_reads_of_its_accounts_other_leads() {
    let c = cat();
    let sib = |rule: &str, kind: Kind| {
        compile(&Rule::parse_text(rule).unwrap(), kind, &c)
            .unwrap()
            .sibling_reads
            .into_iter()
            .map(|(k, col)| format!("{}.{col}", k.name()))
            .collect::<Vec<_>>()
    };
    let team =
        r#"{"account":{"leads":{"where":{"field":"score","op":"gt","value":50},"count":{"op":"gte","value":2}}}}"#;
    assert_eq!(
        sib(team, Kind::Lead),
        vec!["lead.account_id", "lead.score", "account.id"]
    );
    // own columns and account properties are not sibling reads
    assert!(sib(r#"{"all":[{"field":"country","op":"eq","value":"US"},{"account":{"field":"industry","op":"eq","value":"x"}}]}"#, Kind::Lead).is_empty());
    // an account rule's lead counts are handled by the account's own maintenance
    assert!(sib(
        r#"{"leads":{"where":{"field":"vip","op":"eq","value":true}}}"#,
        Kind::Account
    )
    .is_empty());
    // events of siblings
    let ev = sib(
        r#"{"account":{"leads":{"where":{"event":{"type":"demo"}}}}}"#,
        Kind::Lead,
    );
    assert!(
        ev.contains(&"event.lead_id".to_string()) && ev.contains(&"event.type".to_string()),
        "{ev:?}"
    );
    // through an account segment used inside {"account": …}, and through a referenced lead segment
    let mut c2 = cat();
    c2.segments.push(SegmentDef {
        id: 1,
        name: "two vips".into(),
        kind: "account".into(),
        rule: serde_json::json!({"leads":{"where":{"field":"vip","op":"eq","value":true},"count":{"op":"gte","value":2}}}),
        ..Default::default()
    });
    c2.segments.push(SegmentDef {
        id: 2,
        name: "team".into(),
        kind: "lead".into(),
        rule: serde_json::from_str(team).unwrap(),
        ..Default::default()
    });
    let s = |rule: &str| {
        compile(&Rule::parse_text(rule).unwrap(), Kind::Lead, &c2)
            .unwrap()
            .sibling_reads
    };
    assert!(s(r#"{"account":{"segment":"two vips"}}"#).contains(&(Kind::Lead, "vip".into())));
    assert!(s(r#"{"not":{"segment":"team"}}"#).contains(&(Kind::Lead, "score".into())));
}

/// The test catalog with the columns the 0.6 operators need: a text[] and a varchar[] column, a
/// date and a timestamp without time zone on leads, a numeric amount and a text[] on events.
fn cat6() -> Catalog {
    let mut c = cat();
    for b in c.bindings.iter_mut() {
        match b.kind.as_str() {
            "lead" => b.columns.extend([
                col("tags", "text[]"),
                col("labels", "character varying[]"),
                col("signup_date", "date"),
                col("local_ts", "timestamp without time zone"),
            ]),
            "event" => b.columns.extend([col("amount", "numeric"), col("label", "text")]),
            _ => {}
        }
    }
    c.fields.push(FieldMap {
        kind: "lead".into(),
        name: "trial_ends".into(),
        path: "attributes.trial_ends".into(),
        type_name: "timestamp with time zone".into(),
        builtin: true,
    });
    c.fields.push(FieldMap {
        kind: "event".into(),
        name: "price".into(),
        path: "metadata.price".into(),
        type_name: "numeric".into(),
        builtin: true,
    });
    c
}

fn compiled6(rule: &str) -> Compiled {
    compile(&Rule::parse_text(rule).unwrap(), Kind::Lead, &cat6()).unwrap_or_else(|e| panic!("{rule}: {e}"))
}

fn sql6(rule: &str) -> String {
    compiled6(rule).sql
}

fn err6(rule: &str, kind: Kind) -> crate::error::KenbunError {
    compile(&Rule::parse_text(rule).unwrap(), kind, &cat6()).expect_err(rule)
}

fn filters6(rule: &str) -> Vec<(String, String, bool)> {
    compiled6(rule).filters.into_iter().map(|f| (f.alias, f.sql, f.row_only)).collect()
}

fn assert_err(e: crate::error::KenbunError, code: SqlState, message: &str, hint: Option<&str>) {
    assert_eq!((e.code, e.message.as_str(), e.hint.as_deref()), (code, message, hint));
}

#[test]
fn has_any_all_none_on_text_arrays_and_json_arrays() {
    assert_eq!(
        sql6(r#"{"field":"tags","op":"has_any","value":["a","b'c"]}"#),
        r#"(l."tags"::text[] && ARRAY['a'::text, 'b''c'::text]::text[])"#
    );
    assert_eq!(
        sql6(r#"{"field":"labels","op":"has_all","value":["a"]}"#),
        r#"(l."labels"::text[] @> ARRAY['a'::text]::text[])"#
    );
    // the exact complement: a NULL array (or a NULL in it making && NULL) is not a member of
    // has_any, so it is one of has_none
    assert_eq!(
        sql6(r#"{"field":"tags","op":"has_none","value":["a"]}"#),
        r#"((l."tags"::text[] && ARRAY['a'::text]::text[]) IS NOT TRUE)"#
    );
    assert_eq!(
        sql6(r#"{"field":"attributes.tags","op":"has_any","value":["a"]}"#),
        r#"(CASE WHEN pg_catalog.jsonb_typeof((l."attributes" -> 'tags')) = 'array' THEN (l."attributes" -> 'tags') ?| ARRAY['a'::text]::text[] END)"#
    );
    assert_eq!(
        sql6(r#"{"field":"attributes","op":"has_all","value":["a","b"]}"#),
        r#"(CASE WHEN pg_catalog.jsonb_typeof(l."attributes") = 'array' THEN l."attributes" ?& ARRAY['a'::text, 'b'::text]::text[] END)"#
    );
    assert_eq!(
        sql6(r#"{"field":"attributes.tags","op":"has_none","value":["a"]}"#),
        r#"((CASE WHEN pg_catalog.jsonb_typeof((l."attributes" -> 'tags')) = 'array' THEN (l."attributes" -> 'tags') ?| ARRAY['a'::text]::text[] END) IS NOT TRUE)"#
    );
    let c = compiled6(r#"{"field":"tags","op":"has_all","value":["a"]}"#);
    assert!(!c.time_dependent);
    assert_eq!(c.reads, BTreeSet::from([(Kind::Lead, "tags".to_string())]));
    assert_eq!(sql6(r#"{"field":"tags","op":"is_not_set"}"#), r#"((l."tags" IS NOT NULL) IS NOT TRUE)"#);
    assert_err(
        err6(r#"{"field":"labels","op":"eq","value":"a"}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.op: operator \"eq\" does not apply to field \"labels\", which is an array (character varying[])",
        Some("test its elements with has_any, has_all or has_none, or whether it is set with is_set"),
    );
    assert_eq!(err6(r#"{"field":"tags","op":"contains","value":"a"}"#, Kind::Lead).code, SqlState::DatatypeMismatch);
    let hint = Some("has_any, has_all and has_none test the elements of a text[] column or of a JSON array (a jsonb field or a dotted path)");
    assert_err(
        err6(r#"{"field":"country","op":"has_any","value":["US"]}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.op: operator \"has_any\" does not apply to field \"country\", which is text (text)",
        hint,
    );
    assert_err(
        err6(r#"{"all":[{"field":"score","op":"has_none","value":["1"]}]}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.all[0].op: operator \"has_none\" does not apply to field \"score\", which is numeric (integer)",
        hint,
    );
}

#[test]
fn in_period_per_column_type_and_time_zone() {
    let c = compiled6(r#"{"field":"last_seen_at","op":"in_period","value":"this_month"}"#);
    assert_eq!(
        c.sql,
        "(l.\"last_seen_at\" >= ((pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC'::text)) AT TIME ZONE 'UTC'::text) \
         AND l.\"last_seen_at\" < ((pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC'::text) + '1 month'::interval) AT TIME ZONE 'UTC'::text))"
    );
    assert!(c.time_dependent);
    assert_eq!(c.boundaries, BTreeSet::from([("month".to_string(), "UTC".to_string())]));
    assert_eq!(c.time_zones, BTreeSet::from(["UTC".to_string()]));
    // a timestamp without time zone compares with the local bounds, a date with their dates
    assert_eq!(
        sql6(r#"{"field":"local_ts","op":"in_period","value":"last_quarter","tz":"Europe/Paris"}"#),
        "(l.\"local_ts\" >= (pg_catalog.date_trunc('quarter', pg_catalog.now() AT TIME ZONE 'Europe/Paris'::text) - '3 months'::interval) \
         AND l.\"local_ts\" < (pg_catalog.date_trunc('quarter', pg_catalog.now() AT TIME ZONE 'Europe/Paris'::text)))"
    );
    assert_eq!(
        sql6(r#"{"field":"signup_date","op":"in_period","value":"yesterday"}"#),
        "(l.\"signup_date\" >= (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC'::text) - '1 day'::interval)::date \
         AND l.\"signup_date\" < (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC'::text))::date)"
    );
    assert_eq!(
        sql6(r#"{"not":{"field":"signup_date","op":"in_period","value":"this_week"}}"#),
        "((l.\"signup_date\" >= (pg_catalog.date_trunc('week', pg_catalog.now() AT TIME ZONE 'UTC'::text))::date \
         AND l.\"signup_date\" < (pg_catalog.date_trunc('week', pg_catalog.now() AT TIME ZONE 'UTC'::text) + '1 week'::interval)::date) IS NOT TRUE)"
    );
    // the catalog's zone is the default; the condition's own zone wins
    let mut cat = cat6();
    cat.timezone = Some("America/New_York".into());
    let rule = Rule::parse_text(
        r#"{"all":[{"field":"signup_date","op":"in_period","value":"today"},{"field":"trial_ends","op":"in_period","value":"this_year","tz":"Asia/Tokyo"}]}"#,
    )
    .unwrap();
    let c = compile(&rule, Kind::Lead, &cat).unwrap();
    assert!(c.sql.contains("pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'America/New_York'::text)"), "{}", c.sql);
    assert!(c.sql.contains(
        "((pg_catalog.date_trunc('year', pg_catalog.now() AT TIME ZONE 'Asia/Tokyo'::text)) AT TIME ZONE 'Asia/Tokyo'::text)"
    ), "{}", c.sql);
    assert!(!c.sql.contains("'UTC'"), "{}", c.sql);
    assert_eq!(
        c.boundaries,
        BTreeSet::from([
            ("day".to_string(), "America/New_York".to_string()),
            ("year".to_string(), "Asia/Tokyo".to_string())
        ])
    );
    assert_eq!(c.time_zones, BTreeSet::from(["America/New_York".to_string(), "Asia/Tokyo".to_string()]));
    // a zone is a literal, never SQL
    assert!(sql6(r#"{"field":"local_ts","op":"in_period","value":"today","tz":"x'; --"}"#)
        .contains("AT TIME ZONE 'x''; --'::text"));
    // only date/time fields; an untyped JSON path gets within_last's error
    assert_err(
        err6(r#"{"field":"attributes.day","op":"in_period","value":"today"}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.op: operator \"in_period\" needs a date/time field, and \"attributes.day\" is a JSON path without a declared type",
        Some("declare its type: SELECT kenbun.map_field('lead', '<name>', 'attributes.day', 'timestamptz');"),
    );
    assert_err(
        err6(r#"{"field":"country","op":"in_period","value":"today"}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.op: operator \"in_period\" does not apply to field \"country\", which is text (text)",
        None,
    );
}

#[test]
fn between_ago_and_in_next() {
    let c = compiled6(r#"{"field":"last_seen_at","op":"between_ago","value":["30 days","7 days"]}"#);
    assert_eq!(
        c.sql,
        "(l.\"last_seen_at\" >= (pg_catalog.now() - '30 days'::interval) AND l.\"last_seen_at\" < (pg_catalog.now() - '7 days'::interval))"
    );
    assert!(c.time_dependent && c.boundaries.is_empty());
    let c = compiled6(r#"{"field":"trial_ends","op":"in_next","value":" 7 days"}"#);
    assert_eq!(
        c.sql,
        "(((l.\"attributes\" ->> 'trial_ends')::timestamp with time zone) >= pg_catalog.now() \
         AND ((l.\"attributes\" ->> 'trial_ends')::timestamp with time zone) <= (pg_catalog.now() + '7 days'::interval))"
    );
    assert!(c.time_dependent);
    assert_err(
        err6(r#"{"field":"score","op":"in_next","value":"7 days"}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.op: operator \"in_next\" does not apply to field \"score\", which is numeric (integer)",
        None,
    );
    assert_eq!(
        err6(r#"{"field":"attributes.x","op":"between_ago","value":["2 days","1 day"]}"#, Kind::Lead).code,
        SqlState::DatatypeMismatch
    );
}

#[test]
fn event_aggregates() {
    let rule = r#"{"event":{"type":"purchase","within":"90 days","sum":{"field":"amount","op":"gte","value":500}}}"#;
    let c = compiled6(rule);
    assert_eq!(
        c.sql,
        "((SELECT COALESCE(pg_catalog.sum(e_1.\"amount\"), 0) FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" \
         AND e_1.\"type\" IN ('purchase'::text) AND e_1.\"occurred_at\" >= (pg_catalog.now() - '90 days'::interval)) >= '500'::numeric)"
    );
    assert!(c.time_dependent);
    let reads: Vec<(Kind, &str)> = c.reads.iter().map(|(k, s)| (*k, s.as_str())).collect();
    assert_eq!(
        reads,
        vec![
            (Kind::Lead, "id"),
            (Kind::Event, "amount"),
            (Kind::Event, "lead_id"),
            (Kind::Event, "occurred_at"),
            (Kind::Event, "type")
        ]
    );
    // the filter holds the row conditions only; the aggregated value is read too: not row-only
    assert_eq!(
        filters6(rule),
        vec![(
            "e_1".to_string(),
            "e_1.\"type\" IN ('purchase'::text) AND e_1.\"occurred_at\" >= (pg_catalog.now() - '90 days'::interval)".to_string(),
            false
        )]
    );
    // avg / min / max over no events are NULL: not a member, and a member under not
    let avg = r#"{"event":{"avg":{"field":"metadata.score","op":"gt","value":2.5}}}"#;
    let avg_sql = "((SELECT pg_catalog.avg((CASE WHEN pg_catalog.jsonb_typeof((e_1.\"metadata\" -> 'score')) = 'number' \
         THEN ((e_1.\"metadata\" -> 'score'))::numeric END)) FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\") > '2.5'::numeric)";
    assert_eq!(sql6(avg), avg_sql);
    assert_eq!(sql6(&format!(r#"{{"not":{avg}}}"#)), format!("({avg_sql} IS NOT TRUE)"));
    assert!(!compiled6(avg).time_dependent);
    assert_eq!(
        sql6(r#"{"event":{"min":{"field":"price","op":"lt","value":-1}}}"#),
        "((SELECT pg_catalog.min(((e_1.\"metadata\" ->> 'price')::numeric)) FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\") < '-1'::numeric)"
    );
    assert_eq!(
        sql6(r#"{"event":{"type":["a","b"],"max":{"field":"amount","op":"eq","value":3}}}"#),
        "((SELECT pg_catalog.max(e_1.\"amount\") FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" \
         AND e_1.\"type\" IN ('a'::text, 'b'::text)) = '3'::numeric)"
    );
    assert_eq!(
        sql6(r#"{"event":{"count_distinct":{"field":"metadata.url","op":"gte","value":3}}}"#),
        "((SELECT pg_catalog.count(DISTINCT (e_1.\"metadata\" ->> 'url')) FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\") >= 3)"
    );
    assert_eq!(
        sql6(r#"{"event":{"count_distinct":{"field":"label","op":"lt","value":2},"where":{"field":"amount","op":"gt","value":0}}}"#),
        "((SELECT pg_catalog.count(DISTINCT e_1.\"label\") FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" \
         AND (e_1.\"amount\" > '0'::numeric)) < 2)"
    );
    assert_err(
        err6(r#"{"event":{"sum":{"field":"label","op":"gt","value":1}}}"#, Kind::Lead),
        SqlState::DatatypeMismatch,
        "invalid rule at $.event.sum.field: \"sum\" needs a numeric field, and event field \"label\" is text (text)",
        Some("aggregate a numeric column or mapped field, or a JSON path holding numbers; count_distinct takes any field"),
    );
    assert_eq!(
        err6(r#"{"event":{"avg":{"field":"nope","op":"gt","value":1}}}"#, Kind::Lead).message,
        "invalid rule at $.event.avg.field: unknown field \"nope\" for kind \"event\" (table app.events)"
    );
    assert_err(
        err6(r#"{"event":{"sum":{"field":"amount","op":"gt","value":1}}}"#, Kind::Account),
        SqlState::InvalidParameterValue,
        "invalid rule at $: \"event\" conditions are only allowed in lead rules, not in account rules",
        Some("in an account rule, count leads with events: {\"leads\":{\"where\":{\"event\":{…}}}}"),
    );
}

#[test]
fn first_within_and_stopped() {
    let fw = r#"{"event":{"type":"signup","first_within":"7 days","where":{"field":"label","op":"eq","value":"x"}}}"#;
    let c = compiled6(fw);
    assert_eq!(
        c.sql,
        "((SELECT pg_catalog.min(e_1.\"occurred_at\") FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" \
         AND e_1.\"type\" IN ('signup'::text) AND (e_1.\"label\" = 'x'::text)) >= (pg_catalog.now() - '7 days'::interval))"
    );
    assert!(c.time_dependent);
    assert!(c.reads.contains(&(Kind::Event, "occurred_at".to_string())));
    assert_eq!(
        filters6(fw),
        vec![("e_1".to_string(), "e_1.\"type\" IN ('signup'::text) AND (e_1.\"label\" = 'x'::text)".to_string(), false)]
    );
    let st = r#"{"event":{"type":"login","stopped":"30 days","min_before":3}}"#;
    let c = compiled6(st);
    assert_eq!(
        c.sql,
        "(((SELECT pg_catalog.count(*) FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" AND e_1.\"type\" IN ('login'::text) \
         AND e_1.\"occurred_at\" < (pg_catalog.now() - '30 days'::interval)) >= 3) \
         AND (NOT EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_2 WHERE e_2.\"lead_id\" = l.\"id\" AND e_2.\"type\" IN ('login'::text) \
         AND e_2.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval))))"
    );
    assert!(c.time_dependent);
    // two set-membership subqueries, each filter with its own side of the window
    assert_eq!(
        filters6(st),
        vec![
            (
                "e_1".to_string(),
                "e_1.\"type\" IN ('login'::text) AND e_1.\"occurred_at\" < (pg_catalog.now() - '30 days'::interval)".to_string(),
                true
            ),
            (
                "e_2".to_string(),
                "e_2.\"type\" IN ('login'::text) AND e_2.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval)".to_string(),
                true
            ),
        ]
    );
    assert!(sql6(r#"{"event":{"type":"login","stopped":"30 days"}}"#).starts_with(
        "(EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" AND e_1.\"type\" IN ('login'::text) \
         AND e_1.\"occurred_at\" < (pg_catalog.now() - '30 days'::interval)) AND (NOT EXISTS"
    ));
}

#[test]
fn sequence_compiles_to_nested_exists() {
    let rule = r#"{"sequence":{"steps":[{"type":"pricing_view","where":{"field":"label","op":"eq","value":"x"}},{"type":"demo_request"}],"max_gap":"7 days","within":"30 days"}}"#;
    let c = compiled6(rule);
    assert_eq!(
        c.sql,
        "EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" AND e_1.\"type\" IN ('pricing_view'::text) \
         AND e_1.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval) AND (e_1.\"label\" = 'x'::text) \
         AND EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_2 WHERE e_2.\"lead_id\" = l.\"id\" AND e_2.\"type\" IN ('demo_request'::text) \
         AND e_2.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval) AND e_2.\"occurred_at\" > e_1.\"occurred_at\" \
         AND e_2.\"occurred_at\" <= (e_1.\"occurred_at\" + '7 days'::interval)))"
    );
    assert!(c.time_dependent);
    // each step's filter is on its own row (no correlation to another step), and not row-only:
    // the times are compared across steps
    assert_eq!(
        filters6(rule),
        vec![
            (
                "e_1".to_string(),
                "e_1.\"type\" IN ('pricing_view'::text) AND e_1.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval) AND (e_1.\"label\" = 'x'::text)".to_string(),
                false
            ),
            (
                "e_2".to_string(),
                "e_2.\"type\" IN ('demo_request'::text) AND e_2.\"occurred_at\" >= (pg_catalog.now() - '30 days'::interval)".to_string(),
                false
            ),
        ]
    );
    let reads: Vec<(Kind, &str)> = c.reads.iter().map(|(k, s)| (*k, s.as_str())).collect();
    assert_eq!(
        reads,
        vec![(Kind::Lead, "id"), (Kind::Event, "label"), (Kind::Event, "lead_id"), (Kind::Event, "occurred_at"), (Kind::Event, "type")]
    );
    let c = compiled6(r#"{"sequence":{"steps":[{},{"type":"b"},{"where":{"field":"amount","op":"gt","value":1}}]}}"#);
    assert_eq!(
        c.sql,
        "EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_1 WHERE e_1.\"lead_id\" = l.\"id\" \
         AND EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_2 WHERE e_2.\"lead_id\" = l.\"id\" AND e_2.\"type\" IN ('b'::text) \
         AND e_2.\"occurred_at\" > e_1.\"occurred_at\" \
         AND EXISTS (SELECT 1 FROM \"app\".\"events\" AS e_3 WHERE e_3.\"lead_id\" = l.\"id\" AND (e_3.\"amount\" > '1'::numeric) \
         AND e_3.\"occurred_at\" > e_2.\"occurred_at\")))"
    );
    assert!(!c.time_dependent);
    assert_eq!(c.filters[0].sql, "true");
    assert_err(
        err6(r#"{"sequence":{"steps":[{},{}]}}"#, Kind::Account),
        SqlState::InvalidParameterValue,
        "invalid rule at $: \"sequence\" conditions are only allowed in lead rules, not in account rules",
        Some("in an account rule, count leads with events: {\"leads\":{\"where\":{\"sequence\":{…}}}}"),
    );
    // through leads in an account rule
    let acc = compile(
        &Rule::parse_text(r#"{"leads":{"where":{"sequence":{"steps":[{"type":"a"},{"type":"b"}]}}}}"#).unwrap(),
        Kind::Account,
        &cat6(),
    )
    .unwrap();
    assert!(acc.sql.contains("AS e_2 WHERE e_2.\"lead_id\" = l_1.\"id\""), "{}", acc.sql);
    assert_eq!(
        err6(r#"{"sequence":{"steps":[{"where":{"field":"nope","op":"is_set"}},{}]}}"#, Kind::Lead).message,
        "invalid rule at $.sequence.steps[0].where.field: unknown field \"nope\" for kind \"event\" (table app.events)"
    );
}

#[test]
fn maintenance_sees_value_reads_as_not_row_only() {
    use super::maintain::{capture_plan, SegmentPlan};
    let cat = cat6();
    let plan = |rule: &str| {
        let c = compiled6(rule);
        let s = SegmentPlan {
            id: 1,
            kind: Kind::Lead,
            sql: c.sql.clone(),
            reads: c.reads.clone(),
            sibling_reads: BTreeSet::new(),
            filters: c.filters.clone(),
            building: false,
            membership: c.reads_membership,
        };
        capture_plan(&cat, &s, &c.filters, Kind::Event).filters.is_some()
    };
    assert!(plan(r#"{"event":{"type":"login","stopped":"30 days"}}"#));
    assert!(plan(r#"{"event":{"type":"login","within":"30 days"}}"#));
    assert!(!plan(r#"{"event":{"sum":{"field":"amount","op":"gt","value":1}}}"#));
    assert!(!plan(r#"{"event":{"type":"signup","first_within":"7 days"}}"#));
    assert!(!plan(r#"{"sequence":{"steps":[{"type":"a"},{"type":"b"}]}}"#));
}

#[test]
fn lint_explains_the_new_time_conditions() {
    use crate::compile::analyze::lint;
    let msgs = |rule: &str| -> Vec<String> {
        lint(&Rule::parse_text(rule).unwrap()).into_iter().map(|f| format!("{} {}: {}", f.severity, f.path, f.message)).collect()
    };
    assert_eq!(
        msgs(r#"{"field":"d","op":"in_period","value":"this_month","tz":"Europe/Paris"}"#),
        vec!["info $: calendar period: \"this_month\" changes at the start of each month in its time zone \"Europe/Paris\"; a saved segment is refreshed at that boundary when kenbun.refresh_due() is scheduled"]
    );
    assert_eq!(
        msgs(r#"{"field":"d","op":"in_period","value":"last_week"}"#),
        vec!["info $: calendar period: \"last_week\" changes at the start of each week in its time zone (kenbun.timezone, else the session's TimeZone); a saved segment is refreshed at that boundary when kenbun.refresh_due() is scheduled"]
    );
    let window = "time window: membership changes as time passes; a saved segment is refreshed every refresh_every (default 1 hour) when kenbun.refresh_due() is scheduled";
    for rule in [
        r#"{"field":"d","op":"between_ago","value":["30 days","7 days"]}"#,
        r#"{"field":"d","op":"in_next","value":"7 days"}"#,
        r#"{"event":{"type":"a","first_within":"7 days"}}"#,
        r#"{"event":{"type":"a","stopped":"7 days"}}"#,
        r#"{"sequence":{"steps":[{},{}],"within":"7 days"}}"#,
    ] {
        assert_eq!(msgs(rule), vec![format!("info $: {window}")], "{rule}");
    }
    assert_eq!(
        msgs(r#"{"not":{"event":{"avg":{"field":"amount","op":"gt","value":1}}}}"#),
        vec!["info $.not: \"avg\" of no events has no value: a lead with no matching event is not a member (and is one under this \"not\")"]
    );
    use crate::compile::analyze::{describe, json_paths};
    let r = Rule::parse_text(r#"{"field":"d","op":"in_period","value":"today","tz":"Asia/Tokyo"}"#).unwrap();
    assert_eq!(describe(&r), "d in_period \"today\" (time zone \"Asia/Tokyo\")");
    // index advice sees the JSON paths a sequence step filters on and an aggregate reads
    let r = Rule::parse_text(
        r#"{"all":[{"event":{"sum":{"field":"metadata.n","op":"gt","value":1}}},{"sequence":{"steps":[{},{"where":{"field":"metadata.url","op":"eq","value":"/"}}]}}]}"#,
    )
    .unwrap();
    let paths: Vec<(Kind, String, Vec<String>, String)> = json_paths(&r, Kind::Lead, &cat6());
    assert_eq!(
        paths,
        vec![
            (Kind::Event, "metadata".to_string(), vec!["n".to_string()], "$.all[0].event.sum".to_string()),
            (Kind::Event, "metadata".to_string(), vec!["url".to_string()], "$.all[1].sequence.steps[1].where".to_string()),
        ]
    );
    assert_eq!(
        msgs(r#"{"sequence":{"steps":[{},{"where":{"field":"u","op":"in","value":["a"]}}]}}"#),
        vec!["info $.sequence.steps[1].where: a list of one value: \"eq\" says the same"]
    );
}
