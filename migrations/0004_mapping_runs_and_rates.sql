-- The field-mapping version each job attempt applied (NULL: the job applied none), and the
-- dated exchange-rate feed that currency conversions use when a rule set carries no rate of
-- its own for the pair.

ALTER TABLE job_runs ADD COLUMN mapping_version integer NULL
    CONSTRAINT job_runs_mapping_version_check CHECK (mapping_version IS NULL OR mapping_version > 0);

-- One rate per (day, pair): `1 base = rate quote` as the source published it on that day.
-- Imports of the same day and pair replace the earlier value (a corrected publication).
CREATE TABLE fx_rates (
    rate_date   date          NOT NULL,
    base        text          NOT NULL,
    quote       text          NOT NULL,
    rate        numeric(28,10) NOT NULL,
    -- Who published it (ecb, bnr, manual) and when it was stored.
    source      text          NOT NULL,
    imported_at timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (rate_date, base, quote),
    CONSTRAINT fx_rates_currency_check CHECK (base ~ '^[A-Z]{3}$' AND quote ~ '^[A-Z]{3}$' AND base <> quote),
    CONSTRAINT fx_rates_rate_check CHECK (rate > 0),
    CONSTRAINT fx_rates_source_check CHECK (length(source) BETWEEN 1 AND 40)
);

CREATE INDEX fx_rates_imported_idx ON fx_rates (imported_at DESC);
