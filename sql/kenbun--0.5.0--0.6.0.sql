-- kenbun 0.5.0 -> 0.6.0. Each part below is headed by what it changes.
\echo Use "ALTER EXTENSION kenbun UPDATE TO '0.6.0'" to load this file. \quit

-- (more parts above this line)
