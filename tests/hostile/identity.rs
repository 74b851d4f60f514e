//! How an integration gets in and what it can reach: explicit identities, overlapping roots,
//! the status endpoint's token.
