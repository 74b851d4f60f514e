//! JSON records (pushed to `/stream/v0/data/<integration>`, or polled from a customer's API)
//! judged against the integration's schema exactly as CSV rows are: the same typed cell checks,
//! dates by the integration's `date_format`, the product key, a mandatory `id`, the same caps,
//! and errors located by record and field. A batch with any error is rejected whole; a valid
//! batch becomes [`ValidRecords`], which hands its rows to any [`RowConsumer`] (a sink's load)
//! as a file's rows are handed.
//!
//! Values: a JSON string is the cell's text; a number or a boolean is its JSON text (`42`,
//! `1.5`, `true`), judged as that CSV cell would be (so `1` is not a boolean, `true` not a
//! number, and `20210625` is a date in format `yyyyMMdd`); `null` is an absent value, as an
//! empty CSV field (the stored attribute stays as it is); objects and arrays are refused.

use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;

use super::AttributeType;
use super::cell::{self, Cell};
use super::escape::escape;
use super::header::{ColumnPlan, HeaderProblem, Role};
use super::report::expected_message;
use super::row::{Row, RowConsumer};
use super::rules::{FileRules, ProductKey};
use super::split::Fields;

/// One record as JSON gives it: field name → value.
pub type JsonRecord = serde_json::Map<String, Json>;

/// One located problem of a batch of records. Field names and values are escaped and cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// The record's place in the batch, from 1; `None` for a problem of the whole batch.
    pub record: Option<u64>,
    pub field: Option<String>,
    pub value: Option<String>,
    /// What is wrong, e.g. `is not a date in format yyyy-MM-dd`.
    pub message: String,
}

impl RecordError {
    fn batch(message: impl Into<String>) -> RecordError {
        RecordError {
            record: None,
            field: None,
            value: None,
            message: message.into(),
        }
    }

    fn record(record: u64, message: impl Into<String>) -> RecordError {
        RecordError {
            record: Some(record),
            ..RecordError::batch(message)
        }
    }

    fn field(record: u64, field: &str, value: Option<&str>, message: impl Into<String>) -> Self {
        RecordError {
            record: Some(record),
            field: Some(escape(field)),
            value: value.map(escape),
            message: message.into(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(record) = self.record {
            write!(f, "record {record}")?;
            if let Some(field) = &self.field {
                write!(f, ", field '{field}'")?;
            }
            f.write_str(": ")?;
        }
        if let Some(value) = &self.value {
            write!(f, "'{value}' ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a batch of records was rejected: the first `limits.max_status_errors` problems, and
/// how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordErrors {
    pub first: Vec<RecordError>,
    pub total: u64,
}

impl RecordErrors {
    fn new() -> RecordErrors {
        RecordErrors {
            first: Vec::new(),
            total: 0,
        }
    }

    fn push(&mut self, keep: usize, error: RecordError) {
        self.total += 1;
        if self.first.len() < keep {
            self.first.push(error);
        }
    }

    /// Problems found but not listed in `first`.
    pub fn more(&self) -> u64 {
        self.total - self.first.len() as u64
    }
}

/// One problem a line, then `... and N more` past the cap.
impl fmt::Display for RecordErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, error) in self.first.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if self.more() > 0 {
            write!(f, "\n... and {} more", self.more())?;
        }
        Ok(())
    }
}

impl std::error::Error for RecordErrors {}

/// A valid record, laid out as a CSV record of the batch's plan: every field's text one after
/// the other (absent fields empty), so a sink reads it as it reads a row of a file.
#[derive(Debug, Clone)]
struct OwnedRecord {
    number: u64,
    id: String,
    text: String,
    ends: Vec<usize>,
    cells: Vec<Cell>,
}

/// A batch of records that passed validation, ready for a sink.
#[derive(Debug, Clone)]
pub struct ValidRecords {
    /// `id`, the product-key field if any, then every attribute of the schema.
    plan: ColumnPlan,
    records: Vec<OwnedRecord>,
    fixed_product_key: String,
}

impl ValidRecords {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Hands every record, in order, to `consumer` as a [`Row`] (its `line` is the record's
    /// place in the batch).
    pub async fn feed<C: RowConsumer>(&self, consumer: &mut C) -> Result<(), C::Error> {
        for row in self.rows() {
            consumer.accept(&row).await?;
        }
        Ok(())
    }

    /// The records as rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.records.iter().map(|record| Row {
            line: record.number,
            id: &record.id,
            record: Fields::from_parts(&record.text, &record.ends),
            plan: &self.plan,
            cells: &record.cells,
            fixed_product_key: &self.fixed_product_key,
        })
    }
}

