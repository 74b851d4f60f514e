//! Outbound authentication, as source documents 001/002 define it: an API key in a header
//! (name default `Authorization`, value prefix default `token`; an explicitly empty name sends
//! the bare key in `Authorization`), Basic, a bearer token, or OAuth2 client credentials
//! whose token is cached until shortly before it expires. The token endpoint is a
//! customer's server like any other: its address is checked, its answer read with a bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::Deserialize;

use super::OutboundError;
use crate::egress::EgressPolicy;
use crate::secret::{Secret, SecretRef, redact_url};

/// Bytes of a token response read at most (a JWT is a few KiB).
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Authentication as configured: its kind, and where its secret is (read when the endpoint
/// is built).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub secret: SecretRef,
    pub kind: AuthKind,
}

/// The kinds of [`AuthSettings`], with what each needs besides the secret.
#[derive(Debug, Clone)]
pub enum AuthKind {
    ApiKey {
        header: Option<String>,
        prefix: Option<String>,
    },
    Basic {
        username: String,
    },
    Bearer,
    OAuth2 {
        token_url: String,
        client_id: String,
        scope: Option<String>,
        token_headers: BTreeMap<String, String>,
    },
}

impl AuthSettings {
    /// Reads the secret and builds the authentication; the message says what failed.
    pub fn build(&self) -> Result<Auth, String> {
        let secret = self.secret.read().map_err(|e| e.to_string())?;
        Ok(match &self.kind {
            AuthKind::ApiKey { header, prefix } => {
                Auth::api_key(header.as_deref(), prefix.as_deref(), &secret)
                    .map_err(|e| e.to_string())?
            }
            AuthKind::Basic { username } => Auth::Basic {
                username: username.clone(),
                password: secret,
            },
            AuthKind::Bearer => Auth::Bearer(secret),
            AuthKind::OAuth2 {
                token_url,
                client_id,
                scope,
                token_headers,
            } => Auth::oauth2(
                token_url.clone(),
                client_id.clone(),
                secret,
                scope.clone(),
                token_headers.clone(),
            ),
        })
    }
}

/// How requests to one endpoint authenticate.
#[derive(Debug)]
pub enum Auth {
    ApiKey { header: HeaderName, value: Secret },
    Basic { username: String, password: Secret },
    Bearer(Secret),
    OAuth2(OAuth2),
}

/// OAuth2 client credentials, with the token cached.
#[derive(Debug)]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
    pub token_headers: BTreeMap<String, String>,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Auth {
    /// The API-key header of 001/002: `header` default `Authorization`, `prefix` default
    /// `token`; `header = ""` means the bare key in `Authorization`.
    pub fn api_key(
        header: Option<&str>,
        prefix: Option<&str>,
        key: &Secret,
    ) -> Result<Auth, OutboundError> {
        let (name, prefix) = match header {
            Some("") => (AUTHORIZATION, ""),
            Some(name) => (
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| OutboundError::Config(format!("'{name}' is not a header name")))?,
                prefix.unwrap_or("token"),
            ),
            None => (AUTHORIZATION, prefix.unwrap_or("token")),
        };
        let value = if prefix.is_empty() {
            key.expose().to_string()
        } else {
            format!("{prefix} {}", key.expose())
        };
        Ok(Auth::ApiKey {
            header: name,
            value: Secret::new(value),
        })
    }

    pub fn oauth2(
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
        token_headers: BTreeMap<String, String>,
    ) -> Auth {
        Auth::OAuth2(OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            token_headers,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// Adds the credentials to a request (fetching an OAuth2 token if none is fresh).
    pub async fn apply(
        &self,
        client: &reqwest::Client,
        egress: &EgressPolicy,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        Ok(match self {
            Auth::ApiKey { header, value } => request.header(header, sensitive(value.expose())?),
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::Bearer(token) => request.header(
                AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose()))?,
            ),
            Auth::OAuth2(oauth) => {
                let token = oauth.token(client, egress).await?;
                request.header(
                    AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.expose()))?,
                )
            }
        })
    }

    /// Forgets a cached token (after a 401), so the next request fetches a new one.
    pub async fn invalidate(&self) {
        if let Auth::OAuth2(oauth) = self {
            *oauth.cached.lock().await = None;
        }
    }
}

/// A header value marked sensitive, so reqwest and hyper never print it.
fn sensitive(value: &str) -> Result<HeaderValue, OutboundError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| OutboundError::Config("a secret is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl OAuth2 {
    /// The cached token, or a new one. Refreshed when less than a minute (or half its life,
    /// for short-lived tokens) remains.
    async fn token(
        &self,
        client: &reqwest::Client,
        egress: &EgressPolicy,
    ) -> Result<Secret, OutboundError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let shown_url = redact_url(&self.token_url);
        egress
            .check_url_ip(&self.token_url)
            .map_err(|e| OutboundError::Token(format!("{shown_url}: {e}")))?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let mut request = client.post(&self.token_url).form(&form);
        for (name, value) in &self.token_headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| OutboundError::Token(format!("{shown_url}: {}", without_url(e))))?;
        let status = response.status();
        if !status.is_success() {
            // Redirects are not followed: a 3xx lands here too.
            return Err(OutboundError::Token(format!(
                "{shown_url} answered {status}"
            )));
        }
        let (bytes, more) = super::read_bounded(response, MAX_TOKEN_BODY).await;
        if more {
            return Err(OutboundError::Token(format!(
                "{shown_url}: the token response is larger than {MAX_TOKEN_BODY} bytes"
            )));
        }
        // serde's message may quote a value of the response, which may be the token.
        let body: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            OutboundError::Token(format!(
                "{shown_url}: not a token response (no access_token string, or not JSON: line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let margin = Duration::from_secs(60).min(lifetime / 2);
        let token = Secret::new(body.access_token);
        *cached = Some((token.clone(), Instant::now() + lifetime - margin));
        tracing::debug!(token_url = %shown_url, lifetime_seconds = lifetime.as_secs(), "fetched an OAuth2 token");
        Ok(token)
    }
}

/// A reqwest error's message without its URL (which may carry a query with secrets), with
/// its causes ("connection refused").
pub fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}
