-- kenbun change log as an interface (issue 12): polling in a safe order (changes_since), named
-- consumers that each get every change once (register_consumer, consume_changes, drop_consumer),
-- retention (prune_changes) and a publication for logical decoding (create_publication).
--
-- The horizon. A change's id is drawn from the identity sequence when the change is inserted, but
-- transactions commit in another order: A draws id 100 and is still open when B draws 101 and
-- commits. A poller that returns 101 and then asks for "after 101" never sees 100. So changes_since
-- and consume_changes return a change only up to the horizon: the largest id H such that every
-- change numbered H or less is either committed (and visible) or never will be. kenbun._change_horizon
-- finds it without blocking anyone: (1) it reads the sequence's last value S; (2) it lists the other
-- transactions that hold a lock on the sequence: nextval locks it (ROW EXCLUSIVE) until the end of
-- the transaction, so every transaction that drew an id <= S and is still open is among them;
-- (3) it waits until those have ended (at most kenbun.changes_max_wait, default 1 s). Then H = S,
-- and the next statement's snapshot (READ COMMITTED) sees every one of them that committed. The
-- caller's own uncommitted changes (visible to itself) end the horizon before them. Transactions
-- that opened later draw ids > S and are not waited for. Writers never wait for a poller.
--
-- Why not "txid < pg_snapshot_xmin(pg_current_snapshot())" (rows of transactions older than every
-- open one): a transaction's xid is assigned at its first write, not when it logs a change. B can
-- get its xid first (an unrelated write), A gets a larger one and logs change 100, B logs 101 and
-- commits: B is older than every open transaction, so 101 passes the filter while 100 is still in
-- flight, and the poller skips 100 (tests/changes.rs reproduces it). The lock on the sequence
-- follows the ids themselves.
--
-- Assumes what kenbun's own writers do: ids come from nextval on the identity sequence with CACHE 1
-- (a session caching ids could hand out an old one later; _change_horizon refuses such a sequence).

