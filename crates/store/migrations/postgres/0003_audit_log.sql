-- The tamper-evident audit log (crates/audit). Every event gets a sequence number, 0, 1, 2, …
-- with no gaps across nodes: taken from `audit_head` in the transaction that inserts the
-- event, whose row lock makes concurrent writers commit in sequence order. `hash` is the
-- event's leaf hash (RFC 9162) as written, which lets `audit verify` name a changed event;
-- `detail` holds the event's other fields as a JSON object.
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
ALTER TABLE audit_events ADD COLUMN detail TEXT;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- One row: the next sequence number; the log's name (the origin line of its checkpoints),
-- fixed by the first node that starts so that it outlives a change of issuer; and, once
-- `tokengate audit prune` ran, how many events it removed and the frontier of their tree
-- (a JSON array of the hashes that stand for them).
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next     BIGINT NOT NULL,
    origin   TEXT,
    pruned   BIGINT NOT NULL DEFAULT 0,
    frontier TEXT
);
INSERT INTO audit_head (id, next) VALUES (1, 0);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree size. A checkpoint
-- of a pruned part keeps the consistency proof (JSON array) from its tree to the later
-- checkpoint of size `anchor`, so that it can still be checked.
CREATE TABLE audit_checkpoints (
    size        BIGINT PRIMARY KEY,
    root        TEXT NOT NULL,
    note        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    anchor      BIGINT,
    consistency TEXT
);

-- Audit keys sign the log's checkpoints (use 'audit').
ALTER TABLE keys DROP CONSTRAINT keys_use_check;
ALTER TABLE keys ADD CONSTRAINT keys_use_check CHECK (use IN ('sig', 'enc', 'audit'));
