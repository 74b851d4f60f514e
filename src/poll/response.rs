//! What a polled page holds (source documents 001/002, "response"): its body un-gzipped within
//! a cap, its success status checked, and its records found by JSON path (or, for a CSV API,
//! the CSV passed on to the validator with its dialect). Everything the customer's API sends
//! is bounded and every way it can be wrong is a typed error that says where.
//!
//! JSON paths are the subset real APIs need: `$`, `.name`, `['any name']` (or `["…"]`), `[2]`
//! and `[-1]` (from the end). Wildcards, recursive descent (`..`), slices and filters are
//! refused when the config is checked, never guessed at.

use std::fmt;
use std::io::Read;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::page::PageResponse;
use crate::validate::{CsvDialect, escape};

/// Default cap on a page's body, after un-gzipping: a JSON page is held whole, and parsed it
/// takes several times its size.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// The largest `max_page_bytes` the config accepts.
pub const MAX_MAX_PAGE_BYTES: u64 = 256 * 1024 * 1024;
/// The longest JSON path accepted, in bytes.
pub const MAX_JSON_PATH_BYTES: usize = 256;
/// The most steps (`.a`, `[0]`) in one JSON path.
pub const MAX_JSON_PATH_STEPS: usize = 32;
/// The most `events_json_paths` of one response.
pub const MAX_EVENTS_JSON_PATHS: usize = 16;

/// How the poller reads each page of an integration's API (compiled from the `response`
/// table).
#[derive(Debug, Clone)]
pub struct ResponseSettings {
    pub format: PageFormat,
    /// The lists of records in a JSON page, read in this order.
    pub events: Vec<JsonPath>,
    /// A page is accepted only when the value at this path is this text.
    pub success_status: Option<(JsonPath, String)>,
    /// The body is gzip (single- or multi-member), whatever `Content-Encoding` says.
    pub gzip: bool,
    /// A page's body is refused beyond this many bytes, after un-gzipping.
    pub max_page_bytes: u64,
}

/// A page's format; a CSV page is validated as a dropped file is, in this dialect.
#[derive(Debug, Clone)]
pub enum PageFormat {
    Json,
    Csv(CsvDialect),
}

/// The records of one page.
#[derive(Debug, Clone, PartialEq)]
pub enum PageRecords {
    /// JSON objects, from every events path in order.
    Json(Vec<Map<String, Value>>),
    /// A CSV document (not compressed), for the validator, in the settings' dialect.
    Csv(Bytes),
}

impl PageRecords {
    /// Records on the page, as the pager counts them: JSON objects, or the CSV lines that
    /// hold something, less the header (a quoted field spanning lines counts as more than
    /// one record, which only `offset` paging, ending on a short page, could notice).
    pub fn count(&self, settings: &ResponseSettings) -> usize {
        match self {
            PageRecords::Json(records) => records.len(),
            PageRecords::Csv(text) => {
                let header = matches!(&settings.format, PageFormat::Csv(d) if d.header);
                let lines = text
                    .split(|b| *b == b'\n')
                    .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
                    .count();
                lines.saturating_sub(usize::from(header))
            }
        }
    }
}

/// Why a page's body cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(
        "the page is more than {limit} bytes{after} (response.max_page_bytes); not read further"
    )]
    TooLarge { limit: u64, after: &'static str },
    #[error("the page is not gzip (it starts with {starts_with}), but response.gzip is true")]
    NotGzip { starts_with: String },
    #[error("the page's gzip data is corrupt or truncated")]
    Gzip(#[source] std::io::Error),
    #[error("the page is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the page has nothing at {path} (response.events_json_paths)")]
    EventsMissing { path: String },
    #[error("{path} is {found}; expected a list of records (response.events_json_paths)")]
    EventsNotList { path: String, found: String },
    #[error("record {index} of {path} is {found}; expected an object")]
    RecordNotObject {
        path: String,
        index: usize,
        found: String,
    },
    #[error("the page has no status at {path} (response.success_status_json_path)")]
    StatusMissing { path: String },
    #[error("the page's status at {path} is {found}, not '{expected}'; its records are not taken")]
    StatusNotSuccess {
        path: String,
        expected: String,
        found: String,
    },
}

/// The body of a page as [`PageResponse`] holds it: un-gzipped when `response.gzip` is set or
/// the server says `Content-Encoding: gzip`, and refused beyond `max_page_bytes` (a gzip bomb
/// stops at the cap, having inflated no more than the cap and one buffer). Inflating is CPU
/// work of up to the cap: call it in `spawn_blocking` when the cap is large.
pub fn decode_body(
    raw: Bytes,
    headers: &http::HeaderMap,
    settings: &ResponseSettings,
) -> Result<Bytes, ResponseError> {
    let limit = settings.max_page_bytes;
    let encoded = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !(settings.gzip || encoded) {
        if raw.len() as u64 > limit {
            return Err(ResponseError::TooLarge { limit, after: "" });
        }
        return Ok(raw);
    }
    if !raw.starts_with(&[0x1f, 0x8b]) {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(16)]).into_owned();
        return Err(ResponseError::NotGzip {
            starts_with: format!("'{}'", escape(&shown)),
        });
    }
    let mut inflated = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(limit.saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(ResponseError::Gzip)?;
    if inflated.len() as u64 > limit {
        return Err(ResponseError::TooLarge {
            limit,
            after: " when un-gzipped",
        });
    }
    Ok(Bytes::from(inflated))
}

