-- kenbun 0.2.0 -> 0.3.0. Each part below is headed by what it fixes.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.3.0'" to load this file. \quit

-- == Sibling maintenance: segments record what they read of the other leads of a lead's account
-- ("reads" entries [kind, column, "sibling"]); recompiling every segment fills them in, and the
-- statement trigger on kenbun.segments regenerates the maintenance triggers from them.
UPDATE kenbun.segments SET rule = rule;
