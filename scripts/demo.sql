-- kenbun demo: an app's own tables, generated data, bindings, and a few realistic segments.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS kenbun;
DROP TABLE IF EXISTS app.events, app.leads, app.accounts;
CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE app.accounts (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    industry   text,
    employees  int,
    plan       text
);
CREATE TABLE app.leads (
    id           bigint PRIMARY KEY,
    account_id   bigint REFERENCES app.accounts,
    email        text NOT NULL,
    country      text,
    title        text,
    score        int,
    last_seen_at timestamptz,
    attributes   jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE app.events (
    id          bigserial PRIMARY KEY,
    lead_id     bigint NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'
);

-- setseed makes the data the same on every run. Times are whole hours plus 30 minutes before now():
-- a window of whole hours or days ("within 30 days") gains or loses a row only 30 minutes after the
-- demo was made, so what the README shows (make test runs it right after creating the data) is exact.
SELECT setseed(0.42);
INSERT INTO app.accounts
SELECT i, 'Account ' || i,
       (ARRAY['SaaS','Retail','Fintech','Healthcare','Education'])[1 + floor(random() * 5)::int],
       (ARRAY[8, 40, 150, 800, 5000])[1 + floor(random() * 5)::int],
       (ARRAY['free','starter','growth','enterprise'])[1 + floor(random() * 4)::int]
FROM generate_series(1, 250) i;

INSERT INTO app.leads
SELECT i,
       CASE WHEN random() < 0.9 THEN 1 + floor(random() * 250)::int END,
       'lead' || i || '@' || (ARRAY['gmail.com','acme.io','corp.example','uni.edu'])[1 + floor(random() * 4)::int],
       (ARRAY['US','US','US','CA','GB','DE','FR','BR',NULL])[1 + floor(random() * 9)::int],
       (ARRAY['Engineer','VP Marketing','CTO','Analyst','Head of Growth',NULL])[1 + floor(random() * 6)::int],
       floor(random() * 100)::int,
       now() - (floor(random() * 2880) + 0.5) * interval '1 hour',   -- half past an hour: see below
       jsonb_build_object(
         'plan', (ARRAY['free','trial','pro','team'])[1 + floor(random() * 4)::int],
         'source', (ARRAY['ads','organic','referral','event'])[1 + floor(random() * 4)::int],
         'newsletter', random() < 0.4)
FROM generate_series(1, 5000) i;

INSERT INTO app.events (lead_id, type, occurred_at, metadata)
SELECT 1 + floor(random() * 5000)::int,
       t.type,
       now() - (floor(random() * 2160) + 0.5) * interval '1 hour',
       CASE t.type WHEN 'page_view' THEN jsonb_build_object('url', (ARRAY['/pricing','/docs','/blog','/','/careers'])[1 + floor(random() * 5)::int])
                   WHEN 'email_open' THEN jsonb_build_object('campaign', (ARRAY['spring','launch','webinar'])[1 + floor(random() * 3)::int])
                   ELSE '{}'::jsonb END
FROM generate_series(1, 60000) g
CROSS JOIN LATERAL (SELECT (ARRAY['page_view','page_view','page_view','email_open','email_click','demo_request','signup'])[1 + floor(random() * 7)::int + (g * 0)] AS type) t;
CREATE INDEX ON app.events (lead_id, type, occurred_at);
-- (0.6.0) tags, trial end dates and purchases with amounts, derived from the ids (no random(): the
-- data above stays what it was)
UPDATE app.leads SET attributes = attributes || jsonb_build_object(
    'tags', (ARRAY['["vip"]', '["beta","vip"]', '[]', '["beta"]', '["partner"]'])[1 + id % 5]::jsonb,
    'trial_ends', (now() + (id % 40 - 10) * interval '1 day')::text)
 WHERE attributes ->> 'plan' = 'trial' OR id % 3 = 0;
INSERT INTO app.events (lead_id, type, occurred_at, metadata)
SELECT i, 'purchase', now() - (i * 7 % 120) * interval '1 day', jsonb_build_object('amount', 20 + i * 37 % 480)
FROM generate_series(1, 5000, 3) i;
ANALYZE app.accounts; ANALYZE app.leads; ANALYZE app.events;

\echo
\echo '== bind the app''s tables, define engagement levels, name a JSON field'
SELECT kenbun.bind_accounts('app.accounts');
SELECT kenbun.bind_leads('app.leads', account_key => 'account_id');
SELECT kenbun.bind_events('app.events');
SELECT kenbun.define_levels('engagement', 'score',
  '[{"name":"Cold","min":0},{"name":"Warm","min":25},{"name":"Hot","min":50},{"name":"On Fire","min":75}]');
SELECT kenbun.map_field('lead', 'plan', 'attributes.plan', 'text');
SELECT (SELECT count(*) FROM app.leads) AS leads, (SELECT count(*) FROM app.accounts) AS accounts,
       (SELECT count(*) FROM app.events) AS events;

\echo
\echo '== Segment 1: hot US leads on a paid plan'
\set r1 '{"all":[{"field":"country","op":"eq","value":"US"},{"level":"engagement","op":"gte","value":"Hot"},{"field":"plan","op":"in","value":["pro","team"]}]}'
SELECT kenbun.segment_count(:'r1') AS members;
SELECT member_id, member->>'email' AS email, member->>'score' AS score, member->'attributes'->>'plan' AS plan
  FROM kenbun.segment_preview(:'r1', lim => 5);

\echo
\echo '== Segment 2: visited /pricing at least 3 times in the last 30 days, no demo requested yet'
\set r2 '{"all":[{"event":{"type":"page_view","within":"30 days","where":{"field":"metadata.url","op":"eq","value":"/pricing"},"count":{"op":"gte","value":3}}},{"event":{"type":"demo_request","count":{"op":"eq","value":0}}}]}'
SELECT kenbun.segment_count(:'r2') AS members;
SELECT member_id, member->>'email' AS email FROM kenbun.segment_preview(:'r2', lim => 5);

\echo
\echo '== Segment 3: decision makers at large SaaS or Fintech accounts'
\set r3 '{"all":[{"any":[{"field":"title","op":"starts_with","value":"VP"},{"field":"title","op":"eq","value":"CTO"},{"field":"title","op":"starts_with","value":"Head"}]},{"account":{"all":[{"field":"industry","op":"in","value":["SaaS","Fintech"]},{"field":"employees","op":"gte","value":150}]}}]}'
SELECT kenbun.segment_count(:'r3') AS members;
SELECT member_id, member->>'title' AS title, member->>'account_id' AS account FROM kenbun.segment_preview(:'r3', lim => 5);

\echo
\echo '== Segment 4 (accounts, ABM): at least 3 engaged leads, not yet enterprise'
\set r4 '{"all":[{"leads":{"where":{"level":"engagement","op":"gte","value":"Warm"},"count":{"op":"gte","value":3}}},{"field":"plan","op":"neq","value":"enterprise"}]}'
SELECT kenbun.segment_count(:'r4', 'account') AS members;
SELECT member_id, member->>'name' AS name, member->>'industry' AS industry, member->>'plan' AS plan
  FROM kenbun.segment_preview(:'r4', 'account', 5);

\echo
\echo '== What segment 2 compiles to'
SELECT kenbun.compile(:'r2');

\echo
\echo '== Saved segments: membership kept true by the database, in the same transaction'
INSERT INTO kenbun.segments (name, kind, description, rule) VALUES
  ('Hot US paid', 'lead', 'Segment 1 as a saved segment', :'r1'),
  ('Pricing intent', 'lead', 'Segment 2 as a saved segment', :'r2'),
  ('Decision makers', 'lead', 'Segment 3 as a saved segment', :'r3'),
  ('ABM targets', 'account', 'Segment 4 as a saved segment', :'r4');
SELECT s.name, s.kind, s.time_dependent, s.refresh_every,
       (SELECT count(*) FROM kenbun.lead_members m WHERE m.segment_id = s.id)
     + (SELECT count(*) FROM kenbun.account_members m WHERE m.segment_id = s.id) AS members
  FROM kenbun.segments s ORDER BY s.id;

\echo
\echo '== Live: lead 2 becomes a hot US lead on the pro plan, then cools down (LISTEN shows the NOTIFY payloads)'
LISTEN kenbun_membership;
UPDATE app.leads SET country = 'US', score = 90, attributes = attributes || '{"plan":"pro"}' WHERE id = 2;
SELECT s.name, l.lead_id, l.entered_at IS NOT NULL AS member
  FROM kenbun.lead_members l JOIN kenbun.segments s ON s.id = l.segment_id WHERE l.lead_id = 2 ORDER BY 1;
UPDATE app.leads SET score = 10 WHERE id = 2;
SELECT c.id, s.name AS segment, c.member_id, c.change, c.reason
  FROM kenbun.membership_changes c JOIN kenbun.segments s ON s.id = c.segment_id
 WHERE c.member_id = '2' AND c.reason = 'data_change' ORDER BY c.id;
UNLISTEN kenbun_membership;
SELECT count(*) AS drifting_members FROM kenbun.segments s, kenbun.segment_drift(s.name);

\echo
\echo '== Troubleshoot: why is this segment empty? (the data says "US", not "USA")'
INSERT INTO kenbun.segments (name, kind, rule) VALUES
  ('Hot USA leads', 'lead', '{"all":[{"level":"engagement","op":"gte","value":"Hot"},{"field":"country","op":"eq","value":"USA"},{"field":"plan","op":"eq","value":"pro"}]}');
SELECT * FROM kenbun.segment_diagnose('Hot USA leads');
SELECT * FROM kenbun.segment_lint('{"all":[{"field":"score","op":"gt","value":50},{"field":"score","op":"lt","value":10}]}');

\echo
\echo '== Compare two segments'
SELECT * FROM kenbun.segment_compare('Hot US paid', 'Decision makers');
SELECT * FROM kenbun.segment_compare_members('Hot US paid', 'Decision makers') WHERE side = 'both' LIMIT 5;
