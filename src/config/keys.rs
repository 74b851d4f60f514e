//! Unknown keys, every one at once, each with the key probably meant.
//!
//! serde's `deny_unknown_fields` stops at the first unknown key, so an operator with three
//! typos would fix the file three times. Here the parsed TOML is walked against the keys each
//! section knows before serde sees it; every unknown key becomes a [`Problem`] (with the
//! closest known key, or the list of known ones) and is removed, so serde and
//! [`Config::check`] can then report the other problems of the same file.
//!
//! The key sets are asked of the serde structs themselves ([`fields_of`]), so they cannot
//! drift from what parsing accepts. `sink.auth` (a tagged enum whose keys depend on `type`)
//! is left to serde, which names its unknown key.

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{
    CallbackConfig, Config, CsvConfig, EventsConfig, IntegrationConfig, Limits, OutboundConfig,
    Problem, ScheduleConfig, Scope, ServerConfig, SinkConfig, StateConfig,
};

/// The longest stretch of an unknown key quoted back: the file is the operator's, but a
/// quoted TOML key can be anything.
const MAX_QUOTED_KEY: usize = 64;

/// Parses TOML text into a config, reporting every unknown key rather than the first.
/// `Err` is a TOML syntax error (nothing can be read past it). `Ok((None, problems))`: the
/// file had unknown keys and, with them removed, still did not parse (the last problem says
/// why).
pub(super) fn parse_all(
    text: &str,
    base_dir: PathBuf,
) -> Result<(Option<Config>, Vec<Problem>), String> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut problems = Vec::new();
    remove_unknown_keys(&mut table, None, &mut problems);
    if problems.is_empty() {
        // Parsed from the text, so a type error still points at its line.
        return Config::parse(text, base_dir).map(|config| (Some(config), problems));
    }
    let config = from_table(table, base_dir, &mut problems);
    Ok((config, problems))
}

/// A config from a table whose unknown keys are already reported; a type error becomes a
/// problem naming the key's path.
pub(super) fn from_table(
    table: toml::Table,
    base_dir: PathBuf,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    match serde_path_to_error::deserialize::<_, Config>(table) {
        Ok(mut config) => {
            config.base_dir = base_dir;
            Some(config)
        }
        Err(e) => {
            // toml's message ends with a line naming the path without indexes; the path
            // above has them.
            let message = e.inner().to_string();
            let first_line = message.lines().next().unwrap_or_default();
            problems.push(Problem::whole(format!("{}: {first_line}", e.path())));
            None
        }
    }
}

/// Reports and removes every key of `table` no section knows. `origin` (a file name) starts
/// each message when the config comes from several files.
pub(super) fn remove_unknown_keys(
    table: &mut toml::Table,
    origin: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    let top = Place {
        said: "at the top level".to_string(),
        origin,
    };
    walk(table, Section::Config, &top, "", problems);
    for (key, section) in [
        ("state", Section::State),
        ("sink", Section::Sink),
        ("schedule", Section::Schedule),
        ("server", Section::Server),
        ("events", Section::Events),
        ("outbound", Section::Outbound),
    ] {
        if let Some(toml::Value::Table(inner)) = table.get_mut(key) {
            let place = Place {
                said: format!("in [{key}]"),
                origin,
            };
            walk(inner, section, &place, "", problems);
        }
    }
    if let Some(toml::Value::Array(integrations)) = table.get_mut("integrations") {
        for (index, integration) in integrations.iter_mut().enumerate() {
            let toml::Value::Table(inner) = integration else {
                continue;
            };
            let said = match inner.get("name").and_then(toml::Value::as_str) {
                Some(name) => format!("in integration '{}'", quoted(name)),
                None => format!("in integrations[{index}]"),
            };
            let place = Place { said, origin };
            walk(inner, Section::Integration, &place, "", problems);
        }
    }
}

/// Where a table sits, as a problem says it.
struct Place<'a> {
    /// `in [schedule]`, `in integration 'acme'`.
    said: String,
    origin: Option<&'a str>,
}

/// The tables whose keys are checked here; every other table's keys are free (schemas,
/// headers) or checked by serde (`sink.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Config,
    State,
    Sink,
    Schedule,
    Server,
    Events,
    Outbound,
    Integration,
    Limits,
    Csv,
    Callback,
    Push,
}

impl Section {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Section::Config => fields_of::<Config>(),
            Section::State => fields_of::<StateConfig>(),
            Section::Sink => fields_of::<SinkConfig>(),
            Section::Schedule => fields_of::<ScheduleConfig>(),
            Section::Server => fields_of::<ServerConfig>(),
            Section::Events => fields_of::<EventsConfig>(),
            Section::Outbound => fields_of::<OutboundConfig>(),
            Section::Integration => fields_of::<IntegrationConfig>(),
            Section::Limits => fields_of::<Limits>(),
            Section::Csv => fields_of::<CsvConfig>(),
            Section::Callback => fields_of::<CallbackConfig>(),
            Section::Push => fields_of::<super::push::PushConfig>(),
        }
    }

    /// The section a key of this one holds, when its keys are checked here too. The
    /// top-level sections are walked by [`remove_unknown_keys`], with their own place.
    fn inner(self, key: &str) -> Option<Section> {
        match (self, key) {
            (Section::Integration, "limits") => Some(Section::Limits),
            (Section::Integration, "csv") => Some(Section::Csv),
            (Section::Integration, "callback") => Some(Section::Callback),
            (Section::Integration, "push") => Some(Section::Push),
            _ => None,
        }
    }
}

