//! `[storage] url = "s3://bucket/prefix"` against a real S3-compatible server (moto, on a free
//! loopback port): video content and `url` results go to the bucket and are served back from it
//! byte for byte, big artifacts go up in parts and stream back, a missing bucket stops
//! `atelier serve` (and shows in `atelier doctor`) naming the line to fix; without `[storage]`,
//! video content stays a file under the state dir.
//!
//! Without moto the tests print SKIPPED (with CI set they fail with the install command).

mod common;

use atelier::server::{self, Running, ServeOptions};
use atelier::settings::{SecretSource, StorageSettings};
use atelier::storage::{ArtifactStore, SINGLE_PUT_MAX};
use common::s3::Moto;
use common::{Emu, Part, multipart};
use futures_util::StreamExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALICE: &str = "alice-token-0123456789abcdef";

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `[server]` tokens plus `[storage]` on the bucket, credentials in files (moto takes any).
fn config(dir: &Path, moto: &Moto, bucket: &str) -> String {
    std::fs::write(dir.join("alice.token"), ALICE).unwrap();
    std::fs::write(dir.join("s3.id"), "atelier-test-key\n").unwrap();
    std::fs::write(dir.join("s3.secret"), "atelier-test-secret\n").unwrap();
    format!(
        "[server]\ntokens = {{ alice = \"file:{}\" }}\n[storage]\nurl = \"s3://{bucket}/prod\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"file:{}\"\nsecret_access_key = \"file:{}\"\n",
        dir.join("alice.token").display(),
        moto.endpoint,
        dir.join("s3.id").display(),
        dir.join("s3.secret").display()
    )
}

