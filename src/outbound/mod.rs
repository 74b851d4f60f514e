//! One outbound HTTP layer for the callback and the HTTP sinks: per endpoint a timeout
//! (1..180 s), a number of attempts (1..6), exponential backoff with full jitter, `Retry-After`
//! honoured on 429 and 503, a rate limit in requests per second, and no redirects for
//! authenticated requests (a redirect must not carry credentials elsewhere). What is retried
//! is the endpoint's [`RetryOn`]; secrets travel in headers marked sensitive and appear in no
//! message.

pub mod auth;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

pub use auth::Auth;

/// First retry delay; doubled each attempt, then drawn uniformly below it (full jitter).
const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is not waited for within one delivery.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Bytes of an error response kept for the message.
const BODY_EXCERPT: usize = 300;

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
    #[error("cannot get an OAuth2 token from {0}")]
    Token(String),
    #[error("{0}")]
    Config(String),
}

impl OutboundError {
    pub fn status(&self) -> Option<u16> {
        match self {
            OutboundError::Status { status, .. } => Some(*status),
            _ => None,
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
}

/// A delivered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    pub attempts: u32,
}

impl Endpoint {
    pub fn new(options: EndpointOptions) -> Result<Endpoint, OutboundError> {
        let redirects = if options.auth.is_some() {
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::limited(5)
        };
        let client = reqwest::Client::builder()
            .redirect(redirects)
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
            OutboundError::Token(_) | OutboundError::Config(_) => false,
        }
    }

    async fn attempt(
        &self,
        url: &str,
        body: Bytes,
        content_type: &'static str,
        headers: &[(&'static str, String)],
        n: u32,
    ) -> Result<u16, OutboundError> {
        if let Some(limiter) = &self.inner.limiter {
            limiter.until_ready().await;
        }
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
            request = auth.apply(&self.client, request).await?;
        }
        let response = request.send().await.map_err(|e| OutboundError::Transport {
            url: url.to_string(),
            message: auth::without_url(e),
            attempts: n,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
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
        let text = response.text().await.unwrap_or_default();
        let body: String =
            crate::validate::escape(&text.chars().take(BODY_EXCERPT).collect::<String>());
        Err(OutboundError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body,
            attempts: n,
            retry_after,
        })
    }
}
