//! Row-level UPDATE maintenance of the segments whose rules read only the member's own row
//! (`SegmentPlan::row_only`: columns, JSON paths, mapped fields, levels, and segments made of those).
//!
//! `kenbun_maintain_row` (AFTER UPDATE OF <what they read> FOR EACH ROW) evaluates the rules on the
//! old and the new row with expression states compiled once per backend from the segments' compiled
//! SQL (PostgreSQL's own operators, casts and functions: the semantics are the compiled SQL's, not a
//! re-implementation), and records the memberships that change. `kenbun_maintain_row_flush` (AFTER
//! UPDATE … FOR EACH STATEMENT) writes them with one statement: membership rows, change log, NOTIFY.
//!
//! Membership before the UPDATE is the rule on the old row, which the membership table holds for
//! every segment that does not use now() (definition changes fill and recompile under a lock on the
//! bound tables), so only the segments whose decision differs produce a change, and no membership
//! probe is needed. Rules that use now(), and a row whose key changed, are decided outright (enter
//! or exit, applied idempotently). A row updated again later in the same statement (a nested UPDATE
//! from another trigger) is decided again at the flush from its current version. Concurrent
//! writers of the same row are serialised by the row lock, so no advisory lock is taken.
//!
//! The compiled states are cached per trigger (a re-generated trigger has a new OID) and dropped
//! when the bound table's relcache entry is invalidated (ALTER TABLE, and the trigger rebuild itself).
use super::decide::{self, Decision};
use crate::api::raise;
use crate::compile::maintain::{fast_apply_sql, fast_eval_sql, fast_fetch_sql};
use crate::compile::sql::ident;
use crate::compile::Kind;
use crate::error::{KenbunError, SqlState};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgBuiltInOids, PgList, PgOid};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, CString};
use std::rc::Rc;

struct Seg {
    id: i64,
    /// Attribute numbers of the columns the rule reads.
    atts: Vec<i16>,
    time_dependent: bool,
}

/// A column compared between the old and the new row.
pub(super) struct Att {
    pub num: i16,
    pub byval: bool,
    pub len: i16,
}

/// Boolean expressions over the rows of one table, compiled once (PostgreSQL's parser, analyser and
/// expression planner on generated SQL) and evaluated on a heap tuple without an executor.
pub(super) struct Exprs {
    cxt: pg_sys::MemoryContext,
    slot: *mut pg_sys::TupleTableSlot,
    econtext: *mut pg_sys::ExprContext,
    states: Vec<*mut pg_sys::ExprState>,
}

impl Drop for Exprs {
    fn drop(&mut self) {
        // SAFETY: the context was created by `Exprs::compile` and nothing else points into it
        unsafe { pg_sys::MemoryContextDelete(self.cxt) }
    }
}

