-- Wake-up endpoints and freshness.
--
-- `wakeup_secrets`: the secret of each connection's wake-up URL (`/wakeup/<connection>/<key>`).
-- Cel.ro's push callbacks carry no signature, so the URL itself is the credential. Only the
-- SHA-256 of the random key is stored: a copy of this table cannot call the endpoint, and the key
-- is shown once, by `megzo connections wakeup-url`, which replaces the row (rotation).
CREATE TABLE wakeup_secrets (
    connection_id uuid        PRIMARY KEY,
    secret_sha256 bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wakeup_secrets_connection_fkey FOREIGN KEY (connection_id)
        REFERENCES connections (id) ON DELETE CASCADE,
    CONSTRAINT wakeup_secrets_sha256_length CHECK (octet_length(secret_sha256) = 32)
);

-- `flow_status`: per connection and flow, the latest successful and failed run, kept by the
-- run recorder in the same batch as `job_runs` (times only move forward: GREATEST). Freshness
-- (`megzo_flow_freshness_seconds`, `megzo tenants status`) reads this small table instead of
-- scanning the history.
CREATE TABLE flow_status (
    connection_id   uuid        NOT NULL,
    kind            text        NOT NULL,
    tenant_id       uuid        NOT NULL,
    last_success_at timestamptz NULL,
    last_failure_at timestamptz NULL,
    -- The error of the failure at `last_failure_at` (its cause chain joined with ": ").
    last_error      text        NULL,
    PRIMARY KEY (connection_id, kind),
    CONSTRAINT flow_status_connection_fkey FOREIGN KEY (connection_id)
        REFERENCES connections (id) ON DELETE CASCADE,
    CONSTRAINT flow_status_kind_check CHECK (kind IN ('catalog_push', 'stock_push', 'order_pull',
                                                      'invoice_attach', 'awb_push', 'returns_reconcile'))
);

CREATE INDEX flow_status_tenant_idx ON flow_status (tenant_id);
