//! The life cycle of a database that uses kenbun: pg_dump and pg_restore (custom, plain and
//! directory formats, --schema-only and --data-only), DROP EXTENSION with and without CASCADE,
//! unbind, and a database upgraded from 0.2.0 going through both.
//! `scripts/test.sh live` sets KENBUN_TEST_DSN, KENBUN_PG_BIN (pg_dump, pg_restore, psql),
//! KENBUN_DUMP_DIR (writable by the server's user) and, as root, KENBUN_RUN_AS=postgres.
#[path = "common/db.rs"]
mod db;

use db::{connect, dsn, recreate_database};
use postgres::Client;
use std::process::Command;

struct Tools {
    bin: String,
    dir: String,
    run_as: Option<String>,
}

fn tools() -> Option<Tools> {
    dsn()?;
    let (Ok(bin), Ok(dir)) = (std::env::var("KENBUN_PG_BIN"), std::env::var("KENBUN_DUMP_DIR")) else {
        return None;
    };
    Some(Tools {
        bin,
        dir,
        run_as: std::env::var("KENBUN_RUN_AS").ok().filter(|u| !u.is_empty()),
    })
}

macro_rules! tools_or_skip {
    () => {
        match tools() {
            Some(t) => t,
            None => {
                eprintln!("KENBUN_TEST_DSN, KENBUN_PG_BIN or KENBUN_DUMP_DIR not set: skipped");
                return;
            }
        }
    };
}

