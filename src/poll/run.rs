//! One poll integration's run: the windows due, each fetched page by page, judged by the
//! integration's validator and applied with its ledger entry in one sink transaction, then
//! finished in the journal. The first window that cannot be done ends the run (it stays
//! open, and is asked again first next time: a later window is never applied before it).

use std::io::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::page::{PageRequest, PageResponse, Pager, PagingError};
use super::response::{PageFormat, PageRecords, ResponseError, decode_body, records};
use super::template::fill;
use super::window::{Window, plan};
use super::{MAX_WINDOW_BYTES, PollMethod, PollSettings};
use crate::egress::EgressPolicy;
use crate::ledger::{Committed, Entity, FileRef, Version};
use crate::load::LoadError;
use crate::load_records::load_records;
use crate::outbound::{Endpoint, EndpointOptions, FetchRequest, OutboundError, RetryOn};
use crate::secret::redact_url;
use crate::sink::{FileLoad, Sink, SinkError};
use crate::state::{DropResult, JournaledDrop, Stage, StateError, StateStore};
use crate::telemetry::WindowPolled;
use crate::validate::{
    CountRows, FileFailure, FileReport, FileRules, JsonRecord, RowConsumer, ValidRecords, validate,
    validate_records,
};

/// The ledger version of every window: a window's key names it whole.
const WINDOW_VERSION: &str = "window";
/// Errors quoted in a window's failure.
const QUOTED_ERRORS: usize = 3;

/// Why a window could not be done; it is asked again by the next run.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("cannot set up the API client: {0}")]
    Setup(String),
    #[error("window {window}: {source}")]
    Api {
        window: String,
        #[source]
        source: OutboundError,
    },
    #[error("window {window}: {what} is larger than {limit} bytes; lower query_window_minutes")]
    TooLarge {
        window: String,
        what: &'static str,
        limit: usize,
    },
    #[error("window {window}: the API's records are not valid ({total} error(s)): {first}")]
    Invalid {
        window: String,
        total: u64,
        first: String,
    },
    #[error("window {window}, page {page}: {source}")]
    Page {
        window: String,
        page: usize,
        #[source]
        source: ResponseError,
    },
    #[error("window {window}, after page {page}: {source}")]
    Paging {
        window: String,
        page: usize,
        #[source]
        source: PagingError,
    },
    #[error(
        "window {window}: not finished within the run's {limit:?} (poll.max_run_seconds) after {pages} page(s); nothing of it committed, it is asked first next run"
    )]
    OutOfTime {
        window: String,
        pages: usize,
        limit: std::time::Duration,
    },
    #[error("window {window}: {source}")]
    Load {
        window: String,
        #[source]
        source: LoadError,
    },
    #[error("window {window}: cannot read the answer: {source}")]
    Read {
        window: String,
        #[source]
        source: std::io::Error,
    },
    #[error("window {window}: {source}")]
    Sink {
        window: String,
        #[source]
        source: SinkError,
    },
}

/// What one window did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReport {
    pub window: Window,
    /// Pages fetched (0 when the ledger had the window already).
    pub pages: usize,
    pub records: u64,
    /// Applied by an earlier run that died before finishing it: nothing was applied again.
    pub already_applied: bool,
}

/// What a run did: the windows done, and why it stopped early, if it did.
#[derive(Debug, Default)]
pub struct PollRun {
    pub windows: Vec<WindowReport>,
    pub error: Option<PollError>,
}

/// The HTTP client of a poll integration: its auth, timeout, attempts, rate limit and the
/// egress rule. Only 408, 429 and 5xx are asked again (never 400 or 401).
pub fn endpoint(settings: &PollSettings, egress: EgressPolicy) -> Result<Endpoint, PollError> {
    let auth = match &settings.auth {
        Some(auth) => Some(auth.build().map_err(PollError::Setup)?),
        None => None,
    };
    Endpoint::new(EndpointOptions {
        attempts: settings.attempts,
        timeout: settings.timeout,
        rate_limit_qps: settings.rate_limit_qps,
        auth,
        headers: Vec::new(),
        retry_on: RetryOn::Standard,
        egress,
    })
    .map_err(|e| PollError::Setup(e.to_string()))
}

/// A poll integration at work, under the lease `lease` (the journal refuses a window begun
/// by a replica that lost it).
pub struct Poller<'a, S> {
    pub integration: &'a str,
    pub entity: Entity,
    pub rules: &'a FileRules,
    pub settings: &'a PollSettings,
    pub endpoint: &'a Endpoint,
    pub sink: &'a S,
    pub state: &'a dyn StateStore,
    pub lease: Option<i64>,
}

