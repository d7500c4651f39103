//! `atelier plugins push|install|update|remove` against a real OCI registry (Debian's
//! `docker-registry`) on a free loopback port: install by tag and by digest, `--locked` refusing a
//! tag re-pushed with other bytes, a tampered blob refused, an update that asks for a new
//! permission needing `--yes`, remove.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A private registry: its own config and storage in a temp dir, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Start it, or `None` (after saying why) when the binary is missing outside CI.
    fn start() -> Option<Registry> {
        Self::start_inner(None)
    }

    /// Start it with basic auth from this htpasswd line.
    fn start_with_auth(htpasswd: &str) -> Option<Registry> {
        Self::start_inner(Some(htpasswd))
    }

    fn start_inner(htpasswd: Option<&str>) -> Option<Registry> {
        let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"].into_iter().map(PathBuf::from).find(|p| p.exists());
        let Some(bin) = bin else {
            if std::env::var_os("CI").is_some() {
                panic!("docker-registry is not installed; CI installs it in .ci/run: apt-get update && apt-get install -y docker-registry");
            }
            println!("SKIPPED: docker-registry is not installed (apt-get install -y docker-registry)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("registry.yml");
        let mut yml = format!("version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n", storage.display());
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).unwrap();
            yml.push_str(&format!("auth: {{ htpasswd: {{ realm: atelier-test, path: {} }} }}\n", file.display()));
        }
        std::fs::write(&config, yml).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin).arg("serve").arg(&config).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let reg = Registry { child, port, storage, _dir: dir };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "the registry did not start on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    fn url(&self, repo: &str) -> String {
        format!("oci://127.0.0.1:{}/{repo}", self.port)
    }

    /// The file holding a blob in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `atelier` with only `plugins` as its plugin directory.
fn atelier(plugins: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .env("ATELIER_PLUGINS", plugins)
        .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
        .env_remove("ATELIER_CONFIG")
        .output()
        .unwrap()
}

