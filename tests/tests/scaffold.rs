//! `atelier plugins new` and `atelier plugins build` as a plugin author uses them: scaffold a
//! model and a filter, build and stage both, then load and run them through the CLI and check
//! the pixels. Plus the refusals (bad name, non-empty directory, no cargo, no wasm target).
//!
//! The two crates build offline, against the workspace's Cargo.lock, into one shared target dir
//! (`target/scaffold`), so only the first run compiles wit-bindgen and the rest reuse it.

mod common;

use common::{Env, bin, json, root};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The target dir both scaffolded crates build into.
fn shared_target_dir() -> PathBuf {
    root().join("target/scaffold")
}

/// The sandbox, after checking the binary knows `plugins new` (it is built by `cargo build -p
/// atelier`, which `cargo test -p atelier-tests` does not do by itself).
fn env() -> Env {
    let help = std::process::Command::new(bin()).args(["plugins", "new", "--help"]).output().unwrap();
    assert!(
        help.status.success(),
        "{} predates `atelier plugins new`: run `cargo build -p atelier` first\n{}",
        bin().display(),
        String::from_utf8_lossy(&help.stderr)
    );
    let mut env = Env::new(&[]);
    // An empty ATELIER_PLUGINS is an error to clap: point at a directory of no plugins instead.
    env.plugins = vec![env.path("no-plugins")];
    env
}

/// `atelier plugins build DIR ARGS…` offline into the shared target dir; returns the output.
fn build(env: &Env, dir: &Path, args: &[&str]) -> Output {
    // Cargo.lock pins the versions already in the local registry cache, so --offline resolves.
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let mut cmd = env.cmd();
    cmd.args(["plugins", "build", dir.to_str().unwrap(), "--offline"])
        .args(args)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        // Flags meant for native builds of the outer test run must not reach the wasm build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    cmd.output().unwrap()
}

