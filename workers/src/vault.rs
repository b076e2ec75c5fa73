//! Encryption at rest of connection credentials (API tokens, account passwords).
//!
//! The keys come from the environment variable [`KEYS_ENV`] (`MEGZO_CREDENTIAL_KEYS`), never from
//! a file or the database: a comma-separated list of `key_id:base64(32 bytes)`. **The first key is
//! the active one** (it seals everything new); every listed key can open. A key is retired by
//! putting a new key first, running `megzo credentials rotate` (which re-seals every row with the
//! active key) and only then removing the old key from the list.
//!
//! Each [`Credentials`] value (a JSON object) is sealed with ChaCha20-Poly1305 under a random
//! 96-bit nonce, with **the connection id as associated data**: a ciphertext copied into another
//! connection's row fails to open instead of handing one tenant's credentials to another
//! connection. A [`Sealed`] value names the key that sealed it by id only.
//!
//! What never leaves this module in the clear: key material (parse errors name the key id and the
//! problem, never the key; [`Vault`]'s `Debug` prints key ids only) and credential values
//! ([`Credentials`]' `Debug` prints the number of fields, it has no `Display` and no
//! `Serialize`, and its memory is wiped on drop as far as `serde_json`'s types allow).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use canonical::ConnectionId;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{CloneableSecret, ExposeSecret, SecretBox};
use serde_json::{Map, Value};

/// The environment variable holding the credential keys: `key_id:base64,key_id:base64,…`, the
/// first one active.
pub const KEYS_ENV: &str = "MEGZO_CREDENTIAL_KEYS";

/// Length of a key, in bytes (ChaCha20-Poly1305 takes 256-bit keys).
pub const KEY_LEN: usize = 32;

/// Length of a nonce, in bytes (96 bits, fresh and random for every encryption).
pub const NONCE_LEN: usize = 12;

/// Longest key id accepted; ids are stored beside every ciphertext and printed by the CLI.
pub const MAX_KEY_ID_LEN: usize = 64;

/// What the vault refuses or fails with. No variant ever carries key material or a credential
/// value, so every one can be printed and logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// [`KEYS_ENV`] is not set at all.
    #[error(
        "MEGZO_CREDENTIAL_KEYS is not set: create a key with `megzo credentials new-key` and set \
         MEGZO_CREDENTIAL_KEYS to the line it prints (see docs/configuration.md)"
    )]
    NotConfigured,
    /// [`KEYS_ENV`] is set but cannot be used; `reason` names the entry or key id and the problem.
    #[error(
        "invalid MEGZO_CREDENTIAL_KEYS: {reason} (expected comma-separated key_id:base64 entries \
         of {KEY_LEN}-byte keys, the active key first; `megzo credentials new-key` makes one)"
    )]
    InvalidKeys {
        /// What is wrong, without the key material.
        reason: String,
    },
    /// A ciphertext names a key id the vault does not have.
    #[error(
        "key {key_id} is not in MEGZO_CREDENTIAL_KEYS; was it removed before rotation finished?"
    )]
    UnknownKey {
        /// The key id stored with the ciphertext.
        key_id: String,
    },
    /// Authentication failed: the ciphertext or nonce was altered, the row was copied from another
    /// connection, or the key id now names different key material.
    #[error(
        "the credentials of connection {connection} do not decrypt with key {key_id}: the \
         ciphertext was altered or copied from another connection, or key {key_id} now holds \
         different key material"
    )]
    Decrypt {
        /// The connection whose credentials were being opened.
        connection: ConnectionId,
        /// The key id stored with the ciphertext.
        key_id: String,
    },
    /// A sealed value that cannot be what this module wrote (a nonce of the wrong length, a
    /// plaintext that is not a JSON object).
    #[error("the stored credentials of connection {connection} are malformed: {reason}")]
    Malformed {
        /// The connection whose credentials were being opened.
        connection: ConnectionId,
        /// What is wrong (never the plaintext).
        reason: String,
    },
    /// Input offered as credentials is not a JSON object. `reason` never quotes the input.
    #[error("credentials must be a JSON object: {reason}")]
    InvalidCredentials {
        /// What is wrong (a JSON syntax error with its line and column, or the type found).
        reason: String,
    },
}

