//! dropfolder imports the gzipped CSV files customers drop into their own S3 buckets.
//!
//! # Layout
//!
//! The modules follow the pipeline, in the order a file meets them:
//!
//! - [`config`]: the TOML file (or a directory of them), parsed strictly, checked as a whole
//!   up front (every problem at once) and compiled once into [`settings::Settings`]: only
//!   checked values, defaults applied, patterns and schedule compiled. Every module below
//!   takes its part of the settings as its own type (e.g. [`validate::FileRules`],
//!   [`schedule::ScheduleSettings`], [`sink::SinkSettings`], [`store::StoreSettings`]) and
//!   imports nothing from `config` (`tests/layering.rs` fails on any cycle between these
//!   modules).
//! - [`store`]: a bucket as one small trait with S3's semantics; [`store::LocalStore`] for a
//!   local folder.
//! - [`scan`]: the ready `current/dt=YYYYMMDD/` folders of an integration, oldest first.
//!   The other ways in ([`settings::Source`]): [`poll`] asks a customer's REST API for its
//!   records window by window (paging and response parsing in [`poll::page`] and
//!   [`poll::response`]), and [`push`] (below) takes records customers POST.
//! - [`validate`]: the hot path. A gzipped CSV stream judged against the integration's
//!   schema, row by row, with bounded memory; valid rows go to a consumer.
//! - [`load`]: one file through the validator into a sink, ledger-checked;
//!   [`load_records`]: validated JSON records ([`validate::ValidRecords`], pushed or polled)
//!   through the same load and ledger.
//! - [`ledger`]: which version of which file was applied ([`ledger::FileRef`], a
//!   [`ledger::Version`] that is an ETag or a content hash). Its SQL is written once per
//!   database and run by a database sink inside the transaction of the rows; the standalone
//!   [`ledger::Ledger`] trait (implemented by the state stores) serves the HTTP sink.
//! - [`sink`]: where records go ([`sink::SqliteSink`] by default), one transaction per file;
//!   SQLite spools a file's valid rows and takes its write lock only to apply them (a local
//!   `dropfolder import` applies them while it reads: nothing is downloaded). A sink
//!   imports [`ledger`], never [`state`].
//! - [`finish`]: the finish sequence of a loaded drop ([`finish::finish_drop`]): copy to
//!   `processed/`, write `status.txt`, record the result and its callback, delete the
//!   originals, `_SUCCESS` last; [`finish::status`] is the text the customer reads.
//! - [`state`]: what is remembered between runs, one [`state::StateStore`] (SQLite or
//!   PostgreSQL) in the roles it plays: leases, the journal of drops, each integration's
//!   last result, the callback outbox, and the ledger of sinks without their own. The stores
//!   take a [`state::Clock`] (the real one by default), and saved state that cannot be read
//!   back is an error, never a default. `tests/state.rs` is its conformance suite.
//! - [`callback`]: the customer's callback, queued with the result and delivered after.
//! - [`worker`]: one run over every integration, concurrently, one drop at a time each; a
//!   panicking or slow integration holds only its own slot, callbacks have their own workers.
//!
//! Running as a service: [`watch`] (the loop of `dropfolder watch`: the [`schedule`] and the
//! S3 [`events`] of an SQS queue start integration runs), [`reload`] (the settings in force,
//! [`reload::LiveSettings`], shared by the loop, the event router and the server; how a
//! change of the config files is seen, and what it changes), [`shutdown`] (SIGTERM finishes
//! the folder in hand; SIGHUP reloads), [`health`] (Ready / Active / Warning / Failed from the state) and
//! [`server`] (`/healthz`, `/readyz`, `/metrics`, `/status`, and [`page`], the page for
//! people at `/`, behind the same token), and [`push`] (`POST /stream/v0/data/<name>`: records
//! customers push, batched into the sink, behind each integration's own token).
//!
//! Around them: [`secret`] (secrets named in the config, read on demand, never printed; URL
//! redaction), [`outbound`] (HTTP with retries, auth and rate limits, for the callback and
//! HTTP sinks; bounded reads, no redirects), [`egress`] (which addresses outbound requests
//! may reach), [`telemetry`] (events that log and count; metrics
//! and histograms through `prometheus-client`), [`sqlite`] and [`postgres`]
//! (opening each database the same way everywhere), [`crash`] (crash points for the
//! crash-safety tests). The binary (`src/main.rs`, `src/cmd/`) is thin: it parses the
//! command line, sets up tracing, loads and checks the config, and calls into these modules.
//!
//! Visibility: a module (or submodule) is `pub` only if the binary, `tests/` or `benches/`
//! use it; the rest are `pub(crate)`, so the compiler reports what nothing uses.

pub(crate) mod callback;
pub mod config;
pub mod crash;
pub mod egress;
pub mod events;
pub mod finish;
pub mod health;
pub mod ledger;
pub mod load;
pub mod load_records;
pub mod outbound;
pub(crate) mod page;
pub mod poll;
pub mod postgres;
pub mod push;
pub mod reload;
pub mod scan;
pub(crate) mod schedule;
pub(crate) mod secret;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub(crate) mod sqlite;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod watch;
pub mod worker;
