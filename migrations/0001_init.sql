-- MEGZO Integrator Vortex: initial schema. Postgres is the system of record: tenants and their
-- connections, the history of every job attempt, dead jobs, the order idempotency table (the
-- exactly-once authority for orders) and the sync cursors. Redis only holds work in flight and can
-- be rebuilt from this.
--
-- Constraint names are part of the contract: `workers::db` maps violations of the named
-- constraints to typed errors (duplicate slug, unknown tenant, ...).

-- Merchants: the unit of isolation, quota and data ownership.
CREATE TABLE tenants (
    id              uuid        PRIMARY KEY,
    slug            text        NOT NULL,
    name            text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    -- Overrides the fleet-wide per-tenant concurrency default when set.
    concurrency_cap integer     NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9-]{1,64}$'),
    CONSTRAINT tenants_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT tenants_concurrency_cap_positive CHECK (concurrency_cap IS NULL OR concurrency_cap > 0)
);

-- One ERP <-> marketplace pair of a tenant (plus its courier), with its settings.
CREATE TABLE connections (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    erp         text        NOT NULL,
    marketplace text        NOT NULL,
    courier     text        NULL,
    settings    jsonb       NOT NULL DEFAULT '{}',
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connections_tenant_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT connections_tenant_erp_marketplace_key UNIQUE (tenant_id, erp, marketplace),
    -- Lets child tables check that a connection belongs to the tenant they name.
    CONSTRAINT connections_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT connections_erp_check CHECK (erp IN ('smartbill', 'lexoffice', 'winmentor', 'charisma', 'noop')),
    CONSTRAINT connections_marketplace_check CHECK (marketplace IN ('cdon', 'celro', 'noop')),
    CONSTRAINT connections_courier_check CHECK (courier IS NULL OR courier IN ('dhl', 'noop')),
    CONSTRAINT connections_settings_object CHECK (jsonb_typeof(settings) = 'object')
);

-- The heartbeat reads every enabled connection of every active tenant on each tick.
CREATE INDEX connections_enabled_idx ON connections (tenant_id, id) WHERE enabled;

-- One row per attempt of a job (and per lifecycle event such as snooze/release). Insert-fast:
-- no foreign keys; runs of a deleted tenant are purged separately.
CREATE TABLE job_runs (
    id            bigserial   PRIMARY KEY,
    job_id        uuid        NOT NULL,
    attempt       integer     NOT NULL,
    kind          text        NOT NULL,
    tenant_id     uuid        NOT NULL,
    connection_id uuid        NOT NULL,
    trigger       text        NOT NULL,
    payload       jsonb       NOT NULL,
    outcome       text        NOT NULL,
    -- An `AttemptError` when the attempt failed.
    error         jsonb       NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    duration_ms   bigint      NOT NULL,
    worker        text        NOT NULL,
    -- Re-recording the same event (a worker retrying its history flush) is a no-op.
    CONSTRAINT job_runs_event_key UNIQUE (job_id, attempt, outcome),
    CONSTRAINT job_runs_kind_check CHECK (kind IN ('catalog_push', 'stock_push', 'order_pull',
                                                   'invoice_attach', 'awb_push', 'returns_reconcile')),
    CONSTRAINT job_runs_outcome_check CHECK (outcome IN ('succeeded', 'retried', 'snoozed', 'dead',
                                                         'lost', 'released'))
);

CREATE INDEX job_runs_tenant_started_idx ON job_runs (tenant_id, started_at DESC);
CREATE INDEX job_runs_kind_started_idx ON job_runs (kind, started_at DESC);
CREATE INDEX job_runs_job_idx ON job_runs (job_id);
-- Unfiltered "latest runs" listings.
CREATE INDEX job_runs_started_idx ON job_runs (started_at DESC);

-- Jobs that exhausted their attempts, with everything needed to understand and replay them.
CREATE TABLE dead_jobs (
    job_id        uuid        PRIMARY KEY,
    kind          text        NOT NULL,
    tenant_id     uuid        NOT NULL,
    connection_id uuid        NOT NULL,
    payload       jsonb       NOT NULL,
    attempts      integer     NOT NULL,
    max_attempts  integer     NOT NULL,
    -- JSON array of `AttemptError`, oldest first.
    errors        jsonb       NOT NULL DEFAULT '[]',
    enqueued_at   timestamptz NOT NULL,
    died_at       timestamptz NOT NULL,
    replayed_at   timestamptz NULL,
    replayed_as   uuid        NULL,
    CONSTRAINT dead_jobs_kind_check CHECK (kind IN ('catalog_push', 'stock_push', 'order_pull',
                                                    'invoice_attach', 'awb_push', 'returns_reconcile')),
    CONSTRAINT dead_jobs_errors_array CHECK (jsonb_typeof(errors) = 'array'),
    -- Replayed means both: when, and as which new job.
    CONSTRAINT dead_jobs_replay_consistent CHECK ((replayed_at IS NULL) = (replayed_as IS NULL))
);

CREATE INDEX dead_jobs_died_idx ON dead_jobs (died_at DESC);
CREATE INDEX dead_jobs_tenant_died_idx ON dead_jobs (tenant_id, died_at DESC);

-- The order idempotency table: one row per marketplace order, the exactly-once authority. The
-- Redis order lock only avoids duplicate work; this row decides. Every write is fenced.
CREATE TABLE orders (
    id               bigserial   PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    channel          text        NOT NULL,
    channel_order_id text        NOT NULL,
    state            text        NOT NULL DEFAULT 'claimed',
    -- The fencing token of the last lock holder that wrote this row; writes carrying a token that
    -- is not strictly greater are refused.
    fence            bigint      NOT NULL DEFAULT 0,
    erp_document_id  text        NULL,
    review_reason    text        NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_tenant_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT orders_tenant_channel_order_key UNIQUE (tenant_id, channel, channel_order_id),
    CONSTRAINT orders_state_check CHECK (state IN ('claimed', 'erp_pending', 'created', 'needs_review',
                                                   'cancelled')),
    -- "created" means a document exists in the ERP and we know which one.
    CONSTRAINT orders_created_has_document CHECK (state <> 'created' OR erp_document_id IS NOT NULL)
);

-- Where each flow of each connection got to (marketplace order cursors, ERP change tokens, ...).
CREATE TABLE sync_cursors (
    tenant_id     uuid        NOT NULL,
    connection_id uuid        NOT NULL,
    flow          text        NOT NULL,
    cursor        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, flow),
    -- The connection must exist and belong to the tenant named here.
    CONSTRAINT sync_cursors_connection_fkey FOREIGN KEY (connection_id, tenant_id)
        REFERENCES connections (id, tenant_id) ON DELETE CASCADE
);
