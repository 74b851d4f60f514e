//! The validator against a corpus of valid and hostile files: every case asserts the verdict
//! and the message a customer would read, and none may panic or run away with memory.

mod common;

use common::{check_bytes, check_csv, gzip, messages, rules, rules_with};
use dropfolder::finish::status::{FileResult, status_text};

fn status(report: dropfolder::validate::FileReport) -> String {
    status_text(&[FileResult::from_report(&report)])
}

const HEADER: &str = "id,email,signUpDate,score,isTrial\n";

fn csv(rows: &[&str]) -> String {
    let mut text = HEADER.to_string();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

#[tokio::test]
async fn a_valid_file_hands_over_typed_rows() {
    let (report, rows) = check_csv(
        &rules(),
        &csv(&[
            "u1,a@example.com,2021-02-28,12345.60,TRUE",
            "u2,,2021-03-01,-7,false",
            "u3,\"Smith, \"\"Jo\"\"\",,,",
        ]),
    )
    .await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(report.rows, 3);
    assert_eq!(
        rows,
        [
            r#"u1||{"email":"a@example.com","signUpDate":"2021-02-28T00:00:00Z","score":12345.6,"isTrial":true}"#,
            r#"u2||{"signUpDate":"2021-03-01T00:00:00Z","score":-7,"isTrial":false}"#,
            r#"u3||{"email":"Smith, \"Jo\""}"#,
        ]
    );
    assert_eq!(status(report), "SUCCESS\n3 records were uploaded\n");
}

#[tokio::test]
async fn crlf_bom_and_quoted_newlines_are_fine_and_lines_are_physical() {
    let text =
        "\u{feff}id,email,signUpDate\r\nu1,\"two\r\nlines\",2021-01-01\r\nu2,x,2021-13-01\r\n";
    let (report, _) = check_csv(&rules(), text).await;
    // The record of u2 starts on physical line 4, after the quoted line break.
    assert_eq!(
        messages(&report),
        ["line 4, column 'signUpDate': '2021-13-01' is not a date in format yyyy-MM-dd"]
    );
    let (report, rows) = check_csv(&rules(), &text.replace("2021-13-01", "2021-12-01")).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(
        rows[0],
        r#"u1||{"email":"two\r\nlines","signUpDate":"2021-01-01T00:00:00Z"}"#
    );
}

#[tokio::test]
async fn multi_member_gzip_is_read_to_the_end() {
    let mut bytes = gzip(csv(&["u1,a@x.com,,,"]).as_bytes());
    bytes.extend(gzip(b"u2,b@x.com,,,\n"));
    bytes.extend(gzip(b"u3,c@x.com,,,\n"));
    let (report, rows) = check_bytes(&rules(), bytes).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn broken_gzip_is_named_precisely() {
    let good = gzip(csv(&["u1,a@x.com,,,"; 50]).as_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty",
            Vec::new(),
            "the file is empty (0 bytes); expected gzip-compressed CSV",
        ),
        (
            "plain csv",
            csv(&["u1,a@x.com,,,"]).into_bytes(),
            "not gzip data (it starts with 'id,email,signUpD'): compress the CSV with gzip and name it .csv.gz",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "the gzip data ends early",
        ),
        (
            "no footer",
            good[..good.len() - 4].to_vec(),
            "the gzip data ends early",
        ),
        (
            "trailing garbage",
            [good.clone(), b"garbage after the end".to_vec()].concat(),
            "data after the end of the gzip stream",
        ),
        (
            "corrupt crc",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 6] ^= 0xff;
                b
            },
            "the gzip data is corrupt",
        ),
    ];
    for (name, bytes, expected) in cases {
        let (report, rows) = check_bytes(&rules(), bytes).await;
        let found = messages(&report);
        assert!(!report.is_valid(), "{name} must be rejected");
        assert!(
            found.len() == 1 && found[0].starts_with(expected),
            "{name}: {found:?}"
        );
        assert!(rows.len() <= 50, "{name}");
    }
}

#[tokio::test]
async fn empty_and_header_only_files() {
    let (report, _) = check_bytes(&rules(), gzip(b"")).await;
    assert_eq!(
        messages(&report),
        ["the file has no header row: it is empty"]
    );
    let (report, rows) = check_csv(&rules(), HEADER).await;
    assert!(report.is_valid() && rows.is_empty());
    assert_eq!(status(report), "SUCCESS\n0 records were uploaded\n");
}

