-- For the integrator: segment_why in the upgrade script (kenbun--0.5.0--0.6.0.sql), as
-- `cargo pgrx schema` generates it for a fresh install (checked), plus the comments of sql/analysis.sql.
-- No grants: like segment_diagnose it is SECURITY INVOKER and callable by PUBLIC (it fails with
-- 42501 unless the caller may read kenbun.segments, the membership tables and the bound tables).
CREATE FUNCTION kenbun.segment_why(segment text, member_id text)
RETURNS TABLE (path text, condition text, result boolean, value text)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'segment_why_saved_wrapper';
CREATE FUNCTION kenbun.segment_why(rule kenbun.segment_rule, member_id text, kind text DEFAULT 'lead')
RETURNS TABLE (path text, condition text, result boolean, value text)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'segment_why_rule_wrapper';
COMMENT ON FUNCTION kenbun.segment_why(text, text) IS 'Why a lead or account (member_id: its key as text) is or is not in a saved segment (segment: its name; rule JSON text instead is taken as an ad-hoc lead rule, as by the other overload). A first row (path "segment") says whether it is in the membership table, and its value why when that is not the rule: "static list", "override: included" / "override: excluded", "inactive: no members", "building: membership may lag the rule", or drift ("rule" when it is the rule). Then, unless the segment is static, one row per node of its rule in document order: path (JSON path), condition (indented two spaces per depth), result (the node''s two-valued truth for this member, as kenbun.compile computes it) and value (what it compared: the field''s value as JSON, null when missing; a level''s value and tier; the number of matching events or leads; the account''s key, its conditions read from the account row; membership of a referenced segment; "k of n" for all/any; for the nodes of an event''s or leads'' where: true when one of the counted rows satisfies the node, value how many do). Errors: 42704 unknown segment, 22P02 member_id not of the key''s type, 22023 no such lead/account, 55000 no table bound.';
COMMENT ON FUNCTION kenbun.segment_why(kenbun.segment_rule, text, text) IS 'Why a lead or account (member_id: its key as text; kind lead or account) does or does not match an ad-hoc rule: one row per node of the rule in document order with path, condition (indented by depth), result (the node''s two-valued truth for this member, as kenbun.compile computes it) and value (what it compared). Errors: kenbun''s rule errors (22023, 42703, 42704, 42804, 2201B, …), 22023 invalid kind or no such lead/account, 22P02 member_id not of the key''s type, 55000 no table bound.';
