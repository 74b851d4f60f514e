//! Customer values echoed into messages are cut short and have control characters escaped,
//! so a hostile file cannot forge lines of `status.txt` or flood it.

/// The most characters of a value shown in a message.
pub const MAX_SHOWN_CHARS: usize = 64;

/// `value` made safe to show: at most `MAX_SHOWN_CHARS` (64) characters, then `…`; newlines,
/// control and invisible formatting characters escaped (`\n`, `\u{202e}`).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_SHOWN_CHARS * 2));
    for (n, c) in value.chars().enumerate() {
        if n == MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        match c {
            // Quotes stay readable; they cannot break a line.
            '\'' | '"' => out.push(c),
            _ => out.extend(c.escape_debug()),
        }
    }
    out
}

/// One line of our own text (which may embed a customer's key) made safe to print: newlines,
/// control and invisible formatting characters escaped as [`escape`] does, nothing cut, and
/// backslashes kept as they are (keys inside were escaped already).
pub fn escape_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '\'' | '"' => out.push(c),
            _ => out.extend(c.escape_debug()),
        }
    }
    out
}

/// `'value'`, escaped.
pub fn quoted(value: &str) -> String {
    format!("'{}'", escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_make_new_lines() {
        let shown = escape("x\nSUCCESS\r\n\u{202e}evil\u{0}");
        assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown}");
        assert_eq!(shown, "x\\nSUCCESS\\r\\n\\u{202e}evil\\0");
    }

    #[test]
    fn a_line_keeps_its_length_and_backslashes_but_not_its_newlines() {
        let long = "k".repeat(200);
        assert_eq!(escape_line(&long), long);
        assert_eq!(escape_line("a\\nb\nc\u{202e}"), "a\\nb\\nc\\u{202e}");
    }

    #[test]
    fn long_values_are_cut() {
        let shown = escape(&"é".repeat(1000));
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(escape("it's \"ok\" ✓"), "it's \"ok\" ✓");
    }
}
