//! Trigger generation: the statement-level maintenance functions installed on the bound tables.
//!
//! For each bound table and each of INSERT, UPDATE and DELETE, kenbun generates one PL/pgSQL
//! function whose SQL is static (so PostgreSQL caches its plans) and holds the compiled rules of
//! every active segment that reads that table. One statement = one set-based pass:
//!
//! 1. lock the anchors of the members that may change (advisory locks on 256 stripes per kind,
//!    leads first, then accounts, each set in stripe order), so that two transactions touching the same lead or account serialize
//!    and the second one re-evaluates with the first one's data;
//! 2. in one statement (a fresh snapshot under READ COMMITTED): pair old and new rows by key to see
//!    which columns really changed, collect for each affected segment the candidate members, evaluate
//!    the segment's rule for just those, diff against the membership table, apply the diff, log it and
//!    notify.
use super::catalog::{Binding, Catalog, Kind};
use super::sql::{ident, literal};
use super::{class_of, root_alias, Class, Filter};
use std::collections::{BTreeMap, BTreeSet};

/// Advisory lock class ids (first argument of `pg_advisory_xact_lock(int, int)`).
pub const LOCK_LEAD: i32 = 748_300_001;
pub const LOCK_ACCOUNT: i32 = 748_300_002;
/// Members map to 256 lock stripes per kind: a bulk statement takes at most 512 advisory locks
/// (PostgreSQL's shared lock table holds max_locks_per_transaction × max_connections, 6,400 by
/// default), while two transactions on different members collide only 1 time in 256.
pub const LOCK_STRIPES_MASK: i32 = 255;
/// Above this many changed rows, one combined statement evaluates every affected segment.
pub const BULK_ROWS: i32 = 32;

/// An active segment as the generator needs it.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub id: i64,
    pub kind: Kind,
    /// TRUE-for-members expression over `root_alias(kind)`.
    pub sql: String,
    pub reads: BTreeSet<(Kind, String)>,
    /// What the rule reads of the other leads of a lead's account (`Compiled::sibling_reads`).
    pub sibling_reads: BTreeSet<(Kind, String)>,
    /// The compiled rule's conditions on rows (`Compiled::filters`); empty if not known.
    pub filters: Vec<Filter>,
    /// Status `building`: a batched build is filling or re-evaluating it (`kenbun.segment_build`).
    /// Maintenance then evaluates it on the set-based path, which locks the members' stripes and
    /// reads with a fresh snapshot, so that writes and the build's batches serialise per member.
    pub building: bool,
    /// Reads kenbun's membership or overrides (`Compiled::reads_membership`; the marker
    /// `[kind, key, "membership"]` in `reads`): its SQL has subqueries on kenbun's tables.
    pub membership: bool,
}

impl SegmentPlan {
    /// A segment as stored: `reads` is kenbun.segments.reads, `[[kind, column], …]` with
    /// `[kind, column, "sibling"]` for what is read of a lead's siblings.
    pub fn from_stored(id: i64, kind: Kind, sql: String, reads: &serde_json::Value) -> SegmentPlan {
        let pairs = |sibling: bool| -> BTreeSet<(Kind, String)> {
            reads
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| !sibling || p.get(2).and_then(|x| x.as_str()) == Some("sibling"))
                        .filter_map(|p| Some((Kind::from_name(p.get(0)?.as_str()?)?, p.get(1)?.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let membership = reads
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p.get(2).and_then(|x| x.as_str()) == Some("membership")));
        SegmentPlan { id, kind, sql, reads: pairs(false), sibling_reads: pairs(true), filters: vec![], building: false, membership }
    }

    /// The rule reads nothing but the member's own row (no account, event, sibling or other-table
    /// condition, directly or through a referenced segment, which is inlined): an UPDATE of that row
    /// can be decided from the row alone, so the row trigger evaluates it (`fast_maintenance`) and the
    /// statement-level UPDATE function leaves it out.
    /// A building segment is never row-only: the row trigger decides from the old and the new row,
    /// which assumes membership was right before the write, and takes no stripe lock.
    pub fn row_only(&self) -> bool {
        !self.building
            && !self.membership
            && self.kind != Kind::Event
            && self.sibling_reads.is_empty()
            && self.reads.iter().all(|(k, _)| *k == self.kind)
    }
}

/// The row-level UPDATE maintenance of one bound table: the segments of its kind that read only
/// the row (`SegmentPlan::row_only`), evaluated in the extension on the old and new row.
#[derive(Debug, Clone, PartialEq)]
pub struct FastSpec {
    pub table: Kind,
    pub segment_ids: Vec<i64>,
    /// `AFTER UPDATE OF <columns>`: what those segments read, and the key.
    pub update_of: Vec<String>,
    /// The SQL type of the key (membership ids travel as text and are cast back).
    pub key_type: String,
}

/// The row-level maintenance of every bound lead or account table that has row-only segments.
pub fn fast_maintenance(cat: &Catalog, segs: &[SegmentPlan]) -> Vec<FastSpec> {
    let mut out = vec![];
    for table in [Kind::Lead, Kind::Account] {
        let Some(b) = cat.binding(table) else { continue };
        let fast: Vec<&SegmentPlan> = segs.iter().filter(|s| s.kind == table && s.row_only()).collect();
        if fast.is_empty() {
            continue;
        }
        let tkey = key(b, table);
        let mut cols: BTreeSet<String> = fast.iter().flat_map(|s| s.reads.iter().map(|(_, c)| c.clone())).collect();
        cols.insert(tkey.clone());
        cols.retain(|c| b.column(c).is_some());
        out.push(FastSpec {
            table,
            segment_ids: fast.iter().map(|s| s.id).collect(),
            update_of: cols.into_iter().collect(),
            key_type: b.column(&tkey).map(|c| c.type_name.clone()).unwrap_or_else(|| "text".into()),
        });
    }
    out
}

/// The query whose target list the row trigger compiles once per backend into expression states,
/// one per segment, evaluated on the old and the new row (`table` qualified and quoted).
pub fn fast_eval_sql(table: &str, kind: Kind, rules: &[String]) -> String {
    let list = rules.iter().map(|r| format!("(({r}) IS TRUE)")).collect::<Vec<_>>().join(", ");
    format!("SELECT {list} FROM {table} AS {}", root_alias(kind))
}

/// What the capture of a table's UPDATEs (in `kenbun._maintain_row`) needs to know of a segment the statement-level
/// UPDATE function maintains.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturePlan {
    pub id: i64,
    /// Columns of the table whose change can affect the segment's own members (as `affected`).
    pub own: Vec<String>,
    /// Columns whose change can affect the other leads of the changed leads' accounts.
    pub sibling: Vec<String>,
    /// The segment reads the table only through these row conditions, each evaluable on the row:
    /// a change that leaves every one of them as it was (and the row's keys as they were) cannot
    /// change its membership. None: decide by the columns alone.
    pub filters: Option<Vec<Filter>>,
}

