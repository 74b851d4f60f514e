use super::*;

fn parse(pattern: &str, value: &str) -> Option<String> {
    let compiled = DatePattern::compile(pattern).expect("pattern compiles");
    compiled.parse(value).map(crate::validate::rfc3339)
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
        "2021-6-25",
        "2021-06-25 ",
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
        "dd-MM-yyyy a",
    ] {
        assert!(
            DatePattern::compile(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
}
