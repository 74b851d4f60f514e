//! `[outbound]`: the operator's exceptions to where outbound requests may go, and the check
//! of every customer-chosen outbound URL (callbacks, the HTTP sink, its OAuth2 token
//! endpoint) against them, so `check` refuses an internal address before anything runs.

use serde::Deserialize;

use super::{AuthConfig, Config, Problem, SinkKind};
use crate::egress::{EgressPolicy, Network};

/// `[outbound]`: applies to callbacks, HTTP sinks and OAuth2 token endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Networks (CIDR, e.g. `"10.20.0.0/16"`, or one address) outbound requests may reach
    /// although they are loopback, link-local, private, unique-local, CGNAT or metadata
    /// addresses. Default: none.
    #[serde(default)]
    pub allow_networks: Vec<String>,
}

impl OutboundConfig {
    /// The policy in effect; networks that do not parse are left out (`check` reports them).
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::new(
            self.allow_networks
                .iter()
                .filter_map(|n| Network::parse(n).ok())
                .collect(),
        )
    }

    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        for network in &self.allow_networks {
            if let Err(e) = Network::parse(network) {
                problems.push(Problem::section("outbound", "allow_networks", e));
            }
        }
    }
}

/// Every outbound URL of the config whose host is a refused address.
pub(super) fn check_urls(config: &Config, problems: &mut Vec<Problem>) {
    let policy = config.outbound.policy();
    if let Some(sink) = &config.sink
        && sink.kind() == Some(SinkKind::Http)
    {
        if let Some(Err(e)) = sink.url.as_deref().map(|u| policy.check_url(u)) {
            problems.push(Problem::section("sink", "url", e.to_string()));
        }
        if let Some(AuthConfig::Oauth2 { token_url, .. }) = &sink.auth
            && let Err(e) = policy.check_url(token_url)
        {
            problems.push(Problem::section("sink", "auth.token_url", e.to_string()));
        }
    }
    for integration in &config.integrations {
        if let Some(Err(e)) = integration
            .callback
            .as_ref()
            .map(|cb| policy.check_url(&cb.url))
        {
            problems.push(Problem::integration(
                &integration.name,
                "callback.url",
                e.to_string(),
            ));
        }
    }
}