/// The records of a page whose body [`decode_body`] produced.
pub fn records(
    got: &PageResponse,
    settings: &ResponseSettings,
) -> Result<PageRecords, ResponseError> {
    if let PageFormat::Csv(_) = settings.format {
        return Ok(PageRecords::Csv(got.body.clone()));
    }
    let root: Value = serde_json::from_slice(&got.body).map_err(ResponseError::NotJson)?;
    if let Some((path, expected)) = &settings.success_status {
        let found = path
            .find(&root)
            .ok_or_else(|| ResponseError::StatusMissing {
                path: path.to_string(),
            })?;
        if !is_text(found, expected) {
            return Err(ResponseError::StatusNotSuccess {
                path: path.to_string(),
                expected: escape(expected),
                found: describe(found),
            });
        }
    }
    let mut root = root;
    let mut records = Vec::new();
    for path in &settings.events {
        // Taken out of the page rather than copied: a page is held once, not twice.
        match path.find_mut(&mut root).map(Value::take) {
            None => {
                return Err(ResponseError::EventsMissing {
                    path: path.to_string(),
                });
            }
            // An API that says "no records" with null rather than [] has none.
            Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                records.reserve(list.len());
                for (index, item) in list.into_iter().enumerate() {
                    match item {
                        Value::Object(record) => records.push(record),
                        other => {
                            return Err(ResponseError::RecordNotObject {
                                path: path.to_string(),
                                index,
                                found: describe(&other),
                            });
                        }
                    }
                }
            }
            Some(other) => {
                return Err(ResponseError::EventsNotList {
                    path: path.to_string(),
                    found: describe(&other),
                });
            }
        }
    }
    Ok(PageRecords::Json(records))
}

/// Whether a JSON value reads as `text`: a string equal to it, or a number or boolean written
/// so (`200`, `true`), as the config's value is always a string.
fn is_text(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s == text,
        Value::Number(n) => n.to_string() == text,
        Value::Bool(b) => b.to_string() == text,
        _ => false,
    }
}

/// What a value is, for a message: its kind, and a short escaped sight of it.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {}", escape(&n.to_string())),
        Value::String(s) => format!("the string '{}'", escape(s)),
        Value::Array(a) => format!("a list of {} values", a.len()),
        Value::Object(o) => format!("an object with {} keys", o.len()),
    }
}

/// A JSON path of the supported subset, parsed once when the config is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// From the start, or from the end when negative (`-1` is the last).
    Index(i64),
}

