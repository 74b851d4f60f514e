//! Attribute schemas: the apiNames a customer's headers must use, and each one's type.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::Problem;

/// The type of an attribute, as written in `[schemas.NAME]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    String,
    /// Integer or decimal, `.` as the decimal separator, no thousands separators.
    Number,
    /// `true` or `false`, any case.
    Boolean,
    /// In the integration's `date_format`; stored as RFC 3339 UTC.
    Date,
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttributeType::String => "string",
            AttributeType::Number => "number",
            AttributeType::Boolean => "boolean",
            AttributeType::Date => "date",
        })
    }
}

/// `apiName = type` for one entity type. `id` is always allowed (a string unless declared).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Schema {
    pub attributes: BTreeMap<String, AttributeType>,
}

impl Schema {
    pub fn get(&self, api_name: &str) -> Option<AttributeType> {
        self.attributes.get(api_name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.attributes.keys().map(String::as_str)
    }

    pub(super) fn check(&self, name: &str, problems: &mut Vec<Problem>) {
        let section = format!("schemas.{name}");
        if self.attributes.is_empty() {
            problems.push(Problem::section(
                &section,
                "",
                "a schema needs at least `id`",
            ));
        }
        for api_name in self.attributes.keys() {
            if api_name.trim() != api_name || api_name.chars().any(char::is_control) {
                problems.push(Problem::section(
                    &section,
                    api_name,
                    "an apiName cannot have surrounding spaces or control characters",
                ));
            }
        }
        if let Some(AttributeType::Boolean | AttributeType::Date) = self.get("id") {
            problems.push(Problem::section(
                &section,
                "id",
                "`id` must be a string or a number",
            ));
        }
    }
}
