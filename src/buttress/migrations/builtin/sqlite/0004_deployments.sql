-- DeploymentLog's table. Recording a deployment also sets app_version in the
-- config tables and bumps the 'config' change counter, hence the dependency.
-- depends: 0002_config
CREATE TABLE IF NOT EXISTS buttress_deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT NOT NULL,
    environment TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT,
    changelog TEXT,
    migration_notes TEXT,
    status TEXT NOT NULL CHECK (status IN ('success', 'failed', 'rolled_back')),
    rollback_to TEXT,
    rollback_at TEXT,
    rollback_reason TEXT,
    commit_sha TEXT,
    committed_at TEXT,
    previous_sha TEXT,
    started_at TEXT,
    finished_at TEXT NOT NULL,
    is_rollback INTEGER NOT NULL,
    rollback_of BIGINT REFERENCES buttress_deployments (id),
    failed_at TEXT,
    restored_at TEXT,
    restored_by BIGINT REFERENCES buttress_deployments (id)
);
CREATE INDEX IF NOT EXISTS buttress_deployments_environment
    ON buttress_deployments (environment, id);
CREATE INDEX IF NOT EXISTS buttress_deployments_live
    ON buttress_deployments (environment, finished_at);

-- down
DROP TABLE buttress_deployments;
