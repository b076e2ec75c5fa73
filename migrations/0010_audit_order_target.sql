-- The GDPR purge and erasure clean an order's audit entries (support's notes about it) of the
-- buyer's values when they anonymise the order: find them by the order's row id.
CREATE INDEX audit_log_order_target_idx ON audit_log (target) WHERE action LIKE 'order.%';
