//! Reaching a customer's bucket: the base identity from the default AWS chain, per
//! integration either static keys or the customer's role assumed with their external ID,
//! the bucket's region discovered when not configured, and SDK errors turned into errors an
//! operator can act on. Every SDK client made from a base config ([`base_config`]) shares
//! one HTTPS client ([`shared_http_client`]): one connector, TLS roots parsed once, one
//! connection pool, however many integrations. What is kept between scans (credentials,
//! regions) is [`super::kept`]'s.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError, future};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder as HttpClientBuilder, Connector};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::BucketAccess;
use super::StoreError;
use crate::secret::SecretRef;

/// Attempts per request, with the SDK's standard backoff (throttling included).
const MAX_ATTEMPTS: u32 = 5;

/// How long a connection may wait in the pool for its next request. Long enough for the
/// requests of one integration's scan or drop to reuse it; short enough that a pass over
/// thousands of buckets (on AWS each bucket is a host of its own) does not hold a TLS
/// connection open per bucket until the next pass.
const POOL_IDLE: Duration = Duration::from_secs(5);

/// One HTTPS client for every SDK client built from the configs here: the SDK's hyper 1
/// client and rustls connector (the proxy taken from the environment, as the SDK's default
/// does), built once per timeout setting and shared, so one connection pool and one parsed
/// set of TLS roots serve every integration. The SDK's default builds all that once per SDK
/// client, about 0.3 MiB each.
pub fn shared_http_client() -> SharedHttpClient {
    let connectors = HttpClientBuilder::new().build_with_connector_fn(|settings, components| {
        let mut connector = Connector::builder()
            .pool_idle_timeout(POOL_IDLE)
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    OneHttpsClient(connectors).into_shared()
}

/// The shared client without its check at SDK-client build time: the SDK's builds a
/// throwaway connector (parsing every TLS root) for each SDK client made, to fail early; the
/// shared one's connector is built on its first request and kept.
#[derive(Debug)]
struct OneHttpsClient(SharedHttpClient);

impl HttpClient for OneHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The base identity and retry policy, loaded once per process, with the one HTTPS client.
pub async fn base_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .http_client(shared_http_client())
        .load()
        .await
}

/// The base config for work whose every bucket names its region: the base region is
/// looked up in the environment and the profile only, then `us-east-1`, the region STS is
/// asked in when the base has none. Asking IMDS as well (the default, for the base and again
/// for the credential chain) warns three times and waits where there is none, for a region
/// no request would use.
pub async fn base_config_without_imds_region() -> SdkConfig {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::ProfileFileRegionProvider;
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(Region::from_static("us-east-1"));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .http_client(shared_http_client())
        .load()
        .await
}

/// The STS session name: says who is reading, within STS's 64 characters of `[\w+=,.@-]`.
pub fn session_name(integration: &str) -> String {
    let mut name = format!("dropfolder-{integration}");
    name.retain(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    name.truncate(64);
    name
}

/// The credentials an integration uses: static keys, an assumed role with its external ID,
/// or (`None`) the base identity when the integration opted in to it. Anything else is
/// refused here too, not only by `check`: no integration falls back to the operator's
/// identity by omission.
pub async fn credentials(
    base: &SdkConfig,
    sts: &StsClients,
    integration: &BucketAccess,
    bucket: &str,
) -> Result<Option<SharedCredentialsProvider>, StoreError> {
    let read = |var: &String| {
        SecretRef::Env(var.clone())
            .read()
            .map_err(|e| StoreError::Credentials {
                key: bucket.to_string(),
                message: e.to_string(),
            })
    };
    if let (Some(id), Some(secret)) = (
        &integration.access_key_id_env,
        &integration.secret_access_key_env,
    ) {
        let token = integration
            .session_token_env
            .as_ref()
            .map(read)
            .transpose()?;
        let keys = Credentials::new(
            read(id)?.expose(),
            read(secret)?.expose(),
            token.map(|t| t.expose().to_string()),
            None,
            "dropfolder-static-keys",
        );
        return Ok(Some(SharedCredentialsProvider::new(keys)));
    }
    let Some(role_arn) = &integration.role_arn else {
        if integration.use_operator_identity {
            return Ok(None);
        }
        return Err(StoreError::Credentials {
            key: bucket.to_string(),
            message: "no identity configured: set role_arn with external_id, static keys, or use_operator_identity = true".into(),
        });
    };
    let external_id = match (&integration.external_id, &integration.external_id_env) {
        (Some(id), _) => id.clone(),
        (None, Some(var)) => read(var)?.expose().to_string(),
        (None, None) => {
            return Err(StoreError::Credentials {
                key: bucket.to_string(),
                message: "role_arn without external_id: refused (the confused deputy)".into(),
            });
        }
    };
    let sts = sts.client(
        base,
        integration
            .sts_endpoint
            .as_ref()
            .or(integration.endpoint.as_ref()),
    );
    Ok(Some(SharedCredentialsProvider::new(AssumedRole {
        sts,
        role_arn: role_arn.clone(),
        external_id,
        session_name: session_name(&integration.name),
    })))
}

/// STS clients by endpoint, shared by every role assumed through them. An SDK client carries
/// its config, runtime plugins and endpoint rules (tens of KiB): one per role, as the SDK's
/// `AssumeRoleProvider` makes, cost about 35 KiB per integration, 350 MiB at 10,000.
#[derive(Clone, Default)]
pub struct StsClients(Arc<Mutex<HashMap<Option<String>, aws_sdk_sts::Client>>>);

impl fmt::Debug for StsClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClients").finish_non_exhaustive()
    }
}

