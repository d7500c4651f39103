//! `atelier serve` end to end, in process: a real listener on 127.0.0.1:0, the real plugin
//! components, OpenAI's wire shapes (multipart built by hand, exactly as the SDKs send it), bearer
//! tokens, and video jobs against the provider emulator, including a restart mid-job.

mod common;

use atelier::server::{self, Running, ServeOptions};
use base64::Engine;
use common::{Emu, Part, multipart};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef0000";

/// A multi-thread runtime per test: the pipeline's finishing step needs `block_in_place`, and the
/// emulator must be started outside any runtime.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `[server]` with alice's and bob's tokens in files under `dir`.
fn auth_config(dir: &Path) -> String {
    std::fs::write(dir.join("alice.token"), format!("{ALICE}\n")).unwrap();
    std::fs::write(dir.join("bob.token"), BOB).unwrap();
    format!(
        "[server]\ntokens = {{ alice = \"file:{}\", bob = \"file:{}\" }}\n",
        dir.join("alice.token").display(),
        dir.join("bob.token").display()
    )
}

async fn start(plugins: &[&str], config: &str, state: &Path) -> anyhow::Result<Running> {
    start_with(plugins, config, state, "127.0.0.1:0", false).await
}

async fn start_with(plugins: &[&str], config: &str, state: &Path, addr: &str, insecure: bool) -> anyhow::Result<Running> {
    let dirs: Vec<PathBuf> = plugins.iter().map(|p| atelier_tests::plugins_dir().join(p)).collect();
    let rt = atelier_tests::runtime_over(dirs, config, atelier_tests::cache_dir());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    server::start(rt, listener, ServeOptions { state_dir: state.to_path_buf(), insecure_no_auth: insecure }).await
}

fn base(r: &Running) -> String {
    format!("http://{}", r.addr)
}

/// A w×h PNG with a gradient, so any real edit changes pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 120, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}


