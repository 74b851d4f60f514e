//! The `paging` and `response` tables of a polled integration (source documents 001/002),
//! compiled into the poller's [`PagingSettings`] and [`ResponseSettings`] with every problem
//! reported at once, keyed by its place in the table.
//!
//! Both tables are flat (a `type` key and the keys of each type) rather than tagged enums, so
//! a key given to the wrong type is named as such instead of being an unknown key.

use serde::Deserialize;

use crate::poll::page::{
    DEFAULT_MAX_PAGES, PageSize, Paging, PagingSettings, TokenSource, TokenTarget,
};
use crate::poll::response::{
    DEFAULT_MAX_PAGE_BYTES, JsonPath, MAX_EVENTS_JSON_PATHS, MAX_MAX_PAGE_BYTES, PageFormat,
    ResponseSettings,
};
use crate::validate::CsvDialect;

/// The longest query parameter or header name accepted.
const MAX_NAME_BYTES: usize = 64;
/// The longest `success_status_value` accepted.
const MAX_STATUS_VALUE_BYTES: usize = 256;
/// The largest page size and page cap accepted.
const MAX_PAGE_SIZE: u32 = 100_000;
const MAX_MAX_PAGES: u32 = 100_000;

/// A problem with a key of the table: (key, problem).
pub type KeyProblem = (String, String);

/// Source document 001's paging types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagingType {
    /// One request per window.
    #[default]
    None,
    LinkHeader,
    NextPageUrl,
    NextPageToken,
    Offset,
}

impl PagingType {
    fn name(self) -> &'static str {
        match self {
            PagingType::None => "none",
            PagingType::LinkHeader => "link_header",
            PagingType::NextPageUrl => "next_page_url",
            PagingType::NextPageToken => "next_page_token",
            PagingType::Offset => "offset",
        }
    }
}

/// `paging = { type = "...", ... }`. Default: `none`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagingConfig {
    /// `none` (default), `link_header`, `next_page_url`, `next_page_token` or `offset`.
    #[serde(rename = "type")]
    pub kind: PagingType,
    /// `link_header`: the next link in the body instead of the `Link` header;
    /// `next_page_url`: required.
    pub link_json_path: Option<String>,
    /// `next_page_url`, `next_page_token`: a flag saying whether there is a next page.
    pub has_next_json_path: Option<String>,
    /// `next_page_token`: the token in the body, or
    pub token_json_path: Option<String>,
    /// in this response header.
    pub token_header: Option<String>,
    /// `next_page_token`: the query parameter the token is sent in (or `header`);
    /// `offset`: the query parameter of the offset.
    pub parameter: Option<String>,
    /// `next_page_token`: the request header the token is sent in.
    pub header: Option<String>,
    /// `offset`: the offset of the first page. Default 0.
    pub first_offset: Option<u64>,
    /// Records asked per page, 1 to 100,000; required by `offset` (a shorter page is the last).
    pub page_size: Option<u32>,
    /// The query parameter of `page_size`; optional for `offset` (a fixed page size).
    pub page_size_parameter: Option<String>,
    /// Pages in one window beyond which the window fails, 1 to 100,000. Default 1,000.
    pub max_pages: u32,
}

