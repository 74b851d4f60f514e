//! S3 event notifications through SQS, for `watch`: an `ObjectCreated` event for a
//! `current/dt=.../_SUCCESS` key of an integration's bucket triggers that integration at
//! once, rather than at the next tick. The `s3:TestEvent` S3 sends when notifications are set
//! up, and events for other keys, are deleted as read. A message that triggered a run is
//! deleted only once the run finished its folders; until then its visibility timeout is
//! extended, so a second replica does not take it too. The schedule stays the safety net for
//! lost or late events.

use std::sync::{Arc, RwLock};

use aws_config::SdkConfig;
use serde::Deserialize;

use crate::scan::{CURRENT, MARKER};
use crate::store::StoreLocation;
use crate::store::aws::sdk_error_message;

/// The checked `[events]` section: the SQS queue that carries the buckets' S3 events.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    pub queue_url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Long-poll wait per receive, 1..=20 seconds.
    pub wait_seconds: i32,
    /// How long a received message stays hidden; extended while its folder is in hand.
    pub visibility_timeout_seconds: i32,
}

/// An integration's bucket and prefix, to match event keys against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub integration: String,
    pub bucket: String,
    /// `px/` or empty.
    pub prefix: String,
}

/// What a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// S3's `s3:TestEvent`, sent when notifications are configured.
    Test,
    /// Integrations with a ready folder.
    Integrations(Vec<String>),
    /// Nothing of ours (another key, another event, unreadable): why.
    Ignored(String),
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
    /// An S3 event forwarded through SNS: the event is a JSON string here.
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3,
}

#[derive(Deserialize)]
struct S3 {
    bucket: Named,
    object: Key,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

/// The integrations a message body triggers.
pub fn parse(body: &str, targets: &[Target]) -> Parsed {
    let body: Body = match serde_json::from_str(body) {
        Ok(body) => body,
        Err(e) => return Parsed::Ignored(format!("not an S3 event: {e}")),
    };
    if let Some(inner) = &body.message {
        return parse(inner, targets);
    }
    if body.event.as_deref() == Some("s3:TestEvent") {
        return Parsed::Test;
    }
    let mut integrations = Vec::new();
    for record in &body.records {
        if !record.event_name.starts_with("ObjectCreated") {
            continue;
        }
        // Keys arrive URL-encoded, with `+` for a space.
        let key = percent_encoding::percent_decode_str(&record.s3.object.key.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        for target in targets {
            let ready = key
                .strip_prefix(&target.prefix)
                .and_then(|rest| rest.strip_prefix(CURRENT))
                .is_some_and(|rest| {
                    rest.starts_with("dt=") && rest.ends_with(&format!("/{MARKER}"))
                });
            if ready
                && record.s3.bucket.name == target.bucket
                && !integrations.contains(&target.integration)
            {
                integrations.push(target.integration.clone());
            }
        }
    }
    if integrations.is_empty() {
        Parsed::Ignored("no _SUCCESS of a configured integration".into())
    } else {
        Parsed::Integrations(integrations)
    }
}

/// The targets of every S3 integration, given as (name, location) pairs.
pub fn targets<'a>(
    integrations: impl IntoIterator<Item = (&'a str, &'a StoreLocation)>,
) -> Vec<Target> {
    integrations
        .into_iter()
        .filter_map(|(name, location)| match location {
            StoreLocation::S3 { bucket, prefix } => Some(Target {
                integration: name.to_string(),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            }),
            StoreLocation::Local(_) => None,
        })
        .collect()
}

/// A message that triggered integrations, until it is deleted.
#[derive(Debug, Clone)]
pub struct Message {
    pub receipt: String,
    pub integrations: Vec<String>,
}

/// The queue.
#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    wait_seconds: i32,
    pub visibility_seconds: i32,
    /// Shared by the clones, so [`Queue::route_to`] reaches a `receive` in flight too.
    targets: Arc<RwLock<Arc<Vec<Target>>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("event queue {url}: {message}")]
pub struct QueueError {
    url: String,
    message: String,
}

impl Queue {
    pub fn new(base: &SdkConfig, events: &EventsSettings, targets: Vec<Target>) -> Queue {
        let mut config = aws_sdk_sqs::config::Builder::from(base);
        if let Some(endpoint) = &events.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let region = events
            .region
            .clone()
            .or_else(|| region_of(&events.queue_url));
        if let Some(region) = region {
            config = config.region(aws_config::Region::new(region));
        }
        Queue {
            client: aws_sdk_sqs::Client::from_conf(config.build()),
            url: events.queue_url.clone(),
            wait_seconds: events.wait_seconds,
            visibility_seconds: events.visibility_timeout_seconds,
            targets: Arc::new(RwLock::new(Arc::new(targets))),
        }
    }

    /// Routes messages to `targets` from now on, in every clone of this queue (`watch`
    /// reloaded its integrations): messages received from now on, those of a long poll in
    /// flight included.
    pub fn route_to(&self, targets: Vec<Target>) {
        *self
            .targets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(targets);
    }

