//! Loading plugins and refusing bad ones: every broken plugin directory gives one line that names
//! the file and the fix, the compile cache is used and checked, and a new engine is a directory
//! away (no rebuild of the host).

use atelier_tests::*;
use std::path::{Path, PathBuf};

/// A plugin directory's name and its files (name, bytes).
type PluginFiles<'a> = (&'a str, &'a [(&'a str, &'a [u8])]);

/// A search directory holding one plugin directory `<id>/` per entry, each with the given files.
fn plugin_tree(dirs: &[PluginFiles]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (id, files) in dirs {
        let d = tmp.path().join(id);
        std::fs::create_dir_all(&d).unwrap();
        for (name, bytes) in *files {
            std::fs::write(d.join(name), bytes).unwrap();
        }
    }
    tmp
}

fn manifest(id: &str) -> Vec<u8> {
    format!("id = \"{id}\"\nversion = \"0.1.0\"\ncontract = \"0.1.0\"\nkind = \"model\"\n").into_bytes()
}

/// The prebuilt contract-0.1.0 hello (its manifest below says 0.1.0, whatever the in-tree hello speaks).
fn hello_wasm() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hello-0.1.0/plugin.wasm")).expect("the checked-in 0.1.0 hello")
}

/// The in-tree hello, built for this run (it goes with the in-tree `plugin.toml`).
fn in_tree_hello_wasm() -> Vec<u8> {
    std::fs::read(plugins_dir().join("hello/plugin.wasm")).expect("tests/build.rs staged hello")
}

/// A one-line message that names `file` and contains every `needle`.
fn assert_one_line(msg: &str, file: &Path, needles: &[&str]) {
    assert!(!msg.contains('\n'), "the message must be one line: {msg}");
    assert!(msg.contains(&file.display().to_string()), "the message must name {}: {msg}", file.display());
    for n in needles {
        assert!(msg.contains(n), "expected `{n}` in: {msg}");
    }
}

fn problem_for(rt: &atelier::Runtime, id: &str) -> String {
    rt.problems()
        .iter()
        .find(|p| p.dir.file_name().is_some_and(|n| n == id))
        .unwrap_or_else(|| panic!("no problem recorded for `{id}`: {:?}", rt.problems()))
        .message
        .clone()
}

