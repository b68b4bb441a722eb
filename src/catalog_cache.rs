//! The catalog document (`kenbun._catalog()`: bindings with their columns, fields, levels, segments)
//! cached per backend, so that `compile`, `segment_preview`, `segment_count` and the other callers do
//! not rebuild it on every call.
//!
//! The cache is dropped on any relcache invalidation (ALTER TABLE of a bound table, and every change
//! to kenbun's own catalog tables, whose statement trigger `kenbun._catalog_touch` sends one) and on
//! syscache invalidations of schemas and types (renames, domains). Invalidations are transactional:
//! this backend sees its own changes at the next command and other backends' changes once they
//! commit. Under REPEATABLE READ and SERIALIZABLE the document is read from the transaction's
//! snapshot and not cached.
use crate::compile::Catalog;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

thread_local! {
    /// The document, and the OIDs of the catalog tables it was read from.
    static CACHED: RefCell<Option<(Rc<Catalog>, Vec<pg_sys::Oid>)>> = const { RefCell::new(None) };
    static DIRTY: Cell<bool> = const { Cell::new(true) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    DIRTY.with(|d| d.set(true));
}

#[pg_guard]
unsafe extern "C-unwind" fn syscache_callback(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    DIRTY.with(|d| d.set(true));
}

fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: backend-lifetime callback registrations
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
                Some(syscache_callback),
                pg_sys::Datum::from(0),
            );
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::TYPEOID as i32,
                Some(syscache_callback),
                pg_sys::Datum::from(0),
            );
        }
    }
}

/// The catalog tables `kenbun._catalog()` reads; reading them is what a caller needs the right to do.
fn catalog_tables() -> Vec<pg_sys::Oid> {
    Spi::get_one::<Vec<pg_sys::Oid>>(
        "SELECT ARRAY['kenbun.bindings'::pg_catalog.regclass::pg_catalog.oid, 'kenbun.fields'::pg_catalog.regclass::pg_catalog.oid, 'kenbun.levels'::pg_catalog.regclass::pg_catalog.oid, 'kenbun.segments'::pg_catalog.regclass::pg_catalog.oid, 'kenbun.member_overrides'::pg_catalog.regclass::pg_catalog.oid]",
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// May the current role read every catalog table (as `kenbun._catalog()` would check)?
fn may_read(tables: &[pg_sys::Oid]) -> bool {
    // SAFETY: privilege lookups of existing relations (their OIDs are re-read after any relcache invalidation)
    unsafe {
        let user = pg_sys::GetUserId();
        !tables.is_empty()
            && tables.iter().all(|t| {
                pg_sys::pg_class_aclcheck(*t, user, pg_sys::ACL_SELECT as pg_sys::AclMode)
                    == pg_sys::AclResult::ACLCHECK_OK
            })
    }
}

/// The cached catalog if it is still valid and the current role may read it, else `build()`'s
/// (which raises the permission error), cached when the isolation level allows.
pub fn get(build: impl FnOnce() -> Catalog) -> Rc<Catalog> {
    register();
    // SAFETY: reads pending invalidations (cheap when there are none) and a backend global
    let snapshot_per_statement = unsafe {
        pg_sys::AcceptInvalidationMessages();
        pg_sys::XactIsoLevel < pg_sys::XACT_REPEATABLE_READ as i32
    };
    if !snapshot_per_statement {
        return Rc::new(build());
    }
    if !DIRTY.with(|d| d.get()) {
        if let Some((c, tables)) = CACHED.with(|c| c.borrow().clone()) {
            if may_read(&tables) {
                return c;
            }
            return Rc::new(build());
        }
    }
    // cleared before reading: an invalidation arriving while the document is built marks it dirty again
    DIRTY.with(|d| d.set(false));
    let c = Rc::new(build());
    let tables = catalog_tables();
    CACHED.with(|x| *x.borrow_mut() = Some((c.clone(), tables)));
    c
}

/// Statement trigger on kenbun's catalog tables: tells every backend (at commit) and this one (at the
/// next command) that the catalog changed.
#[pg_trigger]
fn _catalog_touch<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    // SAFETY: queues a transactional relcache invalidation of the trigger's own table
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(None)
}

extension_sql!(
    r#"
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.bindings
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.fields
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.levels
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.segments
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.member_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
"#,
    name = "catalog_touch",
    requires = [_catalog_touch, "segments"]
);