async fn post_form(base: &str, token: Option<&str>, path: &str, parts: &[Part<'_>]) -> (u16, Value) {
    let (ct, body) = multipart(parts);
    let mut req = reqwest::Client::new().post(format!("{base}{path}")).header("content-type", ct).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

async fn post_json(base: &str, token: Option<&str>, path: &str, v: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{base}{path}")).json(v);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(base: &str, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn get_json(base: &str, token: Option<&str>, path: &str) -> (u16, Value) {
    let r = get(base, token, path).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

fn decode_b64(s: &str) -> image::RgbaImage {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap().into_rgba8()
}

/// An OpenAI error envelope with this status; returns the message.
fn expect_error(status: u16, v: &Value, want: u16, param: Option<&str>) -> String {
    assert_eq!(status, want, "{v}");
    let e = &v["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "not an OpenAI error envelope: {v}");
    assert!(e.as_object().unwrap().contains_key("param") && e.as_object().unwrap().contains_key("code"), "{v}");
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{v}");
    }
    e["message"].as_str().unwrap().to_string()
}

#[test]
fn image_edits_with_classic_b64_n2_url_models_health_and_metrics() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&["classic"], &auth_config(dir.path()), &dir.path().join("state")).await.unwrap();
        let b = base(&srv);
        let input = png(48, 32);
        let original = image::load_from_memory(&input).unwrap().into_rgba8();

        // One edit, multipart with `image`, an atelier extra (`seed`) and a model parameter (`levels`).
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[
            ("image", Some("a.png"), &input),
            ("prompt", None, b"posterize"),
            ("model", None, b"classic"),
            ("seed", None, b"7"),
            ("levels", None, b"3"),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 1);
        let out = decode_b64(data[0]["b64_json"].as_str().unwrap());
        assert_eq!(out.dimensions(), (48, 32));
        assert_ne!(out.as_raw(), original.as_raw(), "the edit changed pixels");
        let colours: std::collections::HashSet<[u8; 4]> = out.pixels().map(|p| p.0).collect();
        assert!(colours.len() <= 27, "levels=3 posterize gives at most 3^3 colours, got {}", colours.len());

        // n=2 with the SDK's `image[]` naming: two different images.
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[
            ("image[]", Some("a.png"), &input),
            ("prompt", None, b"vintage film grain"),
            ("model", None, b"classic"),
            ("n", None, b"2"),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        let (x, y) = (decode_b64(data[0]["b64_json"].as_str().unwrap()), decode_b64(data[1]["b64_json"].as_str().unwrap()));
        assert_eq!(x.dimensions(), (48, 32));
        assert_ne!(x.as_raw(), y.as_raw(), "two outputs, two seeds");

        // response_format=url: a plain GET (no token, like OpenAI's signed URLs) fetches the PNG.
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[
            ("image", Some("a.png"), &input),
            ("prompt", None, b"make it look drawn"),
            ("model", None, b"classic"),
            // `style` is an OpenAI (dall-e-3) field too; classic declares it, so it reaches classic.
            ("style", None, b"sketch"),
            ("response_format", None, b"url"),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        let url = v["data"][0]["url"].as_str().unwrap();
        assert!(url.starts_with(&b), "{url}");
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        let png = r.bytes().await.unwrap();
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (48, 32));
        // The result keeps its provenance, minus the server's own paths.
        let prov: serde_json::Value = serde_json::from_str(&atelier::imageio::read_png_provenance(&png).expect("provenance")).unwrap();
        assert_eq!(prov["prompt"], "make it look drawn", "{prov}");
        assert_eq!(prov["inputs"][0]["path"], "in-01.png", "{prov}");
        assert!(!prov.to_string().contains(&dir.path().display().to_string()), "server paths leak: {prov}");
        let (s, _) = get_json(&b, None, &format!("{}/x", url.rsplit_once('/').unwrap().0.replace(&b, ""))).await;
        assert_eq!(s, 404, "a name that is not a result is not served");

        // b64 answers leave nothing behind; url answers stay for their hour.
        let kept = std::fs::read_dir(dir.path().join("state/server/images")).unwrap().count();
        assert_eq!(kept, 1, "only the url request's folder is kept");

        // Models, health and metrics.
        let (s, v) = get_json(&b, Some(BOB), "/v1/models").await;
        assert_eq!(s, 200);
        assert_eq!(v["object"], "list");
        let m = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "classic").unwrap().clone();
        assert_eq!((m["object"].as_str(), m["owned_by"].as_str()), (Some("model"), Some("atelier:classic")));
        assert!(m["created"].is_u64());
        let (s, v) = get_json(&b, Some(BOB), "/v1/models/nope").await;
        expect_error(s, &v, 404, None);
        let h = get(&b, None, "/healthz").await;
        assert_eq!(h.status(), 200);
        assert_eq!(h.text().await.unwrap(), "ok\nplugins: 1\n");
        let m = get(&b, None, "/metrics").await.text().await.unwrap();
        assert!(m.contains("atelier_http_requests_total{method=\"POST\",route=\"/v1/images/edits\",status=\"200\"} 3"), "{m}");
        assert!(m.contains("atelier_jobs{state=\"done\"} 3"), "one job per request (classic makes up to 16 per call): {m}");
        assert!(m.contains("atelier_http_requests_in_flight 0"), "{m}");
        srv.stop().await;
    });
}

