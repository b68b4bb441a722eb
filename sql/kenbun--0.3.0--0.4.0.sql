-- kenbun 0.3.0 -> 0.4.0. Each part below is headed by what it changes; the maintenance triggers are
-- regenerated last.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.4.0'" to load this file. \quit

-- == Row-level UPDATE maintenance: segments whose rules read only the member's own row are evaluated
-- in the row trigger (compiled once per backend), and the statement-level UPDATE functions leave them out.
CREATE FUNCTION kenbun."_maintain_row"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_maintain_row_wrapper';
CREATE FUNCTION kenbun."_maintain_row_flush"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_maintain_row_flush_wrapper';

-- == compile, segment_preview, segment_count and the other callers cache the catalog document per
-- backend; changes to kenbun's catalog tables invalidate it.
CREATE FUNCTION kenbun."_catalog_touch"() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_catalog_touch_wrapper';
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.bindings
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.fields
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.levels
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();
CREATE TRIGGER catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kenbun.segments
    FOR EACH STATEMENT EXECUTE FUNCTION kenbun._catalog_touch();

-- (more parts above this line)

-- == Last: regenerate the maintenance functions and triggers of the bound tables.
SELECT kenbun._rebuild_maintenance();