impl Default for PagingConfig {
    fn default() -> Self {
        PagingConfig {
            kind: PagingType::None,
            link_json_path: None,
            has_next_json_path: None,
            token_json_path: None,
            token_header: None,
            parameter: None,
            header: None,
            first_offset: None,
            page_size: None,
            page_size_parameter: None,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

impl PagingConfig {
    /// The settings, or every problem of the table (keys relative to it, e.g.
    /// `token_json_path`).
    pub fn compile(&self) -> Result<PagingSettings, Vec<KeyProblem>> {
        let mut problems = Vec::new();
        let kind = self.kind;
        let mut report = |key: &str, problem: String| problems.push((key.to_string(), problem));
        // Which keys each type reads; any other key given is a mistake worth naming.
        let applies: &[&str] = match kind {
            PagingType::None => &[],
            PagingType::LinkHeader => &["link_json_path", "page_size", "page_size_parameter"],
            PagingType::NextPageUrl => &[
                "link_json_path",
                "has_next_json_path",
                "page_size",
                "page_size_parameter",
            ],
            PagingType::NextPageToken => &[
                "has_next_json_path",
                "token_json_path",
                "token_header",
                "parameter",
                "header",
                "page_size",
                "page_size_parameter",
            ],
            PagingType::Offset => &[
                "parameter",
                "first_offset",
                "page_size",
                "page_size_parameter",
            ],
        };
        let given = [
            ("link_json_path", self.link_json_path.is_some()),
            ("has_next_json_path", self.has_next_json_path.is_some()),
            ("token_json_path", self.token_json_path.is_some()),
            ("token_header", self.token_header.is_some()),
            ("parameter", self.parameter.is_some()),
            ("header", self.header.is_some()),
            ("first_offset", self.first_offset.is_some()),
            ("page_size", self.page_size.is_some()),
            ("page_size_parameter", self.page_size_parameter.is_some()),
        ];
        for (key, _) in given.iter().filter(|(k, set)| *set && !applies.contains(k)) {
            report(key, format!("does not apply to type = \"{}\"", kind.name()));
        }
        let mut path = |key: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| {
                JsonPath::parse(t)
                    .inspect_err(|e| report(key, e.to_string()))
                    .ok()
            })
        };
        let link_json_path = path("link_json_path", &self.link_json_path);
        let has_next_json_path = path("has_next_json_path", &self.has_next_json_path);
        let token_json_path = path("token_json_path", &self.token_json_path);
        let mut report = |key: &str, problem: String| problems.push((key.to_string(), problem));
        let parameter = self.parameter.as_deref().and_then(|p| {
            query_name(p)
                .inspect_err(|e| report("parameter", e.clone()))
                .ok()
        });
        let page_size_parameter = self.page_size_parameter.as_deref().and_then(|p| {
            query_name(p)
                .inspect_err(|e| report("page_size_parameter", e.clone()))
                .ok()
        });
        let header = self.header.as_deref().and_then(|h| {
            request_header(h)
                .inspect_err(|e| report("header", e.clone()))
                .ok()
        });
        let token_header = self.token_header.as_deref().and_then(|h| {
            header_name(h)
                .inspect_err(|e| report("token_header", e.clone()))
                .ok()
        });
        if self
            .page_size
            .is_some_and(|s| !(1..=MAX_PAGE_SIZE).contains(&s))
        {
            report("page_size", format!("must be 1 to {MAX_PAGE_SIZE}"));
        }
        if !(1..=MAX_MAX_PAGES).contains(&self.max_pages) {
            report("max_pages", format!("must be 1 to {MAX_MAX_PAGES}"));
        }
        match (self.page_size, &self.page_size_parameter) {
            (None, Some(_)) => report(
                "page_size",
                "page_size_parameter is set: give the page size to ask for".into(),
            ),
            (Some(_), None) if kind != PagingType::Offset => report(
                "page_size_parameter",
                "page_size is set: name the query parameter that carries it".into(),
            ),
            _ => {}
        }
        if self.parameter.is_some() && self.parameter == self.page_size_parameter {
            report(
                "page_size_parameter",
                "the same query parameter as `parameter`".into(),
            );
        }
        let paging = match kind {
            PagingType::None => Some(Paging::None),
            PagingType::LinkHeader => Some(Paging::LinkHeader { link_json_path }),
            PagingType::NextPageUrl => {
                if self.link_json_path.is_none() {
                    report(
                        "link_json_path",
                        "next_page_url needs the JSON path of the next link (e.g. \"$.next\")"
                            .into(),
                    );
                }
                link_json_path.map(|link_json_path| Paging::NextPageUrl {
                    link_json_path,
                    has_next_json_path: has_next_json_path.clone(),
                })
            }
            PagingType::NextPageToken => {
                let from = match (&self.token_json_path, &self.token_header) {
                    (Some(_), Some(_)) | (None, None) => {
                        report(
                            "token_json_path",
                            "next_page_token needs one of token_json_path and token_header".into(),
                        );
                        None
                    }
                    (Some(_), None) => token_json_path.map(TokenSource::JsonPath),
                    (None, Some(_)) => token_header.map(TokenSource::Header),
                };
                let to = match (&self.parameter, &self.header) {
                    (Some(_), Some(_)) | (None, None) => {
                        report(
                            "parameter",
                            "next_page_token sends the token in one of parameter (a query parameter) and header".into(),
                        );
                        None
                    }
                    (Some(_), None) => parameter.map(TokenTarget::Parameter),
                    (None, Some(_)) => header.map(TokenTarget::Header),
                };
                from.zip(to).map(|(from, to)| Paging::NextPageToken {
                    from,
                    to,
                    has_next_json_path,
                })
            }
            PagingType::Offset => {
                if self.parameter.is_none() {
                    report(
                        "parameter",
                        "offset needs the query parameter of the offset (e.g. \"offset\")".into(),
                    );
                }
                if self.page_size.is_none() {
                    report(
                        "page_size",
                        "offset needs the page size, to see the last (shorter) page".into(),
                    );
                }
                parameter.map(|parameter| Paging::Offset {
                    parameter,
                    first: self.first_offset.unwrap_or(0),
                })
            }
        };
        match paging {
            Some(paging) if problems.is_empty() => Ok(PagingSettings {
                paging,
                page_size: self.page_size.map(|size| PageSize {
                    size,
                    parameter: page_size_parameter,
                }),
                max_pages: self.max_pages,
            }),
            _ => Err(problems),
        }
    }
}

/// A query parameter name: short, printable, without the characters that would make it
/// another parameter.
fn query_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("use 1 to {MAX_NAME_BYTES} bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "&=#".contains(c))
    {
        return Err(format!(
            "'{}' is not a query parameter name (no spaces, controls, '&', '=' or '#')",
            crate::validate::escape(name)
        ));
    }
    Ok(name.to_string())
}

fn header_name(name: &str) -> Result<http::HeaderName, String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("use 1 to {MAX_NAME_BYTES} bytes"));
    }
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{}' is not a header name", crate::validate::escape(name)))
}

