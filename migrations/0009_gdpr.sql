-- GDPR (the product is the merchants' data processor; see docs/gdpr.md). The buyers' personal
-- data of an order (its canonical `Contact`s in `orders.order_json`) is anonymised once the order
-- is complete for longer than the retention period, or on the merchant's erasure request; the
-- business record (ids, amounts, lines, ERP document and invoice numbers, AWB) stays.

-- When the order's personal data was anonymised; NULL while the row still holds it. A re-listed
-- order never writes its payload back onto an anonymised row (`store_order_payload`).
ALTER TABLE orders ADD COLUMN personal_data_erased_at timestamptz NULL;

-- The retention purge reads only the rows still holding personal data, oldest activity first:
-- anonymised rows leave this index.
CREATE INDEX orders_personal_data_held_idx ON orders (updated_at)
    WHERE personal_data_erased_at IS NULL;

-- An order's return items (the purge's completeness check, exports and erasures).
CREATE INDEX return_items_order_idx ON return_items (connection_id, channel_order_id);

-- The purge reduces the error texts of job attempts older than the retention to a marker (an
-- external API's error message can quote a buyer's address); the failures whose texts are still
-- held are found through this index instead of a scan of the whole history.
CREATE INDEX job_runs_error_held_idx ON job_runs (started_at)
    WHERE error IS NOT NULL AND (error -> 'chain' ->> 0) IS DISTINCT FROM '[error text erased]';
