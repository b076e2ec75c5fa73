//! The external systems the product speaks to. Closed sets with stable names: a name is stored in
//! Postgres and in queue payloads, so renaming a variant must keep its string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A system name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownSystem {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! system_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, $( $(#[$vdoc:meta])* $variant:ident => $s:literal ),+ $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $( $(#[$vdoc])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The stable name stored in Postgres and queue payloads.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $s ),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownSystem;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $s => Ok($name::$variant), )+
                    _ => Err(UnknownSystem {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($( $s, " " ),+),
                    }),
                }
            }
        }
    };
}

system_enum!(
    /// The merchant's ERP or invoicing system: the single source of truth.
    Erp, "ERP",
    SmartBill => "smartbill",
    Lexoffice => "lexoffice",
    WinMentor => "winmentor",
    Charisma => "charisma",
    /// The built-in no-op ERP used by demo tenants until the real connectors land.
    Noop => "noop",
);

system_enum!(
    /// A marketplace the merchant sells on.
    Marketplace, "marketplace",
    Cdon => "cdon",
    Celro => "celro",
    /// The built-in no-op marketplace used by demo tenants until the real connectors land.
    Noop => "noop",
);

system_enum!(
    /// A courier the merchant ships with.
    Courier, "courier",
    Dhl => "dhl",
    Noop => "noop",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for e in Erp::ALL {
            assert_eq!(e.as_str().parse::<Erp>().unwrap(), *e);
        }
        let err = "sap".parse::<Erp>().unwrap_err();
        assert!(err.to_string().contains("smartbill"), "{err}");
        assert_eq!(
            serde_json::to_string(&Marketplace::Celro).unwrap(),
            "\"celro\""
        );
    }
}
