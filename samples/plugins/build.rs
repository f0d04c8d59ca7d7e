//! Turns every `wat/*.wat` into a component in `OUT_DIR`.
//!
//! A `.wat` holding a core module is a plugin implementing the canonical ABI
//! by hand: it gets the `wrun:plugin/plugin` world (from `../../wit`)
//! embedded as metadata, and wit-component wraps it into a component (checking
//! its imports and exports against the world on the way). A `.wat` that is
//! already a component (the wrong-world fixtures) is only assembled.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let wit = manifest.join("../../wit");
    println!("cargo::rerun-if-changed={}", wit.display());
    println!("cargo::rerun-if-changed={}", manifest.join("wat").display());

    let mut resolve = wit_parser::Resolve::default();
    let (pkg, files) = resolve
        .push_dir(&wit)
        .map_err(|e| format!("parsing {}: {e:#}", wit.display()))?;
    for file in files.paths() {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    let world = resolve
        .select_world(&[pkg], Some("plugin"))
        .map_err(|e| format!("{e:#}"))?;

    let mut entries: Vec<PathBuf> = std::fs::read_dir(manifest.join("wat"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.retain(|p| p.extension().is_some_and(|e| e == "wat"));
    entries.sort();

    let mut consts = String::new();
    for path in &entries {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("non-UTF-8 file name")?;
        let component = build(path, &resolve, world)?;
        let target = out.join(format!("{name}.wasm"));
        std::fs::write(&target, component)?;
        let ident = name.to_uppercase();
        writeln!(
            consts,
            "/// The `{name}` sample, built from `samples/plugins/wat/{name}.wat`.\n\
             pub const {ident}: Sample = Sample {{ name: {name:?}, path: {target:?}, \
             bytes: include_bytes!({target:?}) }};"
        )?;
    }
    std::fs::write(out.join("samples.rs"), consts)?;
    Ok(())
}

fn build(
    path: &Path,
    resolve: &wit_parser::Resolve,
    world: wit_parser::WorldId,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut wasm = wat::parse_file(path).map_err(|e| format!("{e}"))?;
    // Core modules are version 1; components carry a different layer.
    let is_core = wasm.get(4..8) == Some(&[1, 0, 0, 0]);
    if !is_core {
        return Ok(wasm);
    }
    wit_component::embed_component_metadata(
        &mut wasm,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| format!("{}: {e:#}", path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&wasm)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{}: {e:#}", path.display()))?;
    Ok(component)
}
