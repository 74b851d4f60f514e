//! What a customer's callback server or ingest API can do: huge bodies, redirects, addresses
//! inside the operator's network, secrets in URLs and logs.