#[test]
fn auth_generation_refusal_and_bad_input_name_the_field() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{}max_body_mb = 1\n[limits]\nmax_pixels = 2000\n", auth_config(dir.path()));
        let srv = start(&["classic"], &config, &dir.path().join("state")).await.unwrap();
        let b = base(&srv);
        let input = png(48, 32);
        let good: Vec<Part> = vec![("image", Some("a.png"), &input), ("prompt", None, b"sepia"), ("model", None, b"classic")];

        // Auth: none, malformed, wrong → 401 in the envelope.
        let (s, v) = post_form(&b, None, "/v1/images/edits", &good).await;
        assert!(expect_error(s, &v, 401, None).contains("Bearer"));
        let (s, v) = post_form(&b, Some("not-a-real-token-at-all"), "/v1/images/edits", &good).await;
        expect_error(s, &v, 401, None);
        assert_eq!(v["error"]["code"], "invalid_api_key");

        // Generations: classic needs an input image; the 400 says so and which models can.
        let (s, v) = post_json(&b, Some(ALICE), "/v1/images/generations", &json!({"prompt": "a cat", "model": "classic"})).await;
        let m = expect_error(s, &v, 400, Some("model"));
        assert!(m.contains("needs an input image") && m.contains("/v1/images/edits") && m.contains("Models here that can: none"), "{m}");

        // Missing prompt, not an image, unknown field, unsupported OpenAI value, bad n.
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("image", Some("a.png"), &input), ("model", None, b"classic")]).await;
        assert!(expect_error(s, &v, 400, Some("prompt")).contains("required"));
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("image", Some("a.png"), b"hello, not a picture"), ("prompt", None, b"x"), ("model", None, b"classic")]).await;
        assert!(expect_error(s, &v, 400, Some("image")).contains("PNG, JPEG, WebP or GIF"));
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("prompt", None, b"x"), ("model", None, b"classic")]).await;
        assert!(expect_error(s, &v, 400, Some("image")).contains("`image` is required"));
        // A readable header over broken pixel data: refused by its field when decoded (once, at the
        // request's turn; the pipeline takes those pixels).
        let mut broken = input.clone();
        let idat = broken.windows(4).position(|w| w == b"IDAT").unwrap() + 4;
        broken[idat..idat + 24].fill(0xA5);
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("image", Some("a.png"), &broken), ("prompt", None, b"x"), ("model", None, b"classic")]).await;
        assert!(expect_error(s, &v, 400, Some("image")).contains("`image`"), "{v}");
        let mut extra = good.clone();
        extra.push(("levles", None, b"3"));
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &extra).await;
        let m = expect_error(s, &v, 400, Some("levles"));
        assert!(m.contains("`levles`") && m.contains("levels"), "the message lists the model's parameters: {m}");
        let mut extra = good.clone();
        extra.push(("quality", None, b"high"));
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &extra).await;
        assert!(expect_error(s, &v, 400, Some("quality")).contains("omit `quality`"));
        let mut extra = good.clone();
        extra.push(("n", None, b"11"));
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &extra).await;
        assert!(expect_error(s, &v, 400, Some("n")).contains("1 to 10"));

        // Oversize: pixels over [limits] max_pixels (before decoding), then a body over max_body_mb.
        let big = png(60, 40);
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("image", Some("a.png"), &big), ("prompt", None, b"x"), ("model", None, b"classic")]).await;
        assert!(expect_error(s, &v, 413, Some("image")).contains("max_pixels"));
        let huge = vec![7u8; 3 << 20];
        let (s, v) = post_form(&b, Some(ALICE), "/v1/images/edits", &[("image", Some("a.png"), &huge), ("prompt", None, b"x")]).await;
        assert!(expect_error(s, &v, 413, None).contains("max_body_mb"));
        srv.stop().await;

        // No tokens: refuses to start, naming the line to add; --insecure-no-auth is loopback only.
        let e = start(&["classic"], "", &dir.path().join("s2")).await.err().unwrap().to_string();
        assert!(e.contains("[server]") && e.contains("tokens = {") && e.contains("--insecure-no-auth"), "{e}");
        let e = start_with(&["classic"], "", &dir.path().join("s2"), "0.0.0.0:0", true).await.err().unwrap().to_string();
        assert!(e.contains("loopback"), "{e}");
        let open = start_with(&["classic"], "", &dir.path().join("s2"), "127.0.0.1:0", true).await.unwrap();
        let (s, _) = get_json(&base(&open), None, "/v1/models").await;
        assert_eq!(s, 200);
        open.stop().await;

        // A token source that is unset stops the start with the source named.
        let e = start(&["classic"], "[server]\ntokens = { carol = \"file:/nonexistent/carol\" }\n", &dir.path().join("s3")).await.err().unwrap().to_string();
        assert!(e.contains("carol") && e.contains("file:/nonexistent/carol"), "{e}");
    });
}