/// One key: its id and the cipher holding its material (which wipes the key on drop).
#[derive(Clone)]
struct VaultKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

/// The credential keys: the first ([`active_key_id`](Vault::active_key_id)) seals, all open.
#[derive(Clone)]
pub struct Vault {
    /// Never empty; `keys[0]` is the active key.
    keys: Vec<VaultKey>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("active", &self.active_key_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidKeys {
        reason: reason.into(),
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Vault {
    /// The keys of [`KEYS_ENV`]. [`VaultError::NotConfigured`] when it is not set (the message
    /// says how to make a key), [`VaultError::InvalidKeys`] when it cannot be parsed.
    pub fn from_env() -> Result<Self, VaultError> {
        match std::env::var(KEYS_ENV) {
            Ok(spec) => Self::parse(&Zeroizing::new(spec)),
            Err(std::env::VarError::NotPresent) => Err(VaultError::NotConfigured),
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid("it is not valid UTF-8")),
        }
    }

    /// Parses `key_id:base64,key_id:base64,…` (whitespace around entries is ignored). Key ids are
    /// 1 to [`MAX_KEY_ID_LEN`] characters of `A-Z a-z 0-9 . _ -`, unique; keys are
    /// [`KEY_LEN`] bytes in standard padded base64. Every error names the entry (by position, or
    /// by key id once the id is known to be valid) and the problem, and never contains key
    /// material.
    pub fn parse(spec: &str) -> Result<Self, VaultError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(invalid("it is set but empty"));
        }
        let mut keys: Vec<VaultKey> = Vec::new();
        for (i, entry) in spec.split(',').enumerate() {
            let n = i + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(invalid(format!(
                    "entry #{n} is empty (two commas in a row, or a trailing comma?)"
                )));
            }
            let Some((id, material)) = entry.split_once(':') else {
                return Err(invalid(format!(
                    "entry #{n} has no ':' between a key id and its key"
                )));
            };
            let (id, material) = (id.trim(), material.trim());
            if id.is_empty() {
                return Err(invalid(format!("entry #{n} has an empty key id")));
            }
            if !valid_key_id(id) {
                // The id is not echoed: a malformed entry may be key material in the wrong place.
                return Err(invalid(format!(
                    "entry #{n}: a key id is 1 to {MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, \
                     '.', '_' and '-'"
                )));
            }
            if material.is_empty() {
                return Err(invalid(format!("key {id}: the key is empty")));
            }
            let bytes = Zeroizing::new(STANDARD.decode(material).map_err(|_| {
                invalid(format!(
                    "key {id}: the key is not valid base64 (standard alphabet, with padding)"
                ))
            })?);
            if bytes.len() != KEY_LEN {
                return Err(invalid(format!(
                    "key {id}: the key is {} bytes long; it must be exactly {KEY_LEN}",
                    bytes.len()
                )));
            }
            if let Some(first) = keys.iter().position(|k| k.id == id) {
                return Err(invalid(format!(
                    "key id {id} appears twice (entries #{} and #{n})",
                    first + 1
                )));
            }
            let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| invalid(format!("key {id}: the key has the wrong length")))?;
            keys.push(VaultKey {
                id: id.to_owned(),
                cipher,
            });
        }
        Ok(Self { keys })
    }

    /// A fresh key as one `key_id:base64` line for [`KEYS_ENV`] (`megzo credentials new-key`):
    /// 32 bytes from the operating system's random source, under an id made of today's date and
    /// random hex (`k20261122-3fa9c1`), so ids sort by age and practically never collide.
    pub fn generate_key() -> String {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut key[..]);
        let id = format!(
            "k{}-{:06x}",
            chrono::Utc::now().format("%Y%m%d"),
            OsRng.next_u32() & 0xff_ffff
        );
        format!("{id}:{}", STANDARD.encode(&key[..]))
    }

    /// The id of the key that seals: the first of the list.
    pub fn active_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the active one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Whether the vault can open what `key_id` sealed.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// Seals `credentials` of `connection` with the active key and a fresh random nonce.
    pub fn seal(
        &self,
        connection: ConnectionId,
        credentials: &Credentials,
    ) -> Result<Sealed, VaultError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(credentials.expose()).map_err(|e| {
            VaultError::InvalidCredentials {
                reason: e.to_string(),
            }
        })?);
        self.seal_bytes(connection, &plaintext)
    }

    /// Opens what [`seal`](Vault::seal) sealed for the same `connection`. Fails with
    /// [`VaultError::UnknownKey`] if the key id is not in the vault, and with
    /// [`VaultError::Decrypt`] if anything was altered or the value belongs to another connection.
    pub fn open(
        &self,
        connection: ConnectionId,
        sealed: &Sealed,
    ) -> Result<Credentials, VaultError> {
        let plaintext = self.open_bytes(connection, sealed)?;
        Credentials::from_json(&plaintext).map_err(|e| VaultError::Malformed {
            connection,
            reason: e.to_string(),
        })
    }

    /// Re-seals `sealed` with the active key (rotation), without parsing the plaintext.
    pub fn reseal(&self, connection: ConnectionId, sealed: &Sealed) -> Result<Sealed, VaultError> {
        let plaintext = self.open_bytes(connection, sealed)?;
        self.seal_bytes(connection, &plaintext)
    }

    fn seal_bytes(&self, connection: ConnectionId, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let key = &self.keys[0];
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: connection.0.as_bytes(),
                },
            )
            .map_err(|_| VaultError::InvalidCredentials {
                reason: "too large to encrypt".into(),
            })?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    fn open_bytes(
        &self,
        connection: ConnectionId,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(VaultError::Malformed {
                connection,
                reason: format!(
                    "the nonce is {} bytes long; it must be {NONCE_LEN}",
                    sealed.nonce.len()
                ),
            });
        }
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: connection.0.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Decrypt {
                connection,
                key_id: sealed.key_id.clone(),
            })?;
        Ok(Zeroizing::new(plaintext))
    }
}