impl Exprs {
    /// The target lists of `queries` (each `SELECT <booleans> FROM <table> AS <alias>`, over the
    /// table whose rows have `tupdesc`), in order; analysed as the owner with a fixed search_path.
    pub(super) unsafe fn compile(queries: &[String], tupdesc: pg_sys::TupleDesc) -> Exprs {
        let cxt = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"kenbun row maintenance".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        let prev = pg_sys::MemoryContextSwitchTo(cxt);
        let mut guard = CxtGuard(cxt, prev);
        let (slot, econtext, states) = as_owner(|| {
            let mut states = vec![];
            for sql in queries {
                let csql = CString::new(sql.clone()).unwrap_or_else(|_| fail("kenbun row trigger: NUL in SQL".into()));
                let raw = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::raw_parser(csql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT));
                let stmt = raw.get_ptr(0).unwrap_or_else(|| fail("kenbun row trigger: empty statement".into()));
                let q = pg_sys::parse_analyze_fixedparams(stmt, csql.as_ptr(), std::ptr::null(), 0, std::ptr::null_mut());
                for te in PgList::<pg_sys::TargetEntry>::from_pg((*q).targetList).iter_ptr() {
                    let e = pg_sys::expression_planner((*te).expr);
                    states.push(pg_sys::ExecInitExpr(e, std::ptr::null_mut()));
                }
            }
            let slot = pg_sys::MakeSingleTupleTableSlot(pg_sys::CreateTupleDescCopy(tupdesc), &pg_sys::TTSOpsHeapTuple);
            let econtext = pg_sys::CreateStandaloneExprContext();
            (*econtext).ecxt_scantuple = slot;
            (slot, econtext, states)
        });
        pg_sys::MemoryContextSwitchTo(prev);
        guard.0 = std::ptr::null_mut();
        drop(guard);
        Exprs { cxt, slot, econtext, states }
    }

    /// The descriptor of the rows the expressions read (a copy owned by the expressions).
    pub(super) fn tupdesc(&self) -> pg_sys::TupleDesc {
        // SAFETY: the slot lives as long as `self`
        unsafe { (*self.slot).tts_tupleDescriptor }
    }

    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    /// Evaluates the expressions `which` on `tuple` (NULL is false).
    pub(super) unsafe fn eval(&self, tuple: pg_sys::HeapTuple, which: &[usize]) -> Vec<bool> {
        pg_sys::ExecStoreHeapTuple(tuple, self.slot, false);
        let out = which
            .iter()
            .map(|&i| {
                let mut isnull = false;
                let d = pg_sys::ExecEvalExprSwitchContext(self.states[i], self.econtext, &mut isnull);
                !isnull && d.value() != 0
            })
            .collect();
        pg_sys::MemoryContextReset((*self.econtext).ecxt_per_tuple_memory);
        if let Some(clear) = (*(*self.slot).tts_ops).clear {
            clear(self.slot);
        }
        out
    }
}

/// A column's value in a row (None: NULL).
pub(super) unsafe fn value(tuple: pg_sys::HeapTuple, att: i16, tupdesc: pg_sys::TupleDesc) -> Option<pg_sys::Datum> {
    let mut isnull = false;
    let d = pg_sys::heap_getattr(tuple, att as i32, tupdesc, &mut isnull);
    (!isnull).then_some(d)
}

