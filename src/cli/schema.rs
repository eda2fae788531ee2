//! `xp schema`: the JSON Schema of the experiment format (the same text as
//! schemas/experiment.schema.json, which a test keeps in sync).

use super::CliError;
use super::exit::Success;

pub fn run() -> Result<Success, CliError> {
    let schema = crate::spec::json_schema();
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).expect("schema is JSON")
    );
    Ok(Success::Ok)
}
