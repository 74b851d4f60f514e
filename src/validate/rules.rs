//! An integration's validation rules, compiled once from the config and shared by every file.

use super::{CsvDialect, DatePattern, Limits, Schema};

/// Where each record's product key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductKey {
    /// No product key: stored as `""`.
    None,
    Fixed(String),
    /// A column of the file carrying the full key on each row; required in the header.
    Column(String),
}

/// Everything the validator needs to judge a file of one integration.
#[derive(Debug, Clone)]
pub struct FileRules {
    pub schema: Schema,
    pub product_key: ProductKey,
    pub dates: DatePattern,
    pub csv: CsvDialect,
    pub max_rows: u64,
    pub limits: Limits,
}

impl FileRules {
    /// The fixed product key, or `""`.
    pub fn fixed_product_key(&self) -> &str {
        match &self.product_key {
            ProductKey::Fixed(key) => key,
            _ => "",
        }
    }
}
