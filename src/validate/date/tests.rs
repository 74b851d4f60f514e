use super::*;

use chrono::NaiveDate;

/// "Today" for the two-digit-year window in these tests: the one the Java table was made with.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).expect("a real date")
}

fn parse(pattern: &str, value: &str) -> Option<String> {
    let compiled = DatePattern::compile_on(pattern, today()).expect("pattern compiles");
    compiled.parse(value).map(crate::validate::row::rfc3339)
}

fn parse_all(pattern: &str, cases: &[(&str, &str)]) {
    for (value, expected) in cases {
        assert_eq!(
            parse(pattern, value).as_deref(),
            Some(*expected),
            "{pattern} on {value:?}"
        );
    }
}

fn refuse_all(pattern: &str, values: &[&str]) {
    for value in values {
        assert_eq!(
            parse(pattern, value),
            None,
            "{pattern} must refuse {value:?}"
        );
    }
}

#[test]
fn the_source_documents_examples() {
    assert_eq!(
        parse("yyyy-MM-dd'T'HH:mm:ssX", "2021-06-25T13:55:42Z").as_deref(),
        Some("2021-06-25T13:55:42Z")
    );
    assert_eq!(
        parse("yyyyMMdd", "20211225").as_deref(),
        Some("2021-12-25T00:00:00Z")
    );
    // The source document writes YYYYMMDD and means calendar year/month/day.
    assert_eq!(
        parse("YYYYMMDD", "20211225").as_deref(),
        Some("2021-12-25T00:00:00Z")
    );
    assert_eq!(
        parse("YYYY-MM-DD", "2021-01-01").as_deref(),
        Some("2021-01-01T00:00:00Z")
    );
}

#[test]
fn every_supported_letter() {
    let cases = [
        ("yyyy-MM-dd", "2021-06-25", "2021-06-25T00:00:00Z"),
        (
            "dd/MM/yyyy HH:mm",
            "25/06/2021 13:55",
            "2021-06-25T13:55:00Z",
        ),
        ("d/M/yyyy", "5/6/2021", "2021-06-05T00:00:00Z"),
        ("d/M/yyyy", "25/12/2021", "2021-12-25T00:00:00Z"),
        ("yy-MM-dd", "21-06-25", "2021-06-25T00:00:00Z"),
        ("yy-MM-dd", "85-06-25", "1985-06-25T00:00:00Z"),
        (
            "yyyy-MM-dd HH:mm:ss.SSS",
            "2021-06-25 13:55:42.123",
            "2021-06-25T13:55:42.123Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "2021-06-25T13:55:42.123+02:00",
            "2021-06-25T11:55:42.123Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ssX",
            "2021-06-25T13:55:42+0530",
            "2021-06-25T08:25:42Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ssX",
            "2021-06-25T13:55:42-05",
            "2021-06-25T18:55:42Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ssZ",
            "2021-06-25T13:55:42+0000",
            "2021-06-25T13:55:42Z",
        ),
        ("dd MMM yyyy", "25 jun 2021", "2021-06-25T00:00:00Z"),
        ("MMMM d, yyyy", "December 5, 2021", "2021-12-05T00:00:00Z"),
        (
            "EEE, dd MMM yyyy HH:mm:ss Z",
            "Fri, 25 Jun 2021 13:55:42 +0000",
            "2021-06-25T13:55:42Z",
        ),
        (
            "MM/dd/yyyy hh:mm a",
            "06/25/2021 01:55 PM",
            "2021-06-25T13:55:00Z",
        ),
        (
            "MM/dd/yyyy hh:mm a",
            "06/25/2021 12:05 am",
            "2021-06-25T00:05:00Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ss",
            "2021-06-25T13:55:42",
            "2021-06-25T13:55:42Z",
        ),
        // An unquoted T, as people write it.
        (
            "yyyy-MM-ddTHH:mm:ss",
            "2021-06-25T13:55:42",
            "2021-06-25T13:55:42Z",
        ),
        (
            "yyyy.MM.dd 'at' HH:mm",
            "2021.06.25 at 13:55",
            "2021-06-25T13:55:00Z",
        ),
        ("yyyyMMdd''HH", "20210625'13", "2021-06-25T13:00:00Z"),
    ];
    for (pattern, value, expected) in cases {
        assert_eq!(
            parse(pattern, value).as_deref(),
            Some(expected),
            "{pattern} on {value}"
        );
    }
}

