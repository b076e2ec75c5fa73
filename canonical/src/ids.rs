//! Identifiers. Each is a newtype so a tenant id can never be passed where a connection id is
//! expected, and each string id is validated once, at the edge, so the rest of the code can rely
//! on it being non-empty, bounded and free of characters that would break a Redis key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} contains {ch:?}; only printable characters without spaces, braces or colons are allowed"
    )]
    BadChar { what: &'static str, ch: char },
    #[error("{what} {value:?} is not a UUID: {reason}")]
    NotUuid {
        what: &'static str,
        value: String,
        reason: String,
    },
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id (UUID v7, so ids sort by creation time).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|e| IdError::NotUuid {
                    what: $what,
                    value: s.to_owned(),
                    reason: e.to_string(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// A merchant: the unit of isolation, quota and data ownership.
    TenantId,
    "tenant id"
);
uuid_id!(
    /// One ERP ⇄ marketplace pair of a tenant, with its settings.
    ConnectionId,
    "connection id"
);

/// Validates a string identifier that ends up inside Redis keys and URLs.
fn check_token(what: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > max {
        return Err(IdError::TooLong {
            what,
            len: s.len(),
            max,
        });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '{' | '}' | ':'))
    {
        return Err(IdError::BadChar { what, ch });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_token($what, &s, $max)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A stock-keeping unit as the merchant's ERP names it.
    Sku,
    "SKU",
    128
);
string_id!(
    /// An order id as the marketplace names it.
    ChannelOrderId,
    "channel order id",
    128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_ids_refuse_what_would_break_a_key() {
        assert_eq!(Sku::new(""), Err(IdError::Empty { what: "SKU" }));
        assert!(matches!(
            Sku::new("a b"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            ChannelOrderId::new("x{y}"),
            Err(IdError::BadChar { ch: '{', .. })
        ));
        assert!(matches!(
            Sku::new("x".repeat(129)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        assert_eq!(Sku::new("ABC-1").unwrap().as_str(), "ABC-1");
    }

    #[test]
    fn string_ids_validate_when_deserialized() {
        let bad: Result<Sku, _> = serde_json::from_str("\"a:b\"");
        assert!(bad.unwrap_err().to_string().contains("':'"));
        let ok: Sku = serde_json::from_str("\"SKU-9\"").unwrap();
        assert_eq!(ok.to_string(), "SKU-9");
    }

    #[test]
    fn uuid_ids_name_the_bad_value() {
        let err = "nope".parse::<TenantId>().unwrap_err();
        assert!(err.to_string().contains("tenant id \"nope\""), "{err}");
        let t = TenantId::new();
        assert_eq!(t.to_string().parse::<TenantId>().unwrap(), t);
    }
}