/// A header the token may be sent in: not one that carries credentials or frames the
/// request.
fn request_header(name: &str) -> Result<http::HeaderName, String> {
    let header = header_name(name)?;
    const RESERVED: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
    ];
    if RESERVED.contains(&header.as_str()) {
        return Err(format!(
            "'{}' is the request's own; send the token in another header",
            header.as_str()
        ));
    }
    Ok(header)
}

/// `format` of `response`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    Json,
    Csv,
}

/// `response = { events_json_paths = ["$.value"], ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// `json`: the lists of records, e.g. `["$.value"]`; required. `csv`: `["$"]` or
    /// absent.
    pub events_json_paths: Vec<String>,
    /// `json`: the path of a status that must equal `success_status_value` (both or neither).
    pub success_status_json_path: Option<String>,
    pub success_status_value: Option<String>,
    /// `json` (default) or `csv`.
    pub format: ResponseFormat,
    /// `csv`: the dialect, with the keys of the integration's `csv` table (`header` is
    /// 001's HasCsvHeader, `delimiter` its CsvDelimiter, `quote` its CsvEscape). Default:
    /// RFC 4180 with a header row.
    pub csv: Option<CsvDialect>,
    /// The body is gzip whatever `Content-Encoding` says. Default false.
    pub gzip: bool,
    /// A page's body is refused beyond this many bytes, after un-gzipping. Default 16 MiB,
    /// at most 256 MiB.
    pub max_page_bytes: u64,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            events_json_paths: Vec::new(),
            success_status_json_path: None,
            success_status_value: None,
            format: ResponseFormat::Json,
            csv: None,
            gzip: false,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