impl Tools {
    /// Runs a client program (as KENBUN_RUN_AS when set); returns (success, stderr).
    fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let path = format!("{}/{program}", self.bin);
        let mut cmd = match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", &path]);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Like run, but the program must exit 0 and write nothing to stderr (no error or warning ignored).
    fn ok(&self, program: &str, args: &[&str]) {
        let (ok, err) = self.run(program, args);
        assert!(ok && err.trim().is_empty(), "{program} {args:?} failed: {err}");
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    fn rm(&self, name: &str) {
        let p = self.path(name);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
    }
}

fn conninfo(db: &str) -> String {
    format!("{} dbname={db}", dsn().unwrap())
}

/// The scenario of the issue: accounts, leads and events bound, a mapped field, levels, segments of
/// both kinds (one referencing another, one inactive) and a change log with enters and exits.
fn build_source(db: &str, create_extension: &str) -> Client {
    recreate_database(db);
    let mut c = connect(db);
    c.batch_execute(&format!(
        r#"
        SET client_min_messages = warning;
        {create_extension};
        CREATE TABLE accounts(id bigint PRIMARY KEY, name text);
        CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, score int);
        CREATE TABLE events(lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
        INSERT INTO accounts SELECT g, CASE WHEN g % 3 = 0 THEN 'Acme' ELSE 'Other ' || g END FROM generate_series(1, 30) g;
        INSERT INTO leads SELECT g, 1 + g % 30, (g * 37) % 100 FROM generate_series(1, 400) g;
        INSERT INTO events SELECT 1 + (g * 7) % 400, CASE WHEN g % 2 = 0 THEN 'click' ELSE 'view' END,
                                  now() - g * interval '1 minute', '{{}}' FROM generate_series(1, 300) g;
        SELECT kenbun.bind_accounts('accounts');
        SELECT kenbun.bind_leads('leads', account_key => 'account_id');
        SELECT kenbun.bind_events('events');
        SELECT kenbun.map_field('account', 'company', 'name', 'text');
        SELECT kenbun.define_levels('engagement', 'score', '[{{"name":"Cold","min":0}},{{"name":"Warm","min":40}},{{"name":"Hot","min":75}}]');
        INSERT INTO kenbun.segments (name, kind, description, rule) VALUES
          ('hot', 'lead', 'hot leads', '{{"level":"engagement","op":"eq","value":"Hot"}}'),
          ('hot_at_acme', 'lead', NULL, '{{"all":[{{"segment":"hot"}},{{"account":{{"field":"company","op":"eq","value":"Acme"}}}}]}}'),
          ('clickers', 'lead', NULL, '{{"event":{{"type":"click","count":{{"op":"gte","value":1}}}}}}'),
          ('acme_accounts', 'account', 'Acme', '{{"field":"company","op":"eq","value":"Acme"}}'),
          ('hot_accounts', 'account', NULL, '{{"leads":{{"where":{{"segment":"hot"}},"count":{{"op":"gte","value":3}}}}}}'),
          ('dormant', 'lead', 'switched off', '{{"level":"engagement","op":"eq","value":"Cold"}}');
        UPDATE kenbun.segments SET active = false WHERE name = 'dormant';
        UPDATE leads SET score = 99 WHERE id % 17 = 0;
        UPDATE accounts SET name = 'Acme' WHERE id IN (1, 2);
        DELETE FROM leads WHERE id % 50 = 0;
        INSERT INTO events SELECT id, 'click', now(), '{{}}' FROM leads WHERE id % 23 = 0;
        DELETE FROM kenbun.segments WHERE name = 'clickers';
        INSERT INTO kenbun.segments (name, kind, rule) VALUES
          ('clickers', 'lead', '{{"event":{{"type":"click","count":{{"op":"gte","value":2}}}}}}');
        "#
    ))
    .unwrap();
    c
}

/// Everything that must survive a dump and restore, as text: the catalog (every column), the
/// membership tables, the change log (ids included), the sequences' positions, kenbun's triggers on
/// the bound tables and the generated trigger functions.
fn snapshot(c: &mut Client) -> Vec<(String, String)> {
    let parts = [
        ("segments", "SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM kenbun.segments x"),
        ("fields", "SELECT string_agg(x::text, E'\\n' ORDER BY x.kind, x.name) FROM kenbun.fields x"),
        ("levels", "SELECT string_agg(x::text, E'\\n' ORDER BY x.name) FROM kenbun.levels x"),
        ("bindings", "SELECT string_agg(x::text, E'\\n' ORDER BY x.kind) FROM kenbun.bindings x"),
        ("lead_members", "SELECT string_agg(x::text, E'\\n' ORDER BY x.segment_id, x.lead_id) FROM kenbun.lead_members x"),
        ("account_members", "SELECT string_agg(x::text, E'\\n' ORDER BY x.segment_id, x.account_id) FROM kenbun.account_members x"),
        ("membership_changes", "SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM kenbun.membership_changes x"),
        ("sequences", "SELECT (SELECT last_value || ' ' || is_called FROM kenbun.segments_id_seq) || ' ' || (SELECT last_value || ' ' || is_called FROM kenbun.membership_changes_id_seq)"),
        ("triggers", "SELECT string_agg(pg_get_triggerdef(t.oid), E'\\n' ORDER BY t.tgrelid::regclass::text, t.tgname)
                        FROM pg_trigger t WHERE t.tgrelid IN ('accounts'::regclass, 'leads'::regclass, 'events'::regclass)"),
        ("functions", "SELECT string_agg(p.oid::regprocedure::text || ' ' || p.prosecdef || ' ' || md5(p.prosrc), E'\\n' ORDER BY p.proname)
                         FROM pg_proc p WHERE p.pronamespace = 'kenbun'::regnamespace AND p.proname LIKE '\\_maintain\\_%\\_%'"),
    ];
    parts
        .iter()
        .map(|(name, q)| {
            let v: Option<String> = c.query_one(*q, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}")).get(0);
            (name.to_string(), v.unwrap_or_default())
        })
        .collect()
}

fn assert_same(source: &[(String, String)], restored: &[(String, String)], how: &str) {
    for ((name, a), (_, b)) in source.iter().zip(restored) {
        assert!(!a.is_empty() || name == "fields", "{how}: source {name} is empty");
        assert_eq!(a, b, "{how}: {name} differs after the restore");
    }
}

/// After a restore: writes to every bound table keep membership true, the change log continues above
/// the restored ids, and a new segment can be created and fills.
fn keeps_working(c: &mut Client, how: &str) {
    let max_id: i64 = c
        .query_one("SELECT max(id) FROM kenbun.membership_changes", &[])
        .unwrap()
        .get(0);
    c.batch_execute(
        r#"UPDATE leads SET score = 95 WHERE id % 7 = 0;
           UPDATE leads SET account_id = 3 WHERE id % 11 = 0;
           INSERT INTO leads SELECT g, 3, 90 FROM generate_series(1001, 1020) g;
           DELETE FROM leads WHERE id % 13 = 0;
           INSERT INTO events SELECT id, 'click', now(), '{}' FROM leads WHERE id % 5 = 0;
           DELETE FROM events WHERE lead_id % 9 = 0;
           UPDATE accounts SET name = 'Acme' WHERE id IN (4, 5);
           UPDATE accounts SET name = 'Gone' WHERE id = 3;
           INSERT INTO accounts VALUES (31, 'Acme');"#,
    )
    .unwrap_or_else(|e| panic!("{how}: writes after the restore: {e}"));
    let drift: Vec<(String, String, String)> = c
        .query(
            "SELECT s.name, d.problem, d.member_id FROM kenbun.segments s, kenbun.segment_drift(s.name) d ORDER BY 1, 2, 3",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(drift.is_empty(), "{how}: drift after writes: {drift:?}");
    assert!(
        db::replay_mismatches(c).is_empty(),
        "{how}: the change log does not replay to the membership"
    );
    // (ids are the primary key: had the sequence not come along, the writes above would have failed)
    let n_new: i64 = c
        .query_one(
            "SELECT count(*) FROM kenbun.membership_changes WHERE id > $1",
            &[&max_id],
        )
        .unwrap()
        .get(0);
    assert!(n_new > 0, "{how}: the change log did not continue above {max_id}");
    c.batch_execute(
        r#"INSERT INTO kenbun.segments (name, kind, rule) VALUES ('after_restore', 'lead', '{"field":"score","op":"gte","value":90}')"#,
    )
    .unwrap_or_else(|e| panic!("{how}: a new segment: {e}"));
    let (members, expected): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM kenbun.lead_members m JOIN kenbun.segments s ON s.id = m.segment_id WHERE s.name = 'after_restore'),
                        (SELECT count(*) FROM leads WHERE score >= 90)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(
        expected > 0 && members == expected,
        "{how}: new segment has {members} members, expected {expected}"
    );
    assert!(db::drift_rows(c).is_empty(), "{how}: drift after the new segment");
}

/// Dumps `src` in `format` and restores it into the empty database `dst`.
fn dump_and_restore(t: &Tools, src: &str, dst: &str, format: &str) {
    recreate_database(dst);
    let file = t.path(&format!("{src}.{format}"));
    t.rm(&format!("{src}.{format}"));
    match format {
        "custom" => {
            t.ok("pg_dump", &["-Fc", "-f", &file, "-d", &conninfo(src)]);
            t.ok("pg_restore", &["--exit-on-error", "-d", &conninfo(dst), &file]);
        }
        "plain" => {
            t.ok("pg_dump", &["-Fp", "-f", &file, "-d", &conninfo(src)]);
            t.ok(
                "psql",
                &[
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-o",
                    "/dev/null",
                    "-f",
                    &file,
                    "-d",
                    &conninfo(dst),
                ],
            );
        }
        "directory" => {
            t.ok("pg_dump", &["-Fd", "-f", &file, "-d", &conninfo(src)]);
            t.ok(
                "pg_restore",
                &["--exit-on-error", "-j", "2", "-d", &conninfo(dst), &file],
            );
        }
        _ => unreachable!(),
    }
}

#[test]
fn dump_and_restore_keep_every_segment_in_every_format() {
    let t = tools_or_skip!();
    let mut src = build_source("kenbun_life_src", "CREATE EXTENSION kenbun");
    let before = snapshot(&mut src);
    for format in ["custom", "plain", "directory"] {
        let dst = format!("kenbun_life_{format}");
        dump_and_restore(&t, "kenbun_life_src", &dst, format);
        let mut c = connect(&dst);
        assert_same(&before, &snapshot(&mut c), format);
        keeps_working(&mut c, format);
    }
    // the source is unchanged by being dumped
    assert_same(&before, &snapshot(&mut src), "source");
}

/// --schema-only brings kenbun's triggers, trigger functions and (empty) membership tables but none of
/// its definitions (they are the extension's configuration data); --data-only must then be restored
/// with --disable-triggers, or the bound tables' triggers fill membership while their rows load and
/// the dumped membership and change log collide with it.
#[test]
fn schema_only_then_data_only_with_disable_triggers() {
    let t = tools_or_skip!();
    let mut src = build_source("kenbun_life_split", "CREATE EXTENSION kenbun");
    let before = snapshot(&mut src);
    let (schema, data) = (t.path("split.schema"), t.path("split.data"));
    t.rm("split.schema");
    t.rm("split.data");
    t.ok(
        "pg_dump",
        &[
            "-Fc",
            "--schema-only",
            "-f",
            &schema,
            "-d",
            &conninfo("kenbun_life_split"),
        ],
    );
    t.ok(
        "pg_dump",
        &["-Fc", "--data-only", "-f", &data, "-d", &conninfo("kenbun_life_split")],
    );

    recreate_database("kenbun_life_schema");
    t.ok(
        "pg_restore",
        &["--exit-on-error", "-d", &conninfo("kenbun_life_schema"), &schema],
    );
    let mut c = connect("kenbun_life_schema");
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM kenbun.segments) + (SELECT count(*) FROM kenbun.bindings),
                    (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'kenbun\\_%')",
            &[],
        )
        .unwrap();
    let (definitions, triggers): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!(definitions, 0, "--schema-only carried definitions");
    assert!(
        triggers > 0,
        "--schema-only left out kenbun's triggers on the bound tables"
    );
    drop(c);

    // without --disable-triggers the data cannot be loaded
    let (ok, err) = t.run(
        "pg_restore",
        &[
            "--exit-on-error",
            "--data-only",
            "-d",
            &conninfo("kenbun_life_schema"),
            &data,
        ],
    );
    assert!(
        !ok && err.contains("membership"),
        "--data-only without --disable-triggers: {ok} {err}"
    );
    recreate_database("kenbun_life_schema");
    t.ok(
        "pg_restore",
        &["--exit-on-error", "-d", &conninfo("kenbun_life_schema"), &schema],
    );
    t.ok(
        "pg_restore",
        &[
            "--exit-on-error",
            "--data-only",
            "--disable-triggers",
            "-d",
            &conninfo("kenbun_life_schema"),
            &data,
        ],
    );
    let mut c = connect("kenbun_life_schema");
    assert_same(&before, &snapshot(&mut c), "schema-only + data-only");
    keeps_working(&mut c, "schema-only + data-only");
}

/// What is left of kenbun in the database: (what, name) of every object.
fn leftovers(c: &mut Client, old_schema: u32) -> Vec<(String, String)> {
    c.query(
        r#"SELECT 'schema', nspname::text FROM pg_namespace WHERE nspname = 'kenbun' OR oid = $1::oid
           UNION ALL SELECT 'relation', oid::regclass::text FROM pg_class WHERE relnamespace = $1::oid OR relname ~ '^(lead|account)_members'
           UNION ALL SELECT 'function', oid::regprocedure::text FROM pg_proc
                      WHERE pronamespace = $1::oid OR proname LIKE '\_maintain%' OR proname LIKE '\_capture%' OR prosrc LIKE '%kenbun%'
           UNION ALL SELECT 'trigger', tgname || ' on ' || tgrelid::regclass FROM pg_trigger
                      WHERE tgname LIKE 'kenbun%' OR tgfoid IN (SELECT oid FROM pg_proc WHERE pronamespace = $1::oid)
           UNION ALL SELECT 'dependency', classid::regclass || ' ' || objid || ' -> ' || refclassid::regclass || ' ' || refobjid
                      FROM pg_depend
                     WHERE (refclassid = 'pg_extension'::regclass AND refobjid NOT IN (SELECT oid FROM pg_extension))
                        OR (refclassid = 'pg_namespace'::regclass AND refobjid = $1::oid)
           UNION ALL SELECT 'extension', extname::text FROM pg_extension WHERE extname = 'kenbun'
           ORDER BY 1, 2"#,
        &[&old_schema],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn kenbun_schema_oid(c: &mut Client) -> u32 {
    c.query_one("SELECT 'kenbun'::regnamespace::oid", &[]).unwrap().get(0)
}

/// Writes to each formerly bound table succeed (nothing of kenbun fires).
fn app_writes_work(c: &mut Client, how: &str) {
    c.batch_execute(
        r#"INSERT INTO accounts VALUES (9001, 'Acme');
           UPDATE accounts SET name = name || '!';
           INSERT INTO leads VALUES (9001, 9001, 99);
           UPDATE leads SET score = score + 1, account_id = 1;
           DELETE FROM leads WHERE id % 3 = 0;
           INSERT INTO events VALUES (9001, 'click', now(), '{}');
           UPDATE events SET type = 'view';
           DELETE FROM events WHERE lead_id % 2 = 0;
           TRUNCATE events;
           TRUNCATE leads;"#,
    )
    .unwrap_or_else(|e| panic!("{how}: writes to the formerly bound tables: {e}"));
}

/// DROP EXTENSION kenbun CASCADE leaves nothing of kenbun behind, and CREATE EXTENSION starts clean.
fn drop_cascade_and_recreate(c: &mut Client, how: &str) {
    let schema = kenbun_schema_oid(c);
    c.batch_execute("SET client_min_messages = warning; DROP EXTENSION kenbun CASCADE")
        .unwrap_or_else(|e| panic!("{how}: DROP EXTENSION kenbun CASCADE: {e}"));
    let left = leftovers(c, schema);
    assert!(
        left.is_empty(),
        "{how}: left after DROP EXTENSION kenbun CASCADE: {left:?}"
    );
    app_writes_work(c, how);
    c.batch_execute("CREATE EXTENSION kenbun").unwrap();
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM kenbun.segments) + (SELECT count(*) FROM kenbun.bindings)
                  + (SELECT count(*) FROM kenbun.membership_changes),
                    (SELECT count(*) FROM pg_class WHERE relnamespace = 'kenbun'::regnamespace AND relname ~ '^(lead|account)_members'),
                    (SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('accounts'::regclass, 'leads'::regclass, 'events'::regclass))",
            &[],
        )
        .unwrap();
    let (rows, member_tables, triggers): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    assert_eq!(
        (rows, member_tables, triggers),
        (0, 0, 0),
        "{how}: CREATE EXTENSION after the drop is not clean"
    );
    // and works: bind again, a segment fills
    c.batch_execute(
        r#"INSERT INTO leads SELECT g, 1, g FROM generate_series(1, 50) g;
           SELECT kenbun.bind_leads('leads', account_key => 'account_id');
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('again', 'lead', '{"field":"score","op":"gte","value":40}');"#,
    )
    .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM kenbun.lead_members", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 11, "{how}: the re-created extension does not fill");
    assert!(db::drift_rows(c).is_empty());
    c.batch_execute("SET client_min_messages = warning; DROP EXTENSION kenbun CASCADE")
        .unwrap();
}

#[test]
fn drop_extension_without_cascade_works_or_refuses_with_the_list() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    // nothing bound: works without CASCADE
    recreate_database("kenbun_life_drop");
    let mut c = connect("kenbun_life_drop");
    c.batch_execute("CREATE EXTENSION kenbun; CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, score int)")
        .unwrap();
    let schema = kenbun_schema_oid(&mut c);
    c.batch_execute("DROP EXTENSION kenbun").unwrap();
    assert!(leftovers(&mut c, schema).is_empty());
    // bound, no segment yet: refuses and says what depends on it, then CASCADE works
    c.batch_execute("CREATE EXTENSION kenbun; SELECT kenbun.bind_leads('leads', account_key => 'account_id')")
        .unwrap();
    let err = c.batch_execute("DROP EXTENSION kenbun").unwrap_err();
    let db_err = err.as_db_error().expect("a database error");
    assert_eq!(db_err.code().code(), "2BP01", "{db_err:?}");
    let detail = db_err.detail().unwrap_or_default();
    assert!(
        detail.contains("table kenbun.lead_members depends on schema kenbun"),
        "{detail}"
    );
    assert_eq!(
        db_err.hint(),
        Some("Use DROP ... CASCADE to drop the dependent objects too.")
    );
    let schema = kenbun_schema_oid(&mut c);
    c.batch_execute("DROP EXTENSION kenbun CASCADE").unwrap();
    assert!(leftovers(&mut c, schema).is_empty());