/// Judges `records` against `rules`: every record valid gives them all, ready for a sink;
/// any problem rejects the batch, with the problems located (`record 3, field 'signUpDate':
/// ...`), the first `limits.max_status_errors` listed and all counted. At most
/// `max_rows` records a batch.
pub fn validate_records(
    rules: &FileRules,
    records: &[JsonRecord],
) -> Result<ValidRecords, RecordErrors> {
    let keep = rules.limits.max_status_errors;
    let mut errors = RecordErrors::new();
    if records.len() as u64 > rules.max_rows {
        errors.push(
            keep,
            RecordError::batch(format!(
                "{} records, more than {}, the limit per batch (max_rows)",
                records.len(),
                rules.max_rows
            )),
        );
        return Err(errors);
    }
    let plan = batch_plan(rules);
    let id_is_number = matches!(
        plan.columns.get(plan.id_index).map(|c| c.role),
        Some(Role::Id(AttributeType::Number))
    );
    let mut valid = Vec::with_capacity(records.len());
    for (index, json) in records.iter().enumerate() {
        let number = index as u64 + 1;
        if let Some(record) = check_record(rules, &plan, id_is_number, number, json, &mut errors)
            && errors.total == 0
        {
            valid.push(record);
        }
    }
    if errors.total > 0 {
        return Err(errors);
    }
    Ok(ValidRecords {
        plan,
        records: valid,
        fixed_product_key: rules.fixed_product_key().to_string(),
    })
}

/// The plan every record of a batch is laid out in: `id`, the product-key field, the schema.
fn batch_plan(rules: &FileRules) -> ColumnPlan {
    let key_field = match &rules.product_key {
        ProductKey::Column(name) => Some(name.as_str()),
        _ => None,
    };
    let mut names: Vec<&str> = vec!["id"];
    names.extend(key_field);
    names.extend(
        rules
            .schema
            .names()
            .filter(|n| *n != "id" && Some(*n) != key_field),
    );
    match ColumnPlan::new(names.iter().copied(), rules) {
        Ok(plan) => plan,
        // Every name above is known and there once, and `id` is first: this cannot happen,
        // and an empty schema still gives a plan of `id` alone.
        Err(_) => ColumnPlan {
            columns: Vec::new(),
            id_index: 0,
            product_key_index: None,
        },
    }
}

