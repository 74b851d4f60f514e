//! An integration's validation rules, compiled once from the config and shared by every file.

use crate::config::{Config, CsvConfig, IntegrationConfig, Limits, Schema};
use crate::validate::DatePattern;

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
    pub csv: CsvConfig,
    pub max_rows: u64,
    pub limits: Limits,
}

/// The config would have said so in `check`; this is for callers that skipped it.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("integration '{integration}' refers to schema '{schema}', which is not defined")]
    NoSchema { integration: String, schema: String },
    #[error("integration '{integration}': date_format {source}")]
    DateFormat {
        integration: String,
        source: crate::validate::PatternError,
    },
}

impl FileRules {
    pub fn for_integration(
        config: &Config,
        integration: &IntegrationConfig,
    ) -> Result<FileRules, RulesError> {
        let schema = config
            .schema_of(integration)
            .ok_or_else(|| RulesError::NoSchema {
                integration: integration.name.clone(),
                schema: integration.schema.clone(),
            })?;
        let dates = DatePattern::compile(&integration.date_format).map_err(|source| {
            RulesError::DateFormat {
                integration: integration.name.clone(),
                source,
            }
        })?;
        let product_key = match (&integration.product_key, &integration.product_key_column) {
            (_, Some(column)) => ProductKey::Column(column.clone()),
            (Some(key), None) => ProductKey::Fixed(key.clone()),
            (None, None) => ProductKey::None,
        };
        Ok(FileRules {
            schema: schema.clone(),
            product_key,
            dates,
            csv: integration.csv.clone(),
            max_rows: integration.max_rows,
            limits: integration.limits.clone(),
        })
    }

    /// The fixed product key, or `""`.
    pub fn fixed_product_key(&self) -> &str {
        match &self.product_key {
            ProductKey::Fixed(key) => key,
            _ => "",
        }
    }
}
