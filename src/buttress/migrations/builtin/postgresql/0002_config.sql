-- ConfigStore's tables: one row per (key, environment), every change in the
-- history, and the change counters that SQL stores bump on each write (their
-- row lock serialises writers; caches poll them). IF NOT EXISTS adopts tables
-- that buttress versions before packaged migrations created on first use.
CREATE TABLE IF NOT EXISTS buttress_config (
    key TEXT NOT NULL,
    environment TEXT NOT NULL,
    value TEXT NOT NULL,
    sensitive BOOLEAN NOT NULL,
    description TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT,
    version INTEGER NOT NULL,
    PRIMARY KEY (key, environment)
);
CREATE TABLE IF NOT EXISTS buttress_config_history (
    key TEXT NOT NULL,
    environment TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT,
    reason TEXT,
    old_value TEXT,
    new_value TEXT,
    sensitive BOOLEAN NOT NULL,
    PRIMARY KEY (key, environment, version)
);
CREATE TABLE IF NOT EXISTS buttress_change_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO buttress_change_counters (name, value) VALUES ('config', 0)
    ON CONFLICT (name) DO NOTHING;

-- down
DROP TABLE buttress_change_counters;
DROP TABLE buttress_config_history;
DROP TABLE buttress_config;
