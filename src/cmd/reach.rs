//! What `check` reaches besides the buckets: the state and sink databases (connected to,
//! nothing migrated) and the hosts of the HTTP sink, its token endpoint and the callbacks
//! (resolved, put to the egress rule as a request would be, connected to, and for `https` a
//! TLS handshake; nothing is sent). Each probe has its own time limit, so one host that
//! drops packets cannot hold `check` up, and every probe runs at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dropfolder::config::redact_url;
use dropfolder::egress::EgressPolicy;
use dropfolder::outbound::AuthKind;
use dropfolder::postgres::PostgresSettings;
use dropfolder::settings::{Database, Settings};
use dropfolder::sink::SinkSettings;
use reqwest::Url;

/// How long one database or host probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Integrations named after a host shared by many, before "and N more".
const NAMES_SHOWN: usize = 3;

/// One thing `check` reached, and what it found.
pub struct Probe {
    /// `state sqlite://dropfolder.db`, `callback https://hooks.example.com (acme, beta)`.
    pub what: String,
    /// `Ok(how)` or `Err(what is wrong and what to do)`.
    pub outcome: Result<String, String>,
}

/// Every database and host the config names, each probed within [`PROBE_TIMEOUT`], all at
/// once; with `only`, just that integration's callback host.
pub async fn probe_all(config: &Settings, only: Option<&str>) -> Vec<Probe> {
    let mut probes: Vec<futures_util::future::BoxFuture<'_, Probe>> = Vec::new();
    if only.is_none() {
        services(config, &mut probes);
    }
    // One probe per callback host, naming the integrations that use it.
    let mut hosts: Vec<(String, String, Vec<&str>)> = Vec::new();
    for integration in &config.integrations {
        if only.is_some_and(|name| name != integration.name) {
            continue;
        }
        let Some(callback) = &integration.callback else {
            continue;
        };
        let Ok(url) = Url::parse(&callback.url) else {
            continue; // The config check reported it.
        };
        let origin = url.origin().ascii_serialization();
        match hosts.iter_mut().find(|(o, _, _)| *o == origin) {
            Some((_, _, names)) => names.push(&integration.name),
            None => hosts.push((origin, callback.url.clone(), vec![&integration.name])),
        }
    }
    for (_, url, names) in hosts {
        let mut shown = names[..names.len().min(NAMES_SHOWN)].join(", ");
        if names.len() > NAMES_SHOWN {
            shown.push_str(&format!(" and {} more", names.len() - NAMES_SHOWN));
        }
        probes.push(Box::pin(async move {
            let mut probe = host("callback".to_string(), url, config.egress.clone()).await;
            probe.what = format!("{} ({shown})", probe.what);
            probe
        }));
    }
    futures_util::future::join_all(probes).await
}

/// The state and sink databases (the sink when it is not the state database), the HTTP
/// sink's host and its token endpoint.
fn services<'c>(
    config: &'c Settings,
    probes: &mut Vec<futures_util::future::BoxFuture<'c, Probe>>,
) {
    probes.push(Box::pin(database(
        "state",
        "[state]",
        config.state.database.clone(),
    )));
    match &config.sink {
        SinkSettings::Http(http) => {
            probes.push(Box::pin(host(
                "sink".to_string(),
                http.url.clone(),
                config.egress.clone(),
            )));
            if let Some(AuthKind::OAuth2 { token_url, .. }) = http.auth.as_ref().map(|a| &a.kind) {
                probes.push(Box::pin(host(
                    "token endpoint".to_string(),
                    token_url.clone(),
                    config.egress.clone(),
                )));
            }
        }
        SinkSettings::Sqlite(path) => {
            if !matches!(&config.state.database, Database::Sqlite(state) if state == path) {
                probes.push(Box::pin(database(
                    "sink",
                    "[sink]",
                    Database::Sqlite(path.clone()),
                )));
            }
        }
        SinkSettings::Postgres(sink) => {
            if !matches!(&config.state.database, Database::Postgres(state) if state.url == sink.url)
            {
                probes.push(Box::pin(database(
                    "sink",
                    "[sink]",
                    Database::Postgres(sink.clone()),
                )));
            }
        }
    }
}