async fn start(plugins: &[&str], config: &str, state: &Path) -> anyhow::Result<Running> {
    let dirs: Vec<PathBuf> = plugins.iter().map(|p| atelier_tests::plugins_dir().join(p)).collect();
    let rt = atelier_tests::runtime_over(dirs, config, atelier_tests::cache_dir());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::start(rt, listener, ServeOptions { state_dir: state.to_path_buf(), insecure_no_auth: false }).await
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 120, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn post_form(base: &str, path: &str, parts: &[Part<'_>]) -> (u16, Value) {
    let (ct, body) = multipart(parts);
    let r = reqwest::Client::new().post(format!("{base}{path}")).header("content-type", ct).body(body).bearer_auth(ALICE).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).bearer_auth(ALICE).send().await.unwrap()
}

/// Make one sora-2 video on the emulator through the server; its id once completed.
async fn make_video(b: &str) -> String {
    let frame = png(64, 36);
    let (s, v) = post_form(b, "/v1/videos", &[("model", None, b"sora-2"), ("prompt", None, b"the cup spins"), ("input_reference", Some("frame.png"), &frame)]).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    loop {
        let v: Value = get(&format!("{b}/v1/videos/{id}")).await.json().await.unwrap();
        if matches!(v["status"].as_str(), Some("completed" | "failed")) {
            assert_eq!(v["status"], "completed", "{v}");
            return id;
        }
        assert!(t.elapsed() < Duration::from_secs(180), "video still {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator config for sora-2 on the emulator (key in a file) after `base`.
fn sora(emu: &Emu, dir: &Path, base: &str) -> String {
    std::fs::write(dir.join("openai.key"), "emu-openai-key").unwrap();
    format!("{base}{}[plugins.sora-2.secrets]\nOPENAI_API_KEY = \"file:{}\"\n", emu.config_for(&["sora-2"], ""), dir.join("openai.key").display())
}

#[test]
fn without_storage_video_content_stays_under_the_state_dir() {
    let emu = Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alice.token"), ALICE).unwrap();
        let base = format!("[server]\ntokens = {{ alice = \"file:{}\" }}\n", dir.path().join("alice.token").display());
        let state = dir.path().join("state");
        let srv = start(&["sora-2", "filters"], &sora(&emu, dir.path(), &base), &state).await.unwrap();
        let b = format!("http://{}", srv.addr);
        let id = make_video(&b).await;
        let on_disk = std::fs::read(state.join("server/videos").join(&id).join("video.mp4")).expect("the video is a file under the state dir");
        let r = get(&format!("{b}/v1/videos/{id}/content")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"].to_str().unwrap(), on_disk.len().to_string());
        assert!(r.bytes().await.unwrap()[..] == on_disk[..], "served byte for byte from the file");
        srv.stop().await;
    });
}

#[test]
fn video_content_is_stored_in_the_bucket_and_served_back_byte_identical() {
    let Some(moto) = Moto::start() else { return };
    let emu = Emu::start();
    tokio_rt().block_on(async {
        moto.create_bucket("atelier-videos").await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = sora(&emu, dir.path(), &config(dir.path(), &moto, "atelier-videos"));
        let state = dir.path().join("state");
        let srv = start(&["sora-2", "filters"], &cfg, &state).await.unwrap();
        let b = format!("http://{}", srv.addr);
        let id = make_video(&b).await;

        // In the bucket under the prefix, and no longer on the front end's disk.
        let keys = moto.keys("atelier-videos", &format!("prod/videos/{id}/")).await;
        assert_eq!(keys.len(), 1, "one object for the video: {keys:?}");
        let stored = moto.object("atelier-videos", &keys[0]).await.unwrap();
        assert_eq!(&stored[4..8], b"ftyp", "an MP4 in the bucket");
        let name = keys[0].rsplit('/').next().unwrap();
        assert!(!state.join("server/videos").join(&id).join(name).exists(), "the front end keeps no copy of {name}");

        let r = get(&format!("{b}/v1/videos/{id}/content")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "video/mp4");
        let length: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let served = r.bytes().await.unwrap();
        assert_eq!(served.len(), length);
        assert!(served[..] == stored[..], "served byte for byte from the bucket");

        // DELETE removes it from the bucket too.
        let r = reqwest::Client::new().delete(format!("{b}/v1/videos/{id}")).bearer_auth(ALICE).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(moto.keys("atelier-videos", &format!("prod/videos/{id}/")).await.is_empty(), "DELETE removes the content from the bucket");
        assert!(moto.keys("atelier-videos", "prod/.atelier-probe/").await.is_empty(), "the start-up probe leaves nothing behind");
        srv.stop().await;
    });
}

#[test]
fn url_results_are_served_from_the_bucket() {
    let Some(moto) = Moto::start() else { return };
    tokio_rt().block_on(async {
        moto.create_bucket("atelier-images").await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let srv = start(&["classic"], &config(dir.path(), &moto, "atelier-images"), &state).await.unwrap();
        let b = format!("http://{}", srv.addr);
        let input = png(48, 32);
        let (s, v) = post_form(&b, "/v1/images/edits", &[
            ("image", Some("a.png"), &input),
            ("prompt", None, b"sepia"),
            ("model", None, b"classic"),
            ("response_format", None, b"url"),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        let url = v["data"][0]["url"].as_str().unwrap().to_string();
        let (request, name) = {
            let mut it = url.rsplit('/');
            let name = it.next().unwrap().to_string();
            (it.next().unwrap().to_string(), name)
        };
        let stored = moto.object("atelier-images", &format!("prod/images/{request}/out/{name}")).await.expect("the result is in the bucket");
        // The request's scratch folder is gone: the bucket is what serves it.
        let t = Instant::now();
        while state.join("server/images").join(&request).exists() {
            assert!(t.elapsed() < Duration::from_secs(10), "the scratch folder stays");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        let served = r.bytes().await.unwrap();
        assert!(served[..] == stored[..], "served byte for byte from the bucket");
        assert_eq!(image::load_from_memory(&served).unwrap().width(), 48);
        assert_eq!(reqwest::get(format!("{url}x")).await.unwrap().status(), 404);
        srv.stop().await;
    });
}

#[test]
fn a_missing_bucket_is_refused_at_start_naming_the_line() {
    let Some(moto) = Moto::start() else { return };
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &moto, "no-such-bucket");
        let e = start(&["classic"], &cfg, &dir.path().join("state")).await.err().expect("a missing bucket stops the start");
        let e = format!("{e:#}");
        let line = cfg.lines().position(|l| l.starts_with("url =")).unwrap() + 1;
        assert!(e.contains(&format!("atelier.toml:{line}")) && e.contains("[storage]"), "names the url line: {e}");
        assert!(e.contains("bucket does not exist"), "says what is wrong: {e}");
        assert!(!dir.path().join("state/server/videos").exists() || std::fs::read_dir(dir.path().join("state/server/videos")).unwrap().next().is_none());

        // `atelier doctor` reports the same.
        let mut env = common::Env::new(&["classic"]);
        env.config(&cfg);
        let out = env.run(&["doctor"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "doctor fails: {text}");
        assert!(text.contains("problem:") && text.contains("bucket does not exist") && text.contains(&format!(":{line}")), "{text}");
        // And a good bucket is reported as where artifacts go.
        moto.create_bucket("no-such-bucket").await;
        let out = env.run(&["doctor"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("storage: artifacts go to s3://no-such-bucket/prod at {}", moto.endpoint)), "{text}");
    });
}

#[test]
fn refused_credentials_stop_the_start_naming_the_key_line() {
    let Some(moto) = Moto::start_checking_keys() else { return };
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &moto, "atelier-creds");
        let e = start(&["classic"], &cfg, &dir.path().join("state")).await.err().expect("unknown credentials stop the start");
        let e = format!("{e:#}");
        let line = cfg.lines().position(|l| l.starts_with("access_key_id =")).unwrap() + 1;
        assert!(e.contains(&format!("atelier.toml:{line}")) && e.contains("refused the credentials"), "names the access_key_id line: {e}");
        assert!(!e.contains("atelier-test-secret"), "the secret is never shown: {e}");
    });
}

#[test]
fn big_artifacts_go_up_in_parts_stream_back_and_are_never_replaced() {
    let Some(moto) = Moto::start() else { return };
    tokio_rt().block_on(async {
        moto.create_bucket("atelier-big").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), "k").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let settings = StorageSettings {
            url: Some("s3://atelier-big/p".into()),
            endpoint: Some(moto.endpoint.clone()),
            access_key_id: Some(SecretSource::File(dir.path().join("id"))),
            secret_access_key: Some(SecretSource::File(dir.path().join("secret"))),
            ..Default::default()
        };
        let store = ArtifactStore::open(&settings, dir.path()).unwrap();
        store.check().await.unwrap();
        // Past the single-put size: multipart, 8 MiB parts.
        let size = SINGLE_PUT_MAX as usize + (5 << 20) + 123;
        let big: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let file = dir.path().join("big.mp4");
        std::fs::write(&file, &big).unwrap();
        assert_eq!(store.publish("videos/v/big.mp4", &file).await.unwrap(), size as u64);
        assert!(moto.object("atelier-big", "p/videos/v/big.mp4").await.unwrap() == big);
        let a = store.read("videos/v/big.mp4").await.unwrap().unwrap();
        assert_eq!(a.size, size as u64);
        let (mut n, mut chunks, mut same) = (0usize, 0, true);
        let mut s = a.stream;
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            same &= c[..] == big[n..n + c.len()];
            n += c.len();
            chunks += 1;
        }
        assert!(same && n == size, "streamed back whole and equal");
        assert!(chunks > 1, "in chunks, not one buffer");
        // Published again (a restart after the upload): done already. A different file: refused.
        store.publish("videos/v/big.mp4", &file).await.unwrap();
        let small = dir.path().join("small.png");
        std::fs::write(&small, b"not the same").unwrap();
        let e = store.publish("videos/v/big.mp4", &small).await.unwrap_err();
        assert!(format!("{e:#}").contains("not replaced"), "{e:#}");
        // Small ones go up in one create-only put (If-None-Match: *).
        store.publish("images/r/out/a.png", &small).await.unwrap();
        assert_eq!(moto.object("atelier-big", "p/images/r/out/a.png").await.unwrap(), b"not the same");
        assert_eq!(store.delete_under("videos/v").await.unwrap(), 1);
        assert!(moto.keys("atelier-big", "p/videos/").await.is_empty());
    });
}
