//! A stand-in STS for the one fault LocalStack cannot produce: it accepts any role and any
//! external ID, so a denied AssumeRole needs this; a granting one hands out credentials of
//! the test's choosing (to check they are never logged). A real HTTP server on 127.0.0.1:0, reached
//! through the same SDK client and `sts_endpoint` setting; it records each request body.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

pub struct StsStub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    _server: tokio::task::JoinHandle<()>,
}

const DENIED: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::000000000000:user/dropfolder is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/s3-export-role</Message>
  </Error>
  <RequestId>5c2a3b1e-0000-4000-8000-000000000000</RequestId>
</ErrorResponse>"#;

/// Temporary credentials a granting stub hands out.
pub struct Granted {
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    pub session_token: &'static str,
}

impl StsStub {
    /// Starts a stub that denies every AssumeRole.
    pub async fn denying() -> StsStub {
        StsStub::answering(StatusCode::FORBIDDEN, DENIED.to_string()).await
    }

    /// Starts a stub that grants every AssumeRole these credentials, valid for an hour.
    pub async fn granting(granted: &Granted) -> StsStub {
        let expires = chrono::Utc::now() + chrono::Duration::hours(1);
        let body = format!(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROA000000000000EXAMPLE:dropfolder</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/s3-export-role/dropfolder</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>6d2a3b1e-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
            granted.access_key_id,
            granted.secret_access_key,
            granted.session_token,
            expires.format("%Y-%m-%dT%H:%M:%SZ")
        );
        StsStub::answering(StatusCode::OK, body).await
    }

    async fn answering(status: StatusCode, answer: String) -> StsStub {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = Router::new().route(
            "/",
            post(move |body: String| {
                let (seen, answer) = (seen.clone(), answer.clone());
                async move {
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(body);
                    }
                    (status, [("content-type", "text/xml")], answer)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StsStub {
            url,
            requests,
            _server: server,
        }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for StsStub {
    fn drop(&mut self) {
        self._server.abort();
    }
}