    // segments defined: the refusal lists the generated functions and the triggers on the tables
    let mut c = build_source("kenbun_life_drop", "CREATE EXTENSION kenbun");
    let err = c.batch_execute("DROP EXTENSION kenbun").unwrap_err();
    let detail = err
        .as_db_error()
        .and_then(|e| e.detail())
        .unwrap_or_default()
        .to_string();
    for needle in [
        "function kenbun._maintain_lead_insert() depends on schema kenbun",
        "trigger kenbun_maintain_insert on table leads depends on function kenbun._maintain_lead_insert()",
        "table kenbun.account_members depends on schema kenbun",
    ] {
        assert!(
            detail.contains(needle),
            "DROP EXTENSION kenbun does not say {needle:?}: {detail}"
        );
    }
    // and nothing was dropped
    keeps_working(&mut c, "after the refused DROP EXTENSION");
}

#[test]
fn drop_extension_cascade_removes_everything_in_every_state() {
    let t = tools_or_skip!();
    // segments defined, one inactive (the issue's scenario)
    let mut c = build_source("kenbun_life_cascade", "CREATE EXTENSION kenbun");
    drop_cascade_and_recreate(&mut c, "segments defined");
    // kinds bound, no segment
    let mut c = build_source("kenbun_life_cascade", "CREATE EXTENSION kenbun");
    c.batch_execute(
        "DELETE FROM kenbun.segments WHERE name IN ('hot_at_acme', 'hot_accounts'); DELETE FROM kenbun.segments;",
    )
    .unwrap();
    drop_cascade_and_recreate(&mut c, "bound, no segments");
    // a kind bound, the others never
    recreate_database("kenbun_life_cascade");
    let mut c = connect("kenbun_life_cascade");
    c.batch_execute(
        r#"CREATE EXTENSION kenbun;
           CREATE TABLE accounts(id bigint PRIMARY KEY, name text);
           CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, score int);
           CREATE TABLE events(lead_id bigint, type text, occurred_at timestamptz, metadata jsonb);
           SELECT kenbun.bind_accounts('accounts');
           INSERT INTO kenbun.segments (name, kind, rule) VALUES ('a', 'account', '{"field":"name","op":"eq","value":"x"}');"#,
    )
    .unwrap();
    drop_cascade_and_recreate(&mut c, "one kind bound");
    // a restored database: what pg_restore created goes too
    build_source("kenbun_life_cascade_src", "CREATE EXTENSION kenbun");
    dump_and_restore(&t, "kenbun_life_cascade_src", "kenbun_life_cascade", "custom");
    let mut c = connect("kenbun_life_cascade");
    drop_cascade_and_recreate(&mut c, "restored");
}

