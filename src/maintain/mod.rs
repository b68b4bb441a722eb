//! The pgrx side of saved segments: compiling a segment for the catalog trigger and installing the
//! generated maintenance triggers on the bound tables.
mod capture;
mod decide;
mod row;

use crate::api::{check_regexes, load_catalog, raise, segment_rule};
use crate::compile::maintain::{dollar_tag, fast_maintenance, maintenance, SegmentPlan, TrigOp};
use crate::compile::sql::{ident, literal};
use crate::compile::{self, Kind};
use crate::error::{KenbunError, SqlState};
use crate::rule::Rule;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Rows captured by the row-level UPDATE triggers of the current statement, per bound table.
struct Captured {
    table: String,
    col: i32,
    k_old: Option<String>,
    k_new: Option<String>,
    a_old: Option<String>,
    a_new: Option<String>,
}

struct Pending {
    xid: u32,
    rows: Vec<Captured>,
}

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { xid: 0, rows: Vec::new() }) };
}

fn top_xid() -> u32 {
    // SAFETY: called inside a transaction that has written (an UPDATE fired us), so it has an xid
    unsafe { u32::from(pgrx::pg_sys::GetTopTransactionId()) }
}

fn key_text(t: &PgHeapTuple<'_, impl WhoAllocated>, col: &str, ty: &str) -> Option<String> {
    let r = match ty {
        "bigint" => t.get_by_name::<i64>(col).map(|v| v.map(|x| x.to_string())),
        "integer" => t.get_by_name::<i32>(col).map(|v| v.map(|x| x.to_string())),
        "uuid" => t.get_by_name::<pgrx::Uuid>(col).map(|v| v.map(|x| x.to_string())),
        _ => t.get_by_name::<String>(col),
    };
    r.unwrap_or_else(|e| {
        raise(KenbunError::new(
            SqlState::DatatypeMismatch,
            format!("kenbun capture of column \"{col}\": {e}"),
        ))
    })
}

/// Row-level AFTER UPDATE OF <column> trigger: records the old and new key (and account key) of a
/// row whose column changed. Arguments: table kind, column index, key column, key type[, account
/// column, account type].
#[pg_trigger]
fn _capture_update<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::PgTriggerError> {
    let args = trigger.extra_args()?;
    let (Some(old), Some(new)) = (trigger.old(), trigger.new()) else {
        return Ok(None);
    };
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let (k_old, k_new) = (key_text(&old, arg(2), arg(3)), key_text(&new, arg(2), arg(3)));
    let (a_old, a_new) = if arg(4).is_empty() {
        (None, None)
    } else {
        (key_text(&old, arg(4), arg(5)), key_text(&new, arg(4), arg(5)))
    };
    let xid = top_xid();
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.xid != xid {
            p.xid = xid;
            p.rows.clear();
        }
        p.rows.push(Captured {
            table: arg(0).to_string(),
            col: arg(1).parse().unwrap_or(0),
            k_old,
            k_new,
            a_old,
            a_new,
        });
    });
    Ok(None)
}

/// What the capture triggers recorded for a table, one row per (new key, old key), with the indexes
/// of the columns that changed.
#[pg_extern(volatile)]
fn _pending(
    kind: &str,
) -> TableIterator<
    'static,
    (
        name!(k_new, Option<String>),
        name!(k_old, Option<String>),
        name!(a_new, Option<String>),
        name!(a_old, Option<String>),
        name!(cols, Vec<i32>),
    ),
> {
    let xid = top_xid();
    let mut grouped: BTreeMap<(Option<String>, Option<String>, Option<String>, Option<String>), Vec<i32>> =
        BTreeMap::new();
    PENDING.with(|p| {
        let p = p.borrow();
        if p.xid == xid {
            for r in p.rows.iter().filter(|r| r.table == kind) {
                let cols = grouped
                    .entry((r.k_new.clone(), r.k_old.clone(), r.a_new.clone(), r.a_old.clone()))
                    .or_default();
                if !cols.contains(&r.col) {
                    cols.push(r.col);
                }
            }
        }
    });
    TableIterator::new(grouped.into_iter().map(|((kn, ko, an, ao), c)| (kn, ko, an, ao, c)))
}