/// Whether a column holds the same bytes in both rows (a different representation of an equal
/// value counts as a change: the rules are then evaluated, and decide the same).
pub(super) unsafe fn same(old: pg_sys::HeapTuple, new: pg_sys::HeapTuple, a: &Att, tupdesc: pg_sys::TupleDesc) -> bool {
    match (value(old, a.num, tupdesc), value(new, a.num, tupdesc)) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            if a.byval {
                x == y
            } else if a.len > 0 {
                libc_memeq(x.cast_mut_ptr::<u8>(), y.cast_mut_ptr::<u8>(), a.len as usize)
            } else if a.len == -1 {
                let (px, py) = (x.cast_mut_ptr::<u8>(), y.cast_mut_ptr::<u8>());
                let (sx, sy) = (varsize_any(px), varsize_any(py));
                sx == sy && libc_memeq(px, py, sx)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// A column's value as text (its type's output function), None for NULL.
pub(super) unsafe fn text_of(tuple: pg_sys::HeapTuple, att: i16, out_fn: pg_sys::Oid, tupdesc: pg_sys::TupleDesc) -> Option<String> {
    value(tuple, att, tupdesc).map(|d| {
        let s = pg_sys::OidOutputFunctionCall(out_fn, d);
        let out = CStr::from_ptr(s).to_string_lossy().into_owned();
        pg_sys::pfree(s.cast());
        out
    })
}

/// The comparison data of the columns `nums` of a table.
pub(super) unsafe fn atts_of(nums: impl IntoIterator<Item = i16>, tupdesc: pg_sys::TupleDesc) -> Vec<Att> {
    nums.into_iter()
        .map(|n| {
            let a = &*(*tupdesc).attrs.as_ptr().add(n as usize - 1);
            Att { num: n, byval: a.attbyval, len: a.attlen }
        })
        .collect()
}

/// The output function of a column's type.
pub(super) unsafe fn output_fn(att: i16, tupdesc: pg_sys::TupleDesc) -> pg_sys::Oid {
    let a = &*(*tupdesc).attrs.as_ptr().add(att as usize - 1);
    let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
    pg_sys::getTypeOutputInfo(a.atttypid, &mut out, &mut varlena);
    out
}

/// `schema.table`, quoted, of a relation.
pub(super) unsafe fn qualified_name(rel: pg_sys::Relation) -> String {
    let nsp = CStr::from_ptr(pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace)).to_string_lossy().into_owned();
    let relname = CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy().into_owned();
    format!("{}.{}", ident(&nsp), ident(&relname))
}

/// What one row trigger needs, built on its first call in a backend.
struct Table {
    relid: pg_sys::Oid,
    kind: Kind,
    /// One expression per segment, in `segs` order.
    exprs: Exprs,
    tupdesc: pg_sys::TupleDesc,
    segs: Vec<Seg>,
    seg_atts: Vec<Vec<i16>>,
    atts: Vec<Att>,
    key_att: i16,
    key_out: pg_sys::Oid,
    key_type: String,
    /// The current version of a row by key, for the rows decided again at the flush.
    fetch: OwnedPreparedStatement,
}

/// A statement's decisions are written in batches of this many (instead of all at its end), so that
/// the memory a bulk UPDATE needs does not grow with the number of membership changes; not while a
/// key change is pending (a vacated key must not override a decision already written).
const FLUSH_EVERY: usize = 10_000;

struct Pending {
    xid: u32,
    /// A key changed in this statement (no batch is written before its end).
    key_changes: bool,
    /// Decisions, with the subtransaction and the kind they were made in.
    items: Vec<(pg_sys::SubTransactionId, Kind, Decision)>,
    /// Rows to decide again at the flush, from their current version (by key).
    recheck: Vec<(pg_sys::SubTransactionId, Rc<Table>, String)>,
}

thread_local! {
    /// Bumped by the relcache callback when a bound table (or everything) is invalidated.
    pub(super) static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// The tables whose compiled states (row and capture triggers) are cached.
    static WATCHED: RefCell<std::collections::HashSet<pg_sys::Oid>> = RefCell::new(std::collections::HashSet::new());
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { xid: 0, key_changes: false, items: Vec::new(), recheck: Vec::new() }) };
    static APPLY: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let hit = relid == pg_sys::InvalidOid
        || WATCHED.with(|w| match w.try_borrow() {
            Ok(w) => w.contains(&relid),
            Err(_) => true,
        });
    if hit {
        GENERATION.with(|g| g.set(g.get() + 1));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // changes decided in a rolled-back subtransaction (or in one it contained) are forgotten
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.items.retain(|i| i.0 < my_subid);
                p.recheck.retain(|i| i.0 < my_subid);
            }
        });
    }
}

/// Drops the cached states of every trigger when `relid` is invalidated (ALTER TABLE, a new trigger).
pub(super) fn watch(relid: pg_sys::Oid) {
    WATCHED.with(|w| w.borrow_mut().insert(relid));
}

pub(super) fn register_callbacks() {
    if !CALLBACKS.with(|c| c.replace(true)) {
        // SAFETY: plain registrations of backend-lifetime callbacks
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
            pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
        }
    }
}

pub(super) fn fail(msg: String) -> ! {
    raise(KenbunError::new(SqlState::ObjectNotInPrerequisiteState, msg))
}

pub(super) fn top_xid() -> u32 {
    // SAFETY: called from a trigger of a writing statement, so the transaction has an xid
    unsafe { u32::from(pg_sys::GetTopTransactionId()) }
}

