//! kenbun segments: rule-based segments of leads and accounts, inside PostgreSQL.
//!
//! `rule` (types, parsing, validation), `compile` (the only SQL writer) and `error` are free of
//! pgrx; `api` is the thin `#[pg_extern]` layer.
pub mod compile;
pub mod error;
pub mod hint;
pub mod rule;

mod analysis;
mod api;
mod catalog_cache;
mod hooks;
mod maintain;

#[cfg(any(test, feature = "pg_test"))]
mod tests_pg;

#[cfg(test)]
mod fuzz_tests;

::pgrx::pg_module_magic!(name, version);

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

// roles, grants and SECURITY DEFINER: after every object exists
::pgrx::extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);