    fn error(&self, message: String) -> QueueError {
        QueueError {
            url: self.url.clone(),
            message,
        }
    }

    /// Waits for messages (long poll) and returns those that trigger integrations; test
    /// events and messages about other keys are deleted on the way.
    pub async fn receive(&self) -> Result<Vec<Message>, QueueError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .visibility_timeout(self.visibility_seconds)
            .send()
            .await
            .map_err(|e| self.error(sdk_error_message(&e)))?;
        // The routing in force when the messages came, not when the poll began.
        let targets = self
            .targets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut triggers = Vec::new();
        for message in received.messages() {
            let (Some(body), Some(receipt)) = (message.body(), message.receipt_handle()) else {
                continue;
            };
            match parse(body, &targets) {
                Parsed::Integrations(integrations) => {
                    crate::telemetry::EventReceived {
                        integrations: &integrations,
                    }
                    .emit();
                    triggers.push(Message {
                        receipt: receipt.to_string(),
                        integrations,
                    });
                }
                Parsed::Test => {
                    tracing::info!(queue = %self.url, "S3 test event: notifications are set up");
                    self.delete(receipt).await?;
                }
                Parsed::Ignored(why) => {
                    tracing::debug!(queue = %self.url, why = %why, "event ignored");
                    self.delete(receipt).await?;
                }
            }
        }
        Ok(triggers)
    }

    /// Keeps a message hidden while its integration is in hand.
    pub async fn extend(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(self.visibility_seconds)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(sdk_error_message(&e)))
    }

    pub async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(sdk_error_message(&e)))
    }
}

/// The region in an AWS queue URL (`https://sqs.us-east-1.amazonaws.com/...`).
fn region_of(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    (parts.next()? == "sqs").then(|| parts.next().map(str::to_string))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<Target> {
        vec![
            Target {
                integration: "acme".into(),
                bucket: "acme-exports".into(),
                prefix: "px/".into(),
            },
            Target {
                integration: "root".into(),
                bucket: "other".into(),
                prefix: String::new(),
            },
        ]
    }

    fn event(bucket: &str, key: &str, name: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventName":"{name}","s3":{{"bucket":{{"name":"{bucket}"}},"object":{{"key":"{key}","size":0}}}}}}]}}"#
        )
    }

    #[test]
    fn a_success_marker_triggers_its_integration() {
        let body = event(
            "acme-exports",
            "px/current/dt%3D20210228/_SUCCESS",
            "ObjectCreated:Put",
        );
        assert_eq!(
            parse(&body, &targets()),
            Parsed::Integrations(vec!["acme".into()])
        );
        let body = event(
            "other",
            "current/dt=20210228/_SUCCESS",
            "ObjectCreated:CompleteMultipartUpload",
        );
        assert_eq!(
            parse(&body, &targets()),
            Parsed::Integrations(vec!["root".into()])
        );
    }

    #[test]
    fn test_events_and_other_keys_are_ignored() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-23T15:00:00Z","Bucket":"acme-exports"}"#;
        assert_eq!(parse(test, &targets()), Parsed::Test);
        for (bucket, key, name) in [
            (
                "acme-exports",
                "px/current/dt=20210228/users.csv.gz",
                "ObjectCreated:Put",
            ),
            (
                "acme-exports",
                "px/processed/20210228/_SUCCESS",
                "ObjectCreated:Copy",
            ),
            (
                "acme-exports",
                "py/current/dt=20210228/_SUCCESS",
                "ObjectCreated:Put",
            ),
            (
                "elsewhere",
                "px/current/dt=20210228/_SUCCESS",
                "ObjectCreated:Put",
            ),
            (
                "acme-exports",
                "px/current/dt=20210228/_SUCCESS",
                "ObjectRemoved:Delete",
            ),
        ] {
            assert!(
                matches!(
                    parse(&event(bucket, key, name), &targets()),
                    Parsed::Ignored(_)
                ),
                "{bucket} {key} {name}"
            );
        }
        assert!(matches!(parse("not json", &targets()), Parsed::Ignored(_)));
    }

    #[test]
    fn keys_are_url_decoded_with_plus_for_space_and_sns_is_unwrapped() {
        let targets = vec![Target {
            integration: "spaced".into(),
            bucket: "b".into(),
            prefix: "my exports/".into(),
        }];
        let body = event(
            "b",
            "my+exports/current/dt%3D20210228/_SUCCESS",
            "ObjectCreated:Put",
        );
        assert_eq!(
            parse(&body, &targets),
            Parsed::Integrations(vec!["spaced".into()])
        );
        let sns = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
        assert_eq!(
            parse(&sns, &targets),
            Parsed::Integrations(vec!["spaced".into()])
        );
    }

    #[test]
    fn the_region_comes_from_the_queue_url() {
        assert_eq!(
            region_of("https://sqs.eu-west-1.amazonaws.com/123456789012/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of("http://127.0.0.1:4566/queue/us-east-1/000000000000/q"),
            None
        );
    }
}
