//! The DNS resolver of every outbound client: a name is resolved as usual, then each address
//! is put to the [`EgressPolicy`], at connect time, so a customer's host name that points (or
//! later re-points) at an internal address is refused like the address itself. URLs whose
//! host is an IP never reach a resolver; [`super::Endpoint`] checks those before sending.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::egress::{EgressPolicy, Refused};

#[derive(Debug, Clone)]
pub(super) struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

/// Why a name gave no address that may be reached.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("cannot resolve {name}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} resolves only to refused addresses; {source}")]
    Refused {
        name: String,
        #[source]
        source: Refused,
    },
    #[error("{name} resolves to no address")]
    Empty { name: String },
}

impl GuardedResolver {
    pub(super) fn new(policy: Arc<EgressPolicy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let name = name.as_str().to_string();
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    name: name.clone(),
                    source,
                })?;
            let mut allowed: Vec<SocketAddr> = Vec::new();
            let mut refused = None;
            for addr in found {
                match policy.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(e) => refused = Some(e),
                }
            }
            // Only allowed addresses are handed to the connector; a name left with none is
            // refused, saying why.
            if allowed.is_empty() {
                return Err(match refused {
                    Some(source) => ResolveError::Refused { name, source },
                    None => ResolveError::Empty { name },
                }
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
