//! `status.json`: the result of `status.txt` for machines. Names and values are escaped as in
//! the validator's messages.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::{FileResult, is_success, records_uploaded};
use crate::validate::escape;

#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    pub success: bool,
    /// Where the folder went, e.g. `s3://bucket/prefix/processed/20210228`.
    pub folder_path: String,
    /// Where it came from, e.g. `current/dt=20210228/`.
    pub source: String,
    pub records_uploaded: u64,
    pub files: Vec<FileEntry<'a>>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct FileEntry<'a> {
    pub file: String,
    #[serde(flatten)]
    pub result: &'a FileResult,
}

impl<'a> StatusJson<'a> {
    pub fn new(folder_path: String, source: &str, files: &'a [FileResult]) -> StatusJson<'a> {
        StatusJson {
            success: is_success(files),
            folder_path,
            source: escape(source),
            records_uploaded: records_uploaded(files),
            files: files
                .iter()
                .map(|result| FileEntry {
                    file: escape(&result.name),
                    result,
                })
                .collect(),
            finished_at: Utc::now(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    }
}