/// Checks one record, pushing its problems; the record in the batch's layout if it has none.
fn check_record(
    rules: &FileRules,
    plan: &ColumnPlan,
    id_is_number: bool,
    number: u64,
    json: &JsonRecord,
    errors: &mut RecordErrors,
) -> Option<OwnedRecord> {
    let keep = rules.limits.max_status_errors;
    let before = errors.total;
    // The structure first: unknown fields and a missing id, worded as the header's problems.
    let known = json
        .keys()
        .all(|k| plan.columns.iter().any(|c| c.name == *k && !k.is_empty()));
    let id_present = json.contains_key("id");
    let key_present = match plan.product_key_index.and_then(|i| plan.columns.get(i)) {
        Some(column) => json.contains_key(&column.name),
        None => true,
    };
    if !known || !id_present || !key_present {
        if let Err(problems) = ColumnPlan::new(json.keys().map(String::as_str), rules) {
            for problem in problems.listed.iter().chain(&problems.missing) {
                errors.push(keep, structure_error(number, problem));
            }
            // Counted, not listed: the cap was reached.
            errors.total += problems.more;
        }
        return None;
    }
    let mut text = String::new();
    let mut ends = Vec::with_capacity(plan.columns.len());
    let mut cells = vec![Cell::Absent; plan.columns.len()];
    for (i, column) in plan.columns.iter().enumerate() {
        let field = match json.get(&column.name) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            Some(Json::Number(n)) => Some(std::borrow::Cow::Owned(n.to_string())),
            Some(Json::Bool(b)) => Some(std::borrow::Cow::Borrowed(if *b {
                "true"
            } else {
                "false"
            })),
            Some(nested @ (Json::Object(_) | Json::Array(_))) => {
                let what = if nested.is_object() {
                    "an object"
                } else {
                    "an array"
                };
                errors.push(
                    keep,
                    RecordError::field(
                        number,
                        &column.name,
                        None,
                        format!(
                            "is {what}; values must be strings, numbers or booleans (flatten nested data)"
                        ),
                    ),
                );
                ends.push(text.len());
                continue;
            }
        };
        let field = field.as_deref().unwrap_or_default();
        if let Some(cell) = check_field(rules, column.role, number, &column.name, field, errors) {
            cells[i] = cell;
        }
        text.push_str(field);
        ends.push(text.len());
    }
    if text.len() > rules.limits.max_record_bytes {
        errors.push(
            keep,
            RecordError::record(
                number,
                format!(
                    "a record of {} bytes of values, more than {} (limits.max_record_bytes)",
                    text.len(),
                    rules.limits.max_record_bytes
                ),
            ),
        );
    }
    if errors.total > before {
        return None;
    }
    let raw_id = Fields::from_parts(&text, &ends)
        .get(plan.id_index)
        .unwrap_or_default();
    let id = if id_is_number {
        let mut canonical = String::new();
        cell::canonical_number(raw_id, &mut canonical);
        canonical
    } else {
        raw_id.to_string()
    };
    Some(OwnedRecord {
        number,
        id,
        text,
        ends,
        cells,
    })
}

/// One field's text against its role, as a CSV cell is checked; `None` after a problem.
fn check_field(
    rules: &FileRules,
    role: Role,
    number: u64,
    name: &str,
    field: &str,
    errors: &mut RecordErrors,
) -> Option<Cell> {
    let keep = rules.limits.max_status_errors;
    if field.len() > rules.limits.max_field_bytes {
        errors.push(
            keep,
            RecordError::field(
                number,
                name,
                None,
                format!(
                    "value longer than {} bytes (limits.max_field_bytes)",
                    rules.limits.max_field_bytes
                ),
            ),
        );
        return None;
    }
    // PostgreSQL refuses U+0000 in text, so no sink gets it.
    if field.contains('\0') {
        errors.push(
            keep,
            RecordError::field(
                number,
                name,
                Some(field),
                "contains a NUL character (U+0000), which cannot be stored",
            ),
        );
        return None;
    }
    let parsed = match role {
        Role::Id(_) | Role::ProductKey if field.is_empty() => {
            let what = if role == Role::ProductKey {
                "a product key"
            } else {
                "an id"
            };
            errors.push(
                keep,
                RecordError::field(
                    number,
                    name,
                    None,
                    format!("is empty or null; every record needs {what}"),
                ),
            );
            return None;
        }
        Role::Attribute(ty) => cell::parse(field, ty, &rules.dates),
        // An id is kept as text; a numeric id must still be a number.
        Role::Id(ty) => cell::parse(field, ty, &rules.dates).map(|_| Cell::Text),
        Role::ProductKey => Ok(Cell::Text),
    };
    match parsed {
        Ok(cell) => Some(cell),
        Err(expected) => {
            errors.push(
                keep,
                RecordError::field(
                    number,
                    name,
                    Some(field),
                    expected_message(expected, &rules.dates),
                ),
            );
            None
        }
    }
}

