//! `atelier plugins new` and `atelier plugins build`: start a plugin crate from a template, and
//! turn a plugin crate into a plugin directory the host loads (`OUT/<id>/plugin.{wasm,toml}`).
//!
//! The templates are real files under `host/templates/`, compiled in with `include_str!` and
//! filled by plain placeholder replacement, so what a plugin author gets is readable in the tree.

use super::Cli;
use anyhow::{Context, Result, anyhow, bail};
use atelier::manifest::{Kind, Manifest, SUPPORTED_CONTRACTS};
use clap::{Args, ValueEnum};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The target every plugin component is built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Longest plugin id `new` accepts; ids appear in file names, step lists and log lines.
const MAX_NAME: usize = 40;

/// Which template `plugins new` starts from.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum TemplateKind {
    /// A model backend (`atelier edit --model NAME`).
    Model,
    /// A filter family (`atelier filter --step STEP`).
    Filter,
}

/// `atelier plugins new NAME --kind model|filter`.
#[derive(Args)]
pub struct NewArgs {
    /// The plugin id: lowercase letters, digits and `-`, starting with a letter, at most 40 long.
    name: String,
    /// What the plugin is: a model backend or a filter family.
    #[arg(long, value_enum)]
    kind: TemplateKind,
    /// The directory to create the crate in (default: ./NAME); it must not exist, or be empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// The atelier SDK's directory (default: the sdk/ of the checkout this atelier was built from).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// `atelier plugins build [DIR] [--out PLUGINS_DIR]`.
#[derive(Args)]
pub struct BuildArgs {
    /// The plugin crate: the directory holding its Cargo.toml and plugin.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Stage into OUT/<id>/ (default: the first directory atelier searches for plugins: --plugins,
    /// else plugin_dirs in atelier.toml, else the per-user plugin directory).
    #[arg(long, value_name = "PLUGINS_DIR")]
    out: Option<PathBuf>,
    /// Let cargo use only crates already downloaded (cargo's --offline).
    #[arg(long)]
    offline: bool,
}

/// One file of a template: where it goes in the new crate, and its text with placeholders.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

// File names carry `.tmpl` so cargo never mistakes a template for a crate of the host's workspace.
const MODEL_TEMPLATE: &[TemplateFile] = &[
    TemplateFile { path: "Cargo.toml", text: include_str!("../../templates/plugin-model/Cargo.toml.tmpl") },
    TemplateFile { path: "plugin.toml", text: include_str!("../../templates/plugin-model/plugin.toml.tmpl") },
    TemplateFile { path: "src/lib.rs", text: include_str!("../../templates/plugin-model/src/lib.rs.tmpl") },
    TemplateFile { path: "README.md", text: include_str!("../../templates/plugin-model/README.md.tmpl") },
    TemplateFile { path: ".gitignore", text: include_str!("../../templates/plugin-model/gitignore.tmpl") },
    TemplateFile { path: ".cargo/config.toml", text: include_str!("../../templates/cargo-config.toml.tmpl") },
];

const FILTER_TEMPLATE: &[TemplateFile] = &[
    TemplateFile { path: "Cargo.toml", text: include_str!("../../templates/plugin-filter/Cargo.toml.tmpl") },
    TemplateFile { path: "plugin.toml", text: include_str!("../../templates/plugin-filter/plugin.toml.tmpl") },
    TemplateFile { path: "src/lib.rs", text: include_str!("../../templates/plugin-filter/src/lib.rs.tmpl") },
    TemplateFile { path: "README.md", text: include_str!("../../templates/plugin-filter/README.md.tmpl") },
    TemplateFile { path: ".gitignore", text: include_str!("../../templates/plugin-filter/gitignore.tmpl") },
    TemplateFile { path: ".cargo/config.toml", text: include_str!("../../templates/cargo-config.toml.tmpl") },
];

/// Create the crate: check the name, the directory and the SDK first, so a refusal writes nothing.
pub fn new(a: &NewArgs) -> Result<ExitCode> {
    check_name(&a.name)?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    check_free_dir(&dir)?;
    let sdk = sdk_dir(a.sdk.as_deref())?;
    let files = render_template(a.kind, &a.name, &sdk)?;
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let kind = match a.kind {
        TemplateKind::Model => "model",
        TemplateKind::Filter => "filter",
    };
    println!("created the {kind} plugin `{}` in {}", a.name, dir.display());
    for (rel, _) in &files {
        println!("  {rel}");
    }
    println!("using the atelier SDK at {}", sdk.display());
    println!("next:");
    println!("  atelier plugins build {} --out ./plugins", dir.display());
    println!("  atelier --plugins ./plugins plugins inspect {}", a.name);
    Ok(ExitCode::SUCCESS)
}

/// Build the crate for wasm32-wasip2 and stage `plugin.wasm` + `plugin.toml` into `OUT/<id>/`.
pub fn build(cli: &Cli, a: &BuildArgs) -> Result<ExitCode> {
    let dir = &a.dir;
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: give the plugin crate's directory (one made by `atelier plugins new NAME --kind model|filter`)",
            dir.display()
        );
    }
    // The manifest is checked before the (slow) build, so a typo in it costs nothing.
    let manifest = Manifest::load(dir)?;
    manifest.check_contract()?;
    // Stage the component under the name the manifest gives it (`component`, default plugin.wasm).
    let component = manifest.component.strip_prefix(dir).unwrap_or(&manifest.component).to_path_buf();
    if component.is_absolute() || component.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        bail!(
            "{}: `component = \"{}\"` points outside the plugin directory; staging copies the directory, so give a file name such as \"plugin.wasm\" (or leave it out)",
            manifest.path.display(),
            component.display()
        );
    }
    let out = match &a.out {
        Some(o) => o.clone(),
        None => default_out(cli)?,
    };
    if out.join("plugin.toml").exists() {
        bail!(
            "{} is itself a plugin directory (it holds plugin.toml); --out takes the directory that holds plugin directories, e.g. {}",
            out.display(),
            out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).display()
        );
    }
    check_wasm_target(dir)?;
    let wasm = cargo_build(dir, a.offline)?;

    let dest = out.join(&manifest.id);
    let staged_wasm = dest.join(&component);
    if let Some(parent) = staged_wasm.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    copy_if_changed(&wasm, &staged_wasm)?;
    copy_if_changed(&dir.join("plugin.toml"), &dest.join("plugin.toml"))?;
    Manifest::load(&dest).with_context(|| format!("the staged plugin in {} does not load", dest.display()))?;

    let size = std::fs::metadata(&staged_wasm).map(|m| m.len()).unwrap_or(0);
    println!(
        "staged the {} plugin `{}` {} in {} ({} {} KiB, plugin.toml)",
        manifest.kind,
        manifest.id,
        manifest.version,
        dest.display(),
        component.display(),
        size.div_ceil(1024)
    );
    println!("next:");
    println!("  atelier --plugins {} plugins inspect {}", out.display(), manifest.id);
    match manifest.kind {
        Kind::Model => println!(
            "  atelier --plugins {} edit photo.png --model {} --prompt \"…\" -o out",
            out.display(),
            manifest.id
        ),
        Kind::Filter => println!("  atelier --plugins {} filters", out.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuse a name that cannot be a plugin id and a cargo package at once, saying what would work.
fn check_name(name: &str) -> Result<()> {
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !well_formed {
        bail!(
            "`{name}` is not a valid plugin name: use lowercase letters, digits and `-`, starting with a letter, e.g. `{}`",
            suggest_name(name)
        );
    }
    if name.len() > MAX_NAME {
        bail!(
            "the plugin name `{name}` is {} characters long; names are at most {MAX_NAME}: choose a shorter one, e.g. `{}`",
            name.len(),
            suggest_name(name)
        );
    }
    // Cargo refuses these as package names (keywords, the built-in crates), and `atelier-sdk`
    // would depend on itself.
    const RESERVED: &[&str] = &[
        "abstract", "alloc", "as", "async", "atelier-sdk", "await", "become", "box", "break", "const", "continue",
        "core", "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "proc-macro", "pub", "ref",
        "return", "self", "static", "std", "struct", "super", "test", "trait", "true", "try", "type", "typeof",
        "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    if RESERVED.contains(&name) {
        bail!("`{name}` is reserved by Rust or cargo and cannot name a plugin crate: choose another, e.g. `my-{name}`");
    }
    Ok(())
}

/// A valid name close to `name`, for error messages.
fn suggest_name(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !s.is_empty()) {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    s.truncate(MAX_NAME);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "my-plugin".to_string() } else { s }
}

/// The Rust type name for the plugin: `my-model` → `MyModel`, suffixed with `Plugin` when that
/// would shadow a name the template uses (`model` → `ModelPlugin`, not a struct named `Model`).
fn type_name(name: &str) -> String {
    const TAKEN: &[&str] = &[
        // What the templates import from the SDK.
        "Artifact", "Error", "Filter", "FilterInfo", "Image", "InputPlan", "Model", "ModelInfo", "Outcome",
        "Param", "ParamSpec", "Params", "Request", "Step", "Submission", "Usage",
        // The prelude names they rely on.
        "Box", "Clone", "Copy", "Default", "Err", "None", "Ok", "Option", "Result", "Self", "Some", "String", "Vec",
    ];
    let camel: String = name
        .split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect::<String>()
        })
        .collect();
    if TAKEN.contains(&camel.as_str()) { format!("{camel}Plugin") } else { camel }
}