#[pg_extern(volatile)]
fn _pending_clear(kind: &str) {
    PENDING.with(|p| p.borrow_mut().rows.retain(|r| r.table != kind));
    if let Some(k) = Kind::from_name(kind) {
        capture::clear(k);
    }
}

extension_sql_file!(
    "../../sql/segments.sql",
    name = "segments",
    requires = ["segment_rule_casts"]
);

extension_sql_file!("../../sql/changes.sql", name = "changes", requires = ["segments"]);

fn kind_of(s: &str) -> Kind {
    Kind::from_name(s).unwrap_or_else(|| {
        raise(KenbunError::new(
            SqlState::InvalidParameterValue,
            format!("invalid kind \"{s}\""),
        ))
    })
}

/// Compiles a saved segment's definition against the catalog, with the segment itself replaced by
/// this definition: its rule (NULL only for a static segment), whether it is a static list
/// (`seg_type` 'static') and whether it has manual overrides. Returns {sql, time_dependent, reads,
/// refs, boundaries, fill}: `fill` is the SQL of a static segment's rule, for its one initial fill.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn _compile_saved(
    rule: Option<segment_rule>,
    kind: &str,
    name: &str,
    id: Option<i64>,
    seg_type: default!(&str, "'dynamic'"),
    overrides: default!(bool, false),
) -> JsonB {
    let kind = kind_of(kind);
    let mut parsed = rule.as_ref().map(|r| Rule::parse_text(r.text()).unwrap_or_else(|e| raise(e)));
    let mut cat = load_catalog();
    // calendar conditions keep the time zone in effect now (the stored rule says which)
    let tz = cat.timezone.clone().unwrap_or_else(|| "UTC".into());
    let filled = parsed.as_mut().is_some_and(|p| p.fill_time_zone(&tz));
    cat.segments.retain(|s| Some(s.id) != id && s.name != name);
    let me = compile::catalog::SegmentDef {
        id: id.unwrap_or(0),
        name: name.to_string(),
        kind: kind.name().to_string(),
        rule: parsed.as_ref().map(Rule::to_json).unwrap_or_default(),
        is_static: seg_type == "static",
        overrides,
    };
    cat.segments.push(me.clone());
    let (c, fill) = compile::compile_saved(parsed.as_ref(), kind, &cat, &me).unwrap_or_else(|e| raise(e));
    check_regexes(fill.as_ref().unwrap_or(&c));
    let mut refs = if me.is_static { vec![] } else { parsed.as_ref().map(Rule::segment_refs).unwrap_or_default() };
    refs.dedup();
    JsonB(json!({
        "sql": c.sql,
        "time_dependent": c.time_dependent,
        // [kind, column] for everything read; [kind, column, "sibling"] for what is read of the other
        // leads of a lead's account; [kind, key, "membership"] when it reads kenbun's membership or
        // overrides (a static list, manual overrides)
        "reads": c.reads.iter().map(|(k, col)| json!([k.name(), col]))
            .chain(c.sibling_reads.iter().map(|(k, col)| json!([k.name(), col, "sibling"])))
            .chain(c.reads_membership.then(|| json!([kind.name(), cat.binding(kind).and_then(|b| b.key.clone()).unwrap_or_default(), "membership"])))
            .collect::<Vec<_>>(),
        "refs": refs,
        "fill": fill.map(|f| f.public_sql()),
        "boundaries": c.boundaries.iter().map(|(u, z)| json!([u, z])).collect::<Vec<_>>(),
        "rule": if filled { parsed.as_ref().map(Rule::to_json) } else { None },
    }))
}

/// The compile of 0.5.0 and before (a dynamic segment without overrides). The upgrade scripts from
/// older versions run their own segments_before, which calls it with four arguments, while this
/// library is loaded: it must keep its signature.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn _segment_compile(rule: segment_rule, kind: &str, name: &str, id: Option<i64>) -> JsonB {
    _compile_saved(Some(rule), kind, name, id, "dynamic", false)
}

