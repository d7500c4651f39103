//! The `atelier` binary itself, with no plugins: it starts, says where it looked, and fails
//! clearly on an unknown model. (Having this test also makes `cargo test --workspace` build the
//! binary, which the end-to-end tests in `tests/` drive.)

use std::process::Command;

fn atelier(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["--plugins", dir.to_str().unwrap(), "--cache-dir", dir.join("cache").to_str().unwrap()])
        .args(args)
        .env_remove("ATELIER_CONFIG")
        .env("ATELIER_STATE_DIR", dir.join("state"))
        .output()
        .unwrap()
}

#[test]
fn empty_plugin_dir_lists_nothing_and_says_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    let out = atelier(&["plugins", "list"], d.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no plugins found in") && text.contains(d.path().to_str().unwrap()), "{text}");
}

#[test]
fn unknown_model_is_one_clear_line_and_a_failure() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("in.png");
    image::RgbaImage::new(4, 4).save(&img).unwrap();
    let out = atelier(&["edit", img.to_str().unwrap(), "--prompt", "x", "--model", "nope", "-o", d.path().join("o").to_str().unwrap()], d.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: unknown model `nope`"), "{err}");
    assert!(!d.path().join("o").exists(), "nothing written on failure");
}
