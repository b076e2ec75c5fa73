-- Field-mapping rule sets: immutable versions per (connection, direction), one active version
-- each, and an audit row for every change. The rule set itself is a JSON document validated by
-- the mapping engine (`canonical::mapping`) before it is saved.

CREATE TABLE mapping_versions (
    connection_id uuid        NOT NULL,
    direction     text        NOT NULL,
    version       integer     NOT NULL,
    rules         jsonb       NOT NULL,
    author        text        NOT NULL,
    comment       text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mapping_versions_pkey PRIMARY KEY (connection_id, direction, version),
    CONSTRAINT mapping_versions_connection_fkey FOREIGN KEY (connection_id)
        REFERENCES connections (id) ON DELETE CASCADE,
    CONSTRAINT mapping_versions_direction_check
        CHECK (direction IN ('erp_to_marketplace', 'marketplace_to_erp')),
    CONSTRAINT mapping_versions_version_check CHECK (version > 0),
    CONSTRAINT mapping_versions_rules_object CHECK (jsonb_typeof(rules) = 'object'),
    CONSTRAINT mapping_versions_author_check CHECK (author <> '')
);

-- A saved version never changes: fix a rule set by saving a new version.
CREATE FUNCTION mapping_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mapping version % of connection % (%) is immutable; save a new version',
        OLD.version, OLD.connection_id, OLD.direction
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER mapping_versions_no_update BEFORE UPDATE ON mapping_versions
    FOR EACH ROW EXECUTE FUNCTION mapping_versions_immutable();

CREATE TABLE mapping_active (
    connection_id uuid        NOT NULL,
    direction     text        NOT NULL,
    version       integer     NOT NULL,
    activated_by  text        NOT NULL,
    activated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mapping_active_pkey PRIMARY KEY (connection_id, direction),
    CONSTRAINT mapping_active_version_fkey FOREIGN KEY (connection_id, direction, version)
        REFERENCES mapping_versions (connection_id, direction, version) ON DELETE CASCADE
);

CREATE TABLE mapping_audit (
    id               bigserial   PRIMARY KEY,
    connection_id    uuid        NOT NULL,
    direction        text        NOT NULL,
    action           text        NOT NULL,
    version          integer     NOT NULL,
    previous_version integer     NULL,
    actor            text        NOT NULL,
    comment          text        NOT NULL DEFAULT '',
    at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mapping_audit_connection_fkey FOREIGN KEY (connection_id)
        REFERENCES connections (id) ON DELETE CASCADE,
    CONSTRAINT mapping_audit_action_check CHECK (action IN ('save', 'activate', 'rollback'))
);

CREATE INDEX mapping_audit_connection_idx ON mapping_audit (connection_id, direction, id);
