//! The SQL interface: thin wrappers that load the catalog, call the pure compiler and run SQL.
use crate::compile::sql::ident;
use crate::compile::{self, root_alias, Catalog, Compiled, Kind};
use crate::error::{KenbunError, SqlState};
use crate::rule::Rule;
use pgrx::prelude::*;
use pgrx::{InOutFuncs, JsonB, PgSqlErrorCode, StringInfo};
use serde::{Deserialize, Serialize};
use std::ffi::CStr;

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);

/// Raises a kenbun error as a PostgreSQL ERROR with its SQLSTATE and hint.
pub fn raise(e: KenbunError) -> ! {
    let code = match e.code {
        SqlState::InvalidParameterValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        SqlState::InvalidTextRepresentation => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        SqlState::InvalidDatetimeFormat => PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT,
        SqlState::InvalidRegularExpression => PgSqlErrorCode::ERRCODE_INVALID_REGULAR_EXPRESSION,
        SqlState::UndefinedColumn => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        SqlState::UndefinedObject => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        SqlState::DatatypeMismatch => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        SqlState::InvalidObjectDefinition => PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
        SqlState::ObjectNotInPrerequisiteState => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        SqlState::FeatureNotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        SqlState::ProgramLimitExceeded => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        SqlState::WrongObjectType => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
    };
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, e.message, "kenbun");
    if let Some(h) = e.hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn internal(msg: impl std::fmt::Display) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("kenbun: {msg}"),
        "kenbun",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

trait OrRaise<T> {
    fn or_raise(self) -> T;
}
impl<T> OrRaise<T> for Result<T, KenbunError> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}
impl<T> OrRaise<T> for Result<T, pgrx::spi::SpiError> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| internal(e))
    }
}

/// A segment rule. Its text form is the rule's canonical JSON; input validates the structure.
#[allow(non_camel_case_types)]
#[derive(PostgresType, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[inoutfuncs]
pub struct segment_rule(String);

impl segment_rule {
    pub fn text(&self) -> &str {
        &self.0
    }
    fn from_text(s: &str) -> segment_rule {
        segment_rule(Rule::parse_text(s).or_raise().to_canonical_string())
    }
    pub fn rule(&self) -> Rule {
        Rule::parse_text(&self.0).or_raise()
    }
}

impl InOutFuncs for segment_rule {
    fn input(input: &CStr) -> Self {
        let s = input.to_str().unwrap_or_else(|_| {
            raise(KenbunError::new(
                SqlState::InvalidTextRepresentation,
                "rule text is not valid UTF-8",
            ))
        });
        segment_rule::from_text(s)
    }
    fn output(&self, buffer: &mut StringInfo) {
        buffer.push_str(&self.0);
    }
}

/// The jsonb cast of 0.1.0. Kept (without SQL) so that databases still at 0.1.0 find the symbol;
/// since 0.2.0 the cast is WITH INOUT: pgrx's JsonB conversion fails with XX000 on numbers beyond
/// f64 or nesting beyond serde_json's limit, while the text input reports them cleanly.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn segment_rule_from_jsonb(doc: JsonB) -> segment_rule {
    segment_rule(Rule::parse(&doc.0).or_raise().to_canonical_string())
}

#[pg_extern(immutable, parallel_safe)]
fn segment_rule_to_jsonb(rule: segment_rule) -> JsonB {
    JsonB(serde_json::from_str(&rule.0).unwrap_or_else(|e| internal(e)))
}

extension_sql!(
    r#"
CREATE CAST (jsonb AS kenbun.segment_rule) WITH INOUT AS ASSIGNMENT;
CREATE CAST (kenbun.segment_rule AS jsonb) WITH FUNCTION kenbun.segment_rule_to_jsonb(kenbun.segment_rule) AS ASSIGNMENT;
CREATE CAST (json AS kenbun.segment_rule) WITH INOUT AS ASSIGNMENT;
"#,
    name = "segment_rule_casts",
    requires = [segment_rule_to_jsonb]
);

/// The JSON Schema (draft 2020-12) of the rule language, built from the parser's definitions
/// (`crate::rule::schema`): for client-side validation and rule builders. Runs no SQL; the
/// search_path is pinned like every function of the extension's (06_security lists the exceptions).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn rule_schema() -> JsonB {
    JsonB(crate::rule::schema::rule_schema())
}

// an anchor for sql/comments.sql, which documents these functions (see analysis.rs)
extension_sql!(
    "-- the functions of api.rs exist from here on\n",
    name = "api_functions",
    requires = [rule_schema, compile, segment_preview, segment_count, "segment_rule_casts"]
);

pub fn parse_kind(kind: &str) -> Kind {
    match Kind::from_name(kind) {
        Some(k @ (Kind::Lead | Kind::Account)) => k,
        _ => raise(
            KenbunError::new(SqlState::InvalidParameterValue, format!("invalid kind \"{kind}\""))
                .hint("kind is \"lead\" or \"account\""),
        ),
    }
}

/// Reads bindings, mapped fields, levels and segments in one query.
/// The catalog as this statement sees it, read afresh: for definition changes (a segment's trigger,
/// `define_levels`, the trigger generator), which may run several times within one statement.
pub fn load_catalog() -> Catalog {
    let doc = Spi::connect(|c| {
        c.select("SELECT kenbun._catalog()", Some(1), &[])?
            .first()
            .get_one::<JsonB>()
    })
    .or_raise()
    .unwrap_or_else(|| internal("kenbun._catalog() returned NULL"));
    serde_json::from_value(doc.0).unwrap_or_else(|e| internal(format!("catalog document: {e}")))
}

