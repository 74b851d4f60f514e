//! Paging of a polled REST API (source documents 001/002, "paging"): from one page's answer,
//! the request for the next page of the window, or the end of the window.
//!
//! The customer's API decides how many pages there are, so every way of paging is bounded:
//! a page cap per window, a loop check (a token or link seen twice in a window ends it with an
//! error instead of polling forever), tokens and links of bounded length, and a next link to
//! another origin refused, since following it would send the API's credentials elsewhere.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use url::Url;

use super::response::{JsonPath, describe};
use crate::secret::redact_url;
use crate::validate::escape;

/// Default cap on pages per window.
pub const DEFAULT_MAX_PAGES: u32 = 1_000;
/// The longest next-page token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4 * 1024;
/// The longest next-page link accepted, in bytes.
pub const MAX_LINK_BYTES: usize = 8 * 1024;

/// One HTTP request of a window, as the poller sends it (auth added by the poller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub method: http::Method,
    /// The query included.
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// One answer, as the poller read it.
#[derive(Debug, Clone)]
pub struct PageResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// Bounded and already un-gzipped ([`super::response::decode_body`]).
    pub body: bytes::Bytes,
}

/// How an integration's API pages (compiled from the `paging` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagingSettings {
    pub paging: Paging,
    /// The page size asked for, on every request of the window.
    pub page_size: Option<PageSize>,
    /// Pages in one window beyond which the window fails.
    pub max_pages: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSize {
    pub size: u32,
    /// The query parameter carrying it; `None` when the API's page size is fixed (`offset`
    /// still needs to know it, to see the last page).
    pub parameter: Option<String>,
}

