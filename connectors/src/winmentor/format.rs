//! The text formats of the exchange: WinMENTOR's INI-like import packages (and our result
//! files, same syntax), the `;`-separated export files, dates `dd.mm.yyyy`, the configured
//! encoding and decimal separator.
//!
//! - **Encoding**: [`Codec::encode`] / [`Codec::decode`]. Windows-1250 has no `ș`/`ț` (comma
//!   below), so they are written as `ş`/`ţ` (cedilla) and read back as `ș`/`ț`; any other
//!   character the code page lacks becomes `?` (never an HTML character reference, which would
//!   put a `;` in an item line). UTF-8 is written without BOM; a BOM is skipped when reading.
//!   Cedilla forms are normalized to comma-below in both encodings (Romanian text).
//! - **Numbers**: plain decimals with the configured separator and no thousands separator;
//!   reading refuses the other separator (a misconfigured side shows at once instead of
//!   turning `1.500` into 1.5 or 1500).
//! - **Packages**: `[Section]` lines and `Key=Value` lines (split at the first `=`, keys
//!   compared case-insensitively, values may contain `;` and `=`), `;` comment lines, CRLF
//!   written, CRLF or LF read.
//! - **Exports**: a header `#EXPORT;<function>;<company>;<RFC 3339 time>;<rows>` then one
//!   `;`-separated row per line, with exactly the function's field count.

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;

use super::config::{DecimalSeparator, FileEncoding};

/// Encoding and decimal separator of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub encoding: FileEncoding,
    pub decimal: DecimalSeparator,
}

impl Codec {
    pub const fn new(encoding: FileEncoding, decimal: DecimalSeparator) -> Self {
        Self { encoding, decimal }
    }

    /// The bytes of `text` in the configured encoding.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        match self.encoding {
            FileEncoding::Utf8 => text.as_bytes().to_vec(),
            FileEncoding::Windows1250 => {
                let mut out = Vec::with_capacity(text.len());
                let mut buf = [0u8; 4];
                for c in text.chars() {
                    let c = to_cedilla(c);
                    if c.is_ascii() {
                        out.push(c as u8);
                        continue;
                    }
                    let (bytes, _, had_errors) =
                        encoding_rs::WINDOWS_1250.encode(c.encode_utf8(&mut buf));
                    if had_errors {
                        out.push(b'?');
                    } else {
                        out.extend_from_slice(&bytes);
                    }
                }
                out
            }
        }
    }

    /// The text of `bytes`; the error says where the bytes are not in the encoding.
    pub fn decode(&self, bytes: &[u8]) -> Result<String, String> {
        let text = match self.encoding {
            FileEncoding::Utf8 => {
                let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                match std::str::from_utf8(bytes) {
                    Ok(s) => s.to_owned(),
                    Err(e) => {
                        return Err(format!(
                            "not valid UTF-8 at byte {} (is the file Windows-1250? check \
                             `encoding`)",
                            e.valid_up_to()
                        ));
                    }
                }
            }
            FileEncoding::Windows1250 => {
                let (text, _) = encoding_rs::WINDOWS_1250.decode_without_bom_handling(bytes);
                text.into_owned()
            }
        };
        Ok(text.chars().map(to_comma_below).collect())
    }

    /// `d` with the configured separator, without trailing zeros or exponent.
    pub fn fmt_decimal(&self, d: Decimal) -> String {
        let s = d.normalize().to_string();
        match self.decimal {
            DecimalSeparator::Dot => s,
            DecimalSeparator::Comma => s.replace('.', ","),
        }
    }

    /// Reads a decimal written with the configured separator.
    pub fn parse_decimal(&self, s: &str) -> Result<Decimal, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty number".into());
        }
        let sep = self.decimal.as_char();
        let other = if sep == '.' { ',' } else { '.' };
        if t.contains(other) {
            return Err(format!(
                "{t:?} uses {other:?}, but the decimal separator is {sep:?} (check \
                 `decimal_separator`)"
            ));
        }
        if !t
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == sep || (i == 0 && c == '-'))
        {
            return Err(format!("{t:?} is not a number"));
        }
        t.replace(sep, ".")
            .parse::<Decimal>()
            .map_err(|_| format!("{t:?} is not a number"))
    }
}

