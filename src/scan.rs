//! Which folders of an integration are ready: `current/dt=YYYYMMDD/` with a real calendar
//! date and a `_SUCCESS` marker, oldest first. A folder without the marker is still being
//! written and is left alone; anything else under `current/` is left alone and reported,
//! never deleted. Notices show keys escaped as `status.txt` does, so a key cannot forge a
//! line of a log, of `run`'s output or of `dropfolder status`.
//!
//! Requests: one LIST of `current/`, then one LIST per date folder. A scan reads at most
//! [`MAX_LISTED`] keys and folders in all (more is the integration's located error), and
//! reports at most [`MAX_NOTICES`] of the things it leaves alone, with their count.

use chrono::NaiveDate;

use crate::store::{MAX_LISTED, ObjectMeta, ObjectStore, StoreError, list_within};
use crate::validate::escape;

pub const CURRENT: &str = "current/";
pub const MARKER: &str = "_SUCCESS";
/// Things left alone told one by one; the rest are counted in one more notice.
pub const MAX_NOTICES: usize = 20;

/// A date folder and everything in it.
#[derive(Debug, Clone)]
pub struct Folder {
    /// `current/dt=20210228/`
    pub prefix: String,
    pub date: NaiveDate,
    /// Every object under the prefix, nested ones included, in key order.
    pub objects: Vec<ObjectMeta>,
}

impl Folder {
    /// `20210228`, as the `processed/` folder is named.
    pub fn date_name(&self) -> String {
        self.date.format("%Y%m%d").to_string()
    }

    pub fn is_ready(&self) -> bool {
        self.objects
            .iter()
            .any(|o| o.key == format!("{}{MARKER}", self.prefix))
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Ready folders, oldest date first.
    pub ready: Vec<Folder>,
    /// Date folders still waiting for their `_SUCCESS`.
    pub waiting: Vec<String>,
    /// What is left alone and why, for logs and the integration status.
    pub notices: Vec<String>,
}

/// Lists `current/` and each date folder in it.
pub async fn scan(store: &dyn ObjectStore) -> Result<Scan, StoreError> {
    let mut budget = MAX_LISTED;
    let top = list_within(store, CURRENT, &mut budget).await?;
    let mut scan = Scan::default();
    for object in &top.objects {
        let name = &object.key[CURRENT.len().min(object.key.len())..];
        let why = if folder_date(name).is_some() {
            // A symlink to a folder, on a local store: never followed.
            "named like a date folder but not a folder (a file or a link); left alone"
        } else {
            "not in a dt=YYYYMMDD folder; left alone"
        };
        scan.notices.push(format!("{}: {why}", escape(&object.key)));
    }
    for prefix in top.prefixes {
        let name = prefix[CURRENT.len()..].trim_end_matches('/');
        let Some(date) = folder_date(name) else {
            scan.notices.push(format!(
                "{}: not a dt=YYYYMMDD folder with a real date; left alone",
                escape(&prefix)
            ));
            continue;
        };
        let folder = Folder {
            objects: list_recursive_within(store, &prefix, &mut budget).await?,
            prefix,
            date,
        };
        if folder.is_ready() {
            scan.ready.push(folder);
        } else {
            scan.waiting.push(folder.prefix);
        }
    }
    scan.ready
        .sort_by(|a, b| (a.date, &a.prefix).cmp(&(b.date, &b.prefix)));
    if scan.notices.len() > MAX_NOTICES {
        let more = scan.notices.len() - MAX_NOTICES;
        scan.notices.truncate(MAX_NOTICES);
        scan.notices
            .push(format!("and {more} more entries of current/ left alone"));
    }
    Ok(scan)
}

/// The date of a `dt=YYYYMMDD` folder name, if it is one and the date exists.
pub fn folder_date(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("dt=")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Every object under `prefix`, descending into sub-prefixes (customers sometimes nest).
pub async fn list_recursive(
    store: &dyn ObjectStore,
    prefix: &str,
) -> Result<Vec<ObjectMeta>, StoreError> {
    let mut budget = MAX_LISTED;
    list_recursive_within(store, prefix, &mut budget).await
}

/// [`list_recursive`], taking the entries read from `budget`.
async fn list_recursive_within(
    store: &dyn ObjectStore,
    prefix: &str,
    budget: &mut usize,
) -> Result<Vec<ObjectMeta>, StoreError> {
    let mut objects = Vec::new();
    let mut pending = vec![prefix.to_string()];
    while let Some(prefix) = pending.pop() {
        let page = list_within(store, &prefix, budget).await?;
        objects.extend(page.objects);
        pending.extend(page.prefixes);
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_dates_are_folders() {
        assert_eq!(
            folder_date("dt=20210228"),
            NaiveDate::from_ymd_opt(2021, 2, 28)
        );
        for bad in [
            "dt=20210229",
            "dt=20211301",
            "dt=2021022",
            "dt=202102280",
            "20210228",
            "dt=2021-02-28",
            "DT=20210228",
            "dt=+2021022",
        ] {
            assert_eq!(folder_date(bad), None, "{bad}");
        }
    }
}
