//! lexoffice webhooks (event subscriptions): verifying `X-Lxo-Signature` and reading the body.
//!
//! lexoffice POSTs `{organizationId, eventType, resourceId, eventDate}` to the callback URL and
//! signs the **raw body** with RSA-SHA512 (PKCS#1 v1.5); the signature comes base64 in the
//! `X-Lxo-Signature` header. Lexware publishes the public key as a PEM `PUBLIC KEY`
//! (SubjectPublicKeyInfo) at [`PUBLISHED_KEY_URL`](super::config::PUBLISHED_KEY_URL).
//!
//! `ring`'s `RSA_PKCS1_2048_8192_SHA512` verifier takes the PKCS#1 `RSAPublicKey` DER, so
//! [`spki_to_pkcs1`] unwraps the SPKI: `SEQUENCE { SEQUENCE { OID rsaEncryption, NULL },
//! BIT STRING { 0x00, RSAPublicKey } }`.
//!
//! **No production key is embedded**: it cannot be fetched offline, and a key copied into the
//! source could silently go stale. Production must configure `webhook_public_key_pem`; the
//! fake signs with its own test-only key ([`super::fake::FAKE_WEBHOOK_PUBLIC_KEY_PEM`]).

use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use ring::signature::{RSA_PKCS1_2048_8192_SHA512, UnparsedPublicKey};

use super::SYSTEM;
use super::wire::{WebhookBody, parse_datetime};
use crate::error::{ConnectorError, Result};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Lxo-Signature";

/// A parsed, verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub organization_id: String,
    /// e.g. `invoice.status.changed`, `credit-note.created`, `token.revoked`.
    pub event_type: String,
    /// The id of the resource to GET (the body carries nothing else).
    pub resource_id: String,
    pub event_date: DateTime<FixedOffset>,
}

/// A webhook signing key, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKey {
    /// PKCS#1 `RSAPublicKey` DER.
    pkcs1: Vec<u8>,
}

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookKey")
            .field("pkcs1_bytes", &self.pkcs1.len())
            .finish()
    }
}

fn refuse(message: impl Into<String>) -> ConnectorError {
    ConnectorError::permanent(SYSTEM, "webhook", message)
}

impl WebhookKey {
    /// Reads a PEM `PUBLIC KEY` (SPKI, as Lexware publishes it) or `RSA PUBLIC KEY` (PKCS#1).
    /// The error says what was wrong with it (as text, to be wrapped by the caller).
    pub fn from_pem(pem: &str) -> std::result::Result<Self, String> {
        let (label, der) = pem_decode(pem)?;
        let pkcs1 = match label.as_str() {
            "PUBLIC KEY" => spki_to_pkcs1(&der)?,
            "RSA PUBLIC KEY" => {
                let (tag, _, rest) = read_tlv(&der)?;
                if tag != TAG_SEQUENCE || !rest.is_empty() {
                    return Err("RSA PUBLIC KEY is not one DER SEQUENCE".into());
                }
                der
            }
            other => {
                return Err(format!(
                    "expected a PEM \"PUBLIC KEY\", got \"{other}\" (never configure a private key)"
                ));
            }
        };
        Ok(Self { pkcs1 })
    }

    /// Verifies the header against the raw body, then parses the body.
    pub fn verify(&self, signature_header: &str, body: &[u8]) -> Result<WebhookEvent> {
        let sig = signature_header.trim();
        if sig.is_empty() {
            return Err(refuse(format!(
                "missing {SIGNATURE_HEADER} signature; the callback is not from lexoffice"
            )));
        }
        let compact: String = sig.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| refuse(format!("{SIGNATURE_HEADER} is not base64: {e}")))?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA512, &self.pkcs1)
            .verify(body, &raw)
            .map_err(|_| {
                refuse(format!(
                    "bad {SIGNATURE_HEADER} signature: RSA-SHA512 does not verify over the \
                     {}-byte body with the configured key (body altered, or another key)",
                    body.len()
                ))
            })?;
        parse_event(body)
    }
}

