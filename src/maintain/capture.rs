//! The capture trigger of an UPDATE (`kenbun_capture`, one per bound table, AFTER UPDATE OF <what the
//! statement-level function's segments read> FOR EACH ROW): it records each changed row with the
//! segments the change can affect, for the statement-level function (`kenbun._pending_rows`).
//!
//! A segment is affected when a column it reads changed, or a key did. A segment that reads the table
//! only through subqueries whose row conditions read nothing else (`CapturePlan::filters`: an
//! account segment counting leads with a score, a lead segment counting events of a type) is
//! affected only when one of those conditions changes its value for the row (or a key changed):
//! a score going from 60 to 61 does not change who counts as a hot lead, so no account is
//! re-evaluated. The conditions are compiled once per backend, as in `row`.
use super::row::{as_owner, atts_of, fail, output_fn, parse_kind, qualified_name, same, text_of, top_xid, Att, Exprs};
use super::stored_segments;
use crate::compile::maintain::{capture_plan, filter_eval_sql};
use crate::compile::{self, Kind};
use crate::rule::Rule;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;

struct Seg {
    id: i64,
    own: Vec<i16>,
    sibling: Vec<i16>,
    /// Indexes into `Capture::exprs`, when the segment reads the table only through them.
    filters: Option<Vec<usize>>,
}

pub(super) struct Capture {
    kind: Kind,
    exprs: Exprs,
    tupdesc: pg_sys::TupleDesc,
    segs: Vec<Seg>,
    atts: Vec<Att>,
    /// The key, and (leads) the account key: (attribute, output function).
    key: (i16, pg_sys::Oid),
    account: Option<(i16, pg_sys::Oid)>,
}

/// A changed row: new and old key, new and old account key, and the segments it can affect
/// (negative ids: through the siblings of the changed lead).
type Row = (Option<String>, Option<String>, Option<String>, Option<String>, Vec<i64>);

struct Captured {
    xid: u32,
    rows: Vec<(Kind, Row)>,
}

thread_local! {
    static CAPTURED: RefCell<Captured> = const { RefCell::new(Captured { xid: 0, rows: Vec::new() }) };
}

unsafe fn attnum(relid: pg_sys::Oid, col: &str) -> i16 {
    let c = CString::new(col).unwrap_or_default();
    pg_sys::get_attnum(relid, c.as_ptr())
}

/// The capture of a table's UPDATEs for the segments `ids`: key column, account key column (or '').
pub(super) unsafe fn build(td: &pg_sys::TriggerData, kind: Kind, key_col: &str, acc_col: &str, ids: &[i64]) -> Capture {
    let ids = ids.to_vec();
    let rel = td.tg_relation;
    let relid = (*rel).rd_id;
    let tupdesc = (*rel).rd_att;
    let (stored, cat) = as_owner(|| (stored_segments(Some(&ids)), crate::api::load_catalog()));
    let table = qualified_name(rel);
    let key_att = attnum(relid, key_col);
    if key_att <= 0 {
        fail(format!("kenbun capture trigger on {}: key column not found", kind.name()));
    }
    let acc_att = Some(acc_col).filter(|a| !a.is_empty()).map(|a| attnum(relid, a)).filter(|n| *n > 0);
    let mut queries = vec![];
    let mut segs = vec![];
    let mut all: BTreeSet<i16> = BTreeSet::from([key_att]);
    all.extend(acc_att);
    let nums = |cols: &[String]| -> Vec<i16> { cols.iter().map(|c| attnum(relid, c)).filter(|n| *n > 0).collect() };
    for (plan, rule) in &stored {
        let filters = Rule::parse_text(rule)
            .ok()
            .and_then(|r| compile::compile(&r, plan.kind, &cat).ok())
            .map(|c| c.filters)
            .unwrap_or_default();
        let cp = capture_plan(&cat, plan, &filters, kind);
        let fs = cp.filters.map(|fs| {
            fs.iter()
                .map(|f| {
                    queries.push(filter_eval_sql(&table, f));
                    queries.len() - 1
                })
                .collect()
        });
        let (own, sibling) = (nums(&cp.own), nums(&cp.sibling));
        all.extend(own.iter().copied());
        all.extend(sibling.iter().copied());
        segs.push(Seg { id: plan.id, own, sibling, filters: fs });
    }
    let exprs = Exprs::compile(&queries, tupdesc);
    if exprs.len() != queries.len() {
        fail(format!("kenbun capture trigger: {} expressions for {} filters", exprs.len(), queries.len()));
    }
    Capture {
        kind,
        tupdesc: exprs.tupdesc(),
        exprs,
        segs,
        atts: atts_of(all.iter().copied(), tupdesc),
        key: (key_att, output_fn(key_att, tupdesc)),
        account: acc_att.map(|a| (a, output_fn(a, tupdesc))),
    }
}