/// Runs `f` as the owner of kenbun's tables (as the SECURITY DEFINER trigger functions do) with
/// `search_path = pg_catalog, pg_temp`; both are restored after, and by PostgreSQL on error.
pub(super) fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = OWNER.with(|o| o.get()).unwrap_or_else(|| {
        let o = Spi::get_one::<pg_sys::Oid>(
            "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'kenbun.membership_changes'::pg_catalog.regclass",
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| fail("kenbun.membership_changes is missing".into()));
        OWNER.with(|x| x.set(Some(o)));
        o
    });
    struct Restore(pg_sys::Oid, i32, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores what `as_owner` saved
            unsafe {
                pg_sys::AtEOXact_GUC(true, self.2);
                pg_sys::SetUserIdAndSecContext(self.0, self.1);
            }
        }
    }
    let (mut uid, mut sec) = (pg_sys::InvalidOid, 0i32);
    // SAFETY: plain backend state calls, undone by `Restore`
    let _restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut sec);
        let nest = pg_sys::NewGUCNestLevel();
        pg_sys::SetUserIdAndSecContext(owner, sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        // as the generated functions: a fixed search_path, and generic plans (the array parameters
        // would otherwise be planned again on every call)
        for (name, value) in [(c"search_path", c"pg_catalog, pg_temp"), (c"plan_cache_mode", c"force_generic_plan")] {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        Restore(uid, sec, nest)
    };
    f()
}

/// Deletes a half-built context if building fails.
struct CxtGuard(pg_sys::MemoryContext, pg_sys::MemoryContext);
impl Drop for CxtGuard {
    fn drop(&mut self) {
        // SAFETY: switch out of the context before deleting it
        unsafe {
            if pg_sys::CurrentMemoryContext == self.0 {
                pg_sys::MemoryContextSwitchTo(self.1);
            }
            if !self.0.is_null() {
                pg_sys::MemoryContextDelete(self.0);
            }
        }
    }
}

pub(super) fn parse_kind(s: &str) -> Kind {
    Kind::from_name(s).unwrap_or_else(|| fail(format!("kenbun row trigger: invalid kind \"{s}\"")))
}

