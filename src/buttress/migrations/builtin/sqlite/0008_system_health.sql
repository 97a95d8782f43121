-- depends: 0002_config, 0005_health_history
-- Error counts per minute, written by buttress.monitoring.errors.ErrorStats.
-- (PostgreSQL's 0008 also installs check_system_health(); SQLite has no
-- stored functions.) bucket is the minute's start as fixed-width UTC text.
CREATE TABLE IF NOT EXISTS buttress_error_events (
    bucket TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    component TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (bucket, category, severity, component)
);

-- down
DROP TABLE buttress_error_events;
