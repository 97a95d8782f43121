-- depends: 0001_init
-- category: core
-- Rows an integrity cleanup deleted or updated, written before it changes them,
-- so `IntegrityChecker.undo(run_id)` can put back exactly those rows. row_key
-- and row_data are JSON objects (column -> value; bytes and non-finite floats
-- tagged); changed_columns is the JSON list of columns an update changed.
CREATE TABLE IF NOT EXISTS buttress_integrity_backup (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    schema_name TEXT,
    table_name TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('delete', 'update')),
    row_key TEXT NOT NULL,
    row_data TEXT NOT NULL,
    changed_columns TEXT,
    reason TEXT,
    created_at TEXT NOT NULL,
    undone_at TEXT,
    UNIQUE (run_id, seq)
);

-- down
DROP TABLE buttress_integrity_backup;