fn to_cedilla(c: char) -> char {
    match c {
        'ș' => 'ş',
        'Ș' => 'Ş',
        'ț' => 'ţ',
        'Ț' => 'Ţ',
        c => c,
    }
}

fn to_comma_below(c: char) -> char {
    match c {
        'ş' => 'ș',
        'Ş' => 'Ș',
        'ţ' => 'ț',
        'Ţ' => 'Ț',
        c => c,
    }
}

/// `dd.mm.yyyy`.
pub fn fmt_date(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// Reads exactly `dd.mm.yyyy`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let b = t.as_bytes();
    let shape = b.len() == 10
        && b[2] == b'.'
        && b[5] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit());
    if !shape {
        return Err(format!("date {t:?} is not dd.mm.yyyy"));
    }
    NaiveDate::parse_from_str(t, "%d.%m.%Y").map_err(|_| format!("date {t:?} does not exist"))
}

/// A field of a `;` line or an INI value: no line breaks or control characters, and (for `;`
/// lines) no `;`, which would shift the fields.
pub fn clean_field(s: &str) -> String {
    clean_value(s).replace(';', ",")
}

/// An INI value: control characters (line breaks) become spaces; trimmed.
pub fn clean_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Splits a `;` line into its fields (trimmed).
pub fn split_fields(line: &str) -> Vec<String> {
    line.split(';').map(|f| f.trim().to_owned()).collect()
}

/// One `[Section]` of a package with its `Key=Value` entries in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

impl Section {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            entries: Vec::new(),
        }
    }

    /// Appends `key=value` (the value cleaned of line breaks).
    pub fn set(&mut self, key: &str, value: impl AsRef<str>) -> &mut Self {
        self.entries
            .push((key.to_owned(), clean_value(value.as_ref())));
        self
    }

    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// An INI-like package (or result file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    pub sections: Vec<Section>,
}

impl Package {
    pub fn push(&mut self, section: Section) {
        self.sections.push(section);
    }

    /// The section named `name` (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The text, CRLF line ends.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            out.push('[');
            out.push_str(&s.name);
            out.push_str("]\r\n");
            for (k, v) in &s.entries {
                out.push_str(k);
                out.push('=');
                out.push_str(v);
                out.push_str("\r\n");
            }
        }
        out
    }

    /// Reads a package; the error names the line (1-based) and the problem.
    pub fn parse(text: &str) -> Result<Package, (usize, String)> {
        let mut p = Package::default();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err((n, format!("section header {line:?} lacks `]`")));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err((n, "empty section name".into()));
                }
                p.sections.push(Section::new(name));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err((
                    n,
                    format!("{line:?} is neither `[Section]` nor `Key=Value`"),
                ));
            };
            let Some(section) = p.sections.last_mut() else {
                return Err((n, format!("{:?} comes before any [Section]", k.trim())));
            };
            section
                .entries
                .push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Ok(p)
    }
}

/// The header of an export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHeader {
    /// The DocImpServer function whose lines the file holds (`GetStocArticole`).
    pub function: String,
    pub company: String,
    pub generated: DateTime<FixedOffset>,
    pub rows: usize,
}

