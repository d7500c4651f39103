//! `atelier serve` under load (issue 11, items 8–12): half-sent requests time out and the
//! connection cap holds, a burst beyond a model's queue is shed with 429 + Retry-After, the state
//! dir keeps only what `url` results need (and `atelier jobs prune` frees a CLI state dir), a
//! running classic video reports `in_progress` with progress, the bearer scheme's case does not
//! matter, and a client that leaves takes its job with it. Real listener on 127.0.0.1:0, real
//! components.

mod common;

use common::{Part, multipart};

use atelier::server::{self, Running, ServeOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice-token-0123456789abcdef";

/// A multi-thread runtime per test (the pipeline's finishing step needs `block_in_place`).
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `[server]` with alice's token in a file under `dir`, plus `extra` lines.
fn config(dir: &Path, extra: &str) -> String {
    std::fs::write(dir.join("alice.token"), ALICE).unwrap();
    format!("[server]\ntokens = {{ alice = \"file:{}\" }}\n{extra}", dir.join("alice.token").display())
}

async fn start(config: &str, state: &Path) -> Running {
    start_with(&["classic"], config, state).await
}

async fn start_with(plugins: &[&str], config: &str, state: &Path) -> Running {
    let dirs: Vec<PathBuf> = plugins.iter().map(|p| atelier_tests::plugins_dir().join(p)).collect();
    let rt = atelier_tests::runtime_over(dirs, config, atelier_tests::cache_dir());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::start(rt, listener, ServeOptions { state_dir: state.to_path_buf(), insecure_no_auth: false }).await.unwrap()
}

fn base(r: &Running) -> String {
    format!("http://{}", r.addr)
}

/// A w×h PNG with a gradient.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x ^ y) & 0xff) as u8, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}


/// POST a form; status, headers and JSON body.
async fn post_form(base: &str, path: &str, parts: &[Part<'_>]) -> (u16, reqwest::header::HeaderMap, Value) {
    let (ct, body) = multipart(parts);
    let resp = reqwest::Client::new().post(format!("{base}{path}")).header("content-type", ct).bearer_auth(ALICE).body(body).send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

async fn delete(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new().delete(format!("{base}{path}")).bearer_auth(ALICE).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Poll until the video's status is one of `until` (bounded).
async fn poll_until(b: &str, id: &str, until: &[&str]) -> Value {
    let t = Instant::now();
    loop {
        let (s, v) = get_json(b, &format!("/v1/videos/{id}")).await;
        assert_eq!(s, 200, "{v}");
        if until.contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "video {id} still {}: {v}", v["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(ALICE).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// An OpenAI error envelope with this status; returns the message.
fn expect_error(status: u16, v: &Value, want: u16) -> String {
    assert_eq!(status, want, "{v}");
    let e = v["error"].as_object().unwrap_or_else(|| panic!("not an OpenAI error envelope: {v}"));
    assert!(e["message"].is_string() && e["type"].is_string() && e.contains_key("param") && e.contains_key("code"), "{v}");
    e["message"].as_str().unwrap().to_string()
}

/// `GET /healthz` on a fresh connection, with a client-side bound so a hung server fails the test.
async fn healthz(base: &str, within: Duration) -> Result<u16, String> {
    let c = reqwest::Client::builder().timeout(within).pool_max_idle_per_host(0).build().unwrap();
    c.get(format!("{base}/healthz")).send().await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

/// Read until the server closes the connection (or `limit` passes); what it sent, and whether it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn half_sent_requests_are_closed_after_the_timeouts_and_healthz_answers_meanwhile() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&config(dir.path(), "header_timeout_s = 1\nbody_timeout_s = 1\n"), &dir.path().join("state")).await;
        let b = base(&srv);

        // 200 connections stop in the middle of their headers, 20 in the middle of their body.
        let mut heads = vec![];
        for _ in 0..200 {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            s.write_all(b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Ty").await.unwrap();
            heads.push(s);
        }
        let mut bodies = vec![];
        for _ in 0..20 {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            let head = format!("POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"prompt\":");
            s.write_all(head.as_bytes()).await.unwrap();
            bodies.push(s);
        }
        // Meanwhile the server answers.
        assert_eq!(healthz(&b, Duration::from_secs(20)).await, Ok(200));

        // Each half-sent header is closed after header_timeout_s, without an answer worth having.
        for s in heads.iter_mut() {
            let (_, closed) = read_until_closed(s, Duration::from_secs(20)).await;
            assert!(closed, "a connection with half-sent headers was left open");
        }
        // Each half-sent body gets 408 in OpenAI's envelope, then the connection closes.
        for s in bodies.iter_mut() {
            let (got, closed) = read_until_closed(s, Duration::from_secs(20)).await;
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            assert!(text.contains("body_timeout_s") && text.contains("\"request_timeout\""), "{text}");
            assert!(closed, "a connection with a half-sent body was left open");
        }
        // An idle keep-alive connection (a request answered, then nothing) is closed too.
        let mut idle = TcpStream::connect(srv.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (got, closed) = read_until_closed(&mut idle, Duration::from_secs(20)).await;
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        assert!(closed, "an idle keep-alive connection was left open");
        srv.stop().await;
    });
}

#[test]
fn connections_beyond_max_connections_wait_until_one_closes() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&config(dir.path(), "header_timeout_s = 60\nmax_connections = 4\n"), &dir.path().join("state")).await;
        // Four idle connections fill the server.
        let mut held = vec![];
        for _ in 0..4 {
            held.push(TcpStream::connect(srv.addr).await.unwrap());
        }
        // A fifth is not served while they stay (the kernel queues it)...
        let mut fifth = TcpStream::connect(srv.addr).await.unwrap();
        fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let (got, _) = read_until_closed(&mut fifth, Duration::from_millis(1500)).await;
        assert!(got.is_empty(), "served beyond max_connections: {}", String::from_utf8_lossy(&got));
        // ...and is as soon as one of them goes.
        drop(held.pop());
        let (got, closed) = read_until_closed(&mut fifth, Duration::from_secs(20)).await;
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        assert!(closed);
        srv.stop().await;
    });
}

#[test]
fn a_burst_beyond_the_queue_gets_429_with_retry_after_and_the_rest_succeed() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&config(dir.path(), "max_running = 1\nmax_queue = 1\n"), &dir.path().join("state")).await;
        let b = base(&srv);
        let input = png(512, 512);
        let mut tasks = vec![];
        for i in 0..12 {
            let (b, input) = (b.clone(), input.clone());
            tasks.push(tokio::spawn(async move {
                let seed = i.to_string();
                post_form(&b, "/v1/images/edits", &[
                    ("image", Some("a.png"), &input),
                    ("prompt", None, b"oil painting, warmer"),
                    ("model", None, b"classic"),
                    ("seed", None, seed.as_bytes()),
                ])
                .await
            }));
        }
        let (mut ok, mut shed) = (0, 0);
        for t in tasks {
            let (s, h, v) = t.await.unwrap();
            match s {
                200 => {
                    ok += 1;
                    assert!(v["data"][0]["b64_json"].is_string(), "{v}");
                }
                429 => {
                    shed += 1;
                    let m = expect_error(s, &v, 429);
                    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
                    assert_eq!(v["error"]["code"], "server_busy", "{v}");
                    assert!(m.contains("classic") && m.contains("max_queue"), "{m}");
                    let secs: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                    assert!((1..=60).contains(&secs), "Retry-After {secs}");
                    let ms: u64 = h["retry-after-ms"].to_str().unwrap().parse().unwrap();
                    assert!((100..=60_000).contains(&ms) && ms.div_ceil(1000).max(1) == secs, "retry-after-ms {ms}, Retry-After {secs}");
                    assert_eq!(h["x-should-retry"], "true");
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        // One runs and one waits; the burst came faster than an edit takes, so the rest were shed.
        assert!(ok >= 2, "{ok} succeeded");
        assert!(shed >= 1, "nothing was shed out of 12 with room for 2");
        assert_eq!(ok + shed, 12);
        // Once the burst is over, the line is empty and the model takes requests again.
        let metrics = reqwest::get(format!("{b}/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("atelier_model_requests{model=\"classic\",state=\"running\"} 0"), "{metrics}");
        assert!(metrics.contains("atelier_model_requests{model=\"classic\",state=\"waiting\"} 0"), "{metrics}");
        let (s, _, v) = post_form(&b, "/v1/images/edits", &[("image", Some("a.png"), &input), ("prompt", None, b"posterize"), ("model", None, b"classic")]).await;
        assert_eq!(s, 200, "{v}");
        srv.stop().await;
    });
}

#[test]
fn the_state_dir_keeps_only_what_url_results_need_for_keep_results_h() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // 0.001 h = 3.6 s.
        let srv = start(&config(dir.path(), "keep_results_h = 0.001\n"), &state).await;
        let b = base(&srv);
        let input = png(64, 48);
        for _ in 0..6 {
            let (s, _, v) = post_form(&b, "/v1/images/edits", &[("image", Some("a.png"), &input), ("prompt", None, b"posterize"), ("model", None, b"classic"), ("n", None, b"2")]).await;
            assert_eq!(s, 200, "{v}");
        }
        let mut urls = vec![];
        for _ in 0..2 {
            let (s, _, v) = post_form(&b, "/v1/images/edits", &[
                ("image", Some("a.png"), &input),
                ("prompt", None, b"sketch"),
                ("model", None, b"classic"),
                ("response_format", None, b"url"),
            ])
            .await;
            assert_eq!(s, 200, "{v}");
            urls.push(v["data"][0]["url"].as_str().unwrap().to_string());
        }
        // Eight requests, eight jobs on record; no raw artifact left (folders go off the async
        // workers just after each answer: give them a moment).
        let jobs = atelier::jobs::JobDb::open(&state).unwrap().list(&[]).unwrap();
        assert_eq!(jobs.len(), 8);
        let raw = |state: &Path| files_under(&state.join("jobs")).into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("raw-")).count();
        let t = Instant::now();
        while raw(&state) > 0 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(raw(&state), 0, "{:?}", files_under(&state.join("jobs")));
        // Only the two `url` requests' folders stay, and their results are served...
        let folders = || std::fs::read_dir(state.join("server/images")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(folders(), 2);
        for u in &urls {
            assert_eq!(reqwest::get(u).await.unwrap().status(), 200);
        }
        // ...for keep_results_h, then they go.
        let t = Instant::now();
        while folders() > 0 && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(folders(), 0, "url results outlived keep_results_h");
        let r = reqwest::get(&urls[0]).await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(r.text().await.unwrap().contains("3.6 s"));
        srv.stop().await;
    });
}

