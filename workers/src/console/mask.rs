//! Personal data as the console shows it: masked. Support needs to recognise an order, never to
//! read a buyer's address; the full data stays in Postgres (and goes out only through the
//! controller's export, `megzo gdpr export`).

use serde_json::Value;

// The fields of a `canonical::Contact` that hold personal data (everything but the country),
// the same list the GDPR purge erases.
use crate::gdpr::CONTACT_TEXT_FIELDS as CONTACT_FIELDS;

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
/// data masked: e-mail addresses, and phone numbers: runs of digits, spaces and `+ - ( ) .`
/// holding 9 or more digits (order, document and AWB ids are shorter or carry letters; an ISO
/// date is left alone). Best effort: the connectors keep personal data out of their errors, this
/// is the second line.
pub fn text(s: &str) -> String {
    let mut words = String::with_capacity(s.len());
    for word in s.split_inclusive(char::is_whitespace) {
        let trimmed = word.trim_end();
        let rest = &word[trimmed.len()..];
        let core = trimmed.trim_matches(|c: char| "\"'()[]{},;<>".contains(c));
        if core.contains('@') && core.contains('.') {
            words.push_str(&trimmed.replace(core, &email(core)));
        } else {
            words.push_str(trimmed);
        }
        words.push_str(rest);
    }
    phones_masked(&words)
}

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || " +-().".contains(c)
}

/// Masks every phone-like run but its last two digits.
fn phones_masked(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        // A run starts at a digit, `+` or `(` that does not continue a word (`PRO-0042`).
        let starts = (chars[i].is_ascii_digit() || chars[i] == '+' || chars[i] == '(')
            && (i == 0 || !chars[i - 1].is_alphanumeric());
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && is_phone_char(chars[j]) {
            j += 1;
        }
        // Trailing separators are not part of the number; a run glued to a letter is an id.
        while j > i && !chars[j - 1].is_ascii_digit() {
            j -= 1;
        }
        let run: String = chars[i..j].iter().collect();
        let glued = j < chars.len() && chars[j].is_alphanumeric();
        let digits: Vec<char> = run.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 9 && !glued && !starts_with_date(&run) {
            out.push_str("•••");
            out.extend(&digits[digits.len() - 2..]);
        } else {
            out.push_str(&run);
        }
        if j == i {
            out.push(chars[i]);
            j += 1;
        }
        i = j;
    }
    out
}

/// `YYYY-MM-DD` at the start (a date, maybe followed by a time).
fn starts_with_date(run: &str) -> bool {
    let b = run.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
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
    fn phone_numbers_with_spaces_are_masked_and_dates_and_ids_are_not() {
        let t = text(
            "buyer +40 799 123 456, alt (0722) 111-222 on 2026-11-22 10:00 for order 1234567, AWB 1234567890X",
        );
        assert!(!t.contains("799 123"), "{t}");
        assert!(!t.contains("0722) 111"), "{t}");
        assert!(t.contains("•••56") && t.contains("•••22"), "{t}");
        assert!(t.contains("2026-11-22 10:00"), "{t}");
        assert!(t.contains("1234567,"), "{t}");
        assert!(t.contains("1234567890X"), "{t}");
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
