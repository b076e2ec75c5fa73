//! The arithmetic of the typed operations, as pure functions on [`Decimal`]s.
//!
//! The engine calls these; they are public so the formulas can be tested and reused on their
//! own.

use rust_decimal::{Decimal, RoundingStrategy};

use super::rules::RoundMode;

impl RoundMode {
    pub(crate) const fn strategy(self) -> RoundingStrategy {
        match self {
            RoundMode::HalfEven => RoundingStrategy::MidpointNearestEven,
            RoundMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundMode::Up => RoundingStrategy::AwayFromZero,
            RoundMode::Down => RoundingStrategy::ToZero,
        }
    }
}

/// Whether `step` and `ending` make a valid rounding grid: `step > 0`, `0 <= ending < step`.
pub fn valid_grid(step: Decimal, ending: Option<Decimal>) -> Result<(), &'static str> {
    if step <= Decimal::ZERO {
        return Err("rounding step must be positive");
    }
    if let Some(e) = ending
        && (e < Decimal::ZERO || e >= step)
    {
        return Err("charm ending must be at least 0 and less than the step");
    }
    Ok(())
}

/// Rounds `v` to the grid `k × step + ending` (`ending` 0 when absent), choosing `k` by
/// rounding `(v − ending) / step` to an integer with `mode`.
///
/// - `step` 0.01, no ending: cents; `step` 0.05 or 0.10: to 5 or 10 cents; `step` 1: units.
/// - `step` 1, ending 0.99: charm prices …, 122.99, 123.99 (123.456 `up` → 123.99,
///   `down` → 122.99, `half_up` → 122.99). `step` 10, ending 9.90: 119.90, 129.90, ….
/// - A non-negative `v` never rounds below zero: `k` is at least 0 (0.50 `down` with ending
///   0.99 gives 0.99, not −0.01).
/// - The result carries the scale of the step or the ending, whichever is larger (step 0.10
///   gives two decimals, step 1 none).
///
/// On the grid already, `v` is returned unchanged (idempotent). The caller checks the grid
/// with [`valid_grid`]; a zero step returns `v` unchanged rather than dividing by zero.
/// `None` when the arithmetic overflows `Decimal`.
pub fn round(
    v: Decimal,
    mode: RoundMode,
    step: Decimal,
    ending: Option<Decimal>,
) -> Option<Decimal> {
    if step <= Decimal::ZERO {
        return Some(v);
    }
    let e = ending.unwrap_or(Decimal::ZERO);
    let scale = step.scale().max(e.scale());
    let shifted = v.checked_sub(e)?;
    let k = if step == Decimal::ONE {
        shifted
    } else {
        shifted.checked_div(step)?
    }
    .round_dp_with_strategy(0, mode.strategy());
    let k = if v >= Decimal::ZERO && k < Decimal::ZERO {
        Decimal::ZERO
    } else {
        k
    };
    let mut out = k.checked_mul(step)?.checked_add(e)?;
    out.rescale(scale);
    Some(out)
}

/// `1 + percent / 100`, the factor between net and gross.
pub fn vat_factor(percent: Decimal) -> Decimal {
    Decimal::ONE + percent * Decimal::new(1, 2)
}

/// The gross of a net amount, unrounded: `net × (1 + percent/100)`; `None` on overflow.
pub fn vat_add(net: Decimal, percent: Decimal) -> Option<Decimal> {
    net.checked_mul(vat_factor(percent))
}

/// The net of a gross amount, unrounded: `gross / (1 + percent/100)`; `None` on overflow.
pub fn vat_strip(gross: Decimal, percent: Decimal) -> Option<Decimal> {
    gross.checked_div(vat_factor(percent))
}

/// Whether a VAT percentage is within 0-100.
pub fn valid_vat(percent: Decimal) -> bool {
    percent >= Decimal::ZERO && percent <= Decimal::ONE_HUNDRED
}

