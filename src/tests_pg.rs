//! Tests inside PostgreSQL (`cargo pgrx test pg15`).
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Deterministic xorshift generator: the same 200+ rules on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    fn fixture() {
        Spi::run(
            r#"
            CREATE TABLE d_accounts (id int PRIMARY KEY, industry text, employees int);
            CREATE TABLE d_leads (id bigint PRIMARY KEY, account_id int, country text, score int, vip boolean,
                                  last_seen_at timestamptz, attributes jsonb);
            CREATE TABLE d_events (lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
            INSERT INTO d_accounts
              SELECT i, (ARRAY['SaaS','Retail','Health',NULL])[1 + i % 4], CASE WHEN i % 5 = 0 THEN NULL ELSE (i * 37) % 900 END
              FROM generate_series(1, 15) i;
            INSERT INTO d_leads
              SELECT i,
                     CASE WHEN i % 9 = 0 THEN NULL ELSE 1 + (i * 7) % 15 END,
                     (ARRAY['US','CA','DE','us','Fr',NULL])[1 + (i * 5) % 6],
                     CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 13) % 100 END,
                     CASE i % 3 WHEN 0 THEN true WHEN 1 THEN false ELSE NULL END,
                     CASE WHEN i % 8 = 0 THEN NULL ELSE now() - ((i * 17) % 90) * interval '1 day' - interval '1 hour' END,
                     CASE i % 7 WHEN 0 THEN NULL
                                WHEN 1 THEN jsonb_build_object('plan', 'pro', 'seats', i % 10)
                                WHEN 2 THEN jsonb_build_object('plan', 'free', 'seats', 'many')
                                WHEN 3 THEN jsonb_build_object('plan', NULL)
                                ELSE jsonb_build_object('plan', (ARRAY['pro','team','free'])[1 + i % 3], 'seats', (i * 3) % 20,
                                                        'tags', (ARRAY['["a"]', '["a","b"]', '[]', '"a"', '["c","b"]'])[1 + i % 5]::jsonb) END
              FROM generate_series(1, 300) i;
            INSERT INTO d_events
              SELECT 1 + (j * 31) % 300,
                     (ARRAY['page_view','page_view','email_open','demo_request'])[1 + j % 4],
                     now() - ((j * 7) % 60) * interval '1 day' - interval '1 hour',
                     jsonb_build_object('url', (ARRAY['/pricing','/home','/blog'])[1 + j % 3],
                                        'amount', CASE j % 6 WHEN 0 THEN NULL WHEN 1 THEN to_jsonb('n/a'::text) ELSE to_jsonb((j * 13) % 200) END)
              FROM generate_series(1, 900) j;
            SELECT kenbun.bind_leads('d_leads', 'id', 'account_id');
            SELECT kenbun.bind_accounts('d_accounts');
            SELECT kenbun.bind_events('d_events');
            SELECT kenbun.define_levels('eng', 'score',
              '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]');
            "#,
        )
        .unwrap();
    }

    /// A random rule and, written independently of the compiler, the SQL it should mean over
    /// `d_leads` (or `d_accounts`) with plain three-valued SQL made two-valued by COALESCE.
    fn gen(r: &mut Rng, depth: u32, kind: &str, t: &str) -> (String, String) {
        let leaf = depth == 0 || r.below(3) == 0;
        if !leaf {
            let n = r.below(4) as usize;
            let parts: Vec<(String, String)> = (0..n).map(|_| gen(r, depth - 1, kind, t)).collect();
            let rules: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
            let sqls: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
            return match r.below(3) {
                0 => (
                    format!(r#"{{"all":[{}]}}"#, rules.join(",")),
                    if n == 0 {
                        "true".into()
                    } else {
                        format!("({})", sqls.join(" AND "))
                    },
                ),
                1 => (
                    format!(r#"{{"any":[{}]}}"#, rules.join(",")),
                    if n == 0 {
                        "false".into()
                    } else {
                        format!("({})", sqls.join(" OR "))
                    },
                ),
                _ => {
                    let (rule, sql) = gen(r, depth - 1, kind, t);
                    (format!(r#"{{"not":{rule}}}"#), format!("(NOT {sql})"))
                }
            };
        }
        if kind == "account" {
            return match r.below(4) {
                0 => {
                    let v = *r.pick(&["SaaS", "Retail", "Health"]);
                    (
                        format!(r#"{{"field":"industry","op":"eq","value":"{v}"}}"#),
                        format!("COALESCE({t}.industry = '{v}', false)"),
                    )
                }
                1 => {
                    let n = r.below(900);
                    (
                        format!(r#"{{"field":"employees","op":"lt","value":{n}}}"#),
                        format!("COALESCE({t}.employees < {n}, false)"),
                    )
                }
                _ => {
                    let (lr, ls) = gen(r, 1, "lead", "x");
                    let n = r.below(4);
                    let (op, sqlop) = *r.pick(&[("gte", ">="), ("eq", "="), ("lt", "<")]);
                    (
                        format!(r#"{{"leads":{{"where":{lr},"count":{{"op":"{op}","value":{n}}}}}}}"#),
                        format!("((SELECT count(*) FROM d_leads x WHERE x.account_id = {t}.id AND {ls}) {sqlop} {n})"),
                    )
                }
            };
        }
        let c = |e: String| format!("COALESCE({e}, false)");
        match r.below(19) {
            0 => {
                let v = *r.pick(&["US", "CA", "us", "DE", "Fr"]);
                let (op, s) = *r.pick(&[("eq", "="), ("neq", "<>"), ("gt", ">"), ("lte", "<=")]);
                let sql = if op == "neq" {
                    format!("NOT {}", c(format!("{t}.country = '{v}'")))
                } else {
                    c(format!("{t}.country {s} '{v}'"))
                };
                (format!(r#"{{"field":"country","op":"{op}","value":"{v}"}}"#), sql)
            }
            1 => {
                let v = *r.pick(&["u", "S", "f", "xx"]);
                match r.below(4) {
                    0 => (
                        format!(r#"{{"field":"country","op":"contains","value":"{v}"}}"#),
                        c(format!("position(lower('{v}') in lower({t}.country)) > 0")),
                    ),
                    1 => (
                        format!(r#"{{"field":"country","op":"not_contains","value":"{v}"}}"#),
                        format!("NOT {}", c(format!("position(lower('{v}') in lower({t}.country)) > 0"))),
                    ),
                    2 => (
                        format!(r#"{{"field":"country","op":"starts_with","value":"{v}"}}"#),
                        c(format!("lower(left({t}.country, {})) = lower('{v}')", v.len())),
                    ),
                    _ => (
                        format!(r#"{{"field":"country","op":"ends_with","value":"{v}"}}"#),
                        c(format!("lower(right({t}.country, {})) = lower('{v}')", v.len())),
                    ),
                }
            }
            2 => {
                let (op, neg) = *r.pick(&[("in", false), ("not_in", true)]);
                let sql = c(format!("{t}.country = ANY(ARRAY['US','DE'])"));
                (
                    format!(r#"{{"field":"country","op":"{op}","value":["US","DE"]}}"#),
                    if neg { format!("NOT {sql}") } else { sql },
                )
            }
            3 => {
                let n = r.below(100);
                let (op, s) = *r.pick(&[("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<="), ("eq", "=")]);
                (
                    format!(r#"{{"field":"score","op":"{op}","value":{n}}}"#),
                    c(format!("{t}.score {s} {n}")),
                )
            }
            4 => {
                let a = r.below(60);
                let b = a + r.below(50);
                (
                    format!(r#"{{"field":"score","op":"between","value":[{a},{b}]}}"#),
                    c(format!("{t}.score >= {a} AND {t}.score <= {b}")),
                )
            }
            5 => {
                let f = *r.pick(&[
                    "score",
                    "vip",
                    "country",
                    "last_seen_at",
                    "attributes",
                    "attributes.plan",
                    "attributes.seats",
                ]);
                let expr = match f {
                    "attributes.plan" => format!("{t}.attributes ->> 'plan'"),
                    "attributes.seats" => format!("{t}.attributes ->> 'seats'"),
                    other => format!("{t}.{other}"),
                };
                if r.below(2) == 0 {
                    (
                        format!(r#"{{"field":"{f}","op":"is_set"}}"#),
                        format!("({expr} IS NOT NULL)"),
                    )
                } else {
                    (
                        format!(r#"{{"field":"{f}","op":"is_not_set"}}"#),
                        format!("({expr} IS NULL)"),
                    )
                }
            }
            6 => {
                let b = r.below(2) == 0;
                if r.below(2) == 0 {
                    (
                        format!(r#"{{"field":"vip","op":"eq","value":{b}}}"#),
                        c(format!("{t}.vip = {b}")),
                    )
                } else {
                    (
                        format!(r#"{{"field":"vip","op":"neq","value":{b}}}"#),
                        format!("NOT {}", c(format!("{t}.vip = {b}"))),
                    )
                }
            }
            7 => {
                let d = 1 + r.below(90);
                let sql = c(format!("{t}.last_seen_at >= now() - interval '{d} days'"));
                if r.below(2) == 0 {
                    (
                        format!(r#"{{"field":"last_seen_at","op":"within_last","value":"{d} days"}}"#),
                        sql,
                    )
                } else {
                    (
                        format!(r#"{{"field":"last_seen_at","op":"not_within_last","value":"{d} days"}}"#),
                        format!("NOT {sql}"),
                    )
                }
            }
            8 => {
                let v = *r.pick(&["pro", "team", "free"]);
                (
                    format!(r#"{{"field":"attributes.plan","op":"eq","value":"{v}"}}"#),
                    c(format!("{t}.attributes ->> 'plan' = '{v}'")),
                )
            }
            9 => {
                let n = r.below(20);
                (
                    format!(r#"{{"field":"attributes.seats","op":"gte","value":{n}}}"#),
                    c(format!("CASE WHEN jsonb_typeof({t}.attributes -> 'seats') = 'number' THEN ({t}.attributes ->> 'seats')::numeric >= {n} END")),
                )
            }
            10 => {
                let tiers = [
                    ("Cold", 0, Some(25)),
                    ("Warm", 25, Some(50)),
                    ("Hot", 50, Some(75)),
                    ("On Fire", 75, None),
                ];
                let i = r.below(4) as usize;
                let (op, sel): (&str, Vec<usize>) = match r.below(4) {
                    0 => ("eq", vec![i]),
                    1 => ("gte", (i..4).collect()),
                    2 => ("lt", (0..i).collect()),
                    _ => ("neq", vec![i]),
                };
                let ranges: Vec<String> = sel
                    .iter()
                    .map(|&j| match tiers[j].2 {
                        Some(hi) => format!("({t}.score >= {} AND {t}.score < {hi})", tiers[j].1),
                        None => format!("({t}.score >= {})", tiers[j].1),
                    })
                    .collect();
                let any = if ranges.is_empty() {
                    "false".to_string()
                } else {
                    c(format!("({})", ranges.join(" OR ")))
                };
                let sql = if op == "neq" { format!("NOT {any}") } else { any };
                (
                    format!(r#"{{"level":"eng","op":"{op}","value":"{}"}}"#, tiers[i].0),
                    sql,
                )
            }
            11 => {
                let v = *r.pick(&["SaaS", "Retail"]);
                (
                    format!(r#"{{"account":{{"field":"industry","op":"eq","value":"{v}"}}}}"#),
                    c(format!(
                        "(SELECT a.industry = '{v}' FROM d_accounts a WHERE a.id = {t}.account_id)"
                    )),
                )
            }
            14 => {
                // multi-value operators over a JSON array (0.6.0), against a hand-written element test
                let vals: &[&str] = *r.pick(&[&["a"][..], &["a", "b"][..], &["b", "c"][..]]);
                let op = *r.pick(&["has_any", "has_all", "has_none"]);
                let list = vals.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(",");
                let elems = format!("jsonb_array_elements_text(CASE WHEN jsonb_typeof({t}.attributes -> 'tags') = 'array' THEN {t}.attributes -> 'tags' END)");
                let any = format!("EXISTS (SELECT 1 FROM {elems} e WHERE e IN ({list}))");
                let all = format!("((SELECT count(DISTINCT e) FROM {elems} e WHERE e IN ({list})) = {})", vals.len());
                let json = serde_json::to_string(vals).unwrap();
                (
                    format!(r#"{{"field":"attributes.tags","op":"{op}","value":{json}}}"#),
                    match op {
                        "has_any" => any,
                        "has_all" => all,
                        _ => format!("NOT {any}"),
                    },
                )
            }
            15 => {
                // an aggregate of a metadata number (0.6.0): non-numbers skipped; no events: sum 0, avg none
                let ty = *r.pick(&["page_view", "email_open", "demo_request"]);
                let f = *r.pick(&["sum", "avg", "max", "min"]);
                let n = r.below(if f == "sum" { 600 } else { 200 });
                let (op, s) = *r.pick(&[("gte", ">="), ("lt", "<"), ("gt", ">")]);
                let num = "CASE WHEN jsonb_typeof(e.metadata -> 'amount') = 'number' THEN (e.metadata ->> 'amount')::numeric END";
                let agg = if f == "sum" { format!("COALESCE(sum({num}), 0)") } else { format!("{f}({num})") };
                (
                    format!(r#"{{"event":{{"type":"{ty}","{f}":{{"field":"metadata.amount","op":"{op}","value":{n}}}}}}}"#),
                    c(format!("((SELECT {agg} FROM d_events e WHERE e.lead_id = {t}.id AND e.type = '{ty}') {s} {n})")),
                )
            }
            16 => {
                // a sequence of two event types (0.6.0), as a self-join
                let a = *r.pick(&["page_view", "email_open"]);
                let b = *r.pick(&["demo_request", "email_open", "page_view"]);
                let g = 1 + r.below(30);
                (
                    format!(r#"{{"sequence":{{"steps":[{{"type":"{a}"}},{{"type":"{b}"}}],"max_gap":"{g} days"}}}}"#),
                    format!("EXISTS (SELECT 1 FROM d_events sx JOIN d_events sy ON sy.lead_id = sx.lead_id WHERE sx.lead_id = {t}.id AND sx.type = '{a}' AND sy.type = '{b}' AND sy.occurred_at > sx.occurred_at AND sy.occurred_at <= sx.occurred_at + interval '{g} days')"),
                )
            }
            17 => {
                // first_within and stopped (0.6.0); event times are whole days minus an hour, windows whole days
                let ty = *r.pick(&["page_view", "email_open", "demo_request"]);
                let d = 1 + r.below(60);
                if r.below(2) == 0 {
                    (
                        format!(r#"{{"event":{{"type":"{ty}","first_within":"{d} days"}}}}"#),
                        c(format!("(SELECT min(e.occurred_at) FROM d_events e WHERE e.lead_id = {t}.id AND e.type = '{ty}') >= now() - interval '{d} days'")),
                    )
                } else {
                    let m = 1 + r.below(3);
                    (
                        format!(r#"{{"event":{{"type":"{ty}","stopped":"{d} days","min_before":{m}}}}}"#),
                        format!("((SELECT count(*) FROM d_events e WHERE e.lead_id = {t}.id AND e.type = '{ty}' AND e.occurred_at < now() - interval '{d} days') >= {m} AND NOT EXISTS (SELECT 1 FROM d_events e WHERE e.lead_id = {t}.id AND e.type = '{ty}' AND e.occurred_at >= now() - interval '{d} days'))"),
                    )
                }
            }
            18 => {
                // a window in the past (0.6.0)
                let a = 10 + r.below(80);
                let b = r.below(a);
                (
                    format!(r#"{{"field":"last_seen_at","op":"between_ago","value":["{a} days","{b} days"]}}"#),
                    c(format!("{t}.last_seen_at >= now() - interval '{a} days' AND {t}.last_seen_at < now() - interval '{b} days'")),
                )
            }
            _ => {
                let ty = *r.pick(&["page_view", "email_open", "demo_request"]);
                let n = r.below(4);
                let days = 1 + r.below(60);
                let (op, s) = *r.pick(&[("gte", ">="), ("eq", "="), ("lt", "<"), ("gt", ">")]);
                let url = *r.pick(&["/pricing", "/home"]);
                if r.below(2) == 0 {
                    (
                        format!(r#"{{"event":{{"type":"{ty}","within":"{days} days","count":{{"op":"{op}","value":{n}}}}}}}"#),
                        format!("((SELECT count(*) FROM d_events e WHERE e.lead_id = {t}.id AND e.type = '{ty}' AND e.occurred_at >= now() - interval '{days} days') {s} {n})"),
                    )
                } else {
                    (
                        format!(r#"{{"event":{{"where":{{"field":"metadata.url","op":"eq","value":"{url}"}},"count":{{"op":"{op}","value":{n}}}}}}}"#),
                        format!("((SELECT count(*) FROM d_events e WHERE e.lead_id = {t}.id AND e.metadata ->> 'url' = '{url}') {s} {n})"),
                    )
                }
            }
        }
    }

    #[pg_test]
    fn differential_segment_count_matches_hand_written_sql() {
        fixture();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let mut checked = 0;
        let mut nontrivial = 0;
        for i in 0..260 {
            let kind = if i % 5 == 4 { "account" } else { "lead" };
            let (table, alias) = if kind == "lead" {
                ("d_leads", "l")
            } else {
                ("d_accounts", "a")
            };
            let (rule, sql) = gen(&mut r, 3, kind, alias);
            let got = Spi::get_one_with_args::<i64>(
                "SELECT kenbun.segment_count($1::kenbun.segment_rule, $2)",
                &[rule.as_str().into(), kind.into()],
            )
            .unwrap_or_else(|e| panic!("{rule}: {e}"))
            .unwrap();
            let want = Spi::get_one::<i64>(&format!("SELECT count(*) FROM {table} {alias} WHERE {sql}"))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .unwrap();
            let total = if kind == "lead" { 300 } else { 15 };
            assert_eq!(got, want, "rule {rule}\nexpected SQL {sql}");
            if want > 0 && want < total {
                nontrivial += 1;
            }
            checked += 1;
        }
        assert_eq!(checked, 260);
        // the generator must produce rules that split the data, or the comparison proves little
        assert!(nontrivial >= 150, "only {nontrivial} rules selected a proper subset");
    }

    #[pg_test]
    fn rule_type_round_trips_and_casts() {
        let out =
            Spi::get_one::<String>(r#"SELECT ('{"op":"eq","value":1,"field":"a"}'::jsonb::kenbun.segment_rule)::text"#)
                .unwrap();
        assert_eq!(out.as_deref(), Some(r#"{"field":"a","op":"eq","value":1}"#));
    }

    #[pg_test(error = "invalid rule at $.all[0].op: unknown operator \"nope\"")]
    fn rule_input_rejects_bad_operator() {
        Spi::run(r#"SELECT '{"all":[{"field":"a","op":"nope","value":1}]}'::kenbun.segment_rule"#).unwrap();
    }

    #[pg_test]
    fn preview_orders_by_key_and_limits() {
        fixture();
        let ids = Spi::get_one::<String>(
            r#"SELECT string_agg(member_id, ',') FROM kenbun.segment_preview('{"field":"vip","op":"eq","value":true}', 'lead', 4)"#,
        )
        .unwrap();
        assert_eq!(ids.as_deref(), Some("3,6,9,12"));
    }
}
