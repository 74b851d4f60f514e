//! `Config::compile`: the one step from the file's strings to [`Settings`]. The checks run
//! first and report every problem at once; only a config without problems is built, and the
//! building reads each value the way its check accepted it (a value the check should have
//! refused becomes a problem too, never a default).

use std::time::Duration;

use super::{Config, Problem, SecretCheck, SinkKind, outbound, roots};
use crate::callback::CallbackSettings;
use crate::events::EventsSettings;
use crate::postgres::PostgresSettings;
use crate::settings::{
    Database, IntegrationSettings, ServerSettings, Settings, Source, StateSettings,
};
use crate::sink::SinkSettings;
use crate::store::{BucketAccess, StoreSettings};
use crate::validate::FileRules;

impl Config {
    /// Checks the whole file, then builds the settings everything else runs on; every
    /// problem, in file order, when it cannot run. With [`SecretCheck::Require`] every named
    /// secret must be readable now.
    pub fn compile(&self, secrets: SecretCheck) -> Result<Settings, Vec<Problem>> {
        let mut problems = Vec::new();
        self.state.check(secrets, &self.base_dir, &mut problems);
        if let Some(sink) = &self.sink {
            sink.check(secrets, &self.base_dir, &mut problems);
        }
        let schedule = self.schedule.compile(&mut problems);
        self.server.check(secrets, &self.base_dir, &mut problems);
        if let Some(events) = &self.events {
            events.check(&mut problems);
        }
        self.outbound.check(&mut problems);
        outbound::check_urls(self, &mut problems);
        for (name, schema) in &self.schemas {
            schema.check(name, &mut problems);
        }
        let mut seen = std::collections::HashSet::new();
        let mut rules = Vec::new();
        for integration in &self.integrations {
            if !seen.insert(integration.name.as_str()) {
                problems.push(Problem::integration(
                    &integration.name,
                    "name",
                    "two integrations have this name; names must be unique",
                ));
            }
            rules.push(integration.check(&self.schemas, secrets, &self.base_dir, &mut problems));
            if let Some(poll) = &integration.poll {
                let policy = self.outbound.policy();
                poll.check(secrets, &self.base_dir, &policy, &mut |key, message| {
                    problems.push(Problem::integration(&integration.name, key, message));
                });
            }
        }
        roots::check_overlaps(&self.integrations, &self.base_dir, &mut problems);
        match schedule {
            Some(schedule) if problems.is_empty() => {
                self.build(schedule, rules).map_err(|problem| vec![problem])
            }
            _ => Err(problems),
        }
    }

    /// The settings of a config without problems; `rules` are the integrations' compiled
    /// file rules, in order.
    fn build(
        &self,
        schedule: crate::schedule::ScheduleSettings,
        rules: Vec<Option<FileRules>>,
    ) -> Result<Settings, Problem> {
        let base = &self.base_dir;
        let state = StateSettings {
            database: self.database(
                "state",
                &self.state.url,
                self.state.password(base),
                self.state.pool_size,
            )?,
            lease: Duration::from_secs(self.state.lease_seconds),
        };
        let sink = match &self.sink {
            // The state database is the sink when none is configured.
            None => match &state.database {
                Database::Sqlite(path) => SinkSettings::Sqlite(path.clone()),
                Database::Postgres(database) => SinkSettings::Postgres(database.clone()),
            },
            Some(sink) if sink.kind() == Some(SinkKind::Http) => {
                SinkSettings::Http(sink.http_settings(base)?)
            }
            Some(sink) => {
                let url = (sink.url.as_deref())
                    .ok_or_else(|| Problem::section("sink", "url", "missing"))?;
                let pool_size = sink.pool_size.unwrap_or(self.state.pool_size);
                match self.database("sink", url, sink.password_of(base), pool_size)? {
                    Database::Sqlite(path) => SinkSettings::Sqlite(path),
                    Database::Postgres(database) => SinkSettings::Postgres(database),
                }
            }
        };
        let server = ServerSettings {
            listen: self
                .server
                .listen
                .parse()
                .map_err(|_| Problem::section("server", "listen", "not an address"))?,
            token: self.server.token(base),
        };
        let events = self.events.as_ref().map(|events| EventsSettings {
            queue_url: events.queue_url.clone(),
            endpoint: events.endpoint.clone(),
            region: events.region.clone(),
            wait_seconds: events.wait_seconds,
            visibility_timeout_seconds: events.visibility_timeout_seconds,
        });
        let integrations = self
            .integrations
            .iter()
            .zip(rules)
            .map(|(integration, rules)| {
                let problem = |key: &str| Problem::integration(&integration.name, key, "invalid");
                let callback = match &integration.callback {
                    Some(callback) => Some(CallbackSettings {
                        url: callback.url.clone(),
                        api_key: integration
                            .callback_key(base)
                            .ok_or_else(|| problem("callback.api_key_env"))?,
                        attempts: callback.retry_count,
                        timeout: Duration::from_secs(callback.timeout_seconds),
                    }),
                    None => None,
                };
                let credentials_expire_on = match &integration.credentials_expire_on {
                    Some(date) => Some(
                        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                            .map_err(|_| problem("credentials_expire_on"))?,
                    ),
                    None => None,
                };
                if let Some(poll) = &integration.poll {
                    let policy = self.outbound.policy();
                    let poll = poll.check(SecretCheck::Skip, base, &policy, &mut |_, _| {});
                    return Ok(IntegrationSettings {
                        name: integration.name.clone(),
                        entity: integration.entity,
                        rules: rules.ok_or_else(|| problem("schema"))?,
                        source: Source::Poll(poll.ok_or_else(|| problem("poll"))?),
                        callback,
                        credentials_expire_on,
                    });
                }
                Ok(IntegrationSettings {
                    name: integration.name.clone(),
                    entity: integration.entity,
                    rules: rules.ok_or_else(|| problem("schema"))?,
                    source: match &integration.push {
                        Some(push) => Source::Push(
                            push.settings(base)
                                .ok_or_else(|| problem("push.token_env"))?,
                        ),
                        None => Source::Bucket(StoreSettings {
                            location: integration.location(base).map_err(|message| {
                                Problem::integration(&integration.name, "bucket", message)
                            })?,
                            access: BucketAccess {
                                name: integration.name.clone(),
                                endpoint: integration.endpoint.clone(),
                                sts_endpoint: integration.sts_endpoint.clone(),
                                region: integration.region.clone(),
                                role_arn: integration.role_arn.clone(),
                                external_id: integration.external_id.clone(),
                                external_id_env: integration.external_id_env.clone(),
                                access_key_id_env: integration.access_key_id_env.clone(),
                                secret_access_key_env: integration.secret_access_key_env.clone(),
                                session_token_env: integration.session_token_env.clone(),
                                use_operator_identity: integration.use_operator_identity,
                            },
                        }),
                    },
                    callback,
                    credentials_expire_on,
                })
            })
            .collect::<Result<_, Problem>>()?;
        Ok(Settings {
            state,
            sink,
            schedule,
            server,
            events,
            egress: self.outbound.policy(),
            integrations,
        })
    }

    /// The database at a checked `sqlite://` or `postgres://` URL.
    fn database(
        &self,
        section: &str,
        url: &str,
        password: Option<crate::secret::SecretRef>,
        pool_size: usize,
    ) -> Result<Database, Problem> {
        if let Some(path) = crate::sqlite::path_of_url(url, &self.base_dir) {
            return Ok(Database::Sqlite(path));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(PostgresSettings {
                url: url.to_string(),
                password,
                pool_size,
            }));
        }
        Err(Problem::section(section, "url", "not a database URL"))
    }
}
