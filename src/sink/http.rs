//! An HTTP ingest API as the sink: records as flat JSON objects, batched into POST bodies up
//! to `max_body_bytes` (a JSON array, NDJSON, or one object per request), several requests in
//! flight. Two presets: the streaming ingest API of source document 004 (one object per
//! request, bearer token, tenant header, 254 KB bodies, retry 429/500/503/504 only) and a
//! data collection rule of 001/002 (endpoint + immutable rule id + `Custom-` stream, OAuth2
//! client credentials).
//!
//! An API cannot take records back, so this sink is not transactional: the loader validates
//! a file whole before sending any of it. Its [`Ledger`] (the state store's) records
//! a file only when every batch was accepted; a run that dies mid-file sends it again (at
//! least once). A 413 splits the batch in two.
//!
//! A file's rows for one id reach the API in file order, as the SQL sinks apply them: a
//! request holding an id that an earlier request still in flight holds waits for that one
//! to finish before it is sent. Other requests go on in parallel.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{FileLoad, Sink, SinkError};
use super::{HttpBodyFormat, HttpSinkSettings};
use crate::egress::EgressPolicy;
use crate::ledger::{AppliedFile, Committed, FileRef, Ledger, Version};
use crate::outbound::{Endpoint, EndpointOptions, OutboundError};
use crate::validate::{Row, RowConsumer, write_json_str};

/// Requests in flight per file.
const IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
pub struct HttpSink {
    shared: Arc<Shared>,
    ledger: Arc<dyn Ledger>,
}

#[derive(Debug)]
struct Shared {
    endpoint: Endpoint,
    url: String,
    format: HttpBodyFormat,
    max_body: usize,
}

impl HttpSink {
    /// The sink of a checked `[sink] kind = "http"` section.
    pub fn new(
        settings: &HttpSinkSettings,
        egress: EgressPolicy,
        ledger: Arc<dyn Ledger>,
    ) -> Result<HttpSink, SinkError> {
        let task = |e: String| SinkError::Unavailable(format!("http sink: {e}"));
        let auth = match &settings.auth {
            Some(auth) => Some(auth.build().map_err(task)?),
            None => None,
        };
        let endpoint = Endpoint::new(EndpointOptions {
            attempts: settings.attempts,
            timeout: settings.timeout,
            rate_limit_qps: settings.rate_limit_qps,
            auth,
            headers: settings.headers.clone(),
            retry_on: settings.retry_on,
            egress,
        })
        .map_err(|e| task(e.to_string()))?;
        Ok(HttpSink {
            shared: Arc::new(Shared {
                endpoint,
                url: settings.url.clone(),
                format: settings.format,
                max_body: settings.max_body_bytes,
            }),
            ledger,
        })
    }
}

impl Sink for HttpSink {
    type Load = HttpLoad;

    fn transactional(&self) -> bool {
        false
    }

    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, SinkError> {
        Ok(self.ledger.applied(file).await?)
    }

    async fn begin(
        &self,
        file: &FileRef,
        _updated_at: DateTime<Utc>,
    ) -> Result<HttpLoad, SinkError> {
        Ok(HttpLoad {
            shared: self.shared.clone(),
            ledger: self.ledger.clone(),
            file: file.clone(),
            batch: Vec::new(),
            batch_ids: Vec::new(),
            batch_bytes: 2,
            in_flight: JoinSet::new(),
            sent: Vec::new(),
            also: Vec::new(),
        })
    }
}

/// A file being sent.
pub struct HttpLoad {
    shared: Arc<Shared>,
    ledger: Arc<dyn Ledger>,
    file: FileRef,
    /// Records of the batch being filled, each a JSON object.
    batch: Vec<Vec<u8>>,
    /// The hashes of the batch's ids, to order it after earlier requests with the same ids.
    batch_ids: Vec<u64>,
    batch_bytes: usize,
    in_flight: JoinSet<Result<(), SinkError>>,
    /// The requests not finished yet, with their ids: at most `IN_FLIGHT` once pruned.
    sent: Vec<SentBatch>,
    /// Ledger entries recorded after the file's own ([`FileLoad::also_record`]).
    also: Vec<(FileRef, u64)>,
}

/// A request on its way, as later requests with one of its ids wait for it.
struct SentBatch {
    ids: HashSet<u64>,
    /// Turns true when the request is finished, accepted or not.
    done: watch::Receiver<bool>,
}

/// The hash of an id, the same for every load (a collision only makes a request wait).
fn id_hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

