//! Pulling records from a customer's REST API (source documents 001/002), page by page.
pub mod page;
pub mod response;