#[tokio::test]
async fn header_problems_are_listed_together_in_the_source_documents_form() {
    let (report, rows) = check_csv(&rules(), "emial,flantana_carteret,Score\nx,y,1\n").await;
    assert!(rows.is_empty());
    assert_eq!(
        messages(&report),
        [
            "Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?), Unknown Column: 'flantana_carteret', Unknown Column: 'Score' (did you mean 'score'?), Missing required Column: 'id' ]"
        ]
    );
    let (report, _) = check_csv(&rules(), "id,email,email\n1,a,b\n").await;
    assert_eq!(
        messages(&report),
        ["Parsing Errors:[ Duplicate Column: 'email' ]"]
    );
    let (report, _) = check_csv(&rules(), "id,,email\n1,a,b\n").await;
    assert_eq!(
        messages(&report),
        ["Parsing Errors:[ Empty Column name at position 2 ]"]
    );
    let (report, _) = check_csv(&rules(), "id, email\n1,a\n").await;
    assert_eq!(
        messages(&report),
        ["Parsing Errors:[ Unknown Column: ' email' (did you mean 'email'?) ]"]
    );
}

#[tokio::test]
async fn cell_errors_name_line_column_and_value() {
    let (report, rows) = check_csv(
        &rules(),
        &csv(&[
            "u1,a@x.com,2021-02-28,1,true",
            ",b@x.com,,,",
            "u3,,2021-02-30,,",
            "u4,,,\"12,345.60\",",
            "u5,,,NaN,",
            "u6,,,Infinity,",
            "u7,,,,yes",
            "u8,,,,1",
            "u9,,,1 000,",
        ]),
    )
    .await;
    assert!(
        rows.len() <= 1,
        "rows after the first error are not handed over: {rows:?}"
    );
    assert_eq!(
        messages(&report),
        [
            "line 3, column 'id': is empty; every row needs an id",
            "line 4, column 'signUpDate': '2021-02-30' is not a date in format yyyy-MM-dd",
            "line 5, column 'score': '12,345.60' is not a number (digits with '.' for decimals, no thousands separators)",
            "line 6, column 'score': 'NaN' is not a number (digits with '.' for decimals, no thousands separators)",
            "line 7, column 'score': 'Infinity' is not a number (digits with '.' for decimals, no thousands separators)",
            "line 8, column 'isTrial': 'yes' is not a boolean (true or false)",
            "line 9, column 'isTrial': '1' is not a boolean (true or false)",
            "line 10, column 'score': '1 000' is not a number (digits with '.' for decimals, no thousands separators)",
        ]
    );
    assert_eq!(report.rows, 9);
}

#[tokio::test]
async fn ragged_rows_and_invalid_utf8_do_not_stop_the_reading() {
    let mut text = csv(&["u1,a,,,", "u2,b", "u3,c,,,,,"]).into_bytes();
    text.extend(b"u4,caf\xe9,,,\n");
    text.extend(b"u5,ok,,,\n");
    let (report, _) = check_bytes(&rules(), gzip(&text)).await;
    assert_eq!(
        messages(&report),
        [
            "line 3: 2 fields, but the header has 5",
            "line 4: 7 fields, but the header has 5",
            "line 5, column 'email': is not valid UTF-8 (at byte 4 of the value)",
        ]
    );
    assert_eq!(report.rows, 5);
}

#[tokio::test]
async fn an_unterminated_quote_is_an_error() {
    let (report, _) = check_csv(
        &rules(),
        &csv(&["u1,a,,,", "u2,\"never closed,,,", "u3,c,,,"]),
    )
    .await;
    // The unclosed quote swallows the rest of the file into line 3's record, so that record
    // is also short of fields; both messages point at the line to fix.
    assert_eq!(
        messages(&report),
        [
            "line 3: 2 fields, but the header has 5",
            "line 3: a quoted field is not closed: the file has an odd number of \" characters (a quote inside a field must be doubled, and such a field quoted)",
        ]
    );
}

