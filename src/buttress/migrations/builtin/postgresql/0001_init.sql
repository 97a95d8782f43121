-- buttress's own bookkeeping: facts about this database that buttress keeps.
CREATE TABLE IF NOT EXISTS buttress_meta (
    key text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO buttress_meta (key, value) VALUES ('created_by', 'buttress')
    ON CONFLICT (key) DO NOTHING;

-- down
DROP TABLE buttress_meta;
