//! SOAP 1.1/1.2 for Charisma: building envelopes with the `IdentificationMessage` header
//! (namespace `totalsoft.charisma.commonMessages`, carrying `ApplicationId`), reading answers
//! as a stream of flat records, and reading `soap:Fault`s.
//!
//! Answers are read **streaming** ([`scan`]): the reader walks the XML once and hands each
//! *record* to a callback as soon as it closes, so the whole nomenclature of `GetItem` (no
//! paging is known) is never held as a tree. A record is the innermost element that has a
//! direct child named by the caller's key field (`ItemId` for items, `CityId` for cities,
//! `PartnerId`, `OrderId`): this finds `ItemList` entries whether the installation wraps them
//! in a `…Result` element or not. A record's fields are its leaf descendants, flattened by
//! path (`DeliveryAddressList.PartnerAddressId`), the first value of a repeated field kept.
//!
//! [`parse`] builds a small tree with namespaces, used by the fake to read requests.

use std::collections::HashMap;
use std::fmt::Write as _;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesRef, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::{NsReader, Reader};
use serde::{Deserialize, Serialize};

/// The namespace of the `IdentificationMessage` header [3P C1].
pub const IDENTIFICATION_NS: &str = "totalsoft.charisma.commonMessages";
/// SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Prefix of the one-line message [`error_body`] makes of a fault, read back by the client to
/// classify it (the shared HTTP layer only carries a message).
pub const FAULT_MARK: &str = "SOAP fault ";

/// The SOAP version the installation speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SoapVersion {
    /// `text/xml` with a `SOAPAction` header; faults come as HTTP 500 (default, as C1's PHP
    /// `SoapClient` used).
    #[default]
    #[serde(rename = "1.1")]
    V11,
    /// `application/soap+xml; action="…"`; sender faults as HTTP 400, receiver faults 500.
    #[serde(rename = "1.2")]
    V12,
}

impl SoapVersion {
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    /// The `Content-Type` of a request carrying `action`.
    pub fn content_type(self, action: &str) -> String {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8".to_owned(),
            SoapVersion::V12 if action.is_empty() => "application/soap+xml; charset=utf-8".into(),
            SoapVersion::V12 => format!(
                "application/soap+xml; charset=utf-8; action=\"{}\"",
                action.replace('"', "")
            ),
        }
    }
}

/// An element of a request body: a leaf with text or a node with children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum El {
    Leaf(String, String),
    Node(String, Vec<El>),
}

impl El {
    pub fn leaf(name: &str, text: impl Into<String>) -> Self {
        El::Leaf(name.to_owned(), text.into())
    }

    pub fn node(name: &str, children: Vec<El>) -> Self {
        El::Node(name.to_owned(), children)
    }

    /// The element as XML text (no declaration, no namespaces).
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, out: &mut String) {
        match self {
            El::Leaf(n, t) => {
                let _ = write!(out, "<{n}>{}</{n}>", escape(clean(t)));
            }
            El::Node(n, c) => {
                let _ = write!(out, "<{n}>");
                for e in c {
                    e.write(out);
                }
                let _ = write!(out, "</{n}>");
            }
        }
    }
}

/// Drops the control characters XML 1.0 cannot carry (a customer's name with a stray `\u{1}`
/// would otherwise make the whole envelope unreadable).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// The request envelope: the `IdentificationMessage` header with `ApplicationId` (qualified in
/// the header's namespace), then `<operation xmlns="service_ns">children</operation>` as the
/// only body element (document/literal, wrapped).
pub fn envelope(
    version: SoapVersion,
    service_ns: &str,
    application_id: &str,
    operation: &str,
    children: &[El],
) -> String {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{}\" \
         xmlns:cm=\"{IDENTIFICATION_NS}\"><soap:Header><cm:IdentificationMessage>\
         <cm:ApplicationId>{}</cm:ApplicationId></cm:IdentificationMessage></soap:Header>\
         <soap:Body><{operation} xmlns=\"{}\">",
        version.envelope_ns(),
        escape(clean(application_id)),
        escape(service_ns),
    );
    for c in children {
        c.write(&mut out);
    }
    let _ = write!(out, "</{operation}></soap:Body></soap:Envelope>");
    out
}

