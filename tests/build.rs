//! Build every plugin component (the shipped ones and the hostile test plugins) before the tests,
//! and tell the tests where they are.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
    let mut crates = xtask::discover(&root.join("plugins")).expect("listing plugins/");
    crates.extend(xtask::discover(&root.join("tests/hostile")).expect("listing tests/hostile/"));
    let out = root.join("target/test-plugins");
    if let Err(e) = xtask::build_and_stage(&root, &crates, &out) {
        panic!("{e:#}");
    }
    println!("cargo:rustc-env=ATELIER_TEST_PLUGINS={}", out.display());
    for d in ["plugins", "sdk", "wit", "tests/hostile"] {
        println!("cargo:rerun-if-changed={}", root.join(d).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}