/// The catalog for the functions that only read it (`compile`, `segment_preview`, `segment_count`,
/// lint, diagnose, explain): cached per backend (`catalog_cache`).
pub fn cached_catalog() -> std::rc::Rc<Catalog> {
    let c = crate::catalog_cache::get(load_catalog);
    // the time zone is a setting, not in kenbun's tables: a session that changed it gets its own
    let tz = session_time_zone();
    if c.timezone.as_deref() == Some(tz.as_str()) {
        return c;
    }
    let mut own = (*c).clone();
    own.timezone = Some(tz);
    std::rc::Rc::new(own)
}

/// The time zone of calendar conditions without one: `kenbun.timezone`, else the session's TimeZone.
pub fn session_time_zone() -> String {
    Spi::get_one::<String>(
        "SELECT COALESCE(NULLIF(pg_catalog.current_setting('kenbun.timezone', true), ''), pg_catalog.current_setting('TimeZone'))",
    )
    .or_raise()
    .unwrap_or_else(|| "UTC".into())
}

/// Compiles a rule for a kind and validates what only PostgreSQL can check (regexes).
pub fn compile_rule(rule: &Rule, kind: Kind, cat: &Catalog, segment: Option<&str>) -> Compiled {
    let compiled = match segment {
        Some(name) => compile::compile_segment(rule, kind, cat, name),
        None => compile::compile(rule, kind, cat),
    }
    .or_raise();
    check_regexes(&compiled);
    compiled
}

/// Raises kenbun's error for what only PostgreSQL can check in a compiled rule: its regular
/// expressions and time zones.
pub fn check_regexes(compiled: &Compiled) {
    for tz in &compiled.time_zones {
        let known = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE pg_catalog.lower(name) = pg_catalog.lower($1))
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_abbrevs WHERE pg_catalog.lower(abbrev) = pg_catalog.lower($1))",
            &[tz.as_str().into()],
        )
        .or_raise()
        .unwrap_or(false);
        if !known {
            raise(
                KenbunError::new(SqlState::InvalidParameterValue, format!("time zone \"{tz}\" is not recognized"))
                    .hint("use a name from pg_timezone_names, such as \"Europe/Paris\" or \"UTC\" (set kenbun.timezone for the default)"),
            );
        }
    }
    for (pattern, path) in &compiled.regexes {
        let problem = Spi::connect(|c| {
            c.select("SELECT kenbun._regex_error($1)", Some(1), &[pattern.as_str().into()])?
                .first()
                .get_one::<String>()
        })
        .or_raise();
        if let Some(msg) = problem {
            raise(
                KenbunError::at(SqlState::InvalidRegularExpression, path, msg)
                    .hint("\"matches\" takes a POSIX regular expression, e.g. \"^[A-Z]{2}$\""),
            );
        }
    }
}

/// The SQL boolean expression a rule means over the bound table (aliased `l` for leads, `a` for
/// accounts). Never NULL.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn compile(rule: segment_rule, kind: default!(&str, "'lead'")) -> String {
    let kind = parse_kind(kind);
    compile_rule(&rule.rule(), kind, &cached_catalog(), None).public_sql()
}

fn check_limit(lim: i32) -> i64 {
    if lim < 0 {
        raise(KenbunError::new(
            SqlState::InvalidParameterValue,
            format!("lim must not be negative (got {lim})"),
        ));
    }
    lim as i64
}

/// `FROM <table> AS <alias> WHERE <rule>` for a compiled rule.
fn from_where(kind: Kind, cat: &Catalog, c: &Compiled) -> (String, String) {
    let b = cat.binding(kind).unwrap_or_else(|| internal("binding vanished"));
    let alias = root_alias(kind);
    let key = format!("{alias}.{}", ident(b.key.as_deref().unwrap_or("id")));
    (format!("FROM {} AS {alias} WHERE {}", b.qualified(), c.sql), key)
}

/// Matching rows of the bound table, ordered by key. Runs with the caller's rights: table
/// privileges and row-level security apply.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn segment_preview(
    rule: segment_rule,
    kind: default!(&str, "'lead'"),
    lim: default!(i32, 100),
) -> TableIterator<'static, (name!(member_id, Option<String>), name!(member, Option<JsonB>))> {
    let kind = parse_kind(kind);
    let lim = check_limit(lim);
    let cat = cached_catalog();
    let c = compile_rule(&rule.rule(), kind, &cat, None);
    let (fw, key) = from_where(kind, &cat, &c);
    let alias = root_alias(kind);
    let q = format!("SELECT ({key})::text, pg_catalog.to_jsonb({alias}) {fw} ORDER BY {key} LIMIT {lim}");
    let rows = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(&q, None, &[])? {
            out.push((row.get::<String>(1)?, row.get::<JsonB>(2)?));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .or_raise();
    TableIterator::new(rows)
}

/// How many rows of the bound table match the rule.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn segment_count(rule: segment_rule, kind: default!(&str, "'lead'")) -> i64 {
    let kind = parse_kind(kind);
    let cat = cached_catalog();
    let c = compile_rule(&rule.rule(), kind, &cat, None);
    let (fw, _) = from_where(kind, &cat, &c);
    Spi::connect(|client| {
        client
            .select(&format!("SELECT pg_catalog.count(*) {fw}"), Some(1), &[])?
            .first()
            .get_one::<i64>()
    })
    .or_raise()
    .unwrap_or(0)
}