/// Credentials as stored: which key sealed them, the nonce, and the ciphertext with its
/// authentication tag. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed this (an entry of [`KEYS_ENV`]).
    pub key_id: String,
    /// The [`NONCE_LEN`]-byte nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// The credentials of one connection: a JSON object (`{"api_token": "…", "user": "…"}`) whose
/// shape each connector defines. Held in a [`SecretBox`]: `Debug` prints
/// `Credentials(<redacted: N fields>)`, there is no `Display` and no `Serialize`, and the values
/// are wiped when it is dropped. Connectors read it with [`expose`](Credentials::expose).
pub struct Credentials(SecretBox<Fields>);

/// The JSON object inside [`Credentials`], wiped on drop.
#[derive(Clone, Default)]
struct Fields(Map<String, Value>);

impl Zeroize for Fields {
    fn zeroize(&mut self) {
        wipe_map(&mut self.0);
    }
}

impl CloneableSecret for Fields {}

/// Overwrites every string (keys included) and number of a JSON object, then empties it.
fn wipe_map(map: &mut Map<String, Value>) {
    for (mut key, mut value) in std::mem::take(map) {
        key.zeroize();
        wipe(&mut value);
    }
}

fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Number(n) => *n = 0.into(),
        Value::Array(items) => {
            items.iter_mut().for_each(wipe);
            items.clear();
        }
        Value::Object(map) => wipe_map(map),
        Value::Bool(b) => *b = false,
        Value::Null => {}
    }
    *value = Value::Null;
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Credentials {
    /// Wraps a JSON object.
    pub fn new(fields: Map<String, Value>) -> Self {
        Self(SecretBox::new(Box::new(Fields(fields))))
    }

    /// Parses JSON text that must be an object. The error names the syntax problem with its line
    /// and column, or the type found, and never quotes the input.
    pub fn from_json(text: &[u8]) -> Result<Self, VaultError> {
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(fields)) => Ok(Self::new(fields)),
            Ok(mut other) => {
                let found = json_type(&other);
                wipe(&mut other);
                Err(VaultError::InvalidCredentials {
                    reason: format!("found {found}"),
                })
            }
            // serde_json's syntax errors name a position and the kind of problem, never the text.
            Err(e) => Err(VaultError::InvalidCredentials {
                reason: e.to_string(),
            }),
        }
    }

    /// The JSON object, for the connector that needs it. Do not log or copy it around.
    pub fn expose(&self) -> &Map<String, Value> {
        &self.0.expose_secret().0
    }

    /// Number of top-level fields.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the object has no fields.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.len();
        write!(
            f,
            "Credentials(<redacted: {n} field{}>)",
            if n == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-token-XYZ";

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; KEY_LEN]))
    }

    fn creds() -> Credentials {
        Credentials::from_json(format!(r#"{{"api_token":"{SECRET}","user":"shop"}}"#).as_bytes())
            .unwrap()
    }

    fn err(spec: &str) -> String {
        Vault::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn round_trip() {
        let vault = Vault::parse(&key("k1", 1)).unwrap();
        let conn = ConnectionId::new();
        let sealed = vault.seal(conn, &creds()).unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let opened = vault.open(conn, &sealed).unwrap();
        assert_eq!(opened.expose()["api_token"], SECRET);
        assert_eq!(opened.expose()["user"], "shop");
        assert_eq!(opened.len(), 2);
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce_and_hides_the_plaintext() {
        let vault = Vault::parse(&key("k1", 1)).unwrap();
        let conn = ConnectionId::new();
        let (a, b) = (
            vault.seal(conn, &creds()).unwrap(),
            vault.seal(conn, &creds()).unwrap(),
        );
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(
            !a.ciphertext
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes())
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_connection_does_not_decrypt() {
        let vault = Vault::parse(&key("k1", 1)).unwrap();
        let (mine, other) = (ConnectionId::new(), ConnectionId::new());
        let sealed = vault.seal(mine, &creds()).unwrap();
        let e = vault.open(other, &sealed).unwrap_err();
        assert!(
            matches!(&e, VaultError::Decrypt { connection, key_id } if *connection == other && key_id == "k1"),
            "{e}"
        );
        assert!(
            e.to_string().contains("copied from another connection"),
            "{e}"
        );
        assert!(vault.open(mine, &sealed).is_ok());
    }

    #[test]
    fn tampering_is_detected() {
        let vault = Vault::parse(&key("k1", 1)).unwrap();
        let conn = ConnectionId::new();
        let sealed = vault.seal(conn, &creds()).unwrap();
        for i in [0, sealed.ciphertext.len() / 2, sealed.ciphertext.len() - 1] {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(
                matches!(vault.open(conn, &bad), Err(VaultError::Decrypt { .. })),
                "flipped byte {i}"
            );
        }
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 0x80;
        assert!(matches!(
            vault.open(conn, &bad),
            Err(VaultError::Decrypt { .. })
        ));
        let mut bad = sealed.clone();
        bad.ciphertext.truncate(10);
        assert!(matches!(
            vault.open(conn, &bad),
            Err(VaultError::Decrypt { .. })
        ));
        let mut bad = sealed;
        bad.nonce.pop();
        let e = vault.open(conn, &bad).unwrap_err();
        assert!(matches!(e, VaultError::Malformed { .. }), "{e}");
    }

    #[test]
    fn same_id_other_key_material_does_not_decrypt() {
        let conn = ConnectionId::new();
        let sealed = Vault::parse(&key("k1", 1))
            .unwrap()
            .seal(conn, &creds())
            .unwrap();
        let e = Vault::parse(&key("k1", 2))
            .unwrap()
            .open(conn, &sealed)
            .unwrap_err();
        assert!(matches!(e, VaultError::Decrypt { .. }), "{e}");
    }

    #[test]
    fn an_unknown_key_id_is_named() {
        let conn = ConnectionId::new();
        let sealed = Vault::parse(&key("old-key", 1))
            .unwrap()
            .seal(conn, &creds())
            .unwrap();
        let e = Vault::parse(&key("new-key", 2))
            .unwrap()
            .open(conn, &sealed)
            .unwrap_err();
        assert!(matches!(&e, VaultError::UnknownKey { key_id } if key_id == "old-key"));
        assert_eq!(
            e.to_string(),
            "key old-key is not in MEGZO_CREDENTIAL_KEYS; was it removed before rotation finished?"
        );
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let conn = ConnectionId::new();
        let old = Vault::parse(&key("a", 1)).unwrap();
        let sealed_a = old.seal(conn, &creds()).unwrap();
        let both = Vault::parse(&format!("{} , {}", key("b", 2), key("a", 1))).unwrap();
        assert_eq!(both.active_key_id(), "b");
        assert_eq!(both.key_ids().collect::<Vec<_>>(), ["b", "a"]);
        assert!(both.has_key("a") && both.has_key("b") && !both.has_key("c"));
        assert_eq!(both.open(conn, &sealed_a).unwrap().expose()["user"], "shop");
        let resealed = both.reseal(conn, &sealed_a).unwrap();
        assert_eq!(resealed.key_id, "b");
        let only_b = Vault::parse(&key("b", 2)).unwrap();
        assert_eq!(
            only_b.open(conn, &resealed).unwrap().expose()["api_token"],
            SECRET
        );
        assert!(matches!(
            only_b.open(conn, &sealed_a),
            Err(VaultError::UnknownKey { .. })
        ));
    }

    #[test]
    fn malformed_keys_name_the_problem_and_never_the_key() {
        // Distinctive key material, so a leak would be visible.
        let material = STANDARD.encode([0xA5; KEY_LEN]);
        let short = STANDARD.encode([0xA5; 16]);
        let not_b64 = "!!not*base64!!QUJDREVGR0g=";
        let cases: Vec<(String, &[&str])> = vec![
            (String::new(), &["empty"]),
            ("   ".into(), &["empty"]),
            (format!("k1:{material},"), &["entry #2", "empty"]),
            (
                format!("k1:{material},,k2:{material}"),
                &["entry #2", "empty"],
            ),
            (material.clone(), &["entry #1", "no ':'"]),
            (format!(":{material}"), &["entry #1", "empty key id"]),
            (
                format!("k 1:{material}"),
                &["entry #1", "key id is 1 to 64"],
            ),
            (
                format!("{}:{material}", "k".repeat(65)),
                &["entry #1", "1 to 64"],
            ),
            ("k1:".into(), &["key k1", "key is empty"]),
            (format!("k1:{not_b64}"), &["key k1", "not valid base64"]),
            (format!("k1:{short}"), &["key k1", "16 bytes", "exactly 32"]),
            (
                format!("k1:{material},k2:{material},k1:{material}"),
                &["key id k1 appears twice", "#1", "#3"],
            ),
        ];
        for (spec, needles) in cases {
            let e = err(&spec);
            for needle in needles {
                assert!(e.contains(needle), "{spec:?}: {e:?} lacks {needle:?}");
            }
            for leak in [material.as_str(), short.as_str(), not_b64, "QUJDREVGR0g"] {
                assert!(!e.contains(leak), "{e:?} prints key material");
            }
        }
    }

    #[test]
    fn an_unset_variable_says_how_to_make_a_key() {
        // (Not read from the environment here: tests run in parallel.)
        let e = VaultError::NotConfigured.to_string();
        assert!(e.contains("MEGZO_CREDENTIAL_KEYS is not set"), "{e}");
        assert!(e.contains("megzo credentials new-key"), "{e}");
    }

    #[test]
    fn debug_prints_key_ids_only() {
        let material = STANDARD.encode([0x5A; KEY_LEN]);
        let vault =
            Vault::parse(&format!("new:{material},old:{}", STANDARD.encode([7; 32]))).unwrap();
        let dbg = format!("{vault:?} {vault:#?}");
        assert!(dbg.contains("new") && dbg.contains("old"), "{dbg}");
        assert!(!dbg.contains(&material), "{dbg}");
        assert!(!dbg.contains("90, 90"), "no raw key bytes either: {dbg}");
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let (a, b) = (Vault::generate_key(), Vault::generate_key());
        assert_ne!(a, b);
        let (id, material) = a.split_once(':').unwrap();
        assert!(id.starts_with('k') && valid_key_id(id), "{id}");
        assert_eq!(STANDARD.decode(material).unwrap().len(), KEY_LEN);
        let vault = Vault::parse(&format!("{a},{b}")).unwrap();
        assert_eq!(vault.active_key_id(), id);
        let conn = ConnectionId::new();
        let sealed = vault.seal(conn, &creds()).unwrap();
        assert_eq!(vault.open(conn, &sealed).unwrap().len(), 2);
    }

    #[test]
    fn credentials_debug_is_redacted_and_clone_keeps_the_values() {
        let c = creds();
        let dbg = format!("{c:?} {c:#?}");
        assert!(!dbg.contains(SECRET) && !dbg.contains("shop"), "{dbg}");
        assert_eq!(format!("{c:?}"), "Credentials(<redacted: 2 fields>)");
        let one = Credentials::from_json(br#"{"a":1}"#).unwrap();
        assert_eq!(format!("{one:?}"), "Credentials(<redacted: 1 field>)");
        assert_eq!(c.clone().expose(), c.expose());
        assert!(Credentials::new(Map::new()).is_empty());
    }

    #[test]
    fn non_objects_and_bad_json_are_refused_without_echoing_them() {
        for (text, needle) in [
            (format!("\"{SECRET}\""), "found a string"),
            (format!("[\"{SECRET}\"]"), "found an array"),
            ("42".to_owned(), "found a number"),
            (format!("{{\"token\": \"{SECRET}\""), "EOF"),
            (format!("{{\"token\": {SECRET}}}"), "line 1 column"),
            (format!("{{\"token\": \"{SECRET}\"}} trailing"), "trailing"),
        ] {
            let e = Credentials::from_json(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(e.starts_with("credentials must be a JSON object"), "{e}");
            assert!(!e.contains(SECRET) && !e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn wiping_overwrites_every_value() {
        let mut f = Fields(
            serde_json::json!({"t": SECRET, "n": 7, "a": [SECRET, {"x": true}]})
                .as_object()
                .unwrap()
                .clone(),
        );
        f.zeroize();
        assert!(f.0.is_empty());
        let mut v = serde_json::json!([SECRET, 1.5]);
        wipe(&mut v);
        assert_eq!(v, Value::Null);
    }

    /// Autoref specialisation: on a `&Probe<T>` receiver, `IsSerialize` applies (by value) when
    /// `T: Serialize`, else method lookup goes one autoref further to `NotSerialize`.
    struct Probe<T>(std::marker::PhantomData<T>);
    trait IsSerialize {
        fn is_serialize(&self) -> bool {
            true
        }
    }
    impl<T: serde::Serialize> IsSerialize for Probe<T> {}
    trait NotSerialize {
        fn is_serialize(&self) -> bool {
            false
        }
    }
    impl<T> NotSerialize for &Probe<T> {}

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow is the point: both probes on `&Probe<T>`
    fn credentials_cannot_be_serialized_by_accident() {
        assert!((&Probe::<Map<String, Value>>(std::marker::PhantomData)).is_serialize());
        assert!(!(&Probe::<Credentials>(std::marker::PhantomData)).is_serialize());
    }
}
