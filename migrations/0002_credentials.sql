-- Credentials of connections (API tokens, passwords of the ERP, marketplace and courier accounts),
-- encrypted at rest. The plaintext never reaches Postgres: `workers::vault` seals a JSON object
-- with ChaCha20-Poly1305 under a key from MEGZO_CREDENTIAL_KEYS, with the connection id as
-- associated data, so a ciphertext copied to another connection's row does not decrypt.
--
-- `key_id` names the key that sealed the row (never the key itself); `megzo credentials rotate`
-- re-seals every row whose key is not the active one.
CREATE TABLE connection_credentials (
    connection_id uuid        PRIMARY KEY,
    key_id        text        NOT NULL,
    -- The 96-bit random nonce of this encryption.
    nonce         bytea       NOT NULL,
    -- The sealed JSON object, with its 16-byte authentication tag at the end.
    ciphertext    bytea       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connection_credentials_connection_fkey FOREIGN KEY (connection_id)
        REFERENCES connections (id) ON DELETE CASCADE,
    CONSTRAINT connection_credentials_key_id_format CHECK (key_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    CONSTRAINT connection_credentials_nonce_length CHECK (octet_length(nonce) = 12),
    CONSTRAINT connection_credentials_ciphertext_length CHECK (octet_length(ciphertext) >= 16)
);

-- Rotation looks for the rows not sealed with the active key.
CREATE INDEX connection_credentials_key_idx ON connection_credentials (key_id);