impl HttpLoad {
    /// A row as one flat JSON object: `id`, where it came from, then its attributes.
    fn record(&self, row: &Row<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"id\":");
        write_json_str(&mut out, row.id());
        out.extend_from_slice(b",\"_integration\":");
        write_json_str(&mut out, &self.file.integration);
        out.extend_from_slice(b",\"_entity\":");
        write_json_str(&mut out, self.file.entity.as_str());
        if !row.product_key().is_empty() {
            out.extend_from_slice(b",\"_product_key\":");
            write_json_str(&mut out, row.product_key());
        }
        row.write_attribute_members(&mut out, true);
        out.push(b'}');
        out
    }

    /// Sends the batch being filled, waiting first if enough requests are in flight.
    async fn flush(&mut self) -> Result<(), SinkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.finish_one().await?;
        }
        let records = std::mem::take(&mut self.batch);
        let ids: HashSet<u64> = self.batch_ids.drain(..).collect();
        self.batch_bytes = 2;
        // Rows of one id stay in file order: wait for the earlier requests that hold one.
        self.sent.retain(|sent| !*sent.done.borrow());
        let earlier: Vec<watch::Receiver<bool>> = self
            .sent
            .iter()
            .filter(|sent| ids.iter().any(|id| sent.ids.contains(id)))
            .map(|sent| sent.done.clone())
            .collect();
        let (finished, done) = watch::channel(false);
        self.sent.push(SentBatch { ids, done });
        let shared = self.shared.clone();
        self.in_flight.spawn(async move {
            for mut request in earlier {
                // An error means that request's task is gone: there is nothing to wait for.
                let _ = request.wait_for(|done| *done).await;
            }
            let result = send(&shared, records).await;
            let _ = finished.send(true);
            result
        });
        Ok(())
    }

    async fn finish_one(&mut self) -> Result<(), SinkError> {
        match self.in_flight.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(SinkError::Join(e)),
            None => Ok(()),
        }
    }
}

/// POSTs `records` as one body; a 413 splits them in two, down to a single record.
async fn send(shared: &Shared, records: Vec<Vec<u8>>) -> Result<(), SinkError> {
    let mut pending = vec![records];
    while let Some(records) = pending.pop() {
        let (body, content_type) = body(shared.format, &records);
        match shared
            .endpoint
            .post(&shared.url, body, content_type, &[])
            .await
        {
            Ok(_) => {}
            Err(OutboundError::Status { status: 413, .. }) if records.len() > 1 => {
                let mut first = records;
                let second = first.split_off(first.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(e) => return Err(SinkError::Http(e)),
        }
    }
    Ok(())
}

fn body(format: HttpBodyFormat, records: &[Vec<u8>]) -> (Bytes, &'static str) {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    match format {
        HttpBodyFormat::Ndjson => {
            for record in records {
                out.extend_from_slice(record);
                out.push(b'\n');
            }
            (Bytes::from(out), "application/x-ndjson")
        }
        HttpBodyFormat::Single if records.len() == 1 => {
            (Bytes::from(records[0].clone()), "application/json")
        }
        HttpBodyFormat::JsonArray | HttpBodyFormat::Single => {
            out.push(b'[');
            for (i, record) in records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(record);
            }
            out.push(b']');
            (Bytes::from(out), "application/json")
        }
    }
}

impl RowConsumer for HttpLoad {
    type Error = SinkError;

    async fn accept(&mut self, row: &Row<'_>) -> Result<(), SinkError> {
        let record = self.record(row);
        let max = self.shared.max_body;
        if record.len() + 2 > max {
            return Err(SinkError::RecordTooLarge {
                line: row.line,
                bytes: record.len(),
                max,
            });
        }
        let full = match self.shared.format {
            HttpBodyFormat::Single => !self.batch.is_empty(),
            _ => self.batch_bytes + record.len() + 1 > max,
        };
        if full {
            self.flush().await?;
        }
        self.batch_bytes += record.len() + 1;
        self.batch.push(record);
        self.batch_ids.push(id_hash(row.id()));
        Ok(())
    }
}

impl FileLoad for HttpLoad {
    async fn commit(mut self, rows: u64, version: &Version) -> Result<Committed, SinkError> {
        self.flush().await?;
        while !self.in_flight.is_empty() {
            self.finish_one().await?;
        }
        let file = FileRef {
            version: version.clone(),
            ..self.file.clone()
        };
        let committed = self.ledger.record(&file, rows).await?;
        if committed == Committed::Applied {
            // An API has no transaction: these follow the file's own entry.
            for (entry, rows) in std::mem::take(&mut self.also) {
                self.ledger.record(&entry, rows).await?;
            }
        }
        Ok(committed)
    }

    async fn rollback(mut self) -> Result<(), SinkError> {
        // What was sent stays sent: an API has no rollback. The file is not in the ledger, so
        // it is sent again, whole, when it is next loaded.
        self.in_flight.abort_all();
        Ok(())
    }

    fn also_record(&mut self, entries: Vec<(FileRef, u64)>) {
        self.also.extend(entries);
    }
}
