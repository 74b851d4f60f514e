//! Integration roots never overlap: two integrations over the same bucket and prefix, or one
//! inside the other, would both import the same drop, each under its own name. `check` (and so
//! every command at start-up) refuses such a file.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{IntegrationConfig, Problem, StoreLocation};

/// Reports every pair of integrations whose roots overlap, on the later one in file order.
///
/// S3 roots overlap on the same endpoint and bucket when one prefix is a path-prefix of the
/// other on `/` boundaries (`acme/px` holds `acme/px/eu`, not `acme/px2`); local folders the
/// same way on their canonical paths. Sorting makes it linear in the integrations plus the
/// overlaps found: every root that starts with another sorts right after it.
pub(super) fn check_overlaps(
    integrations: &[IntegrationConfig],
    base: &Path,
    problems: &mut Vec<Problem>,
) {
    // Per S3 endpoint (or local disk): (root with a trailing '/', file position).
    let mut spaces: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    for (position, integration) in integrations.iter().enumerate() {
        let Ok(location) = integration.location(base) else {
            continue; // Reported by the integration's own check.
        };
        let (space, root) = match location {
            StoreLocation::Local(path) => (String::from("file"), local_root(&path)),
            StoreLocation::S3 { bucket, prefix } => {
                let endpoint = integration
                    .endpoint
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_ascii_lowercase();
                let root = if prefix.is_empty() {
                    format!("{bucket}/")
                } else {
                    format!("{bucket}/{prefix}/")
                };
                (format!("s3 {endpoint}"), root)
            }
        };
        spaces.entry(space).or_default().push((root, position));
    }
    let mut found = Vec::new();
    for roots in spaces.values_mut() {
        roots.sort();
        for (i, (outer, a)) in roots.iter().enumerate() {
            for (inner, b) in roots[i + 1..]
                .iter()
                .take_while(|(r, _)| r.starts_with(outer))
            {
                let (first, second) = if a < b { (*a, *b) } else { (*b, *a) };
                found.push((second, first, outer.clone(), inner.clone()));
            }
        }
    }
    found.sort();
    for (second, first, outer, inner) in found {
        let what = if outer == inner {
            format!(
                "the same root as integration '{}'",
                integrations[first].name
            )
        } else {
            format!(
                "a root overlapping integration '{}' ({} holds {})",
                integrations[first].name,
                outer.trim_end_matches('/'),
                inner.trim_end_matches('/')
            )
        };
        problems.push(Problem::integration(
            &integrations[second].name,
            "bucket",
            format!("{what}: both would import the same drops; give each its own bucket or prefix"),
        ));
    }
}

/// A local folder as a comparable root: canonical when it exists (symlinks resolved), else
/// normalized by its components; with a trailing `/`.
fn local_root(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path));
    let mut root = path.to_string_lossy().into_owned();
    if !root.ends_with('/') {
        root.push('/');
    }
    root
}

/// `a/./b/../c` as `a/c`, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