#[test]
fn missing_manifest_names_the_file_and_the_fix() {
    let tree = plugin_tree(&[("nomanifest", &[("plugin.wasm", &hello_wasm())]), ("hello", &[("plugin.wasm", &hello_wasm()), ("plugin.toml", &manifest("hello"))])]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let msg = problem_for(&rt, "nomanifest");
    let file = tree.path().join("nomanifest/plugin.toml");
    assert_one_line(&msg, &file, &["every plugin directory needs a plugin.toml", "docs/manifest.md"]);
    // The good plugin beside it still loads.
    assert!(rt.plugin("hello").is_ok());
    let via_id = format!("{:#}", rt.plugin("nomanifest").err().unwrap());
    assert_one_line(&via_id, &file, &["plugin `nomanifest` could not be loaded"]);
}

#[test]
fn malformed_manifest_names_file_and_line() {
    let syntax = b"id = \"broken\"\nversion = \nkind = \"model\"\n".as_slice();
    let wrong_type = b"id = \"typed\"\nversion = \"0.1.0\"\ncontract = \"0.1.0\"\nkind = \"model\"\n[permissions]\nhosts = \"https://api.example.com\"\n".as_slice();
    let unknown_kind = b"id = \"kinded\"\nversion = \"0.1.0\"\ncontract = \"0.1.0\"\nkind = \"upscaler\"\n".as_slice();
    let tree = plugin_tree(&[
        ("broken", &[("plugin.toml", syntax)]),
        ("typed", &[("plugin.toml", wrong_type)]),
        ("kinded", &[("plugin.toml", unknown_kind)]),
    ]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let at = |id: &str, line: u32| format!("{}:{line}: malformed plugin manifest", tree.path().join(id).join("plugin.toml").display());
    let msg = problem_for(&rt, "broken");
    // toml's own message for a syntax error has a line break; the host must fold it into one line.
    assert_one_line(&msg, &tree.path().join("broken/plugin.toml"), &[&at("broken", 2), "docs/manifest.md"]);
    let msg = problem_for(&rt, "typed");
    assert_one_line(&msg, &tree.path().join("typed/plugin.toml"), &[&at("typed", 6)]);
    let msg = problem_for(&rt, "kinded");
    assert_one_line(&msg, &tree.path().join("kinded/plugin.toml"), &[&at("kinded", 4), "model", "filter"]);
}

#[test]
fn files_that_are_not_components_are_refused_with_the_build_to_use() {
    let core_module = b"\0asm\x01\0\0\0".as_slice(); // the smallest valid core module
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let truncated = hello_wasm()[..2000].to_vec();
    let tree = plugin_tree(&[
        ("core", &[("plugin.toml", &manifest("core")), ("plugin.wasm", core_module)]),
        ("random", &[("plugin.toml", &manifest("random")), ("plugin.wasm", &random)]),
        ("truncated", &[("plugin.toml", &manifest("truncated")), ("plugin.wasm", &truncated)]),
        ("nowasm", &[("plugin.toml", &manifest("nowasm"))]),
    ]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let err = |id: &str| format!("{:#}", rt.plugin(id).err().unwrap_or_else(|| panic!("`{id}` must not load")));
    let wasm = |id: &str| tree.path().join(id).join("plugin.wasm");
    assert_one_line(&err("core"), &wasm("core"), &["a core wasm module, not a component", "wasm32-wasip2"]);
    assert_one_line(&err("random"), &wasm("random"), &["not a WebAssembly file", "cargo build --target wasm32-wasip2"]);
    assert_one_line(&err("truncated"), &wasm("truncated"), &["not a loadable component"]);
    assert_one_line(&err("nowasm"), &wasm("nowasm"), &["cannot read the component"]);
    // load_all reports the same four, and nothing else.
    let mut failed: Vec<String> = rt.load_all().into_iter().map(|p| p.dir.file_name().unwrap().to_string_lossy().into_owned()).collect();
    failed.sort();
    assert_eq!(failed, ["core", "nowasm", "random", "truncated"]);
}

#[test]
fn component_of_another_contract_version_is_refused() {
    // Honest manifest naming a contract this host does not speak: refused before the component
    // is even compiled.
    let future = b"id = \"future\"\nversion = \"0.1.0\"\ncontract = \"9.0.0\"\nkind = \"model\"\n".as_slice();
    let tree = plugin_tree(&[("future", &[("plugin.toml", future), ("plugin.wasm", &hello_wasm())])]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let msg = problem_for(&rt, "future");
    let file = tree.path().join("future/plugin.toml");
    assert_one_line(&msg, &file, &["built for contract 9.0.0", "this host speaks 0.2.0, 0.1.0", "rebuild the plugin against wit/0.2.0/"]);
    let via_id = format!("{:#}", rt.plugin("future").err().unwrap());
    assert!(via_id.starts_with("plugin `future` could not be loaded:"), "{via_id}");
    assert!(!rt.manifests().any(|m| m.id == "future"));

    let rt = test_runtime("");
    // Exports `backend@0.2.0`, but built from an edited WIT: the shape is checked when it is
    // instantiated, and the refusal says so (not "crashed").
    let other = rt.plugin("other-contract").expect("the names match: it loads");
    let described = tokio::runtime::Runtime::new().unwrap().block_on(other.describe_model());
    let msg = format!("{:#}", described.err().expect("a component of another shape must not be called"));
    let wasm = plugins_dir().join("other-contract/plugin.wasm");
    assert_one_line(&msg, &wasm, &["exports atelier:plugin/backend@0.2.0 but not in the shape contract 0.2.0 defines", "rebuild it against wit/0.2.0/"]);

    // Lying manifest (says 0.1.0, exports @0.2.0): caught by the export check.
    let msg = format!("{:#}", rt.plugin("lying-contract").err().expect("a 0.2.0 component must not load as 0.1.0"));
    let wasm = plugins_dir().join("lying-contract/plugin.wasm");
    assert_one_line(&msg, &wasm, &["exports atelier:plugin/backend@0.2.0", "manifest says contract 0.1.0", "set contract = \"0.2.0\"", "rebuild the plugin against wit/0.1.0/"]);
}

#[test]
fn unknown_ids_list_what_is_installed_and_where_it_looked() {
    let rt = test_runtime("");
    let msg = format!("{:#}", rt.plugin("no-such-plugin").err().unwrap());
    assert_one_line(&msg, &plugins_dir(), &["unknown plugin `no-such-plugin`", "hello", "--plugins DIR or ATELIER_PLUGINS"]);
    let msg = format!("{:#}", rt.model("no-such-model").err().unwrap());
    assert_one_line(&msg, &plugins_dir(), &["unknown model `no-such-model`", "installed models:", "hello"]);
    assert!(!msg.contains("filters,") && !msg.ends_with("filters"), "filters are not models: {msg}");
    let msg = format!("{:#}", rt.model("filters").err().unwrap());
    assert!(msg.contains("`filters` is a filter, not a model") && msg.contains("--step filters:"), "{msg}");
}

/// The `.cwasm` and `.blake3` files of a cache directory.
fn cache_files(dir: &Path) -> (PathBuf, PathBuf) {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let cwasm: Vec<&PathBuf> = names.iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect();
    let digest: Vec<&PathBuf> = names.iter().filter(|p| p.extension().is_some_and(|e| e == "blake3")).collect();
    assert_eq!((cwasm.len(), digest.len()), (1, 1), "one artifact and one digest for one component: {names:?}");
    assert_eq!(cwasm[0].file_stem(), digest[0].file_stem(), "artifact and digest share the key");
    (cwasm[0].clone(), digest[0].clone())
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_cache_is_reused_and_a_tampered_artifact_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let hello_dir = plugins_dir().join("hello");
    let load = || runtime_over(vec![hello_dir.clone()], "", cache.path().to_path_buf());

    // First load compiles and writes the artifact with its digest.
    let rt = load();
    rt.plugin("hello").unwrap();
    let (cwasm, digest) = cache_files(cache.path());
    let art = std::fs::read(&cwasm).unwrap();
    assert_eq!(std::fs::read_to_string(&digest).unwrap().trim(), blake3::hash(&art).to_hex().to_string());
    let first = inode(&cwasm);

    // A second runtime (a new engine) reads the artifact: a hit rewrites nothing.
    let rt = load();
    assert_eq!(rt.model("hello").unwrap().describe_model().await.unwrap().display_name, "Hello");
    assert_eq!(inode(&cwasm), first, "a cache hit must not rewrite the artifact");
    assert_eq!(std::fs::read(&cwasm).unwrap(), art);

    // Tampered artifact, digest untouched, modification time set back: not deserialized (the
    // change time still moved); recompiled and rewritten. The runtime that mapped the artifact goes
    // first: rewriting a mapped file in place would kill this process with SIGBUS (the host itself
    // only ever replaces cache files by rename).
    drop(rt);
    let mut bad = art.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0xCC);
    let mtime = std::fs::metadata(&cwasm).unwrap().modified().unwrap();
    std::fs::write(&cwasm, &bad).unwrap();
    std::fs::File::options().write(true).open(&cwasm).unwrap().set_modified(mtime).unwrap();
    assert_eq!(inode(&cwasm), first);
    let rt = load();
    assert_hello_works(&rt).await;
    assert_ne!(inode(&cwasm), first, "a digest mismatch must lead to a recompile that replaces the artifact");
    let rewritten = std::fs::read(&cwasm).unwrap();
    assert_eq!(std::fs::read_to_string(&digest).unwrap().trim(), blake3::hash(&rewritten).to_hex().to_string());
    assert!(rewritten != bad);
    drop(rt);

    // Garbage with a matching digest: deserialization fails cleanly and the host recompiles.
    let garbage = vec![0x5Au8; 4096];
    std::fs::write(&cwasm, &garbage).unwrap();
    std::fs::write(&digest, blake3::hash(&garbage).to_hex().to_string()).unwrap();
    let rt = load();
    assert_hello_works(&rt).await;
    assert!(std::fs::read(&cwasm).unwrap() != garbage, "the garbage artifact must be replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_component_is_not_served_from_the_cache() {
    // Warm loads find their artifact without hashing the .wasm (a stamp index); replacing the
    // component must still load the new one.
    let cache = tempfile::tempdir().unwrap();
    let tree = plugin_tree(&[("hello", &[("plugin.wasm", &in_tree_hello_wasm()), ("plugin.toml", &std::fs::read(plugins_dir().join("hello/plugin.toml")).unwrap())])]);
    let load = || runtime_over(vec![tree.path().to_path_buf()], "", cache.path().to_path_buf());
    assert_eq!(load().model("hello").unwrap().describe_model().await.unwrap().display_name, "Hello");
    assert_eq!(load().model("hello").unwrap().describe_model().await.unwrap().display_name, "Hello", "warm load");

    // Same path, another model's component (a bigger file, so even a same-second rewrite differs).
    let other = std::fs::read(plugins_dir().join("nano-banana/plugin.wasm")).unwrap();
    std::fs::write(tree.path().join("hello/plugin.wasm"), &other).unwrap();
    let name = load().model("hello").unwrap().describe_model().await.unwrap().display_name;
    assert_ne!(name, "Hello", "the replaced component must be loaded, not the cached artifact of the old one");
    assert_eq!(name, load().model("hello").unwrap().describe_model().await.unwrap().display_name, "and stays cached");
}

/// `target/debug/atelier`, next to this test binary's `deps/` directory.
fn atelier_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("atelier")).unwrap();
    assert!(bin.exists(), "{} is missing: run `cargo build -p atelier` first (this test runs the real binary)", bin.display());
    bin
}

/// The built hello component installed under a new id, `my-engine`, as an operator installing an
/// engine would; with an empty `atelier.toml` beside it.
fn my_engine_tree() -> tempfile::TempDir {
    let manifest = std::fs::read_to_string(plugins_dir().join("hello/plugin.toml")).unwrap();
    let renamed = manifest.replace("id = \"hello\"", "id = \"my-engine\"");
    assert_ne!(renamed, manifest);
    let tree = plugin_tree(&[("my-engine", &[("plugin.wasm", &in_tree_hello_wasm()), ("plugin.toml", renamed.as_bytes())])]);
    std::fs::write(tree.path().join("atelier.toml"), "").unwrap();
    tree
}

/// The real binary over `tree` (its plugins and its `atelier.toml`), deaf to the caller's env.
fn atelier_over(tree: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(atelier_binary());
    c.arg("--config").arg(tree.join("atelier.toml")).arg("--plugins").arg(tree).arg("--cache-dir").arg(cache_dir());
    c.env_remove("ATELIER_PLUGINS").env_remove("ATELIER_CONFIG").env_remove("ATELIER_CACHE_DIR");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_engine_is_a_directory_not_a_rebuild() {
    let tree = my_engine_tree();
    let run = |args: &[&str]| {
        let out = atelier_over(tree.path()).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "atelier {args:?} failed: {stderr}");
        assert!(!stderr.contains("problem"), "atelier {args:?}: {stderr}");
        stdout
    };
    let list = run(&["plugins", "list"]);
    assert!(list.lines().any(|l| l.starts_with("my-engine ") && l.contains("model")), "{list}");
    let models = run(&["models", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&models).unwrap_or_else(|e| panic!("{e}: {models}"));
    let models = v.as_array().unwrap();
    assert_eq!(models.len(), 1, "{v}");
    assert_eq!(models[0]["display_name"], "Hello", "{v}");

    // And it does the work, through the library with the same directory.
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    assert_echoes(&rt, "my-engine").await;
}

#[test]
fn models_lists_engines_under_their_manifest_id() {
    let tree = my_engine_tree();
    let out = atelier_over(tree.path()).args(["models", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], "my-engine", "the listed id must be the one --model accepts: {v}");
}

#[test]
fn duplicate_ids_keep_the_first_and_name_both_files() {
    let tree = plugin_tree(&[
        ("a-first", &[("plugin.toml", &manifest("dup")), ("plugin.wasm", &hello_wasm())]),
        ("b-second", &[("plugin.toml", &manifest("dup")), ("plugin.wasm", &hello_wasm())]),
    ]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let msg = problem_for(&rt, "b-second");
    assert_one_line(&msg, &tree.path().join("b-second/plugin.toml"), &["plugin id `dup` is already provided by", "the first one in the search path wins"]);
    assert!(msg.contains(&tree.path().join("a-first/plugin.toml").display().to_string()), "{msg}");
    let m = rt.manifests().find(|m| m.id == "dup").unwrap();
    assert_eq!(m.path, tree.path().join("a-first/plugin.toml"));
}

#[test]
fn disabled_plugin_is_not_offered_and_bad_limits_are_refused() {
    let rt = test_runtime("[plugins.hello]\nenabled = false\n");
    let msg = format!("{:#}", rt.model("hello").err().expect("a disabled plugin is not offered"));
    assert!(msg.contains("unknown model `hello`"), "{msg}");

    // Each refusal is one line: the operator's file and line, the key and value, what is wrong,
    // and the line to write instead; the other plugins still load.
    let config = Path::new("/etc/atelier/atelier.toml");
    let refused = |text: &str, id: &str| -> String {
        let settings = atelier::Settings::parse(text, Some(config)).expect("the config itself parses");
        let rt = atelier::Runtime::new(
            settings,
            atelier::RuntimeOptions { plugin_dirs: vec![plugins_dir()], only_given_dirs: true, cache_dir: Some(cache_dir()), ..Default::default() },
        )
        .unwrap();
        assert!(rt.plugin("hello").is_ok(), "a bad limit of `{id}` must not stop the other plugins");
        format!("{:#}", rt.plugin(id).err().unwrap_or_else(|| panic!("`{text}` must be refused")))
    };
    let msg = refused("[plugins.hello]\nmodel = \"m\"\n\n[plugins.spin.limits]\ncall_timeout = 1\n", "spin");
    assert_one_line(&msg, config, &[
        "/etc/atelier/atelier.toml:5: [plugins.spin.limits] call_timeout = 1: there is no limit `call_timeout` (the limits are memory_mb, call_timeout_s, max_in_flight, max_http_requests, log_lines_per_s, max_artifacts, max_notes_kb, max_token_kb, max_stream_mb); write instead: call_timeout_s = 1",
    ]);
    let msg = refused("[plugins.spin.limits]\nmax_in_flight = 2\nmemory_mb = -5\n", "spin");
    assert_one_line(&msg, config, &["atelier.toml:3: [plugins.spin.limits] memory_mb = -5: the memory limit must be at least 1 MiB; write instead: memory_mb = 256"]);
    let msg = refused("[plugins.spin]\nlimits = { call_timeout_s = \"2m\" }\n", "spin");
    assert_one_line(&msg, config, &["atelier.toml:2: [plugins.spin.limits] call_timeout_s = \"2m\": the call timeout must be a number of seconds, not a string", "write instead: call_timeout_s = 120"]);
    // membomb's manifest asks for 32 MiB: a refused override suggests that, not the host default.
    let msg = refused("[plugins.membomb.limits]\nmemory_mb = 0\n", "membomb");
    assert_one_line(&msg, config, &["atelier.toml:2:", "write instead: memory_mb = 32"]);
}

#[test]
fn bad_manifest_limit_names_the_plugin_toml_line_and_the_fix() {
    let toml = [manifest("greedy"), b"[limits]\nmemory_mb = \"1GiB\"\n".to_vec()].concat();
    let tree = plugin_tree(&[("greedy", &[("plugin.wasm", &hello_wasm()), ("plugin.toml", &toml)]), ("hello", &[("plugin.wasm", &hello_wasm()), ("plugin.toml", &manifest("hello"))])]);
    let rt = runtime_over(vec![tree.path().to_path_buf()], "", cache_dir());
    let file = tree.path().join("greedy/plugin.toml");
    assert_one_line(&problem_for(&rt, "greedy"), &file, &[
        &format!("{}:6: [limits] memory_mb = \"1GiB\": the memory limit must be a whole number of MiB, not a string", file.display()),
        "write instead: memory_mb = 1024",
    ]);
    assert!(rt.plugin("hello").is_ok());
}

#[test]
fn plugins_directories_come_before_the_installed_plugins_not_instead_of_them() {
    // The config's [paths] plugins stand for the installed plugins; `--plugins` adds in front of
    // them (an author's new filter must not hide the built-in ones) unless told to search only it.
    let installed = plugins_dir().join("filters");
    let settings = || atelier::Settings::parse(&format!("[paths]\nplugins = [{:?}]\n", installed.display().to_string()), None).unwrap();
    let runtime = |only_given_dirs| {
        atelier::Runtime::new(
            settings(),
            atelier::RuntimeOptions { plugin_dirs: vec![plugins_dir().join("hello")], only_given_dirs, cache_dir: Some(cache_dir()), ..Default::default() },
        )
        .unwrap()
    };
    let both = runtime(false);
    assert!(both.plugin("hello").is_ok() && both.plugin("filters").is_ok(), "search path: {:?}", both.search_path);
    assert_eq!(both.search_path.first(), Some(&plugins_dir().join("hello")), "--plugins is searched first");
    let only = runtime(true);
    assert!(only.plugin("hello").is_ok());
    let msg = format!("{:#}", only.plugin("filters").err().expect("--no-default-plugins searches only --plugins"));
    assert!(msg.contains("unknown plugin `filters`"), "{msg}");
}
