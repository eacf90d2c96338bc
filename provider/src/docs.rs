//! Registry-layout documentation generated from the schemas (`index.md`, `resources/*.md`,
//! `data-sources/*.md`). Regenerate with
//! `cargo run -p terraform-provider-rotor -- docs docs/provider`; a test fails when the committed
//! files differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::provider;
use crate::schema::{Mode, Schema};

/// The command that regenerates the docs.
pub const REGENERATE: &str = "cargo run -p terraform-provider-rotor -- docs docs/provider";

fn short_name(type_name: &str) -> &str {
    type_name.strip_prefix("rotor_").unwrap_or(type_name)
}

fn attribute_list(out: &mut String, schema: &Schema, modes: &[Mode], heading: &str) {
    let attrs: Vec<_> = schema
        .attributes
        .iter()
        .filter(|a| modes.contains(&a.mode))
        .collect();
    if attrs.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {heading}\n");
    for a in attrs {
        let mut notes = vec![format!("`{}`", a.ty)];
        if a.sensitive {
            notes.push("sensitive".into());
        }
        if a.force_new {
            notes.push("changing it replaces the resource".into());
        }
        if let Some(d) = a.default {
            notes.push(format!("default `{d}`"));
        }
        let _ = writeln!(
            out,
            "- `{}` ({}) {}",
            a.name,
            notes.join(", "),
            a.description
        );
    }
    out.push('\n');
}

fn schema_section(out: &mut String, schema: &Schema) {
    out.push_str("## Schema\n\n");
    attribute_list(out, schema, &[Mode::Required], "Required");
    attribute_list(
        out,
        schema,
        &[Mode::Optional, Mode::OptionalComputed],
        "Optional",
    );
    attribute_list(out, schema, &[Mode::Computed], "Read-Only");
}

fn example(kind: &str, name: &str) -> Option<&'static str> {
    crate::resources::doc_examples()
        .into_iter()
        .find(|(k, n, _)| *k == kind && *n == name)
        .map(|(_, _, text)| text)
}

/// Every generated file, by path relative to the docs directory.
pub fn render() -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();

    let p = provider::schema();
    let mut index = String::new();
    index.push_str("---\npage_title: \"rotor provider\"\ndescription: |-\n  Rotates Microsoft Entra ID application client secrets and keeps the Azure Key Vault secrets that hold them up to date.\n---\n\n");
    index.push_str("<!-- Generated from the provider schema by `");
    index.push_str(REGENERATE);
    index.push_str("`. Do not edit. -->\n\n# rotor provider\n\n");
    let _ = writeln!(index, "{}\n", p.description);
    if let Some(ex) = example("provider", "rotor") {
        let _ = writeln!(index, "## Example Usage\n\n```terraform\n{}```\n", ex);
    }
    index.push_str("## Resources and data sources\n\n");
    for r in crate::resources::resources() {
        let _ = writeln!(
            index,
            "- [`{}`](resources/{}.md)",
            r.type_name(),
            short_name(r.type_name())
        );
    }
    for d in crate::resources::data_sources() {
        let _ = writeln!(
            index,
            "- [`{}`](data-sources/{}.md) (data source)",
            d.type_name(),
            short_name(d.type_name())
        );
    }
    index.push('\n');
    schema_section(&mut index, &p);
    files.insert(PathBuf::from("index.md"), index);

    let mut page = |kind: &str, dir: &str, type_name: &str, schema: &Schema| {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "---\npage_title: \"{type_name} {kind} - rotor\"\nsubcategory: \"\"\n---\n\n<!-- Generated from the provider schema by `{REGENERATE}`. Do not edit. -->\n\n# {type_name} ({kind})\n\n{}\n",
            schema.description
        );
        if let Some(ex) = example(kind, type_name) {
            let _ = writeln!(out, "## Example Usage\n\n```terraform\n{}```\n", ex);
        }
        schema_section(&mut out, schema);
        if kind == "resource" && type_name == "rotor_secret_link" {
            out.push_str(
                "## Import\n\nImport a link by its own `id`, `<application_id>/<credential_display_name>`, or by \
                 `<application_id>/<key_id>` of a client secret of the lineage; rotor finds the targets through tags and \
                 matching in the vaults of `vault_urls` / `subscription_id` (at `HIGH` confidence). When it cannot, \
                 declare the link with its `targets` and run `terraform apply` instead: creating a link adopts the client \
                 secret the targets hold without rotating it.\n\n```shell\nterraform import rotor_secret_link.example \
                 \"00000000-0000-0000-0000-000000000000/Secret 1\"\nterraform import rotor_secret_link.example \
                 00000000-0000-0000-0000-000000000000/11111111-1111-1111-1111-111111111111\n```\n",
            );
        }
        files.insert(
            PathBuf::from(dir).join(format!("{}.md", short_name(type_name))),
            out,
        );
    };
    for r in crate::resources::resources() {
        page("resource", "resources", r.type_name(), &r.schema());
    }
    for d in crate::resources::data_sources() {
        page("data source", "data-sources", d.type_name(), &d.schema());
    }
    files
}

/// Writes every generated file under `dir`; returns the paths written.
pub fn write(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, text) in render() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Files under `dir` that are missing or differ from what [`render`] produces, plus stale
/// Markdown files that no schema generates.
pub fn stale(dir: &Path) -> Vec<PathBuf> {
    let expected = render();
    let mut out = Vec::new();
    for (rel, text) in &expected {
        match std::fs::read_to_string(dir.join(rel)) {
            Ok(actual) if &actual == text => {}
            _ => out.push(rel.clone()),
        }
    }
    for sub in ["resources", "data-sources"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let rel = PathBuf::from(sub).join(e.file_name());
                if !expected.contains_key(&rel) {
                    out.push(rel);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_docs_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/provider");
        let stale = stale(&dir);
        assert!(
            stale.is_empty(),
            "docs/provider is out of date ({} file(s): {:?}).\nRegenerate with: {REGENERATE}",
            stale.len(),
            stale
        );
    }

    #[test]
    fn staleness_is_detected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path()).expect("write");
        assert!(stale(tmp.path()).is_empty());
        std::fs::write(tmp.path().join("index.md"), "edited by hand").expect("edit");
        std::fs::write(tmp.path().join("resources/old.md"), "gone").expect("extra");
        assert_eq!(
            stale(tmp.path()),
            vec![PathBuf::from("index.md"), PathBuf::from("resources/old.md")]
        );
    }

    #[test]
    fn every_attribute_appears() {
        let files = render();
        for r in crate::resources::resources() {
            let page = &files
                [&PathBuf::from("resources").join(format!("{}.md", short_name(r.type_name())))];
            for a in r.schema().attributes {
                assert!(
                    page.contains(&format!("`{}`", a.name)),
                    "{} misses {}",
                    r.type_name(),
                    a.name
                );
            }
        }
    }
}