/// The capture plan of segment `s` for UPDATEs of `table`; `filters` are its compiled rule's.
pub fn capture_plan(cat: &Catalog, s: &SegmentPlan, filters: &[Filter], table: Kind) -> CapturePlan {
    let cols = |x: Option<Option<Vec<String>>>| x.map(|c| c.unwrap_or_default()).unwrap_or_default();
    let own = cols(affected(s, table, TrigOp::Update, cat));
    let sibling = cols(sibling_affected(s, table, TrigOp::Update, cat));
    // every condition the rule puts on rows of this table: on the member's own row outside
    // subqueries, and in subqueries over the table (an account rule reaching accounts again through
    // its leads, a lead rule counting its siblings); usable only if each reads nothing but the row
    let on_table: Vec<Filter> = filters.iter().filter(|f| f.table == table).cloned().collect();
    let filters = (on_table.iter().all(|f| f.row_only) && (s.kind == table || !on_table.is_empty())).then_some(on_table);
    CapturePlan { id: s.id, own, sibling, filters }
}

/// One filter as a query whose target list the capture trigger compiles (`table` qualified and quoted).
pub fn filter_eval_sql(table: &str, f: &Filter) -> String {
    format!("SELECT (({}) IS TRUE) FROM {table} AS {}", f.sql, f.alias)
}

/// The current version of one row (key as text, `$1`) as a whole-row value, for a row the row trigger
/// saw updated again later in the same statement (a nested UPDATE): it is decided again at the flush.
pub fn fast_fetch_sql(table: &str, kind: Kind, key: &str, key_type: &str) -> String {
    let a = root_alias(kind);
    format!("SELECT {a} FROM {table} AS {a} WHERE {a}.{} = $1::{key_type}", ident(key))
}

/// Applies the changes the row trigger collected for a statement: `$1` kinds, `$2` segment ids,
/// `$3` member ids as text, `$4` 'enter'/'exit' (arrays of equal length).
pub fn fast_apply_sql(kind: Kind, key_type: &str) -> String {
    apply_from(
        "c AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS c(kind, sid, mid, change))",
        &[(kind, key_type.to_string())],
        "'data_change'",
        "",
    )
}

/// How a change reaches a segment's members: through the changed rows themselves (or the rows they
/// belong to), or through the other leads of the changed leads' accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    Own,
    Sibling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrigOp {
    Insert,
    Update,
    Delete,
}

impl TrigOp {
    pub fn name(self) -> &'static str {
        match self {
            TrigOp::Insert => "insert",
            TrigOp::Update => "update",
            TrigOp::Delete => "delete",
        }
    }
}

/// One generated trigger: its function and the columns an UPDATE trigger listens to.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    pub table: Kind,
    pub op: TrigOp,
    /// `kenbun._maintain_lead_insert` …
    pub function: String,
    /// The PL/pgSQL body (between the dollar quotes).
    pub body: String,
    /// For UPDATE: `AFTER UPDATE OF <columns>`.
    pub update_of: Vec<String>,
    /// For UPDATE: the row-level capture triggers, one per column: (column, flag index, compare as text).
    pub capture: Vec<(String, usize, bool)>,
    /// For UPDATE: the key's and (leads) the account key's SQL types, for the capture triggers.
    pub key_types: (String, Option<(String, String)>),
    /// For UPDATE with row triggers: the segments the row trigger captures rows for (`kenbun._maintain_row`,
    /// which replaces the per-column capture triggers); empty otherwise.
    pub capture_ids: Vec<i64>,
}

pub fn function_name(table: Kind, op: TrigOp) -> String {
    format!("kenbun._maintain_{}_{}", table.name(), op.name())
}

fn key(b: &Binding, table: Kind) -> String {
    match table {
        Kind::Event => b.lead_key.clone().unwrap_or_default(),
        _ => b.key.clone().unwrap_or_default(),
    }
}

/// Columns of `table` that any active segment reads, plus the keys.
pub fn update_columns(cat: &Catalog, segs: &[SegmentPlan], table: Kind) -> Vec<String> {
    let Some(b) = cat.binding(table) else { return vec![] };
    let mut cols: BTreeSet<String> = segs
        .iter()
        .flat_map(|s| s.reads.iter())
        .filter(|(k, _)| *k == table)
        .map(|(_, c)| c.clone())
        .collect();
    cols.insert(key(b, table));
    if table == Kind::Lead {
        if let Some(a) = &b.account_key {
            cols.insert(a.clone());
        }
    }
    cols.retain(|c| b.column(c).is_some());
    cols.into_iter().collect()
}