/// Why a JSON path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    #[error("a JSON path starts with '$' (e.g. \"$.value\")")]
    NoRoot,
    #[error("longer than {MAX_JSON_PATH_BYTES} bytes")]
    TooLong,
    #[error("more than {MAX_JSON_PATH_STEPS} steps")]
    TooDeep,
    #[error("{what} at byte {at} is not supported: use $, .name, ['name'] and [index] only")]
    Unsupported { what: &'static str, at: usize },
    #[error("unexpected {found} at byte {at}")]
    Unexpected { found: String, at: usize },
    #[error("the path ends inside a step")]
    Unfinished,
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, JsonPathError> {
        if text.len() > MAX_JSON_PATH_BYTES {
            return Err(JsonPathError::TooLong);
        }
        let rest = text.strip_prefix('$').ok_or(JsonPathError::NoRoot)?;
        let bytes = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        let at = |i: usize| i + 1; // byte offsets in `text`, counting the `$`
        while i < bytes.len() {
            if steps.len() == MAX_JSON_PATH_STEPS {
                return Err(JsonPathError::TooDeep);
            }
            match bytes[i] {
                b'.' => {
                    i += 1;
                    match bytes.get(i) {
                        None => return Err(JsonPathError::Unfinished),
                        Some(b'.') => {
                            return Err(JsonPathError::Unsupported {
                                what: "recursive descent '..'",
                                at: at(i - 1),
                            });
                        }
                        Some(b'*') => {
                            return Err(JsonPathError::Unsupported {
                                what: "the wildcard '*'",
                                at: at(i),
                            });
                        }
                        _ => {}
                    }
                    let end = rest[i..].find(['.', '[']).map_or(rest.len(), |n| i + n);
                    let name = &rest[i..end];
                    if let Some(bad) = name.find(|c: char| {
                        c.is_whitespace() || c.is_control() || "]'\"()?@*,:".contains(c)
                    }) {
                        let found = name[bad..].chars().next().unwrap_or(' ');
                        return Err(JsonPathError::Unexpected {
                            found: format!("{found:?} (quote such names: ['a name'])"),
                            at: at(i + bad),
                        });
                    }
                    steps.push(Step::Key(name.to_string()));
                    i = end;
                }
                b'[' => {
                    i += 1;
                    match bytes.get(i) {
                        None => return Err(JsonPathError::Unfinished),
                        Some(&quote @ (b'\'' | b'"')) => {
                            let (name, after) = quoted_name(rest, i + 1, quote)?;
                            if bytes.get(after) != Some(&b']') {
                                return Err(unexpected(rest, after));
                            }
                            steps.push(Step::Key(name));
                            i = after + 1;
                        }
                        Some(b'*') => {
                            return Err(JsonPathError::Unsupported {
                                what: "the wildcard '*'",
                                at: at(i),
                            });
                        }
                        Some(b'?' | b'(') => {
                            return Err(JsonPathError::Unsupported {
                                what: "a filter or script",
                                at: at(i),
                            });
                        }
                        Some(_) => {
                            let end = rest[i..]
                                .find(']')
                                .map(|n| i + n)
                                .ok_or(JsonPathError::Unfinished)?;
                            let inside = &rest[i..end];
                            if inside.contains([':', ',']) {
                                return Err(JsonPathError::Unsupported {
                                    what: "a slice or union",
                                    at: at(i),
                                });
                            }
                            let index: i64 = inside
                                .parse()
                                .ok()
                                .filter(|_| !inside.starts_with('+'))
                                .ok_or_else(|| unexpected(rest, i))?;
                            steps.push(Step::Index(index));
                            i = end + 1;
                        }
                    }
                }
                _ => return Err(unexpected(rest, i)),
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    /// The value at the path; `None` when a step finds nothing (a missing key, an index out
    /// of range, or a step into something that is not an object or a list).
    pub fn find<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut at = root;
        for step in &self.steps {
            at = match (step, at) {
                (Step::Key(key), Value::Object(map)) => map.get(key)?,
                (Step::Index(index), Value::Array(list)) => {
                    list.get(position(*index, list.len())?)?
                }
                _ => return None,
            };
        }
        Some(at)
    }

    /// [`JsonPath::find`], for taking the value out.
    pub fn find_mut<'a>(&self, root: &'a mut Value) -> Option<&'a mut Value> {
        let mut at = root;
        for step in &self.steps {
            at = match (step, at) {
                (Step::Key(key), Value::Object(map)) => map.get_mut(key)?,
                (Step::Index(index), Value::Array(list)) => {
                    let n = position(*index, list.len())?;
                    list.get_mut(n)?
                }
                _ => return None,
            };
        }
        Some(at)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The position of an index in a list of `len`, counting from the end when negative.
fn position(index: i64, len: usize) -> Option<usize> {
    if index < 0 {
        len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)
    } else {
        usize::try_from(index).ok()
    }
}

fn unexpected(rest: &str, i: usize) -> JsonPathError {
    match rest[i..].chars().next() {
        Some(c) => JsonPathError::Unexpected {
            found: format!("{c:?}"),
            at: i + 1,
        },
        None => JsonPathError::Unfinished,
    }
}

/// A quoted name from `start` (after the opening quote) to its closing quote, with `\\` and
/// `\'` (or `\"`) escapes; returns the name and the index after the closing quote.
fn quoted_name(rest: &str, start: usize, quote: u8) -> Result<(String, usize), JsonPathError> {
    let mut name = String::new();
    let mut chars = rest[start..].char_indices();
    while let Some((n, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) if e == '\\' || e == char::from(quote) => name.push(e),
                Some((m, _)) => return Err(unexpected(rest, start + m)),
                None => return Err(JsonPathError::Unfinished),
            },
            c if c == char::from(quote) => return Ok((name, start + n + 1)),
            c => name.push(c),
        }
    }
    Err(JsonPathError::Unfinished)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn settings(events: &[&str]) -> ResponseSettings {
        ResponseSettings {
            format: PageFormat::Json,
            events: events.iter().map(|p| path(p)).collect(),
            success_status: None,
            gzip: false,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }

    fn page(body: impl Into<Bytes>) -> PageResponse {
        PageResponse {
            status: 200,
            headers: http::HeaderMap::new(),
            body: body.into(),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    }

    fn ids(records: PageRecords) -> Vec<String> {
        match records {
            PageRecords::Json(list) => list
                .iter()
                .map(|r| r.get("id").map(|v| v.to_string()).unwrap_or_default())
                .collect(),
            PageRecords::Csv(_) => panic!("expected JSON records"),
        }
    }

    #[test]
    fn paths_of_the_subset_find_what_they_name() {
        let doc = json!({
            "a": {"b": [{"c": 1}, {"c": 2}]},
            "x y": {"it's": true},
            "value": [],
        });
        assert_eq!(path("$").find(&doc), Some(&doc));
        assert_eq!(path("$.a.b[0].c").find(&doc), Some(&json!(1)));
        assert_eq!(path("$.a.b[-1].c").find(&doc), Some(&json!(2)));
        assert_eq!(path("$['x y']['it\\'s']").find(&doc), Some(&json!(true)));
        assert_eq!(path("$[\"x y\"]").find(&doc), Some(&json!({"it's": true})));
        assert_eq!(path("$.a.b[2]").find(&doc), None);
        assert_eq!(path("$.a.b[-3]").find(&doc), None);
        assert_eq!(path("$.missing.deeper").find(&doc), None);
        assert_eq!(
            path("$.value.c").find(&doc),
            None,
            "a key into a list finds nothing"
        );
    }

    #[test]
    fn paths_outside_the_subset_are_refused_and_say_why() {
        for (text, expected) in [
            ("value", "starts with '$'"),
            ("$..id", "recursive descent"),
            ("$.items[*]", "wildcard"),
            ("$.*", "wildcard"),
            ("$.items[?(@.id)]", "filter"),
            ("$.alerts[-1:]._id", "slice"),
            ("$.a[0,1]", "slice or union"),
            ("$.a[", "ends inside"),
            ("$['a", "ends inside"),
            ("$.", "ends inside"),
            ("$.a b", "quote such names"),
            ("$.a[x]", "unexpected 'x'"),
            ("$x", "unexpected 'x' at byte 1"),
        ] {
            let error = JsonPath::parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let long = format!("$.{}", "a".repeat(MAX_JSON_PATH_BYTES));
        assert_eq!(JsonPath::parse(&long), Err(JsonPathError::TooLong));
        let deep = format!("${}", ".a".repeat(MAX_JSON_PATH_STEPS + 1));
        assert_eq!(JsonPath::parse(&deep), Err(JsonPathError::TooDeep));
    }

    #[test]
    fn records_come_from_every_events_path_in_order() {
        let body = r#"{"value": [{"id": 1}, {"id": 2}], "more": {"items": [{"id": 3}]}}"#;
        let got = records(&page(body), &settings(&["$.value", "$.more.items"]));
        assert_eq!(ids(got.expect("records")), ["1", "2", "3"]);
        let top = records(&page(r#"[{"id": "a"}]"#), &settings(&["$"]));
        assert_eq!(ids(top.expect("records")), ["\"a\""]);
        let null = records(&page(r#"{"value": null}"#), &settings(&["$.value"]));
        assert_eq!(ids(null.expect("null is no records")), Vec::<String>::new());
    }

    #[test]
    fn a_page_of_the_wrong_shape_is_a_located_error() {
        let cases = [
            (
                r#"{"value": {"id": 1}}"#,
                "$.value is an object with 1 keys; expected a list",
            ),
            (
                r#"{"value": "x"}"#,
                "$.value is the string 'x'; expected a list",
            ),
            (
                r#"{"value": [{"id": 1}, 7]}"#,
                "record 1 of $.value is the number 7; expected an object",
            ),
            (r#"{"other": []}"#, "the page has nothing at $.value"),
            (
                "<html>busy</html>",
                "the page is not JSON: expected value at line 1 column 1",
            ),
            ("", "the page is not JSON"),
        ];
        for (body, expected) in cases {
            let error = records(&page(body), &settings(&["$.value"])).expect_err(body);
            assert!(error.to_string().contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn a_page_whose_status_is_not_success_names_the_value_found() {
        let mut settings = settings(&["$.value"]);
        settings.success_status = Some((path("$.status"), "success".into()));
        let ok = records(
            &page(r#"{"status": "success", "value": [{"id": 1}]}"#),
            &settings,
        );
        assert_eq!(ids(ok.expect("success")), ["1"]);
        let error = records(&page(r#"{"status": "throttled", "value": []}"#), &settings)
            .expect_err("not success");
        assert_eq!(
            error.to_string(),
            "the page's status at $.status is the string 'throttled', not 'success'; its records are not taken"
        );
        let error = records(&page(r#"{"value": []}"#), &settings).expect_err("no status");
        assert!(
            matches!(error, ResponseError::StatusMissing { .. }),
            "{error}"
        );
        settings.success_status = Some((path("$.code"), "200".into()));
        let number = records(&page(r#"{"code": 200, "value": []}"#), &settings);
        assert!(number.is_ok(), "{number:?}");
    }

    #[test]
    fn a_csv_page_goes_on_as_bytes_and_its_records_are_counted() {
        let mut settings = settings(&[]);
        settings.format = PageFormat::Csv(CsvDialect::default());
        let csv = "id,email\n1,a@x\n2,b@x\n";
        let got = records(&page(csv), &settings).expect("csv");
        assert_eq!(got, PageRecords::Csv(Bytes::from(csv)));
        assert_eq!(got.count(&settings), 2);
        assert_eq!(
            PageRecords::Csv(Bytes::from("id,email\n")).count(&settings),
            0
        );
        settings.format = PageFormat::Csv(CsvDialect {
            header: false,
            ..CsvDialect::default()
        });
        assert_eq!(got.count(&settings), 3);
    }

    #[test]
    fn gzip_is_undone_within_the_cap_and_a_bomb_stops_at_it() {
        let mut settings = settings(&["$"]);
        settings.gzip = true;
        settings.max_page_bytes = 1024 * 1024;
        let body = br#"[{"id": 1}]"#;
        let decoded = decode_body(Bytes::from(gzip(body)), &http::HeaderMap::new(), &settings);
        assert_eq!(decoded.expect("gzip").as_ref(), body);
        // Two members, as concatenated gzip files are.
        let mut two = gzip(b"[{\"id\": 1},");
        two.extend(gzip(b"{\"id\": 2}]"));
        let decoded = decode_body(Bytes::from(two), &http::HeaderMap::new(), &settings);
        assert_eq!(
            decoded.expect("two members").as_ref(),
            b"[{\"id\": 1},{\"id\": 2}]"
        );
        // 64 MiB of zeros compress to about 64 KiB; only the cap (1 MiB) is inflated.
        let bomb = {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1024 * 1024];
            for _ in 0..64 {
                encoder.write_all(&zeros).expect("gzip in memory");
            }
            encoder.finish().expect("gzip in memory")
        };
        let error =
            decode_body(Bytes::from(bomb), &http::HeaderMap::new(), &settings).expect_err("a bomb");
        assert_eq!(
            error.to_string(),
            "the page is more than 1048576 bytes when un-gzipped (response.max_page_bytes); not read further"
        );
        let error = decode_body(Bytes::from("{}"), &http::HeaderMap::new(), &settings)
            .expect_err("not gzip");
        assert!(error.to_string().contains("starts with '{}'"), "{error}");
        let mut truncated = gzip(body);
        truncated.truncate(truncated.len() - 6);
        let error = decode_body(Bytes::from(truncated), &http::HeaderMap::new(), &settings)
            .expect_err("truncated");
        assert!(matches!(error, ResponseError::Gzip(_)), "{error}");
    }

    #[test]
    fn a_plain_body_is_capped_and_content_encoding_gzip_is_undone() {
        let mut settings = settings(&["$"]);
        settings.max_page_bytes = 8;
        let error = decode_body(
            Bytes::from("[1,2,3,4,5]"),
            &http::HeaderMap::new(),
            &settings,
        )
        .expect_err("over the cap");
        assert!(
            matches!(error, ResponseError::TooLarge { limit: 8, .. }),
            "{error}"
        );
        settings.max_page_bytes = 1024;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("GZIP"),
        );
        let decoded = decode_body(Bytes::from(gzip(b"[]")), &headers, &settings);
        assert_eq!(decoded.expect("encoded").as_ref(), b"[]");
    }
}
