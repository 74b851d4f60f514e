//! The poller's paging and response parsing against a real paged API on 127.0.0.1
//! (`common/paged_api.rs`): for each paging type of source document 001, a small loop sends
//! the [`Pager`]'s requests with reqwest and collects the records, which must be every record
//! of the window exactly once; on a looping or endless API the loop check and the page cap
//! end the window with an error.

#[path = "common/paged_api.rs"]
mod paged_api;

use dropfolder::config::poll_paging::{PagingConfig, ResponseConfig};
use dropfolder::poll::page::{PageRequest, PageResponse, Pager, PagingError, PagingSettings};
use dropfolder::poll::response::{PageRecords, ResponseSettings, decode_body, records};
use paged_api::PagedApi;
use serde_json::Value;

fn paging(text: &str) -> PagingSettings {
    toml::from_str::<PagingConfig>(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .compile()
        .unwrap_or_else(|problems| panic!("{text}: {problems:?}"))
}

fn response(text: &str) -> ResponseSettings {
    toml::from_str::<ResponseConfig>(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .compile()
        .unwrap_or_else(|problems| panic!("{text}: {problems:?}"))
}

fn get(url: &str) -> PageRequest {
    PageRequest {
        method: http::Method::GET,
        url: url::Url::parse(url).expect("the API's URL"),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
    }
}

/// What a window's paging produced: the records in order, or the error that ended it, and
/// the pages requested either way.
struct Window {
    records: Result<Vec<Value>, PagingError>,
    pages: u32,
}

/// Sends the pager's requests until the window ends, as the poller does.
async fn poll_window(
    first: PageRequest,
    paging: &PagingSettings,
    settings: &ResponseSettings,
) -> Window {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut pager = Pager::new(paging, first);
    let mut sent = pager.first();
    let mut all = Vec::new();
    loop {
        let mut request = client.request(sent.method.clone(), sent.url.clone());
        for (name, value) in &sent.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &sent.body {
            request = request.body(body.clone());
        }
        let answer = request.send().await.expect("the local API answers");
        let status = answer.status().as_u16();
        assert_eq!(status, 200, "{}", sent.url);
        let headers = answer.headers().clone();
        let raw = answer.bytes().await.expect("a body");
        let got = PageResponse {
            status,
            body: decode_body(raw, &headers, settings).expect("a readable body"),
            headers,
        };
        let page = records(&got, settings).expect("records");
        let on_page = page.count(settings);
        match page {
            PageRecords::Json(list) => all.extend(list.into_iter().map(Value::Object)),
            PageRecords::Csv(text) => all.extend(
                String::from_utf8_lossy(&text)
                    .lines()
                    .skip(1)
                    .map(|line| Value::String(line.to_string())),
            ),
        }
        match pager.next(&sent, &got, on_page) {
            Ok(Some(next)) => sent = next,
            Ok(None) => {
                return Window {
                    records: Ok(all),
                    pages: pager.pages(),
                };
            }
            Err(e) => {
                return Window {
                    records: Err(e),
                    pages: pager.pages(),
                };
            }
        }
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r.get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

fn expected(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("u{i}")).collect()
}

/// Every record once, in order, in the pages a page size of `limit` makes.
async fn assert_every_record_once(path: &str, paging_toml: &str, response_toml: &str, pages: u32) {
    let api = PagedApi::start(PagedApi::users(7)).await;
    let window = poll_window(
        get(&api.at(path)),
        &paging(paging_toml),
        &response(response_toml),
    )
    .await;
    let records = window.records.unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(ids(&records), expected(7), "{path}");
    assert_eq!(window.pages, pages, "{path}");
    assert_eq!(api.requests().len(), pages as usize, "{path}");
}

#[tokio::test]
async fn link_header_paging_gets_every_record_once() {
    assert_every_record_once(
        "/link",
        "type = \"link_header\"\npage_size = 3\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$.value\"]",
        3,
    )
    .await;
}

#[tokio::test]
async fn link_header_paging_by_json_path_gets_every_record_once() {
    assert_every_record_once(
        "/link_body",
        "type = \"link_header\"\nlink_json_path = \"$.metadata.links.next\"",
        "events_json_paths = [\"$.value\"]",
        4,
    )
    .await;
}

#[tokio::test]
async fn next_page_url_paging_gets_every_record_once() {
    assert_every_record_once(
        "/next_url",
        "type = \"next_page_url\"\nlink_json_path = \"$.paging.next\"\nhas_next_json_path = \"$.paging.has_more\"\npage_size = 3\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$.data\"]",
        3,
    )
    .await;
}

#[tokio::test]
async fn next_page_token_paging_in_a_parameter_gets_every_record_once() {
    assert_every_record_once(
        "/token",
        "type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\"\npage_size = 2\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$.value\"]",
        4,
    )
    .await;
}

#[tokio::test]
async fn next_page_token_paging_in_headers_gets_every_record_once() {
    assert_every_record_once(
        "/token_header",
        "type = \"next_page_token\"\ntoken_header = \"X-Next-Token\"\nheader = \"X-Page-Token\"\npage_size = 5\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$\"]",
        2,
    )
    .await;
}

#[tokio::test]
async fn offset_paging_gets_every_record_once() {
    // 7 records by 7: a full page, then an empty one ends the window.
    assert_every_record_once(
        "/offset",
        "type = \"offset\"\nparameter = \"offset\"\npage_size = 7\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$.items\"]",
        2,
    )
    .await;
    assert_every_record_once(
        "/offset",
        "type = \"offset\"\nparameter = \"offset\"\npage_size = 3\npage_size_parameter = \"limit\"",
        "events_json_paths = [\"$.items\"]",
        3,
    )
    .await;
}

#[tokio::test]
async fn no_paging_is_one_request() {
    assert_every_record_once("/none", "", "events_json_paths = [\"$.value\"]", 1).await;
}

#[tokio::test]
async fn a_gzipped_csv_api_pages_by_offset() {
    let api = PagedApi::start(PagedApi::users(5)).await;
    let window = poll_window(
        get(&api.at("/csv")),
        &paging("type = \"offset\"\nparameter = \"offset\"\npage_size = 2\npage_size_parameter = \"limit\""),
        &response("format = \"csv\"\ngzip = true"),
    )
    .await;
    let lines: Vec<String> = window
        .records
        .expect("every page")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0], "u1@example.com,u1,2026-01-01T00:01:00Z");
    assert_eq!(lines[4], "u5@example.com,u5,2026-01-01T00:05:00Z");
    assert_eq!(window.pages, 3);
}

#[tokio::test]
async fn the_window_filter_of_the_first_request_stays_on_every_page() {
    let api = PagedApi::start(PagedApi::users(9)).await;
    let first = get(&api.at("/token?from=2026-01-01T00:03:00Z&until=2026-01-01T00:08:00Z"));
    let window = poll_window(
        first,
        &paging("type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\""),
        &response("events_json_paths = [\"$.value\"]"),
    )
    .await;
    assert_eq!(
        ids(&window.records.expect("every page")),
        ["u3", "u4", "u5", "u6", "u7"]
    );
    for seen in api.requests() {
        assert_eq!(
            seen.query.get("from").map(String::as_str),
            Some("2026-01-01T00:03:00Z")
        );
        assert_eq!(
            seen.query.get("until").map(String::as_str),
            Some("2026-01-01T00:08:00Z")
        );
    }
}

#[tokio::test]
async fn a_looping_api_ends_the_window_with_an_error() {
    let api = PagedApi::start(PagedApi::users(2)).await;
    let window = poll_window(
        get(&api.at("/loop")),
        &paging("type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\""),
        &response("events_json_paths = [\"$.value\"]"),
    )
    .await;
    let error = window.records.expect_err("a loop");
    assert!(
        matches!(
            error,
            PagingError::Loop {
                what: "page token",
                page: 3
            }
        ),
        "{error}"
    );
    assert_eq!(api.requests().len(), 3, "no request after the loop is seen");
}

#[tokio::test]
async fn an_endless_api_stops_at_the_page_cap() {
    let api = PagedApi::start(PagedApi::users(2)).await;
    let window = poll_window(
        get(&api.at("/endless")),
        &paging("type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\"\nmax_pages = 25"),
        &response("events_json_paths = [\"$.value\"]"),
    )
    .await;
    let error = window.records.expect_err("the cap");
    assert!(
        matches!(error, PagingError::TooManyPages { max: 25 }),
        "{error}"
    );
    assert_eq!(api.requests().len(), 25, "exactly the cap was requested");
}