/// The paging types of source document 001.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// One page per window.
    None,
    /// RFC 8288 `Link: <…>; rel="next"`, or the link at a JSON path of the body.
    LinkHeader { link_json_path: Option<JsonPath> },
    /// The next page's URL in the body; with `has_next_json_path`, a flag says whether there
    /// is one.
    NextPageUrl {
        link_json_path: JsonPath,
        has_next_json_path: Option<JsonPath>,
    },
    /// A token (cursor) from the body or a response header, sent back on the window's first
    /// request as a query parameter or a header.
    NextPageToken {
        from: TokenSource,
        to: TokenTarget,
        has_next_json_path: Option<JsonPath>,
    },
    /// `parameter` = records already read (from `first`); ends on a page shorter than the
    /// page size (or an empty one).
    Offset { parameter: String, first: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    JsonPath(JsonPath),
    Header(http::HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenTarget {
    Parameter(String),
    Header(http::HeaderName),
}

/// Why a window's paging stopped before its last page.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    #[error("more than {max} pages in one window (paging.max_pages); the window is not committed")]
    TooManyPages { max: u32 },
    #[error("page {page} gives a next {what} already seen in this window: the API loops")]
    Loop { what: &'static str, page: u32 },
    #[error("the page is not JSON, so its {what} at {path} cannot be read: {source}")]
    NotJson {
        what: &'static str,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the {what} at {path} is {found}; expected {expected}")]
    WrongType {
        what: &'static str,
        path: String,
        found: String,
        expected: &'static str,
    },
    #[error("{flag} says there is a next page, but {place} has none")]
    NoNextDespiteFlag { flag: String, place: String },
    #[error("the next {what} is {len} bytes, more than {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the next page token holds a control character")]
    TokenNotText,
    #[error("the {name} header is not text")]
    HeaderNotText { name: String },
    #[error("the Link header cannot be read: {0}")]
    LinkHeader(#[source] LinkHeaderError),
    #[error("the next link '{link}' is not a URL: {source}")]
    BadLink {
        link: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "the next link goes to {found}, not {expected}: refused, it would take the API's credentials elsewhere"
    )]
    OtherOrigin { found: String, expected: String },
}

/// The request of each page of one window, from the answers to the pages before.
#[derive(Debug)]
pub struct Pager {
    settings: PagingSettings,
    /// The window's first request, page size (and offset) included.
    first: PageRequest,
    /// Pages requested so far (the first one included).
    pages: u32,
    /// Tokens and links given so far, hashed: a loop is seen without keeping the text.
    seen: HashSet<[u8; 32]>,
    /// Records read so far, for `offset`.
    offset: u64,
}

impl Pager {
    pub fn new(settings: &PagingSettings, first: PageRequest) -> Pager {
        let mut first = first;
        if let Some(PageSize {
            size,
            parameter: Some(parameter),
        }) = &settings.page_size
        {
            set_query(&mut first.url, parameter, &size.to_string());
        }
        let mut offset = 0;
        if let Paging::Offset {
            parameter,
            first: start,
        } = &settings.paging
        {
            offset = *start;
            set_query(&mut first.url, parameter, &offset.to_string());
        }
        let mut seen = HashSet::new();
        if matches!(
            settings.paging,
            Paging::LinkHeader { .. } | Paging::NextPageUrl { .. }
        ) {
            // A link back to the first page is a loop too.
            seen.insert(digest(first.url.as_str()));
        }
        Pager {
            settings: settings.clone(),
            first,
            pages: 1,
            seen,
            offset,
        }
    }

    /// The window's first request: the poller's, with the page size (and first offset).
    pub fn first(&self) -> PageRequest {
        self.first.clone()
    }

    /// The next page's request, None at the end; Err on a loop (token/link seen twice) or over
    /// the page cap.
    pub fn next(
        &mut self,
        sent: &PageRequest,
        got: &PageResponse,
        records_on_page: usize,
    ) -> Result<Option<PageRequest>, PagingError> {
        let mut body = Body::new(&got.body);
        // Cloned (a few names and paths) so that following a link can update the pager.
        let paging = self.settings.paging.clone();
        let next = match &paging {
            Paging::None => None,
            Paging::LinkHeader { link_json_path } => {
                let link = match link_json_path {
                    Some(path) => body.text("next link", path)?,
                    None => next_link(&got.headers).map_err(PagingError::LinkHeader)?,
                };
                link.map(|link| self.follow(sent, &link)).transpose()?
            }
            Paging::NextPageUrl {
                link_json_path,
                has_next_json_path,
            } => match flag(&mut body, has_next_json_path.as_ref())? {
                Some(false) => None,
                has_next => match body.text("next link", link_json_path)? {
                    Some(link) => Some(self.follow(sent, &link)?),
                    None => {
                        return no_next(has_next, has_next_json_path, link_json_path.to_string());
                    }
                },
            },
            Paging::NextPageToken {
                from,
                to,
                has_next_json_path,
            } => match flag(&mut body, has_next_json_path.as_ref())? {
                Some(false) => None,
                has_next => {
                    let token = match from {
                        TokenSource::JsonPath(path) => body.text("next page token", path)?,
                        TokenSource::Header(name) => header_text(&got.headers, name)?,
                    };
                    match token {
                        Some(token) => Some(self.with_token(&token, to)?),
                        None => {
                            let place = match from {
                                TokenSource::JsonPath(path) => path.to_string(),
                                TokenSource::Header(name) => format!("the {name} header"),
                            };
                            return no_next(has_next, has_next_json_path, place);
                        }
                    }
                }
            },
            Paging::Offset { parameter, .. } => {
                let size = self.settings.page_size.as_ref().map(|p| p.size as usize);
                if records_on_page == 0 || size.is_some_and(|size| records_on_page < size) {
                    None
                } else {
                    self.offset = self.offset.saturating_add(records_on_page as u64);
                    let mut request = self.first.clone();
                    set_query(&mut request.url, parameter, &self.offset.to_string());
                    Some(request)
                }
            }
        };
        if next.is_some() {
            if self.pages >= self.settings.max_pages {
                return Err(PagingError::TooManyPages {
                    max: self.settings.max_pages,
                });
            }
            self.pages += 1;
        }
        Ok(next)
    }

    /// Pages requested so far in this window, the first included.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The request for a next link: resolved against the request that got it, on the same
    /// origin as the window's first request, never seen before in the window.
    fn follow(&mut self, sent: &PageRequest, link: &str) -> Result<PageRequest, PagingError> {
        if link.len() > MAX_LINK_BYTES {
            return Err(PagingError::TooLong {
                what: "link",
                len: link.len(),
                max: MAX_LINK_BYTES,
            });
        }
        let url = sent.url.join(link).map_err(|source| PagingError::BadLink {
            link: escape(&redact_url(link)),
            source,
        })?;
        if url.origin() != self.first.url.origin() {
            return Err(PagingError::OtherOrigin {
                found: escape(&url.origin().ascii_serialization()),
                expected: self.first.url.origin().ascii_serialization(),
            });
        }
        self.check_new("link", url.as_str())?;
        Ok(PageRequest {
            url,
            ..self.first.clone()
        })
    }

    /// The window's first request with the token added.
    fn with_token(&mut self, token: &str, to: &TokenTarget) -> Result<PageRequest, PagingError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(PagingError::TooLong {
                what: "page token",
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if token.chars().any(char::is_control) {
            return Err(PagingError::TokenNotText);
        }
        self.check_new("page token", token)?;
        let mut request = self.first.clone();
        match to {
            TokenTarget::Parameter(name) => set_query(&mut request.url, name, token),
            TokenTarget::Header(name) => {
                request
                    .headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_str()));
                request
                    .headers
                    .push((name.as_str().to_string(), token.to_string()));
            }
        }
        Ok(request)
    }

    fn check_new(&mut self, what: &'static str, text: &str) -> Result<(), PagingError> {
        if self.seen.insert(digest(text)) {
            Ok(())
        } else {
            Err(PagingError::Loop {
                what,
                page: self.pages,
            })
        }
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// `name=value` in the query, in place of any `name` there.
fn set_query(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(n, _)| n != name)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (n, v) in &kept {
        pairs.append_pair(n, v);
    }
    pairs.append_pair(name, value);
}

/// The page's JSON, parsed once and only if a path is asked.
struct Body<'a> {
    raw: &'a [u8],
    parsed: Option<serde_json::Value>,
}

impl<'a> Body<'a> {
    fn new(raw: &'a [u8]) -> Body<'a> {
        Body { raw, parsed: None }
    }

    fn at(
        &mut self,
        what: &'static str,
        path: &JsonPath,
    ) -> Result<Option<&serde_json::Value>, PagingError> {
        if self.parsed.is_none() {
            let value =
                serde_json::from_slice(self.raw).map_err(|source| PagingError::NotJson {
                    what,
                    path: path.to_string(),
                    source,
                })?;
            self.parsed = Some(value);
        }
        Ok(self.parsed.as_ref().and_then(|root| path.find(root)))
    }

    /// A string (or a number, as text) at `path`; `None` when absent, null or empty.
    fn text(&mut self, what: &'static str, path: &JsonPath) -> Result<Option<String>, PagingError> {
        match self.at(what, path)? {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(PagingError::WrongType {
                what,
                path: path.to_string(),
                found: describe(other),
                expected: "a string or a number",
            }),
        }
    }
}

/// The has-next flag when one is configured: absent or null reads as false (the last page
/// of many APIs leaves it out).
fn flag(body: &mut Body<'_>, path: Option<&JsonPath>) -> Result<Option<bool>, PagingError> {
    let Some(path) = path else {
        return Ok(None);
    };
    match body.at("has-next flag", path)? {
        None | Some(serde_json::Value::Null) => Ok(Some(false)),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(PagingError::WrongType {
            what: "has-next flag",
            path: path.to_string(),
            found: describe(other),
            expected: "true or false",
        }),
    }
}

/// No next link or token: the end, unless a has-next flag said there was more.
fn no_next(
    has_next: Option<bool>,
    flag: &Option<JsonPath>,
    place: String,
) -> Result<Option<PageRequest>, PagingError> {
    match (has_next, flag) {
        (Some(true), Some(flag)) => Err(PagingError::NoNextDespiteFlag {
            flag: flag.to_string(),
            place,
        }),
        _ => Ok(None),
    }
}

/// A response header's value as a token; `None` when absent or empty.
fn header_text(
    headers: &http::HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<String>, PagingError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| PagingError::HeaderNotText {
        name: name.to_string(),
    })?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Why a `Link` header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkHeaderError {
    #[error("it is not text")]
    NotText,
    #[error("expected {expected} at byte {at}, found {found}")]
    Expected {
        expected: &'static str,
        at: usize,
        found: String,
    },
    #[error("a quoted string starting at byte {at} is not closed")]
    Unclosed { at: usize },
}

/// The target of the first link with relation type `next`, over every `Link` header of the
/// answer (RFC 8288: several links per header, `rel` a space-separated list compared without
/// case, the first `rel` of a link the one that counts, quoted parameter values with `\`
/// escapes). The target is returned as written; the caller resolves it.
pub fn next_link(headers: &http::HeaderMap) -> Result<Option<String>, LinkHeaderError> {
    for value in headers.get_all(http::header::LINK) {
        let text = value.to_str().map_err(|_| LinkHeaderError::NotText)?;
        for link in parse_links(text)? {
            let next = link.rel.as_deref().is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if next {
                return Ok(Some(link.target));
            }
        }
    }
    Ok(None)
}

#[derive(Debug, PartialEq, Eq)]
struct Link {
    target: String,
    rel: Option<String>,
}

/// Every link of one `Link` header value.
fn parse_links(text: &str) -> Result<Vec<Link>, LinkHeaderError> {
    let bytes = text.as_bytes();
    let mut links = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    let found = |i: usize| match text[i..].chars().next() {
        Some(c) => format!("{c:?}"),
        None => "the end".to_string(),
    };
    loop {
        // Empty list elements are allowed (`#rule` of RFC 9110).
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(links);
        }
        if bytes[i] != b'<' {
            return Err(LinkHeaderError::Expected {
                expected: "'<'",
                at: i,
                found: found(i),
            });
        }
        let end = text[i..]
            .find('>')
            .map(|n| i + n)
            .ok_or(LinkHeaderError::Expected {
                expected: "'>'",
                at: text.len(),
                found: "the end".into(),
            })?;
        let mut link = Link {
            target: text[i + 1..end].trim().to_string(),
            rel: None,
        };
        i = end + 1;
        loop {
            skip_ws(&mut i);
            match bytes.get(i) {
                None | Some(b',') => break,
                Some(b';') => i += 1,
                Some(_) => {
                    return Err(LinkHeaderError::Expected {
                        expected: "';' or ','",
                        at: i,
                        found: found(i),
                    });
                }
            }
            skip_ws(&mut i);
            let start = i;
            while i < bytes.len() && is_token(bytes[i]) {
                i += 1;
            }
            if i == start {
                return Err(LinkHeaderError::Expected {
                    expected: "a parameter name",
                    at: i,
                    found: found(i),
                });
            }
            let name = &text[start..i];
            skip_ws(&mut i);
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                skip_ws(&mut i);
                if bytes.get(i) == Some(&b'"') {
                    let open = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None => return Err(LinkHeaderError::Unclosed { at: open }),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') if i + 1 < bytes.len() => {
                                let c = text[i + 1..].chars().next().unwrap_or('\\');
                                value.push(c);
                                i += 1 + c.len_utf8();
                            }
                            Some(_) => {
                                let c = text[i..].chars().next().unwrap_or('"');
                                value.push(c);
                                i += c.len_utf8();
                            }
                        }
                    }
                } else {
                    let start = i;
                    while i < bytes.len() && is_token(bytes[i]) {
                        i += 1;
                    }
                    value.push_str(&text[start..i]);
                }
            }
            // Only the first `rel` of a link counts (RFC 8288 §3.3).
            if name.eq_ignore_ascii_case("rel") && link.rel.is_none() {
                link.rel = Some(value);
            }
        }
        links.push(link);
    }
}