/// Refuse a directory that holds anything: the crate never overwrites a user's files.
fn check_free_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!("{} exists and is not a directory; choose where to create the crate with --dir PATH", dir.display());
    }
    let mut entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} already exists and is not empty; nothing was written. Choose another directory with --dir PATH (or another name)",
            dir.display()
        );
    }
    Ok(())
}

/// The SDK directory to put in the new Cargo.toml: `--sdk`, else this checkout's `sdk/` as known
/// when the host was built. It must hold the `atelier-sdk` package, since the SDK is not on
/// crates.io yet and a wrong path would only show up as a cargo error much later.
fn sdk_dir(given: Option<&Path>) -> Result<PathBuf> {
    let (path, how) = match given {
        Some(p) => (p.to_path_buf(), "--sdk"),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk"), "the default"),
    };
    let fix = "pass --sdk PATH with the sdk/ directory of an atelier checkout (the SDK is not on crates.io yet)";
    let cargo_toml = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml)
        .map_err(|e| anyhow!("no atelier SDK at {} ({how}): cannot read {}: {e}; {fix}", path.display(), cargo_toml.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML; {fix}", cargo_toml.display()))?;
    let package = doc.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    if package != Some("atelier-sdk") {
        bail!(
            "{} ({how}) is not the atelier SDK: its Cargo.toml names package {}, not `atelier-sdk`; {fix}",
            path.display(),
            package.map(|p| format!("`{p}`")).unwrap_or("nothing".into())
        );
    }
    let abs = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
    Ok(plain_path(abs))
}

/// Drop Windows' `\\?\` prefix from a canonical path: cargo and humans read the plain form.
fn plain_path(p: PathBuf) -> PathBuf {
    match p.to_str().and_then(|s| s.strip_prefix(r"\\?\")) {
        Some(rest) if !rest.starts_with("UNC") => PathBuf::from(rest),
        _ => p,
    }
}

/// The template's files with placeholders filled: `(path in the crate, text)`.
fn render_template(kind: TemplateKind, name: &str, sdk: &Path) -> Result<Vec<(&'static str, String)>> {
    let sdk_text = sdk.to_str().with_context(|| format!("the SDK path {} is not UTF-8; pass --sdk with a UTF-8 path", sdk.display()))?;
    if sdk_text.chars().any(char::is_control) {
        bail!("the SDK path {sdk_text:?} holds control characters; pass --sdk with a plain path");
    }
    let crate_name = name.replace('-', "_");
    let type_name = type_name(name);
    let files = match kind {
        TemplateKind::Model => MODEL_TEMPLATE,
        TemplateKind::Filter => FILTER_TEMPLATE,
    };
    Ok(files
        .iter()
        .map(|f| {
            // Inside Cargo.toml the path sits in a TOML string: escape what TOML would read.
            let sdk_path = if f.path == "Cargo.toml" { sdk_text.replace('\\', "\\\\").replace('"', "\\\"") } else { sdk_text.to_string() };
            let vars = [
                ("name", name),
                ("crate_name", crate_name.as_str()),
                ("type_name", type_name.as_str()),
                ("sdk_path", sdk_path.as_str()),
                ("contract", SUPPORTED_CONTRACTS[0]),
            ];
            (f.path, fill(f.text, &vars))
        })
        .collect())
}

/// Replace each `{{key}}` by its value. Unknown `{{...}}` stay as written: the manifest's comments
/// show the `{{secret:NAME}}` syntax on purpose.
fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// Where `build` stages without `--out`: the first directory the host itself searches, so the
/// plugin is found by the next `atelier` run with the same options.
fn default_out(cli: &Cli) -> Result<PathBuf> {
    if let Some(first) = cli.plugins.iter().find(|p| !p.as_os_str().is_empty()) {
        return Ok(first.clone());
    }
    let settings = cli.settings().context("reading atelier.toml to find its plugin_dirs (or pass --out PLUGINS_DIR)")?;
    Ok(settings.plugin_dirs.first().cloned().unwrap_or_else(atelier::runtime::default_plugin_dir))
}

/// The fix for a missing target, said the same way wherever it is detected.
fn missing_target_message() -> String {
    format!("the {WASM_TARGET} target is not installed, and plugins are built for it: run `rustup target add {WASM_TARGET}`, then build again")
}

/// Ask rustup, where there is one, whether the target is installed: a missing target otherwise
/// surfaces as a wall of "can't find crate for `core`" errors.
fn check_wasm_target(dir: &Path) -> Result<()> {
    // Run in the crate so a rust-toolchain file there picks the toolchain rustup answers for.
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).current_dir(dir).output() else {
        return Ok(()); // no rustup: cargo's own errors are checked after the build
    };
    if !out.status.success() {
        return Ok(());
    }
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    bail!(missing_target_message())
}

/// `cargo build --release --target wasm32-wasip2` in `dir`, showing cargo's output as it comes;
/// returns the component cargo reports for the crate's cdylib.
fn cargo_build(dir: &Path, offline: bool) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_path = dir.join("Cargo.toml");
    let want = manifest_path.canonicalize().with_context(|| format!("resolving {}", manifest_path.display()))?;
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", WASM_TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&want)
        // Cargo reads `.cargo/config.toml` from the directory it runs in: the crate's own (simd128).
        .current_dir(want.parent().unwrap_or(dir));
    if offline {
        cmd.arg("--offline");
    }
    // Cargo's stderr is piped (to recognise a missing target), which would turn its colours off.
    if std::io::stderr().is_terminal() {
        cmd.arg("--color=always");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    eprintln!("building {} for {WASM_TARGET} (cargo build --release)", dir.display());
    let mut child = cmd.spawn().map_err(|e| {
        let shown = Path::new(&cargo).display().to_string();
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "cannot run `{shown}`: it was not found. Install Rust from https://rustup.rs and run `rustup target add {WASM_TARGET}` (or set CARGO to cargo's path)"
            )
        } else {
            anyhow!("cannot run `{shown}`: {e}")
        }
    })?;

    // Pass cargo's messages through while keeping them, to explain a failure afterwards.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let tee = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut out = std::io::stderr();
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            kept.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let mut wasm = None;
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for line in stdout.lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        let ours = msg["manifest_path"].as_str().and_then(|p| Path::new(p).canonicalize().ok()).is_some_and(|p| p == want);
        if is_cdylib && ours {
            let files = msg["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
            if let Some(f) = files.into_iter().find(|f| f.ends_with(".wasm")) {
                wasm = Some(PathBuf::from(f));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let errors = tee.join().unwrap_or_default();
    if !status.success() {
        if errors.contains("target may not be installed") || errors.contains("can't find crate for `core`") {
            bail!(missing_target_message());
        }
        if offline && (errors.contains("--offline") || errors.contains("offline mode")) {
            bail!("cargo needs crates that are not downloaded yet: run `atelier plugins build {}` once without --offline", dir.display());
        }
        bail!(
            "cargo could not build {} for {WASM_TARGET} (its errors are above); fix them and run `atelier plugins build {}` again",
            dir.display(),
            dir.display()
        );
    }
    wasm.with_context(|| {
        format!(
            "cargo built {} but reported no .wasm for it: its Cargo.toml needs `crate-type = [\"cdylib\", \"rlib\"]` under [lib]",
            dir.display()
        )
    })
}

/// Copy unless the destination already has the same bytes: an unchanged component keeps its
/// mtime, and with it the host's compile cache.
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let new = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, new).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_a_suggestion() {
        for ok in ["a", "my-model", "x2", "sepia-tone-3"] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = check_name("My_Model").unwrap_err().to_string();
        assert!(e.contains("lowercase letters, digits and `-`") && e.contains("`my-model`"), "{e}");
        let e = check_name("2fast").unwrap_err().to_string();
        assert!(e.contains("starting with a letter") && e.contains("`fast`"), "{e}");
        let long = "a".repeat(41);
        let e = check_name(&long).unwrap_err().to_string();
        assert!(e.contains("41 characters") && e.contains("at most 40"), "{e}");
        check_name(&"a".repeat(40)).unwrap();
        let e = check_name("fn").unwrap_err().to_string();
        assert!(e.contains("reserved") && e.contains("my-fn"), "{e}");
        assert_eq!(suggest_name("!!!"), "my-plugin");
    }

    #[test]
    fn type_names_never_shadow_what_the_template_uses() {
        assert_eq!(type_name("my-model"), "MyModel");
        assert_eq!(type_name("a-2d"), "A2d");
        assert_eq!(type_name("model"), "ModelPlugin");
        assert_eq!(type_name("result"), "ResultPlugin");
    }

    #[test]
    fn templates_fill_every_placeholder_and_give_valid_toml() {
        let sdk = Path::new(r#"/odd "dir"\sdk"#);
        for kind in [TemplateKind::Model, TemplateKind::Filter] {
            let files = render_template(kind, "my-thing", sdk).unwrap();
            let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
            assert_eq!(paths, ["Cargo.toml", "plugin.toml", "src/lib.rs", "README.md", ".gitignore", ".cargo/config.toml"]);
            for (path, text) in &files {
                for key in ["name", "crate_name", "type_name", "sdk_path", "contract"] {
                    assert!(!text.contains(&format!("{{{{{key}}}}}")), "{path} still holds {{{{{key}}}}}");
                }
            }
            let text = |p: &str| files.iter().find(|(q, _)| *q == p).unwrap().1.clone();
            let cargo: toml::Table = toml::from_str(&text("Cargo.toml")).unwrap();
            assert_eq!(cargo["package"]["name"].as_str(), Some("my-thing"));
            assert_eq!(cargo["dependencies"]["atelier-sdk"]["path"].as_str(), sdk.to_str());
            assert!(cargo.contains_key("workspace"), "its own workspace");
            let m = Manifest::parse(&text("plugin.toml"), Path::new("/x/my-thing/plugin.toml")).unwrap();
            assert_eq!(m.id, "my-thing");
            assert_eq!(m.kind, if kind == TemplateKind::Model { Kind::Model } else { Kind::Filter });
            m.check_contract().unwrap();
            assert!(m.hosts.is_empty() && m.secrets.is_empty(), "deny by default");
            assert!(text("plugin.toml").contains("{{secret:EXAMPLE_API_KEY}}"), "the placeholder syntax is shown");
            assert!(text("src/lib.rs").contains("struct MyThing;"));
            assert!(text("README.md").contains("target/wasm32-wasip2/release/my_thing.wasm"));
        }
    }

    #[test]
    fn the_default_sdk_is_this_checkouts() {
        let sdk = sdk_dir(None).unwrap();
        assert!(sdk.is_absolute() && sdk.ends_with("sdk"), "{}", sdk.display());
        let d = std::env::temp_dir();
        let e = sdk_dir(Some(&d.join("no-such-sdk-dir"))).unwrap_err().to_string();
        assert!(e.contains("--sdk PATH") && e.contains("not on crates.io"), "{e}");
    }
}
