//! The state in PostgreSQL: shared by every replica. Journal writes lock the integration's
//! lease row (`FOR UPDATE`) and compare its token, so a replica whose lease was taken over
//! cannot write, and a takeover waits for a write in progress.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};

use super::DatabaseError;
use super::clock::{Clock, SystemClock};
use super::{
    CallbackOutcome, CallbackRequest, Claim, DropResult, DropSummary, IntegrationState,
    JournaledDrop, Lease, PendingCallback, SavedDrop, ScanRecord, StateError, StateStore,
    read_notices,
};
use crate::ledger::{self, AppliedFile, Committed, FileRef, Ledger, LedgerError, Table};

pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        101,
        concat!(
            r#"CREATE TABLE IF NOT EXISTS drops (
        integration text NOT NULL,
        folder text NOT NULL,
        target text NOT NULL,
        manifest text NOT NULL,
        stage text NOT NULL,
        started_at timestamptz NOT NULL,
        success boolean,
        records bigint,
        message text,
        reported_at timestamptz,
        done_at timestamptz,
        PRIMARY KEY (integration, target)
    );
    CREATE INDEX IF NOT EXISTS drops_open ON drops (integration, stage);
    CREATE TABLE IF NOT EXISTS integration_status (
        integration text PRIMARY KEY,
        last_scan_at timestamptz,
        last_error text,
        notices text NOT NULL DEFAULT '[]',
        last_data_at timestamptz,
        last_target text,
        last_success boolean,
        last_message text,
        callback_error text
    );
    CREATE TABLE IF NOT EXISTS callbacks (
        id bigserial PRIMARY KEY,
        integration text NOT NULL,
        folder_path text NOT NULL,
        success boolean NOT NULL,
        message text NOT NULL,
        idempotency_key text NOT NULL UNIQUE,
        deliveries integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        last_error text,
        state text NOT NULL DEFAULT 'pending',
        created_at timestamptz NOT NULL,
        done_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (integration, state, next_attempt_at);
    "#,
            crate::ledger::postgres::create_table!("state_ledger"),
            r#"
    CREATE TABLE IF NOT EXISTS leases (
        integration text PRIMARY KEY,
        holder text NOT NULL,
        token bigint NOT NULL,
        expires_at timestamptz NOT NULL
    );"#
        ),
    ),
    (
        102,
        r#"CREATE INDEX IF NOT EXISTS drops_not_done ON drops (integration) WHERE stage <> 'done';
    CREATE INDEX IF NOT EXISTS callbacks_pending ON callbacks (next_attempt_at) WHERE state = 'pending';"#,
    ),
    (
        104,
        // Integrations seen before this column count as first seen at their last scan.
        "ALTER TABLE integration_status ADD COLUMN IF NOT EXISTS first_seen_at timestamptz;
    UPDATE integration_status SET first_seen_at = COALESCE(last_scan_at, last_data_at)
        WHERE first_seen_at IS NULL;
    CREATE INDEX IF NOT EXISTS drops_reported ON drops (integration, reported_at);",
    ),
];

#[derive(Debug, Clone)]
pub struct PgState {
    pool: Pool,
    url: String,
    clock: Arc<dyn Clock>,
}

