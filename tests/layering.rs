//! The layering of the library: no dependency cycle between the top-level modules of `src/`.
//!
//! A cycle means two modules can only be understood, tested and changed together; the shape
//! the README describes (config → Settings → the rest) is kept by this test, so a new cycle
//! fails `cargo test`. Plain Rust, no tool to install: every `crate::<module>` path in a file
//! under `src/` (outside comments) is an edge from the file's top-level module to `<module>`.
//! The binary (`src/main.rs`, `src/cmd/`) sits on top of the library and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module pairs whose mutual dependency is known and being removed, each with its reason.
/// Keep this list empty once it can be: every entry is a cycle the test does not catch.
const ALLOWED_CYCLES: &[(&str, &str)] = &[];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry under src/").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to; `None` for the crate root and the
/// binary.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "cmd" => None,
        _ => Some(name.to_string()),
    }
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules a line of code names through `crate::`, including in a
/// `use crate::{a::X, b}` group.
fn named_modules(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `dropfolder_crate::` or `other_crate::` are not this crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start => {
                        names.push(identifier(&group[i..]).to_string());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(identifier(rest).to_string());
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Removes comments (line, doc and block) so a doc link is not a dependency.
fn code_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(end) => {
                        rest = &rest[end + 2..];
                        in_block = false;
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block = rest.find("/*");
                match (line_comment, block) {
                    (Some(l), b) if b.is_none_or(|b| l < b) => {
                        code.push_str(&rest[..l]);
                        break;
                    }
                    (_, Some(b)) => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    _ => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        lines.push(code);
    }
    lines
}

/// Edges between top-level modules, each with one place that makes it (file:line).
fn dependencies(src: &Path) -> (Graph, BTreeMap<(String, String), String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut graph = Graph::new();
    let mut witness = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(src, file) else {
            continue;
        };
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (number, line) in code_lines(&text).iter().enumerate() {
            for to in named_modules(line) {
                if to != from && modules.contains(&to) {
                    graph.entry(from.clone()).or_default().insert(to.clone());
                    witness.entry((from.clone(), to)).or_insert_with(|| {
                        let shown = file
                            .strip_prefix(src.parent().unwrap_or(src))
                            .unwrap_or(file);
                        format!("{}:{}", shown.display(), number + 1)
                    });
                }
            }
        }
    }
    (graph, witness)
}

fn allowed(from: &str, to: &str) -> bool {
    ALLOWED_CYCLES
        .iter()
        .any(|&(a, b)| (a, b) == (from, to) || (b, a) == (from, to))
}

/// A shortest path from `start` back to `start`, if there is one.
fn shortest_cycle(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flatten() {
            if allowed(&node, next) {
                continue;
            }
            if next == start {
                let mut path = vec![start.to_string(), node.clone()];
                let mut at = node.clone();
                while let Some(p) = previous.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                if path.last().map(String::as_str) != Some(start) {
                    path.push(start.to_string());
                }
                path.reverse();
                path.dedup();
                return Some(path);
            }
            if next != start && !previous.contains_key(next) {
                previous.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

/// Every distinct cycle found (one shortest per module), as `a -> b -> a` with where each
/// edge is made.
fn cycles(graph: &Graph, witness: &BTreeMap<(String, String), String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for module in graph.keys() {
        let Some(path) = shortest_cycle(graph, module) else {
            continue;
        };
        let members: BTreeSet<&String> = path.iter().collect();
        if !seen.insert(members.into_iter().cloned().collect::<Vec<_>>()) {
            continue;
        }
        let edges: Vec<String> = path
            .windows(2)
            .map(|w| {
                let at = &witness[&(w[0].clone(), w[1].clone())];
                format!("  {} -> {} (at {at})", w[0], w[1])
            })
            .collect();
        found.push(format!("{}\n{}", path.join(" -> "), edges.join("\n")));
    }
    found
}

#[test]
fn no_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (graph, witness) = dependencies(&src);
    assert!(
        graph.len() > 5,
        "the scan of {} found too few modules: {graph:?}",
        src.display()
    );
    let found = cycles(&graph, &witness);
    assert!(
        found.is_empty(),
        "dependency cycles between top-level modules of src/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_paths_groups_and_skips_comments() {
    assert_eq!(named_modules("use crate::config::Config;"), ["config"]);
    assert_eq!(
        named_modules("use crate::{config::{A, B}, schedule, validate::X};"),
        ["config", "schedule", "validate"]
    );
    assert_eq!(
        named_modules("let x = crate::sink::f(other_crate::y);"),
        ["sink"]
    );
    let code = code_lines(
        "//! see [`crate::config`]\nlet a = 1; // crate::sink\n/* crate::x\n crate::y */ crate::z",
    );
    let named: Vec<String> = code.iter().flat_map(|l| named_modules(l)).collect();
    assert_eq!(named, ["z"]);

    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    let witness = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(f, t)| ((f.to_string(), t.to_string()), format!("{f}.rs:1")))
        .collect();
    let found = cycles(&graph, &witness);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("a -> b -> c -> a"), "{found:?}");
}
