//! The checks of `[schemas.NAME]`; the types themselves live with their reader,
//! [`crate::validate`].

use super::Problem;
use crate::validate::{AttributeType, Schema};

impl Schema {
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