impl Capture {
    pub(super) unsafe fn row(&self, old: pg_sys::HeapTuple, new: pg_sys::HeapTuple) {
        let changed: Vec<i16> = self.atts.iter().filter(|a| !same(old, new, a, self.tupdesc)).map(|a| a.num).collect();
        if changed.is_empty() {
            return;
        }
        let key_changed = changed.contains(&self.key.0) || self.account.is_some_and(|a| changed.contains(&a.0));
        let hit = |cols: &[i16]| cols.iter().any(|c| changed.contains(c));
        // each filter is evaluated at most once per row, on both versions
        let mut values: BTreeMap<usize, bool> = BTreeMap::new();
        let mut differs = |i: usize| -> bool {
            *values.entry(i).or_insert_with(|| {
                let o = self.exprs.eval(old, &[i]);
                let n = self.exprs.eval(new, &[i]);
                o != n
            })
        };
        let mut segs = vec![];
        for s in &self.segs {
            let own = key_changed
                || (hit(&s.own)
                    && match &s.filters {
                        None => true,
                        Some(fs) => fs.iter().any(|&i| differs(i)),
                    });
            if own {
                segs.push(s.id);
            }
            if !s.sibling.is_empty() && (key_changed || hit(&s.sibling)) {
                segs.push(-s.id);
            }
        }
        if segs.is_empty() {
            return;
        }
        let text = |t: pg_sys::HeapTuple, (att, out): (i16, pg_sys::Oid)| text_of(t, att, out, self.tupdesc);
        let row: Row = (
            text(new, self.key),
            text(old, self.key),
            self.account.and_then(|a| text(new, a)),
            self.account.and_then(|a| text(old, a)),
            segs,
        );
        let xid = top_xid();
        CAPTURED.with(|c| {
            let mut c = c.borrow_mut();
            if c.xid != xid {
                c.xid = xid;
                c.rows.clear();
            }
            c.rows.push((self.kind, row));
        });
    }
}

/// The rows `kenbun._maintain_row` recorded for a table in this transaction, one per (new key, old key, new
/// account, old account), with the segments they can affect.
#[pg_extern(volatile)]
fn _pending_rows(
    kind: &str,
) -> TableIterator<
    'static,
    (
        name!(k_new, Option<String>),
        name!(k_old, Option<String>),
        name!(a_new, Option<String>),
        name!(a_old, Option<String>),
        name!(segs, Vec<i64>),
    ),
> {
    let kind = parse_kind(kind);
    let xid = top_xid();
    let mut grouped: BTreeMap<(Option<String>, Option<String>, Option<String>, Option<String>), BTreeSet<i64>> =
        BTreeMap::new();
    CAPTURED.with(|c| {
        let c = c.borrow();
        if c.xid == xid {
            for (_, (kn, ko, an, ao, segs)) in c.rows.iter().filter(|r| r.0 == kind) {
                grouped
                    .entry((kn.clone(), ko.clone(), an.clone(), ao.clone()))
                    .or_default()
                    .extend(segs.iter().copied());
            }
        }
    });
    TableIterator::new(grouped.into_iter().map(|((kn, ko, an, ao), s)| (kn, ko, an, ao, s.into_iter().collect())))
}

/// Whether `kenbun._maintain_row` recorded any row of a table in this transaction (the statement-level UPDATE
/// function returns at once when not).
#[pg_extern(volatile)]
fn _pending_rows_exist(kind: &str) -> bool {
    let kind = parse_kind(kind);
    let xid = top_xid();
    CAPTURED.with(|c| {
        let c = c.borrow();
        c.xid == xid && c.rows.iter().any(|r| r.0 == kind)
    })
}

/// Forgets what `kenbun._maintain_row` recorded for a table (the statement-level function has processed it).
pub(super) fn clear(kind: Kind) {
    CAPTURED.with(|c| c.borrow_mut().rows.retain(|r| r.0 != kind));
}
