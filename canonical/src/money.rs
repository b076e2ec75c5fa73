//! Money, currencies, VAT rates and countries: the units every connector converts into.
//!
//! Amounts are [`Decimal`], never floats. A [`VatRate`] is a **percentage** (25 means 25 %):
//! CDON sends fractions (0.25) and Cel.ro percentages (19); each connector converts at its edge.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why a currency, country or VAT rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unknown currency {0:?}; expected one of RON, EUR, SEK, NOK, DKK, USD")]
    Currency(String),
    #[error("country {0:?} is not an ISO 3166-1 alpha-2 code (two letters, e.g. SE)")]
    Country(String),
    #[error("VAT rate {0} % is outside 0-100 %")]
    Vat(Decimal),
}

/// The currencies the product's systems use (ISO 4217).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Ron,
    Eur,
    Sek,
    Nok,
    Dkk,
    Usd,
}

impl Currency {
    pub const fn as_str(self) -> &'static str {
        match self {
            Currency::Ron => "RON",
            Currency::Eur => "EUR",
            Currency::Sek => "SEK",
            Currency::Nok => "NOK",
            Currency::Dkk => "DKK",
            Currency::Usd => "USD",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "RON" => Currency::Ron,
            "EUR" => Currency::Eur,
            "SEK" => Currency::Sek,
            "NOK" => Currency::Nok,
            "DKK" => Currency::Dkk,
            "USD" => Currency::Usd,
            _ => return Err(UnitError::Currency(s.to_owned())),
        })
    }
}

/// An amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub const fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// A VAT rate as a percentage, 0-100 (25 means 25 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct VatRate(Decimal);

impl VatRate {
    pub fn percent(p: Decimal) -> Result<Self, UnitError> {
        if p < Decimal::ZERO || p > Decimal::ONE_HUNDRED {
            return Err(UnitError::Vat(p));
        }
        Ok(Self(p.normalize()))
    }

    /// From a fraction (0.25 means 25 %), as CDON sends it.
    pub fn fraction(f: Decimal) -> Result<Self, UnitError> {
        Self::percent(f * Decimal::ONE_HUNDRED)
    }

    pub fn as_percent(self) -> Decimal {
        self.0
    }

    pub fn as_fraction(self) -> Decimal {
        (self.0 / Decimal::ONE_HUNDRED).normalize()
    }

    /// The gross amount of a net one, rounded to cents (banker's rounding is not used: VAT
    /// amounts round half away from zero, as invoices do).
    pub fn gross_of(self, net: Decimal) -> Decimal {
        round2(net * (Decimal::ONE + self.as_fraction()))
    }

    /// The net amount of a gross one, rounded to cents.
    pub fn net_of(self, gross: Decimal) -> Decimal {
        round2(gross / (Decimal::ONE + self.as_fraction()))
    }
}

impl TryFrom<Decimal> for VatRate {
    type Error = UnitError;
    fn try_from(d: Decimal) -> Result<Self, Self::Error> {
        Self::percent(d)
    }
}

impl From<VatRate> for Decimal {
    fn from(v: VatRate) -> Decimal {
        v.0
    }
}

impl fmt::Display for VatRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.0)
    }
}

/// Rounds to two decimals, half away from zero.
pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Country {
    pub const RO: Country = Country(*b"RO");
    pub const SE: Country = Country(*b"SE");
    pub const NO: Country = Country(*b"NO");
    pub const DK: Country = Country(*b"DK");
    pub const FI: Country = Country(*b"FI");
    pub const DE: Country = Country(*b"DE");

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Member of the EU customs union (a parcel to it needs no customs declaration from RO).
    pub fn in_eu_customs_union(&self) -> bool {
        const EU: [&str; 27] = [
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
            "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        ];
        EU.contains(&self.as_str())
    }
}

impl FromStr for Country {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_uppercase();
        match t.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Country([*a, *b])),
            _ => Err(UnitError::Country(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Country {
    type Error = UnitError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Country> for String {
    fn from(c: Country) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn vat_converts_between_fraction_percent_net_and_gross() {
        let v = VatRate::fraction(dec!(0.25)).unwrap();
        assert_eq!(v.as_percent(), dec!(25));
        assert_eq!(v.gross_of(dec!(23.2)), dec!(29.00));
        assert_eq!(v.net_of(dec!(29)), dec!(23.20));
        assert_eq!(VatRate::percent(dec!(101)), Err(UnitError::Vat(dec!(101))));
    }

    #[test]
    fn countries_and_currencies_name_what_was_wrong() {
        assert_eq!("se".parse::<Country>().unwrap(), Country::SE);
        assert!(!Country::NO.in_eu_customs_union());
        assert!(Country::FI.in_eu_customs_union());
        assert!(
            "Sweden"
                .parse::<Country>()
                .unwrap_err()
                .to_string()
                .contains("Sweden")
        );
        assert!(
            "XYZ"
                .parse::<Currency>()
                .unwrap_err()
                .to_string()
                .contains("XYZ")
        );
        assert_eq!(serde_json::to_string(&Currency::Sek).unwrap(), "\"SEK\"");
    }
}
