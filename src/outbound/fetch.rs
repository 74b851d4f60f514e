//! Reading an API's answer (the poller's pages): the same endpoint rules as a POST (egress,
//! no redirects, auth, rate limit, retries of what [`super::RetryOn`] retries, with backoff
//! and `Retry-After`), and a successful body read only as far as a limit.

use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::header::HeaderMap;

use super::{BASE_DELAY, Endpoint, MAX_DELAY, OutboundError, read_bounded};
use crate::secret::redact_url;

/// One request to send (again, on a retry).
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub method: reqwest::Method,
    /// With its query.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    /// At most the limit asked for.
    pub body: Bytes,
    /// The body went on past the limit (the rest was not read).
    pub truncated: bool,
    pub attempts: u32,
}

impl Endpoint {
    /// Sends `request` until it is answered 2xx or the attempts are spent; the body of the
    /// answer is read up to `limit` bytes.
    pub async fn fetch(
        &self,
        request: &FetchRequest,
        limit: usize,
    ) -> Result<Fetched, OutboundError> {
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(BASE_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_max_times(self.inner.attempts as usize - 1);
        let attempt = || async {
            let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            self.fetch_once(request, limit, n).await
        };
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| self.retryable(e))
            .adjust(|e, delay| match e {
                OutboundError::Status {
                    retry_after: Some(wait),
                    ..
                } => Some(*wait),
                _ => delay.map(|d| d.mul_f64(fastrand::f64())),
            })
            .notify(|e, delay| tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "API request failed; retrying"))
            .await
    }

    async fn fetch_once(
        &self,
        request: &FetchRequest,
        limit: usize,
        n: u32,
    ) -> Result<Fetched, OutboundError> {
        let url = request.url.as_str();
        self.admit(url).await?;
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .timeout(self.inner.timeout)
            .headers(self.inner.headers.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if let Some(auth) = &self.inner.auth {
            builder = auth
                .apply(&self.client, &self.inner.egress, builder)
                .await?;
        }
        let response = builder.send().await.map_err(|e| OutboundError::Transport {
            url: redact_url(url),
            message: super::auth::without_url(e),
            attempts: n,
        })?;
        if !response.status().is_success() {
            return Err(self.failure(url, response, n).await);
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (body, truncated) = read_bounded(response, limit).await;
        Ok(Fetched {
            status,
            headers,
            body: Bytes::from(body),
            truncated,
            attempts: n,
        })
    }
}