/// The columns the field of a level reads ([[kind, column], …]), after checking that the field is
/// numeric in at least one bound kind (42703 unknown, 42804 not numeric); for kenbun.define_levels.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn _level_field_reads(field: &str) -> JsonB {
    let reads = compile::level_field_reads(field, &load_catalog()).unwrap_or_else(|e| raise(e));
    JsonB(json!(reads
        .iter()
        .map(|(k, c)| json!([k.name(), c]))
        .collect::<Vec<_>>()))
}

/// kenbun's triggers, as (trigger, table), on every table that has them: the bound tables, and a table
/// that was bound before a kind was re-bound to another one (its triggers must go too, or they would go
/// on maintaining the new table's membership from the old table's writes).
fn kenbun_triggers_except(names: &[String], tables: &[String]) -> Vec<(String, String)> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT t.tgname::text, t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
              WHERE p.pronamespace = 'kenbun'::regnamespace AND NOT t.tgisinternal
                AND (t.tgname LIKE 'kenbun\\_capture%' OR t.tgname LIKE 'kenbun\\_maintain\\_%')
                AND NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS k(n, tb)
                                 WHERE k.n = t.tgname::text AND pg_catalog.to_regclass(k.tb) = t.tgrelid)
              ORDER BY t.tgrelid, t.tgname",
            None,
            &[names.to_vec().into(), tables.to_vec().into()],
        )?;
        let mut out = vec![];
        for r in rows {
            if let (Some(n), Some(t)) = (r.get::<String>(1)?, r.get::<String>(2)?) {
                out.push((n, t));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_default()
}

/// The active, compiled segments (those with the given ids), with their rules' text, in id order.
pub(crate) fn stored_segments(ids: Option<&[i64]>) -> Vec<(SegmentPlan, String)> {
    Spi::connect(|c| {
        let mut out = vec![];
        let rows = c.select(
            // status: read through to_jsonb, because an older version's upgrade script runs this before the column exists
            "SELECT s.id, s.kind, s.compiled_sql, s.reads, s.rule::text, pg_catalog.to_jsonb(s) ->> 'status' = 'building' FROM kenbun.segments s WHERE s.active AND s.compiled_sql IS NOT NULL AND ($1::bigint[] IS NULL OR s.id = ANY ($1)) ORDER BY s.id",
            None,
            &[ids.map(|i| i.to_vec()).into()],
        )?;
        for r in rows {
            let reads: JsonB = r.get(4)?.unwrap_or(JsonB(json!([])));
            let plan = SegmentPlan::from_stored(
                r.get::<i64>(1)?.unwrap_or_default(),
                kind_of(&r.get::<String>(2)?.unwrap_or_default()),
                r.get::<String>(3)?.unwrap_or_default(),
                &reads.0,
            );
            let mut plan = plan;
            plan.building = r.get::<bool>(6)?.unwrap_or(false);
            out.push((plan, r.get::<String>(5)?.unwrap_or_default()));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| raise(KenbunError::new(SqlState::ObjectNotInPrerequisiteState, format!("reading segments: {e}"))))
}

/// Regenerates the maintenance functions and triggers of every bound table from the active segments.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn _rebuild_maintenance() {
    let cat = load_catalog();
    // with the conditions their rules put on rows (compiled again here: they are not stored)
    let segs: Vec<SegmentPlan> = stored_segments(None)
        .into_iter()
        .map(|(mut p, rule)| {
            p.filters = Rule::parse_text(&rule)
                .ok()
                .and_then(|r| compile::compile(&r, p.kind, &cat).ok())
                .map(|c| c.filters)
                .unwrap_or_default();
            p
        })
        .collect();
    let mut ddl = vec![];
    // per table: (columns, key column, account key column, segment ids) of the UPDATE capture
    let mut slow_parts: BTreeMap<Kind, (Vec<String>, String, String, Vec<i64>)> = BTreeMap::new();
    // the triggers the segments need, as (name, table): created or replaced (CREATE OR REPLACE TRIGGER
    // takes SHARE ROW EXCLUSIVE; DROP TRIGGER would take ACCESS EXCLUSIVE, which stops readers too);
    // only the triggers no longer needed are dropped (below)
    let mut made: Vec<(String, String)> = vec![];
    // Inside an extension script (an upgrade that recompiles segments) PostgreSQL refuses to replace
    // a function that is not a member, and would make a new one a member, which pg_dump then leaves
    // out: drop, create, and take it out of the extension again.
    // SAFETY: a backend global, read in the backend's own thread
    let in_extension_script = unsafe { pgrx::pg_sys::creating_extension };
    // the row trigger's functions exist from 0.4.0 on (older upgrade scripts run with this library)
    let row_triggers = Spi::get_one::<bool>("SELECT pg_catalog.to_regprocedure('kenbun._maintain_row()') IS NOT NULL")
        .ok()
        .flatten()
        .unwrap_or(false);
    for spec in maintenance(&cat, &segs, row_triggers) {
        let tag = dollar_tag(&spec.body);
        if in_extension_script {
            ddl.push(format!("DROP FUNCTION IF EXISTS {}()", spec.function));
        }
        ddl.push(format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS {tag}\n{}\n{tag}",
            spec.function, spec.body
        ));
        if in_extension_script {
            ddl.push(format!("ALTER EXTENSION kenbun DROP FUNCTION {}()", spec.function));
        }
        let table = cat.binding(spec.table).map(|b| b.qualified()).unwrap_or_default();
        let trig_name = format!("kenbun_maintain_{}", spec.op.name());
        let trig = ident(&trig_name);
        match spec.op {
            TrigOp::Insert | TrigOp::Delete => {
                let (event, referencing) = if spec.op == TrigOp::Insert {
                    ("INSERT", "NEW TABLE AS kenbun_new")
                } else {
                    ("DELETE", "OLD TABLE AS kenbun_old")
                };
                ddl.push(format!(
                    "CREATE OR REPLACE TRIGGER {trig} AFTER {event} ON {table} REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
                    spec.function
                ));
                made.push((trig_name.clone(), table.clone()));
            }
            TrigOp::Update => {
                // PostgreSQL allows no transition tables on triggers with column lists, so UPDATE is
                // captured per changed column by row triggers and processed once per statement
                if spec.update_of.is_empty() {
                    continue;
                }
                let cols = spec.update_of.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                ddl.push(format!(
                    "CREATE OR REPLACE TRIGGER {trig} AFTER UPDATE OF {cols} ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
                    spec.function
                ));
                made.push((trig_name.clone(), table.clone()));
                let (kt, acc) = &spec.key_types;
                let tkey = match spec.table {
                    Kind::Event => cat.binding(spec.table).and_then(|b| b.lead_key.clone()),
                    _ => cat.binding(spec.table).and_then(|b| b.key.clone()),
                }
                .unwrap_or_default();
                if !spec.capture_ids.is_empty() {
                    // captured by the one row trigger of the table (below)
                    let acc_col = acc.as_ref().map(|(c, _)| c.clone()).unwrap_or_default();
                    slow_parts.insert(spec.table, (spec.update_of.clone(), tkey.clone(), acc_col, spec.capture_ids.clone()));
                    continue;
                }
                for (col, idx, as_text) in &spec.capture {
                    let c = ident(col);
                    let when = if *as_text {
                        format!("OLD.{c}::text IS DISTINCT FROM NEW.{c}::text")
                    } else {
                        format!("OLD.{c} IS DISTINCT FROM NEW.{c}")
                    };
                    let mut args = vec![
                        literal(spec.table.name()),
                        literal(&idx.to_string()),
                        literal(&tkey),
                        literal(kt),
                    ];
                    if let Some((ac, at)) = acc {
                        args.push(literal(ac));
                        args.push(literal(at));
                    }
                    ddl.push(format!(
                        "CREATE OR REPLACE TRIGGER {} AFTER UPDATE OF {c} ON {table} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION kenbun._capture_update({})",
                        ident(&format!("kenbun_capture_{idx}")),
                        args.join(", ")
                    ));
                    made.push((format!("kenbun_capture_{idx}"), table.clone()));
                }
            }
        }
        if spec.op == TrigOp::Delete {
            ddl.push(format!(
                "CREATE OR REPLACE TRIGGER kenbun_maintain_truncate AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION kenbun._maintain_truncate({})",
                literal(spec.table.name())
            ));
            made.push(("kenbun_maintain_truncate".into(), table.clone()));
        }
    }
    // one row trigger per table for UPDATE: the row-only segments it decides (with their
    // statement-level flush), and the capture for the statement-level function
    let fast: BTreeMap<Kind, _> = fast_maintenance(&cat, &segs)
        .into_iter()
        .filter(|_| row_triggers)
        .map(|f| (f.table, f))
        .collect();
    for kind in [Kind::Lead, Kind::Account, Kind::Event] {
        let (f, slow) = (fast.get(&kind), slow_parts.get(&kind));
        let Some(b) = cat.binding(kind) else { continue };
        if f.is_none() && slow.is_none() {
            continue;
        }
        let table = b.qualified();
        let mut cols: std::collections::BTreeSet<String> = f.map(|f| f.update_of.iter().cloned().collect()).unwrap_or_default();
        if let Some((c, _, _, _)) = slow {
            cols.extend(c.iter().cloned());
        }
        let cols = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let csv = |ids: &[i64]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let key = slow.map(|s| s.1.clone()).unwrap_or_else(|| b.key.clone().unwrap_or_default());
        let args = [
            literal(kind.name()),
            literal(&key),
            literal(slow.map(|s| s.2.as_str()).unwrap_or("")),
            literal(&f.map(|f| csv(&f.segment_ids)).unwrap_or_default()),
            literal(&slow.map(|s| csv(&s.3)).unwrap_or_default()),
        ];
        ddl.push(format!(
            "CREATE OR REPLACE TRIGGER kenbun_maintain_row AFTER UPDATE OF {cols} ON {table} FOR EACH ROW EXECUTE FUNCTION kenbun._maintain_row({})",
            args.join(", ")
        ));
        made.push(("kenbun_maintain_row".into(), table.clone()));
        if let Some(f) = f {
            ddl.push(format!(
                "CREATE OR REPLACE TRIGGER kenbun_maintain_row_flush AFTER UPDATE OF {} ON {table} FOR EACH STATEMENT EXECUTE FUNCTION kenbun._maintain_row_flush({}, {})",
                f.update_of.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "),
                literal(kind.name()),
                literal(&f.key_type)
            ));
            made.push(("kenbun_maintain_row_flush".into(), table.clone()));
        }
    }
    // drop what is no longer needed first (a re-bound kind's old table loses all of kenbun's triggers)
    let (names, tables): (Vec<String>, Vec<String>) = made.into_iter().unzip();
    // (inside an extension script the functions are dropped and created again: every trigger goes first)
    let keep = |v: &Vec<String>| if in_extension_script { vec![] } else { v.clone() };
    let mut drops: Vec<String> = kenbun_triggers_except(&keep(&names), &keep(&tables))
        .into_iter()
        .map(|(t, table)| format!("DROP TRIGGER {} ON {table}", ident(&t)))
        .collect();
    drops.extend(ddl);
    let ddl = drops;
    Spi::connect_mut(|c| {
        for stmt in &ddl {
            c.update(stmt.as_str(), None, &[])?;
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .unwrap_or_else(|e| {
        raise(KenbunError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("installing maintenance triggers: {e}"),
        ))
    });
}

extension_sql!(
    "ALTER FUNCTION kenbun._pending(text) ROWS 10;\nALTER FUNCTION kenbun._pending_rows(text) ROWS 10;",
    name = "pending_rows",
    requires = [_pending, capture::_pending_rows]
);
