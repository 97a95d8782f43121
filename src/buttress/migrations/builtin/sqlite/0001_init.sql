-- buttress's own bookkeeping: facts about this database that buttress keeps.
CREATE TABLE IF NOT EXISTS buttress_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO buttress_meta (key, value) VALUES ('created_by', 'buttress')
    ON CONFLICT (key) DO NOTHING;

-- down
DROP TABLE buttress_meta;