/// The operator config for sora-2 on the emulator, with the OpenAI key in a file, plus tokens.
fn sora_config(emu: &Emu, dir: &Path) -> String {
    std::fs::write(dir.join("openai.key"), "emu-openai-key").unwrap();
    format!(
        "{}{}[plugins.sora-2.secrets]\nOPENAI_API_KEY = \"file:{}\"\n",
        auth_config(dir),
        emu.config_for(&["sora-2"], ""),
        dir.join("openai.key").display()
    )
}

async fn create_video(b: &str, prompt: &str) -> Value {
    let frame = png(64, 36);
    let (s, v) = post_form(b, Some(ALICE), "/v1/videos", &[
        ("model", None, b"sora-2"),
        ("prompt", None, prompt.as_bytes()),
        ("seconds", None, b"8"),
        ("size", None, b"1280x720"),
        ("input_reference", Some("frame.png"), &frame),
    ])
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Poll as the SDK does until the status is one of `until`.
async fn poll_until(b: &str, id: &str, until: &[&str], limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let (s, v) = get_json(b, Some(ALICE), &format!("/v1/videos/{id}")).await;
        assert_eq!(s, 200, "{v}");
        if until.contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(t.elapsed() < limit, "video {id} still {} after {limit:?}: {v}", v["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn video_job_against_the_emulator_belongs_to_its_caller() {
    let emu = Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&["sora-2", "filters"], &sora_config(&emu, dir.path()), &dir.path().join("state")).await.unwrap();
        let b = base(&srv);
        let v = create_video(&b, "the cup spins").await;
        assert_eq!(v["object"], "video");
        assert!(matches!(v["status"].as_str(), Some("queued" | "in_progress")), "{v}");
        assert_eq!((v["model"].as_str(), v["seconds"].as_str(), v["size"].as_str()), (Some("sora-2"), Some("8"), Some("1280x720")));
        let id = v["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("video_"));

        // Bob cannot see alice's video, its content, or it in his list.
        let (s, e) = get_json(&b, Some(BOB), &format!("/v1/videos/{id}")).await;
        expect_error(s, &e, 404, None);
        assert_eq!(get(&b, Some(BOB), &format!("/v1/videos/{id}/content")).await.status(), 404);
        let (_, l) = get_json(&b, Some(BOB), "/v1/videos").await;
        assert_eq!(l["data"].as_array().unwrap().len(), 0);

        let done = poll_until(&b, &id, &["completed", "failed"], Duration::from_secs(180)).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["progress"], 100);
        assert!(done["completed_at"].as_u64().unwrap() >= done["created_at"].as_u64().unwrap());
        let r = get(&b, Some(ALICE), &format!("/v1/videos/{id}/content")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "video/mp4");
        let length: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(&bytes[4..8], b"ftyp", "an MP4");
        assert_eq!(bytes.len(), length, "streamed whole");
        let (_, l) = get_json(&b, Some(ALICE), "/v1/videos").await;
        assert_eq!(l["data"][0]["id"], id.as_str());

        // Bad video input: no first frame; a length the model does not take; not ready yet.
        let (s, e) = post_form(&b, Some(ALICE), "/v1/videos", &[("model", None, b"sora-2"), ("prompt", None, b"x")]).await;
        assert!(expect_error(s, &e, 400, Some("input_reference")).contains("first frame"));
        let frame = png(64, 36);
        let (s, e) = post_form(&b, Some(ALICE), "/v1/videos", &[("model", None, b"sora-2"), ("prompt", None, b"x"), ("seconds", None, b"7"), ("input_reference", Some("f.png"), &frame)]).await;
        assert!(expect_error(s, &e, 400, None).contains("seconds"));
        let slow = create_video(&b, "slowly [fault:slow:50]").await;
        let r = get(&b, Some(ALICE), &format!("/v1/videos/{}/content", slow["id"].as_str().unwrap())).await;
        assert_eq!(r.status(), 409);
        let e: Value = r.json().await.unwrap();
        assert!(expect_error(409, &e, 409, None).contains("until status is completed"));
        poll_until(&b, slow["id"].as_str().unwrap(), &["in_progress"], Duration::from_secs(120)).await;
        assert_eq!(emu.count("POST", "/v1/videos"), 2, "two videos made, the refused requests never reached the provider");

        // A video the provider fails ends `failed` with OpenAI's error object.
        let bad = create_video(&b, "spin [fault:failed]").await;
        let v = poll_until(&b, bad["id"].as_str().unwrap(), &["completed", "failed"], Duration::from_secs(120)).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert!(v["error"]["code"].is_string() && v["error"]["message"].as_str().unwrap().contains("failed"), "{v}");
        let r = get(&b, Some(ALICE), &format!("/v1/videos/{}/content", bad["id"].as_str().unwrap())).await;
        assert_eq!(r.status(), 409);

        // Listing, OpenAI's cursor pages. Alice has three, made in this order (most likely within
        // one second, so the order below also checks the tie-break): done, still running, failed.
        let (slow, bad) = (slow["id"].as_str().unwrap().to_string(), bad["id"].as_str().unwrap().to_string());
        let ids = |l: &Value| l["data"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        let page = |q: &str| {
            let (b, q) = (b.clone(), q.to_string());
            async move {
                let (s, l) = get_json(&b, Some(ALICE), &format!("/v1/videos{q}")).await;
                assert_eq!(s, 200, "{q}: {l}");
                assert_eq!(l["object"], "list", "{l}");
                l
            }
        };
        let l = page("").await;
        assert_eq!(ids(&l), [bad.as_str(), slow.as_str(), id.as_str()], "newest first by default");
        assert_eq!(l["has_more"], false);
        let l = page("?limit=2").await;
        assert_eq!(ids(&l), [bad.as_str(), slow.as_str()]);
        assert_eq!((l["first_id"].as_str(), l["last_id"].as_str(), l["has_more"].as_bool()), (Some(bad.as_str()), Some(slow.as_str()), Some(true)), "{l}");
        let l = page(&format!("?limit=2&after={slow}")).await;
        assert_eq!(ids(&l), [id.as_str()], "the rest after the last_id");
        assert_eq!((l["has_more"].as_bool(), l["last_id"].as_str()), (Some(false), Some(id.as_str())), "{l}");
        let l = page("?order=asc&limit=2").await;
        assert_eq!(ids(&l), [id.as_str(), slow.as_str()], "oldest first");
        assert_eq!(l["has_more"], true);
        let l = page(&format!("?order=asc&after={slow}")).await;
        assert_eq!(ids(&l), [bad.as_str()]);
        assert_eq!(l["has_more"], false);
        let l = page("?limit=0").await;
        assert_eq!((ids(&l).len(), l["has_more"].as_bool(), l["first_id"].is_null()), (0, Some(true), true), "{l}");
        // Bob sees none of them, and alice's ids are no cursor for him.
        let (s, l) = get_json(&b, Some(BOB), "/v1/videos?order=asc&limit=100").await;
        assert_eq!((s, ids(&l).len(), l["has_more"].as_bool()), (200, 0, Some(false)), "{l}");
        let (s, e) = get_json(&b, Some(BOB), &format!("/v1/videos?after={slow}")).await;
        assert!(expect_error(s, &e, 400, Some("after")).contains("not one of your videos"));
        // Bad values are 400s naming the field.
        for q in ["limit=101", "limit=-1", "limit=ten", "limit="] {
            let (s, e) = get_json(&b, Some(ALICE), &format!("/v1/videos?{q}")).await;
            assert!(expect_error(s, &e, 400, Some("limit")).contains("0 to 100"), "{q}: {e}");
        }
        let (s, e) = get_json(&b, Some(ALICE), "/v1/videos?order=newest").await;
        assert!(expect_error(s, &e, 400, Some("order")).contains("`asc` or `desc`"));
        let (s, e) = get_json(&b, Some(ALICE), "/v1/videos?limt=2").await;
        assert!(expect_error(s, &e, 400, Some("limt")).contains("`limit`"));

        // Delete. Someone else's is a 404 and stays (deleting one still being made: server_load.rs).
        let delete = |token: &'static str, vid: String| {
            let b = b.clone();
            async move {
                let r = reqwest::Client::new().delete(format!("{b}/v1/videos/{vid}")).bearer_auth(token).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, e) = delete(BOB, id.clone()).await;
        expect_error(s, &e, 404, None);
        assert_eq!(ids(&page("").await), [bad.as_str(), slow.as_str(), id.as_str()]);
        // The finished one's files: the server's copy and the job's downloaded artifact.
        let state = dir.path().join("state");
        let video_dir = state.join("server/videos").join(&id);
        let jobs = atelier::jobs::JobDb::open(&state).unwrap();
        let job = jobs.list(&[]).unwrap().into_iter().find(|j| j.plan.to_string().contains(&id)).expect("the video's job");
        let job_dir = jobs.job_dir(&job.id);
        assert!(video_dir.join("input.png").is_file() && std::fs::read_dir(&job_dir).unwrap().count() > 0, "files to delete");
        let (s, v) = delete(ALICE, id.clone()).await;
        assert_eq!((s, v), (200, json!({"id": id, "object": "video.deleted", "deleted": true})));
        let (s, e) = get_json(&b, Some(ALICE), &format!("/v1/videos/{id}")).await;
        expect_error(s, &e, 404, None);
        assert_eq!(get(&b, Some(ALICE), &format!("/v1/videos/{id}/content")).await.status(), 404);
        assert!(!video_dir.exists() && !job_dir.exists(), "the files are gone");
        assert!(jobs.get(&job.id).unwrap().is_some(), "the job's record stays, as the operator's account of what was billed");
        let (s, e) = delete(ALICE, id.clone()).await;
        expect_error(s, &e, 404, None);
        // A client deleting page by page still pages on from a deleted last_id.
        let l = page(&format!("?order=asc&after={id}")).await;
        assert_eq!(ids(&l), [slow.as_str(), bad.as_str()]);
        let (s, _) = delete(ALICE, bad.clone()).await;
        assert_eq!(s, 200, "a failed video can be deleted too");
        assert_eq!(ids(&page("").await), [slow.as_str()]);
        srv.stop().await;
    });
}

#[test]
fn a_video_survives_a_server_restart_without_being_submitted_again() {
    let emu = Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = sora_config(&emu, dir.path());
        let first = start(&["sora-2", "filters"], &config, &state).await.unwrap();
        let id = create_video(&base(&first), "a slow pan [fault:slow:30]").await["id"].as_str().unwrap().to_string();
        // Accepted by the provider and being polled: now the server goes away.
        poll_until(&base(&first), &id, &["in_progress"], Duration::from_secs(120)).await;
        first.stop().await;
        let polls_at_stop = emu.count("GET", "/v1/videos/");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(emu.count("GET", "/v1/videos/"), polls_at_stop, "a stopped server polls no more");

        let second = start(&["sora-2", "filters"], &config, &state).await.unwrap();
        let b = base(&second);
        let done = poll_until(&b, &id, &["completed", "failed"], Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed", "{done}");
        let r = get(&b, Some(ALICE), &format!("/v1/videos/{id}/content")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[4..8], b"ftyp");
        assert_eq!(emu.count("POST", "/v1/videos"), 1, "resumed by polling, never submitted twice");
        assert!(emu.count("GET", "/v1/videos/") > polls_at_stop, "the new server polled the same video");
        // Still alice's after the restart.
        assert_eq!(get(&b, Some(BOB), &format!("/v1/videos/{id}")).await.status(), 404);
        second.stop().await;
    });
}