fn ok(plugins: &Path, args: &[&str]) -> String {
    let o = atelier(plugins, args);
    assert!(o.status.success(), "atelier {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn fails(plugins: &Path, args: &[&str]) -> String {
    let o = atelier(plugins, args);
    assert!(!o.status.success(), "atelier {args:?} should have failed:\n{}", String::from_utf8_lossy(&o.stdout));
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A copy of the staged `hello` plugin with this version and extra manifest text, and a component
/// made distinct by a custom section named `tag` (so each copy is its own blob).
fn hello_copy(at: &Path, version: &str, extra: &str, tag: &str) -> PathBuf {
    let src = common::plugin_dirs(&["hello"]).remove(0);
    std::fs::create_dir_all(at).unwrap();
    let toml = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    // `extra` brings its own [permissions] in place of hello's empty one.
    let toml = if extra.contains("[permissions]") { toml.split("[permissions]").next().unwrap().to_string() } else { toml };
    let toml = toml
        .lines()
        .map(|l| if l.starts_with("version") { format!("version = \"{version}\"") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(at.join("plugin.toml"), format!("{toml}\n{extra}")).unwrap();
    let mut wasm = std::fs::read(src.join("plugin.wasm")).unwrap();
    wasm.extend(custom_section(tag));
    std::fs::write(at.join("plugin.wasm"), wasm).unwrap();
    at.to_path_buf()
}

/// A wasm custom section (id 0) named `name` with no payload: valid anywhere in a component.
fn custom_section(name: &str) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut s = vec![0u8, (name.len() + 1) as u8, name.len() as u8];
    s.extend(name.as_bytes());
    s
}

fn lock(dir: &Path) -> toml_lite::Doc {
    toml_lite::parse(&std::fs::read_to_string(dir.join("atelier.lock")).unwrap_or_default())
}

/// Just enough TOML reading for the lock file (`[plugins.ID]` tables of `key = "value"`).
mod toml_lite {
    use std::collections::BTreeMap;
    pub type Doc = BTreeMap<String, BTreeMap<String, String>>;
    pub fn parse(text: &str) -> Doc {
        let mut doc = Doc::new();
        let mut cur = None;
        for l in text.lines() {
            if let Some(id) = l.strip_prefix("[plugins.").and_then(|r| r.strip_suffix(']')) {
                cur = Some(id.trim_matches('"').to_string());
                doc.entry(cur.clone().unwrap()).or_default();
            } else if let (Some(id), Some((k, v))) = (&cur, l.split_once(" = ")) {
                doc.get_mut(id).unwrap().insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
            }
        }
        doc
    }
}

fn version_of(dir: &Path) -> String {
    let t = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    t.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"').to_string()
}

fn no_leftovers(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with('.') && n != ".atelier-lock.flock").collect();
    assert!(left.is_empty(), "staging or retired directories left behind in {}: {left:?}", dir.display());
}

#[test]
fn push_install_lock_update_remove_against_a_real_registry() {
    let Some(reg) = Registry::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let tag = reg.url("plugins/hello:stable");

    // Push: the digest alone on stdout.
    let v1 = hello_copy(&work.path().join("src-v1"), "0.1.0", "", "atelier-test-v1");
    let d1 = ok(&plugins, &["plugins", "push", v1.to_str().unwrap(), &tag]).trim().to_string();
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");
    // Pushing the same bytes again gives the same layers; a plugin that does not load is not pushed.
    let bad = work.path().join("src-bad");
    hello_copy(&bad, "0.1.0", "", "bad");
    let t = std::fs::read_to_string(bad.join("plugin.toml")).unwrap().replace("contract = \"0.1.0\"", "contract = \"9.9.9\"").replace("contract = \"0.2.0\"", "contract = \"9.9.9\"");
    std::fs::write(bad.join("plugin.toml"), t).unwrap();
    let e = fails(&plugins, &["plugins", "push", bad.to_str().unwrap(), &reg.url("plugins/bad:1")]);
    assert!(e.contains("not pushed") && e.contains("contract 9.9.9"), "{e}");

    // Install by tag: files in place, pinned in the lock file, listed, loadable.
    let out = ok(&plugins, &["plugins", "install", &tag]);
    assert!(out.contains(&format!("installed hello 0.1.0 from {tag} ({d1})")), "{out}");
    let l = lock(&plugins);
    assert_eq!((l["hello"]["digest"].as_str(), l["hello"]["reference"].as_str(), l["hello"]["version"].as_str()), (d1.as_str(), tag.as_str(), "0.1.0"));
    assert_eq!(std::fs::read(plugins.join("hello/plugin.wasm")).unwrap(), std::fs::read(v1.join("plugin.wasm")).unwrap());
    assert!(ok(&plugins, &["plugins", "list"]).contains("hello"));
    assert!(ok(&plugins, &["plugins", "install", &tag]).contains("already installed"), "installing again changes nothing");
    let component = l["hello"]["component"].clone();
    assert!(reg.blob_file(&component).exists(), "the lock's component digest is the registry's wasm layer");
    assert_eq!(std::fs::read(reg.blob_file(&component)).unwrap(), std::fs::read(plugins.join("hello/plugin.wasm")).unwrap());
    no_leftovers(&plugins);

    // Remove, then install by digest.
    assert!(ok(&plugins, &["plugins", "remove", "hello"]).contains("removed hello 0.1.0"));
    assert!(!plugins.join("hello").exists());
    assert!(!lock(&plugins).contains_key("hello"));
    let e = fails(&plugins, &["plugins", "remove", "hello"]);
    assert!(e.contains("not in") && e.contains("atelier.lock"), "{e}");
    let by_digest = format!("{}@{d1}", reg.url("plugins/hello"));
    let out = ok(&plugins, &["plugins", "install", &by_digest]);
    assert!(out.contains("installed hello 0.1.0"), "{out}");
    assert_eq!(lock(&plugins)["hello"]["reference"], by_digest);
    assert!(ok(&plugins, &["plugins", "update", "hello"]).contains("pinned to"), "a digest reference does not move");
    ok(&plugins, &["plugins", "remove", "hello"]);
    ok(&plugins, &["plugins", "install", &tag]);

    // The tag is re-pushed with other bytes (a new version that asks for a new host and secret).
    let v2 = hello_copy(
        &work.path().join("src-v2"),
        "0.2.0",
        "[permissions]\nhosts = [\"https://api.example.com\"]\n[permissions.secrets]\nEXAMPLE_KEY = [\"https://api.example.com\"]\n",
        "atelier-test-v2",
    );
    let d2 = ok(&plugins, &["plugins", "push", v2.to_str().unwrap(), &tag]).trim().to_string();
    assert_ne!(d1, d2);

    // --locked: the moved tag is refused; the pinned digest is what gets (re)installed.
    let e = fails(&plugins, &["plugins", "install", "--locked", &tag]);
    assert!(e.contains(&format!("now points to {d2}")) && e.contains(&d1) && e.contains("plugins update hello"), "{e}");
    assert!(ok(&plugins, &["plugins", "install", "--locked"]).contains("installed as pinned"));
    std::fs::remove_dir_all(plugins.join("hello")).unwrap();
    let out = ok(&plugins, &["plugins", "install", "--locked"]);
    assert!(out.contains(&format!("installed hello 0.1.0 as pinned ({d1})")), "{out}");
    assert_eq!(version_of(&plugins.join("hello")), "0.1.0");
    let e = fails(&plugins, &["plugins", "install", "--locked", &reg.url("plugins/other:1")]);
    assert!(e.contains("is not pinned"), "{e}");

    // Update shows what changed; the new permissions need --yes, and nothing moves without it.
    let e = fails(&plugins, &["plugins", "update", "hello"]);
    assert!(e.contains("version 0.1.0 → 0.2.0"), "{e}");
    assert!(e.contains("NEW PERMISSION: reach https://api.example.com"), "{e}");
    assert!(e.contains("NEW PERMISSION: secret EXAMPLE_KEY"), "{e}");
    assert!(e.contains("--yes"), "{e}");
    assert_eq!(version_of(&plugins.join("hello")), "0.1.0");
    assert_eq!(lock(&plugins)["hello"]["digest"], d1);
    let out = ok(&plugins, &["plugins", "update", "hello", "--yes"]);
    assert!(out.contains(&format!("hello: 0.1.0 ({d1}) → 0.2.0 ({d2})")), "{out}");
    assert_eq!(version_of(&plugins.join("hello")), "0.2.0");
    assert_eq!(lock(&plugins)["hello"]["digest"], d2);
    assert!(ok(&plugins, &["plugins", "update"]).contains("up to date"));
    no_leftovers(&plugins);

    // A tampered blob: the registry serves bytes that do not match the digest. Nothing installed.
    let t3 = reg.url("plugins/tampered:1");
    let src3 = hello_copy(&work.path().join("src-tampered"), "0.3.0", "", "atelier-test-tampered");
    let src3_toml = std::fs::read_to_string(src3.join("plugin.toml")).unwrap().replace("id = \"hello\"", "id = \"tampered\"");
    std::fs::write(src3.join("plugin.toml"), src3_toml).unwrap();
    ok(&plugins, &["plugins", "push", src3.to_str().unwrap(), &t3]);
    {
        // Find the wasm blob: the only blob of the registry whose size is the component's.
        let size = std::fs::metadata(src3.join("plugin.wasm")).unwrap().len();
        let blobs = reg.storage.join("docker/registry/v2/blobs/sha256");
        let mut found = vec![];
        for a in std::fs::read_dir(&blobs).unwrap() {
            for b in std::fs::read_dir(a.unwrap().path()).unwrap() {
                let data = b.unwrap().path().join("data");
                if std::fs::metadata(&data).ok().map(|m| m.len()) == Some(size) && std::fs::read(&data).unwrap() == std::fs::read(src3.join("plugin.wasm")).unwrap() {
                    found.push(data);
                }
            }
        }
        assert_eq!(found.len(), 1, "one blob holds the component");
        let mut bytes = std::fs::read(&found[0]).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&found[0], bytes).unwrap();
    }
    let e = fails(&plugins, &["plugins", "install", &t3]);
    assert!(e.contains("digest") && e.contains("nothing was installed"), "{e}");
    assert!(!plugins.join("tampered").exists());
    assert!(!lock(&plugins).contains_key("tampered"));
    no_leftovers(&plugins);

    // Remove.
    ok(&plugins, &["plugins", "remove", "hello"]);
    assert!(!plugins.join("hello").exists());
    assert!(lock(&plugins).is_empty());
    assert!(!ok(&plugins, &["plugins", "list"]).contains("hello"));
}

/// A bcrypt htpasswd line made by Python's `crypt` (Debian's python3), or `None` to skip.
fn htpasswd(user: &str, password: &str) -> Option<String> {
    let out = Command::new("python3")
        .args(["-W", "ignore", "-c", &format!("import crypt; print('{user}:' + crypt.crypt('{password}', crypt.mksalt(crypt.METHOD_BLOWFISH)))")])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
    line.contains(":$2").then_some(line)
}

#[test]
fn registry_credentials_come_from_the_operator_config() {
    let Some(line) = htpasswd("ci", "s3cret-pass") else {
        println!("SKIPPED: python3's crypt module cannot make a bcrypt password for the registry's htpasswd file");
        return;
    };
    let Some(reg) = Registry::start_with_auth(&line) else { return };
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let src = hello_copy(&work.path().join("src"), "0.1.0", "", "atelier-test-auth");
    let tag = reg.url("private/hello:1");
    let host = tag.trim_start_matches("oci://").split('/').next().unwrap().to_string();

    // No credentials: refused, and the message says where they go.
    let e = fails(&plugins, &["plugins", "push", src.to_str().unwrap(), &tag]);
    assert!(e.contains(&format!("[registries.\"{host}\"]")), "{e}");

    let config = work.path().join("atelier.toml");
    std::fs::write(&config, format!("[registries.\"{host}\"]\nusername = \"ci\"\npassword = \"env:ATELIER_TEST_REGISTRY_PASSWORD\"\n")).unwrap();
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = Command::new(common::bin());
        c.args(args)
            .env("ATELIER_PLUGINS", &plugins)
            .env("ATELIER_CONFIG", &config)
            .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
            .env_remove("ATELIER_TEST_REGISTRY_PASSWORD");
        if let Some(p) = password {
            c.env("ATELIER_TEST_REGISTRY_PASSWORD", p);
        }
        c.output().unwrap()
    };
    // The password's variable unset: the error names it and the section.
    let o = run(&["plugins", "push", src.to_str().unwrap(), &tag], None);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && e.contains("env:ATELIER_TEST_REGISTRY_PASSWORD") && e.contains(&format!("[registries.\"{host}\"]")), "{e}");
    // A wrong password is refused by the registry.
    let o = run(&["plugins", "push", src.to_str().unwrap(), &tag], Some("wrong"));
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // The right one: push and install.
    let o = run(&["plugins", "push", src.to_str().unwrap(), &tag], Some("s3cret-pass"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["plugins", "install", &tag], Some("s3cret-pass"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(plugins.join("hello/plugin.wasm").exists());
    // Without credentials the pinned digest cannot be fetched again either.
    std::fs::remove_dir_all(plugins.join("hello")).unwrap();
    let e = fails(&plugins, &["plugins", "install", "--locked"]);
    assert!(e.contains("wants credentials"), "{e}");
}

/// `sha256:<hex>` with coreutils' sha256sum (the tests crate has no hash of its own for this).
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// Push an artifact of atelier's layout by hand (as a third party's tool might), bypassing the
/// checks `atelier plugins push` makes.
fn raw_push(reg: &Registry, repo: &str, tag: &str, toml: &[u8], wasm: &[u8]) {
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#.to_vec();
    let base = format!("http://127.0.0.1:{}/v2/{repo}", reg.port);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        for blob in [&config[..], toml, wasm] {
            // An upload session, then its one PUT with the digest.
            let r = c.post(format!("{base}/blobs/uploads/")).send().await.unwrap();
            assert_eq!(r.status(), 202, "upload session");
            let mut at = r.headers()["location"].to_str().unwrap().to_string();
            if at.starts_with('/') {
                at = format!("http://127.0.0.1:{}{at}", reg.port);
            }
            let sep = if at.contains('?') { '&' } else { '?' };
            let r = c.put(format!("{at}{sep}digest={}", sha256(blob))).body(blob.to_vec()).send().await.unwrap();
            assert_eq!(r.status(), 201, "blob upload: {}", r.text().await.unwrap());
        }
        let d = |media: &str, b: &[u8]| serde_json::json!({"mediaType": media, "digest": sha256(b), "size": b.len()});
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": d("application/vnd.wasm.config.v0+json", &config),
            "layers": [d("application/wasm", wasm), d("application/vnd.atelier.plugin.manifest.v1+toml", toml)],
        });
        let r = c
            .put(format!("{base}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "manifest: {}", r.text().await.unwrap());
    });
}

