-- The tamper-evident audit log (crates/audit). Every event gets a sequence number, 0, 1, 2, …
-- with no gaps across nodes: taken from `audit_head` in the transaction that inserts the
-- event, whose row lock makes concurrent writers commit in sequence order. `hash` is the
-- event's leaf hash (RFC 9162) as written, which lets `audit verify` name a changed event;
-- `detail` holds the event's other fields as a JSON object.
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
ALTER TABLE audit_events ADD COLUMN detail TEXT;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- One row: the next sequence number; the log's name (the origin line of its checkpoints),
-- fixed by the first node that starts so that it outlives a change of issuer; and, once
-- `tokengate audit prune` ran, how many events it removed and the frontier of their tree
-- (a JSON array of the hashes that stand for them).
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next     INTEGER NOT NULL,
    origin   TEXT,
    pruned   INTEGER NOT NULL DEFAULT 0,
    frontier TEXT
) STRICT;
INSERT INTO audit_head (id, next) VALUES (1, 0);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree size. A checkpoint
-- of a pruned part keeps the consistency proof (JSON array) from its tree to the later
-- checkpoint of size `anchor`, so that it can still be checked.
CREATE TABLE audit_checkpoints (
    size        INTEGER PRIMARY KEY,
    root        TEXT NOT NULL,
    note        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    anchor      INTEGER,
    consistency TEXT
) STRICT;

-- Audit keys sign the log's checkpoints (use 'audit'). SQLite cannot change a CHECK
-- constraint, so the table is rebuilt with the same columns.
CREATE TABLE keys_with_audit (
    kid                TEXT PRIMARY KEY NOT NULL,
    use                TEXT NOT NULL CHECK (use IN ('sig', 'enc', 'audit')),
    alg                TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'removed')),
    public_jwk         TEXT NOT NULL,
    private_ciphertext BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    activate_at        INTEGER NOT NULL,
    state_changed_at   INTEGER NOT NULL,
    retired_at         INTEGER,
    remove_after       INTEGER
) STRICT;
INSERT INTO keys_with_audit SELECT kid, use, alg, state, public_jwk, private_ciphertext,
    created_at, activate_at, state_changed_at, retired_at, remove_after FROM keys;
DROP TABLE keys;
ALTER TABLE keys_with_audit RENAME TO keys;