#[test]
fn generations_run_on_a_model_that_makes_images_from_a_prompt_alone() {
    let emu = Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ark.key"), "emu-ark-key").unwrap();
        let config = format!(
            "{}{}[plugins.seedream.secrets]\nARK_API_KEY = \"file:{}\"\n",
            auth_config(dir.path()),
            emu.config_for(&["seedream"], ""),
            dir.path().join("ark.key").display()
        );
        let srv = start(&["seedream", "classic"], &config, &dir.path().join("state")).await.unwrap();
        let b = base(&srv);
        // classic is refused, and the answer names seedream, whose prepare() takes no input image.
        let (s, v) = post_json(&b, Some(ALICE), "/v1/images/generations", &json!({"prompt": "a red kite", "model": "classic"})).await;
        assert!(expect_error(s, &v, 400, Some("model")).contains("Models here that can: seedream"), "{v}");
        // With no model named, the only able one is used; `size` reaches seedream as its typed
        // size when seedream lists it (contract 0.2: `sizes` in its describe).
        let (s, v) = post_json(&b, Some(ALICE), "/v1/images/generations", &json!({"prompt": "a red kite over the sea", "size": "1280x720", "seed": 5})).await;
        assert_eq!(s, 200, "{v}");
        let img = decode_b64(v["data"][0]["b64_json"].as_str().unwrap());
        assert_eq!(img.dimensions(), (1280, 720));
        let create = emu.emu.state.requests().into_iter().find(|r| r.method == "POST").unwrap();
        assert!(!create.body.contains("\"image\""), "no reference image was sent: {}", create.body);
        assert!(create.body.contains("1280x720"), "{}", create.body);
        srv.stop().await;
    });
}