impl PgState {
    pub fn new(pool: Pool, url: &str) -> PgState {
        PgState {
            pool,
            url: crate::secret::redact_url(url),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same state, its leases going by `clock` rather than the database's `now()` (tests
    /// of lease expiry).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> PgState {
        PgState { clock, ..self }
    }

    fn error(&self, e: impl Into<DatabaseError>) -> StateError {
        StateError::Database {
            database: self.url.clone(),
            source: e.into(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StateError> {
        self.pool.get().await.map_err(|e| self.error(e))
    }
}

/// Whether this replica still holds the drop's lease; locks the lease row until commit.
async fn holds(
    client: &impl GenericClient,
    drop: &JournaledDrop,
) -> Result<bool, tokio_postgres::Error> {
    let Some(token) = drop.lease else {
        return Ok(true);
    };
    let row = client
        .query_opt(
            "SELECT token FROM leases WHERE integration = $1 FOR UPDATE",
            &[&drop.integration],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0)) == Some(token))
}

fn lost(drop: &JournaledDrop) -> StateError {
    StateError::LeaseLost {
        integration: drop.integration.clone(),
        token: drop.lease.unwrap_or_default(),
    }
}

fn seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

#[async_trait]
impl StateStore for PgState {
    async fn claim(
        &self,
        integration: &str,
        holder: &str,
        ttl: Duration,
        dead: Option<&str>,
    ) -> Result<Claim, StateError> {
        let client = self.client().await?;
        let granted = client
            .query_opt(
                "INSERT INTO leases (integration, holder, token, expires_at)
                 VALUES ($1, $2, 1, COALESCE($5, now()) + $3 * interval '1 second')
                 ON CONFLICT (integration) DO UPDATE
                 SET holder = EXCLUDED.holder, token = leases.token + 1, expires_at = EXCLUDED.expires_at
                 WHERE leases.expires_at <= COALESCE($5, now()) OR leases.holder = EXCLUDED.holder OR leases.holder = $4
                 RETURNING token",
                &[
                    &integration,
                    &holder,
                    &seconds(ttl),
                    &dead.unwrap_or(""),
                    &self.clock.instead_of_database(),
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        if let Some(row) = granted {
            return Ok(Claim::Granted(Lease {
                integration: integration.to_string(),
                holder: holder.to_string(),
                token: row.get(0),
            }));
        }
        let current = client
            .query_opt(
                "SELECT holder FROM leases WHERE integration = $1",
                &[&integration],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(Claim::HeldBy(current.map(|r| r.get(0)).unwrap_or_default()))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = COALESCE($4, now()) + $3 * interval '1 second' WHERE integration = $1 AND token = $2",
                &[
                    &lease.integration,
                    &lease.token,
                    &seconds(ttl),
                    &self.clock.instead_of_database(),
                ],
            )
            .await
            .map(|n| n == 1)
            .map_err(|e| self.error(e))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StateError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = COALESCE($3, now()) WHERE integration = $1 AND token = $2",
                &[
                    &lease.integration,
                    &lease.token,
                    &self.clock.instead_of_database(),
                ],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    async fn integrations_with_work(
        &self,
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StateError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT integration FROM drops WHERE stage <> 'done'
                 UNION SELECT integration FROM callbacks WHERE state = 'pending' AND next_attempt_at <= $1",
                &[&now],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn open_drops(&self, integration: &str) -> Result<Vec<JournaledDrop>, StateError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT folder, target, manifest, stage, started_at FROM drops
                 WHERE integration = $1 AND stage <> 'done' ORDER BY started_at, folder",
                &[&integration],
            )
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                SavedDrop {
                    folder: row.get(0),
                    target: row.get(1),
                    manifest: row.get(2),
                    stage: row.get(3),
                    started_at: Ok(row.get(4)),
                }
                .read(integration)
            })
            .collect()
    }

    async fn begin_drop(&self, drop: &JournaledDrop) -> Result<(), StateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        if !holds(&tx, drop).await.map_err(|e| self.error(e))? {
            return Err(lost(drop));
        }
        let manifest = serde_json::to_string(&drop.manifest).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO drops (integration, folder, target, manifest, stage, started_at) VALUES ($1, $2, $3, $4, 'loading', $5)",
            &[&drop.integration, &drop.folder, &drop.target, &manifest, &drop.started_at],
        )
        .await
        .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn report_drop(
        &self,
        drop: &JournaledDrop,
        result: &DropResult,
        callback: Option<&CallbackRequest>,
    ) -> Result<(), StateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        if !holds(&tx, drop).await.map_err(|e| self.error(e))? {
            return Err(lost(drop));
        }
        let records = result.records as i64;
        let steps = async {
            tx.execute(
                "UPDATE drops SET stage = 'reported', success = $3, records = $4, message = $5, reported_at = now()
                 WHERE integration = $1 AND target = $2",
                &[&drop.integration, &drop.target, &result.success, &records, &result.message],
            )
            .await?;
            tx.execute(
                "INSERT INTO integration_status (integration, last_data_at, last_target, last_success, last_message, first_seen_at)
                 VALUES ($1, now(), $2, $3, $4, now())
                 ON CONFLICT (integration) DO UPDATE SET last_data_at = now(), last_target = $2, last_success = $3, last_message = $4",
                &[&drop.integration, &drop.target, &result.success, &result.message],
            )
            .await?;
            if let Some(cb) = callback {
                tx.execute(
                    "INSERT INTO callbacks (integration, folder_path, success, message, idempotency_key, next_attempt_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, now(), now()) ON CONFLICT (idempotency_key) DO NOTHING",
                    &[&cb.integration, &cb.folder_path, &cb.success, &cb.message, &cb.idempotency_key],
                )
                .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        };
        steps.await.map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn finish_drop(&self, drop: &JournaledDrop) -> Result<(), StateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        if !holds(&tx, drop).await.map_err(|e| self.error(e))? {
            return Err(lost(drop));
        }
        tx.execute(
            "UPDATE drops SET stage = 'done', done_at = now() WHERE integration = $1 AND target = $2",
            &[&drop.integration, &drop.target],
        )
        .await
        .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn record_scan(&self, scan: &ScanRecord) -> Result<(), StateError> {
        let client = self.client().await?;
        let notices = serde_json::to_string(&scan.notices).unwrap_or_else(|_| "[]".into());
        client
            .execute(
                "INSERT INTO integration_status (integration, last_scan_at, last_error, notices, first_seen_at) VALUES ($1, $2, $3, $4, $2)
                 ON CONFLICT (integration) DO UPDATE SET last_scan_at = $2, last_error = $3, notices = $4",
                &[&scan.integration, &scan.at, &scan.error, &notices],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    async fn record_push(&self, integration: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO integration_status
                    (integration, last_scan_at, last_error, last_data_at, last_target, last_success, first_seen_at)
                 VALUES ($1, $2, NULL, $2, 'push', TRUE, $2)
                 ON CONFLICT (integration) DO UPDATE SET last_scan_at = $2, last_error = NULL,
                    last_data_at = $2, last_target = 'push', last_success = TRUE,
                    first_seen_at = COALESCE(integration_status.first_seen_at, $2)",
                &[&integration, &at],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    async fn recent_drops(&self, per_integration: usize) -> Result<Vec<DropSummary>, StateError> {
        let limit = i64::try_from(per_integration).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT integration, target, success, records, message, reported_at FROM (
                    SELECT integration, target, success, records, message, reported_at,
                           row_number() OVER (PARTITION BY integration ORDER BY reported_at DESC, target DESC) AS n
                    FROM drops WHERE reported_at IS NOT NULL) AS recent
                 WHERE n <= $1 ORDER BY integration, reported_at DESC, target DESC",
                &[&limit],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| DropSummary {
                integration: row.get(0),
                target: row.get(1),
                success: row.get::<_, Option<bool>>(2).unwrap_or(false),
                records: row.get::<_, Option<i64>>(3).unwrap_or(0).max(0) as u64,
                message: row.get::<_, Option<String>>(4).unwrap_or_default(),
                reported_at: row.get(5),
            })
            .collect())
    }

    async fn record_scans(&self, scans: &[ScanRecord]) -> Result<(), StateError> {
        if scans.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let integrations: Vec<&str> = scans.iter().map(|s| s.integration.as_str()).collect();
        let at: Vec<DateTime<Utc>> = scans.iter().map(|s| s.at).collect();
        let errors: Vec<Option<&str>> = scans.iter().map(|s| s.error.as_deref()).collect();
        let notices: Vec<String> = scans
            .iter()
            .map(|s| serde_json::to_string(&s.notices).unwrap_or_else(|_| "[]".into()))
            .collect();
        // One statement, one commit: the rows of every scan kept since the last write.
        client
            .execute(
                "INSERT INTO integration_status (integration, last_scan_at, last_error, notices, first_seen_at)
                 SELECT s.i, s.a, s.e, s.n, s.a
                 FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) AS s(i, a, e, n)
                 ON CONFLICT (integration) DO UPDATE SET last_scan_at = EXCLUDED.last_scan_at,
                    last_error = EXCLUDED.last_error, notices = EXCLUDED.notices,
                    first_seen_at = COALESCE(integration_status.first_seen_at, EXCLUDED.first_seen_at)",
                &[&integrations, &at, &errors, &notices],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    async fn last_target(&self, integration: &str) -> Result<Option<String>, StateError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT last_target FROM integration_status WHERE integration = $1",
                &[&integration],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.and_then(|row| row.get(0)))
    }

    async fn integrations(&self) -> Result<Vec<IntegrationState>, StateError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT integration, last_scan_at, last_error, notices, last_data_at, last_target, last_success,
                        last_message, callback_error, first_seen_at
                 FROM integration_status ORDER BY integration",
                &[],
            )
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                let integration: String = row.get(0);
                Ok(IntegrationState {
                    notices: read_notices(&integration, row.get(3))?,
                    integration,
                    last_scan_at: row.get(1),
                    last_error: row.get(2),
                    last_data_at: row.get(4),
                    last_target: row.get(5),
                    last_success: row.get(6),
                    last_message: row.get(7),
                    callback_error: row.get(8),
                    first_seen_at: row.get(9),
                })
            })
            .collect()
    }

    async fn due_callbacks(
        &self,
        integration: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingCallback>, StateError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, folder_path, success, message, idempotency_key, deliveries FROM callbacks
                 WHERE integration = $1 AND state = 'pending' AND next_attempt_at <= $2 ORDER BY id",
                &[&integration, &now],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| PendingCallback {
                id: row.get(0),
                request: CallbackRequest {
                    integration: integration.to_string(),
                    folder_path: row.get(1),
                    success: row.get(2),
                    message: row.get(3),
                    idempotency_key: row.get(4),
                },
                deliveries: row.get::<_, i32>(5) as u32,
            })
            .collect())
    }

    async fn callback_delivery(
        &self,
        id: i64,
        outcome: &CallbackOutcome,
    ) -> Result<(), StateError> {
        let mut client = self.client().await?;
        let now = self.clock.now();
        let (state, retry_at, error) = match outcome {
            CallbackOutcome::Delivered => ("delivered", now, None),
            CallbackOutcome::Failed { error, retry_at } => {
                ("pending", *retry_at, Some(error.clone()))
            }
            CallbackOutcome::Abandoned { error } => ("abandoned", now, Some(error.clone())),
        };
        let done = (state != "pending").then_some(now);
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        let steps = async {
            tx.execute(
                "UPDATE callbacks SET deliveries = deliveries + 1, state = $2, next_attempt_at = $3, last_error = $4, done_at = $5 WHERE id = $1",
                &[&id, &state, &retry_at, &error, &done],
            )
            .await?;
            tx.execute(
                "UPDATE integration_status SET callback_error = $2 WHERE integration = (SELECT integration FROM callbacks WHERE id = $1)",
                &[&id, &error],
            )
            .await
        };
        steps.await.map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }
}

/// The ledger of sinks without their own, in `state_ledger`.
#[async_trait]
impl Ledger for PgState {
    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, LedgerError> {
        let store = |e: StateError| LedgerError::Store(Box::new(e));
        let client = self.client().await.map_err(store)?;
        ledger::postgres::applied(&client, Table::State, file)
            .await
            .map_err(|e| store(self.error(e)))
    }

    async fn record(&self, file: &FileRef, rows: u64) -> Result<Committed, LedgerError> {
        let store = |e: StateError| LedgerError::Store(Box::new(e));
        let client = self.client().await.map_err(store)?;
        ledger::postgres::record(&client, Table::State, file, rows)
            .await
            .map_err(|e| store(self.error(e)))
    }
}