#[test]
fn jobs_prune_frees_the_folders_of_finished_jobs_and_keeps_their_rows() {
    let mut env = common::Env::new(&["classic"]);
    env.config("");
    let photo = common::small_photo(env.dir.path(), "coffee.png", 96);
    for i in 0..3 {
        env.ok(&["edit", photo.to_str().unwrap(), "--prompt", "posterize", "--model", "classic", "-o", env.path(&format!("out{i}")).to_str().unwrap()]);
    }
    let jobs_dir = env.path("state/jobs");
    let before = files_under(&jobs_dir);
    assert!(before.iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with("raw-")), "{before:?}");
    // Nothing is older than a day yet.
    let out = env.ok(&["jobs", "prune", "--older-than", "1d"]);
    assert!(out.contains("freed 0.0 MiB in 0 job folder(s)"), "{out}");
    assert_eq!(files_under(&jobs_dir).len(), before.len());
    // Everything finished is older than 0 s.
    let out = env.ok(&["jobs", "prune", "--older-than", "0s", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["folders"], 3, "{v}");
    assert!(v["freed_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(files_under(&jobs_dir).is_empty(), "{:?}", files_under(&jobs_dir));
    // The rows stay: they are the record of what was made.
    let list = env.ok(&["jobs", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap().as_array().unwrap().len(), 3, "{list}");
    // The outputs themselves are untouched.
    assert!(env.path("out0").read_dir().unwrap().count() > 0);
    let e = env.fails(&["jobs", "prune", "--older-than", "7"]);
    assert!(e.contains("no unit"), "{e}");
}

#[test]
fn a_running_classic_video_is_in_progress_with_progress_and_a_waiting_one_queued() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&config(dir.path(), "max_running = 1\n"), &dir.path().join("state")).await;
        let b = base(&srv);
        let frame = png(1024, 768);
        let create = |seconds: &'static str, fps: &'static str, side: &'static str| {
            let (b, frame) = (b.clone(), frame.clone());
            async move {
                let (s, _, v) = post_form(&b, "/v1/videos", &[
                    ("model", None, b"classic"),
                    ("prompt", None, b"slow zoom in"),
                    ("input_reference", Some("f.png"), &frame),
                    ("seconds", None, seconds.as_bytes()),
                    ("fps", None, fps.as_bytes()),
                    ("max_side", None, side.as_bytes()),
                ])
                .await;
                assert_eq!(s, 200, "{v}");
                v["id"].as_str().unwrap().to_string()
            }
        };
        let wait_done = |id: String| {
            let b = b.clone();
            async move {
                let t = Instant::now();
                loop {
                    let (_, v) = get_json(&b, &format!("/v1/videos/{id}")).await;
                    if v["status"] == "completed" || v["status"] == "failed" || t.elapsed() > Duration::from_secs(300) {
                        return v;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        // A first, short video gives the model's typical duration.
        let first = create("1", "5", "64").await;
        assert_eq!(wait_done(first).await["status"], "completed");

        // A long one, and another behind it (one runs at a time).
        let long = create("10", "30", "1024").await;
        let behind = create("1", "5", "64").await;
        let (mut seen, mut last) = (vec![], 0);
        let t = Instant::now();
        loop {
            let (_, v) = get_json(&b, &format!("/v1/videos/{long}")).await;
            let (status, progress) = (v["status"].as_str().unwrap().to_string(), v["progress"].as_u64().unwrap());
            assert!(progress >= last, "progress went back: {last} → {progress}");
            last = progress;
            if status == "in_progress" {
                let (_, w) = get_json(&b, &format!("/v1/videos/{behind}")).await;
                assert_eq!((w["status"].as_str(), w["progress"].as_u64()), (Some("queued"), Some(0)), "{w}");
            }
            seen.push((status.clone(), progress));
            if status == "completed" || status == "failed" || t.elapsed() > Duration::from_secs(300) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen.last().unwrap().0, "completed", "{seen:?}");
        // 99 is the runner's "fetching" report at the very end; the estimate while it runs stays at or below 95.
        assert!(seen.iter().any(|(s, p)| s == "in_progress" && *p > 0 && *p <= 95), "never in progress with a percentage: {seen:?}");
        assert_eq!(wait_done(behind).await["status"], "completed");
        srv.stop().await;
    });
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(&config(dir.path(), ""), &dir.path().join("state")).await;
        let b = base(&srv);
        let c = reqwest::Client::new();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let r = c.get(format!("{b}/v1/models")).header("authorization", format!("{scheme} {ALICE}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{scheme}");
        }
        let r = c.get(format!("{b}/v1/models")).header("authorization", format!("Basic {ALICE}")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        srv.stop().await;
    });
}

#[test]
fn a_client_that_leaves_takes_its_job_with_it() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let srv = start(&config(dir.path(), ""), &state).await;
        // A big edit with many outputs: long enough to leave in the middle of.
        let input = png(1536, 1536);
        let (ct, body) = multipart(&[("image", Some("a.png"), &input), ("prompt", None, b"oil painting"), ("model", None, b"classic"), ("n", None, b"8")]);
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let head = format!("POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        // Leave as soon as the job is running.
        let db = atelier::jobs::JobDb::open(&state).unwrap();
        let t = Instant::now();
        let job = loop {
            if let Some(j) = db.list(&[]).unwrap().into_iter().next() {
                break j;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "the job never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job.state, atelier::jobs::JobState::Submitting, "the edit finished before the client could leave; make it bigger");
        drop(s);
        let t = Instant::now();
        let end = loop {
            let j = db.get(&job.id).unwrap().unwrap();
            if j.state.is_final() || t.elapsed() > Duration::from_secs(120) {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(end.state, atelier::jobs::JobState::Cancelled, "{end:?}");
        assert!(end.error.unwrap_or_default().contains("client closed the connection"));
        // Nothing of the request is left on disk.
        let t = Instant::now();
        while !files_under(&state.join("server/images")).is_empty() && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(files_under(&state.join("server/images")).is_empty());
        assert!(files_under(&state.join("jobs")).is_empty());
        srv.stop().await;
    });
}

/// The job that makes video `id` (its plan writes under the video's folder), once it exists.
async fn video_job(state: &Path, id: &str) -> atelier::jobs::JobRecord {
    let db = atelier::jobs::JobDb::open(state).unwrap();
    let t = Instant::now();
    loop {
        if let Some(j) = db.list(&[]).unwrap().into_iter().find(|j| j.plan.to_string().contains(id)) {
            return j;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "video {id} has no job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn deleting_a_classic_video_while_it_is_made_stops_it() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let srv = start(&config(dir.path(), ""), &state).await;
        let b = base(&srv);
        let frame = png(1024, 768);
        let (s, _, v) = post_form(&b, "/v1/videos", &[
            ("model", None, b"classic"),
            ("prompt", None, b"slow zoom in"),
            ("input_reference", Some("f.png"), &frame),
            ("seconds", None, b"10"),
            ("fps", None, b"30"),
            ("max_side", None, b"1024"),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        poll_until(&b, &id, &["in_progress"]).await;
        let job = video_job(&state, &id).await;
        let (s, v) = delete(&b, &format!("/v1/videos/{id}")).await;
        assert_eq!((s, &v["deleted"]), (200, &Value::Bool(true)), "{v}");
        let (s, _) = get_json(&b, &format!("/v1/videos/{id}")).await;
        assert_eq!(s, 404);
        let j = atelier::jobs::JobDb::open(&state).unwrap().get(&job.id).unwrap().unwrap();
        assert_eq!(j.state, atelier::jobs::JobState::Cancelled, "{j:?}");
        assert!(j.error.unwrap_or_default().contains("deleted before it finished"));
        assert!(!state.join("server/videos").join(&id).exists());
        assert!(files_under(&state.join("jobs")).is_empty());
        // The model's turn was given back: another video runs to the end.
        let (s, _, v) = post_form(&b, "/v1/videos", &[("model", None, b"classic"), ("prompt", None, b"pan"), ("input_reference", Some("f.png"), &png(64, 48)), ("seconds", None, b"1")]).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(poll_until(&b, v["id"].as_str().unwrap(), &["completed", "failed"]).await["status"], "completed");
        srv.stop().await;
    });
}

#[test]
fn deleting_a_provider_video_while_it_is_made_cancels_it_at_the_provider() {
    let emu = common::Emu::start();
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::write(dir.path().join("openai.key"), "emu-openai-key").unwrap();
        let cfg = format!(
            "{}{}[plugins.sora-2.secrets]\nOPENAI_API_KEY = \"file:{}\"\n",
            config(dir.path(), ""),
            emu.config_for(&["sora-2"], ""),
            dir.path().join("openai.key").display()
        );
        let srv = start_with(&["sora-2", "filters"], &cfg, &state).await;
        let b = base(&srv);
        let (s, _, v) = post_form(&b, "/v1/videos", &[
            ("model", None, b"sora-2"),
            ("prompt", None, b"a slow pan [fault:slow:200]"),
            ("seconds", None, b"8"),
            ("size", None, b"1280x720"),
            ("input_reference", Some("frame.png"), &png(64, 36)),
        ])
        .await;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        // Accepted by the provider and polled.
        poll_until(&b, &id, &["in_progress"]).await;
        let job = video_job(&state, &id).await;
        assert_eq!(emu.count("DELETE", "/v1/videos/"), 0);
        let (s, v) = delete(&b, &format!("/v1/videos/{id}")).await;
        assert_eq!((s, &v["deleted"]), (200, &Value::Bool(true)), "{v}");
        assert_eq!(emu.count("DELETE", "/v1/videos/"), 1, "the provider was told to cancel the job");
        let j = atelier::jobs::JobDb::open(&state).unwrap().get(&job.id).unwrap().unwrap();
        assert_eq!(j.state, atelier::jobs::JobState::Cancelled, "{j:?}");
        let (s, _) = get_json(&b, &format!("/v1/videos/{id}")).await;
        assert_eq!(s, 404);
        // Nothing polls it any more.
        let polls = emu.count("GET", "/v1/videos/");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(emu.count("GET", "/v1/videos/"), polls);
        srv.stop().await;
    });
}

#[test]
fn the_images_endpoints_answer_pictures_and_never_read_the_servers_own_files() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start_with(&["classic", "exfil"], &config(dir.path(), ""), &dir.path().join("state")).await;
        let b = base(&srv);
        let photo = png(32, 24);
        // classic's `output=video` makes a GIF: not an answer for an images endpoint.
        let (s, _, v) = post_form(&b, "/v1/images/edits", &[("model", None, b"classic"), ("prompt", None, b"warm"), ("output", None, b"video"), ("image", Some("a.png"), &photo)]).await;
        let m = expect_error(s, &v, 400);
        assert!(m.contains("POST /v1/videos") && v["error"]["param"] == "output", "{v}");
        // An image parameter given as text would be a path on the server's own disk.
        let secret = dir.path().join("alice.token");
        let (s, _, v) = post_form(
            &b,
            "/v1/images/edits",
            &[("model", None, b"exfil"), ("prompt", None, b"config color"), ("reference", None, secret.to_str().unwrap().as_bytes()), ("image", Some("a.png"), &photo)],
        )
        .await;
        let m = expect_error(s, &v, 400);
        assert!(m.contains("does not read from its own disk") && v["error"]["param"] == "reference", "{v}");
        // Control: the same model without it is served.
        let (s, _, v) = post_form(&b, "/v1/images/edits", &[("model", None, b"classic"), ("prompt", None, b"warm"), ("image", Some("a.png"), &photo)]).await;
        assert_eq!(s, 200, "{v}");
        srv.stop().await;
    });
}

