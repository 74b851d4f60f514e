//! What one slow or failing tenant can do to the others: panics, hanging callbacks, the
//! shared SQLite database, hostile headers.
