-- The support console and vendor panel (`megzo serve`): its users and their roles, API tokens
-- and browser sessions (both stored only as hashes), and the audit log of every support action.

-- A console user. `operator`: the fleet (read-only on tenants' data); `support`: every tenant,
-- replays and resolves; `vendor`: one tenant (tenant_id), read-mostly.
CREATE TABLE console_users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    role          text        NOT NULL,
    tenant_id     uuid        NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- argon2id in PHC string format; NULL: this user signs in with API tokens only.
    password_hash text        NULL,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT console_users_username_key UNIQUE (username),
    CONSTRAINT console_users_username_format CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
    CONSTRAINT console_users_role_check CHECK (role IN ('operator', 'support', 'vendor')),
    -- A vendor belongs to exactly one tenant; the other roles to none.
    CONSTRAINT console_users_vendor_tenant CHECK ((role = 'vendor') = (tenant_id IS NOT NULL))
);

-- API tokens: `mgz_<id, 32 hex>_<secret>`; the id finds the row, the secret is checked against
-- its argon2id hash. The token itself is shown once, at creation.
CREATE TABLE console_tokens (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    secret_hash  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NULL,
    last_used_at timestamptz NULL,
    revoked_at   timestamptz NULL,
    CONSTRAINT console_tokens_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);
CREATE INDEX console_tokens_user_idx ON console_tokens (user_id);

-- Browser sessions: the cookie holds a random id, the row its SHA-256 (a leaked table opens no
-- session). The CSRF token is bound to the session and sent back in every form.
CREATE TABLE console_sessions (
    id_hash      bytea       PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CONSTRAINT console_sessions_id_hash_length CHECK (octet_length(id_hash) = 32)
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Every action that changes something, by whom and through what (a token, a browser session,
-- the CLI), whether it was done. Kept when the user or the tenant is deleted.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    role       text        NOT NULL,
    via        text        NOT NULL,
    action     text        NOT NULL,
    tenant_id  uuid        NULL,
    target     text        NULL,
    outcome    text        NOT NULL,
    detail     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT audit_log_via_check CHECK (via IN ('token', 'session', 'cli')),
    CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('done', 'refused', 'failed'))
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at DESC);