impl<S: Sink> Poller<'_, S> {
    /// Does the windows due at `now`, in order, until one fails or `stop` is cancelled.
    pub async fn run(&self, now: DateTime<Utc>, stop: &CancellationToken) -> PollRun {
        let mut run = PollRun::default();
        let planned = match self.plan(now).await {
            Ok(planned) => planned,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        };
        // A slow or endless API holds its worker this long at most: the windows left are the
        // next run's.
        let deadline = tokio::time::Instant::now() + self.settings.max_run;
        for (window, journaled) in planned {
            if stop.is_cancelled() || tokio::time::Instant::now() >= deadline {
                break;
            }
            match self.window(window, journaled, deadline).await {
                Ok(report) => run.windows.push(report),
                Err(e) => {
                    WindowPolled {
                        integration: self.integration,
                        window: &window.key(),
                        pages: 0,
                        records: 0,
                        result: "failed",
                    }
                    .emit();
                    run.error = Some(e);
                    break;
                }
            }
        }
        run
    }

    /// The windows due, each with its journal entry when an earlier run began it.
    async fn plan(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Window, Option<JournaledDrop>)>, PollError> {
        let open: Vec<(Window, JournaledDrop)> = (self.state.open_drops(self.integration).await?)
            .into_iter()
            .filter_map(|drop| Some((Window::from_key(&drop.folder)?, drop)))
            .collect();
        let last = self
            .state
            .last_target(self.integration)
            .await?
            .and_then(|target| Window::from_key(&target));
        let windows: Vec<Window> = open.iter().map(|(w, _)| *w).collect();
        let mut journal = open.into_iter();
        Ok(plan(
            &windows,
            last,
            self.settings.window,
            now,
            self.settings.max_windows_per_run,
        )
        .into_iter()
        .map(|window| (window, journal.next().map(|(_, drop)| drop)))
        .collect())
    }

    /// One window: journaled, fetched, applied with its ledger entry, finished.
    async fn window(
        &self,
        window: Window,
        journaled: Option<JournaledDrop>,
        deadline: tokio::time::Instant,
    ) -> Result<WindowReport, PollError> {
        let key = window.key();
        let drop = match journaled {
            Some(mut drop) => {
                drop.lease = self.lease;
                drop
            }
            None => {
                let drop = JournaledDrop {
                    integration: self.integration.to_string(),
                    folder: key.clone(),
                    target: key.clone(),
                    manifest: Vec::new(),
                    stage: Stage::Loading,
                    started_at: Utc::now(),
                    lease: self.lease,
                };
                self.state.begin_drop(&drop).await?;
                drop
            }
        };
        let file = FileRef {
            integration: self.integration.to_string(),
            entity: self.entity,
            key: key.clone(),
            version: Version::ETag(WINDOW_VERSION.to_string()),
        };
        let sink_error = |source| PollError::Sink {
            window: key.clone(),
            source,
        };
        let report = match self.sink.applied(&file).await.map_err(sink_error)? {
            // Applied by a run that died before it finished the window: not asked again.
            Some(prior) => WindowReport {
                window,
                pages: 0,
                records: prior.rows,
                already_applied: true,
            },
            None => {
                let pages = self.fetch(window, deadline).await?;
                let (records, committed) = self.apply(&file, &pages).await?;
                WindowReport {
                    window,
                    pages: pages.count,
                    records,
                    already_applied: matches!(committed, Committed::AlreadyApplied(_)),
                }
            }
        };
        crate::crash_point!("poll-after-window-commit");
        let result = DropResult {
            success: true,
            records: report.records,
            message: format!("window {key}: {} record(s)", report.records),
        };
        if drop.stage == Stage::Loading {
            self.state.report_drop(&drop, &result, None).await?;
        }
        self.state.finish_drop(&drop).await?;
        WindowPolled {
            integration: self.integration,
            window: &key,
            pages: report.pages,
            records: report.records,
            result: if report.already_applied {
                "already_applied"
            } else {
                "applied"
            },
        }
        .emit();
        Ok(report)
    }

    /// Every page of `window`, the next one asked as the paging type says, within the page
    /// cap, [`MAX_WINDOW_BYTES`] and the run's `deadline` (checked before each page; a page
    /// asked is bounded by the request timeout and attempts).
    async fn fetch(
        &self,
        window: Window,
        deadline: tokio::time::Instant,
    ) -> Result<Pages, PollError> {
        let key = window.key();
        let response = &self.settings.response;
        let mut pager = Pager::new(&self.settings.paging, request(self.settings, window)?);
        let mut pages = Pages::default();
        let mut next = Some(pager.first());
        let mut bytes = 0usize;
        while let Some(sent) = next.take() {
            if tokio::time::Instant::now() >= deadline {
                return Err(PollError::OutOfTime {
                    window: key,
                    pages: pages.count,
                    limit: self.settings.max_run,
                });
            }
            let request = FetchRequest {
                method: sent.method.clone(),
                url: sent.url.to_string(),
                headers: sent.headers.clone(),
                body: sent.body.clone(),
            };
            let limit = usize::try_from(response.max_page_bytes).unwrap_or(usize::MAX);
            let fetched = self
                .endpoint
                .fetch(&request, limit)
                .await
                .map_err(|source| PollError::Api {
                    window: key.clone(),
                    source,
                })?;
            let page = pages.count + 1;
            let page_error = |source| PollError::Page {
                window: key.clone(),
                page,
                source,
            };
            if fetched.truncated {
                return Err(page_error(ResponseError::TooLarge {
                    limit: response.max_page_bytes,
                    after: "",
                }));
            }
            let body = decode_body(fetched.body, &fetched.headers, response).map_err(page_error)?;
            bytes = bytes.saturating_add(body.len());
            if bytes > MAX_WINDOW_BYTES {
                return Err(PollError::TooLarge {
                    window: key,
                    what: "the window's answer",
                    limit: MAX_WINDOW_BYTES,
                });
            }
            let got = PageResponse {
                status: fetched.status,
                headers: fetched.headers,
                body,
            };
            let records = records(&got, response).map_err(page_error)?;
            let on_page = records.count(response);
            next = pager
                .next(&sent, &got, on_page)
                .map_err(|source| PollError::Paging {
                    window: key.clone(),
                    page,
                    source,
                })?;
            pages.count = page;
            match records {
                PageRecords::Csv(text) => {
                    // An empty page is a page without records.
                    if !text.iter().all(u8::is_ascii_whitespace) {
                        let gz = gzipped(text).map_err(|source| PollError::Read {
                            window: key.clone(),
                            source,
                        })?;
                        pages.csv.push(gz);
                    }
                }
                PageRecords::Json(records) if records.is_empty() => {}
                PageRecords::Json(records) => pages.json.push((page, records)),
            }
        }
        Ok(pages)
    }

    /// The pages' records into the sink with the window's ledger entry, in one transaction;
    /// nothing when any record is invalid. A sink that cannot roll back gets them only once
    /// every page was judged.
    async fn apply(&self, file: &FileRef, pages: &Pages) -> Result<(u64, Committed), PollError> {
        let key = &file.key;
        let sink_error = |source| PollError::Sink {
            window: key.clone(),
            source,
        };
        if !pages.json.is_empty() {
            return self.apply_json(file, pages).await;
        }
        let rules = self.csv_rules();
        if !self.sink.transactional() {
            judge(&rules, key, &pages.csv, &mut CountRows::default()).await?;
        }
        let mut load = self
            .sink
            .begin(file, Utc::now())
            .await
            .map_err(sink_error)?;
        let rows = match judge(&rules, key, &pages.csv, &mut load).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = load.rollback().await; // Abandoned either way.
                return Err(e);
            }
        };
        crate::crash_point!("poll-before-window-commit");
        let committed = load.commit(rows, &file.version).await.map_err(sink_error)?;
        Ok((rows, committed))
    }

    /// JSON pages: each page's records judged by the record validator (nothing applied when
    /// any is invalid), then applied as one load named by the window.
    async fn apply_json(
        &self,
        file: &FileRef,
        pages: &Pages,
    ) -> Result<(u64, Committed), PollError> {
        let key = &file.key;
        let mut valid = Vec::with_capacity(pages.json.len());
        let mut total = 0;
        let mut first: Vec<String> = Vec::new();
        for (page, records) in &pages.json {
            match validate_records(self.rules, records) {
                Ok(records) => valid.push(records),
                Err(errors) => {
                    total += errors.total;
                    for error in &errors.first {
                        if first.len() < QUOTED_ERRORS {
                            first.push(format!("page {page}, {error}"));
                        }
                    }
                }
            }
        }
        if total > 0 {
            return Err(PollError::Invalid {
                window: key.clone(),
                total,
                first: first.join("; "),
            });
        }
        let batches: Vec<&ValidRecords> = valid.iter().collect();
        let rows = batches.iter().map(|b| b.len() as u64).sum();
        let committed = load_records(self.sink, file, &batches, Utc::now())
            .await
            .map_err(|source| PollError::Load {
                window: key.clone(),
                source,
            })?;
        Ok((rows, committed))
    }

    /// The integration's rules, with the CSV dialect of the API's pages.
    fn csv_rules(&self) -> FileRules {
        let mut rules = self.rules.clone();
        if let PageFormat::Csv(dialect) = &self.settings.response.format {
            rules.csv = dialect.clone();
        }
        rules
    }
}