/// A fault envelope in `version` (used by the fake; the client only reads them).
pub fn fault_envelope(
    version: SoapVersion,
    client_fault: bool,
    text: &str,
    detail: &[El],
) -> String {
    let mut d = String::new();
    for e in detail {
        e.write(&mut d);
    }
    match version {
        SoapVersion::V11 => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP11_NS}\">\
             <soap:Body><soap:Fault><faultcode>soap:{}</faultcode><faultstring>{}</faultstring>\
             {}</soap:Fault></soap:Body></soap:Envelope>",
            if client_fault { "Client" } else { "Server" },
            escape(clean(text)),
            if d.is_empty() {
                String::new()
            } else {
                format!("<detail>{d}</detail>")
            },
        ),
        SoapVersion::V12 => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP12_NS}\">\
             <soap:Body><soap:Fault><soap:Code><soap:Value>soap:{}</soap:Value></soap:Code>\
             <soap:Reason><soap:Text xml:lang=\"en\">{}</soap:Text></soap:Reason>{}\
             </soap:Fault></soap:Body></soap:Envelope>",
            if client_fault { "Sender" } else { "Receiver" },
            escape(clean(text)),
            if d.is_empty() {
                String::new()
            } else {
                format!("<soap:Detail>{d}</soap:Detail>")
            },
        ),
    }
}

/// A SOAP fault, either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The code's local part: `Client`/`Server` (1.1), `Sender`/`Receiver` (1.2), possibly
    /// with a `.Sub` suffix.
    pub code: String,
    /// `faultstring` (1.1) or `Reason/Text` (1.2).
    pub text: String,
    /// The detail's leaves as `path=value`, joined with `; `.
    pub detail: Option<String>,
    /// An `OrderId` inside the detail (the duplicate-`ExternalId` fault names the order).
    pub order_id: Option<String>,
}

impl Fault {
    fn from_fields(f: &Fields) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let code = f
            .get("faultcode")
            .or_else(|| f.get("Code.Value"))
            .cloned()
            .unwrap_or_default();
        let code = code.rsplit(':').next().unwrap_or_default().to_owned();
        let text = match get("faultstring") {
            s if !s.is_empty() => s,
            _ => get("Reason.Text"),
        };
        let mut detail: Vec<(&String, &String)> = f
            .iter()
            .filter(|(k, _)| k.starts_with("detail.") || k.starts_with("Detail."))
            .collect();
        detail.sort();
        let order_id = detail
            .iter()
            .find(|(k, _)| k.ends_with(".OrderId"))
            .map(|(_, v)| (*v).clone());
        let detail = (!detail.is_empty()).then(|| {
            detail
                .iter()
                .map(|(k, v)| format!("{}={v}", k.split_once('.').map_or(k.as_str(), |x| x.1)))
                .collect::<Vec<_>>()
                .join("; ")
        });
        Fault {
            code,
            text,
            detail,
            order_id,
        }
    }

    /// A fault the caller caused (`Client`, `Sender`): the request was refused, nothing done.
    pub fn is_client(&self) -> bool {
        self.code.starts_with("Client") || self.code.starts_with("Sender")
    }

    /// The installation refused the `ApplicationId`.
    pub fn is_auth(&self) -> bool {
        self.is_client() && self.text.to_ascii_lowercase().contains("applicationid")
    }

    /// One line: `SOAP fault <code>: <text> [<detail>]`, read back by [`parse_fault_message`].
    pub fn message(&self) -> String {
        let mut m = format!("{FAULT_MARK}{}: {}", self.code, self.text);
        if let Some(d) = &self.detail {
            let _ = write!(m, " [{d}]");
        }
        m
    }
}

/// Reads a [`Fault::message`] line back into `(code, rest)`.
pub fn parse_fault_message(m: &str) -> Option<(&str, &str)> {
    m.strip_prefix(FAULT_MARK)?.split_once(": ")
}

/// The shared HTTP layer's error-body reader: a fault envelope becomes its one-line message,
/// anything else `None` (the layer then shows the body's start).
pub fn error_body(body: &[u8]) -> Option<String> {
    scan(body, None, |_| {}).ok()?.fault.map(|f| f.message())
}

/// Flattened fields of a record (first value of a repeated path wins).
pub type Fields = HashMap<String, String>;

/// What [`scan`] saw besides the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// A `Fault` directly under `Body`.
    pub fault: Option<Fault>,
    /// The local name of the first element inside `Body` (e.g. `GetItemResponse`).
    pub body_element: Option<String>,
    /// Records handed to the callback.
    pub records: usize,
}

struct Frame {
    name: String,
    text: String,
    fields: Fields,
    has_children: bool,
    in_fault: bool,
}

