//! `cargo xtask build`: the host in release plus every plugin component in `target/plugins/<id>/`,
//! and the native build of crates that have a `native.toml` in `target/plugins/<native id>/`
//! (opt-in for the operator: it loads only once pinned, docs/native.md).
//! `cargo xtask plugins`: only the plugins.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => {
            plugins(&root)?;
            // The host and the native plugin libraries in one cargo run (one dependency graph).
            let native = xtask::discover_native(&root.join("plugins"))?;
            let mut args = vec!["build", "--release", "-p", "atelier"];
            for c in &native {
                args.extend(["-p", c.package.as_str()]);
            }
            let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into())).current_dir(&root).args(&args).status()?;
            if !status.success() {
                bail!("building the host failed");
            }
            for s in xtask::stage_native(&native, &root.join("target/release"), &root.join("target/plugins"))? {
                println!("staged {} (native: loads only once pinned in atelier.toml, see docs/native.md)", s.display());
            }
            println!("built target/release/atelier and plugins in target/plugins/");
        }
        Some("plugins") => {
            plugins(&root)?;
            let native = xtask::discover_native(&root.join("plugins"))?;
            if !native.is_empty() {
                let mut args = vec!["build", "--release"];
                for c in &native {
                    args.extend(["-p", c.package.as_str()]);
                }
                let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into())).current_dir(&root).args(&args).status()?;
                if !status.success() {
                    bail!("building the native plugin libraries failed");
                }
                for s in xtask::stage_native(&native, &root.join("target/release"), &root.join("target/plugins"))? {
                    println!("staged {} (native)", s.display());
                }
            }
        }
        _ => {
            eprintln!("usage: cargo xtask build | plugins");
            std::process::exit(2);
        }
    }
    Ok(())
}

fn plugins(root: &std::path::Path) -> Result<()> {
    let crates = xtask::discover(&root.join("plugins"))?;
    let staged = xtask::build_and_stage(root, &crates, &root.join("target/plugins"))?;
    for s in staged {
        println!("staged {}", s.display());
    }
    Ok(())
}
