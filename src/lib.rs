//! dropfolder imports the gzipped CSV files customers drop into their own S3 buckets.
//!
//! # Layout
//!
//! The modules follow the pipeline, in the order a file meets them:
//!
//! - [`config`]: the one TOML file, parsed strictly and checked as a whole up front.
//! - [`validate`]: the hot path. A gzipped CSV stream judged against the integration's
//!   schema, row by row, with bounded memory; valid rows go to a consumer.
//! - [`status`]: the result a customer reads in `status.txt`.
//! - [`schedule`]: when `watch` scans (an interval or a cron expression in a time zone).
//!
//! The binary (`src/main.rs`) is thin: it parses the command line, sets up tracing, loads and
//! checks the config, and calls into these modules.

pub mod config;
pub mod schedule;
pub mod status;
pub mod validate;