#[test]
fn unix_timestamps() {
    assert_eq!(
        parse("UnixTimestamp", "1624629342").as_deref(),
        Some("2021-06-25T13:55:42Z")
    );
    assert_eq!(
        parse("UnixTimestamp", "1624629342.5").as_deref(),
        Some("2021-06-25T13:55:42.500Z")
    );
    assert_eq!(
        parse("UnixTimestamp", "-86400").as_deref(),
        Some("1969-12-31T00:00:00Z")
    );
    assert_eq!(
        parse("UnixTimestampInMills", "1624629342123").as_deref(),
        Some("2021-06-25T13:55:42.123Z")
    );
    assert_eq!(
        parse("UnixTimestampInMillis", "0").as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    for bad in ["", "12a", "1.2.3", "1e9", " 1", "99999999999999999999"] {
        assert_eq!(parse("UnixTimestamp", bad), None, "{bad:?}");
    }
    assert_eq!(parse("UnixTimestampInMills", "1624629342.5"), None);
}

#[test]
fn impossible_and_mismatched_values() {
    let iso = "yyyy-MM-dd";
    for bad in [
        "2021-02-30",
        "2021-13-01",
        "2021-00-10",
        "2021-06-31",
        "2021-06-25x",
        "2021-06-25T00:00",
        "21-06-25",
        "2021/06/25",
        "",
        "２０２１-06-25",
    ] {
        assert_eq!(parse(iso, bad), None, "{bad:?}");
    }
    assert_eq!(
        parse(iso, "2024-02-29").as_deref(),
        Some("2024-02-29T00:00:00Z")
    );
    assert_eq!(parse(iso, "2023-02-29"), None);
    assert_eq!(parse("yyyy-MM-dd HH:mm", "2021-06-25 24:00"), None);
    assert_eq!(parse("yyyy-MM-dd HH:mm", "2021-06-25 12:60"), None);
    assert_eq!(parse("MM/dd/yyyy hh:mm a", "06/25/2021 13:55 PM"), None);
    assert_eq!(
        parse("yyyy-MM-dd'T'HH:mm:ssX", "2021-06-25T13:55:42+25:00"),
        None
    );
    assert_eq!(parse("yyyy-MM-dd'T'HH:mm:ssX", "2021-06-25T13:55:42"), None);
}

#[test]
fn patterns_that_are_mistakes_are_refused_with_a_hint() {
    let err = DatePattern::compile("yyyy-mm-dd").expect_err("mm without hour");
    assert!(err.to_string().contains("the month is 'MM'"), "{err}");
    assert!(DatePattern::compile("yyyyMMdd HHmm").is_ok());
    for bad in [
        "yyyy-MM",
        "HH:mm",
        "yyyy-MM-dd'T",
        "yyyy-MM-dd G",
        "yyyy-DDD",
        "",
        "yyyy-MM-dd[ HH:mm",
        "yyyy-MM-dd]",
        "dd-MM-yyyy a",
    ] {
        assert!(
            DatePattern::compile(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn digits_without_zero_padding_as_java_reads_them() {
    parse_all(
        "MM/dd/yyyy",
        &[
            ("1/5/2021", "2021-01-05T00:00:00Z"),
            ("01/05/2021", "2021-01-05T00:00:00Z"),
        ],
    );
    parse_all(
        "yyyy-MM-dd HH:mm:ss",
        &[("2021-1-5 8:5:9", "2021-01-05T08:05:09Z")],
    );
    parse_all("yyyy-MM-dd", &[("2021-6-25", "2021-06-25T00:00:00Z")]);
    parse_all(
        "MM/dd/yyyy hh:mm a",
        &[("6/25/2021 1:55 PM", "2021-06-25T13:55:00Z")],
    );
    // Abutting fields keep their widths: that is how yyyyMMdd can be read at all.
    parse_all(
        "yyyyMMddHHmmss",
        &[("20210625135542", "2021-06-25T13:55:42Z")],
    );
    refuse_all("yyyyMMdd", &["2021625", "202106251"]);
    // A year is four digits (or two under yy); Java's year 21 AD is nobody's meaning.
    refuse_all("yyyy-MM-dd", &["21-06-25", "20210-06-25", "2021-06-"]);
}

#[test]
fn spaces_before_a_field_are_skipped_as_java_does() {
    // The C library's ctime pads the day with a space.
    parse_all(
        "EEE MMM d HH:mm:ss zzz yyyy",
        &[("Sat Jun  5 13:55:42 UTC 2021", "2021-06-05T13:55:42Z")],
    );
    parse_all(
        "yyyy-MM-dd'T'HH:mm:ssX",
        &[(" 2021-06-25T13:55:42Z", "2021-06-25T13:55:42Z")],
    );
    // Trailing spaces are for the cell to trim; the pattern does not read them.
    refuse_all("MM/dd/yyyy", &["06/25/2021 "]);
}

#[test]
fn month_names_in_either_length_and_any_case() {
    parse_all(
        "dd MMM yyyy",
        &[
            ("25 Jun 2021", "2021-06-25T00:00:00Z"),
            ("25 June 2021", "2021-06-25T00:00:00Z"),
            ("25 JUNE 2021", "2021-06-25T00:00:00Z"),
            ("25 sep 2021", "2021-09-25T00:00:00Z"),
        ],
    );
    parse_all(
        "MMMM d, yyyy",
        &[
            ("Jun 5, 2021", "2021-06-05T00:00:00Z"),
            ("december 5, 2021", "2021-12-05T00:00:00Z"),
        ],
    );
    refuse_all(
        "dd MMM yyyy",
        &["25 Juni 2021", "25 Sept 2021", "25 06 2021"],
    );
}

#[test]
fn zone_names_as_java_resolves_them() {
    let pattern = "EEE MMM dd HH:mm:ss zzz yyyy";
    let at = |zone: &str| format!("Fri Jun 25 13:55:42 {zone} 2021");
    for (zone, expected) in [
        ("UTC", "2021-06-25T13:55:42Z"),
        ("utc", "2021-06-25T13:55:42Z"),
        ("GMT", "2021-06-25T13:55:42Z"),
        ("GMT+02:00", "2021-06-25T11:55:42Z"),
        ("GMT-05:30", "2021-06-25T19:25:42Z"),
        ("GMT+2:00", "2021-06-25T11:55:42Z"),
        ("+0200", "2021-06-25T11:55:42Z"),
        ("PST", "2021-06-25T21:55:42Z"),
        ("PDT", "2021-06-25T20:55:42Z"),
        ("EST", "2021-06-25T18:55:42Z"),
        ("CET", "2021-06-25T12:55:42Z"),
        ("CEST", "2021-06-25T11:55:42Z"),
        ("JST", "2021-06-25T04:55:42Z"),
        ("AEST", "2021-06-25T03:55:42Z"),
    ] {
        assert_eq!(
            parse(pattern, &at(zone)).as_deref(),
            Some(expected),
            "{zone}"
        );
    }
    // IST is India's, Israel's or Ireland's: Java picks Israel; refused rather than guessed.
    for zone in ["IST", "XYZ", "GMT+2", "GMT+0200", "UTC+02:00", "PHT", ""] {
        assert_eq!(parse(pattern, &at(zone)), None, "{zone:?}");
    }
}

#[test]
fn two_digit_years_within_80_years_before_and_20_after_today() {
    // today = 2025-06-01: the window is 1945-06-01 up to 2045-06-01.
    parse_all(
        "dd/MM/yy",
        &[
            ("25/06/21", "2021-06-25T00:00:00Z"),
            ("25/06/50", "1950-06-25T00:00:00Z"),
            ("25/06/69", "1969-06-25T00:00:00Z"),
            ("25/06/99", "1999-06-25T00:00:00Z"),
            ("25/06/44", "2044-06-25T00:00:00Z"),
            ("25/06/45", "1945-06-25T00:00:00Z"),
            ("01/01/45", "2045-01-01T00:00:00Z"),
            // Four digits under yy are the year itself.
            ("25/06/2021", "2021-06-25T00:00:00Z"),
        ],
    );
    parse_all("yyMMdd", &[("210625", "2021-06-25T00:00:00Z")]);
    refuse_all("dd/MM/yy", &["25/06/5", "25/06/021"]);
    // The window moves with the clock it is given.
    let later = DatePattern::compile_on(
        "dd/MM/yy",
        NaiveDate::from_ymd_opt(2090, 1, 1).expect("date"),
    )
    .expect("pattern compiles");
    assert_eq!(
        later
            .parse("25/06/50")
            .map(crate::validate::row::rfc3339)
            .as_deref(),
        Some("2050-06-25T00:00:00Z")
    );
}

#[test]
fn a_day_name_that_contradicts_the_date_is_refused() {
    parse_all(
        "EEE, dd MMM yyyy HH:mm:ss Z",
        &[("Fri, 25 Jun 2021 13:55:42 +0000", "2021-06-25T13:55:42Z")],
    );
    refuse_all(
        "EEE, dd MMM yyyy HH:mm:ss Z",
        &["Mon, 25 Jun 2021 13:55:42 +0000"],
    );
    parse_all(
        "EEEE, MMMM d, yyyy",
        &[("Friday, June 25, 2021", "2021-06-25T00:00:00Z")],
    );
    refuse_all("EEEE, MMMM d, yyyy", &["Thursday, June 25, 2021"]);
}

#[test]
fn a_pattern_naming_one_field_twice_is_refused() {
    let err = DatePattern::compile("yyyy-MM-dd HH:MM").expect_err("MM twice");
    assert!(err.to_string().contains("minutes are 'mm'"), "{err}");
    for bad in [
        "yyyy-MM-dd-yyyy",
        "yyyy-MM-dd HH:mm:ss HH",
        "yyyy-MMM-dd MM",
        "dd/MM/yyyy d",
    ] {
        assert!(
            DatePattern::compile(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
    // Alternatives in optional sections may name the same field.
    assert!(DatePattern::compile("yyyy-MM-dd[ HH:mm:ss][ HH:mm]").is_ok());
}

#[test]
fn optional_sections_and_fractions_of_any_width() {
    let pattern = "yyyy-MM-dd HH:mm:ss[.SSSSSS]";
    parse_all(
        pattern,
        &[
            ("2005-05-05 07:24:55.65", "2005-05-05T07:24:55.650Z"),
            ("2005-05-05 07:24:55.650000", "2005-05-05T07:24:55.650Z"),
            ("1970-01-01 00:00:00", "1970-01-01T00:00:00Z"),
            ("2021-06-25 13:55:42.123456", "2021-06-25T13:55:42.123456Z"),
            ("2021-06-25 13:55:42.5", "2021-06-25T13:55:42.500Z"),
        ],
    );
    refuse_all(
        pattern,
        &[
            "2021-06-25 13:55:42.",
            "2021-06-25 13:55:42.1234567",
            "2021-02-30 00:00:00",
        ],
    );
    let nested = "yyyy-MM-dd['T'HH:mm[:ss]]";
    parse_all(
        nested,
        &[
            ("2021-06-25", "2021-06-25T00:00:00Z"),
            ("2021-06-25T13:55", "2021-06-25T13:55:00Z"),
            ("2021-06-25T13:55:42", "2021-06-25T13:55:42Z"),
        ],
    );
    refuse_all(nested, &["2021-06-25T13", "2021-06-25T25:00"]);
    parse_all(
        "yyyy-MM-dd'T'HH:mm:ss[.SSS][XXX]",
        &[
            ("2021-06-25T13:55:42+02:00", "2021-06-25T11:55:42Z"),
            ("2021-06-25T13:55:42.123", "2021-06-25T13:55:42.123Z"),
        ],
    );
    // Time-zone-aware columns: DuckDB's timestamptz (`+00`), pandas (`+00:00`).
    parse_all(
        "yyyy-MM-dd HH:mm:ss[.SSSSSS][X]",
        &[
            ("2021-06-25 13:55:42.5+00", "2021-06-25T13:55:42.500Z"),
            ("2021-06-25 13:55:42+02:00", "2021-06-25T11:55:42Z"),
            ("2021-06-25 13:55:42", "2021-06-25T13:55:42Z"),
        ],
    );
    // Without brackets, a fraction still takes 1 up to its width in digits.
    parse_all(
        "yyyy-MM-dd HH:mm:ss.SSS",
        &[("2021-06-25 13:55:42.5", "2021-06-25T13:55:42.500Z")],
    );
}

#[test]
fn mistaken_letters_read_as_the_customer_meant() {
    parse_all("YYYY-MM-dd", &[("2021-01-01", "2021-01-01T00:00:00Z")]);
    parse_all("yyyy-MM-DD", &[("2021-06-25", "2021-06-25T00:00:00Z")]);
    parse_all("uuuu-MM-dd", &[("2021-06-25", "2021-06-25T00:00:00Z")]);
    parse_all(
        "yyyy-MM-dd hh:mm",
        &[
            ("2021-06-25 13:07", "2021-06-25T13:07:00Z"),
            ("2021-06-25 12:30", "2021-06-25T12:30:00Z"),
        ],
    );
    parse_all(
        "yyyy-MM-dd kk:mm",
        &[("2021-06-25 24:00", "2021-06-25T00:00:00Z")],
    );
    parse_all(
        "yyyy-MM-dd KK:mm a",
        &[("2021-06-25 00:30 PM", "2021-06-25T12:30:00Z")],
    );
    refuse_all("yyyy-MM-dd KK:mm a", &["2021-06-25 12:30 PM"]);
    refuse_all("yyyy-MM-dd kk:mm", &["2021-06-25 00:00"]);
    let notes = DatePattern::compile("YYYY-MM-DD hh:mm")
        .expect("compiles")
        .notes();
    let text = notes.join("\n");
    for letters in ["YYYY", "DD", "hh"] {
        assert!(
            text.contains(&format!("'{letters}'")),
            "{letters} in {text}"
        );
    }
    assert!(
        DatePattern::compile("yyyy-MM-dd HH:mm")
            .expect("compiles")
            .notes()
            .is_empty()
    );
}

/// Every case of `tests/data/dates-java17.tsv` (made by `tests/java/DateOracle.java` from
/// Java 17) read by dropfolder as a date cell is read: the same instant as Java, or refused
/// where Java refuses, except the differences the table names, each with its reason.
#[test]
fn matches_java_17_case_by_case() {
    let table = include_str!("../../../tests/data/dates-java17.tsv");
    let mut compared = 0;
    let mut failures = Vec::new();
    for (n, line) in table.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "line {}: {line:?}", n + 1);
        let (pattern, value, java, differs, why) = (
            cols[0],
            cols[1].replace("\\t", "\t"),
            cols[2],
            cols[3],
            cols[4],
        );
        let java = if java == "trailing text" {
            "refused"
        } else {
            java
        };
        let ours = match DatePattern::compile_on(pattern, today()) {
            Err(_) => "bad pattern".to_string(),
            Ok(compiled) => match crate::validate::cell::parse(
                &value,
                crate::validate::AttributeType::Date,
                &compiled,
            ) {
                Ok(crate::validate::cell::Cell::Date(d)) => crate::validate::row::rfc3339(d),
                _ => "refused".to_string(),
            },
        };
        let expected = if differs.is_empty() {
            java
        } else {
            assert!(
                !why.is_empty(),
                "line {}: a difference needs its reason",
                n + 1
            );
            assert_ne!(differs, java, "line {}: not a difference", n + 1);
            differs
        };
        if ours != expected {
            failures.push(format!("line {}: {pattern} on {value:?}: java {java}, expected {expected}, dropfolder {ours}", n + 1));
        }
        compared += 1;
    }
    assert!(compared > 100, "only {compared} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_fixed_width_fast_path_reads_every_value_as_the_general_reader() {
    let fast = [
        ("yyyy-MM-dd'T'HH:mm:ssX", "2021-06-25T13:55:42Z"),
        ("yyyy-MM-dd'T'HH:mm:ssX", "2021-06-25T13:55:42+05:30"),
        (
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "2021-06-25T13:55:42.123-0800",
        ),
        ("yyyyMMdd", "20211225"),
        ("yyyyMMddHHmmss", "20211225235959"),
        ("dd/MM/yyyy HH:mm:ss.SSS", "29/02/2024 00:00:00.999"),
        ("yyyy-MM-dd", "2000-02-29"),
        ("yyyy-MM-dd HH:mm:ss", "1999-12-31 23:59:59"),
        ("yyyy-MM-dd HH:mm:ssXXX", "2024-02-29 00:00:00+01:00"),
        ("yyyy-MM-ddTHH:mm", "1999-12-31T23:59"),
    ];
    // Every value one edit away from a good one: each byte replaced by each of these, one
    // removed, one added.
    let replacements = [
        '0', '1', '2', '3', '9', ' ', '\t', '-', '+', ':', 'T', 'Z', 'é',
    ];
    for (pattern, good) in fast {
        let compiled = DatePattern::compile_on(pattern, today()).expect("pattern compiles");
        assert!(compiled.fixed.is_some(), "{pattern} has the fast path");
        let by_layout = pattern.starts_with("yyyy-MM-dd")
            && [10, 19].contains(&pattern.replace("'T'", "T").trim_end_matches('X').len());
        assert_eq!(
            compiled.fixed.as_ref().is_some_and(|f| f.reads_by_layout()),
            by_layout,
            "{pattern}: read by layout"
        );
        assert!(compiled.parse(good).is_some(), "{pattern} on {good}");
        let chars: Vec<char> = good.chars().collect();
        let mut values = Vec::new();
        for i in 0..=chars.len() {
            let (before, after) = chars.split_at(i);
            for r in replacements {
                let mut inserted: Vec<char> = before.to_vec();
                inserted.push(r);
                inserted.extend(after);
                values.push(inserted.iter().collect::<String>());
                if let Some((_, tail)) = after.split_first() {
                    let mut replaced: Vec<char> = before.to_vec();
                    replaced.push(r);
                    replaced.extend(tail);
                    values.push(replaced.iter().collect::<String>());
                }
            }
            if let Some((_, tail)) = after.split_first() {
                values.push(before.iter().chain(tail).collect::<String>());
            }
        }
        for value in &values {
            assert_eq!(
                compiled.parse(value),
                compiled.parse_general(value),
                "{pattern} on {value:?}"
            );
        }
    }
    // Impossible dates and times of the right shape are refused by both.
    let iso = DatePattern::compile_on("yyyy-MM-dd'T'HH:mm:ssX", today()).expect("compiles");
    for value in [
        "2021-02-29T00:00:00Z",
        "2021-13-01T00:00:00Z",
        "2021-00-10T00:00:00Z",
        "2021-04-31T00:00:00Z",
        "2021-06-00T00:00:00Z",
        "2021-06-25T24:00:00Z",
        "2021-06-25T23:60:00Z",
        "2021-06-25T23:59:60Z",
        "2021-06-25T23:59:59+19",
        "2021-06-25T23:59:59+05:60",
    ] {
        assert_eq!(iso.parse(value), None, "{value}");
        assert_eq!(iso.parse_general(value), None, "{value}");
    }
    // Patterns whose values vary in width, or whose literal holds a digit, keep the general
    // reader only.
    for pattern in [
        "d/M/yyyy",
        "yy-MM-dd",
        "MM/dd/yyyy hh:mm a",
        "yyyy'1'MM-dd",
        "dd MMM yyyy",
        "yyyy-MM-dd[ HH:mm]",
        "yyyy-MM-dd HH:mm z",
        "yyyy-MM-ddX HH",
        "UnixTimestamp",
    ] {
        let compiled = DatePattern::compile_on(pattern, today()).expect("pattern compiles");
        assert!(compiled.fixed.is_none(), "{pattern} has no fast path");
    }
}