/// Verifies `X-Lxo-Signature` (base64 RSA-SHA512 PKCS#1 v1.5 over the raw body) against the
/// PEM public key and parses the event. A bad key is `Config`; a missing, malformed or wrong
/// signature and a malformed body are `Permanent`, naming what was wrong.
pub fn verify_webhook(
    public_key_pem: &str,
    signature_header: &str,
    body: &[u8],
) -> Result<WebhookEvent> {
    let key = WebhookKey::from_pem(public_key_pem)
        .map_err(|e| ConnectorError::config(SYSTEM, format!("webhook public key: {e}")))?;
    key.verify(signature_header, body)
}

/// Parses a (verified) webhook body.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent> {
    let b: WebhookBody = serde_json::from_slice(body).map_err(|e| {
        refuse(format!(
            "webhook body is not {{organizationId, eventType, resourceId, eventDate}}: {e}"
        ))
    })?;
    for (name, v) in [
        ("organizationId", &b.organization_id),
        ("eventType", &b.event_type),
        ("resourceId", &b.resource_id),
    ] {
        if v.trim().is_empty() {
            return Err(refuse(format!("webhook body: {name} is blank")));
        }
    }
    let event_date = parse_datetime(&b.event_date).ok_or_else(|| {
        refuse(format!(
            "webhook body: eventDate {:?} is not yyyy-MM-ddTHH:mm:ss.SSSXXX",
            b.event_date
        ))
    })?;
    Ok(WebhookEvent {
        organization_id: b.organization_id,
        event_type: b.event_type,
        resource_id: b.resource_id,
        event_date,
    })
}

