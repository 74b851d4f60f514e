//! One outbound HTTP layer for the callback and the HTTP sinks: per endpoint a timeout
//! (1..180 s), a number of attempts (1..6), exponential backoff with full jitter, `Retry-After`
//! honoured on 429 and 503, and a rate limit in requests per second. What is retried is the
//! endpoint's [`RetryOn`]; secrets travel in headers marked sensitive and appear in no message.
//!
//! The other side is a customer's server, so it is trusted with nothing: a body is read only
//! as far as [`MAX_ERROR_BODY`] (then the connection is dropped), no redirect is followed (it
//! would carry the body and the credentials elsewhere), every address is put to the
//! [`EgressPolicy`] (IP literals here, names in `resolve.rs`), and a URL is shown only through
//! [`redact_url`].

pub(crate) mod auth;
mod fetch;
mod resolve;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::egress::{EgressPolicy, Refused};
use crate::secret::redact_url;
pub use auth::{Auth, AuthKind, AuthSettings};
pub use fetch::{FetchRequest, Fetched};

/// First retry delay; doubled each attempt, then drawn uniformly below it (full jitter).
const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is not waited for within one delivery.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Characters of an error response kept for the message.
const BODY_EXCERPT: usize = 300;
/// Bytes of an error response read at most; the rest is never read (the connection is
/// dropped), whatever the server sends.
pub const MAX_ERROR_BODY: usize = 4 * 1024;

/// Which answers are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// 408, 429 and every 5xx (the callback, generic sinks, the DCR preset).
    Standard,
    /// 429, 500, 503 and 504 only (source document 004's table: never 400, 401 or 413).
    StreamingIngest,
}

