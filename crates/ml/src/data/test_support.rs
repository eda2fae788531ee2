//! Helpers for tests: writes small parquet files from Rust so no binary
//! fixture has to be committed.

use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes a snappy-compressed parquet file (as `datasets` writes them) with an
/// OPTIONAL UTF8 column `column` holding `values` (None = null) and an INT64
/// column `id`, split into row groups of `rows_per_group` rows.
pub fn write_string_parquet(
    path: &Path,
    column: &str,
    values: &[Option<&str>],
    rows_per_group: usize,
) {
    let message =
        format!("message schema {{ OPTIONAL INT64 id; OPTIONAL BYTE_ARRAY {column} (UTF8); }}");
    let schema = Arc::new(parse_message_type(&message).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    for (group_index, group) in values.chunks(rows_per_group.max(1)).enumerate() {
        let mut row_group = writer.next_row_group().unwrap();
        // Column 0: id
        let mut col = row_group.next_column().unwrap().unwrap();
        let ids: Vec<i64> = (0..group.len())
            .map(|i| (group_index * rows_per_group + i) as i64)
            .collect();
        col.typed::<Int64Type>()
            .write_batch(&ids, Some(&vec![1; group.len()]), None)
            .unwrap();
        col.close().unwrap();
        // Column 1: the text
        let mut col = row_group.next_column().unwrap().unwrap();
        let present: Vec<ByteArray> = group
            .iter()
            .flatten()
            .map(|s| ByteArray::from(s.as_bytes().to_vec()))
            .collect();
        let def_levels: Vec<i16> = group.iter().map(|v| i16::from(v.is_some())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&present, Some(&def_levels), None)
            .unwrap();
        col.close().unwrap();
        row_group.close().unwrap();
    }
    writer.close().unwrap();
}
