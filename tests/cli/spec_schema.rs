//! `schemas/experiment.schema.json` must be what `xp::spec::json_schema()` says,
//! and `docs/kinds.md` what `xp::spec::kinds_reference()` says (both from the same
//! Rust types). To regenerate both: `XP_BLESS=1 cargo test --test cli spec_schema::`
//! (or `cargo run -- schema > schemas/experiment.schema.json`).

use std::path::Path;

fn rendered() -> String {
    let mut text = serde_json::to_string_pretty(&xp::spec::json_schema()).unwrap();
    text.push('\n');
    text
}

#[test]
fn spec_schema_file_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/experiment.schema.json");
    let expected = rendered();
    if std::env::var_os("XP_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == expected,
        "{} is out of date with the Rust types; regenerate it with\n  XP_BLESS=1 cargo test --test cli spec_schema::",
        path.display()
    );
}

#[test]
fn kinds_reference_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kinds.md");
    let expected = xp::spec::kinds_reference();
    if std::env::var_os("XP_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == expected,
        "{} is out of date with the Rust types; regenerate it with\n  XP_BLESS=1 cargo test --test spec_schema",
        path.display()
    );
}

#[test]
fn spec_schema_describes_every_section_and_kind() {
    let schema = xp::spec::json_schema();
    let properties = schema["properties"].as_object().unwrap();
    for section in ["experiment", "sources", "defaults", "steps", "loop"] {
        assert!(
            properties.contains_key(section),
            "no `{section}` in the schema"
        );
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let required = schema["required"].as_array().unwrap();
    assert_eq!(required, &[serde_json::json!("experiment")]);
    // Every kind gets a defaults table of its own, with nothing required and no `kind`.
    let defaults = properties["defaults"]["properties"].as_object().unwrap();
    for kind in xp::steps::KIND_NAMES {
        let table = &defaults[*kind];
        assert!(
            table.get("required").is_none(),
            "defaults.{kind} requires keys"
        );
        assert!(
            table["properties"].get("kind").is_none(),
            "defaults.{kind} has `kind`"
        );
    }
}