#[test]
fn the_studio_recipe_endpoint_tells_nothing_of_the_servers_own_files() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start_with(&["classic", "filters", "exfil"], &config(dir.path(), ""), &dir.path().join("state")).await;
        let b = base(&srv);
        let c = reqwest::Client::new();
        let recipe = |stage: Value| {
            let c = c.clone();
            let url = format!("{b}/v1/atelier/recipe");
            async move {
                let r = c.post(url).bearer_auth(ALICE).json(&json!({"name": "probe", "stages": [stage]})).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        // A picture that exists on the server and a path that does not get the same refusal: the
        // answer must not tell them apart (validating the path would).
        let there = dir.path().join("someone-elses.png");
        std::fs::write(&there, png(16, 16)).unwrap();
        let absent = dir.path().join("nothing-here.png");
        let mut answers = vec![];
        for path in [&there, &absent] {
            let step = format!("watermark:image={}", path.display());
            let (s, v) = recipe(json!({"name": "s1", "engine": "classic", "prompt": "warm", "post": [step]})).await;
            let m = expect_error(s, &v, 400);
            assert!(m.contains("reads no file of its own disk") && v["error"]["param"] == "stages[0].post", "{v}");
            let (s, v) = recipe(json!({"name": "s1", "engine": "exfil", "prompt": "config color", "params": {"reference": path.display().to_string()}})).await;
            let m2 = expect_error(s, &v, 400);
            assert!(m2.contains("does not read from its own disk") && v["error"]["param"] == "stages[0].params.reference", "{v}");
            answers.push((m.replace(&path.display().to_string(), "PATH"), m2));
        }
        assert_eq!(answers[0], answers[1], "an existing and a missing file must be answered alike");
        // Control: the same stage without a file makes a recipe.
        let (s, v) = recipe(json!({"name": "s1", "engine": "classic", "prompt": "warm", "post": ["grayscale"]})).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["toml"].as_str().unwrap().contains("post = [\"grayscale\"]"), "{v}");
        srv.stop().await;
    });
}

#[test]
fn the_studio_filter_endpoint_reads_no_file_of_the_servers_own_disk() {
    tokio_rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let srv = start_with(&["classic", "filters"], &config(dir.path(), ""), &dir.path().join("state")).await;
        let b = base(&srv);
        // Another caller's picture on the server's disk: a watermark image naming it must not be read.
        let theirs = dir.path().join("someone-elses.png");
        std::fs::write(&theirs, png(16, 16)).unwrap();
        let c = reqwest::Client::new();
        let url = format!("{b}/v1/atelier/filter?step=watermark:image={}", theirs.display());
        let r = c.post(&url).bearer_auth(ALICE).header("content-type", "image/png").body(png(32, 24)).send().await.unwrap();
        let (s, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
        let m = expect_error(s, &v, 400);
        assert!(m.contains("reads no file of its own disk"), "{m}");
        // Control: a step without a file is served.
        let r = c.post(format!("{b}/v1/atelier/filter?step=grayscale")).bearer_auth(ALICE).header("content-type", "image/png").body(png(32, 24)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        srv.stop().await;
    });
}
