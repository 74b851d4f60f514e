//! PostgreSQL opened the same way everywhere (sink and state): settings from the URL, the
//! password from an env var or file (never from logs), TLS with rustls when the URL asks
//! (`sslmode=require`; `prefer`, the default, falls back to plain when the server has none),
//! a pool sized by config, and versioned migrations applied at start under an advisory lock,
//! so two replicas starting at once do not race.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Config;

use crate::secret::{Secret, SecretRef, redact_url};

/// Why PostgreSQL could not be used. Messages carry the URL without its password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{url}: not a PostgreSQL URL: {message}")]
    Url { url: String, message: String },
    #[error("{url}: password: {message}")]
    Password { url: String, message: String },
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{url}: migration {version} failed: {message}")]
    Migration {
        url: String,
        version: i64,
        message: String,
    },
}

/// A PostgreSQL database as the config names it (sink or state).
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// May hold a password; shown only through [`redact_url`].
    pub url: String,
    /// The password, when the URL has none.
    pub password: Option<SecretRef>,
    pub pool_size: usize,
}

/// A lock number only dropfolder's migrations take.
const MIGRATION_LOCK: i64 = 0x6472_6f70_666f_6c64; // "dropfold"
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool for `url`, the password from `password` when given, migrated with `migrations`.
pub async fn connect(
    url: &str,
    password: Option<&SecretRef>,
    pool_size: usize,
    migrations: &[(i64, &str)],
) -> Result<Pool, PgError> {
    let shown = redact_url(url);
    let config = client_config(url, password)?;
    let manager = Manager::from_config(
        config,
        tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size.max(1))
        .build()
        .map_err(|e| PgError::Connect {
            url: shown.clone(),
            message: e.to_string(),
        })?;
    migrate(&pool, &shown, migrations).await?;
    Ok(pool)
}

/// `url` and the password read, as every connection is made.
fn client_config(url: &str, password: Option<&SecretRef>) -> Result<Config, PgError> {
    let shown = redact_url(url);
    let mut config = Config::from_str(url).map_err(|e| PgError::Url {
        url: shown.clone(),
        message: e.to_string(),
    })?;
    if let Some(secret) = password {
        let password: Secret = secret.read().map_err(|e| PgError::Password {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        config.password(password.expose());
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("dropfolder");
    // Not "relation ... already exists, skipping" on every start.
    config.options("-c client_min_messages=warning");
    Ok(config)
}

/// One connection and `SELECT 1`, as `connect` would make it, migrating nothing: for `check`,
/// which must not change what it checks.
pub async fn ping(url: &str, password: Option<&SecretRef>) -> Result<(), PgError> {
    let shown = redact_url(url);
    let failed = |e: tokio_postgres::Error| PgError::Connect {
        url: shown.clone(),
        message: describe(&e),
    };
    let config = client_config(url, password)?;
    let (client, connection) = config.connect(tls()).await.map_err(failed)?;
    let driver = tokio::spawn(connection);
    let answered = client.simple_query("SELECT 1").await.map_err(failed);
    drop(client);
    let _ = driver.await;
    answered.map(drop)
}

/// rustls with the Mozilla roots; used only when the URL's sslmode asks for TLS.
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// A connection error with its cause ("Connection refused"), without the password.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// Applies the versions of `migrations` the database has not had, all in one transaction under
/// the migration lock: a fresh database costs one commit, and a failing version leaves the
/// database as it was. The commit does not wait for its WAL to reach the disk
/// (`synchronous_commit = off`): WAL is written in order, so the first commit that does wait
/// (any load's) makes the migrations durable too, and a crash before that loses only
/// migrations that nothing has committed against, to be applied again at the next start.
async fn migrate(pool: &Pool, url: &str, migrations: &[(i64, &str)]) -> Result<(), PgError> {
    let connect = |e: &dyn std::error::Error| PgError::Connect {
        url: url.to_string(),
        message: describe(e),
    };
    let mut client = pool.get().await.map_err(|e| connect(&e))?;
    // Failures outside one version's SQL are named by the first version.
    let first = migrations.first().map_or(0, |(version, _)| *version);
    let failed_at = |version: i64| {
        move |e: tokio_postgres::Error| PgError::Migration {
            url: url.to_string(),
            version,
            message: describe(&e),
        }
    };
    let tx = client.transaction().await.map_err(failed_at(first))?;
    // Replicas starting together wait here for each other instead of racing.
    tx.batch_execute(&format!(
        "SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
        CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(failed_at(first))?;
    let versions: Vec<i64> = migrations.iter().map(|(version, _)| *version).collect();
    let done: Vec<i64> = tx
        .query(
            "SELECT version FROM schema_migrations WHERE version = ANY($1)",
            &[&versions],
        )
        .await
        .map_err(failed_at(first))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(failed_at(first))?;
    for (version, sql) in migrations {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(failed_at(*version))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(failed_at(*version))?;
    }
    tx.commit().await.map_err(failed_at(first))
}