/// All maintenance triggers for the bound tables. With `row_triggers`, UPDATE leaves the row-only
/// segments to the row trigger (`fast_maintenance`); without (an upgrade script of an older version
/// runs before the row trigger's functions exist), the statement-level functions maintain them all.
pub fn maintenance(cat: &Catalog, segs: &[SegmentPlan], row_triggers: bool) -> Vec<TriggerSpec> {
    let mut out = vec![];
    for table in [Kind::Lead, Kind::Account, Kind::Event] {
        if cat.binding(table).is_none() {
            continue;
        }
        let b = cat.binding(table).unwrap();
        // UPDATE: the row-only segments of this table are maintained by the row trigger
        // (`fast_maintenance`); the statement-level function keeps the rest
        let slow: Vec<SegmentPlan> = segs
            .iter()
            .filter(|s| !(row_triggers && s.kind == table && s.row_only()))
            .cloned()
            .collect();
        let cols = update_columns(cat, &slow, table);
        let tkey = key(b, table);
        let key_type = b.column(&tkey).map(|c| c.type_name.clone()).unwrap_or_default();
        let acc = if table == Kind::Lead {
            b.account_key
                .as_ref()
                .and_then(|a| b.column(a))
                .map(|c| (c.name.clone(), c.type_name.clone()))
        } else {
            None
        };
        for op in [TrigOp::Insert, TrigOp::Update, TrigOp::Delete] {
            let update = op == TrigOp::Update;
            let body = trigger_body(cat, if update { &slow } else { segs }, table, op, row_triggers);
            // nothing to do on UPDATE: no statement trigger, no capture triggers
            let update = update && body != nothing_body(table, op);
            out.push(TriggerSpec {
                table,
                op,
                function: function_name(table, op),
                body,
                update_of: if update { cols.clone() } else { vec![] },
                capture: if update && !row_triggers {
                    cols.iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let col = b.column(c);
                            let ty = col.map(|x| x.type_name.as_str()).unwrap_or("text");
                            (
                                c.clone(),
                                i,
                                matches!(class_of(ty), Class::Other) || col.is_some_and(|x| x.as_text),
                            )
                        })
                        .collect()
                } else {
                    vec![]
                },
                key_types: (key_type.clone(), acc.clone()),
                capture_ids: if update && row_triggers {
                    let mut ids: Vec<i64> = slow
                        .iter()
                        .filter(|s| affected(s, table, op, cat).is_some() || sibling_affected(s, table, op, cat).is_some())
                        .map(|s| s.id)
                        .collect();
                    ids.dedup();
                    ids
                } else {
                    vec![]
                },
            });
        }
    }
    out
}

/// A dollar-quote tag that does not occur in `body`.
pub fn dollar_tag(body: &str) -> String {
    (0..)
        .map(|i| {
            if i == 0 {
                "$kenbun$".to_string()
            } else {
                format!("$kenbun{i}$")
            }
        })
        .find(|t| !body.contains(t.as_str()))
        .unwrap()
}

/// The changed rows of an UPDATE as the capture trigger recorded them, with the segments they can affect.
fn return_pending_rows(sel: &[String], table: Kind) -> String {
    format!(
        "SELECT {} FROM kenbun._pending_rows({}) AS p",
        sel.join(", "),
        literal(table.name())
    )
}

/// Is a lead segment `s` affected through the siblings of the changed leads by `op` on `table`, and if
/// so through which columns (None = always)? A change to one lead (a column a sibling condition reads,
/// its account key, its existence) or to one of its events can change whether *another* lead of the
/// same account, old or new, is a member. Changes to accounts already re-evaluate all their leads.
fn sibling_affected(s: &SegmentPlan, table: Kind, op: TrigOp, cat: &Catalog) -> Option<Option<Vec<String>>> {
    if s.kind != Kind::Lead || table == Kind::Account {
        return None;
    }
    let mut cols: Vec<String> = s
        .sibling_reads
        .iter()
        .filter(|(k, _)| *k == table)
        .map(|(_, c)| c.clone())
        .collect();
    if cols.is_empty() {
        return None;
    }
    if op != TrigOp::Update {
        return Some(None);
    }
    let b = cat.binding(table)?;
    if table == Kind::Lead {
        // a lead moving to another account changes both accounts' sets of leads
        if let Some(a) = &b.account_key {
            cols.push(a.clone());
        }
    }
    cols.sort();
    cols.dedup();
    cols.retain(|c| b.column(c).is_some());
    Some(Some(cols))
}

/// Is segment `s` affected by `op` on `table`, and if so through which columns (None = always)?
fn affected(s: &SegmentPlan, table: Kind, op: TrigOp, cat: &Catalog) -> Option<Option<Vec<String>>> {
    let cols: Vec<String> = s
        .reads
        .iter()
        .filter(|(k, _)| *k == table)
        .map(|(_, c)| c.clone())
        .collect();
    let own = s.kind == table;
    if cols.is_empty() && !own {
        return None;
    }
    if op != TrigOp::Update {
        return Some(None);
    }
    // UPDATE: the capture triggers record which columns changed; a key change counts as a change of everything
    let mut cols = cols;
    let b = cat.binding(table)?;
    cols.retain(|c| b.column(c).is_some());
    if cols.is_empty() && own {
        // reads nothing of its own table (e.g. {"all":[]}): only key changes matter
        return Some(Some(vec![]));
    }
    Some(Some(cols))
}