#[test]
fn json_edits_with_data_urls_and_an_openai_mask_edit_only_the_transparent_area() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&["classic"], &auth_config(dir.path()), &dir.path().join("state")).await.unwrap();
        let b = base(&srv);
        let input = png(32, 16);
        let original = image::load_from_memory(&input).unwrap().into_rgba8();
        // OpenAI's convention: fully transparent = edit. Left half transparent, right half opaque.
        let mask = image::RgbaImage::from_fn(32, 16, |x, _| image::Rgba([0, 0, 0, if x < 16 { 0 } else { 255 }]));
        let mut m = std::io::Cursor::new(Vec::new());
        mask.write_to(&mut m, image::ImageFormat::Png).unwrap();
        let data = |bytes: &[u8]| format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes));
        let body = json!({
            "model": "classic", "prompt": "black and white", "images": [{"image_url": data(&input)}],
            "mask": {"image_url": data(&m.into_inner())}, "feather": 0, "seed": 1,
        });
        let (s, v) = post_json(&b, Some(ALICE), "/v1/images/edits", &body).await;
        assert_eq!(s, 200, "{v}");
        let out = decode_b64(v["data"][0]["b64_json"].as_str().unwrap());
        let changed = |x0: u32, x1: u32| (x0..x1).flat_map(|x| (0..16).map(move |y| (x, y))).filter(|&(x, y)| out.get_pixel(x, y) != original.get_pixel(x, y)).count();
        assert!(changed(0, 16) > 100, "the transparent half was edited ({} px changed)", changed(0, 16));
        assert_eq!(changed(16, 32), 0, "the opaque half was kept");
        // A remote URL is refused: the server fetches nothing on a caller's behalf.
        let (s, v) = post_json(&b, Some(ALICE), "/v1/images/edits", &json!({"prompt": "x", "model": "classic", "images": [{"image_url": "http://169.254.169.254/x.png"}]})).await;
        assert!(expect_error(s, &v, 400, Some("images")).contains("does not download"));
        srv.stop().await;
    });
}
