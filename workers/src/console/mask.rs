//! Personal data as the console shows it: masked. Support needs to recognise an order, never to
//! read a buyer's address; the full data stays in Postgres (and goes out only through the
//! controller's export, `megzo gdpr export`).

use serde_json::Value;

/// The fields of a `canonical::Contact` that hold personal data (everything but the country).
const CONTACT_FIELDS: [&str; 10] = [
    "name",
    "company",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "tax_id",
];

/// A pulled order (canonical JSON) with its contacts masked: initials for names, the first
/// letter and domain's first letter of an e-mail, the last two digits of a phone, `•••` for the
/// rest. Lines, amounts and ids stay as they are.
pub fn order(order_json: &Value) -> Value {
    let mut v = order_json.clone();
    if let Some(obj) = v.as_object_mut() {
        for key in ["customer", "ship_to", "billing", "buyer"] {
            if let Some(Value::Object(contact)) = obj.get_mut(key) {
                for field in CONTACT_FIELDS {
                    if let Some(Value::String(s)) = contact.get_mut(field) {
                        *s = mask_field(field, s);
                    }
                }
            }
        }
    }
    v
}

fn mask_field(field: &str, s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    match field {
        "name" | "company" => s
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .map(|c| format!("{c}."))
            .collect::<Vec<_>>()
            .join(" "),
        "email" => email(s),
        "phone" => {
            let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
            let tail: String = digits[digits.len().saturating_sub(2)..].iter().collect();
            format!("•••{tail}")
        }
        _ => "•••".to_owned(),
    }
}

fn email(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => format!(
            "{}•••@{}•••",
            local.chars().next().unwrap_or('•'),
            domain.chars().next().unwrap_or('•')
        ),
        None => "•••".to_owned(),
    }
}

/// Free text (an error chain, the evidence of an order in review) with what looks like personal
/// data masked: e-mail addresses, and runs of 7 or more digits (phones; order and document ids
/// are shorter or carry letters).
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive(|c: char| c.is_whitespace()) {
        let trimmed = word.trim_end();
        let rest = &word[trimmed.len()..];
        let core = trimmed.trim_matches(|c: char| "\"'()[]{},;<>".contains(c));
        if core.contains('@') && core.contains('.') {
            out.push_str(&trimmed.replace(core, &email(core)));
        } else {
            out.push_str(&digits_masked(trimmed));
        }
        out.push_str(rest);
    }
    out
}

/// Masks every run of 7 or more digits (spaces, dashes and a leading + inside the run count
/// as part of it) but its last two digits.
fn digits_masked(word: &str) -> String {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let only_phone_chars = word
        .chars()
        .all(|c| c.is_ascii_digit() || "+-().".contains(c));
    if digits >= 7 && only_phone_chars {
        let tail: String = word
            .chars()
            .filter(char::is_ascii_digit)
            .skip(digits - 2)
            .collect();
        format!("•••{tail}")
    } else {
        word.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_order_keeps_its_business_data_and_loses_the_buyers() {
        let o = json!({
            "id": "CEL-1", "total_gross": "99.90",
            "customer": {"name": "Ziggy Personaldata", "email": "ziggy.pd@example.test",
                         "phone": "+40 799 123 456", "address_line1": "Strada Lunga 7",
                         "city": "Cluj", "postal_code": "400001", "country": "RO"},
            "ship_to": {"name": "Ziggy Personaldata", "address_line1": "Strada Lunga 7",
                        "city": "Cluj", "postal_code": "400001", "country": "RO"},
            "lines": [{"sku": "MGZ-MUG-01", "quantity": 1}]
        });
        let m = order(&o);
        let shown = m.to_string();
        for secret in [
            "Ziggy",
            "Personaldata",
            "ziggy.pd",
            "799 123",
            "Lunga",
            "Cluj",
            "400001",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert_eq!(m["customer"]["name"], "Z. P.");
        assert_eq!(m["customer"]["email"], "z•••@e•••");
        assert_eq!(m["customer"]["phone"], "•••56");
        assert_eq!(m["customer"]["country"], "RO");
        assert_eq!(m["id"], "CEL-1");
        assert_eq!(m["total_gross"], "99.90");
        assert_eq!(m["lines"][0]["sku"], "MGZ-MUG-01");
    }

    #[test]
    fn free_text_loses_e_mails_and_phone_numbers_but_keeps_ids() {
        let t = text(
            "SmartBill refused PRO-0042 for order 12345: client ziggy.pd@example.test, tel +40799123456.",
        );
        assert!(!t.contains("ziggy"), "{t}");
        assert!(!t.contains("40799123"), "{t}");
        assert!(t.contains("PRO-0042") && t.contains("12345"), "{t}");
    }
}