#[test]
fn unbind_leaves_the_table_clean() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    let mut c = build_source("kenbun_life_unbind", "CREATE EXTENSION kenbun");
    c.batch_execute(
        "SET client_min_messages = warning;
         DELETE FROM kenbun.segments WHERE name IN ('hot_at_acme', 'hot_accounts'); DELETE FROM kenbun.segments;
         SELECT kenbun.unbind('event'); SELECT kenbun.unbind('lead'); SELECT kenbun.unbind('account');",
    )
    .unwrap();
    let left: Vec<String> = c
        .query(
            r#"SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass FROM pg_trigger
                WHERE tgrelid IN ('accounts'::regclass, 'leads'::regclass, 'events'::regclass)
               UNION ALL SELECT 'function ' || p.oid::regprocedure FROM pg_proc p
                WHERE p.pronamespace = 'kenbun'::regnamespace AND p.proname LIKE '\_maintain\_%\_%'
                  -- generated ones: the extension's own (_maintain_row_flush) stay
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                     AND d.objid = p.oid AND d.deptype = 'e')
               UNION ALL SELECT 'table ' || oid::regclass FROM pg_class
                WHERE relnamespace = 'kenbun'::regnamespace AND relname ~ '^(lead|account)_members'"#,
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(left.is_empty(), "left after unbinding every kind: {left:?}");
    app_writes_work(&mut c, "unbound");
    // the extension itself is now as fresh: DROP EXTENSION needs no CASCADE
    c.batch_execute("DROP EXTENSION kenbun").unwrap();
}