/// `tchar` of RFC 9110.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn request(url: &str) -> PageRequest {
        PageRequest {
            method: http::Method::GET,
            url: Url::parse(url).expect("a test URL"),
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
        }
    }

    fn settings(paging: Paging) -> PagingSettings {
        PagingSettings {
            paging,
            page_size: None,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }

    fn answer(body: &str) -> PageResponse {
        PageResponse {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn linked(link: &str) -> PageResponse {
        let mut got = answer("[]");
        got.headers.append(
            http::header::LINK,
            HeaderValue::from_str(link).expect("a header value"),
        );
        got
    }

    fn query(request: &PageRequest, name: &str) -> Option<String> {
        request
            .url
            .query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn link_headers_are_parsed_as_rfc_8288_writes_them() {
        let header = r#"<https://api.example/u?page=1>; rel="prev first", <https://api.example/u?a=1,2&page=3>; title="a, \"quoted\"; thing"; rel="last next", <https://api.example/u?page=9>; rel=next"#;
        let links = parse_links(header).expect("parses");
        assert_eq!(links.len(), 3);
        assert_eq!(links[1].target, "https://api.example/u?a=1,2&page=3");
        assert_eq!(links[1].rel.as_deref(), Some("last next"));
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::LINK,
            HeaderValue::from_static("<https://a.example/x>; rel=\"prev\""),
        );
        headers.append(http::header::LINK, HeaderValue::from_static(header));
        assert_eq!(
            next_link(&headers).expect("parses").as_deref(),
            Some("https://api.example/u?a=1,2&page=3"),
            "the first next link, over several headers"
        );
        let upper = parse_links("<x>; REL=\"NEXT\"; rel=prev").expect("parses");
        assert_eq!(
            upper[0].rel.as_deref(),
            Some("NEXT"),
            "the first rel counts"
        );
        assert_eq!(parse_links("").expect("empty"), vec![]);
        assert_eq!(parse_links(" , <a>;rel=next ,").expect("list").len(), 1);
    }

    #[test]
    fn a_malformed_link_header_is_an_error_not_the_end_of_the_window() {
        for (header, expected) in [
            ("https://a.example; rel=next", "expected '<' at byte 0"),
            ("<https://a.example; rel=next", "expected '>'"),
            ("<a>; rel=\"next", "not closed"),
            ("<a> rel=next", "expected ';' or ','"),
            ("<a>; =next", "a parameter name"),
        ] {
            let error = parse_links(header).expect_err(header);
            assert!(error.to_string().contains(expected), "{header}: {error}");
        }
        let mut pager = Pager::new(
            &settings(Paging::LinkHeader {
                link_json_path: None,
            }),
            request("https://a.example/u"),
        );
        let first = pager.first();
        let error = pager
            .next(&first, &linked("<b>; rel=\"next"), 1)
            .expect_err("malformed");
        assert!(matches!(error, PagingError::LinkHeader(_)), "{error}");
    }

    #[test]
    fn link_header_paging_follows_relative_links_and_ends_without_one() {
        let mut pager = Pager::new(
            &settings(Paging::LinkHeader {
                link_json_path: None,
            }),
            request("https://a.example/v1/users?from=1"),
        );
        let first = pager.first();
        let second = pager
            .next(&first, &linked("<users?from=1&page=2>; rel=\"next\""), 10)
            .expect("a link")
            .expect("a next page");
        assert_eq!(
            second.url.as_str(),
            "https://a.example/v1/users?from=1&page=2"
        );
        assert_eq!(second.headers, first.headers, "the window's headers go on");
        let third = pager
            .next(&second, &linked("</v1/users?from=1&page=3>; rel=next"), 10)
            .expect("a link")
            .expect("a next page");
        assert_eq!(
            third.url.as_str(),
            "https://a.example/v1/users?from=1&page=3"
        );
        let end = pager.next(&third, &linked("</v1/users?page=1>; rel=first"), 10);
        assert_eq!(end.expect("the end"), None);
        assert_eq!(pager.pages(), 3);
    }

    #[test]
    fn a_link_at_a_json_path_is_followed_and_a_link_elsewhere_refused() {
        let paging = settings(Paging::LinkHeader {
            link_json_path: Some(path("$.metadata.links.next")),
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        let next = pager
            .next(
                &first,
                &answer(r#"{"metadata": {"links": {"next": "https://a.example/u?p=2"}}}"#),
                5,
            )
            .expect("a link")
            .expect("a next page");
        assert_eq!(query(&next, "p").as_deref(), Some("2"));
        let null = pager.next(
            &next,
            &answer(r#"{"metadata": {"links": {"next": null}}}"#),
            5,
        );
        assert_eq!(null.expect("the end"), None);

        for (link, origin) in [
            ("https://evil.example/u?p=3", "https://evil.example"),
            ("http://a.example/u?p=3", "http://a.example"),
            ("https://a.example:8443/u?p=3", "https://a.example:8443"),
            ("//evil.example/u", "https://evil.example"),
        ] {
            let body = format!(r#"{{"metadata": {{"links": {{"next": "{link}"}}}}}}"#);
            let error = pager.next(&next, &answer(&body), 5).expect_err(link);
            assert_eq!(
                error.to_string(),
                format!(
                    "the next link goes to {origin}, not https://a.example: refused, it would take the API's credentials elsewhere"
                )
            );
        }
        let error = pager
            .next(
                &next,
                &answer(r#"{"metadata": {"links": {"next": {"href": "x"}}}}"#),
                5,
            )
            .expect_err("an object");
        assert_eq!(
            error.to_string(),
            "the next link at $.metadata.links.next is an object with 1 keys; expected a string or a number"
        );
        let error = pager
            .next(&next, &answer("<html>"), 5)
            .expect_err("not JSON");
        assert!(
            error
                .to_string()
                .starts_with("the page is not JSON, so its next link at $.metadata.links.next"),
            "{error}"
        );
    }

    #[test]
    fn next_page_url_paging_reads_the_flag_first() {
        let paging = settings(Paging::NextPageUrl {
            link_json_path: path("$.paging.next"),
            has_next_json_path: Some(path("$.paging.has_more")),
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        let next = pager
            .next(
                &first,
                &answer(r#"{"paging": {"next": "/u?after=5", "has_more": true}}"#),
                5,
            )
            .expect("a link")
            .expect("a next page");
        assert_eq!(next.url.as_str(), "https://a.example/u?after=5");
        let end = pager.next(
            &next,
            &answer(r#"{"paging": {"next": "/u?after=9", "has_more": false}}"#),
            5,
        );
        assert_eq!(end.expect("the flag says the end"), None);
        let end = pager.next(&next, &answer(r#"{"paging": {"next": "/u?after=9"}}"#), 5);
        assert_eq!(end.expect("no flag is false"), None);
        let error = pager
            .next(&next, &answer(r#"{"paging": {"has_more": true}}"#), 5)
            .expect_err("a flag without a link");
        assert_eq!(
            error.to_string(),
            "$.paging.has_more says there is a next page, but $.paging.next has none"
        );
        let error = pager
            .next(
                &next,
                &answer(r#"{"paging": {"has_more": 1, "next": "/x"}}"#),
                5,
            )
            .expect_err("a number flag");
        assert!(
            error.to_string().contains("expected true or false"),
            "{error}"
        );
    }

    #[test]
    fn next_page_token_paging_sends_the_token_as_a_parameter_or_a_header() {
        let mut paging = settings(Paging::NextPageToken {
            from: TokenSource::JsonPath(path("$.next")),
            to: TokenTarget::Parameter("cursor".into()),
            has_next_json_path: None,
        });
        paging.page_size = Some(PageSize {
            size: 2,
            parameter: Some("limit".into()),
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u?from=1&limit=99"));
        let first = pager.first();
        assert_eq!(
            first.url.as_str(),
            "https://a.example/u?from=1&limit=2",
            "the page size replaces one in the URL"
        );
        let second = pager
            .next(&first, &answer(r#"{"next": "c2"}"#), 2)
            .expect("token")
            .expect("page 2");
        assert_eq!(
            second.url.as_str(),
            "https://a.example/u?from=1&limit=2&cursor=c2"
        );
        let third = pager
            .next(&second, &answer(r#"{"next": 3}"#), 2)
            .expect("token")
            .expect("page 3");
        assert_eq!(
            query(&third, "cursor").as_deref(),
            Some("3"),
            "a number is a token too"
        );
        assert_eq!(
            pager
                .next(&third, &answer(r#"{"next": ""}"#), 2)
                .expect("the end"),
            None
        );

        let name = HeaderName::from_static("x-page-token");
        let mut paging = settings(Paging::NextPageToken {
            from: TokenSource::Header(HeaderName::from_static("x-next-token")),
            to: TokenTarget::Header(name.clone()),
            has_next_json_path: None,
        });
        paging.max_pages = 10;
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        let mut got = answer("[]");
        got.headers
            .insert("x-next-token", HeaderValue::from_static("t 2"));
        let second = pager.next(&first, &got, 0).expect("token").expect("page 2");
        assert_eq!(second.url, first.url);
        assert_eq!(
            second.headers.last(),
            Some(&("x-page-token".to_string(), "t 2".to_string()))
        );
        got.headers
            .insert("x-next-token", HeaderValue::from_static("t3"));
        let third = pager
            .next(&second, &got, 0)
            .expect("token")
            .expect("page 3");
        let tokens: Vec<_> = third
            .headers
            .iter()
            .filter(|(n, _)| n == "x-page-token")
            .collect();
        assert_eq!(
            tokens.len(),
            1,
            "the token replaces the last one: {tokens:?}"
        );
        assert_eq!(pager.next(&third, &answer("[]"), 0).expect("the end"), None);

        paging.paging = Paging::NextPageToken {
            from: TokenSource::Header(HeaderName::from_static("x-next-token")),
            to: TokenTarget::Parameter("cursor".into()),
            has_next_json_path: Some(path("$.more")),
        };
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let error = pager
            .next(&first, &answer(r#"{"more": true}"#), 0)
            .expect_err("a flag without a token");
        assert_eq!(
            error.to_string(),
            "$.more says there is a next page, but the x-next-token header has none"
        );
        let end = pager.next(&first, &answer(r#"{"more": false}"#), 0);
        assert_eq!(end.expect("the flag says the end"), None);
    }

    #[test]
    fn a_token_or_link_seen_twice_is_a_loop() {
        let paging = settings(Paging::NextPageToken {
            from: TokenSource::JsonPath(path("$.next")),
            to: TokenTarget::Parameter("cursor".into()),
            has_next_json_path: None,
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        let a = pager
            .next(&first, &answer(r#"{"next": "a"}"#), 1)
            .expect("a")
            .expect("page 2");
        let b = pager
            .next(&a, &answer(r#"{"next": "b"}"#), 1)
            .expect("b")
            .expect("page 3");
        let error = pager
            .next(&b, &answer(r#"{"next": "a"}"#), 1)
            .expect_err("a again");
        assert_eq!(
            error.to_string(),
            "page 3 gives a next page token already seen in this window: the API loops"
        );

        let mut pager = Pager::new(
            &settings(Paging::LinkHeader {
                link_json_path: None,
            }),
            request("https://a.example/u?page=1"),
        );
        let first = pager.first();
        let error = pager
            .next(&first, &linked("<?page=1>; rel=next"), 1)
            .expect_err("a link back to the first page");
        assert!(
            matches!(
                error,
                PagingError::Loop {
                    what: "link",
                    page: 1
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn the_page_cap_ends_a_window_that_never_ends() {
        let mut paging = settings(Paging::NextPageToken {
            from: TokenSource::JsonPath(path("$.next")),
            to: TokenTarget::Parameter("cursor".into()),
            has_next_json_path: None,
        });
        paging.max_pages = 3;
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let mut sent = pager.first();
        for page in 1..3 {
            let got = answer(&format!(r#"{{"next": "t{page}"}}"#));
            sent = pager
                .next(&sent, &got, 1)
                .expect("under the cap")
                .expect("a page");
        }
        let error = pager
            .next(&sent, &answer(r#"{"next": "t3"}"#), 1)
            .expect_err("the cap");
        assert!(
            matches!(error, PagingError::TooManyPages { max: 3 }),
            "{error}"
        );
        // The last page of the cap itself is fine.
        assert_eq!(pager.next(&sent, &answer("{}"), 1).expect("the end"), None);
    }

    #[test]
    fn tokens_and_links_are_bounded() {
        let paging = settings(Paging::NextPageToken {
            from: TokenSource::JsonPath(path("$.next")),
            to: TokenTarget::Header(HeaderName::from_static("x-page")),
            has_next_json_path: None,
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        let long = format!(r#"{{"next": "{}"}}"#, "t".repeat(MAX_TOKEN_BYTES + 1));
        let error = pager.next(&first, &answer(&long), 1).expect_err("too long");
        assert!(
            matches!(
                error,
                PagingError::TooLong {
                    what: "page token",
                    ..
                }
            ),
            "{error}"
        );
        let error = pager
            .next(&first, &answer(r#"{"next": "a\r\nX-Evil: 1"}"#), 1)
            .expect_err("a newline");
        assert!(matches!(error, PagingError::TokenNotText), "{error}");

        let mut pager = Pager::new(
            &settings(Paging::LinkHeader {
                link_json_path: Some(path("$.next")),
            }),
            request("https://a.example/u"),
        );
        let long = format!(r#"{{"next": "/u?{}"}}"#, "q".repeat(MAX_LINK_BYTES));
        let error = pager.next(&first, &answer(&long), 1).expect_err("too long");
        assert!(
            matches!(error, PagingError::TooLong { what: "link", .. }),
            "{error}"
        );
        let error = pager
            .next(&first, &answer(r#"{"next": "https://user:pw@[::1"}"#), 1)
            .expect_err("not a URL");
        assert!(!error.to_string().contains("pw"), "{error}");
    }

    #[test]
    fn offset_paging_counts_records_and_ends_on_a_short_page() {
        let mut paging = settings(Paging::Offset {
            parameter: "offset".into(),
            first: 0,
        });
        paging.page_size = Some(PageSize {
            size: 3,
            parameter: Some("limit".into()),
        });
        let mut pager = Pager::new(&paging, request("https://a.example/u?from=1"));
        let first = pager.first();
        assert_eq!(
            first.url.as_str(),
            "https://a.example/u?from=1&limit=3&offset=0"
        );
        let second = pager
            .next(&first, &answer("[]"), 3)
            .expect("full")
            .expect("page 2");
        assert_eq!(
            second.url.as_str(),
            "https://a.example/u?from=1&limit=3&offset=3"
        );
        let third = pager
            .next(&second, &answer("[]"), 3)
            .expect("full")
            .expect("page 3");
        assert_eq!(query(&third, "offset").as_deref(), Some("6"));
        assert_eq!(pager.next(&third, &answer("[]"), 2).expect("short"), None);

        paging.page_size = None;
        paging.paging = Paging::Offset {
            parameter: "skip".into(),
            first: 1,
        };
        let mut pager = Pager::new(&paging, request("https://a.example/u"));
        let first = pager.first();
        assert_eq!(query(&first, "skip").as_deref(), Some("1"));
        let second = pager
            .next(&first, &answer("[]"), 7)
            .expect("any")
            .expect("page 2");
        assert_eq!(query(&second, "skip").as_deref(), Some("8"));
        assert_eq!(pager.next(&second, &answer("[]"), 0).expect("empty"), None);
    }

    #[test]
    fn no_paging_is_one_page() {
        let mut pager = Pager::new(&settings(Paging::None), request("https://a.example/u"));
        let first = pager.first();
        assert_eq!(first, request("https://a.example/u"));
        assert_eq!(
            pager
                .next(&first, &linked("<?p=2>; rel=next"), 100)
                .expect("one page"),
            None
        );
    }
}