/// Keeps the first `n` characters (not bytes) of `s`, in place.
pub fn truncate_chars(s: &mut String, n: usize) {
    if let Some((i, _)) = s.char_indices().nth(n) {
        s.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn rounding_table() {
        use RoundMode::*;
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        #[rustfmt::skip]
        let cases: &[(&str, RoundMode, &str, Option<&str>, &str)] = &[
            // cents: half-even and half-up differ on a tie of .005
            ("0.125", HalfEven, "0.01", None, "0.12"),
            ("0.125", HalfUp, "0.01", None, "0.13"),
            ("0.135", HalfEven, "0.01", None, "0.14"),
            ("0.135", HalfUp, "0.01", None, "0.14"),
            ("-0.125", HalfUp, "0.01", None, "-0.13"),
            ("-0.125", HalfEven, "0.01", None, "-0.12"),
            ("1.001", Up, "0.01", None, "1.01"),
            ("1.009", Down, "0.01", None, "1.00"),
            ("-1.001", Up, "0.01", None, "-1.01"),
            ("12", HalfEven, "0.01", None, "12.00"),
            // 5 and 10 cents
            ("1.024", HalfUp, "0.05", None, "1.00"),
            ("1.025", HalfUp, "0.05", None, "1.05"),
            ("1.025", HalfEven, "0.05", None, "1.00"),
            ("1.075", HalfEven, "0.05", None, "1.10"),
            ("1.01", Up, "0.05", None, "1.05"),
            ("1.04", Down, "0.10", None, "1.00"),
            ("1.05", HalfEven, "0.10", None, "1.00"),
            ("1.15", HalfEven, "0.10", None, "1.20"),
            ("1.05", HalfUp, "0.10", None, "1.10"),
            // whole units
            ("2.5", HalfEven, "1", None, "2"),
            ("3.5", HalfEven, "1", None, "4"),
            ("2.5", HalfUp, "1", None, "3"),
            ("2.01", Up, "1", None, "3"),
            ("2.99", Down, "1", None, "2"),
            // charm endings
            ("123.456", Up, "1", Some("0.99"), "123.99"),
            ("123.456", Down, "1", Some("0.99"), "122.99"),
            ("123.456", HalfUp, "1", Some("0.99"), "122.99"),
            ("123.60", HalfUp, "1", Some("0.99"), "123.99"),
            ("123.99", Up, "1", Some("0.99"), "123.99"),
            ("123.456", Up, "1", Some("0.90"), "123.90"),
            ("123.95", Up, "1", Some("0.90"), "124.90"),
            ("0.50", Down, "1", Some("0.99"), "0.99"),
            ("121", Up, "10", Some("9.90"), "129.90"),
            ("121", Down, "10", Some("9.90"), "119.90"),
        ];
        for (v, mode, step, ending, want) in cases {
            let got = round(d(v), *mode, d(step), ending.map(d)).unwrap();
            assert_eq!(got, d(want), "{v} {mode:?} step {step} ending {ending:?}");
            assert_eq!(got.to_string(), *want, "scale of {v} {mode:?} {step}");
        }
    }

    #[test]
    fn grids_are_checked() {
        assert!(valid_grid(dec!(0.05), None).is_ok());
        assert!(valid_grid(dec!(1), Some(dec!(0.99))).is_ok());
        assert!(valid_grid(dec!(0), None).is_err());
        assert!(valid_grid(dec!(-1), None).is_err());
        assert!(valid_grid(dec!(1), Some(dec!(1))).is_err());
        assert!(valid_grid(dec!(0.01), Some(dec!(0.99))).is_err());
        assert!(valid_grid(dec!(1), Some(dec!(-0.01))).is_err());
    }

    #[test]
    fn vat_formulas() {
        assert_eq!(vat_add(dec!(100), dec!(25)), Some(dec!(125)));
        assert_eq!(vat_add(dec!(100), dec!(25.5)), Some(dec!(125.5)));
        assert_eq!(vat_strip(dec!(125), dec!(25)), Some(dec!(100)));
        let net = vat_strip(dec!(119), dec!(19)).unwrap();
        assert_eq!(
            round(net, RoundMode::HalfEven, dec!(0.01), None),
            Some(dec!(100.00))
        );
        assert_eq!(vat_add(Decimal::MAX, dec!(25)), None);
        assert_eq!(round(Decimal::MAX, RoundMode::Up, dec!(0.01), None), None);
        assert!(valid_vat(dec!(0)) && valid_vat(dec!(100)));
        assert!(!valid_vat(dec!(-1)) && !valid_vat(dec!(100.01)));
    }

    #[test]
    fn truncation_counts_characters() {
        let mut s = String::from("Cană de ceai");
        truncate_chars(&mut s, 4);
        assert_eq!(s, "Cană");
        let mut short = String::from("ab");
        truncate_chars(&mut short, 5);
        assert_eq!(short, "ab");
    }
}
