//! Running the real `atelier` binary against the components built for this test run.

#![allow(dead_code)]

pub mod postgres;
pub mod s3;
pub mod worker;

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
            .env("ATELIER_NO_DEFAULT_PLUGINS", "true")
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


/// An `atelier serve` process, killed when the test ends however it ends.
pub struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    /// Spawn `cmd` (an `atelier serve --listen 127.0.0.1:0 …` command) and wait for the address it
    /// prints; its log is echoed with a `[serve]` prefix.
    pub fn start(mut cmd: Command) -> (Serve, String) {
        use std::io::{BufRead, BufReader};
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("atelier serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                let _ = tx.send(line);
            }
        });
        let server = Serve(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("atelier serve did not say where it listens within 2 minutes"));
            if let Some(rest) = line.split("API on http://").nth(1) {
                return (server, rest.split('/').next().unwrap().to_string());
            }
        }
    }

    /// SIGKILL it now (no cleanup of any kind) and reap it.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// The engines with billed, long-running jobs: CLI arguments, and the emulator paths of their
/// submit and their poll.
pub struct Engine {
    /// Plugin id.
    pub id: &'static str,
    /// Emulator path of its submit.
    pub submit: &'static str,
    /// Emulator path of its poll.
    pub poll: &'static str,
}

/// FLUX Kontext.
pub const FLUX: Engine = Engine { id: "flux-kontext", submit: "/v1/flux-kontext-pro", poll: "/v1/get_result" };
/// Sora 2.
pub const SORA: Engine = Engine { id: "sora-2", submit: "/v1/videos", poll: "/v1/videos/video_" };
/// Veo 3.
pub const VEO: Engine = Engine { id: "veo-3", submit: ":predictLongRunning", poll: "/operations/" };
/// Seedream.
pub const SEEDREAM: Engine = Engine { id: "seedream", submit: "/api/v3/images/generations", poll: "/ark-results/" };

impl Engine {
    /// The CLI arguments that run it on `input` with `prompt` into `out` (`--json`).
    pub fn args(&self, env: &Env, input: &str, prompt: &str, out: &str) -> Vec<String> {
        let out = env.path(out).display().to_string();
        let v: Vec<&str> = match self.id {
            "flux-kontext" | "seedream" => vec!["edit", input, "--prompt", prompt, "--model", self.id, "-o", &out, "--json"],
            "sora-2" => vec!["animate", input, "--prompt", prompt, "--model", "sora-2", "--seconds", "4", "--param", "size=1280x720", "-o", &out, "--json"],
            _ => vec!["animate", input, "--prompt", prompt, "--model", "veo-3", "--seconds", "8", "-o", &out, "--json"],
        };
        v.into_iter().map(String::from).collect()
    }

    /// Run it; wait for the output.
    pub fn run(&self, env: &Env, input: &str, prompt: &str, out: &str) -> std::process::Output {
        let args = self.args(env, input, prompt, out);
        env.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}


/// One multipart part: name, filename (None = a text field), bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// `multipart/form-data` as the OpenAI SDKs send it: (content type, body).
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----atelier-test-boundary-7d9f";
    let mut body = vec![];
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A 64×64 PNG with a gradient (distinct pixels, so a changed byte shows).
pub fn png64() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(64, 64, |x, y| image::Rgba([(x * 4) as u8, (y * 4) as u8, 200, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
