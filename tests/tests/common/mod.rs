//! Running the real `atelier` binary against the components built for this test run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/test-plugins/<id>` for each id.
pub fn plugin_dirs(ids: &[&str]) -> Vec<PathBuf> {
    ids.iter().map(|id| Path::new(env!("ATELIER_TEST_PLUGINS")).join(id)).collect()
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `target/debug/atelier`, built by `cargo test --workspace` (the host package has an integration test).
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("atelier");
    assert!(bin.exists(), "{} is missing: run `cargo test --workspace` (or `cargo build -p atelier`) first", bin.display());
    bin
}

/// A sandbox for one test: its own state dir and output dir, shared compile cache.
pub struct Env {
    /// Temp dir.
    pub dir: tempfile::TempDir,
    /// Plugin dirs passed with --plugins.
    pub plugins: Vec<PathBuf>,
    /// Extra env vars.
    pub envs: Vec<(String, String)>,
    /// Config file, if any.
    pub config: Option<PathBuf>,
}

impl Env {
    /// A fresh environment with these plugins.
    pub fn new(ids: &[&str]) -> Env {
        Env { dir: tempfile::tempdir().unwrap(), plugins: plugin_dirs(ids), envs: vec![], config: None }
    }

    /// Write `atelier.toml` into the sandbox and use it.
    pub fn config(&mut self, text: &str) -> &mut Self {
        let p = self.dir.path().join("atelier.toml");
        std::fs::write(&p, text).unwrap();
        self.config = Some(p);
        self
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The command, ready for args.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        let dirs: Vec<String> = self.plugins.iter().map(|p| p.display().to_string()).collect();
        c.env("ATELIER_PLUGINS", dirs.join(":"))
            .env("ATELIER_CACHE_DIR", root().join("target/test-cache"))
            .env("ATELIER_STATE_DIR", self.path("state"))
            .env_remove("ATELIER_CONFIG")
            .env_remove("GEMINI_API_KEY");
        if let Some(cfg) = &self.config {
            c.env("ATELIER_CONFIG", cfg);
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Run with args and wait.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run, expect success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "atelier {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run, expect failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "atelier {args:?} should have failed:\n{}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8(o.stderr).unwrap()
    }
}

/// An example photo, shrunk for debug-speed tests.
pub fn small_photo(dir: &Path, name: &str, max: u32) -> PathBuf {
    let img = image::open(root().join("examples/photos").join(name)).unwrap();
    let small = img.thumbnail(max, max);
    let p = dir.join(name).with_extension("png");
    small.save(&p).unwrap();
    p
}

/// Parse JSON from stdout.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A PNG whose header claims `w`x`h` (with a valid CRC) and whose data is a tiny real image's:
/// a decompression bomb as far as any header check can tell.
pub fn png_claiming(real: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut b = real.to_vec();
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}


/// The provider emulator on a runtime of its own, for tests that drive the CLI as a subprocess.
pub struct Emu {
    /// The running emulator.
    pub emu: atelier_emulator::Emulator,
    _rt: tokio::runtime::Runtime,
}

impl Emu {
    /// Start it on free loopback ports.
    pub fn start() -> Emu {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let emu = rt.block_on(atelier_emulator::Emulator::start()).unwrap();
        Emu { emu, _rt: rt }
    }
    /// Requests with this method whose path contains `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.emu.state.requests().iter().filter(|r| r.method == method && r.path.contains(needle)).count()
    }
    /// Block until the emulator has seen `polls` polls of Veo operations (a job is pending at the
    /// provider), failing the test after `limit_s` seconds.
    pub fn wait_for_operation_polls(&self, polls: usize, limit_s: u64) {
        let t = std::time::Instant::now();
        while self.count("GET", "/operations/") < polls {
            assert!(t.elapsed().as_secs() < limit_s, "no Veo job was polled {polls} times within {limit_s} s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    /// The operator config that points `ids` at the emulator (both listeners granted).
    pub fn config_for(&self, ids: &[&str], extra: &str) -> String {
        let (b, a) = (&self.emu.base_url, &self.emu.alt_url);
        let mut s = String::new();
        for id in ids {
            s.push_str(&format!("[plugins.{id}]\nbase_url = \"{b}\"\nallow_hosts = [\"{b}\", \"{a}\"]\n"));
            if let Some(section) = extra.split("\n---\n").find(|x| x.starts_with(&format!("#{id}\n"))) {
                s.push_str(section.split_once('\n').unwrap().1);
                s.push('\n');
            }
        }
        // BFL polls on the host that took the task (the other listener here), with the key: the
        // operator binds it there by name, as for a regional endpoint. Veo's and Seedream's
        // result stores on that listener get no key (the emulator refuses one as a leak).
        if ids.contains(&"flux-kontext") {
            s.push_str(&format!("[plugins.flux-kontext.secrets]\nBFL_API_KEY = {{ from = \"env:BFL_API_KEY\", hosts = [\"{a}\"] }}\n"));
        }
        // The in-tree engines read their keys from the test's environment: the operator's choice.
        let ids: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
        s.push_str(&format!("[secrets]\nfrom_env = [{}]\n", ids.join(", ")));
        if let Some(global) = extra.split("\n---\n").find(|x| x.starts_with("#global\n")) {
            s = format!("{}\n{s}", global.split_once('\n').unwrap().1);
        }
        s
    }
}