/// Like [`build`], expecting success; returns stdout.
fn build_ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    let o = build(env, dir, args);
    assert!(
        o.status.success(),
        "plugins build {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A 32×32 RGBA PNG: red grows along x, green along y, blue fixed, alpha falls along y.
fn gradient(path: &Path) -> image::RgbaImage {
    let img = image::RgbaImage::from_fn(32, 32, |x, y| image::Rgba([(x * 8) as u8, (y * 8) as u8, 100, (255 - y * 3) as u8]));
    img.save(path).unwrap();
    img
}

#[test]
fn scaffolded_model_and_filter_build_load_and_run() {
    let mut env = env();
    let src = env.path("src");
    let staged = env.path("plugins");
    let photo = env.path("in.png");
    let input = gradient(&photo);

    // new: the files a crate needs, the SDK by absolute path, nothing granted.
    let model_dir = src.join("tiny-echo");
    let text = env.ok(&["plugins", "new", "tiny-echo", "--kind", "model", "--dir", model_dir.to_str().unwrap()]);
    assert!(text.contains("created the model plugin `tiny-echo`"), "{text}");
    for f in ["Cargo.toml", "plugin.toml", "src/lib.rs", "README.md", ".gitignore", ".cargo/config.toml"] {
        assert!(model_dir.join(f).is_file(), "{f} was created");
    }
    let cargo_toml = std::fs::read_to_string(model_dir.join("Cargo.toml")).unwrap();
    let sdk = root().join("sdk").canonicalize().unwrap();
    assert!(cargo_toml.contains(&format!("atelier-sdk = {{ path = \"{}\" }}", sdk.display())), "{cargo_toml}");
    assert!(cargo_toml.contains("\n[workspace]\n") && cargo_toml.contains("[profile.release]"), "{cargo_toml}");
    let readme = std::fs::read_to_string(model_dir.join("README.md")).unwrap();
    assert!(readme.contains("not on crates.io") && readme.contains("atelier plugins build"), "{readme}");

    let filter_dir = src.join("negative");
    env.ok(&["plugins", "new", "negative", "--kind", "filter", "--dir", filter_dir.to_str().unwrap(), "--sdk", sdk.to_str().unwrap()]);

    // build: compiled for wasm32-wasip2 and staged as OUT/<id>/plugin.{wasm,toml}.
    let text = build_ok(&env, &model_dir, &["--out", staged.to_str().unwrap()]);
    assert!(text.contains("staged the model plugin `tiny-echo`"), "{text}");
    let text = build_ok(&env, &filter_dir, &["--out", staged.to_str().unwrap()]);
    assert!(text.contains(&format!("atelier --plugins {} plugins inspect negative", staged.display())), "{text}");
    for id in ["tiny-echo", "negative"] {
        let wasm = std::fs::read(staged.join(id).join("plugin.wasm")).unwrap();
        assert_eq!(&wasm[..4], b"\0asm", "{id}'s plugin.wasm is a WebAssembly binary");
        assert!(staged.join(id).join("plugin.toml").is_file());
    }
    env.plugins = vec![staged.clone()];

    // inspect, models, filters: the host loads both and sees what the templates declare.
    for (id, kind) in [("tiny-echo", "model"), ("negative", "filter")] {
        let v = json(&env.ok(&["plugins", "inspect", id, "--json"]));
        assert_eq!((v["id"].as_str(), v["kind"].as_str(), v["contract"].as_str()), (Some(id), Some(kind), Some("0.2.0")));
        assert_eq!(v["hosts_asked"], serde_json::json!([]), "no network by default");
        assert_eq!(v["secrets"], serde_json::json!([]), "no secrets by default");
    }
    let models = json(&env.ok(&["models", "--json"]));
    let m = models.as_array().unwrap().iter().find(|m| m["id"] == "tiny-echo").expect("tiny-echo is listed");
    let params: Vec<&str> = m["params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["note", "max_side"]);
    assert_eq!(m["supports_seed"], true);
    let filters = json(&env.ok(&["filters", "--json"]));
    let f = filters.as_array().unwrap().iter().find(|f| f["name"] == "invert").expect("invert is listed");
    assert_eq!(f["plugin"], "negative");
    assert_eq!(f["params"][0]["name"], "amount");

    // edit with the model: the image comes back pixel for pixel, with its notes and seed.
    let out = env.path("out");
    let v = json(&env.ok(&[
        "edit", photo.to_str().unwrap(), "--model", "tiny-echo", "--prompt", "keep it", "--param", "note=from the test",
        "--seed", "7", "-o", out.to_str().unwrap(), "--json",
    ]));
    let o = &v["outputs"][0];
    let got = image::open(o["path"].as_str().unwrap()).unwrap().into_rgba8();
    assert_eq!(got, input, "the model returns its input unchanged");
    let sidecar: serde_json::Value = serde_json::from_slice(&std::fs::read(o["sidecar"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(sidecar["notes"], serde_json::json!([["note", "from the test"], ["prompt", "keep it"]]));
    assert_eq!(o["seed"], 7);

    // prepare's plan: max_side=16 makes the host halve the image before submit.
    let v = json(&env.ok(&[
        "edit", photo.to_str().unwrap(), "--model", "tiny-echo", "--prompt", "smaller", "--param", "max_side=16",
        "-o", env.path("half").to_str().unwrap(), "--json",
    ]));
    let half = image::open(v["outputs"][0]["path"].as_str().unwrap()).unwrap().into_rgba8();
    assert_eq!(half.dimensions(), (16, 16));
    // Output pixel i covers input pixels 2i and 2i+1: red there is about 16i + 4 (edges excepted).
    for i in 2..14u32 {
        let px = half.get_pixel(i, i);
        let expect = (16 * i + 4) as i32;
        assert!((px[0] as i32 - expect).abs() <= 3 && (px[1] as i32 - expect).abs() <= 3, "pixel ({i},{i}) is {px:?}, want ~{expect}");
        assert!((px[2] as i32 - 100).abs() <= 1, "blue stays: {px:?}");
    }
    // prepare's check: a reference under 8 px is refused before submit, with the plugin's words.
    let tiny = env.path("tiny.png");
    image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255])).save(&tiny).unwrap();
    let err = env.fails(&["edit", tiny.to_str().unwrap(), "--model", "tiny-echo", "--prompt", "x", "-o", env.path("o4").to_str().unwrap()]);
    assert!(err.contains("reference 1 is 4x4") && err.contains("at least 8x8"), "{err}");

    // filter with the filter: the negative, alpha kept; half way, every channel meets at 128.
    let neg = env.path("neg.png");
    env.ok(&["filter", photo.to_str().unwrap(), "--step", "invert", "-o", neg.to_str().unwrap()]);
    let got = image::open(&neg).unwrap().into_rgba8();
    for (x, y, p) in input.enumerate_pixels() {
        let q = got.get_pixel(x, y);
        assert_eq!(q.0, [255 - p[0], 255 - p[1], 255 - p[2], p[3]], "pixel ({x},{y})");
    }
    let mid = env.path("mid.png");
    env.ok(&["filter", photo.to_str().unwrap(), "--step", "invert:amount=0.5", "-o", mid.to_str().unwrap()]);
    let got = image::open(&mid).unwrap().into_rgba8();
    assert!(got.enumerate_pixels().all(|(x, y, q)| q.0 == [128, 128, 128, input.get_pixel(x, y)[3]]));
    let err = env.fails(&["filter", photo.to_str().unwrap(), "--step", "invert:amount=2", "-o", env.path("bad.png").to_str().unwrap()]);
    assert!(err.contains("amount"), "{err}");

    // The filter's own unit tests pass natively (release, so the host-side build of the
    // proc-macros above is reused).
    let test = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["test", "--release", "--offline", "--manifest-path", filter_dir.join("Cargo.toml").to_str().unwrap()])
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success() && stdout.contains("test result: ok. 3 passed"), "{stdout}\n{}", String::from_utf8_lossy(&test.stderr));

    // Without --out, build stages into the first --plugins directory.
    let other = env.path("other-plugins");
    std::fs::create_dir_all(&other).unwrap();
    env.plugins = vec![other.clone()];
    build_ok(&env, &filter_dir, &[]);
    assert!(other.join("negative/plugin.wasm").is_file() && other.join("negative/plugin.toml").is_file());

    // A compile error: cargo's own message comes through, then what to do.
    let lib = filter_dir.join("src/lib.rs");
    let good = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, good.replace("invert(&mut image.pixels, amount);", "invert(&mut image.pixels, amount, 3);")).unwrap();
    let o = build(&env, &filter_dir, &["--out", staged.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a broken crate does not build");
    assert!(err.contains("error[E0061]") && err.contains("cargo could not build") && err.contains("fix them"), "{err}");
    std::fs::write(&lib, good).unwrap();
}

#[test]
fn bad_names_are_refused_with_the_fix() {
    let env = env();
    for (name, want) in [
        ("My_Plugin", "`my-plugin`"),
        ("9lives", "starting with a letter"),
        ("has space", "`has-space`"),
        ("crate", "reserved"),
    ] {
        let err = env.fails(&["plugins", "new", name, "--kind", "model", "--dir", env.path("x").to_str().unwrap()]);
        assert!(err.contains(&format!("`{name}`")) && err.contains(want), "{name}: {err}");
    }
    let long = "a".repeat(41);
    let err = env.fails(&["plugins", "new", &long, "--kind", "filter", "--dir", env.path("x").to_str().unwrap()]);
    assert!(err.contains("41 characters") && err.contains("at most 40"), "{err}");
    let err = env.fails(&["plugins", "new", "ok-name", "--kind", "sampler"]);
    assert!(err.contains("model") && err.contains("filter"), "clap lists the kinds: {err}");
    assert!(!env.path("x").exists(), "nothing was written");
}

#[test]
fn an_existing_directory_is_never_written_over() {
    let env = env();
    let dir = env.path("mine");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let err = env.fails(&["plugins", "new", "mine", "--kind", "model", "--dir", dir.to_str().unwrap()]);
    assert!(err.contains(dir.to_str().unwrap()) && err.contains("not empty") && err.contains("--dir"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing was added");

    // The default directory is ./NAME, refused the same way.
    let o = env.cmd().current_dir(env.dir.path()).args(["plugins", "new", "mine", "--kind", "filter"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("mine already exists") && err.contains("--dir"), "{err}");

    // An empty directory is fine, and so is a missing one under a missing parent.
    std::fs::create_dir_all(env.path("empty")).unwrap();
    env.ok(&["plugins", "new", "fresh", "--kind", "filter", "--dir", env.path("empty").to_str().unwrap()]);
    env.ok(&["plugins", "new", "fresh", "--kind", "model", "--dir", env.path("a/b/fresh").to_str().unwrap()]);
    assert!(env.path("empty/plugin.toml").is_file() && env.path("a/b/fresh/src/lib.rs").is_file());

    // A wrong --sdk is caught now, not as a cargo error at build time.
    let err = env.fails(&["plugins", "new", "other", "--kind", "model", "--dir", env.path("o").to_str().unwrap(), "--sdk", env.dir.path().to_str().unwrap()]);
    assert!(err.contains("no atelier SDK") && err.contains("--sdk PATH") && err.contains("not on crates.io"), "{err}");
    assert!(!env.path("o").exists());
}

#[test]
fn build_says_what_is_missing() {
    let env = env();
    let dir = env.path("p");
    env.ok(&["plugins", "new", "p", "--kind", "filter", "--dir", dir.to_str().unwrap()]);
    let out = env.path("staged");

    // Not a crate.
    let err = env.fails(&["plugins", "build", env.dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("has no Cargo.toml") && err.contains("atelier plugins new"), "{err}");

    // No cargo at all.
    let o = env.cmd().env("CARGO", "/nonexistent/cargo").args(["plugins", "build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/nonexistent/cargo") && err.contains("https://rustup.rs"), "{err}");

    // A toolchain without the wasm target, as rustup reports it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fake = env.path("fakebin");
        std::fs::create_dir_all(&fake).unwrap();
        let rustup = fake.join("rustup");
        std::fs::write(&rustup, "#!/bin/sh\necho x86_64-unknown-linux-gnu\n").unwrap();
        std::fs::set_permissions(&rustup, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
        let o = env.cmd().env("PATH", path).args(["plugins", "build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("rustup target add wasm32-wasip2"), "{err}");
    }

    // --out is the directory of plugin directories, not one plugin's own.
    let one = env.path("one-plugin");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::copy(dir.join("plugin.toml"), one.join("plugin.toml")).unwrap();
    let err = env.fails(&["plugins", "build", dir.to_str().unwrap(), "--out", one.to_str().unwrap()]);
    assert!(err.contains("is itself a plugin directory") && err.contains("--out takes"), "{err}");

    // A component outside the plugin directory could not be staged with it.
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest.replace("kind = \"filter\"", "kind = \"filter\"\ncomponent = \"../elsewhere.wasm\"")).unwrap();
    let err = env.fails(&["plugins", "build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("points outside the plugin directory") && err.contains("plugin.wasm"), "{err}");

    // A broken manifest is reported before anything is compiled.
    std::fs::write(dir.join("plugin.toml"), "id = \"p\"\nkind = \"filter\"\n").unwrap();
    let err = env.fails(&["plugins", "build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("plugin.toml") && err.contains("docs/manifest.md"), "{err}");
    assert!(!out.exists(), "nothing was staged");
}