/// A header problem of the record's field names, located at the record.
fn structure_error(number: u64, problem: &HeaderProblem) -> RecordError {
    match problem {
        HeaderProblem::Unknown { name, suggestion } => {
            let mut message = String::from("is not in the schema");
            if let Some(s) = suggestion {
                message.push_str(&format!(" (did you mean '{}'?)", escape(s)));
            }
            RecordError::field(number, name, None, message)
        }
        HeaderProblem::Missing(name) => RecordError::record(
            number,
            format!("has no field '{}'; every record needs it", escape(name)),
        ),
        HeaderProblem::Duplicate(name) => RecordError::field(number, name, None, "is given twice"),
        HeaderProblem::EmptyName { .. } => {
            RecordError::record(number, "has a field with an empty name")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::validate::{CsvDialect, DatePattern, Limits, Schema};

    fn rules(product_key: ProductKey) -> FileRules {
        let attributes: BTreeMap<String, AttributeType> = [
            ("email", AttributeType::String),
            ("age", AttributeType::Number),
            ("active", AttributeType::Boolean),
            ("signUpDate", AttributeType::Date),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        FileRules {
            schema: Schema { attributes },
            product_key,
            dates: DatePattern::compile("yyyy-MM-dd").expect("a valid pattern"),
            csv: CsvDialect::default(),
            max_rows: 1000,
            limits: Limits::default(),
        }
    }

    fn records(json: &str) -> Vec<JsonRecord> {
        serde_json::from_str(json).expect("test JSON")
    }

    /// What a sink receives: id, product key, attributes JSON.
    #[derive(Default)]
    struct Collect(Vec<(String, String, String)>);

    impl RowConsumer for Collect {
        type Error = std::convert::Infallible;

        async fn accept(&mut self, row: &Row<'_>) -> Result<(), Self::Error> {
            let mut json = Vec::new();
            row.write_attributes_json(&mut json);
            self.0.push((
                row.id().to_string(),
                row.product_key().to_string(),
                String::from_utf8_lossy(&json).into_owned(),
            ));
            Ok(())
        }
    }

    fn rows(valid: &ValidRecords) -> Vec<(String, String, String)> {
        let mut collect = Collect::default();
        let fed = tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(valid.feed(&mut collect)));
        assert!(matches!(fed, Ok(Ok(()))));
        collect.0
    }

    fn messages(errors: &RecordErrors) -> Vec<String> {
        errors.first.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_records_reach_the_sink_typed_as_csv_cells_would() {
        let batch = records(
            r#"[{"id": "u1", "email": "a@example.com", "age": 42, "active": true, "signUpDate": "2021-06-25"},
                {"id": 7, "email": 12, "age": "12.50", "active": "FALSE", "signUpDate": null},
                {"id": "u3", "age": 1.5e3, "email": ""}]"#,
        );
        let valid = validate_records(&rules(ProductKey::Fixed("crm".into())), &batch);
        let valid = valid.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(valid.len(), 3);
        assert_eq!(
            rows(&valid),
            vec![
                (
                    "u1".into(),
                    "crm".into(),
                    r#"{"active":true,"age":42,"email":"a@example.com","signUpDate":"2021-06-25T00:00:00Z"}"#
                        .into()
                ),
                (
                    "7".into(),
                    "crm".into(),
                    r#"{"active":false,"age":12.5,"email":"12"}"#.into()
                ),
                ("u3".into(), "crm".into(), r#"{"age":1500.0}"#.into()),
            ]
        );
    }

    #[test]
    fn a_numeric_id_has_its_canonical_text_and_a_product_key_field_is_read() {
        let mut rules = rules(ProductKey::Column("product".into()));
        rules
            .schema
            .attributes
            .insert("id".into(), AttributeType::Number);
        let batch = records(r#"[{"id": 42.0, "product": "crm"}, {"id": "4.2e1", "product": 9}]"#);
        let valid = validate_records(&rules, &batch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rows(&valid),
            vec![
                ("42".into(), "crm".into(), "{}".into()),
                ("42".into(), "9".into(), "{}".into())
            ]
        );
        let missing = records(r#"[{"id": 1}]"#);
        let errors = validate_records(&rules, &missing).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1: has no field 'product'; every record needs it".to_string()
            ])
        );
        let not_a_number = records(r#"[{"id": "x1", "product": "crm"}]"#);
        let errors = validate_records(&rules, &not_a_number).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1, field 'id': 'x1' is not a number (digits with '.' for decimals, no thousands separators)".to_string()
            ])
        );
    }

    #[test]
    fn each_types_invalid_value_is_located_by_record_and_field() {
        let batch = records(
            r#"[{"id": "ok"},
                {"id": "u2", "age": "12,5"},
                {"id": "u3", "age": true},
                {"id": "u4", "active": 1},
                {"id": "u5", "active": "yes"},
                {"id": "u6", "signUpDate": "06/25/2021"},
                {"id": "u7", "signUpDate": false},
                {"id": "u8", "email": {"a": 1}},
                {"id": "u9", "email": ["a"]}]"#,
        );
        let errors = validate_records(&rules(ProductKey::None), &batch).err();
        let number = "is not a number (digits with '.' for decimals, no thousands separators)";
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                format!("record 2, field 'age': '12,5' {number}"),
                format!("record 3, field 'age': 'true' {number}"),
                "record 4, field 'active': '1' is not a boolean (true or false)".into(),
                "record 5, field 'active': 'yes' is not a boolean (true or false)".into(),
                "record 6, field 'signUpDate': '06/25/2021' is not a date in format yyyy-MM-dd".into(),
                "record 7, field 'signUpDate': 'false' is not a date in format yyyy-MM-dd".into(),
                "record 8, field 'email': is an object; values must be strings, numbers or booleans (flatten nested data)".into(),
                "record 9, field 'email': is an array; values must be strings, numbers or booleans (flatten nested data)".into(),
            ])
        );
        assert_eq!(errors.map(|e| e.total), Some(8));
    }

    #[test]
    fn a_missing_null_or_empty_id_is_an_error() {
        let batch = records(r#"[{"email": "a"}, {"id": null}, {"id": ""}, {"id": "  "}]"#);
        let errors = validate_records(&rules(ProductKey::None), &batch).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1: has no field 'id'; every record needs it".to_string(),
                "record 2, field 'id': is empty or null; every record needs an id".into(),
                "record 3, field 'id': is empty or null; every record needs an id".into(),
            ]),
            "an id of spaces is an id, as in a file"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_a_suggestion() {
        let batch = records(r#"[{"id": "u1", "signupdate": "2021-06-25", "zzz": 1}]"#);
        let errors = validate_records(&rules(ProductKey::None), &batch).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1, field 'signupdate': is not in the schema (did you mean 'signUpDate'?)"
                    .to_string(),
                "record 1, field 'zzz': is not in the schema".into(),
            ])
        );
    }

    #[test]
    fn caps_bound_the_errors_listed_the_values_and_the_records() {
        let mut rules = rules(ProductKey::None);
        rules.limits.max_status_errors = 2;
        rules.limits.max_field_bytes = 8;
        rules.limits.max_record_bytes = 12;
        rules.max_rows = 3;
        let batch = records(
            r#"[{"id": "u1", "email": "123456789"}, {"id": "u2", "email": "a\u0000"},
                {"id": "u3", "email": "12345678", "age": 12345}]"#,
        );
        let errors = validate_records(&rules, &batch).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1, field 'email': value longer than 8 bytes (limits.max_field_bytes)"
                    .to_string(),
                "record 2, field 'email': 'a\\0' contains a NUL character (U+0000), which cannot be stored".into(),
            ])
        );
        assert_eq!(errors.as_ref().map(|e| e.total), Some(3));
        assert_eq!(
            errors.map(|e| e.to_string().lines().last().map(str::to_string)),
            Some(Some("... and 1 more".to_string()))
        );
        let too_many = records(r#"[{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4"}]"#);
        let errors = validate_records(&rules, &too_many).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "4 records, more than 3, the limit per batch (max_rows)".to_string()
            ])
        );
    }

    #[test]
    fn the_record_cap_counts_the_values() {
        let mut rules = rules(ProductKey::None);
        rules.limits.max_record_bytes = 12;
        let batch = records(r#"[{"id": "u1", "email": "12345678", "age": 12345}]"#);
        let errors = validate_records(&rules, &batch).err();
        assert_eq!(
            errors.as_ref().map(messages),
            Some(vec![
                "record 1: a record of 15 bytes of values, more than 12 (limits.max_record_bytes)"
                    .to_string()
            ])
        );
    }

    #[test]
    fn an_empty_batch_is_valid_and_empty() {
        let valid = validate_records(&rules(ProductKey::None), &[]);
        assert!(valid.is_ok_and(|v| v.is_empty()));
    }
}