impl RetryOn {
    pub fn retries(self, status: StatusCode) -> bool {
        match self {
            RetryOn::Standard => {
                status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            RetryOn::StreamingIngest => matches!(status.as_u16(), 429 | 500 | 503 | 504),
        }
    }
}

/// Why a request was not delivered (after its retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// `url` is always redacted ([`redact_url`]), as in every variant.
    #[error("{url} answered {status} after {attempts} attempt(s): {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    #[error("{url}: {message} (after {attempts} attempt(s))")]
    Transport {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error(
        "{url} answered {status}, a redirect to {location}; redirects are not followed (they would carry the request and its credentials elsewhere)"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("{url}: {source}")]
    Refused {
        url: String,
        #[source]
        source: Refused,
    },
    #[error("cannot get an OAuth2 token from {0}")]
    Token(String),
    #[error("{0}")]
    Config(String),
}

impl OutboundError {
    pub fn status(&self) -> Option<u16> {
        match self {
            OutboundError::Status { status, .. } | OutboundError::Redirect { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Whether asking again (later, unchanged) cannot succeed: a 4xx other than 408 and 429,
    /// or a redirect, which is never followed.
    pub fn is_permanent(&self) -> bool {
        match self {
            OutboundError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            OutboundError::Redirect { .. } => true,
            _ => false,
        }
    }
}

/// Options of one endpoint, from the config.
#[derive(Debug)]
pub struct EndpointOptions {
    pub attempts: u32,
    pub timeout: Duration,
    pub rate_limit_qps: Option<f64>,
    pub auth: Option<Auth>,
    pub headers: Vec<(String, String)>,
    pub retry_on: RetryOn,
    /// Which addresses the endpoint may reach (`[outbound] allow_networks`).
    pub egress: EgressPolicy,
}

/// A destination for outbound requests.
#[derive(Debug, Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    attempts: u32,
    timeout: Duration,
    limiter: Option<DefaultDirectRateLimiter>,
    auth: Option<Auth>,
    headers: HeaderMap,
    retry_on: RetryOn,
    egress: Arc<EgressPolicy>,
}

/// A delivered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    pub attempts: u32,
}

impl Endpoint {
    pub fn new(options: EndpointOptions) -> Result<Endpoint, OutboundError> {
        let egress = Arc::new(options.egress);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(resolve::GuardedResolver::new(egress.clone()))
            .user_agent(concat!("dropfolder/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OutboundError::Config(format!("cannot build an HTTP client: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| OutboundError::Config(format!("'{name}' is not a header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                OutboundError::Config(format!("the value of header {name} is not valid"))
            })?;
            headers.insert(name, value);
        }
        let limiter = match options.rate_limit_qps {
            Some(qps) if qps > 0.0 => {
                let period = Duration::from_secs_f64(1.0 / qps);
                let quota = Quota::with_period(period).map(|q| q.allow_burst(NonZeroU32::MIN));
                quota.map(RateLimiter::direct)
            }
            _ => None,
        };
        Ok(Endpoint {
            client,
            inner: Arc::new(Inner {
                attempts: options.attempts.clamp(1, 6),
                timeout: options.timeout,
                limiter,
                auth: options.auth,
                headers,
                retry_on: options.retry_on,
                egress,
            }),
        })
    }

    /// POSTs `body` to `url` until it is accepted (2xx) or the attempts are spent.
    pub async fn post(
        &self,
        url: &str,
        body: Bytes,
        content_type: &'static str,
        headers: &[(&'static str, String)],
    ) -> Result<Delivered, OutboundError> {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(BASE_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_max_times(self.inner.attempts as usize - 1);
        let attempt = || async {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.attempt(url, body.clone(), content_type, headers, n)
                .await
                .map(|status| Delivered {
                    status,
                    attempts: n,
                })
        };
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| self.retryable(e))
            .adjust(|e, delay| match e {
                OutboundError::Status { retry_after: Some(wait), .. } => Some(*wait),
                // Full jitter: anywhere between zero and the exponential delay.
                _ => delay.map(|d| d.mul_f64(fastrand::f64())),
            })
            .notify(|e, delay| tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "outbound request failed; retrying"))
            .await
    }

    fn retryable(&self, error: &OutboundError) -> bool {
        match error {
            OutboundError::Status {
                status,
                retry_after,
                ..
            } => {
                StatusCode::from_u16(*status).is_ok_and(|s| self.inner.retry_on.retries(s))
                    && retry_after.is_none_or(|wait| wait <= MAX_RETRY_AFTER)
            }
            OutboundError::Transport { .. } => true,
            OutboundError::Redirect { .. }
            | OutboundError::Refused { .. }
            | OutboundError::Token(_)
            | OutboundError::Config(_) => false,
        }
    }

    /// What every request does first: the egress rule on an IP in the URL (never resolved,
    /// so the resolver cannot refuse it), then its turn under the rate limit.
    async fn admit(&self, url: &str) -> Result<(), OutboundError> {
        self.inner
            .egress
            .check_url_ip(url)
            .map_err(|source| OutboundError::Refused {
                url: redact_url(url),
                source,
            })?;
        if let Some(limiter) = &self.inner.limiter {
            limiter.until_ready().await;
        }
        Ok(())
    }

    async fn attempt(
        &self,
        url: &str,
        body: Bytes,
        content_type: &'static str,
        headers: &[(&'static str, String)],
        n: u32,
    ) -> Result<u16, OutboundError> {
        self.admit(url).await?;
        let mut request = self
            .client
            .post(url)
            .timeout(self.inner.timeout)
            .headers(self.inner.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(auth) = &self.inner.auth {
            request = auth
                .apply(&self.client, &self.inner.egress, request)
                .await?;
        }
        let response = request.send().await.map_err(|e| OutboundError::Transport {
            url: redact_url(url),
            message: auth::without_url(e),
            attempts: n,
        })?;
        let status = response.status();
        if status.is_success() {
            // The body is not read: dropping the response drops the connection.
            return Ok(status.as_u16());
        }
        Err(self.failure(url, response, n).await)
    }

    /// The error of an answer that is not a success: a redirect (never followed), or its
    /// status with an excerpt of its body and its `Retry-After`. A 401 drops a cached token.
    async fn failure(&self, url: &str, response: reqwest::Response, n: u32) -> OutboundError {
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "nowhere".to_string(), redact_url);
            return OutboundError::Redirect {
                url: redact_url(url),
                status: status.as_u16(),
                location: crate::validate::escape(
                    &location.chars().take(BODY_EXCERPT).collect::<String>(),
                ),
            };
        }
        if status == StatusCode::UNAUTHORIZED
            && let Some(auth) = &self.inner.auth
        {
            auth.invalidate().await;
        }
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            _ => None,
        };
        let (bytes, _) = read_bounded(response, MAX_ERROR_BODY).await;
        let text = String::from_utf8_lossy(&bytes);
        let body: String =
            crate::validate::escape(&text.chars().take(BODY_EXCERPT).collect::<String>());
        OutboundError::Status {
            url: redact_url(url),
            status: status.as_u16(),
            body,
            attempts: n,
            retry_after,
        }
    }
}

/// At most `limit` bytes of a response body, and whether there was more. The rest is never
/// read: the response is dropped, and with it the connection. A body that fails midway gives
/// what arrived.
pub async fn read_bounded(mut response: reqwest::Response, limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(limit.min(response.content_length().unwrap_or(0) as usize));
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return (out, true);
        }
        out.extend_from_slice(&chunk);
    }
    (out, false)
}
