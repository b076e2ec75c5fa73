-- invoice_attach asks the ERP whether the merchant has invoiced an order. Asking for every
-- waiting order on every heartbeat spent a whole SmartBill account's budget (30 calls / 10 s)
-- on a few hundred uninvoiced orders and starved order creation. Each order now has its own
-- schedule: checked when its document exists, then after 1, 2, 4 … minutes up to an hour
-- (configurable); an ERP webhook about an invoice checks the waiting orders at once.
ALTER TABLE orders
    ADD COLUMN invoice_checks        integer     NOT NULL DEFAULT 0,
    ADD COLUMN invoice_next_check_at timestamptz NULL;

CREATE INDEX orders_invoice_due_idx ON orders (connection_id, invoice_next_check_at)
    WHERE state = 'created' AND (invoice_state IS NULL OR invoice_state = 'waiting');
