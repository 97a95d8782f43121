-- FeatureFlags' tables: each flag as JSON, and every change in the history.
-- Writes bump the 'flags' change counter, which lives in 0002_config's table.
-- depends: 0002_config
CREATE TABLE IF NOT EXISTS buttress_flags (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT
);
CREATE TABLE IF NOT EXISTS buttress_flag_history (
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT,
    reason TEXT,
    old_data TEXT,
    new_data TEXT,
    PRIMARY KEY (key, version)
);
INSERT INTO buttress_change_counters (name, value) VALUES ('flags', 0)
    ON CONFLICT (name) DO NOTHING;

-- down
DELETE FROM buttress_change_counters WHERE name = 'flags';
DROP TABLE buttress_flag_history;
DROP TABLE buttress_flags;
