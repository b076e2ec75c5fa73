-- The six flows' progress, in Postgres so that nothing depends on Redis keeping data: what each
-- channel was last sent (listings by content hash, stock quantities), the stock the product
-- counts with (read from the ERP, or held by the product where the ERP keeps none), the units
-- of pulled orders not yet reflected in it, each order's follow-ups (document, acceptance,
-- invoice, AWB, tracking) and the returns on the merchant's list.

-- Listings as last sent per connection: the content hash decides whether a SKU is sent again.
CREATE TABLE listing_state (
    connection_id uuid        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sku           text        NOT NULL,
    content_hash  text        NOT NULL,
    -- pending (sent, the marketplace is processing), ok, failed, moderation (waiting for the
    -- marketplace's review), rejected (refused by the marketplace's review).
    state         text        NOT NULL,
    message       text        NULL,
    -- The marketplace's batch to poll while pending (BatchHandle as JSON).
    batch         jsonb       NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, sku),
    CONSTRAINT listing_state_state_check
        CHECK (state IN ('pending', 'ok', 'failed', 'moderation', 'rejected'))
);

-- The stock the product counts with, per tenant and SKU. `source = 'erp'`: the latest ERP
-- reading (replaced by each read); `source = 'held'`: kept by the product for an ERP without
-- stock (set by the merchant, decremented by each order, given back by a cancellation).
CREATE TABLE stock_levels (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sku        text        NOT NULL,
    available  bigint      NOT NULL,
    source     text        NOT NULL,
    read_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sku),
    CONSTRAINT stock_levels_source_check CHECK (source IN ('erp', 'held'))
);

-- Units of a pulled order, counted against the stock until an ERP reading includes them: an
-- ERP reading taken after `reflected_after` already shows them (NULL: not yet in the ERP).
CREATE TABLE stock_reservations (
    order_row       bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    tenant_id       uuid        NOT NULL,
    sku             text        NOT NULL,
    quantity        integer     NOT NULL,
    reflected_after timestamptz NULL,
    PRIMARY KEY (order_row, sku),
    CONSTRAINT stock_reservations_quantity_positive CHECK (quantity > 0)
);
CREATE INDEX stock_reservations_open ON stock_reservations (tenant_id, sku);

-- The quantity last sent to (or seen on) each connection's channel per SKU.
CREATE TABLE stock_pushed (
    connection_id uuid        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sku           text        NOT NULL,
    quantity      integer     NOT NULL,
    pushed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, sku)
);

-- Stock buffers: per tenant (channel and SKU NULL), channel, SKU, or channel and SKU.
CREATE TABLE stock_buffers (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel   text NOT NULL DEFAULT '',
    sku       text NOT NULL DEFAULT '',
    -- "5" (units) or "10%" (percent), as canonical::stock::Buffer parses it.
    buffer    text NOT NULL,
    PRIMARY KEY (tenant_id, channel, sku)
);

-- Each order's way through the flows after its claim.
ALTER TABLE orders
    ADD COLUMN connection_id   uuid        NULL REFERENCES connections (id) ON DELETE SET NULL,
    -- The marketplace order as pulled (canonical JSON; holds personal data).
    ADD COLUMN order_json      jsonb       NULL,
    -- The ERP's sales document (canonical JSON).
    ADD COLUMN document_json   jsonb       NULL,
    ADD COLUMN accepted_at     timestamptz NULL,
    -- waiting (no invoice in the ERP yet), attached, unsupported (the marketplace or the ERP
    -- cannot), failed (with the reason in invoice_note).
    ADD COLUMN invoice_state   text        NULL,
    ADD COLUMN invoice_series  text        NULL,
    ADD COLUMN invoice_number  text        NULL,
    ADD COLUMN invoice_note    text        NULL,
    -- The AWB: the intent (reference) is written before the courier is called.
    ADD COLUMN awb_reference   text        NULL,
    ADD COLUMN awb             text        NULL,
    ADD COLUMN awb_state       text        NULL,
    ADD COLUMN awb_intent_at   timestamptz NULL,
    ADD COLUMN awb_note        text        NULL,
    ADD COLUMN shipped_at      timestamptz NULL,
    ADD CONSTRAINT orders_invoice_state_check
        CHECK (invoice_state IS NULL OR invoice_state IN ('waiting', 'attached', 'unsupported', 'failed')),
    ADD CONSTRAINT orders_awb_state_check
        CHECK (awb_state IS NULL OR awb_state IN ('intent', 'created', 'needs_review', 'unsupported')),
    -- One AWB per order: an AWB number is never recorded on two orders.
    ADD CONSTRAINT orders_awb_key UNIQUE (awb);
CREATE INDEX orders_connection_state ON orders (connection_id, state);

-- Returns, cancellations and reversals matched to the ERP document. `outcome = 'registered'`:
-- done in the ERP the non-fiscal way; `for_merchant`: on the merchant's list with the evidence
-- (a credit note is theirs to issue), closed when the ERP shows the credit.
CREATE TABLE return_items (
    id            bigserial   PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connection_id uuid        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    event_id      text        NOT NULL,
    channel_order_id text     NOT NULL,
    kind          text        NOT NULL,
    outcome       text        NOT NULL,
    reference     text        NULL,
    evidence      text        NULL,
    state         text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz NULL,
    CONSTRAINT return_items_event_key UNIQUE (connection_id, event_id),
    CONSTRAINT return_items_outcome_check
        CHECK (outcome IN ('registered', 'for_merchant', 'no_document', 'waiting')),
    CONSTRAINT return_items_state_check CHECK (state IN ('open', 'closed'))
);