/// What a window's pages held.
#[derive(Debug, Default)]
struct Pages {
    count: usize,
    /// CSV pages, gzipped for the validator.
    csv: Vec<Bytes>,
    /// JSON pages' records, with the page's number.
    json: Vec<(usize, Vec<JsonRecord>)>,
}

/// The request of the first page of `window`: the configured query parameters and
/// headers, the window's times put in place of the placeholders and in the start and
/// end attributes.
pub fn request(settings: &PollSettings, window: Window) -> Result<PageRequest, PollError> {
    let start = settings.time_format.format(window.start);
    let end = settings.time_format.format(window.end);
    let mut query: Vec<(String, String)> = settings
        .query
        .iter()
        .map(|(name, value)| (name.clone(), fill(value, &start, &end)))
        .collect();
    if let Some(name) = &settings.start_attribute {
        query.push((name.clone(), start.clone()));
    }
    if let Some(name) = &settings.end_attribute {
        query.push((name.clone(), end.clone()));
    }
    let mut url = url::Url::parse(&settings.endpoint).map_err(|e| {
        PollError::Setup(format!(
            "api_endpoint {} is not a URL: {e}",
            redact_url(&settings.endpoint)
        ))
    })?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(&query);
    }
    let headers = settings
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), fill(value, &start, &end)))
        .collect();
    let (method, body) = match &settings.method {
        PollMethod::Get => (http::Method::GET, None),
        PollMethod::Post { payload } => (
            http::Method::POST,
            payload.as_ref().map(|p| fill(p, &start, &end).into_bytes()),
        ),
    };
    Ok(PageRequest {
        method,
        url,
        headers,
        body,
    })
}