impl StsClients {
    /// The client for `endpoint` (the default STS when `None`), made from `base` the first
    /// time. Callers share one base per [`StsClients`].
    fn client(&self, base: &SdkConfig, endpoint: Option<&String>) -> aws_sdk_sts::Client {
        // A panic elsewhere while holding the lock left the map whole: keep using it.
        let mut clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(endpoint.cloned())
            .or_insert_with(|| {
                let mut sts = base.to_builder();
                if let Some(endpoint) = endpoint {
                    sts.set_endpoint_url(Some(endpoint.clone()));
                }
                if base.region().is_none() {
                    sts.set_region(Some(Region::from_static("us-east-1")));
                }
                // `Client::new` panics on a config without a behaviour version; the base
                // configs here carry one, and a bare one gets the latest.
                let config = aws_sdk_sts::config::Builder::from(&sts.build()).behavior_version(
                    base.behavior_version()
                        .unwrap_or_else(BehaviorVersion::latest),
                );
                aws_sdk_sts::Client::from_conf(config.build())
            })
            .clone()
    }
}

/// A customer's role, assumed with its external ID, each time credentials are asked for
/// (what is kept between asks is [`super::kept`]'s).
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: String,
    session_name: String,
}

impl fmt::Debug for AssumedRole {
    // Not the external ID: it is the customer's shared secret with us.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumedRole")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

impl AssumedRole {
    async fn assume(&self) -> provider::Result {
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .external_id(&self.external_id)
            .role_session_name(&self.session_name)
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let Some(granted) = answer.credentials else {
            return Err(CredentialsError::provider_error(
                "STS AssumeRole answered without credentials",
            ));
        };
        let expiry =
            SystemTime::try_from(granted.expiration).map_err(CredentialsError::provider_error)?;
        Ok(Credentials::new(
            granted.access_key_id,
            granted.secret_access_key,
            Some(granted.session_token),
            Some(expiry),
            "dropfolder-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// Who an integration acts as: STS GetCallerIdentity with its credentials, for `check` to
/// show (for a role, the assumed-role ARN with its session name).
pub async fn caller_arn(
    base: &SdkConfig,
    integration: &BucketAccess,
    bucket: &str,
) -> Result<String, StoreError> {
    let credentials = credentials(base, &StsClients::default(), integration, bucket).await?;
    let mut config = aws_sdk_sts::config::Builder::from(base);
    if let Some(endpoint) = integration
        .sts_endpoint
        .as_ref()
        .or(integration.endpoint.as_ref())
    {
        config = config.endpoint_url(endpoint);
    }
    if base.region().is_none() {
        config = config.region(Region::from_static("us-east-1"));
    }
    if let Some(credentials) = credentials {
        config = config.credentials_provider(credentials);
    }
    let identity = aws_sdk_sts::Client::from_conf(config.build())
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| store_error(bucket, e))?;
    Ok(identity.arn().unwrap_or("an unnamed identity").to_string())
}

/// An S3 client for `region` with the integration's endpoint and credentials.
pub fn client(
    base: &SdkConfig,
    integration: &BucketAccess,
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(client_config(base, integration, region, credentials).build())
}

/// The config of [`client`], for callers that change more of it.
pub(crate) fn client_config(
    base: &SdkConfig,
    integration: &BucketAccess,
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
) -> aws_sdk_s3::config::Builder {
    let mut config =
        aws_sdk_s3::config::Builder::from(base).region(Region::new(region.to_string()));
    if let Some(endpoint) = &integration.endpoint {
        // LocalStack and MinIO serve buckets by path, not by virtual host.
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    if let Some(credentials) = credentials {
        config = config.credentials_provider(credentials);
    }
    config
}

/// The bucket's region, from GetBucketLocation (asked in us-east-1, which answers for all).
pub async fn discover_region(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<String, StoreError> {
    let location = client
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| store_error(bucket, e))?;
    Ok(match location.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(region) => region.to_string(),
    })
}

/// An SDK error as an error an operator can act on. `key` is the object or bucket concerned.
pub fn store_error<E>(key: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_string();
    if let SdkError::ServiceError(service) = &error {
        let code = service.err().code().unwrap_or_default();
        let message = format!("{code}: {}", service.err().message().unwrap_or_default());
        return match code {
            "NoSuchKey" | "NotFound" => StoreError::NotFound { key },
            "NoSuchBucket" => StoreError::NoSuchBucket { key },
            "AccessDenied"
            | "AllAccessDisabled"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch" => StoreError::AccessDenied { key, message },
            "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => {
                StoreError::Credentials { key, message }
            }
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => StoreError::WrongRegion { key, message },
            // A HEAD in the wrong region: a 301 without a body to carry its code.
            _ if code.is_empty() && is_status(&error, 301) => StoreError::WrongRegion {
                key,
                message: "301 Moved Permanently".into(),
            },
            _ if code.is_empty() && is_status(&error, 404) => StoreError::NotFound { key },
            _ if code.is_empty() && is_status(&error, 403) => StoreError::AccessDenied {
                key,
                message: "403 Forbidden".into(),
            },
            _ => StoreError::S3 {
                key,
                message,
                source: Some(Box::new(error)),
            },
        };
    }
    // No response: credentials could not be had, or the endpoint could not be reached. Said
    // in one line, each cause once: the SDK's own context ends with a Debug dump of the
    // error, a screenful for a refused connection.
    let mut cause = error.source();
    let mut credentials = false;
    while let Some(e) = cause {
        credentials |= e.is::<aws_credential_types::provider::error::CredentialsError>();
        cause = e.source();
    }
    let causes = one_line(&error);
    if credentials {
        StoreError::Credentials {
            key,
            message: causes,
        }
    } else if matches!(
        error,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        StoreError::Unreachable {
            key,
            causes,
            source: Box::new(error),
        }
    } else {
        StoreError::S3 {
            key,
            message: causes,
            source: Some(Box::new(error)),
        }
    }
}

/// An error and its causes in one line, each said once (a cause whose text its parent
/// already shows is skipped).
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !more.is_empty() && !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// An SDK error with its causes, for messages about anything but objects (SQS).
pub fn sdk_error_message<E: std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
) -> String {
    DisplayErrorContext(error).to_string()
}

/// Whether the service answered with this HTTP status.
pub fn is_status<E>(error: &SdkError<E, HttpResponse>, status: u16) -> bool {
    error
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == status)
}

/// The code of a service error (`PreconditionFailed`, `NotImplemented`), if it is one.
pub fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(edit: impl FnOnce(&mut BucketAccess)) -> BucketAccess {
        let mut access = BucketAccess {
            name: "a".into(),
            ..BucketAccess::default()
        };
        edit(&mut access);
        access
    }