/// A database created with 0.2.0 and updated: dumps and restores in every format, and DROP EXTENSION
/// kenbun CASCADE removes everything (before 0.3.0 it left the generated objects behind).
#[test]
fn upgraded_from_0_2_0_dumps_restores_and_drops() {
    let t = tools_or_skip!();
    let mut src = build_source("kenbun_life_upgraded", "CREATE EXTENSION kenbun VERSION '0.2.0'");
    src.batch_execute("ALTER EXTENSION kenbun UPDATE").unwrap();
    let r = src
        .query_one(
            "SELECT e.extnamespace::regnamespace::text,
                    EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                              AND d.objid = 'kenbun'::regnamespace AND d.refobjid = e.oid AND d.deptype = 'e')
               FROM pg_extension e WHERE e.extname = 'kenbun'",
            &[],
        )
        .unwrap();
    let (nsp, member): (String, bool) = (r.get(0), r.get(1));
    assert_eq!(
        (nsp.as_str(), member),
        ("pg_catalog", true),
        "after ALTER EXTENSION kenbun UPDATE"
    );
    let before = snapshot(&mut src);
    for format in ["custom", "plain", "directory"] {
        let dst = format!("kenbun_life_upgraded_{format}");
        dump_and_restore(&t, "kenbun_life_upgraded", &dst, format);
        let mut c = connect(&dst);
        assert_same(&before, &snapshot(&mut c), &format!("upgraded, {format}"));
        keeps_working(&mut c, &format!("upgraded, {format}"));
    }
    keeps_working(&mut src, "upgraded");
    drop_cascade_and_recreate(&mut src, "upgraded");
}