-- Named consumers of the change log: each has a position (the last id it has consumed).
CREATE TABLE kenbun.change_consumers (
    name       text PRIMARY KEY CHECK (name <> ''),
    position   bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('kenbun.change_consumers', '');

-- The horizon (see the top of this file): the largest id up to which every change is final, for a
-- reader that has seen everything up to after_id and reads at most lim rows next. NULL when changes
-- are held back by transactions still open after kenbun.changes_max_wait (with a NOTICE naming
-- their processes). READ COMMITTED only; not on a standby (the locks that say which transactions
-- drew ids are the primary's).
CREATE FUNCTION kenbun._change_horizon(after_id bigint, lim int)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seq CONSTANT regclass := 'kenbun.membership_changes_id_seq';
    setting text := pg_catalog.current_setting('kenbun.changes_max_wait', true);
    max_wait interval := interval '1 second';
    deadline timestamptz;
    pause float8 := 0.001;
    top bigint;
    cache bigint;
    holders text[];
    own_drew boolean;
    own_min bigint;
    pids text;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kenbun reads the change log in commit order only in READ COMMITTED transactions (this one is %)',
                        pg_catalog.upper(pg_catalog.current_setting('transaction_isolation'))
            USING ERRCODE = '0A000',
                  HINT = 'run it in its own transaction, or BEGIN ISOLATION LEVEL READ COMMITTED';
    END IF;
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'kenbun reads the change log in commit order only on the primary'
            USING ERRCODE = '0A000',
                  HINT = 'on a standby, follow the change log with logical decoding from the primary (kenbun.create_publication)';
    END IF;
    IF setting IS NOT NULL AND setting <> '' THEN
        BEGIN
            max_wait := setting::interval;
        EXCEPTION WHEN data_exception THEN
            max_wait := NULL;
        END;
        IF max_wait IS NULL OR max_wait < interval '0' THEN
            RAISE EXCEPTION 'invalid value for kenbun.changes_max_wait: "%"', setting
                USING ERRCODE = '22023',
                      HINT = 'how long a read of the change log waits for transactions that logged changes and are still open, e.g. SET kenbun.changes_max_wait = ''1s'' (0: do not wait)';
        END IF;
    END IF;
    SELECT s.seqcache INTO cache FROM pg_catalog.pg_sequence s WHERE s.seqrelid = seq;
    IF cache <> 1 THEN
        RAISE EXCEPTION 'kenbun.membership_changes_id_seq caches % ids per session', cache
            USING ERRCODE = '55000',
                  HINT = 'the change log is read in commit order only with CACHE 1: ALTER SEQUENCE kenbun.membership_changes_id_seq CACHE 1';
    END IF;
    -- (1) the last id drawn
    SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END INTO top
      FROM kenbun.membership_changes_id_seq q;
    IF top <= after_id THEN
        RETURN after_id;
    END IF;
    -- (2) after it (a statement of its own), the open transactions that may have drawn one of them;
    -- and whether this one did
    SELECT COALESCE(pg_catalog.array_agg(l.virtualtransaction) FILTER (WHERE l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()), '{}'),
           COALESCE(pg_catalog.bool_or(l.pid = pg_catalog.pg_backend_pid()), false)
      INTO holders, own_drew
      FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted AND l.mode <> 'AccessShareLock'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    -- (3) wait for them to end
    deadline := pg_catalog.clock_timestamp() + max_wait;
    WHILE holders <> '{}' LOOP
        IF pg_catalog.clock_timestamp() >= deadline THEN
            SELECT pg_catalog.string_agg(DISTINCT COALESCE(l.pid::text, 'a prepared transaction'), ', ') INTO pids
              FROM pg_catalog.pg_locks l
             WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted AND l.virtualtransaction = ANY (holders);
            RAISE NOTICE 'changes after id % are held back: % transaction(s) that logged changes are still open', after_id, pg_catalog.cardinality(holders)
                USING DETAIL = pg_catalog.format('Waited %s for process(es) %s.', max_wait, COALESCE(pids, '(ended just now)')),
                      HINT = 'they are returned once those transactions end; kenbun.changes_max_wait sets how long a read waits';
            RETURN NULL;
        END IF;
        PERFORM pg_catalog.pg_sleep(pause);
        pause := LEAST(pause * 2, 0.05);
        holders := ARRAY(SELECT l.virtualtransaction FROM pg_catalog.pg_locks l
                          WHERE l.locktype = 'relation' AND l.relation = seq AND l.granted
                            AND l.virtualtransaction = ANY (holders)
                            AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()));
    END LOOP;
    -- this transaction's own changes are visible to it but not committed: stop before the first one
    -- (among the rows the caller reads next)
    IF own_drew THEN
        SELECT pg_catalog.min(x.id) INTO own_min
          FROM (SELECT m.id, m.txid FROM kenbun.membership_changes m
                 WHERE m.id > after_id AND m.id <= top ORDER BY m.id LIMIT lim) x
         WHERE x.txid = pg_catalog.pg_current_xact_id_if_assigned();
        IF own_min IS NOT NULL THEN
            top := own_min - 1;
        END IF;
    END IF;
    RETURN GREATEST(top, after_id);
END $$;

CREATE FUNCTION kenbun._check_limit(lim int)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF lim IS NULL OR lim < 1 OR lim > 100000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 100000, not %', COALESCE(lim::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'read the change log in pages of at most 100000 changes';
    END IF;
END $$;

CREATE FUNCTION kenbun.changes_since(after_id bigint, lim int DEFAULT 1000)
RETURNS SETOF kenbun.membership_changes LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h bigint;
BEGIN
    IF after_id IS NULL THEN
        RAISE EXCEPTION 'after_id must not be NULL'
            USING ERRCODE = '22023', HINT = 'pass 0 to read from the oldest change kept, then the id of the last change read';
    END IF;
    PERFORM kenbun._check_limit(lim);
    h := kenbun._change_horizon(after_id, lim);
    IF h IS NULL OR h <= after_id THEN
        RETURN;
    END IF;
    -- a statement of its own: its snapshot sees every change up to h that committed
    RETURN QUERY SELECT m.* FROM kenbun.membership_changes m
                  WHERE m.id > after_id AND m.id <= h ORDER BY m.id LIMIT lim;
END $$;

CREATE FUNCTION kenbun.register_consumer(name text, from_now boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pos bigint;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'e.g. SELECT kenbun.register_consumer(''crm_sync'')';
    END IF;
    IF pg_catalog.length(name) > 255 THEN
        RAISE EXCEPTION 'consumer name is longer than 255 characters' USING ERRCODE = '22023', HINT = 'choose a shorter name';
    END IF;
    IF from_now IS NULL THEN
        RAISE EXCEPTION 'from_now must be true or false' USING ERRCODE = '22023',
            HINT = 'true: the consumer gets the changes committed from now on; false: every change still in the log';
    END IF;
    SELECT c.position INTO pos FROM kenbun.change_consumers c WHERE c.name = register_consumer.name;
    IF FOUND THEN
        RAISE NOTICE 'consumer "%" already exists; its position (%) is unchanged', name, pos;
        RETURN pos;
    END IF;
    IF from_now THEN
        -- after every change committed before this call returns (waiting for the open ones)
        pos := kenbun._change_horizon(0, 2147483647);
        IF pos IS NULL THEN
            RAISE EXCEPTION 'cannot register consumer "%" from now: transactions that logged changes are still open', name
                USING ERRCODE = '55P03', HINT = 'try again once they have ended, or register with from_now => false';
        END IF;
    ELSE
        pos := 0;
    END IF;
    INSERT INTO kenbun.change_consumers AS c (name, position) VALUES (register_consumer.name, pos)
    ON CONFLICT ON CONSTRAINT change_consumers_pkey DO UPDATE SET position = c.position
    RETURNING c.position INTO pos;
    RETURN pos;
END $$;

CREATE FUNCTION kenbun.drop_consumer(name text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'the consumers are listed in kenbun.change_consumers';
    END IF;
    DELETE FROM kenbun.change_consumers c WHERE c.name = drop_consumer.name;
    RETURN FOUND;
END $$;

CREATE FUNCTION kenbun.consume_changes(consumer text, lim int DEFAULT 1000)
RETURNS SETOF kenbun.membership_changes LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pos bigint;
    h bigint;
    r kenbun.membership_changes;
    n int := 0;
    last_id bigint;
BEGIN
    IF consumer IS NULL OR consumer = '' THEN
        RAISE EXCEPTION 'a consumer needs a name' USING ERRCODE = '22023', HINT = 'the consumers are listed in kenbun.change_consumers';
    END IF;
    PERFORM kenbun._check_limit(lim);
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM kenbun._change_horizon(0, 1);  -- raises the isolation error
    END IF;
    -- a second worker of the same consumer waits here until the first commits or rolls back, then
    -- reads the position it left
    SELECT c.position INTO pos FROM kenbun.change_consumers c WHERE c.name = consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer "%" does not exist', consumer
            USING ERRCODE = '42704',
                  HINT = pg_catalog.format('register it first: SELECT kenbun.register_consumer(%L)', consumer);
    END IF;
    h := kenbun._change_horizon(pos, lim);
    IF h IS NULL OR h <= pos THEN
        RETURN;
    END IF;
    FOR r IN SELECT m.* FROM kenbun.membership_changes m WHERE m.id > pos AND m.id <= h ORDER BY m.id LIMIT lim LOOP
        RETURN NEXT r;
        n := n + 1;
        last_id := r.id;
    END LOOP;
    -- a full page ends at its last change; otherwise everything up to the horizon is consumed
    UPDATE kenbun.change_consumers c
       SET position = CASE WHEN n = lim THEN last_id ELSE h END, updated_at = pg_catalog.now()
     WHERE c.name = consumer;
END $$;

-- Retention, meant for pg_cron (in the database that uses kenbun, or with cron.schedule_in_database):
--   SELECT cron.schedule('kenbun-prune', '17 3 * * *', $$SELECT kenbun.prune_changes('30 days')$$);
CREATE FUNCTION kenbun.prune_changes(older_than interval)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz;
    keep bigint;
    after_id bigint := -9223372036854775808;
    total bigint := 0;
    n bigint;
    batch_n bigint;
    batch_max bigint;
    young bigint;
    held bigint;
    last_held bigint;
    lagging text;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be an interval of zero or more, not %', COALESCE(older_than::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'how old a change must be to be deleted, e.g. SELECT kenbun.prune_changes(''30 days'')';
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock(748300000, 12) THEN
        RAISE NOTICE 'kenbun.prune_changes is already running in another session; nothing pruned';
        RETURN 0;
    END IF;
    cutoff := pg_catalog.now() - older_than;
    -- nothing a consumer has not consumed (positions move only up, and only to final ids)
    SELECT pg_catalog.min(c.position) INTO keep FROM kenbun.change_consumers c;
    -- the oldest changes, in id order, up to the first one that is not old enough: batches of 10,000
    -- ids per statement; only DELETE, which writers (INSERT) never wait for
    LOOP
        WITH batch AS MATERIALIZED (
            SELECT m.id, m.changed_at FROM kenbun.membership_changes m
             WHERE m.id > after_id AND (keep IS NULL OR m.id <= keep)
             ORDER BY m.id LIMIT 10000),
        first_young AS (SELECT pg_catalog.min(b.id) AS id FROM batch b WHERE b.changed_at >= cutoff),
        del AS (DELETE FROM kenbun.membership_changes m USING batch b
                 WHERE m.id = b.id AND b.id < COALESCE((SELECT y.id FROM first_young y), 9223372036854775807)
                RETURNING m.id)
        SELECT (SELECT pg_catalog.count(*) FROM del), (SELECT pg_catalog.count(*) FROM batch),
               (SELECT pg_catalog.max(b.id) FROM batch b), (SELECT y.id FROM first_young y)
          INTO n, batch_n, batch_max, young;
        total := total + n;
        EXIT WHEN young IS NOT NULL OR batch_n < 10000;
        after_id := batch_max;
    END LOOP;
    IF keep IS NOT NULL AND young IS NULL THEN
        -- stopped at a consumer's position: say what it kept
        SELECT pg_catalog.count(*), pg_catalog.max(x.id) INTO held, last_held
          FROM (SELECT m.id FROM kenbun.membership_changes m
                 WHERE m.id > keep
                   AND m.id < COALESCE((SELECT pg_catalog.min(y.id) FROM kenbun.membership_changes y
                                         WHERE y.id > keep AND y.changed_at >= cutoff), 9223372036854775807)) x;
        IF held > 0 THEN
            SELECT pg_catalog.string_agg(pg_catalog.format('"%s" (at %s)', c.name, c.position), ', ' ORDER BY c.position, c.name)
              INTO lagging FROM kenbun.change_consumers c WHERE c.position < last_held;
            RAISE NOTICE 'kept % change(s) older than % that consumer(s) % have not consumed yet', held, older_than, lagging
                USING HINT = 'they are pruned once consumed (kenbun.consume_changes); drop a consumer that is no longer used with kenbun.drop_consumer(name)';
        END IF;
    END IF;
    RETURN total;
END $$;

-- A publication of the change log for logical replication (pgoutput) and decoding. Created by a
-- function, not by the extension script: a publication is not an extension member, so pg_dump
-- dumps it on its own. Inserts only: prune_changes' deletes are retention, not membership changes.
CREATE FUNCTION kenbun.create_publication(name text DEFAULT 'kenbun_changes')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pub pg_catalog.pg_publication;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'a publication needs a name' USING ERRCODE = '22023', HINT = 'e.g. SELECT kenbun.create_publication(''kenbun_changes'')';
    END IF;
    IF pg_catalog.octet_length(name) > 63 THEN
        -- PostgreSQL would truncate it, and the next call would not find the publication
        RAISE EXCEPTION 'publication name is longer than 63 bytes' USING ERRCODE = '22023', HINT = 'choose a shorter name';
    END IF;
    SELECT * INTO pub FROM pg_catalog.pg_publication p WHERE p.pubname = create_publication.name;
    IF NOT FOUND THEN
        EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE kenbun.membership_changes WITH (publish = %L)', name, 'insert');
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_publication_rel r
                WHERE r.prpubid = pub.oid AND r.prrelid = 'kenbun.membership_changes'::regclass) THEN
        RAISE NOTICE 'publication "%" already publishes kenbun.membership_changes', name;
        RETURN;
    END IF;
    -- an empty publication with kenbun's options, of kenbun's owner: what DROP EXTENSION, or a dump
    -- and restore (pg_dump leaves out which publications an extension's table is in), leave of it
    IF pub.puballtables OR NOT pub.pubinsert OR pub.pubupdate OR pub.pubdelete OR pub.pubtruncate
       OR pub.pubowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = pub.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s WHERE s.pnpubid = pub.oid) THEN
        RAISE EXCEPTION 'publication "%" already exists', name
            USING ERRCODE = '42710',
                  DETAIL = 'It is not an empty publication of inserts owned by kenbun''s owner, so kenbun does not add its change log to it.',
                  HINT = 'choose another name, e.g. SELECT kenbun.create_publication(''kenbun_changes'')';
    END IF;
    EXECUTE pg_catalog.format('ALTER PUBLICATION %I ADD TABLE kenbun.membership_changes', name);
END $$;
