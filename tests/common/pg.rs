//! PostgreSQL, as `tests/run` starts it (`tests/pg/start`): a fresh database per test.
#![allow(dead_code)]

/// The cluster `tests/run` started, or `None` to skip; `DROPFOLDER_REQUIRE_POSTGRES=1` (set
/// by `tests/run`) turns a missing cluster into a failure.
pub fn cluster() -> Option<Cluster> {
    let admin = std::env::var("PG_ADMIN_URL").ok().filter(|u| !u.is_empty());
    let app = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    match (admin, app) {
        (Some(admin_url), Some(app_url)) => Some(Cluster { admin_url, app_url }),
        _ => {
            assert!(
                std::env::var("DROPFOLDER_REQUIRE_POSTGRES").is_err(),
                "PG_ADMIN_URL/DATABASE_URL are not set: run the tests with tests/run"
            );
            eprintln!("skipped: no PostgreSQL (tests/run starts one)");
            None
        }
    }
}

pub struct Cluster {
    pub admin_url: String,
    /// `postgres://dropfolder@127.0.0.1:PORT/dropfolder`; the password is `$DATABASE_PASSWORD`.
    pub app_url: String,
}

impl Cluster {
    /// A new empty database owned by the app role; its URL (without password).
    pub async fn fresh_database(&self) -> String {
        let name = crate::common::unique_name("df");
        let admin = connect(&self.admin_url, None).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER dropfolder"))
            .await
            .expect("create database");
        let base = self
            .app_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&self.app_url);
        format!("{base}/{name}")
    }

    /// A pool on an app-role URL, as the service opens one, with `migrations` applied.
    pub async fn pool(&self, url: &str, migrations: &[(i64, &str)]) -> deadpool_postgres::Pool {
        let password = dropfolder::config::SecretRef::Env("DATABASE_PASSWORD".into());
        dropfolder::postgres::connect(url, Some(&password), 4, migrations)
            .await
            .expect("connect")
    }

    /// A client for an app-role URL, with `$DATABASE_PASSWORD`.
    pub async fn client(&self, url: &str) -> tokio_postgres::Client {
        connect(url, std::env::var("DATABASE_PASSWORD").ok().as_deref()).await
    }
}

pub async fn connect(url: &str, password: Option<&str>) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("postgres url");
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