impl ResponseConfig {
    /// The settings, or every problem of the table (keys relative to it).
    pub fn compile(&self) -> Result<ResponseSettings, Vec<KeyProblem>> {
        let mut problems: Vec<KeyProblem> = Vec::new();
        let mut report = |key: &str, problem: String| problems.push((key.to_string(), problem));
        if !(1..=MAX_MAX_PAGE_BYTES).contains(&self.max_page_bytes) {
            report(
                "max_page_bytes",
                format!("must be 1 to {MAX_MAX_PAGE_BYTES}"),
            );
        }
        let mut events = Vec::new();
        let mut success_status = None;
        let format = match self.format {
            ResponseFormat::Json => {
                if self.csv.is_some() {
                    report("csv", "applies to format = \"csv\" only".into());
                }
                if self.events_json_paths.is_empty() {
                    report(
                        "events_json_paths",
                        "required for format = \"json\": where the records are, e.g. [\"$.value\"]"
                            .into(),
                    );
                }
                if self.events_json_paths.len() > MAX_EVENTS_JSON_PATHS {
                    report(
                        "events_json_paths",
                        format!("at most {MAX_EVENTS_JSON_PATHS} paths"),
                    );
                }
                for text in &self.events_json_paths {
                    match JsonPath::parse(text) {
                        Ok(path) => events.push(path),
                        Err(e) => report(
                            "events_json_paths",
                            format!("'{}': {e}", crate::validate::escape(text)),
                        ),
                    }
                }
                match (&self.success_status_json_path, &self.success_status_value) {
                    (Some(path), Some(value)) => {
                        if value.len() > MAX_STATUS_VALUE_BYTES {
                            report(
                                "success_status_value",
                                format!("longer than {MAX_STATUS_VALUE_BYTES} bytes"),
                            );
                        }
                        match JsonPath::parse(path) {
                            Ok(path) => success_status = Some((path, value.clone())),
                            Err(e) => report("success_status_json_path", e.to_string()),
                        }
                    }
                    (Some(_), None) => report(
                        "success_status_value",
                        "success_status_json_path is set: give the value that means success".into(),
                    ),
                    (None, Some(_)) => report(
                        "success_status_json_path",
                        "success_status_value is set: give the JSON path of the status".into(),
                    ),
                    (None, None) => {}
                }
                PageFormat::Json
            }
            ResponseFormat::Csv => {
                if self.events_json_paths.iter().any(|p| p != "$") {
                    report(
                        "events_json_paths",
                        "a CSV page is one list of records: [\"$\"] or nothing".into(),
                    );
                }
                for (key, set) in [
                    (
                        "success_status_json_path",
                        self.success_status_json_path.is_some(),
                    ),
                    ("success_status_value", self.success_status_value.is_some()),
                ] {
                    if set {
                        report(key, "applies to format = \"json\" only".into());
                    }
                }
                let dialect = self.csv.clone().unwrap_or_default();
                check_dialect(&dialect, &mut report);
                PageFormat::Csv(dialect)
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ResponseSettings {
            format,
            events,
            success_status,
            gzip: self.gzip,
            max_page_bytes: self.max_page_bytes,
        })
    }
}

/// What the validator needs of a dialect it did not get from the integration's `csv` table
/// (the schema's columns are checked where the schema is known).
fn check_dialect(dialect: &CsvDialect, report: &mut impl FnMut(&str, String)) {
    for (key, c) in [
        ("csv.delimiter", Some(dialect.delimiter)),
        ("csv.quote", Some(dialect.quote)),
        ("csv.escape", dialect.escape),
    ] {
        if let Some(c) = c
            && (!c.is_ascii() || c == '\n' || c == '\r')
        {
            report(
                key,
                format!("{c:?} must be one ASCII character, not a newline"),
            );
        }
    }
    if dialect.delimiter == dialect.quote {
        report("csv.quote", "the quote cannot be the delimiter".into());
    }
    if dialect.header && !dialect.columns.is_empty() {
        report(
            "csv.columns",
            "columns name the fields of pages without a header; set header = false".into(),
        );
    }
    if !dialect.header && !dialect.columns.iter().any(|c| c == "id") {
        report(
            "csv.columns",
            "pages without a header need columns = [...] naming every field, `id` included".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(text: &str) -> Result<PagingSettings, Vec<KeyProblem>> {
        toml::from_str::<PagingConfig>(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .compile()
    }

    fn response(text: &str) -> Result<ResponseSettings, Vec<KeyProblem>> {
        toml::from_str::<ResponseConfig>(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .compile()
    }

    fn keys(problems: Vec<KeyProblem>) -> Vec<String> {
        problems.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_issue_example_compiles() {
        let settings = paging(
            r#"type = "next_page_token"
token_json_path = "$.next"
parameter = "cursor"
page_size = 500
page_size_parameter = "limit""#,
        )
        .expect("compiles");
        assert_eq!(settings.max_pages, DEFAULT_MAX_PAGES);
        assert_eq!(
            settings.page_size,
            Some(PageSize {
                size: 500,
                parameter: Some("limit".into())
            })
        );
        assert!(matches!(
            settings.paging,
            Paging::NextPageToken {
                from: TokenSource::JsonPath(_),
                to: TokenTarget::Parameter(ref p),
                has_next_json_path: None,
            } if p == "cursor"
        ));
        let settings = response(
            r#"events_json_paths = ["$.value"]
format = "json""#,
        )
        .expect("compiles");
        assert_eq!(settings.events.len(), 1);
        assert_eq!(settings.max_page_bytes, DEFAULT_MAX_PAGE_BYTES);
    }

    #[test]
    fn every_type_compiles_from_its_keys() {
        assert_eq!(paging("").expect("none").paging, Paging::None);
        assert!(matches!(
            paging(r#"type = "link_header""#).expect("link").paging,
            Paging::LinkHeader {
                link_json_path: None
            }
        ));
        assert!(matches!(
            paging(
                r#"type = "next_page_url"
link_json_path = "$.paging.next"
has_next_json_path = "$.paging.more""#
            )
            .expect("url")
            .paging,
            Paging::NextPageUrl {
                has_next_json_path: Some(_),
                ..
            }
        ));
        assert!(matches!(
            paging(
                r#"type = "next_page_token"
token_header = "X-Next"
header = "X-Page""#
            )
            .expect("token")
            .paging,
            Paging::NextPageToken {
                from: TokenSource::Header(_),
                to: TokenTarget::Header(_),
                ..
            }
        ));
        let offset = paging(
            r#"type = "offset"
parameter = "skip"
page_size = 100
max_pages = 50"#,
        )
        .expect("offset");
        assert_eq!(
            offset.paging,
            Paging::Offset {
                parameter: "skip".into(),
                first: 0
            }
        );
        assert_eq!(
            offset.page_size,
            Some(PageSize {
                size: 100,
                parameter: None
            })
        );
        assert_eq!(offset.max_pages, 50);
    }

    #[test]
    fn every_paging_problem_is_reported_at_once_with_its_key() {
        let problems = paging(
            r#"type = "next_page_token"
token_json_path = "$..next"
link_json_path = "$.x"
header = "Authorization"
page_size = 0
max_pages = 0"#,
        )
        .expect_err("problems");
        assert_eq!(
            keys(problems.clone()),
            [
                "link_json_path",
                "token_json_path",
                "header",
                "page_size",
                "max_pages",
                "page_size_parameter"
            ],
            "{problems:?}"
        );
        assert!(
            problems[0]
                .1
                .contains("does not apply to type = \"next_page_token\"")
        );
        assert!(problems[1].1.contains("recursive descent"));
        assert!(problems[2].1.contains("send the token in another header"));

        let problems = paging(r#"type = "next_page_token""#).expect_err("nothing given");
        assert_eq!(keys(problems), ["token_json_path", "parameter"]);
        let problems = paging(r#"type = "offset""#).expect_err("nothing given");
        assert_eq!(keys(problems), ["parameter", "page_size"]);
        let problems = paging(r#"type = "next_page_url""#).expect_err("nothing given");
        assert_eq!(keys(problems), ["link_json_path"]);
        let problems = paging(
            r#"type = "offset"
parameter = "a&b"
page_size = 10
page_size_parameter = "a&b""#,
        )
        .expect_err("bad names");
        assert_eq!(
            keys(problems),
            ["parameter", "page_size_parameter", "page_size_parameter"]
        );
        let problems = paging(&format!("parameter = \"{}\"", "p".repeat(65))).expect_err("none");
        assert_eq!(keys(problems), ["parameter", "parameter"]);
        assert!(toml::from_str::<PagingConfig>(r#"type = "cursor""#).is_err());
        assert!(toml::from_str::<PagingConfig>(r#"token_path = "$.x""#).is_err());
    }

    #[test]
    fn every_response_problem_is_reported_at_once_with_its_key() {
        let problems = response(
            r#"events_json_paths = ["$.value", "$.items[*]"]
success_status_json_path = "$.status"
csv = { header = false }
max_page_bytes = 0"#,
        )
        .expect_err("problems");
        assert_eq!(
            keys(problems.clone()),
            [
                "max_page_bytes",
                "csv",
                "events_json_paths",
                "success_status_value"
            ],
            "{problems:?}"
        );
        assert!(
            problems[2].1.starts_with("'$.items[*]': the wildcard"),
            "{problems:?}"
        );
        let long = format!(
            "events_json_paths = [\"$\"]\nsuccess_status_json_path = \"$.s\"\nsuccess_status_value = \"{}\"",
            "v".repeat(257)
        );
        assert_eq!(
            keys(response(&long).expect_err("too long")),
            ["success_status_value"]
        );
        let problems = response("").expect_err("no paths");
        assert_eq!(keys(problems), ["events_json_paths"]);
        let problems = response(
            r#"format = "csv"
events_json_paths = ["$.value"]
success_status_value = "ok"
csv = { header = false, delimiter = ";", quote = ";" }"#,
        )
        .expect_err("csv problems");
        assert_eq!(
            keys(problems),
            [
                "events_json_paths",
                "success_status_value",
                "csv.quote",
                "csv.columns"
            ]
        );
    }

    #[test]
    fn a_csv_response_carries_its_dialect() {
        let settings = response(
            r#"format = "csv"
gzip = true
csv = { header = false, delimiter = ";", columns = ["id", "email"] }"#,
        )
        .expect("compiles");
        assert!(settings.gzip);
        match settings.format {
            PageFormat::Csv(dialect) => {
                assert_eq!(dialect.delimiter, ';');
                assert!(!dialect.header);
                assert_eq!(dialect.columns, ["id", "email"]);
            }
            PageFormat::Json => panic!("expected CSV"),
        }
        let plain = response(r#"format = "csv""#).expect("the default dialect");
        assert!(
            matches!(&plain.format, PageFormat::Csv(d) if d.header && d.delimiter == ','),
            "{plain:?}"
        );
    }
}
