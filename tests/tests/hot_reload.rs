//! Hot reload in `atelier serve`: a plugin replaced under a running server while a slow job of
//! the old version is in flight. The old job finishes on the old version, a new request gets the
//! new one, `/v1/models` and `/metrics` report the new version and digest, a broken update keeps
//! the running version, and no job is lost or sent twice.

mod common;

use atelier::server::{self, Running, ServeOptions};
use common::Emu;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A 64×36 PNG, the first frame of a video.
fn frame() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(64, 36, |x, y| image::Rgba([(x * 4) as u8, (y * 7) as u8, 120, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `POST /v1/videos` for sora-2, multipart as the OpenAI SDK sends it.
async fn create_video(b: &str, prompt: &str) -> String {
    let boundary = "atelier-reload-boundary";
    let mut body = Vec::new();
    for (name, value) in [("model", "sora-2"), ("prompt", prompt), ("seconds", "8"), ("size", "1280x720")] {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"frame.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend(frame());
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{b}/v1/videos"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn get_json(b: &str, path: &str) -> Value {
    let r = reqwest::get(format!("{b}{path}")).await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn status(b: &str, id: &str) -> Value {
    get_json(b, &format!("/v1/videos/{id}")).await
}

async fn wait_status(b: &str, id: &str, until: &[&str], limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let v = status(b, id).await;
        if until.contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(t.elapsed() < limit, "video {id} still {} after {limit:?}: {v}", v["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// sora-2 as `/v1/models` reports it: (version, digest).
async fn served(b: &str) -> (String, String) {
    let v = get_json(b, "/v1/models").await;
    let m = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "sora-2").unwrap_or_else(|| panic!("no sora-2 in {v}"));
    (m["version"].as_str().unwrap().to_string(), m["digest"].as_str().unwrap().to_string())
}

async fn metrics(b: &str) -> String {
    reqwest::get(format!("{b}/metrics")).await.unwrap().text().await.unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// The version of the plugin that made a finished video, from its provenance.
async fn made_by(b: &str, id: &str) -> String {
    let p = get_json(b, &format!("/v1/atelier/videos/{id}/provenance")).await;
    p["plugin_version"].as_str().unwrap_or_else(|| panic!("no plugin_version in {p}")).to_string()
}

/// A copy of the staged sora-2 with this version; its component carries a custom section named
/// `tag`, so each copy has its own digest.
fn sora_copy(at: &Path, version: &str, tag: &str) {
    let src = common::plugin_dirs(&["sora-2"]).remove(0);
    std::fs::create_dir_all(at).unwrap();
    let toml = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    let toml: Vec<String> = toml.lines().map(|l| if l.starts_with("version") { format!("version = \"{version}\"") } else { l.to_string() }).collect();
    std::fs::write(at.join("plugin.toml"), toml.join("\n")).unwrap();
    let mut wasm = std::fs::read(src.join("plugin.wasm")).unwrap();
    wasm.extend([0u8, (tag.len() + 1) as u8, tag.len() as u8]);
    wasm.extend(tag.as_bytes());
    std::fs::write(at.join("plugin.wasm"), wasm).unwrap();
}

fn sha256_hex_of_len(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn start(plugins: Vec<PathBuf>, config: &str, state: &Path) -> Running {
    let rt = atelier_tests::runtime_over(plugins, config, atelier_tests::cache_dir());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::start(rt, listener, ServeOptions { state_dir: state.to_path_buf(), insecure_no_auth: true }).await.unwrap()
}

#[test]
fn a_plugin_replaced_under_a_running_server_serves_new_requests_while_old_jobs_finish_on_the_old_version() {
    let emu = Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        sora_copy(&plugins.join("sora-2"), "1.0.0-old", "atelier-reload-old");
        std::fs::write(dir.path().join("openai.key"), "emu-openai-key").unwrap();
        let config = format!("{}[plugins.sora-2.secrets]\nOPENAI_API_KEY = \"file:{}\"\n", emu.config_for(&["sora-2"], ""), dir.path().join("openai.key").display());
        let filters = common::plugin_dirs(&["filters"]).remove(0);
        let srv = start(vec![plugins.clone(), filters], &config, &dir.path().join("state")).await;
        let b = format!("http://{}", srv.addr);

        let (v0, d0) = served(&b).await;
        assert_eq!(v0, "1.0.0-old");
        assert!(sha256_hex_of_len(&d0), "{d0}");
        let m = metrics(&b).await;
        assert!(m.contains(&format!("atelier_plugin_info{{id=\"sora-2\",kind=\"model\",version=\"1.0.0-old\",digest=\"{d0}\"}} 1")), "{m}");

        // A slow job of the old version: the provider finishes it on its 40th poll (~6 s).
        let old = create_video(&b, "a slow pan [fault:slow:40]").await;
        wait_status(&b, &old, &["in_progress"], Duration::from_secs(60)).await;

        // The operator replaces the plugin: the new build beside it, then renamed into place.
        let staged = dir.path().join("new-sora");
        sora_copy(&staged, "2.0.0-new", "atelier-reload-new");
        std::fs::rename(plugins.join("sora-2"), dir.path().join("retired-sora")).unwrap();
        std::fs::rename(&staged, plugins.join("sora-2")).unwrap();

        // The server picks it up by itself (compiled and checked first).
        let t = Instant::now();
        let (v1, d1) = loop {
            let (v, d) = served(&b).await;
            if v == "2.0.0-new" {
                break (v, d);
            }
            assert!(t.elapsed() < Duration::from_secs(120), "the server still serves {v} after {:?}", t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_ne!(d1, d0, "a new component, a new digest");
        assert_eq!(v1, "2.0.0-new");
        let m = metrics(&b).await;
        assert!(m.contains(&format!("version=\"2.0.0-new\",digest=\"{d1}\"")), "{m}");
        assert!(!m.contains("1.0.0-old"), "{m}");
        assert_eq!(status(&b, &old).await["status"], "in_progress", "the old job is still running when the new version is served");

        // A new request gets the new version; the old job finishes on the version that took it.
        let new = create_video(&b, "a quick zoom").await;
        let done_new = wait_status(&b, &new, &["completed", "failed"], Duration::from_secs(120)).await;
        assert_eq!(done_new["status"], "completed", "{done_new}");
        let done_old = wait_status(&b, &old, &["completed", "failed"], Duration::from_secs(120)).await;
        assert_eq!(done_old["status"], "completed", "{done_old}");
        assert_eq!(made_by(&b, &old).await, "1.0.0-old");
        assert_eq!(made_by(&b, &new).await, "2.0.0-new");
        assert_eq!(emu.count("POST", "/v1/videos"), 2, "each video submitted exactly once across the reload");
        let listed = get_json(&b, "/v1/videos").await;
        assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");

        // A broken update (a contract this host does not speak) is refused: 2.0.0 keeps serving.
        let refused_before = metric(&metrics(&b).await, "atelier_plugin_reload_refusals_total");
        let toml = std::fs::read_to_string(plugins.join("sora-2/plugin.toml")).unwrap();
        std::fs::write(plugins.join("sora-2/plugin.toml"), toml.replace("version = \"2.0.0-new\"", "version = \"3.0.0-broken\"").replace("contract = \"0.1.0\"", "contract = \"9.9.9\"").replace("contract = \"0.2.0\"", "contract = \"9.9.9\"")).unwrap();
        let t = Instant::now();
        while metric(&metrics(&b).await, "atelier_plugin_reload_refusals_total") == refused_before {
            assert!(t.elapsed() < Duration::from_secs(60), "no reload refused the broken update");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(served(&b).await, (v1.clone(), d1.clone()), "the running version stays");
        let again = create_video(&b, "one more").await;
        assert_eq!(wait_status(&b, &again, &["completed", "failed"], Duration::from_secs(120)).await["status"], "completed");
        assert_eq!(made_by(&b, &again).await, "2.0.0-new");

        // Removing the plugin takes it out of /v1/models.
        std::fs::rename(plugins.join("sora-2"), dir.path().join("gone-sora")).unwrap();
        let t = Instant::now();
        loop {
            let v = get_json(&b, "/v1/models").await;
            if !v["data"].as_array().unwrap().iter().any(|m| m["id"] == "sora-2") {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "sora-2 still listed after removal: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        srv.stop().await;
    });
}

/// `atelier serve` as a process: SIGHUP reloads (the counter in /metrics moves, the process lives)
/// and a plugin added to its directory is served without a restart.
#[test]
fn serve_reloads_on_sighup_and_serves_a_plugin_added_while_it_runs() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(common::bin())
            .args(["serve", "--insecure-no-auth", "--listen", &format!("127.0.0.1:{port}")])
            .env("ATELIER_PLUGINS", &plugins)
            .env("ATELIER_CACHE_DIR", atelier_tests::cache_dir())
            .env("ATELIER_STATE_DIR", dir.path().join("state"))
            .env_remove("ATELIER_CONFIG")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        /// Kills the server however the test ends.
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let server = Kill(child);
        let pid = server.0.id();
        let b = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while reqwest::get(format!("{b}/healthz")).await.is_err() {
            assert!(t.elapsed() < Duration::from_secs(60), "atelier serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = metric(&metrics(&b).await, "atelier_plugin_reloads_total");
        let hup = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
        assert!(hup.success());
        let t = Instant::now();
        while metric(&metrics(&b).await, "atelier_plugin_reloads_total") == before {
            assert!(t.elapsed() < Duration::from_secs(30), "SIGHUP did not reload");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(reqwest::get(format!("{b}/healthz")).await.is_ok(), "the server lives on after SIGHUP");

        // A plugin copied in is served, with its version and digest.
        let staged = dir.path().join("hello-staged");
        std::fs::create_dir(&staged).unwrap();
        let src = common::plugin_dirs(&["hello"]).remove(0);
        for f in ["plugin.toml", "plugin.wasm"] {
            std::fs::copy(src.join(f), staged.join(f)).unwrap();
        }
        std::fs::rename(&staged, plugins.join("hello")).unwrap();
        let t = Instant::now();
        let hello = loop {
            let v = get_json(&b, "/v1/models").await;
            if let Some(m) = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "hello") {
                break m.clone();
            }
            assert!(t.elapsed() < Duration::from_secs(60), "hello not served after being added: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(hello["version"], "0.2.0", "the in-tree hello's version (plugins/hello/plugin.toml)");
        assert!(sha256_hex_of_len(hello["digest"].as_str().unwrap()), "{hello}");
        drop(server);
    });
}