#[test]
fn an_artifact_that_would_not_load_is_never_installed() {
    let Some(reg) = Registry::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let src = common::plugin_dirs(&["hello"]).remove(0);
    let toml = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    let wasm = std::fs::read(src.join("plugin.wasm")).unwrap();

    // A contract this host does not speak.
    raw_push(&reg, "bad/contract", "1", toml.replace("contract = \"0.1.0\"", "contract = \"9.9.9\"").replace("contract = \"0.2.0\"", "contract = \"9.9.9\"").as_bytes(), &wasm);
    let e = fails(&plugins, &["plugins", "install", &reg.url("bad/contract:1")]);
    assert!(e.contains("not installed") && e.contains("contract 9.9.9"), "{e}");
    // A component that is not one.
    raw_push(&reg, "bad/component", "1", toml.as_bytes(), b"\0asm not really a component");
    let e = fails(&plugins, &["plugins", "install", &reg.url("bad/component:1")]);
    assert!(e.contains("not installed"), "{e}");
    // A manifest that does not parse.
    raw_push(&reg, "bad/manifest", "1", b"id = \"Bad Id\"\n", &wasm);
    let e = fails(&plugins, &["plugins", "install", &reg.url("bad/manifest:1")]);
    assert!(e.contains("plugin.toml does not read"), "{e}");
    // A component path that leaves the plugin's directory.
    raw_push(&reg, "bad/path", "1", format!("component = \"../../escape.wasm\"\n{toml}").as_bytes(), &wasm);
    let e = fails(&plugins, &["plugins", "install", &reg.url("bad/path:1")]);
    assert!(e.contains("a distributed plugin's component is a file beside plugin.toml"), "{e}");
    assert!(!work.path().join("escape.wasm").exists());

    // Nothing of any of them is left: no plugin, no lock entry, no staging directory.
    let left: Vec<_> = std::fs::read_dir(&plugins).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| n != ".atelier-lock.flock").collect();
    assert!(left.is_empty(), "{left:?}");
    // The same layout with the right files installs.
    raw_push(&reg, "good/hello", "1", toml.as_bytes(), &wasm);
    let out = ok(&plugins, &["plugins", "install", &reg.url("good/hello:1")]);
    assert!(out.contains("installed hello "), "{out}");
}