/// Every page through the validator into `consumer`; the rows, or the first errors.
async fn judge<C>(
    rules: &FileRules,
    key: &str,
    pages: &[Bytes],
    consumer: &mut C,
) -> Result<u64, PollError>
where
    C: RowConsumer,
    SinkError: From<C::Error>,
{
    let mut rows = 0;
    let mut total = 0;
    let mut first: Vec<String> = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let name = format!("{key} page {}", n + 1);
        let source = std::io::Cursor::new(page.clone());
        let report: FileReport = validate(rules, &name, source, consumer, None)
            .await
            .map_err(|failure| match failure {
                FileFailure::Source(source) => PollError::Read {
                    window: key.to_string(),
                    source,
                },
                FileFailure::Consumer(e) => PollError::Sink {
                    window: key.to_string(),
                    source: SinkError::from(e),
                },
            })?;
        rows += report.rows;
        total += report.errors.total;
        for error in &report.errors.first {
            if first.len() < QUOTED_ERRORS {
                first.push(format!("page {}, {error}", n + 1));
            }
        }
    }
    if total > 0 {
        return Err(PollError::Invalid {
            window: key.to_string(),
            total,
            first: first.join("; "),
        });
    }
    Ok(rows)
}

/// A CSV page (un-gzipped by [`decode_body`]) as the gzip data the validator reads.
fn gzipped(body: Bytes) -> std::io::Result<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(&body)?;
    Ok(Bytes::from(encoder.finish()?))
}

/// Asks the API for the first page of the window ending `now`, as `dropfolder check` does:
/// what it answered (the status and the records on that page), or why it could not be
/// asked or read. Nothing is applied.
pub async fn probe(
    settings: &PollSettings,
    egress: EgressPolicy,
    now: DateTime<Utc>,
) -> Result<String, PollError> {
    let endpoint = endpoint(settings, egress)?;
    let window = Window {
        start: now - settings.window,
        end: now,
    };
    let key = window.key();
    let first = Pager::new(&settings.paging, request(settings, window)?).first();
    let limit = usize::try_from(settings.response.max_page_bytes).unwrap_or(usize::MAX);
    let fetched = endpoint
        .fetch(
            &FetchRequest {
                method: first.method,
                url: first.url.to_string(),
                headers: first.headers,
                body: first.body,
            },
            limit,
        )
        .await
        .map_err(|source| PollError::Api {
            window: key.clone(),
            source,
        })?;
    let page_error = |source| PollError::Page {
        window: key.clone(),
        page: 1,
        source,
    };
    if fetched.truncated {
        return Err(page_error(ResponseError::TooLarge {
            limit: settings.response.max_page_bytes,
            after: "",
        }));
    }
    let body =
        decode_body(fetched.body, &fetched.headers, &settings.response).map_err(page_error)?;
    let got = PageResponse {
        status: fetched.status,
        headers: fetched.headers,
        body,
    };
    let on_page = records(&got, &settings.response)
        .map_err(page_error)?
        .count(&settings.response);
    Ok(format!(
        "answered {} with {on_page} record(s) on the first page of the last {} minute(s)",
        got.status,
        settings.window.num_minutes()
    ))
}