/// Builds the cached state of a row trigger: arguments kind, key column, segment ids.
unsafe fn build(td: &pg_sys::TriggerData, kind: Kind, key_col: &str, ids: &[i64]) -> Table {
    let key_col = key_col.to_string();
    let ids = ids.to_vec();
    let rel = td.tg_relation;
    let relid = (*rel).rd_id;
    let tupdesc = (*rel).rd_att;
    let rows: Vec<(i64, String, bool, serde_json::Value)> = as_owner(|| {
        Spi::connect(|c| {
            let mut out = vec![];
            for r in c.select(
                "SELECT id, compiled_sql, time_dependent, reads FROM kenbun.segments WHERE id = ANY ($1) AND compiled_sql IS NOT NULL ORDER BY id",
                None,
                &[ids.clone().into()],
            )? {
                out.push((
                    r.get::<i64>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<bool>(3)?.unwrap_or_default(),
                    r.get::<pgrx::JsonB>(4)?.map(|j| j.0).unwrap_or_default(),
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .unwrap_or_else(|e| fail(format!("kenbun row trigger: reading segments: {e}")));
    if rows.len() != ids.len() {
        fail(format!(
            "kenbun row trigger on {}: segments {ids:?} changed without their trigger being rebuilt",
            kind.name()
        ));
    }
    let attnum = |col: &str| -> i16 {
        let c = CString::new(col).unwrap_or_default();
        pg_sys::get_attnum(relid, c.as_ptr())
    };
    let key_att = attnum(&key_col);
    if key_att <= 0 {
        fail(format!("kenbun row trigger: key column \"{key_col}\" not found"));
    }
    let mut all_atts: BTreeSet<i16> = BTreeSet::from([key_att]);
    let mut segs = vec![];
    for (id, _, td_, reads) in &rows {
        let atts: Vec<i16> = reads
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p.get(0).and_then(|k| k.as_str()) == Some(kind.name()))
                    .filter_map(|p| p.get(1).and_then(|c| c.as_str()))
                    .map(attnum)
                    .filter(|n| *n > 0)
                    .collect()
            })
            .unwrap_or_default();
        all_atts.extend(atts.iter().copied());
        segs.push(Seg { id: *id, atts, time_dependent: *td_ });
    }
    let atts = atts_of(all_atts.iter().copied(), tupdesc);
    let key_out = output_fn(key_att, tupdesc);
    let key_type = pg_sys::format_type_be((*(*tupdesc).attrs.as_ptr().add(key_att as usize - 1)).atttypid);
    let key_type = CStr::from_ptr(key_type).to_string_lossy().into_owned();
    let qualified = qualified_name(rel);
    let sql = fast_eval_sql(&qualified, kind, &rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>());
    let fetch = as_owner(|| {
        Spi::connect(|c| {
            c.prepare(
                fast_fetch_sql(&qualified, kind, &key_col, &key_type).as_str(),
                &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)],
            )
            .map(|p| p.keep())
        })
    })
    .unwrap_or_else(|e| fail(format!("kenbun row trigger: preparing the row fetch: {e}")));
    let exprs = Exprs::compile(&[sql], tupdesc);
    if exprs.len() != segs.len() {
        fail(format!("kenbun row trigger: {} expressions for {} segments", exprs.len(), segs.len()));
    }
    let own_desc = exprs.tupdesc();
    Table {
        relid,
        kind,
        exprs,
        tupdesc: own_desc,
        seg_atts: segs.iter().map(|s| s.atts.clone()).collect(),
        segs,
        atts,
        key_att,
        key_out,
        key_type,
        fetch,
    }
}

impl Table {
    /// Evaluates the segments `which` on `tuple`.
    unsafe fn eval(&self, tuple: pg_sys::HeapTuple, which: &[usize]) -> Vec<bool> {
        self.exprs.eval(tuple, which)
    }

    unsafe fn key_text(&self, tuple: pg_sys::HeapTuple) -> Option<String> {
        text_of(tuple, self.key_att, self.key_out, self.tupdesc)
    }

    /// Decides every segment again for the current version of the row with key `key` (none: it
    /// was deleted or its key changed): absolute decisions, which win over earlier ones.
    fn recheck(&self, key: &str) -> Vec<Decision> {
        let all: Vec<usize> = (0..self.segs.len()).collect();
        let now: Option<Vec<bool>> = as_owner(|| {
            Spi::connect(|c| {
                let t = c.select(&self.fetch, Some(1), &[key.into()])?;
                if t.is_empty() {
                    return Ok::<_, pgrx::spi::SpiError>(None);
                }
                let Some(d) = t.first().get_datum_by_ordinal(1)? else { return Ok(None) };
                // SAFETY: a whole-row value of the bound table: a heap tuple header with its rowtype
                unsafe {
                    let header = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as pg_sys::HeapTupleHeader;
                    let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
                    tuple.t_len = varsize_any(header as *const u8) as u32;
                    tuple.t_tableOid = self.relid;
                    tuple.t_data = header;
                    Ok(Some(self.eval(&mut tuple, &all)))
                }
            })
        })
        .unwrap_or_else(|e| fail(format!("kenbun row trigger: re-reading a row: {e}")));
        self.segs
            .iter()
            .enumerate()
            .map(|(i, s)| Decision {
                segment: s.id,
                member: key.to_string(),
                enters: now.as_ref().is_some_and(|v| v[i]),
                vacated: false,
            })
            .collect()
    }

    /// One updated row: the memberships that change, added to the statement's pending decisions.
    unsafe fn row(self: &Rc<Self>, old: pg_sys::HeapTuple, new: pg_sys::HeapTuple) {
        let changed: Vec<i16> = self.atts.iter().filter(|a| !same(old, new, a, self.tupdesc)).map(|a| a.num).collect();
        if changed.is_empty() {
            return;
        }
        let key_changed = changed.contains(&self.key_att);
        let which = decide::affected(&self.seg_atts, &changed, key_changed);
        if which.is_empty() {
            return;
        }
        let (xid, subid) = (top_xid(), pg_sys::GetCurrentSubTransactionId());
        let push = |items: Vec<Decision>, recheck: Option<String>| {
            let batch = PENDING.with(|p| {
                let mut p = p.borrow_mut();
                if p.xid != xid {
                    p.xid = xid;
                    p.key_changes = false;
                    p.items.clear();
                    p.recheck.clear();
                }
                p.key_changes |= key_changed;
                p.items.extend(items.into_iter().map(|d| (subid, self.kind, d)));
                if let Some(k) = recheck {
                    p.recheck.push((subid, self.clone(), k));
                }
                // a full batch of this kind's decisions is written now
                if p.items.len() >= FLUSH_EVERY && !p.key_changes {
                    let (mine, rest): (Vec<_>, Vec<_>) =
                        std::mem::take(&mut p.items).into_iter().partition(|i| i.1 == self.kind && i.0 >= subid);
                    p.items = rest;
                    mine
                } else {
                    vec![]
                }
            });
            if !batch.is_empty() {
                apply(self.kind, &self.key_type, batch.into_iter().map(|i| i.2).collect());
            }
        };
        // updated again later in this statement (a nested UPDATE, or deleted): the row's decisions
        // are taken again from its current version when the statement ends
        if superseded_here(new) {
            if let Some(k) = self.key_text(new) {
                push(vec![], Some(k));
            }
            return;
        }
        let after = self.eval(new, &which);
        // (segment, enters?) decided outright, and transitions; the member key is made only if needed
        let mut outright: Vec<(i64, bool)> = vec![];
        let mut moved: Vec<(i64, bool)> = vec![];
        if key_changed {
            outright.extend(which.iter().zip(&after).map(|(&i, &a)| (self.segs[i].id, a)));
        } else {
            // membership before the UPDATE is the rule on the old row, except for rules that use now()
            // (the row may have entered or left since it was written): those are decided outright
            let mut plain = vec![];
            let mut after_plain = vec![];
            for (&i, &a) in which.iter().zip(&after) {
                if self.segs[i].time_dependent {
                    outright.push((self.segs[i].id, a));
                } else {
                    plain.push(i);
                    after_plain.push(a);
                }
            }
            if !plain.is_empty() {
                let before = self.eval(old, &plain);
                let plain_ids: Vec<i64> = plain.iter().map(|&i| self.segs[i].id).collect();
                moved = decide::transitions(&plain_ids, &before, &after_plain);
            }
        }
        if outright.is_empty() && moved.is_empty() && !key_changed {
            return;
        }
        let mut out: Vec<Decision> = vec![];
        if key_changed {
            // the old key leaves every segment; the new one is decided outright
            if let Some(k) = self.key_text(old) {
                out.extend(self.segs.iter().map(|s| Decision { segment: s.id, member: k.clone(), enters: false, vacated: true }));
            }
        }
        if let Some(k) = self.key_text(new) {
            out.extend(outright.into_iter().chain(moved).map(|(segment, enters)| Decision {
                segment,
                member: k.clone(),
                enters,
                vacated: false,
            }));
        }
        if !out.is_empty() {
            push(out, None);
        }
    }
}

/// Has this row version been updated or deleted since by the current transaction?
unsafe fn superseded_here(t: pg_sys::HeapTuple) -> bool {
    let h = (*t).t_data;
    let mask = (*h).t_infomask as u32;
    if mask & pg_sys::HEAP_XMAX_INVALID != 0 {
        return false;
    }
    let locked_only = mask & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
        || (mask & (pg_sys::HEAP_XMAX_IS_MULTI | pg_sys::HEAP_LOCK_MASK)) == pg_sys::HEAP_XMAX_EXCL_LOCK;
    if locked_only {
        return false;
    }
    let xmax = if mask & pg_sys::HEAP_XMAX_IS_MULTI != 0 {
        pg_sys::HeapTupleGetUpdateXid(h)
    } else {
        (*h).t_choice.t_heap.t_xmax
    };
    pg_sys::TransactionIdIsCurrentTransactionId(xmax)
}

unsafe fn libc_memeq(a: *const u8, b: *const u8, n: usize) -> bool {
    std::slice::from_raw_parts(a, n) == std::slice::from_raw_parts(b, n)
}

/// VARSIZE_ANY: the size of a varlena datum as stored (4-byte header, 1-byte header or TOAST pointer).
unsafe fn varsize_any(p: *const u8) -> usize {
    pgrx::varlena::varsize_any(p as *const pg_sys::varlena)
}

/// What one `kenbun_maintain_row` trigger does, built on its first call in a backend: the row-only
/// segments it decides, and the capture of rows for the statement-level function.
struct Parts {
    generation: u64,
    relid: pg_sys::Oid,
    fast: Option<Rc<Table>>,
    slow: Option<Rc<super::capture::Capture>>,
}

thread_local! {
    static PARTS: RefCell<HashMap<pg_sys::Oid, Rc<Parts>>> = RefCell::new(HashMap::new());
}

fn ids_of(csv: Option<&String>) -> Vec<i64> {
    csv.map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_default()
}

fn parts_for(trigger: &PgTrigger<'_>) -> Rc<Parts> {
    register_callbacks();
    let td = trigger.trigger_data();
    // SAFETY: a row trigger's data points at its trigger
    let tgoid = unsafe { (*td.tg_trigger).tgoid };
    let generation = GENERATION.with(|g| g.get());
    if let Some(p) = PARTS.with(|t| t.borrow().get(&tgoid).cloned()) {
        if p.generation == generation {
            return p;
        }
    }
    // arguments: kind, key column, account key column (or ''), row-only segment ids, captured ones
    let args = trigger.extra_args().unwrap_or_default();
    let kind = parse_kind(args.first().map(String::as_str).unwrap_or(""));
    let key_col = args.get(1).cloned().unwrap_or_default();
    let acc_col = args.get(2).cloned().unwrap_or_default();
    let (fast_ids, slow_ids) = (ids_of(args.get(3)), ids_of(args.get(4)));
    // SAFETY: called from the trigger, whose relation is valid
    let relid = unsafe { (*td.tg_relation).rd_id };
    let fast = (!fast_ids.is_empty()).then(|| Rc::new(unsafe { build(td, kind, &key_col, &fast_ids) }));
    let slow = (!slow_ids.is_empty())
        .then(|| Rc::new(unsafe { super::capture::build(td, kind, &key_col, &acc_col, &slow_ids) }));
    watch(relid);
    let p = Rc::new(Parts { generation, relid, fast, slow });
    PARTS.with(|t| {
        let mut t = t.borrow_mut();
        // an entry of an older trigger on the same table, or of an older generation, is stale
        t.retain(|_, x| x.relid != relid && x.generation == generation);
        t.insert(tgoid, p.clone());
    });
    p
}

/// AFTER UPDATE OF <columns> FOR EACH ROW on a bound lead, account or event table: decides the
/// row-only segments (`Table::row`) and records the row for the statement-level function with the
/// segments it can affect (`Capture::row`). One trigger for both: each AFTER ROW trigger costs
/// PostgreSQL a queued event and two tuple fetches per row.
#[pg_trigger]
fn _maintain_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::PgTriggerError> {
    let td = trigger.trigger_data();
    if td.tg_trigtuple.is_null() || td.tg_newtuple.is_null() {
        return Ok(None);
    }
    let parts = parts_for(trigger);
    // SAFETY: the old and new tuples of an UPDATE row trigger, of the relation the parts were built for
    unsafe {
        if let Some(t) = &parts.fast {
            t.row(td.tg_trigtuple, td.tg_newtuple);
        }
        if let Some(c) = &parts.slow {
            c.row(td.tg_trigtuple, td.tg_newtuple);
        }
    }
    Ok(None)
}

/// AFTER UPDATE OF <columns> FOR EACH STATEMENT: applies what the row trigger decided. Arguments:
/// kind, key type.
#[pg_trigger]
fn _maintain_row_flush<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::PgTriggerError> {
    let xid = top_xid();
    let args = trigger.extra_args()?;
    let kind = parse_kind(args.first().map(String::as_str).unwrap_or(""));
    let (items, recheck) = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.key_changes = false;
        if p.xid != xid {
            p.items.clear();
            p.recheck.clear();
            return (vec![], vec![]);
        }
        // what was decided in this (sub)transaction or in the ones it contains; decisions of an
        // enclosing statement in an outer subtransaction wait for that statement's end (written here,
        // they would be lost if this subtransaction rolled back)
        // SAFETY: plain backend state
        let subid = unsafe { pg_sys::GetCurrentSubTransactionId() };
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut p.items).into_iter().partition(|i| i.1 == kind && i.0 >= subid);
        p.items = rest;
        let (again, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut p.recheck).into_iter().partition(|i| i.1.kind == kind && i.0 >= subid);
        p.recheck = rest;
        (mine, again)
    });
    if items.is_empty() && recheck.is_empty() {
        return Ok(None);
    }
    let mut decisions: Vec<Decision> = items.into_iter().map(|i| i.2).collect();
    for (_, table, key) in recheck {
        decisions.extend(table.recheck(&key));
    }
    let key_type = args.get(1).cloned().unwrap_or_else(|| "text".into());
    apply(kind, &key_type, decisions);
    Ok(None)
}