/// The restore path keeps a row's compiled_sql, which later runs as the extension's owner: only a
/// superuser's session gets it. An admin who sets check_function_bodies = off and writes compiled_sql
/// still has the rule compiled by kenbun and membership filled.
#[test]
fn only_a_superuser_session_restores_a_segment_row_as_is() {
    if dsn().is_none() {
        eprintln!("KENBUN_TEST_DSN not set: skipped");
        return;
    }
    recreate_database("kenbun_life_restore_path");
    let mut c = connect("kenbun_life_restore_path");
    c.batch_execute(
        r#"SET client_min_messages = warning;
           CREATE EXTENSION kenbun;
           CREATE TABLE leads(id bigint PRIMARY KEY, account_id bigint, score int);
           INSERT INTO leads SELECT g, 1, g FROM generate_series(1, 100) g;
           SELECT kenbun.bind_leads('leads', account_key => 'account_id');
           DROP ROLE IF EXISTS kenbun_life_admin;
           CREATE ROLE kenbun_life_admin LOGIN IN ROLE kenbun_admin;
           GRANT SELECT, TRIGGER ON leads TO kenbun_life_admin;"#,
    )
    .unwrap();
    let mut admin = db::try_connect("kenbun_life_restore_path", "user=kenbun_life_admin").unwrap();
    admin
        .batch_execute(
            r#"SET check_function_bodies = off;
               INSERT INTO kenbun.segments (name, kind, rule, compiled_sql)
               VALUES ('by_admin', 'lead', '{"field":"score","op":"gte","value":90}', 'true');"#,
        )
        .unwrap();
    drop(admin);
    // the superuser's session with check_function_bodies off: taken as a restore, kept, not filled
    c.batch_execute(
        r#"SET check_function_bodies = off;
           INSERT INTO kenbun.segments (name, kind, rule, compiled_sql)
           VALUES ('as_restored', 'lead', '{"field":"score","op":"gte","value":90}', '(l."score" >= ''90''::bigint)');
           RESET check_function_bodies;"#,
    )
    .unwrap();
    let rows: Vec<(String, String, i64)> = c
        .query(
            "SELECT s.name, s.compiled_sql, (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = s.id)
               FROM kenbun.segments s ORDER BY s.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows[0].0, "by_admin");
    assert_ne!(rows[0].1, "true", "an admin's compiled_sql was kept");
    assert_eq!(rows[0].2, 11, "an admin's segment was not filled");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].2),
        ("as_restored", 0),
        "a restored row was filled"
    );
    c.batch_execute("DROP EXTENSION kenbun CASCADE").unwrap();
    drop(c);
    recreate_database("kenbun_life_restore_path");
    connect("postgres")
        .batch_execute("DROP ROLE kenbun_life_admin")
        .unwrap();
}