fn walk(
    table: &mut toml::Table,
    section: Section,
    place: &Place<'_>,
    prefix: &str,
    problems: &mut Vec<Problem>,
) {
    let known = section.fields();
    let unknown: Vec<String> = table
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let message = match closest(&key, known) {
            Some(meant) => format!(
                "unknown key '{prefix}{}' {}: did you mean '{prefix}{meant}'?",
                quoted(&key),
                place.said
            ),
            None => format!(
                "unknown key '{prefix}{}' {}; {} {}",
                quoted(&key),
                place.said,
                keys_of(section, prefix),
                known.join(", ")
            ),
        };
        let message = match place.origin {
            Some(file) => format!("{file}: {message}"),
            None => message,
        };
        problems.push(Problem {
            scope: Scope::Whole,
            key: format!("{prefix}{key}"),
            message,
        });
    }
    for (key, value) in table.iter_mut() {
        if let (Some(inner), toml::Value::Table(inner_table)) = (section.inner(key), value) {
            walk(
                inner_table,
                inner,
                place,
                &format!("{prefix}{key}."),
                problems,
            );
        }
    }
}

/// `the keys of [schedule] are`, and so on: what the list of known keys is of.
fn keys_of(section: Section, prefix: &str) -> String {
    if let Some(inner) = prefix.strip_suffix('.') {
        return format!("the keys of {inner} are");
    }
    match section {
        Section::Config => "the top-level keys are".to_string(),
        Section::Integration => "the keys of an integration are".to_string(),
        _ => "the keys here are".to_string(),
    }
}

/// The known key a typo most likely meant: within a third of its length in edits
/// (transpositions count once), the nearest first.
fn closest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// A key as quoted back: control characters escaped, at most [`MAX_QUOTED_KEY`] characters.
pub(super) fn quoted(key: &str) -> String {
    let mut out: String = key
        .chars()
        .take(MAX_QUOTED_KEY)
        .flat_map(char::escape_debug)
        .collect();
    if key.chars().count() > MAX_QUOTED_KEY {
        out.push_str("...");
    }
    out
}

/// The field names `T`'s derived `Deserialize` asks for: a deserializer that answers
/// `deserialize_struct` by keeping its field list and refusing the rest.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields taken"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The probe always refuses; what it kept is the answer.
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_its_keys_from_serde() {
        for section in [
            Section::Config,
            Section::State,
            Section::Sink,
            Section::Schedule,
            Section::Server,
            Section::Events,
            Section::Outbound,
            Section::Integration,
            Section::Limits,
            Section::Csv,
            Section::Callback,
        ] {
            assert!(!section.fields().is_empty(), "{section:?}");
        }
        assert!(Section::Integration.fields().contains(&"date_format"));
        // A skipped field is not a key.
        assert!(!Section::Config.fields().contains(&"base_dir"));
    }

    #[test]
    fn a_typo_gets_the_key_meant_and_nothing_far_does() {
        let known = Section::Integration.fields();
        assert_eq!(closest("date_fromat", known), Some("date_format"));
        assert_eq!(closest("rolearn", known), Some("role_arn"));
        assert_eq!(closest("colour", known), None);
    }

    #[test]
    fn every_place_is_walked_and_its_unknown_keys_removed() {
        let mut table: toml::Table = r#"
            integration = 1
            [sink]
            urll = "x"
            [sink.auth]
            type = "bearer"
            tokn_env = "left to serde"
            [[integrations]]
            callback = { url = "https://x", retry_cuont = 2 }
        "#
        .parse()
        .expect("toml");
        let mut problems = Vec::new();
        remove_unknown_keys(&mut table, Some("a.toml"), &mut problems);
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "a.toml: unknown key 'integration' at the top level: did you mean 'integrations'?",
                "a.toml: unknown key 'urll' in [sink]: did you mean 'url'?",
                "a.toml: unknown key 'callback.retry_cuont' in integrations[0]: did you mean 'callback.retry_count'?",
            ]
        );
        assert!(!table.contains_key("integration"));
        assert_eq!(
            table["sink"]["auth"]["tokn_env"].as_str(),
            Some("left to serde")
        );
    }

    #[test]
    fn a_long_or_odd_key_is_quoted_back_bounded_and_escaped() {
        assert_eq!(quoted("a\nb"), "a\\nb");
        assert_eq!(quoted(&"k".repeat(1000)).len(), MAX_QUOTED_KEY + 3);
    }
}