    /// `check` refuses these first; the store refuses them too, so no path falls back to the
    /// operator's identity by omission.
    #[tokio::test]
    async fn only_an_explicit_opt_in_gets_the_operator_identity() {
        let base = SdkConfig::builder().build();
        let role =
            |a: &mut BucketAccess| a.role_arn = Some("arn:aws:iam::123456789012:role/x".into());
        for (access, named) in [(access(|_| {}), ""), (access(role), "role_arn")] {
            match credentials(&base, &StsClients::default(), &access, "acme-bucket").await {
                Err(StoreError::Credentials { message, .. }) => {
                    assert!(message.contains("external_id"), "{named}: {message}")
                }
                Err(e) => panic!("{named}: {e}"),
                Ok(_) => panic!("{named}: credentials without a named identity"),
            }
        }
        let operator = credentials(
            &base,
            &StsClients::default(),
            &access(|a| a.use_operator_identity = true),
            "acme-bucket",
        )
        .await;
        assert!(matches!(operator, Ok(None)));
    }

    /// Roles assumed through one STS endpoint share its client, whatever their number; a
    /// client is made per endpoint.
    #[tokio::test]
    async fn roles_share_one_sts_client_per_endpoint() {
        let base = SdkConfig::builder().build();
        let sts = StsClients::default();
        let role = |name: &str, endpoint: &str| {
            access(|a| {
                a.name = name.into();
                a.role_arn = Some(format!("arn:aws:iam::123456789012:role/{name}"));
                a.external_id = Some(format!("ext-{name}"));
                a.endpoint = Some(endpoint.into());
            })
        };
        for i in 0..100 {
            let access = role(&format!("customer-{i}"), "http://127.0.0.1:9");
            let provider = credentials(&base, &sts, &access, "acme-bucket").await;
            assert!(matches!(provider, Ok(Some(_))), "customer-{i}");
        }
        assert_eq!(sts.0.lock().map(|c| c.len()).unwrap_or(0), 1);
        let other = role("elsewhere", "http://127.0.0.1:10");
        assert!(matches!(
            credentials(&base, &sts, &other, "acme-bucket").await,
            Ok(Some(_))
        ));
        assert_eq!(sts.0.lock().map(|c| c.len()).unwrap_or(0), 2);
    }
}