/// The label and DER bytes of a single-block PEM.
fn pem_decode(pem: &str) -> std::result::Result<(String, Vec<u8>), String> {
    let text = pem.trim();
    let begin = text
        .find("-----BEGIN ")
        .ok_or("not PEM (no -----BEGIN line)")?;
    let after = &text[begin + "-----BEGIN ".len()..];
    let label_end = after.find("-----").ok_or("not PEM (broken BEGIN line)")?;
    let label = after[..label_end].to_owned();
    let body_and_end = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_and_end
        .find(&end_marker)
        .ok_or_else(|| format!("not PEM (no {end_marker} line)"))?;
    let b64: String = body_and_end[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if b64.is_empty() {
        return Err("PEM block is empty".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((label, der))
}

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_NULL: u8 = 0x05;
const TAG_BIT_STRING: u8 = 0x03;
/// 1.2.840.113549.1.1.1 (rsaEncryption), DER-encoded content.
const OID_RSA_ENCRYPTION: [u8; 9] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// Reads one DER TLV: `(tag, content, rest)`. Only definite lengths (DER), at most 4 length
/// bytes, minimal encoding.
fn read_tlv(input: &[u8]) -> std::result::Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("DER: unexpected end (no tag)")?;
    if tag & 0x1F == 0x1F {
        return Err("DER: multi-byte tags are not expected in a public key".into());
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or("DER: unexpected end (no length)")?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 {
            return Err("DER: indefinite length is not DER".into());
        }
        if n > 4 || rest.len() < n {
            return Err("DER: length field too long or cut off".into());
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        if rest[0] == 0 || len < 0x80 {
            return Err("DER: length is not minimally encoded".into());
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!(
            "DER: content of {len} bytes announced, {} present",
            rest.len()
        ));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Unwraps a SubjectPublicKeyInfo of an RSA key into its PKCS#1 `RSAPublicKey` DER.
pub fn spki_to_pkcs1(spki: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let (tag, outer, trailing) = read_tlv(spki)?;
    if tag != TAG_SEQUENCE {
        return Err("SubjectPublicKeyInfo is not a SEQUENCE".into());
    }
    if !trailing.is_empty() {
        return Err("bytes after the SubjectPublicKeyInfo".into());
    }
    let (tag, algorithm, rest) = read_tlv(outer)?;
    if tag != TAG_SEQUENCE {
        return Err("AlgorithmIdentifier is not a SEQUENCE".into());
    }
    let (tag, oid, params) = read_tlv(algorithm)?;
    if tag != TAG_OID {
        return Err("AlgorithmIdentifier does not start with an OID".into());
    }
    if oid != OID_RSA_ENCRYPTION {
        return Err("the key is not an RSA key (algorithm is not rsaEncryption)".into());
    }
    if !params.is_empty() {
        let (tag, content, after) = read_tlv(params)?;
        if tag != TAG_NULL || !content.is_empty() || !after.is_empty() {
            return Err("rsaEncryption parameters must be NULL".into());
        }
    }
    let (tag, bits, after) = read_tlv(rest)?;
    if tag != TAG_BIT_STRING {
        return Err("subjectPublicKey is not a BIT STRING".into());
    }
    if !after.is_empty() {
        return Err("bytes after the subjectPublicKey".into());
    }
    let (&unused, key) = bits.split_first().ok_or("empty BIT STRING")?;
    if unused != 0 {
        return Err("BIT STRING has unused bits".into());
    }
    let (tag, _, after) = read_tlv(key)?;
    if tag != TAG_SEQUENCE || !after.is_empty() {
        return Err("the BIT STRING does not hold one RSAPublicKey SEQUENCE".into());
    }
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexoffice::fake::{FAKE_WEBHOOK_PUBLIC_KEY_PEM, sign_webhook_body};

    /// Another 2048-bit public key (its private half was discarded): a signature of the fake's
    /// key must not verify with it.
    const OTHER_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtMcn4KpMz/CJz9BT+t9W
c2a6sB/s5HFjq1A/ESkzHahe9Tl7iCJj8UoI9xTK5R6x7iHE+7jWkh8rp8dRC1g6
RuuD/sKyig92llOABXOrA8Ks82qHIhLehzXJyKONvSt6wuk1AzoRL7kcJdYXDOjC
esThkc/sxH+5jeYPNjJOFehr6N7K8ZmaL62HH0sPvgATYKWsPTrTm3XSvZGxD/o4
HhxfkOCwGRRlDHyJ3tybUFxMILquur3lw6QY0kOTZ2s/Y/mN4lDmrsYjQZMO7VMI
0iyfdO7ibhuPKENimC1PU5fPUjJIr4Xj+Nt87LXRSjW9QCsqAL3WJ3tuiEgqyfBr
9wIDAQAB
-----END PUBLIC KEY-----
";

    const BODY: &[u8] = br#"{"organizationId":"aa93e8a8-2aa3-470b-b914-caad8a255dd8","eventType":"invoice.status.changed","resourceId":"b8a3d5c1-0f0e-4f41-9b0a-6f1f2c3d4e5f","eventDate":"2025-01-31T10:15:30.123+01:00"}"#;

    #[test]
    fn the_spki_unwrap_yields_the_rsa_public_key_sequence() {
        let (label, der) = pem_decode(FAKE_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
        assert_eq!(label, "PUBLIC KEY");
        assert_eq!(der.len(), 294);
        let pkcs1 = spki_to_pkcs1(&der).unwrap();
        // SEQUENCE (0x30 0x82 0x01 0x0A) of a 2048-bit modulus and the exponent 65537.
        assert_eq!(&pkcs1[..4], &[0x30, 0x82, 0x01, 0x0A]);
        assert_eq!(pkcs1.len(), 270);
        assert_eq!(&pkcs1[pkcs1.len() - 5..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(&der[der.len() - pkcs1.len()..], &pkcs1[..]);
        // An RSA PUBLIC KEY PEM of the same bytes reads to the same key.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs1);
        let rsa_pem =
            format!("-----BEGIN RSA PUBLIC KEY-----\n{b64}\n-----END RSA PUBLIC KEY-----\n");
        assert_eq!(
            WebhookKey::from_pem(&rsa_pem).unwrap(),
            WebhookKey::from_pem(FAKE_WEBHOOK_PUBLIC_KEY_PEM).unwrap()
        );
    }

    #[test]
    fn malformed_der_is_refused_naming_the_defect() {
        let (_, der) = pem_decode(FAKE_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
        let cut = &der[..der.len() - 10];
        assert!(spki_to_pkcs1(cut).unwrap_err().contains("announced"));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(spki_to_pkcs1(&trailing).unwrap_err().contains("after"));
        let mut not_rsa = der.clone();
        not_rsa[6 + 2 + 8] = 0x0A; // last OID byte: 1.2.840.113549.1.1.10
        assert!(
            spki_to_pkcs1(&not_rsa)
                .unwrap_err()
                .contains("not an RSA key")
        );
        let mut unused_bits = der.clone();
        unused_bits[19 + 4] = 1;
        assert!(
            spki_to_pkcs1(&unused_bits)
                .unwrap_err()
                .contains("unused bits")
        );
        assert!(read_tlv(&[0x30, 0x80]).unwrap_err().contains("indefinite"));
        assert!(
            read_tlv(&[0x30, 0x81, 0x05])
                .unwrap_err()
                .contains("minimally")
        );
        assert!(read_tlv(&[]).is_err());
        assert!(
            WebhookKey::from_pem("hello")
                .unwrap_err()
                .contains("not PEM")
        );
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(
            WebhookKey::from_pem(private)
                .unwrap_err()
                .contains("private")
        );
    }

    #[test]
    fn a_good_signature_verifies_and_the_event_is_parsed() {
        let sig = sign_webhook_body(BODY);
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sig, BODY).unwrap();
        assert_eq!(e.event_type, "invoice.status.changed");
        assert_eq!(e.resource_id, "b8a3d5c1-0f0e-4f41-9b0a-6f1f2c3d4e5f");
        assert_eq!(e.organization_id, "aa93e8a8-2aa3-470b-b914-caad8a255dd8");
        assert_eq!(e.event_date.to_rfc3339(), "2025-01-31T10:15:30.123+01:00");
        // Line-wrapped base64 (some proxies fold headers) still verifies.
        let folded = format!("{}\n {}", &sig[..100], &sig[100..]);
        verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &folded, BODY).unwrap();
    }

    #[test]
    fn bad_missing_or_tampered_signatures_are_refused_with_the_reason() {
        let sig = sign_webhook_body(BODY);
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, "", BODY).unwrap_err();
        assert!(e.to_string().contains("missing X-Lxo-Signature"), "{e}");
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, "%%%", BODY).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        let tampered = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("status.changed", "created");
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sig, tampered.as_bytes()).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Permanent);
        assert!(e.to_string().contains("bad X-Lxo-Signature"), "{e}");
        let e = verify_webhook(OTHER_PUBLIC_KEY_PEM, &sig, BODY).unwrap_err();
        assert!(e.to_string().contains("bad X-Lxo-Signature"), "{e}");
        let mut flipped = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        flipped[10] ^= 1;
        let flipped = base64::engine::general_purpose::STANDARD.encode(flipped);
        assert!(verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &flipped, BODY).is_err());
        let e = verify_webhook("garbage", &sig, BODY).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Config, "{e}");
    }

    #[test]
    fn signed_but_malformed_bodies_are_refused_naming_the_field() {
        let body = br#"{"organizationId":"o","eventType":"invoice.created","resourceId":"r","eventDate":"2025-01-31T10:15:30+01:00"}"#;
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sign_webhook_body(body), body)
            .unwrap_err();
        assert!(e.to_string().contains("eventDate"), "{e}");
        let body = br#"{"organizationId":"o","eventType":"invoice.created"}"#;
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sign_webhook_body(body), body)
            .unwrap_err();
        assert!(e.to_string().contains("resourceId"), "{e}");
        let body = br#"{"organizationId":" ","eventType":"x","resourceId":"r","eventDate":"2025-01-31T10:15:30.000Z"}"#;
        let e = verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sign_webhook_body(body), body)
            .unwrap_err();
        assert!(e.to_string().contains("organizationId is blank"), "{e}");
    }
}