/// One data row of an export, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Writes an export: header then rows (each row's fields cleaned of `;` and line breaks).
pub fn write_export(
    function: &str,
    company: &str,
    generated: DateTime<FixedOffset>,
    rows: &[Vec<String>],
) -> String {
    let mut out = format!(
        "#EXPORT;{function};{};{};{}\r\n",
        clean_field(company),
        generated.to_rfc3339(),
        rows.len()
    );
    for r in rows {
        let fields: Vec<String> = r.iter().map(|f| clean_field(f)).collect();
        out.push_str(&fields.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// Reads an export of `function` whose rows have exactly `fields` fields. The error names the
/// line (1-based) and the problem.
pub fn parse_export(
    text: &str,
    function: &str,
    fields: usize,
) -> Result<(ExportHeader, Vec<ExportRow>), (usize, String)> {
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            None => return Err((1, "empty file: no `#EXPORT;…` header".into())),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((i, l)) => break (i + 1, l.trim()),
        }
    };
    let (hn, h) = header;
    let parts = split_fields(h);
    if parts.len() != 5 || parts[0] != "#EXPORT" {
        return Err((
            hn,
            format!("header {h:?} is not `#EXPORT;<function>;<company>;<time>;<rows>`"),
        ));
    }
    if parts[1] != function {
        return Err((
            hn,
            format!("header names {:?}, expected {function:?}", parts[1]),
        ));
    }
    let generated = DateTime::parse_from_rfc3339(&parts[3])
        .map_err(|_| (hn, format!("header time {:?} is not RFC 3339", parts[3])))?;
    let rows_declared: usize = parts[4].parse().map_err(|_| {
        (
            hn,
            format!("header row count {:?} is not a number", parts[4]),
        )
    })?;
    let mut rows = Vec::new();
    for (i, l) in lines {
        let n = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let f = split_fields(l);
        if f.len() != fields {
            return Err((
                n,
                format!("{} fields separated by `;`, expected {fields}", f.len()),
            ));
        }
        rows.push(ExportRow { line: n, fields: f });
    }
    if rows.len() != rows_declared {
        return Err((
            hn,
            format!(
                "header announces {rows_declared} rows, the file has {} (truncated or \
                 mis-written export)",
                rows.len()
            ),
        ));
    }
    Ok((
        ExportHeader {
            function: parts[1].clone(),
            company: parts[2].clone(),
            generated,
            rows: rows_declared,
        },
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    const DIACRITICS: &str = "Cană roșie ĂÂÎȘȚ ăâîșț";

    fn codecs() -> [Codec; 4] {
        [
            Codec::new(FileEncoding::Utf8, DecimalSeparator::Dot),
            Codec::new(FileEncoding::Utf8, DecimalSeparator::Comma),
            Codec::new(FileEncoding::Windows1250, DecimalSeparator::Dot),
            Codec::new(FileEncoding::Windows1250, DecimalSeparator::Comma),
        ]
    }

    #[test]
    fn diacritics_round_trip_in_both_encodings() {
        for c in codecs() {
            let bytes = c.encode(DIACRITICS);
            assert_eq!(c.decode(&bytes).unwrap(), DIACRITICS, "{c:?}");
        }
        let w = Codec::new(FileEncoding::Windows1250, DecimalSeparator::Comma);
        // ă = 0xE3, ș → ş = 0xBA, ț → ţ = 0xFE in Windows-1250.
        assert_eq!(w.encode("ășț"), vec![0xE3, 0xBA, 0xFE]);
        // Characters the code page lacks become `?`, never `&#…;`.
        assert_eq!(w.encode("a€b✓c"), b"a\x80b?c".to_vec());
        let u = Codec::new(FileEncoding::Utf8, DecimalSeparator::Comma);
        assert_eq!(u.encode("ș"), "ș".as_bytes());
        assert_eq!(u.decode("\u{feff}ş".as_bytes()).unwrap(), "ș");
        let e = u.decode(&w.encode("roșie")).unwrap_err();
        assert!(e.contains("byte 2") && e.contains("encoding"), "{e}");
    }

    #[test]
    fn decimals_use_the_configured_separator_only() {
        let dot = Codec::new(FileEncoding::Utf8, DecimalSeparator::Dot);
        let comma = Codec::new(FileEncoding::Utf8, DecimalSeparator::Comma);
        assert_eq!(dot.fmt_decimal(dec!(12.50)), "12.5");
        assert_eq!(comma.fmt_decimal(dec!(12.50)), "12,5");
        assert_eq!(comma.fmt_decimal(dec!(3)), "3");
        assert_eq!(comma.fmt_decimal(dec!(-0.25)), "-0,25");
        assert_eq!(comma.parse_decimal(" 4,9842 ").unwrap(), dec!(4.9842));
        assert_eq!(dot.parse_decimal("1.5").unwrap(), dec!(1.5));
        assert_eq!(dot.parse_decimal("-7").unwrap(), dec!(-7));
        let e = comma.parse_decimal("1.500").unwrap_err();
        assert!(e.contains("decimal_separator"), "{e}");
        assert!(dot.parse_decimal("1,5").is_err());
        assert!(dot.parse_decimal("").is_err());
        assert!(dot.parse_decimal("1e5").is_err());
        assert!(dot.parse_decimal("12 000").is_err());
        for c in codecs() {
            for d in [dec!(0), dec!(59.5), dec!(1234.5678), dec!(-3.1)] {
                assert_eq!(c.parse_decimal(&c.fmt_decimal(d)).unwrap(), d, "{c:?}");
            }
        }
    }

    #[test]
    fn dates_are_exactly_dd_mm_yyyy() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        assert_eq!(fmt_date(d), "31.01.2025");
        assert_eq!(parse_date("31.01.2025").unwrap(), d);
        assert!(parse_date("2025-01-31").unwrap_err().contains("dd.mm.yyyy"));
        assert!(parse_date("1.1.2025").is_err());
        assert!(
            parse_date("31.02.2025")
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn packages_round_trip_through_every_codec() {
        let mut p = Package::default();
        let mut info = Section::new("InfoPachet");
        info.set("AnLucru", "2025").set("Tipdocument", "COMANDA");
        p.push(info);
        let mut items = Section::new("Items_1");
        items.set("Item_1", "ABC-1;buc;2;10,5;0;31.01.2025;Cană roșie");
        items.set("Observatii", "line\r\nbreak=kept");
        p.push(items);
        for c in codecs() {
            let text = c.decode(&c.encode(&p.to_text())).unwrap();
            let back = Package::parse(&text).unwrap();
            assert_eq!(back, p, "{c:?}");
        }
        let back = Package::parse(&p.to_text()).unwrap();
        let items = back.section("items_1").unwrap();
        assert_eq!(items.get("observatii"), Some("line  break=kept"));
        assert_eq!(
            split_fields(items.get("Item_1").unwrap())[6],
            "Cană roșie".to_owned()
        );
        assert_eq!(
            Package::parse("Key=1\n").unwrap_err().1,
            "\"Key\" comes before any [Section]"
        );
        assert_eq!(Package::parse("[A]\n\nnot a pair\n").unwrap_err().0, 3);
        assert_eq!(clean_field("a;b\nc"), "a,b c");
    }

    #[test]
    fn exports_check_header_field_count_and_row_count() {
        let at = DateTime::parse_from_rfc3339("2025-01-31T14:03:22+02:00").unwrap();
        let rows = vec![
            vec!["A1".into(), "Cană; mare".into(), "3,5".into()],
            vec!["A2".into(), "Ceașcă".into(), "0".into()],
        ];
        let text = write_export("GetStocArticole", "Firma SRL", at, &rows);
        assert!(
            text.starts_with("#EXPORT;GetStocArticole;Firma SRL;2025-01-31T14:03:22+02:00;2\r\n")
        );
        let (h, r) = parse_export(&text, "GetStocArticole", 3).unwrap();
        assert_eq!(h.generated, at);
        assert_eq!(h.company, "Firma SRL");
        assert_eq!(r[0].fields[1], "Cană, mare");
        assert_eq!(r[1].line, 3);
        let e = parse_export(&text, "GetNomenclatorArticole", 3).unwrap_err();
        assert!(e.1.contains("expected \"GetNomenclatorArticole\""), "{e:?}");
        let bad = text.replace("A2;Ceașcă;0", "A2;Ceașcă");
        assert_eq!(
            parse_export(&bad, "GetStocArticole", 3).unwrap_err(),
            (3, "2 fields separated by `;`, expected 3".into())
        );
        let short = text.replace(";2\r\n", ";5\r\n");
        assert!(
            parse_export(&short, "GetStocArticole", 3)
                .unwrap_err()
                .1
                .contains("announces 5 rows")
        );
        assert!(parse_export("", "GetStocArticole", 3).is_err());
        assert!(
            parse_export("A1;x;1\r\n", "GetStocArticole", 3)
                .unwrap_err()
                .1
                .contains("header")
        );
    }
}
