//! A real S3-compatible server for tests: PyPI's `moto[server]` on a free loopback port, started
//! and stopped by the test. `.ci/run` installs it into `target/moto-venv`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How CI installs it (also the message when it is missing there).
pub const INSTALL: &str = "python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]' (.ci/run does this)";

/// Moto checks no signatures, but answers 403 to anonymous reads of privately written objects.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _log: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `moto_server` from `ATELIER_MOTO_SERVER`, the build dir's venv, or PATH (checked to run).
fn find() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("ATELIER_MOTO_SERVER").map(PathBuf::from).into_iter().collect();
    candidates.push(super::root().join("target/moto-venv/bin/moto_server"));
    candidates.push(PathBuf::from("moto_server"));
    candidates.into_iter().find(|c| Command::new(c).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()))
}

impl Moto {
    /// Start it, or `None` (after printing SKIPPED) when moto is not installed outside CI.
    pub fn start() -> Option<Moto> {
        Self::start_inner(false)
    }

    /// Start it checking access keys against its (empty) IAM: every key is unknown.
    pub fn start_checking_keys() -> Option<Moto> {
        Self::start_inner(true)
    }

    fn start_inner(check_keys: bool) -> Option<Moto> {
        let Some(bin) = find() else {
            if std::env::var_os("CI").is_some() {
                panic!("moto_server is not installed; install it with: {INSTALL}");
            }
            println!("SKIPPED: moto_server is not installed; install it with: {INSTALL}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(log.path().join("moto.log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(out.try_clone().unwrap()).stderr(out);
        if check_keys {
            // Moto's switch for authenticating requests after this many unauthenticated ones.
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd.spawn().unwrap();
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), _log: log };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(moto._log.path().join("moto.log")).unwrap_or_default();
            assert!(t.elapsed() < Duration::from_secs(30), "moto_server did not start on 127.0.0.1:{port}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// Create a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {name}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }

    /// An object's bytes, straight from the bucket (None: no such object).
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = reqwest::Client::new().get(format!("{}/{bucket}/{key}", self.endpoint)).header("authorization", AUTH).send().await.unwrap();
        if r.status() == 404 {
            return None;
        }
        assert!(r.status().is_success(), "GET {bucket}/{key}: {}", r.status());
        Some(r.bytes().await.unwrap().to_vec())
    }

    /// Every key in the bucket under `prefix`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let r = reqwest::Client::new().get(format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint)).header("authorization", AUTH).send().await.unwrap();
        let xml = r.text().await.unwrap();
        xml.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>")).map(|(k, _)| k.to_string()).collect()
    }
}