/// The body of a maintenance function with nothing to maintain.
fn nothing_body(table: Kind, op: TrigOp) -> String {
    if op == TrigOp::Update {
        format!(
            "BEGIN\n  PERFORM kenbun._pending_clear({});\n  RETURN NULL;\nEND",
            literal(table.name())
        )
    } else {
        "BEGIN\n  RETURN NULL;\nEND".to_string()
    }
}

/// With `row_triggers` (0.4.0), an UPDATE's changed rows come from the one capture trigger, which
/// lists for each row the segments it can affect (`_pending_rows`: ids, negative for the sibling
/// path), instead of the columns that changed (`_pending`).
fn trigger_body(cat: &Catalog, segs: &[SegmentPlan], table: Kind, op: TrigOp, row_triggers: bool) -> String {
    let by_segment = row_triggers && op == TrigOp::Update;
    let nothing = nothing_body(table, op);
    let Some(tb) = cat.binding(table) else { return nothing };
    let leads = cat.binding(Kind::Lead);
    let tkey = key(tb, table);
    let mut relevant: Vec<(&SegmentPlan, Option<Vec<String>>, Via)> = segs
        .iter()
        .filter_map(|s| affected(s, table, op, cat).map(|c| (s, c, Via::Own)))
        .collect();
    relevant.extend(
        segs.iter()
            .filter_map(|s| sibling_affected(s, table, op, cat).map(|c| (s, c, Via::Sibling))),
    );
    if relevant.is_empty() {
        return nothing;
    }
    // INSERT and DELETE (0.4.0): a segment of another kind that reads this table only through row
    // conditions (`Filter`) can be affected only by rows for which one of them is true; per group of
    // segments (target kind, path), the condition on the changed rows, as a column of `ch`
    let row_filters = row_triggers && op != TrigOp::Update;
    let mut row_conds: BTreeMap<(Kind, Via), Option<Vec<String>>> = BTreeMap::new();
    let mut row_aliases: BTreeSet<String> = BTreeSet::new();
    for (s, _, via) in &relevant {
        let fs: Vec<&Filter> = s.filters.iter().filter(|f| f.table == table && !f.own).collect();
        let rc = (row_filters && *via == Via::Own && s.kind != table && !fs.is_empty() && fs.iter().all(|f| f.row_only))
            .then(|| {
                row_aliases.extend(fs.iter().map(|f| f.alias.clone()));
                fs.iter().map(|f| format!("({})", f.sql)).collect::<Vec<_>>()
            });
        let e = row_conds.entry((s.kind, *via)).or_insert_with(|| Some(vec![]));
        match (e.as_mut(), rc) {
            (Some(all), Some(rc)) => {
                for c in rc {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                }
            }
            _ => *e = None,
        }
    }
    let row_cols: BTreeMap<(Kind, Via), (String, String)> = row_conds
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .enumerate()
        .map(|(i, (k, v))| (k, (format!("g_{i}"), format!("({})", v.join(" OR ")))))
        .collect();
    // account keys of leads are needed when the lead table changes and account segments care
    let lead_acc = if table == Kind::Lead {
        leads.and_then(|b| b.account_key.clone())
    } else {
        None
    };
    // flags: one per column of this table that any relevant segment reads
    let flag_name: BTreeMap<String, String> = update_columns(cat, segs, table)
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, format!("f_{i}")))
        .collect();

    // ch: one row per changed row, with the own key (new/old), the lead's account (new/old), and flags
    let col = |alias: &str, c: &str| format!("{alias}.{}", ident(c));
    let ch = match op {
        TrigOp::Update => {
            // rows captured by the row-level capture triggers, one per (old key, new key)
            let kt = tb
                .column(&tkey)
                .map(|c| c.type_name.clone())
                .unwrap_or_else(|| "text".into());
            let mut sel = vec![format!("p.k_new::{kt} AS k_new"), format!("p.k_old::{kt} AS k_old")];
            if let Some(a) = &lead_acc {
                let at = tb
                    .column(a)
                    .map(|c| c.type_name.clone())
                    .unwrap_or_else(|| "text".into());
                sel.push(format!("p.a_new::{at} AS a_new"));
                sel.push(format!("p.a_old::{at} AS a_old"));
            }
            if by_segment {
                sel.push("p.segs AS s".to_string());
                return_pending_rows(&sel, table)
            } else {
                for (i, f) in flag_name.values().enumerate() {
                    sel.push(format!(
                        "(p.k_new IS DISTINCT FROM p.k_old OR {i} = ANY (p.cols)) AS {f}"
                    ));
                }
                format!(
                    "SELECT {} FROM kenbun._pending({}) AS p",
                    sel.join(", "),
                    literal(table.name())
                )
            }
        }
        _ => {
            let (alias, tt) = if op == TrigOp::Insert {
                ("n", "kenbun_new")
            } else {
                ("o", "kenbun_old")
            };
            let mut sel = vec![
                format!("{} AS k_new", col(alias, &tkey)),
                format!("{} AS k_old", col(alias, &tkey)),
            ];
            if let Some(a) = &lead_acc {
                sel.push(format!("{} AS a_new", col(alias, a)));
                sel.push(format!("{} AS a_old", col(alias, a)));
            }
            // the row conditions name the row as their subquery did (e_1, l_2, …): each such alias
            // is the changed row again
            let mut from = format!("{tt} AS {alias}");
            if !row_cols.is_empty() {
                for (name, expr) in row_cols.values() {
                    sel.push(format!("{expr} IS TRUE AS {name}"));
                }
                for a in &row_aliases {
                    from.push_str(&format!(" CROSS JOIN LATERAL (SELECT {alias}.*) AS {a}"));
                }
            }
            format!("SELECT {} FROM {from}", sel.join(", "))
        }
    };
    let cond = |cols: &Option<Vec<String>>| -> String {
        match cols {
            None => "true".into(),
            Some(cs) if cs.is_empty() => "(ch.k_new IS DISTINCT FROM ch.k_old)".into(),
            Some(cs) => format!(
                "({})",
                cs.iter()
                    .map(|c| format!("ch.{}", flag_name[c]))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
        }
    };
    let keys_of = |c: &str, which: &str| {
        format!("SELECT v.x FROM ch, LATERAL (VALUES (ch.{which}_new), (ch.{which}_old)) AS v(x) WHERE {c}")
    };
    let (lead_tbl, lead_key, lead_acc_key) = match leads {
        Some(b) => (b.qualified(), b.key.clone().unwrap_or_default(), b.account_key.clone()),
        None => (String::new(), String::new(), None),
    };
    // SQL selecting the leads of the accounts `accounts` selects, and the accounts of the leads `leads`
    // selects (`ak`: the leads' account key; `a`: the alias of the lead table)
    let leads_of = |ak: &str, accounts: &str| {
        format!(
            "SELECT l.{} FROM {lead_tbl} AS l WHERE l.{} IN ({accounts})",
            ident(&lead_key),
            ident(ak)
        )
    };
    let accounts_of = |ak: &str, leads: &str, a: &str| {
        format!(
            "SELECT {a}.{} FROM {lead_tbl} AS {a} WHERE {a}.{} IN ({leads})",
            ident(ak),
            ident(&lead_key)
        )
    };
    // units: the relevant segments grouped by (target kind, condition on the changed rows); each unit
    // is one statement, run only when its condition holds for some changed row, so a plan holds only
    // the segments that can be affected by what changed
    let mut groups: BTreeMap<(Kind, String, Via), Vec<&SegmentPlan>> = BTreeMap::new();
    for (s, cols, via) in &relevant {
        groups.entry((s.kind, cond(cols), *via)).or_default().push(s);
    }
    let mut units: Vec<(String, String)> = vec![]; // (condition, statement)
                                                   // the same work as one statement, for statements that change many rows: one row lookup and one
                                                   // membership probe per changed row for all units together
    #[derive(Default)]
    struct Combined {
        direct_vals: Vec<String>,
        direct_arms: Vec<String>,
        group_vals: Vec<String>,
        group_arms: Vec<String>,
        group_keys: Vec<String>,
    }
    let mut combined: BTreeMap<Kind, Combined> = BTreeMap::new();
    let mut combined_ctes: Vec<String> = vec![];
    let mut has_account_unit = false;
    for ((kind, c, via), segs) in &groups {
        let Some(b) = cat.binding(*kind) else { continue };
        // the capture trigger names the segments each changed row can affect
        let by_ids = if by_segment {
            let sign = if *via == Via::Sibling { -1 } else { 1 };
            format!(
                "(ch.s && '{{{}}}'::bigint[])",
                segs.iter().map(|s| (sign * s.id).to_string()).collect::<Vec<_>>().join(",")
            )
        } else {
            String::new()
        };
        let by_rows = row_cols.get(&(*kind, *via)).map(|(name, _)| format!("ch.{name}"));
        let c = if by_segment {
            &by_ids
        } else if let Some(r) = &by_rows {
            r
        } else {
            c
        };
        let (members, mcol) = members_table(*kind);
        let alias = root_alias(*kind);
        let bkey = ident(b.key.as_deref().unwrap_or_default());
        let tbl = b.qualified();
        let ids = segs.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(", ");
        let values = segs
            .iter()
            .map(|s| format!("({}::bigint, ({}) IS TRUE)", s.id, s.sql))
            .collect::<Vec<_>>()
            .join(", ");
        let cb = combined.entry(*kind).or_default();
        let (extra, should, have) = if *kind == table && *via == Via::Own {
            // segments of the changed table: the changed rows themselves are the candidates
            for sp in segs {
                cb.direct_vals.push(format!(
                    "({}::bigint, CASE WHEN {c} THEN ({}) IS TRUE END)",
                    sp.id, sp.sql
                ));
                cb.direct_arms.push(format!("WHEN {} THEN {c}", sp.id));
            }
            (
                String::new(),
                format!(
                    "SELECT s.sid, {alias}.{bkey} AS mid FROM ch JOIN {tbl} AS {alias} ON {alias}.{bkey} = ch.k_new CROSS JOIN LATERAL (VALUES {values}) AS s(sid, ok) WHERE {c} AND s.ok"
                ),
                // one index probe per changed row; a second only where the key itself changed
                format!(
                    "SELECT m.segment_id AS sid, m.{mcol} AS mid FROM ch JOIN {members} AS m ON m.{mcol} = ch.k_new WHERE {c} AND m.segment_id IN ({ids}) UNION ALL SELECT m.segment_id, m.{mcol} FROM ch JOIN {members} AS m ON m.{mcol} = ch.k_old WHERE ch.k_old IS DISTINCT FROM ch.k_new AND {c} AND m.segment_id IN ({ids})"
                ),
            )
        } else {
            let source = match (kind, table) {
                // the leads of the accounts the changed leads belong (or belonged) to
                (Kind::Lead, Kind::Lead) => match &lead_acc_key {
                    Some(ak) if lead_acc.is_some() => leads_of(ak, &keys_of(c, "a")),
                    _ => continue,
                },
                // the leads of the accounts of the leads whose events changed
                (Kind::Lead, Kind::Event) if *via == Via::Sibling => match &lead_acc_key {
                    Some(ak) => leads_of(ak, &accounts_of(ak, &keys_of(c, "k"), "o")),
                    None => continue,
                },
                (Kind::Lead, Kind::Event) => keys_of(c, "k"),
                (Kind::Lead, Kind::Account) => match &lead_acc_key {
                    Some(ak) => leads_of(ak, &keys_of(c, "k")),
                    None => continue,
                },
                (Kind::Account, Kind::Lead) => {
                    if lead_acc.is_none() {
                        continue;
                    }
                    keys_of(c, "a")
                }
                (Kind::Account, Kind::Event) => match &lead_acc_key {
                    Some(ak) => accounts_of(ak, &keys_of(c, "k"), "l"),
                    None => continue,
                },
                _ => continue,
            };
            let gi = combined_ctes.len();
            combined_ctes.push(format!(
                "k{gi} AS (SELECT DISTINCT q.x FROM ({source}) AS q(x) WHERE q.x IS NOT NULL)"
            ));
            for sp in segs {
                cb.group_vals.push(format!(
                    "({}::bigint, CASE WHEN {alias}.{bkey} IN (SELECT x FROM k{gi}) THEN ({}) IS TRUE END)",
                    sp.id, sp.sql
                ));
            }
            cb.group_arms.push(format!(
                "(m.segment_id IN ({ids}) AND m.{mcol} IN (SELECT x FROM k{gi}))"
            ));
            cb.group_keys.push(format!("SELECT x FROM k{gi}"));
            (
                format!(",\n  k AS (SELECT DISTINCT q.x FROM ({source}) AS q(x) WHERE q.x IS NOT NULL)"),
                format!(
                    "SELECT s.sid, {alias}.{bkey} AS mid FROM {tbl} AS {alias} CROSS JOIN LATERAL (VALUES {values}) AS s(sid, ok) WHERE {alias}.{bkey} = ANY (ARRAY(SELECT x FROM k)) AND s.ok"
                ),
                format!(
                    // one probe of the (member, segment) index per candidate: with `= ANY (array)` the
                    // generic plan could scan the segments' whole membership and filter on the member
                    "SELECT m.segment_id AS sid, m.{mcol} AS mid FROM k CROSS JOIN LATERAL (SELECT p.segment_id, p.{mcol} FROM {members} AS p WHERE p.{mcol} = k.x AND p.segment_id IN ({ids})) AS m"
                ),
            )
        };
        has_account_unit |= *kind == Kind::Account || *via == Via::Sibling;
        let kl = literal(kind.name());
        let stmt = format!(
            "WITH ch AS ({ch}){extra},\n  should AS ({should}),\n  have AS ({have}),\n  d AS (SELECT {kl} AS kind, x.sid, x.mid::text AS mid, 'enter' AS change FROM (SELECT sid, mid FROM should EXCEPT SELECT sid, mid FROM have) AS x\n        UNION ALL SELECT {kl}, x.sid, x.mid::text, 'exit' FROM (SELECT sid, mid FROM have EXCEPT SELECT sid, mid FROM should) AS x)\n  SELECT pg_catalog.array_agg(d.kind ORDER BY d.sid, d.change DESC, d.mid), pg_catalog.array_agg(d.sid ORDER BY d.sid, d.change DESC, d.mid),\n         pg_catalog.array_agg(d.mid ORDER BY d.sid, d.change DESC, d.mid), pg_catalog.array_agg(d.change ORDER BY d.sid, d.change DESC, d.mid)\n    INTO kenbun_t_kinds, kenbun_t_sids, kenbun_t_mids, kenbun_t_changes FROM d;\n  IF kenbun_t_sids IS NOT NULL THEN\n    kenbun_kinds := pg_catalog.array_cat(kenbun_kinds, kenbun_t_kinds);\n    kenbun_sids := pg_catalog.array_cat(kenbun_sids, kenbun_t_sids);\n    kenbun_mids := pg_catalog.array_cat(kenbun_mids, kenbun_t_mids);\n    kenbun_changes := pg_catalog.array_cat(kenbun_changes, kenbun_t_changes);\n  END IF;\n"
        );
        units.push((c.clone(), stmt));
    }
    if units.is_empty() {
        return nothing;
    }
    let mut ctes = vec![format!("ch AS ({ch})")];
    ctes.extend(combined_ctes);
    let mut diffs = vec![];
    for (kind, cb) in &combined {
        if cb.direct_vals.is_empty() && cb.group_vals.is_empty() {
            continue;
        }
        let Some(b) = cat.binding(*kind) else { continue };
        let k = kind.name().chars().next().unwrap();
        let (members, mcol) = members_table(*kind);
        let alias = root_alias(*kind);
        let bkey = ident(b.key.as_deref().unwrap_or_default());
        let tbl = b.qualified();
        let (mut should, mut have) = (vec![], vec![]);
        if !cb.direct_vals.is_empty() {
            should.push(format!(
                "SELECT s.sid, {alias}.{bkey} AS mid FROM ch JOIN {tbl} AS {alias} ON {alias}.{bkey} = ch.k_new CROSS JOIN LATERAL (VALUES {}) AS s(sid, ok) WHERE s.ok",
                cb.direct_vals.join(", ")
            ));
            let arms = cb.direct_arms.join(" ");
            have.push(format!(
                "SELECT m.segment_id AS sid, m.{mcol} AS mid FROM ch JOIN {members} AS m ON m.{mcol} = ch.k_new WHERE CASE m.segment_id {arms} ELSE false END UNION ALL SELECT m.segment_id, m.{mcol} FROM ch JOIN {members} AS m ON m.{mcol} = ch.k_old WHERE ch.k_old IS DISTINCT FROM ch.k_new AND CASE m.segment_id {arms} ELSE false END"
            ));
        }
        if !cb.group_vals.is_empty() {
            ctes.push(format!("kall_{k} AS ({})", cb.group_keys.join(" UNION ")));
            should.push(format!(
                "SELECT s.sid, {alias}.{bkey} AS mid FROM {tbl} AS {alias} CROSS JOIN LATERAL (VALUES {}) AS s(sid, ok) WHERE {alias}.{bkey} = ANY (ARRAY(SELECT x FROM kall_{k})) AND s.ok",
                cb.group_vals.join(", ")
            ));
            have.push(format!(
                "SELECT m.segment_id AS sid, m.{mcol} AS mid FROM {members} AS m WHERE m.{mcol} = ANY (ARRAY(SELECT x FROM kall_{k})) AND ({})",
                cb.group_arms.join(" OR ")
            ));
        }
        ctes.push(format!("should_{k} AS ({})", should.join(" UNION ALL ")));
        ctes.push(format!("have_{k} AS ({})", have.join(" UNION ALL ")));
        let kl = literal(kind.name());
        diffs.push(format!("SELECT {kl} AS kind, x.sid, x.mid::text AS mid, 'enter' AS change FROM (SELECT sid, mid FROM should_{k} EXCEPT SELECT sid, mid FROM have_{k}) AS x"));
        diffs.push(format!("SELECT {kl} AS kind, x.sid, x.mid::text AS mid, 'exit' AS change FROM (SELECT sid, mid FROM have_{k} EXCEPT SELECT sid, mid FROM should_{k}) AS x"));
    }
    ctes.push(format!("d AS ({})", diffs.join(" UNION ALL ")));
    let combined_stmt = format!(
        "WITH {}\n  SELECT pg_catalog.array_agg(d.kind ORDER BY d.kind, d.sid, d.change DESC, d.mid), pg_catalog.array_agg(d.sid ORDER BY d.kind, d.sid, d.change DESC, d.mid),\n         pg_catalog.array_agg(d.mid ORDER BY d.kind, d.sid, d.change DESC, d.mid), pg_catalog.array_agg(d.change ORDER BY d.kind, d.sid, d.change DESC, d.mid)\n    INTO kenbun_kinds, kenbun_sids, kenbun_mids, kenbun_changes FROM d;\n",
        ctes.join(",\n  ")
    );
    let mut body = String::from(
        "DECLARE\n  kenbun_n bigint;\n  kenbun_rows bigint;\n  kenbun_u boolean[];\n  kenbun_kinds text[];\n  kenbun_sids bigint[];\n  kenbun_mids text[];\n  kenbun_changes text[];\n  kenbun_t_kinds text[];\n  kenbun_t_sids bigint[];\n  kenbun_t_mids text[];\n  kenbun_t_changes text[];\nBEGIN\n",
    );
    // 0. an UPDATE whose rows the capture trigger found unable to affect any segment: nothing to do
    //    (a plain expression, evaluated without the executor)
    if by_segment {
        body.push_str(&format!(
            "  IF NOT kenbun._pending_rows_exist({}) THEN\n    RETURN NULL;\n  END IF;\n",
            literal(table.name())
        ));
    }
    // 1. anchors: leads first, then accounts; each lock set is computed after the previous locks
    let lead_anchor_src = match table {
        Kind::Lead | Kind::Event => Some(keys_of("true", "k")),
        Kind::Account => None,
    };
    let needs_account_locks = has_account_unit
        || relevant
            .iter()
            .any(|(s, _, _)| s.reads.iter().any(|(k, _)| *k == Kind::Account));
    let account_anchor_src = if !needs_account_locks {
        None
    } else {
        match table {
            Kind::Account => Some(keys_of("true", "k")),
            Kind::Lead if lead_acc.is_some() => Some(keys_of("true", "a")),
            Kind::Event => lead_acc_key
                .as_ref()
                .map(|ak| accounts_of(ak, &keys_of("true", "k"), "l")),
            _ => None,
        }
    };
    // 2. which units can be affected (flags), computed in the statement that takes the locks when the
    //    account keys come straight from the changed rows; events need the leads locked first
    let conditional = units.iter().any(|(c, _)| c != "true");
    let flags = units
        .iter()
        .map(|(c, _)| format!("COALESCE(pg_catalog.bool_or({c}), false)"))
        .collect::<Vec<_>>()
        .join(", ");
    let stripes = |src: &str, class: i32, order: i32| {
        format!(
            "SELECT DISTINCT {order} AS o, {class} AS c, pg_catalog.hashtext(k.x::text) & {LOCK_STRIPES_MASK} AS h FROM ({src}) AS k(x) WHERE k.x IS NOT NULL"
        )
    };
    let lock_stmt = |sets: Vec<String>, with_flags: bool| {
        let locks = format!(
            "(SELECT pg_catalog.count(pg_catalog.pg_advisory_xact_lock(q.c, q.h)) FROM ({} ORDER BY 1, 3) AS q)",
            sets.join(" UNION ALL ")
        );
        if with_flags {
            format!("  WITH ch AS ({ch})\n  SELECT {locks}, ARRAY[{flags}], pg_catalog.count(*) INTO kenbun_n, kenbun_u, kenbun_rows FROM ch;\n")
        } else {
            format!("  WITH ch AS ({ch})\n  SELECT {locks} INTO kenbun_n;\n")
        }
    };
    let mut flags_done = false;
    // INSERT/DELETE whose every unit depends on the rows' conditions: return as soon as the flags say
    // no changed row can affect any segment (an event of a type no segment counts)
    let early = row_filters && conditional && units.iter().all(|(c, _)| c != "true");
    let early_return = if early { "  IF NOT (true = ANY (kenbun_u)) THEN\n    RETURN NULL;\n  END IF;\n" } else { "" };
    match (table, lead_anchor_src, account_anchor_src) {
        (Kind::Event, Some(l), Some(a)) if early => {
            body.push_str(&lock_stmt(vec![stripes(&l, LOCK_LEAD, 1)], true));
            body.push_str(early_return);
            body.push_str(&lock_stmt(vec![stripes(&a, LOCK_ACCOUNT, 2)], false));
            flags_done = true;
        }
        (Kind::Event, Some(l), Some(a)) => {
            body.push_str(&lock_stmt(vec![stripes(&l, LOCK_LEAD, 1)], false));
            body.push_str(&lock_stmt(vec![stripes(&a, LOCK_ACCOUNT, 2)], conditional));
            flags_done = conditional;
        }
        (_, l, a) => {
            let mut sets = vec![];
            if let Some(l) = l {
                sets.push(stripes(&l, LOCK_LEAD, 1));
            }
            if let Some(a) = a {
                sets.push(stripes(&a, LOCK_ACCOUNT, 2));
            }
            if !sets.is_empty() {
                body.push_str(&lock_stmt(sets, conditional));
                body.push_str(early_return);
                flags_done = conditional;
            }
        }
    }
    if conditional && !flags_done {
        body.push_str(&format!(
            "  WITH ch AS ({ch})\n  SELECT ARRAY[{flags}], pg_catalog.count(*) INTO kenbun_u, kenbun_rows FROM ch;\n"
        ));
        body.push_str(early_return);
    }
    // many changed rows: the combined statement; few: only the units their changes can affect
    if conditional {
        body.push_str(&format!(
            "  IF kenbun_rows > {BULK_ROWS} THEN\n  {combined_stmt}  ELSE\n"
        ));
    }
    for (i, (c, stmt)) in units.iter().enumerate() {
        if conditional && c != "true" {
            body.push_str(&format!("  IF kenbun_u[{}] THEN\n  {stmt}  END IF;\n", i + 1));
        } else {
            body.push_str(&format!("  {stmt}"));
        }
    }
    if conditional {
        body.push_str("  END IF;\n");
    }
    // 3. only when something changed: apply, log, notify
    body.push_str(&format!(
        "  IF kenbun_sids IS NOT NULL THEN\n{}  END IF;\n",
        apply_sql(cat, "'data_change'")
    ));
    if op == TrigOp::Update {
        body.push_str(&format!(
            "  PERFORM kenbun._pending_clear({});\n",
            literal(table.name())
        ));
    }
    body.push_str("  RETURN NULL;\nEND");
    body
}

