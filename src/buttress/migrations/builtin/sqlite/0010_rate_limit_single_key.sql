-- depends: 0006_rate_limits
-- Nothing to do on SQLite. On PostgreSQL this version adds the single-key fast
-- path of RateLimiter, the function buttress_rate_limit_one(). On SQLite the
-- limiter reads, decides in Python and writes in one BEGIN IMMEDIATE
-- transaction on its own connection, with no function, so the table of 0006
-- serves as it is. The file exists so that both dialects ship the same
-- versions of buttress's own migrations (every migration OWN_TABLES names is
-- in both, tests/test_own_migrations.py); its statements do nothing.
SELECT 1;

-- down
SELECT 1;