/// Walks a SOAP envelope once, calling `on_record` for each record whose direct children
/// include `key` (none when `key` is `None`). Fails, naming the problem, when the body is not
/// XML or not a SOAP envelope with a `Body`.
pub fn scan(
    body: &[u8],
    key: Option<&str>,
    mut on_record: impl FnMut(Fields),
) -> Result<Scanned, String> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<String> = None;
    let mut out = Scanned {
        fault: None,
        body_element: None,
        records: 0,
    };
    let mut saw_body = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("not XML: {e}"))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if stack.is_empty() {
                    if root.is_some() {
                        return Err("more than one root element".into());
                    }
                    if name != "Envelope" {
                        return Err(format!("not a SOAP envelope (root element <{name}>)"));
                    }
                    root = Some(name.clone());
                }
                if stack.len() == 1 && name == "Body" {
                    saw_body = true;
                }
                if stack.len() == 2 && stack[1].name == "Body" && out.body_element.is_none() {
                    out.body_element = Some(name.clone());
                }
                let in_fault = stack.last().is_some_and(|f| f.in_fault) || name == "Fault";
                if let Some(top) = stack.last_mut() {
                    top.has_children = true;
                }
                stack.push(Frame {
                    name,
                    text: String::new(),
                    fields: Fields::new(),
                    has_children: false,
                    in_fault,
                });
                if matches!(ev, Event::Empty(_)) {
                    close(&mut stack, key, &mut out, &mut on_record);
                }
            }
            Event::End(_) => close(&mut stack, key, &mut out, &mut on_record),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.xml_content().map_err(|e| format!("bad text: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolve_ref(&r)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(format!(
            "the XML ends inside <{}>",
            stack[stack.len() - 1].name
        ));
    }
    if root.is_none() {
        return Err("empty body".into());
    }
    if !saw_body {
        return Err("a SOAP envelope without a Body".into());
    }
    Ok(out)
}

fn resolve_ref(r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| format!("bad character reference: {e}"))?
    {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| format!("bad reference: {e}"))?;
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

fn close(
    stack: &mut Vec<Frame>,
    key: Option<&str>,
    out: &mut Scanned,
    on_record: &mut impl FnMut(Fields),
) {
    let Some(frame) = stack.pop() else { return };
    let Some(parent) = stack.last_mut() else {
        return;
    };
    if !frame.has_children {
        parent
            .fields
            .entry(frame.name)
            .or_insert_with(|| frame.text.trim().to_owned());
        return;
    }
    if frame.name == "Fault" && parent.name == "Body" {
        out.fault = Some(Fault::from_fields(&frame.fields));
        return;
    }
    if !frame.in_fault
        && let Some(k) = key
        && frame.fields.contains_key(k)
    {
        out.records += 1;
        on_record(frame.fields);
        return;
    }
    for (k, v) in frame.fields {
        parent
            .fields
            .entry(format!("{}.{k}", frame.name))
            .or_insert(v);
    }
}

/// A parsed element with its namespace (the fake reads requests with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ns: Option<String>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of a direct child, `None` when absent or blank.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// The first element named `name` at any depth (self included).
    pub fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

