//! Reading dataset rows from local files, with the row semantics of HF `datasets`.
//!
//! - `.txt` / `.raw` follow `datasets`' `text` loader with its defaults
//!   (`sample_by="line"`, `keep_linebreaks=False`, `encoding="utf-8"`): Python
//!   opens the file in universal-newline mode, so `\n`, `\r\n` and a lone `\r`
//!   all end a line; `StringIO.readlines()` then splits on `\n` and each line's
//!   trailing `\n` is stripped. Hence: empty lines are rows (empty strings), a
//!   final line ending does not make an extra empty row, a last line without a
//!   line ending is still a row, and a UTF-8 BOM is kept (plain `utf-8`, not
//!   `utf-8-sig`). Invalid UTF-8 is an error, as with Python's strict decoding.
//!   Two other line modes exist ([`LineMode`]): `keep_linebreaks` (the text
//!   loader's `keep_linebreaks=True`: each row keeps its `"\n"`), and
//!   `wikitext`, the row semantics of the `wikitext` loading script that the
//!   paper's data came from (`for row in f: yield row if row.strip() else ""`):
//!   rows keep their `"\n"`, whitespace-only lines become `""`. Reading a local
//!   `wiki.train.raw` in `wikitext` mode gives exactly the rows of the Hub's
//!   `Salesforce/wikitext` parquet files, which is what parity needs.
//! - `.jsonl`: one JSON object per line, the text in a string field. Blank
//!   lines are skipped (pyarrow's JSON reader, behind `datasets`' `json`
//!   loader, ignores them).
//! - `.parquet`: a string column, one row per record. Content is taken as is:
//!   HF's wikitext parquet rows keep their trailing `"\n"`.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type as ParquetType;
use serde::{Deserialize, Serialize};

use super::DataError;

/// The file extensions [`read_rows`] understands (compared case-insensitively).
pub const SUPPORTED_EXTENSIONS: &[&str] = &["txt", "raw", "jsonl", "parquet"];

/// How a file's rows are laid out, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// One row per line (`.txt`, `.raw`).
    Lines,
    /// One JSON object per line (`.jsonl`).
    JsonLines,
    /// A string column of a parquet file (`.parquet`).
    Parquet,
}

impl RowFormat {
    /// The format for `path`'s extension, or an error listing the supported ones.
    pub fn from_path(path: &Path) -> Result<Self, DataError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "raw" => Ok(Self::Lines),
            "jsonl" => Ok(Self::JsonLines),
            "parquet" => Ok(Self::Parquet),
            _ => Err(DataError::UnsupportedExtension {
                path: path.to_path_buf(),
                extension: if extension.is_empty() {
                    "(no extension)".to_string()
                } else {
                    format!(".{extension}")
                },
                supported: SUPPORTED_EXTENSIONS
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// How a `.txt` / `.raw` file's lines become rows (see the module docs).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LineMode {
    /// `datasets`' `text` loader defaults: the line ending is dropped.
    #[default]
    Text,
    /// The `text` loader with `keep_linebreaks=True`: rows end with `"\n"`
    /// (except a last line that had no ending).
    KeepLinebreaks,
    /// The `wikitext` loading script: like `keep_linebreaks`, but a line of
    /// only whitespace is the empty row `""`. A local `wiki.*.raw` read this way
    /// gives the rows of the Hub's `Salesforce/wikitext` parquet files.
    Wikitext,
}

impl LineMode {
    /// Whether this is the default (`text`); the default stays out of keys.
    pub fn is_default(&self) -> bool {
        *self == LineMode::Text
    }
}

/// Options of [`read_rows_with`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowOptions {
    /// The JSON field or parquet column holding the text.
    pub text_field: String,
    /// How line files are split into rows (ignored for `.jsonl` / `.parquet`).
    pub line_mode: LineMode,
}

impl Default for RowOptions {
    fn default() -> Self {
        Self {
            text_field: "text".to_string(),
            line_mode: LineMode::Text,
        }
    }
}

/// Reads every row of a `.txt`/`.raw`, `.jsonl` or `.parquet` file.
/// `text_field` names the JSON field or parquet column holding the text
/// (ignored for line files, which use [`LineMode::Text`]). See the module docs.
pub fn read_rows(path: &Path, text_field: &str) -> Result<Vec<String>, DataError> {
    read_rows_with(
        path,
        &RowOptions {
            text_field: text_field.to_string(),
            line_mode: LineMode::Text,
        },
    )
}

/// [`read_rows`] with every option.
pub fn read_rows_with(path: &Path, options: &RowOptions) -> Result<Vec<String>, DataError> {
    match RowFormat::from_path(path)? {
        RowFormat::Lines => read_text_rows(path, options.line_mode),
        RowFormat::JsonLines => read_jsonl_rows(path, &options.text_field),
        RowFormat::Parquet => read_parquet_rows(path, &options.text_field),
    }
}

fn read_utf8(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        DataError::InvalidUtf8 {
            path: path.to_path_buf(),
            line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
        }
    })
}