/// A database: PostgreSQL connected to (`SELECT 1`), SQLite opened if it exists or its
/// directory found writable if not.
async fn database(role: &str, section: &str, database: Database) -> Probe {
    match database {
        Database::Sqlite(path) => {
            let what = format!("{role} sqlite://{}", path.display());
            let outcome = match tokio::task::spawn_blocking(move || sqlite(&path)).await {
                Ok(outcome) => outcome,
                Err(e) => Err(format!("the probe failed: {e}")),
            };
            Probe { what, outcome }
        }
        Database::Postgres(PostgresSettings { url, password, .. }) => {
            let what = format!("{role} {}", redact_url(&url));
            let outcome = match tokio::time::timeout(
                PROBE_TIMEOUT,
                dropfolder::postgres::ping(&url, password.as_ref()),
            )
            .await
            {
                Ok(Ok(())) => Ok("connected".to_string()),
                Ok(Err(e)) => Err(format!(
                    "{e}; check that the server is up and reachable, and `url` and the password in {section}"
                )),
                Err(_) => Err(format!(
                    "no answer within {} s; check that the server is up and reachable from here",
                    PROBE_TIMEOUT.as_secs()
                )),
            };
            Probe { what, outcome }
        }
    }
}

/// SQLite without creating or changing anything: the file opened and read if it exists, else
/// the directory it will be created in found writable.
fn sqlite(path: &Path) -> Result<String, String> {
    use rusqlite::{Connection, OpenFlags};
    if path.exists() {
        let opened = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
                row.get::<_, i64>(0)
            })
        });
        return match opened {
            Ok(_) => Ok(format!("{} opened", path.display())),
            Err(e) => Err(format!(
                "cannot open {}: {e}; check the file and its permissions",
                path.display()
            )),
        };
    }
    // The directories up to the first that exists are created at the first run.
    let mut dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    while !dir.as_os_str().is_empty() && !dir.exists() {
        dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    match tempfile::tempfile_in(&dir) {
        Ok(_) => Ok(format!("{} will be created", path.display())),
        Err(e) => Err(format!(
            "{} does not exist and cannot be created in {}: {e}; check the path and the directory's permissions",
            path.display(),
            dir.display()
        )),
    }
}

/// A host as a request would reach it: the name resolved, each address put to `policy`,
/// a TCP connection to the first allowed one that answers, and for `https` a TLS handshake
/// verified as the outbound client verifies. Nothing is sent over it.
async fn host(role: String, url: String, policy: EgressPolicy) -> Probe {
    let parsed = Url::parse(&url);
    let what = match &parsed {
        Ok(url) => format!("{role} {}", url.origin().ascii_serialization()),
        Err(_) => format!("{role} {}", redact_url(&url)),
    };
    let outcome = match parsed {
        Ok(url) => match tokio::time::timeout(PROBE_TIMEOUT, reach(&url, &policy)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer within {} s; check the host and that the network lets dropfolder reach it",
                PROBE_TIMEOUT.as_secs()
            )),
        },
        Err(e) => Err(format!("not a URL: {e}")),
    };
    Probe { what, outcome }
}

async fn reach(url: &Url, policy: &EgressPolicy) -> Result<String, String> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err("the URL names no host".to_string());
    };
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = match name.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("cannot resolve {name}: {e}; check the host name and DNS"))?
            .collect(),
    };
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|addr| match policy.check(addr.ip()) {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match refused {
            Some(e) => format!("{name} resolves only to refused addresses: {e}"),
            None => format!("{name} resolves to no address"),
        });
    }
    let mut last = None;
    for addr in allowed {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) if url.scheme() == "https" => return handshake(name, stream).await,
            Ok(_) => return Ok("connected".to_string()),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(format!(
            "cannot connect to {addr}: {e}; check that the service is up and the network lets dropfolder reach it"
        )),
        None => Err(format!("{name}: no address to connect to")),
    }
}

/// A TLS handshake with the platform's roots, as the outbound client verifies; then closed.
async fn handshake(name: &str, stream: tokio::net::TcpStream) -> Result<String, String> {
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let server = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| format!("{name} is not a TLS server name: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server, stream)
        .await
        .map(|_| format!("TLS handshake with {name}"))
        .map_err(|e| {
            format!("TLS handshake with {name} failed: {e}; check the host's certificate and port")
        })
}
