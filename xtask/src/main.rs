//! `cargo xtask build`: the host in release plus every plugin component in `target/plugins/<id>/`.
//! `cargo xtask plugins`: only the components.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => {
            plugins(&root)?;
            let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
                .current_dir(&root)
                .args(["build", "--release", "-p", "atelier"])
                .status()?;
            if !status.success() {
                bail!("building the host failed");
            }
            println!("built target/release/atelier and plugins in target/plugins/");
        }
        Some("plugins") => plugins(&root)?,
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