fn read_text_rows(path: &Path, mode: LineMode) -> Result<Vec<String>, DataError> {
    let text = read_utf8(path)?;
    let lines = split_lines_with_endings(&text);
    Ok(lines
        .into_iter()
        .map(|(line, ended)| match mode {
            LineMode::Text => line.to_string(),
            // Python's universal newlines turn every ending into "\n".
            LineMode::KeepLinebreaks => with_ending(line, ended),
            LineMode::Wikitext if line.trim().is_empty() => String::new(),
            LineMode::Wikitext => with_ending(line, ended),
        })
        .collect())
}

fn with_ending(line: &str, ended: bool) -> String {
    if ended {
        format!("{line}\n")
    } else {
        line.to_string()
    }
}

/// Splits text into lines the way Python's universal-newline reading followed
/// by `readlines()` + `rstrip("\n")` does: `\n`, `\r\n` and `\r` end a line, the
/// ending is dropped, and text after the last ending (if any) is a last line.
pub fn split_lines(text: &str) -> Vec<&str> {
    split_lines_with_endings(text)
        .into_iter()
        .map(|(line, _)| line)
        .collect()
}

/// Lines without their endings, each with whether it had one (only the last
/// line can lack it).
fn split_lines_with_endings(text: &str) -> Vec<(&str, bool)> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push((&text[start..i], true));
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push((&text[start..i], true));
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push((&text[start..], false));
    }
    lines
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn read_jsonl_rows(path: &Path, text_field: &str) -> Result<Vec<String>, DataError> {
    let text = read_utf8(path)?;
    let mut rows = Vec::new();
    // Lines end at '\n' only: JSON strings cannot hold a raw newline, and a
    // trailing '\r' is JSON whitespace that serde_json skips.
    for (index, line) in text.split('\n').enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|source| DataError::JsonSyntax {
                path: path.to_path_buf(),
                line: line_number,
                source,
            })?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(DataError::JsonNotObject {
                path: path.to_path_buf(),
                line: line_number,
                found: json_kind(&value),
            });
        };
        match object.remove(text_field) {
            Some(serde_json::Value::String(s)) => rows.push(s),
            Some(other) => {
                return Err(DataError::JsonFieldNotString {
                    path: path.to_path_buf(),
                    line: line_number,
                    field: text_field.to_string(),
                    found: json_kind(&other),
                });
            }
            None => {
                return Err(DataError::JsonMissingField {
                    path: path.to_path_buf(),
                    line: line_number,
                    field: text_field.to_string(),
                    present: list_or_none(object.keys().map(String::as_str)),
                });
            }
        }
    }
    Ok(rows)
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn read_parquet_rows(path: &Path, column: &str) -> Result<Vec<String>, DataError> {
    let parquet_error = |source| DataError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(parquet_error)?;
    let root = reader.metadata().file_metadata().schema();
    let Some(field) = root.get_fields().iter().find(|f| f.name() == column) else {
        return Err(DataError::ParquetMissingColumn {
            path: path.to_path_buf(),
            column: column.to_string(),
            present: list_or_none(root.get_fields().iter().map(|f| f.name())),
        });
    };
    // Read only the text column: other columns may be large or of types we
    // have no use for.
    let projection = ParquetType::group_type_builder(root.name())
        .with_fields(vec![field.clone()])
        .build()
        .map_err(parquet_error)?;
    let rows_iter = reader
        .get_row_iter(Some(projection))
        .map_err(parquet_error)?;
    let mut rows = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for (index, row) in rows_iter.enumerate() {
        let row = row.map_err(parquet_error)?;
        let not_string = |found: String| DataError::ParquetNotString {
            path: path.to_path_buf(),
            row: index,
            column: column.to_string(),
            found,
        };
        let value = row.into_columns().into_iter().next().map(|(_, v)| v);
        match value {
            Some(Field::Str(s)) => rows.push(s),
            // A BYTE_ARRAY column without the UTF8 annotation: accept valid UTF-8.
            Some(Field::Bytes(bytes)) => match std::str::from_utf8(bytes.data()) {
                Ok(s) => rows.push(s.to_string()),
                Err(_) => return Err(not_string("bytes that are not UTF-8".to_string())),
            },
            Some(Field::Null) => return Err(not_string("null".to_string())),
            Some(other) => return Err(not_string(format!("{other:?}"))),
            None => return Err(not_string("nothing".to_string())),
        }
    }
    Ok(rows)
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
