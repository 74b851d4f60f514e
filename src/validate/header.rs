//! The header row against the schema: every column an apiName (or the product-key column),
//! `id` present, nothing twice. All header problems are found together, because a customer
//! fixes them in one edit; a hostile header of 150,000 columns costs one pass over it (a set
//! of names seen), and its problems are listed up to `limits.max_status_errors`, then counted.

use std::collections::HashSet;
use std::fmt;

use super::AttributeType;
use super::escape::quoted;
use super::rules::{FileRules, ProductKey};
use super::split::Fields;

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Id(AttributeType),
    ProductKey,
    Attribute(AttributeType),
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub role: Role,
}

/// The columns of one file, in file order.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub columns: Vec<Column>,
    pub id_index: usize,
    pub product_key_index: Option<usize>,
}

/// One header problem, worded as the source document words them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    Missing(String),
    Duplicate(String),
    EmptyName {
        position: usize,
    },
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::Unknown { name, suggestion } => {
                write!(f, "Unknown Column: {}", quoted(name))?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean {}?)", quoted(s)),
                    None => Ok(()),
                }
            }
            HeaderProblem::Missing(name) => write!(f, "Missing required Column: {}", quoted(name)),
            HeaderProblem::Duplicate(name) => write!(f, "Duplicate Column: {}", quoted(name)),
            HeaderProblem::EmptyName { position } => {
                write!(f, "Empty Column name at position {position}")
            }
        }
    }
}

/// The problems of one header: the first few per column, the missing columns, the rest counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblems {
    /// Per-column problems, in column order, up to the cap.
    pub listed: Vec<HeaderProblem>,
    /// Required columns not found; always listed (at most two).
    pub missing: Vec<HeaderProblem>,
    /// Per-column problems found beyond the cap.
    pub more: u64,
}

impl HeaderProblems {
    fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.missing.is_empty() && self.more == 0
    }
}

impl ColumnPlan {
    /// Plans the columns named by `names` (the header row, or `csv.columns`).
    pub fn new<'n>(
        names: impl IntoIterator<Item = &'n str>,
        rules: &FileRules,
    ) -> Result<ColumnPlan, HeaderProblems> {
        let key_column = match &rules.product_key {
            ProductKey::Column(name) => Some(name.as_str()),
            _ => None,
        };
        let cap = rules.limits.max_status_errors;
        let mut problems = HeaderProblems {
            listed: Vec::new(),
            missing: Vec::new(),
            more: 0,
        };
        // Built only for a problem that is listed: a suggestion costs an edit distance.
        let mut report = |problem: &dyn Fn() -> HeaderProblem| {
            if problems.listed.len() < cap {
                problems.listed.push(problem());
            } else {
                problems.more += 1;
            }
        };
        let mut columns: Vec<Column> = Vec::new();
        let mut seen: HashSet<&'n str> = HashSet::new();
        for (position, name) in names.into_iter().enumerate() {
            let role = if name == "id" {
                Some(Role::Id(
                    rules.schema.get("id").unwrap_or(AttributeType::String),
                ))
            } else if Some(name) == key_column {
                Some(Role::ProductKey)
            } else {
                rules.schema.get(name).map(Role::Attribute)
            };
            if !seen.insert(name) {
                report(&|| HeaderProblem::Duplicate(name.to_string()));
            } else if name.is_empty() {
                report(&|| HeaderProblem::EmptyName {
                    position: position + 1,
                });
            } else if role.is_none() {
                report(&|| HeaderProblem::Unknown {
                    name: name.to_string(),
                    suggestion: suggest(name, rules),
                });
            }
            columns.push(Column {
                name: name.to_string(),
                role: role.unwrap_or(Role::Attribute(AttributeType::String)),
            });
        }
        let find = |role: fn(&Role) -> bool| columns.iter().position(|c| role(&c.role));
        let id_index = find(|r| matches!(r, Role::Id(_)));
        let product_key_index = find(|r| *r == Role::ProductKey);
        if id_index.is_none() {
            problems.missing.push(HeaderProblem::Missing("id".into()));
        }
        if let (Some(name), None) = (key_column, product_key_index) {
            problems
                .missing
                .push(HeaderProblem::Missing(name.to_string()));
        }
        match id_index {
            Some(id_index) if problems.is_empty() => Ok(ColumnPlan {
                columns,
                id_index,
                product_key_index,
            }),
            _ => Err(problems),
        }
    }

    /// Plans from a header record. Names are matched exactly: `' email'` is unknown, and
    /// the suggestion shows the customer the stray space.
    pub fn from_header(
        header: Fields<'_>,
        rules: &FileRules,
    ) -> Result<ColumnPlan, HeaderProblems> {
        ColumnPlan::new(header.iter(), rules)
    }

    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }
}

/// The known name an unknown column most likely meant: same letters in another case, or a
/// small edit away. Header drift (a renamed or mistyped apiName) is the commonest mistake.
fn suggest(name: &str, rules: &FileRules) -> Option<String> {
    let known = rules
        .schema
        .names()
        .chain(std::iter::once("id"))
        .chain(match &rules.product_key {
            ProductKey::Column(c) => Some(c.as_str()),
            _ => None,
        });
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in known {
        let distance = if candidate.to_lowercase() == lower {
            0
        } else {
            strsim::levenshtein(&lower, &candidate.to_lowercase())
        };
        let close_enough = distance <= 2.max(candidate.chars().count() / 4);
        if close_enough && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// `Parsing Errors:[ a, b ]`, the source document's form; past the cap, `... and N more`.
pub fn parsing_errors(problems: &HeaderProblems) -> String {
    let mut list: Vec<String> = problems
        .listed
        .iter()
        .chain(&problems.missing)
        .map(ToString::to_string)
        .collect();
    if problems.more > 0 {
        list.push(format!("... and {} more", problems.more));
    }
    format!("Parsing Errors:[ {} ]", list.join(", "))
}
