//! The library's load-time hook: adds a hint to PostgreSQL's `permission denied` errors about kenbun's
//! objects (the decision is `hint::privilege_hint`, testable without a database).
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(emit_log_hook);
    }
}

unsafe fn text(p: *const std::os::raw::c_char) -> String {
    if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
}

#[pg_guard]
unsafe extern "C-unwind" fn emit_log_hook(edata: *mut pg_sys::ErrorData) {
    let e = &mut *edata;
    if e.elevel >= PgLogLevel::ERROR as i32
        && e.sqlerrcode == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32
        && e.hint.is_null()
        && !e.message.is_null()
    {
        let query = text(pg_sys::debug_query_string);
        if let Some(h) = crate::hint::privilege_hint(&text(e.message), &text(e.context), &query) {
            if let Ok(c) = CString::new(h) {
                // allocated in the current context: EmitErrorReport runs in the error's own context
                e.hint = pg_sys::pstrdup(c.as_ptr());
            }
        }
    }
    if let Some(previous) = PREVIOUS_EMIT_LOG_HOOK {
        previous(edata);
    }
}

/// Loads the library, and with it the hook above, into the backend. SQL functions that read kenbun's
/// catalog first (`_bound`, `_segment`) call it, so that a role's first call in a session, even of a
/// function written in SQL, gets the hint.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _load_hooks() {}
