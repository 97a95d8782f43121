-- depends: 0001_init
-- Rate-limit state, one row per limiter key: the algorithm's state as text
-- (see buttress/ratelimit/_algorithms.py) and when it expires, in integer
-- nanoseconds of the limiter's wall clock. IF NOT EXISTS adopts the table
-- that buttress versions before packaged migrations created on first use.
CREATE TABLE IF NOT EXISTS buttress_rate_limits (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- down
DROP TABLE buttress_rate_limits;