/// Parses a whole document into a [`Node`] tree (small documents: requests).
pub fn parse(body: &[u8]) -> Result<Node, String> {
    let mut reader = NsReader::from_reader(body);
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let (ns, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| format!("not XML: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            _ => None,
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if stack.is_empty() && root.is_some() {
                    return Err("more than one root element".into());
                }
                stack.push(Node {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ns,
                    ..Node::default()
                });
                if matches!(ev, Event::Empty(_)) {
                    pop(&mut stack, &mut root);
                }
            }
            Event::End(_) => pop(&mut stack, &mut root),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&t.xml_content().map_err(|e| format!("bad text: {e}"))?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolve_ref(&r)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if let Some(open) = stack.last() {
        return Err(format!("the XML ends inside <{}>", open.name));
    }
    root.ok_or_else(|| "empty body".to_owned())
}

fn pop(stack: &mut Vec<Node>, root: &mut Option<Node>) {
    if let Some(n) = stack.pop() {
        match stack.last_mut() {
            Some(p) => p.children.push(n),
            None => *root = Some(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_the_identification_header_and_escape_text() {
        let xml = envelope(
            SoapVersion::V11,
            "http://tempuri.org/",
            "app-<1>",
            "getPartner",
            &[El::leaf("FiscalRegistration", "RO123 & Co\u{1}")],
        );
        let doc = parse(xml.as_bytes()).unwrap();
        assert_eq!(doc.name, "Envelope");
        assert_eq!(doc.ns.as_deref(), Some(SOAP11_NS));
        let id = doc
            .child("Header")
            .and_then(|h| h.child("IdentificationMessage"))
            .unwrap();
        assert_eq!(id.ns.as_deref(), Some(IDENTIFICATION_NS));
        assert_eq!(id.field("ApplicationId"), Some("app-<1>"));
        let op = doc
            .child("Body")
            .and_then(|b| b.child("getPartner"))
            .unwrap();
        assert_eq!(op.ns.as_deref(), Some("http://tempuri.org/"));
        assert_eq!(op.field("FiscalRegistration"), Some("RO123 & Co"));
        let v12 = envelope(SoapVersion::V12, "urn:x", "a", "GetItem", &[]);
        assert!(v12.contains(SOAP12_NS), "{v12}");
        assert!(
            SoapVersion::V12
                .content_type("urn:x/GetItem")
                .contains("action=\"urn:x/GetItem\"")
        );
        assert_eq!(
            SoapVersion::V11.content_type("x"),
            "text/xml; charset=utf-8"
        );
    }

    #[test]
    fn records_are_found_by_their_key_at_any_depth() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
            <GetItemResponse xmlns="urn:x"><GetItemResult>
              <ItemList><ItemId>1</ItemId><ItemCode>A&amp;B</ItemCode><ItemName>Cană &#x21;</ItemName>
                <ItemMeasuringUnits><ConversionRate>1</ConversionRate></ItemMeasuringUnits>
                <ItemProperties><PropertyValue>first</PropertyValue></ItemProperties>
                <ItemProperties><PropertyValue>second</PropertyValue></ItemProperties></ItemList>
              <ItemList><ItemId>2</ItemId><ItemCode><![CDATA[C<D]]></ItemCode><IsValid/></ItemList>
            </GetItemResult></GetItemResponse></s:Body></s:Envelope>"#;
        let mut got = Vec::new();
        let s = scan(xml.as_bytes(), Some("ItemId"), |r| got.push(r)).unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.fault, None);
        assert_eq!(s.body_element.as_deref(), Some("GetItemResponse"));
        assert_eq!(got[0]["ItemCode"], "A&B");
        assert_eq!(got[0]["ItemName"], "Cană !");
        assert_eq!(got[0]["ItemMeasuringUnits.ConversionRate"], "1");
        assert_eq!(got[0]["ItemProperties.PropertyValue"], "first");
        assert_eq!(got[1]["ItemCode"], "C<D");
        assert_eq!(got[1]["IsValid"], "");
    }

    #[test]
    fn faults_of_both_versions_are_read_and_never_taken_for_records() {
        let detail = [El::node(
            "DuplicateOrder",
            vec![
                El::leaf("OrderId", "500001"),
                El::leaf("ExternalId", "MGZ-1"),
            ],
        )];
        for v in [SoapVersion::V11, SoapVersion::V12] {
            let xml = fault_envelope(v, true, "Duplicate ExternalId MGZ-1", &detail);
            let mut n = 0;
            let s = scan(xml.as_bytes(), Some("OrderId"), |_| n += 1).unwrap();
            assert_eq!(n, 0, "a fault's detail is not a record");
            let f = s.fault.unwrap();
            assert!(f.is_client() && !f.is_auth(), "{f:?}");
            assert_eq!(f.text, "Duplicate ExternalId MGZ-1");
            assert_eq!(f.order_id.as_deref(), Some("500001"));
            let m = f.message();
            let (code, rest) = parse_fault_message(&m).unwrap();
            assert!(code == "Client" || code == "Sender", "{m}");
            assert!(rest.starts_with("Duplicate ExternalId MGZ-1 ["), "{m}");
        }
        let auth = fault_envelope(SoapVersion::V11, true, "Invalid ApplicationId", &[]);
        let f = scan(auth.as_bytes(), None, |_| {}).unwrap().fault.unwrap();
        assert!(f.is_auth());
        assert_eq!(
            error_body(auth.as_bytes()).unwrap(),
            "SOAP fault Client: Invalid ApplicationId"
        );
        let server = fault_envelope(SoapVersion::V12, false, "Timeout expired", &[]);
        let f = scan(server.as_bytes(), None, |_| {})
            .unwrap()
            .fault
            .unwrap();
        assert!(!f.is_client() && f.code == "Receiver");
    }

    #[test]
    fn what_is_not_an_envelope_is_named() {
        let html = b"<html><body>Attention Required! | Cloudflare</body></html>";
        assert!(scan(html, None, |_| {}).unwrap_err().contains("<html>"));
        assert!(scan(b"{\"a\":1}", None, |_| {}).is_err());
        assert!(scan(b"", None, |_| {}).unwrap_err().contains("empty"));
        let cut = b"<s:Envelope xmlns:s=\"x\"><s:Body><A>";
        assert!(scan(cut, None, |_| {}).is_err());
        let no_body = b"<s:Envelope xmlns:s=\"x\"><s:Header/></s:Envelope>";
        assert!(scan(no_body, None, |_| {}).unwrap_err().contains("Body"));
        assert_eq!(error_body(html), None);
    }
}
