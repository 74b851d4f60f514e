//! The hostile-tenant suite: one customer (their bucket, their callback server, their
//! settings) trying, on purpose or by accident, to slow down, crash, mislead or reach another
//! customer, the operator or the stored data. Each test here failed on the main it was
//! written against; the README's "Tenant isolation" section names the test behind each promise.

mod common;
// The shared helpers, declared once for every module of the suite.
#[path = "common/counting_proxy.rs"]
mod counting_proxy;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "common/sts_stub.rs"]
mod sts_stub;
#[path = "common/workdir.rs"]
mod workdir;

#[path = "hostile/outbound.rs"]
mod outbound;

#[path = "hostile/tenants.rs"]
mod tenants;

#[path = "hostile/files.rs"]
mod files;

#[path = "hostile/identity.rs"]
mod identity;

#[path = "hostile/credentials.rs"]
mod credentials;
