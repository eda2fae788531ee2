use super::*;
use crate::data::test_support::write_string_parquet;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn text_lines_follow_the_hf_text_loader() {
    // (file content, expected rows): each case is a rule of the `text` loader.
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("\n", &[""]),
        ("a", &["a"]),
        ("a\n", &["a"]),
        ("a\nb", &["a", "b"]),
        ("a\n\nb\n", &["a", "", "b"]),
        ("a\r\nb\r\n", &["a", "b"]),
        ("a\rb", &["a", "b"]),
        ("a\r\n\r\nb", &["a", "", "b"]),
        ("\n\n", &["", ""]),
        (" = Title = \n \n", &[" = Title = ", " "]),
        ("\u{feff}bom\n", &["\u{feff}bom"]),
        (
            "tab\there\u{2028}not a break\n",
            &["tab\there\u{2028}not a break"],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (content, expected)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("case{i}.txt"), content.as_bytes());
        let rows = read_rows(&path, "text").unwrap();
        assert_eq!(rows, *expected, "content {content:?}");
    }
    // `.raw` (wikitext's raw files) reads the same way, extension case-insensitively.
    let path = write(dir.path(), "wiki.train.RAW", b" = A = \n\n b \n");
    assert_eq!(read_rows(&path, "text").unwrap(), [" = A = ", "", " b "]);
}

#[test]
fn line_modes_keep_linebreaks_and_wikitext() {
    let dir = tempfile::tempdir().unwrap();
    // A miniature wiki.train.raw: blank lines in wikitext are " \n".
    let path = write(
        dir.path(),
        "wiki.train.raw",
        b" \n = Valkyria Chronicles III = \n \n Senjo no Valkyria 3 \r\n\t\nlast",
    );
    let read = |line_mode| {
        let options = RowOptions {
            line_mode,
            ..RowOptions::default()
        };
        read_rows_with(&path, &options).unwrap()
    };
    assert_eq!(
        read(LineMode::Text),
        [
            " ",
            " = Valkyria Chronicles III = ",
            " ",
            " Senjo no Valkyria 3 ",
            "\t",
            "last"
        ]
    );
    assert_eq!(
        read(LineMode::KeepLinebreaks),
        [
            " \n",
            " = Valkyria Chronicles III = \n",
            " \n",
            " Senjo no Valkyria 3 \n",
            "\t\n",
            "last"
        ]
    );
    // The rows HF's Salesforce/wikitext holds: "\n" kept, blank lines empty.
    assert_eq!(
        read(LineMode::Wikitext),
        [
            "",
            " = Valkyria Chronicles III = \n",
            "",
            " Senjo no Valkyria 3 \n",
            "",
            "last"
        ]
    );
    assert_eq!(read_rows(&path, "text").unwrap(), read(LineMode::Text));
    let json = serde_json::to_string(&LineMode::KeepLinebreaks).unwrap();
    assert_eq!(json, "\"keep_linebreaks\"");
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.txt", b"ok\nok\nbad \xff here\n");
    let err = read_rows(&path, "text").unwrap_err();
    assert!(
        matches!(err, DataError::InvalidUtf8 { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad.txt"));
}

#[test]
fn unknown_extension_lists_supported() {
    let err = read_rows(Path::new("/nowhere/data.csv"), "text").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("data.csv") && msg.contains(".csv"), "{msg}");
    assert!(msg.contains(".txt, .raw, .jsonl, .parquet"), "{msg}");
    let err = read_rows(Path::new("/nowhere/README"), "text").unwrap_err();
    assert!(err.to_string().contains("(no extension)"));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = read_rows(Path::new("/nowhere/x.txt"), "text").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("/nowhere/x.txt"));
}

#[test]
fn jsonl_reads_the_text_field_and_skips_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.jsonl",
        b"{\"text\": \"one\\n\", \"id\": 1}\r\n\n   \n{\"id\": 2, \"text\": \"\"}\n{\"body\":\"x\",\"text\":\"three\"}",
    );
    assert_eq!(read_rows(&path, "text").unwrap(), ["one\n", "", "three"]);
    let path = write(dir.path(), "e.jsonl", b"{\"body\": \"b1\"}\n");
    assert_eq!(read_rows(&path, "body").unwrap(), ["b1"]);
}

#[test]
fn jsonl_errors_name_file_line_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[u8], &str, usize)] = &[
        (
            b"{\"text\":\"a\"}\n{\"text\": 5}\n",
            "must be a string, found a number",
            2,
        ),
        (
            b"{\"text\":\"a\"}\n\n{\"body\": \"x\"}\n",
            "no field `text` (fields present: `body`)",
            3,
        ),
        (
            b"[1, 2]\n",
            "expected a JSON object (one per line), found an array",
            1,
        ),
        (b"{\"text\":\"a\"}\n{\"text\": \n", "not a JSON value", 2),
        (b"{\"text\": null}\n", "found null", 1),
    ];
    for (i, (content, expected, line)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.jsonl"), content);
        let msg = read_rows(&path, "text").unwrap_err().to_string();
        assert!(msg.contains(expected), "{msg}");
        assert!(
            msg.contains(&format!("bad{i}.jsonl` line {line}:")),
            "{msg}"
        );
    }
}

#[test]
fn parquet_reads_a_string_column_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-00000-of-00001.parquet");
    let values = [
        Some(""),
        Some(" = Valkyria Chronicles III = \n"),
        Some(""),
        Some(" Senjō no Valkyria 3 \n"),
        Some("last"),
    ];
    write_string_parquet(&path, "text", &values, 2);
    let rows = read_rows(&path, "text").unwrap();
    let expected: Vec<&str> = values.iter().map(|v| v.unwrap()).collect();
    assert_eq!(rows, expected);
}

#[test]
fn parquet_errors_name_the_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    write_string_parquet(&path, "text", &[Some("a"), None], 10);
    let msg = read_rows(&path, "text").unwrap_err().to_string();
    assert!(msg.contains("d.parquet` row 1: column `text`"), "{msg}");
    assert!(msg.contains("found null"), "{msg}");

    let msg = read_rows(&path, "content").unwrap_err().to_string();
    assert!(msg.contains("no top-level column `content`"), "{msg}");
    assert!(msg.contains("`id`, `text`"), "{msg}");

    let msg = read_rows(&path, "id").unwrap_err().to_string();
    assert!(msg.contains("column `id` must be a UTF-8 string"), "{msg}");

    let not_parquet = write(dir.path(), "x.parquet", b"this is not parquet");
    let msg = read_rows(&not_parquet, "text").unwrap_err().to_string();
    assert!(msg.contains("x.parquet`: parquet error"), "{msg}");
}
