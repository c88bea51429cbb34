//! Generator for kafka-wire's message codecs.
//!
//! ```text
//! cargo run -p kafka-wire-codegen -- <messages-dir> <out-dir>
//!
//!  *.json ──strip // comments──► spec::Spec ──model::build──► Msg ──emit──► <module>.rs + mod.rs ──► rustfmt
//! ```
//!
//! Every `*.json` spec in `<messages-dir>` becomes one module in `<out-dir>`
//! (committed as `kafka-wire/src/protocol/messages/`). The generator owns `<out-dir>`:
//! `.rs` files there that no spec produced are removed. Any JSON key it does not
//! understand fails generation. Specs of removed APIs (`"validVersions": "none"`)
//! generate nothing.

mod emit;
mod model;
mod spec;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: kafka-wire-codegen <messages-dir> <out-dir>");
        std::process::exit(2);
    }
    if let Err(e) = run(Path::new(&args[0]), Path::new(&args[1])) {
        eprintln!("kafka-wire-codegen: {e:#}");
        std::process::exit(1);
    }
}

fn run(messages: &Path, out_dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(messages)
        .with_context(|| format!("reading {}", messages.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.json specs in {}", messages.display());
    }
    let mut specs = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path)?;
        let spec = spec::parse(&text).with_context(|| format!("in {}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != spec.name {
            bail!(
                "{}: spec name {} does not match the file name",
                path.display(),
                spec.name
            );
        }
        if spec.is_removed() {
            // No versions to offer: the API is gone, and so is its module.
            continue;
        }
        specs.push(spec);
    }
    // A response is offered at the versions its request is: an unstable latest request
    // version removes the same response version.
    let unstable: BTreeSet<i16> = specs
        .iter()
        .filter(|s| s.kind == "request" && s.latest_version_unstable)
        .filter_map(|s| s.api_key)
        .collect();
    let mut msgs = Vec::new();
    for s in &specs {
        let unstable_latest = s.latest_version_unstable
            || (s.kind == "response" && s.api_key.is_some_and(|k| unstable.contains(&k)));
        if s.latest_version_unstable && s.kind != "request" {
            bail!("{}: latestVersionUnstable on a {} spec", s.name, s.kind);
        }
        msgs.push(model::build(s, unstable_latest).with_context(|| format!("in {}", s.name))?);
    }
    check_pairs(&msgs)?;
    for m in &msgs {
        check_no_empty_elements(m)?;
    }

    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    for m in &msgs {
        let path = out_dir.join(format!("{}.rs", m.module));
        std::fs::write(&path, emit::emit_message(m))?;
        written.push(path);
    }
    let mod_rs = out_dir.join("mod.rs");
    std::fs::write(&mod_rs, emit::emit_mod(&msgs))?;
    written.push(mod_rs);
    for entry in std::fs::read_dir(out_dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|x| x == "rs") && !written.contains(&p) {
            std::fs::remove_file(&p)?;
        }
    }
    rustfmt(&written)?;
    eprintln!(
        "kafka-wire-codegen: {} specs -> {}",
        msgs.len(),
        out_dir.display()
    );
    Ok(())
}

/// Every request has a response with the same api key, and api keys are unique.
fn check_pairs(msgs: &[model::Msg]) -> Result<()> {
    let mut keys = BTreeSet::new();
    for m in msgs.iter().filter(|m| m.kind == model::Kind::Request) {
        let key = m.api_key.unwrap_or(-1);
        if !keys.insert(key) {
            bail!("api key {key} used twice");
        }
        let api = model::api_name(&m.name);
        let resp = format!("{api}Response");
        if !msgs
            .iter()
            .any(|r| r.name == resp && r.api_key == m.api_key)
        {
            bail!("{} has no {resp} with api key {key}", m.name);
        }
    }
    Ok(())
}

/// Array decoders reject a length larger than the bytes that remain (hostile-input
/// guard), which assumes every element takes at least one byte. A struct element with no
/// field at a non-flexible version would break that: refuse to generate it.
fn check_no_empty_elements(m: &model::Msg) -> Result<()> {
    use model::Ty;
    for s in &m.structs {
        for f in &s.fields {
            let Ty::Array(elem) = &f.ty else { continue };
            let Ty::Struct(name) = elem.as_ref() else {
                continue;
            };
            let Some(elem) = m.structs.iter().find(|x| &x.name == name) else {
                bail!("{}: unknown struct {name}", m.name);
            };
            let range = f.versions.intersect(s.within);
            if range.is_empty() {
                continue;
            }
            for v in range.min..=range.max {
                let flexible = m.flexible.min <= v && v <= m.flexible.max;
                let present = elem
                    .fields
                    .iter()
                    .any(|x| x.regular.min <= v && v <= x.regular.max);
                if !flexible && !present {
                    bail!(
                        "{}: {} elements are empty at version {v}",
                        m.name,
                        f.json_name
                    );
                }
            }
        }
    }
    Ok(())
}

/// Formats the output with the workspace's rustfmt settings, wherever `out_dir` is, so
/// that a generation into a temporary folder matches the committed files byte for byte.
fn rustfmt(files: &[PathBuf]) -> Result<()> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rustfmt.toml");
    let mut cmd = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()));
    cmd.arg("--edition").arg("2024");
    if config.exists() {
        cmd.arg("--config-path").arg(&config);
    }
    let status = cmd.args(files).status().context("running rustfmt")?;
    if !status.success() {
        bail!("rustfmt failed on the generated code");
    }
    Ok(())
}
