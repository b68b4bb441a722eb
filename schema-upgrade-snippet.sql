-- For the integrator: append to sql/kenbun--0.5.0--0.6.0.sql (this branch does not edit sql/*.sql).
-- The same statements pgrx generates for a fresh install (cargo pgrx schema), so that 11_upgrade's
-- comparison of an updated extension with a fresh one still holds. PUBLIC may call it (read-only,
-- no grant needed: privileges.sql revokes only from SECURITY DEFINER and listed functions).
CREATE FUNCTION kenbun."rule_schema"() RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'rule_schema_wrapper';
COMMENT ON FUNCTION kenbun.rule_schema() IS 'The JSON Schema (draft 2020-12) of the rule language of this kenbun version ($id names it): one $defs entry per construct and operator, with descriptions, for validating rules and building rule editors client-side. What it cannot express (field names and types, kinds, limits, regular expressions, time zones) is listed in its description and checked by the server.';