/// Applies the changes held in the PL/pgSQL arrays kenbun_kinds, kenbun_sids, kenbun_mids and
/// kenbun_changes: membership rows, the change log, and NOTIFY.
fn apply_sql(cat: &Catalog, reason: &str) -> String {
    let kinds: Vec<(Kind, String)> = [Kind::Lead, Kind::Account]
        .into_iter()
        .filter_map(|kind| {
            let b = cat.binding(kind)?;
            let kt = b
                .key
                .as_deref()
                .and_then(|k| b.column(k))
                .map(|c| c.type_name.clone())
                .unwrap_or_else(|| "text".into());
            Some((kind, kt))
        })
        .collect();
    format!(
        "    {}",
        apply_from(
            "c AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(kenbun_kinds), pg_catalog.unnest(kenbun_sids), pg_catalog.unnest(kenbun_mids), pg_catalog.unnest(kenbun_changes)) AS c(kind, sid, mid, change))",
            &kinds,
            reason,
            " INTO kenbun_n",
        )
    )
}

/// Membership rows, change log and NOTIFY for the changes the CTE `c(kind, sid, mid, change)` lists,
/// for the kinds given with their key types; `into` goes after the final SELECT list.
fn apply_from(c: &str, kinds: &[(Kind, String)], reason: &str, into: &str) -> String {
    let mut ctes = vec![c.to_string()];
    let mut logged = vec![];
    for (kind, kt) in kinds {
        let k = kind.name().chars().next().unwrap();
        let (members, mcol) = members_table(*kind);
        let kl = literal(kind.name());
        ctes.push(format!(
            "ins_{k} AS (INSERT INTO {members} AS m (segment_id, {mcol}) SELECT c.sid, c.mid::{kt} FROM c WHERE c.kind = {kl} AND c.change = 'enter' ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING m.segment_id, m.{mcol}::text AS member_id)"
        ));
        ctes.push(format!(
            "del_{k} AS (DELETE FROM {members} AS m USING c WHERE c.kind = {kl} AND c.change = 'exit' AND m.segment_id = c.sid AND m.{mcol} = c.mid::{kt} RETURNING m.segment_id, m.{mcol}::text AS member_id)"
        ));
        logged.push(format!(
            "SELECT segment_id, {kl} AS kind, member_id, 'exit' AS change FROM del_{k}"
        ));
        logged.push(format!(
            "SELECT segment_id, {kl} AS kind, member_id, 'enter' AS change FROM ins_{k}"
        ));
    }
    ctes.push(format!(
        "logged AS (INSERT INTO kenbun.membership_changes (segment_id, kind, member_id, change, reason) SELECT segment_id, kind, member_id, change, {reason} FROM ({}) AS x ORDER BY segment_id, change DESC, member_id RETURNING segment_id, kind, member_id, change)",
        logged.join(" UNION ALL ")
    ));
    format!(
        "WITH {}\n    SELECT pg_catalog.count(kenbun._notify(g.segment_id, NULL, g.kind, g.change, {reason}, g.ids)){into}\n      FROM (SELECT segment_id, kind, change, pg_catalog.array_agg(member_id ORDER BY member_id) AS ids FROM logged GROUP BY 1, 2, 3) AS g;\n",
        ctes.join(",\n    ")
    )
}

/// The membership table and member column of a kind.
pub fn members_table(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Account => ("kenbun.account_members", "account_id"),
        _ => ("kenbun.lead_members", "lead_id"),
    }
}
