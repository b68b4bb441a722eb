//! Hints added to PostgreSQL's own errors about kenbun's objects (no pgrx): a role that was granted
//! neither kenbun role gets `permission denied for table bindings` from PostgreSQL, which does not say
//! what to grant. `hooks.rs` passes every 42501 error without a hint through [`privilege_hint`].

/// kenbun's tables and views (unqualified, as PostgreSQL's message names them).
const RELATIONS: &[&str] = &[
    "bindings", "fields", "levels", "segments", "lead_members", "account_members", "membership_changes",
    "change_consumers", "segment_builds", "member_overrides", "segment_overrides", "segment_progress",
    "lead_segment_members", "account_segment_members",
];

/// The hint for a `permission denied` message, when it is about one of kenbun's objects: the object
/// is named in the message, and the statement (`query`) or the function it failed in (`context`)
/// is kenbun's. A function kenbun refuses to run is one for kenbun_admin, but for the change log's.
pub fn privilege_hint(message: &str, context: &str, query: &str) -> Option<String> {
    let rest = message.strip_prefix("permission denied for ")?;
    let (what, name) = rest.split_once(' ')?;
    let ours = context.contains("kenbun.") || query.contains("kenbun.");
    if !ours {
        return None;
    }
    let reader = "kenbun_reader may read segments and membership, kenbun_admin also define them: GRANT kenbun_reader TO <role> (see the README, \"Security\")";
    let admin = "kenbun_admin defines and changes segments: GRANT kenbun_admin TO <role> (see the README, \"Security\")";
    match what {
        "table" | "view" if RELATIONS.contains(&name) => {
            let writing = ["INSERT", "UPDATE", "DELETE"].iter().any(|w| query.trim_start().to_ascii_uppercase().starts_with(w));
            Some(if writing && !context.contains("kenbun.") { admin } else { reader }.to_string())
        }
        // a bound table's schema: kenbun reads the bound tables with the caller's rights
        "schema" if name != "kenbun" && name != "\"kenbun\"" => Some(format!(
            "kenbun reads the bound tables with your rights: GRANT USAGE ON SCHEMA {name} and SELECT on the table TO <role> (see the README, \"Security\")"
        )),
        "function" | "procedure" if query.contains(&format!("kenbun.{name}")) || context.contains(&format!("kenbun.{name}")) => {
            Some(if matches!(name, "changes_since" | "consume_changes") { reader } else { admin }.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::privilege_hint;

    #[test]
    fn hints_only_for_kenbun_objects() {
        let ctx = "PL/pgSQL function kenbun.lead_segments(text) line 5 at FOR over SELECT rows";
        let h = privilege_hint("permission denied for table bindings", ctx, "SELECT * FROM kenbun.lead_segments('2')").unwrap();
        assert!(h.contains("GRANT kenbun_reader TO"), "{h}");
        // a table of the same name outside kenbun: no hint
        assert_eq!(privilege_hint("permission denied for table segments", "", "SELECT * FROM app.segments"), None);
        // writing kenbun.segments directly needs kenbun_admin
        let h = privilege_hint("permission denied for table segments", "", "INSERT INTO kenbun.segments VALUES (1)").unwrap();
        assert!(h.contains("kenbun_admin"), "{h}");
        let h = privilege_hint("permission denied for function segment_refresh", "", "SELECT kenbun.segment_refresh('x')").unwrap();
        assert!(h.contains("GRANT kenbun_admin"), "{h}");
        assert_eq!(privilege_hint("permission denied for table leads", ctx, "SELECT 1"), None);
        assert_eq!(privilege_hint("division by zero", ctx, "SELECT kenbun.x()"), None);
        // the bound table's schema, in a kenbun statement: what to grant
        let h = privilege_hint("permission denied for schema app", "", "SELECT kenbun.segment_count('{}')").unwrap();
        assert!(h.contains("GRANT USAGE ON SCHEMA app"), "{h}");
        assert_eq!(privilege_hint("permission denied for schema app", "", "SELECT * FROM app.leads"), None);
    }
}