/// Writes decisions: membership rows, change log and NOTIFY, in one statement run as the owner.
fn apply(kind: Kind, key_type: &str, decisions: Vec<Decision>) {
    let changes = decide::net(decisions);
    if changes.is_empty() {
        return;
    }
    let sql = fast_apply_sql(kind, key_type);
    let n = changes.len();
    let kinds = vec![kind.name().to_string(); n];
    let (mut sids, mut mids, mut what) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (s, m, e) in changes {
        sids.push(s);
        mids.push(m);
        what.push(if e { "enter" } else { "exit" }.to_string());
    }
    as_owner(|| {
        let plan = APPLY.with(|a| a.borrow().get(&sql).cloned());
        let plan = match plan {
            Some(p) => p,
            None => {
                let arr = |o| PgOid::BuiltIn(o);
                let p = Spi::connect(|c| {
                    c.prepare_mut(
                        sql.as_str(),
                        &[
                            arr(PgBuiltInOids::TEXTARRAYOID),
                            arr(PgBuiltInOids::INT8ARRAYOID),
                            arr(PgBuiltInOids::TEXTARRAYOID),
                            arr(PgBuiltInOids::TEXTARRAYOID),
                        ],
                    )
                    .map(|p| Rc::new(p.keep()))
                })
                .unwrap_or_else(|e| fail(format!("kenbun row trigger: preparing the apply statement: {e}")));
                APPLY.with(|a| a.borrow_mut().insert(sql.clone(), p.clone()));
                p
            }
        };
        Spi::connect_mut(|c| {
            c.update(&*plan, None, &[kinds.into(), sids.into(), mids.into(), what.into()])?;
            Ok::<_, pgrx::spi::SpiError>(())
        })
        .unwrap_or_else(|e| fail(format!("kenbun row trigger: applying membership changes: {e}")));
    });
}