#[tokio::test]
async fn hostile_values_cannot_forge_status_lines() {
    let (report, _) = check_csv(
        &rules(),
        &csv(&["u1,,\"2021-01-01\nSUCCESS\n4155 records were uploaded\",,"]),
    )
    .await;
    let text = status(report);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with(
            "ERROR\nusers.csv.gz: line 2, column 'signUpDate': '2021-01-01\\nSUCCESS\\n4155 records"
        ),
        "{text}"
    );
    let long = "9".repeat(10_000);
    let (report, _) = check_csv(&rules(), &csv(&[&format!("u1,,,{long}x,")])).await;
    let shown = &messages(&report)[0];
    assert!(shown.len() < 250, "{shown}");
}

#[tokio::test]
async fn errors_are_capped_in_the_status_and_counted_in_full() {
    let bad: Vec<String> = (0..150).map(|i| format!("u{i},,,x,")).collect();
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let (report, _) = check_csv(&rules(), &csv(&bad)).await;
    assert_eq!(report.errors.total, 150);
    assert_eq!(report.errors.first.len(), 100);
    let text = status(report);
    assert!(text.ends_with("users.csv.gz: ... and 50 more\n"), "{text}");
    assert_eq!(text.lines().count(), 102);
}

#[tokio::test]
async fn the_row_cap_is_exact() {
    let mut text = String::from("id\n");
    for i in 0..350_000 {
        text.push_str(&format!("{i}\n"));
    }
    let (report, rows) = check_csv(&rules(), &text).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!((report.rows, rows.len()), (350_000, 350_000));
    text.push_str("350000\n");
    let (report, _) = check_csv(&rules(), &text).await;
    assert_eq!(
        messages(&report),
        [
            "line 350002: more than 350000 data rows, the limit per file (max_rows); the file was not read further"
        ]
    );
}

#[tokio::test]
async fn a_64_mib_field_is_refused_without_holding_it() {
    let mut text = b"id,email\nu1,\"".to_vec();
    text.extend(std::iter::repeat_n(b'a', 64 * 1024 * 1024));
    text.extend(b"\"\n");
    let (report, rows) = check_bytes(&rules(), gzip(&text)).await;
    assert!(rows.is_empty());
    assert_eq!(
        messages(&report),
        [
            "line 2: a record longer than 1048576 bytes (limits.max_record_bytes); the file was not read further"
        ]
    );
    // It stopped soon after the cap instead of decompressing everything.
    assert!(
        report.decompressed_bytes < 8 * 1024 * 1024,
        "{}",
        report.decompressed_bytes
    );
}

#[tokio::test]
async fn a_field_over_the_field_cap_is_a_cell_error() {
    let rules = rules_with("limits = { max_field_bytes = 10 }");
    let (report, _) = check_csv(&rules, &csv(&["u1,0123456789a,,,", "u2,0123456789,,,"])).await;
    assert_eq!(
        messages(&report),
        ["line 2, column 'email': field longer than 10 bytes (limits.max_field_bytes)"]
    );
}

/// Gigabytes of zeros in 1,000 gzip members of 4 MiB each: a few MB on disk.
fn zero_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 4 * 1024 * 1024]);
    let mut bomb = gzip(b"id,email\n");
    for _ in 0..1000 {
        bomb.extend_from_slice(&member);
    }
    bomb
}

#[tokio::test]
async fn a_decompression_bomb_ends_in_an_error_not_gigabytes() {
    let (report, _) = check_bytes(&rules(), zero_bomb()).await;
    assert_eq!(
        messages(&report),
        [
            "line 2: a record longer than 1048576 bytes (limits.max_record_bytes); the file was not read further"
        ]
    );
    assert!(
        report.decompressed_bytes < 16 * 1024 * 1024,
        "{}",
        report.decompressed_bytes
    );

    // Rows that are each fine still meet the decompressed-bytes cap.
    let rules = rules_with("limits = { max_decompressed_bytes = 1000000 }");
    let row = format!("u,{}\n", "a".repeat(1000));
    let member = gzip(row.repeat(1000).as_bytes());
    let mut bomb = gzip(b"id,email\n");
    for _ in 0..100 {
        bomb.extend_from_slice(&member);
    }
    let (report, _) = check_bytes(&rules, bomb).await;
    assert_eq!(
        messages(&report),
        [
            "more than 1000000 bytes when decompressed (limits.max_decompressed_bytes); not read further"
        ]
    );
}

#[tokio::test]
async fn product_keys_from_a_column_or_fixed() {
    let rules = rules_with("product_key_column = \"productKey\"");
    let (report, rows) = check_csv(
        &rules,
        "id,productKey,email\nu1,AP-XXXXXXXXXX-2-1,a\nu2,,b\n",
    )
    .await;
    assert_eq!(
        messages(&report),
        ["line 3, column 'productKey': is empty; every row needs a product key"]
    );
    assert_eq!(rows, [r#"u1|AP-XXXXXXXXXX-2-1|{"email":"a"}"#]);
    let (report, _) = check_csv(&rules, "id,email\nu1,a\n").await;
    assert_eq!(
        messages(&report),
        ["Parsing Errors:[ Missing required Column: 'productKey' ]"]
    );

    let rules = rules_with("product_key = \"AP-FIXED-1-1\"");
    let (_, rows) = check_csv(&rules, "id\nu1\n").await;
    assert_eq!(rows, ["u1|AP-FIXED-1-1|{}"]);
}

#[tokio::test]
async fn other_dialects_and_date_formats() {
    let rules = rules_with(
        "csv = { delimiter = \";\", header = false, columns = [\"id\", \"signUpDate\"] }\ndate_format = \"UnixTimestamp\"",
    );
    let (report, rows) = check_csv(&rules, "u1;1624629342\nu2;\n").await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(
        rows,
        [r#"u1||{"signUpDate":"2021-06-25T13:55:42Z"}"#, "u2||{}"]
    );

    let rules = rules_with("csv = { escape = \"\\\\\" }\ndate_format = \"YYYYMMDD\"");
    let (report, rows) = check_csv(
        &rules,
        "id,email,signUpDate\nu1,\"say \\\"hi\\\"\",20211225\n",
    )
    .await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(
        rows,
        [r#"u1||{"email":"say \"hi\"","signUpDate":"2021-12-25T00:00:00Z"}"#]
    );
}

/// Issue 12: dates as customers' tools write them, whole files through the validator.
#[tokio::test]
async fn dates_are_read_as_the_customer_meant_them() {
    let read = [
        ("MM/dd/yyyy", "1/5/2021", "2021-01-05T00:00:00Z"),
        (
            "yyyy-MM-dd HH:mm:ss",
            "2021-1-5 8:5:9",
            "2021-01-05T08:05:09Z",
        ),
        (
            "yyyy-MM-dd'T'HH:mm:ssX",
            " 2021-06-25T13:55:42Z",
            "2021-06-25T13:55:42Z",
        ),
        ("MM/dd/yyyy", "06/25/2021 \t", "2021-06-25T00:00:00Z"),
        ("dd MMM yyyy", "25 June 2021", "2021-06-25T00:00:00Z"),
        ("MMMM d yyyy", "Jun 5 2021", "2021-06-05T00:00:00Z"),
        (
            "EEE MMM dd HH:mm:ss zzz yyyy",
            "Fri Jun 25 13:55:42 UTC 2021",
            "2021-06-25T13:55:42Z",
        ),
        (
            "EEE MMM dd HH:mm:ss zzz yyyy",
            "Fri Jun 25 13:55:42 PDT 2021",
            "2021-06-25T20:55:42Z",
        ),
        (
            "EEE MMM dd HH:mm:ss zzz yyyy",
            "Fri Jun 25 13:55:42 GMT+02:00 2021",
            "2021-06-25T11:55:42Z",
        ),
        // Within 80 years before and 20 after today (main stored 2069).
        ("dd/MM/yy", "25/06/69", "1969-06-25T00:00:00Z"),
        ("dd/MM/yy", "25/06/2021", "2021-06-25T00:00:00Z"),
        (
            "yyyy-MM-dd HH:mm:ss[.SSSSSS]",
            "2005-05-05 07:24:55.65",
            "2005-05-05T07:24:55.650Z",
        ),
        (
            "yyyy-MM-dd HH:mm:ss[.SSSSSS]",
            "1970-01-01 00:00:00",
            "1970-01-01T00:00:00Z",
        ),
    ];
    for (format, value, stored) in read {
        let dated = rules_with(&format!("date_format = \"{format}\""));
        let (report, rows) = check_csv(&dated, &format!("id,signUpDate\nu1,{value}\n")).await;
        assert!(
            report.is_valid(),
            "{format} on {value:?}: {:?}",
            messages(&report)
        );
        assert_eq!(
            rows,
            [format!(r#"u1||{{"signUpDate":"{stored}"}}"#)],
            "{format} on {value:?}"
        );
    }
    // A day name that is not the date's, and impossible dates, stay refused, located.
    let dated = rules_with("date_format = \"EEE, dd MMM yyyy\"");
    let (report, _) = check_csv(
        &dated,
        "id,signUpDate\nu1,\"Fri, 25 Jun 2021\"\nu2,\"Mon, 25 Jun 2021\"\n",
    )
    .await;
    assert!(!report.is_valid());
    assert_eq!(
        messages(&report),
        [
            "line 3, column 'signUpDate': 'Mon, 25 Jun 2021' is not a date in format EEE, dd MMM yyyy"
        ]
    );
    let dated = rules_with("date_format = \"MM/dd/yyyy\"");
    let (report, _) = check_csv(&dated, "id,signUpDate\nu1,2/30/2021\nu2, \n").await;
    assert_eq!(
        messages(&report),
        ["line 2, column 'signUpDate': '2/30/2021' is not a date in format MM/dd/yyyy"]
    );
    // Strings keep their spaces.
    let (report, rows) = check_csv(&rules(), "id,email\nu1, a@x.com \n").await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(rows, [r#"u1||{"email":" a@x.com "}"#]);
}

#[tokio::test]
async fn numbers_keep_their_value_and_kind() {
    let values = [
        ("1.5e300", "1.5e300"),
        ("1e21", "1e21"),
        ("1E+21", "1e21"),
        ("-0.0", "0.0"),
        ("-0", "0"),
        ("9223372036854775807", "9223372036854775807"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("42.0", "42.0"),
        ("+42", "42"),
        ("1e-7", "1e-7"),
        ("12345.60", "12345.6"),
        ("1e16", "1e16"),
        ("123456789.125", "123456789.125"),
    ];
    let rows: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (text, _))| format!("u{i},,,{text},"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (report, stored) = check_csv(&rules(), &csv(&rows)).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    for (i, (text, expected)) in values.iter().enumerate() {
        assert_eq!(
            stored[i],
            format!("u{i}||{{\"score\":{expected}}}"),
            "{text} is stored as {expected}"
        );
        // What is stored reads back as the value the file meant.
        let json: serde_json::Value =
            serde_json::from_str(&format!("{{\"score\":{expected}}}")).expect("valid JSON");
        let meant: f64 = text.parse().expect("a number");
        assert_eq!(json["score"].as_f64(), Some(meant), "{text}");
    }
}

const AFTER_QUOTE: &str = "text after the closing quote; if the file escapes quotes with a backslash, set csv.escape = \"\\\\\"";

#[tokio::test]
async fn text_after_a_closing_quote_is_an_error_in_every_dialect() {
    // Spark's default output escapes a quote with a backslash; read as RFC 4180 it used to be
    // stored as `The \Best\" Shop"`.
    let spark = "id,email\nu1,plain\nu2,\"The \\\"Best\\\" Shop\"\nu3,\"fine, quoted\"\n";
    let (report, _) = check_csv(&rules(), spark).await;
    assert_eq!(
        messages(&report),
        [format!("line 3, column 'email': {AFTER_QUOTE}")]
    );

    // With the escape the file was written with, the same bytes read exactly.
    let (report, rows) = check_csv(&rules_with("csv = { escape = \"\\\\\" }"), spark).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    assert_eq!(
        rows,
        [
            r#"u1||{"email":"plain"}"#,
            r#"u2||{"email":"The \"Best\" Shop"}"#,
            r#"u3||{"email":"fine, quoted"}"#,
        ]
    );

    // CRLF, the id column, a quoted line break before the stray text, the last field.
    let (report, _) = check_csv(
        &rules(),
        "id,email\r\n\"u1\"x,a\r\nu2,\"two\r\nlines\"!\r\nu3,\"ok\"\r\nu4,\"end\"z",
    )
    .await;
    assert_eq!(
        messages(&report),
        [
            format!("line 2, column 'id': {AFTER_QUOTE}"),
            format!("line 3, column 'email': {AFTER_QUOTE}"),
            format!("line 6, column 'email': {AFTER_QUOTE}"),
        ]
    );

    // Another quote and delimiter: the rule follows the dialect.
    let semicolons = rules_with("csv = { delimiter = \";\", quote = \"'\" }");
    let (report, _) = check_csv(&semicolons, "id;email\nu1;'it''s'\nu2;'a\"b'c\nu3;x'y'z\n").await;
    assert_eq!(
        messages(&report),
        [format!("line 3, column 'email': {AFTER_QUOTE}")]
    );

    // With an escape character configured, the hint about it is left out.
    let backslash = rules_with("csv = { escape = \"\\\\\" }");
    let (report, _) = check_csv(&backslash, "id,email\nu1,\"a\\\"b\"c\n").await;
    assert_eq!(
        messages(&report),
        ["line 2, column 'email': text after the closing quote"]
    );

    // In the header, the field is named by position.
    let (report, _) = check_csv(&rules(), "id,\"email\"s\nu1,a\n").await;
    assert_eq!(
        messages(&report),
        [format!("line 1: the header, field 2: {AFTER_QUOTE}")]
    );
}

#[tokio::test]
async fn a_bare_carriage_return_in_a_value_is_named() {
    // pandas quotes only values with the delimiter, the quote or "\n": a value with "\r" is
    // written bare, and the CR ends the record in the middle of the row.
    let (report, _) = check_csv(
        &rules(),
        &csv(&["u1,before\rafter,,,", "u2,fine,,,", "u3,\"quoted\rCR\",,,"]),
    )
    .await;
    assert_eq!(
        messages(&report),
        [
            "line 2: 2 fields, but the header has 5; a bare carriage return (CR) ended the record inside a value (a value containing a line break must be quoted)",
            "line 2: 4 fields, but the header has 5; this is the rest of a record that a bare carriage return (CR) ended early",
        ]
    );
}

/// Rules whose schema types `id` as a number.
fn numeric_id_rules() -> dropfolder::validate::FileRules {
    let text = r#"
[schemas.orders]
id = "number"
note = "string"

[[integrations]]
name = "acme-orders"
entity = "account"
schema = "orders"
bucket = "file:///tmp/unused"
"#;
    let config = dropfolder::config::Config::parse(text, std::path::PathBuf::new())
        .expect("test config parses");
    config
        .compile(dropfolder::config::SecretCheck::Skip)
        .expect("rules build")
        .integrations
        .remove(0)
        .rules
}

#[tokio::test]
async fn a_numeric_id_is_one_canonical_text() {
    let text = "id,note\n42,a\n42.0,b\n042,c\n4.2e1,d\n+42.000,e\n-0,f\n0.0,g\n1.50,h\n\
                1.5,i\n12345678901234567890123,j\n1E300,k\n10e299,l\n-0.00125,m\n1e-30,n\n";
    let (report, rows) = check_csv(&numeric_id_rules(), text).await;
    assert!(report.is_valid(), "{:?}", messages(&report));
    let ids: Vec<&str> = rows.iter().filter_map(|r| r.split('|').next()).collect();
    assert_eq!(
        ids,
        [
            "42",
            "42",
            "42",
            "42",
            "42",
            "0",
            "0",
            "1.5",
            "1.5",
            "12345678901234567890123",
            "1e300",
            "1e300",
            "-0.00125",
            "0.000000000000000000000000000001",
        ]
    );
    // Still a number: anything else is a located error.
    let (report, _) = check_csv(&numeric_id_rules(), "id,note\n4x2,a\n").await;
    assert_eq!(
        messages(&report),
        [
            "line 2, column 'id': '4x2' is not a number (digits with '.' for decimals, no thousands separators)"
        ]
    );
}

#[tokio::test]
async fn a_record_after_blank_lines_is_named_at_its_physical_line() {
    // Blank lines (LF and CRLF) are skipped; the lines named are still the file's own.
    let text = "id,email,signUpDate\n\n\nu1,a,2021-13-01\r\n\r\nu2,b,2021-14-01\n";
    let (report, _) = check_csv(&rules(), text).await;
    assert_eq!(
        messages(&report),
        [
            "line 4, column 'signUpDate': '2021-13-01' is not a date in format yyyy-MM-dd",
            "line 6, column 'signUpDate': '2021-14-01' is not a date in format yyyy-MM-dd",
        ]
    );
}
