//! A job the provider may have charged is never lost, never stuck, never sent twice: the CLI (and
//! the server binary), the real components and the strict emulator.
//!
//! - An unreadable 2xx answer to a long-running submit leaves the job `unknown` (not `failed`),
//!   sent once, and `jobs resume` does not send it again; an explicit refusal stays `failed`.
//! - A hung submit ends `unknown` with the defaults' order (the HTTP timeout inside the call's
//!   deadline), sent once.
//! - Failed polls back off, are counted, and after `[jobs] poll_failures` the command stops with
//!   the job still `pending`; `jobs resume` picks it up; a lasting 404 ends the same way.
//! - Jobs of an engine that reaches no host are run again after a kill (`jobs resume`, and a
//!   restarted server).
//! - Retries are logged; `--json` on a hard error prints an error object with the jobs.
//! - An output larger than wasmtime's default host-call copy budget comes out.
//! - `plugins list`/`inspect` print a manifest's description escaped.

mod common;

use common::{Emu, Env, FLUX, SEEDREAM, SORA, Serve, VEO, json, small_photo};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Short poll intervals, a small poll budget and short backoffs, so failures end fast.
const FAST: &str = "#global\n[jobs]\npoll_failures = 3\nmax_backoff_s = 0.2\n---\n#flux-kontext\npoll_interval_ms = \"50\"\n---\n#veo-3\npoll_interval_ms = 100";

const ALL_IDS: [&str; 4] = ["flux-kontext", "sora-2", "veo-3", "seedream"];

/// An environment with the four engines pointed at `emu`, `extra` added to the config.
fn env_with(emu: &Emu, extra: &str) -> Env {
    let mut env = Env::new(&["flux-kontext", "sora-2", "veo-3", "seedream", "filters"]);
    env.config(&emu.config_for(&ALL_IDS, extra));
    for (k, v) in [("BFL_API_KEY", "emu-bfl-key"), ("OPENAI_API_KEY", "emu-openai-key"), ("GEMINI_API_KEY", "emu-gemini-key"), ("ARK_API_KEY", "emu-ark-key")] {
        env.envs.push((k.into(), v.into()));
    }
    env
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON error object a `--json` command prints on stdout after a hard error.
fn json_error(o: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(!o.status.success(), "{what}: should have failed");
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert!(v["error"]["message"].is_string() && v["error"]["kind"].is_string() && v["jobs"].is_array(), "{what}: {v}");
    v
}

fn job(env: &Env, id: &str) -> serde_json::Value {
    json(&env.ok(&["jobs", "show", id, "--json"]))
}

#[test]
fn an_unreadable_answer_to_a_long_running_submit_is_unknown_and_never_sent_again() {
    let emu = Emu::start();
    let env = env_with(&emu, FAST);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let p = a.to_str().unwrap();
    for (i, engine) in [&FLUX, &SORA, &VEO, &SEEDREAM].iter().enumerate() {
        let before = emu.count("POST", engine.submit);
        let o = engine.run(&env, p, "night [fault:malformed]", &format!("m{i}"));
        let v = json_error(&o, engine.id);
        assert_eq!(v["error"]["kind"], "unknown_outcome", "{}: {v}", engine.id);
        let id = v["jobs"][0]["id"].as_str().unwrap_or_else(|| panic!("{}: the job is listed: {v}", engine.id)).to_string();
        assert_eq!(v["jobs"][0]["state"], "unknown", "{}: {v}", engine.id);
        let err = stderr(&o);
        assert!(err.contains("could not be read") && err.contains("may hold the job") && err.contains(&format!("atelier jobs show {id}")), "{}: {err}", engine.id);
        assert_eq!(emu.count("POST", engine.submit), before + 1, "{}: sent once", engine.id);
        let j = job(&env, &id);
        assert_eq!((j["state"].as_str(), j["submits"].as_u64()), (Some("unknown"), Some(1)), "{}: {j}", engine.id);
        // `jobs resume` neither fails it nor sends it again.
        let r = env.run(&["jobs", "resume", &id]);
        assert!(!r.status.success(), "{}", engine.id);
        assert!(String::from_utf8_lossy(&r.stdout).contains("unknown; nothing to resume"), "{}: {}", engine.id, String::from_utf8_lossy(&r.stdout));
        assert_eq!(emu.count("POST", engine.submit), before + 1, "{}: resume sends nothing", engine.id);
        assert_eq!(job(&env, &id)["state"], "unknown", "{}", engine.id);
    }
    // An explicit refusal is a refusal: `failed`, once.
    let before = emu.count("POST", SORA.submit);
    let o = SORA.run(&env, p, "night [fault:422]", "refused");
    let v = json_error(&o, "422");
    assert_eq!((v["error"]["kind"].as_str(), v["jobs"][0]["state"].as_str()), (Some("failed"), Some("failed")), "{v}");
    assert_eq!(emu.count("POST", SORA.submit), before + 1);
}

#[test]
fn a_hung_submit_ends_unknown_within_the_call_deadline_and_is_sent_once() {
    let emu = Emu::start();
    // The call's deadline (4 s) is far shorter than the HTTP timeout (120 s, the default): the
    // request is cut at the deadline minus a margin, so the plugin reports the timeout itself.
    let env = env_with(&emu, "#flux-kontext\nlimits.call_timeout_s = 4\n---\n#sora-2\nlimits.call_timeout_s = 4\n---\n#veo-3\nlimits.call_timeout_s = 4");
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let p = a.to_str().unwrap();
    // Components compiled (and cached) first, so the time measured below is the calls'.
    env.ok(&["models", "--json"]);
    for (i, engine) in [&FLUX, &SORA, &VEO].iter().enumerate() {
        let before = emu.count("POST", engine.submit);
        let t = Instant::now();
        let o = engine.run(&env, p, "night [fault:hang]", &format!("h{i}"));
        assert!(t.elapsed() < Duration::from_secs(30), "{}: took {:?}", engine.id, t.elapsed());
        let v = json_error(&o, engine.id);
        let err = stderr(&o);
        assert_eq!(v["error"]["kind"], "unknown_outcome", "{}: {v}\n{err}", engine.id);
        let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
        assert!(err.contains("may have reached the provider") && err.contains(&format!("atelier jobs show {id}")), "{}: {err}", engine.id);
        assert!(!err.contains("did not finish `submit`"), "{}: the HTTP timeout ends first, not the call's deadline: {err}", engine.id);
        let j = job(&env, &id);
        assert_eq!((j["state"].as_str(), j["submits"].as_u64()), (Some("unknown"), Some(1)), "{}: {j}", engine.id);
        assert_eq!(emu.count("POST", engine.submit), before + 1, "{}: a hung submit is never sent again", engine.id);
    }
}

/// The video id of the last Sora poll the emulator saw.
fn last_sora_video(emu: &Emu) -> String {
    let paths: Vec<String> = emu.emu.state.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/v1/videos/video_")).map(|r| r.path.clone()).collect();
    let last = paths.last().expect("a Sora poll");
    last.rsplit('/').next().unwrap().split('?').next().unwrap().to_string()
}

/// A plain HTTP/1.1 request: (status, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (h.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), b.to_string())
}

#[test]
fn failed_polls_stop_at_the_budget_with_the_job_resumable_and_a_lasting_404_too() {
    let emu = Emu::start();
    let env = env_with(&emu, FAST);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let p = a.to_str().unwrap();
    for (i, engine) in [&FLUX, &SORA, &VEO].iter().enumerate() {
        let (posts, polls) = (emu.count("POST", engine.submit), emu.count("GET", engine.poll));
        let mut args = engine.args(&env, p, "night [fault:poll-5xx]", &format!("p{i}"));
        args.push("-v".into());
        let o = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let v = json_error(&o, engine.id);
        let err = stderr(&o);
        assert_eq!(v["error"]["kind"], "stalled", "{}: {v}", engine.id);
        let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(v["jobs"][0]["state"], "pending", "{}: {v}", engine.id);
        assert!(err.contains("3 polls of job") && err.contains(&format!("atelier jobs resume {id}")), "{}: {err}", engine.id);
        assert!(err.contains("[jobs]\n    poll_failures = 6") && err.contains("atelier.toml"), "{}: the line to raise it: {err}", engine.id);
        // Each backoff is logged (stderr is a pipe here, so no spinner): job, attempt, delay, reason.
        assert!(err.contains("poll failed; polling again after a pause") && err.contains(&id) && err.contains("attempt=2") && err.contains("delay_ms="), "{}: {err}", engine.id);
        assert_eq!(emu.count("GET", engine.poll) - polls, 3, "{}: exactly the budget of polls", engine.id);
        assert_eq!(emu.count("POST", engine.submit) - posts, 1, "{}", engine.id);
        let j = job(&env, &id);
        assert_eq!((j["state"].as_str(), j["submits"].as_u64(), j["polls"].as_u64()), (Some("pending"), Some(1), Some(3)), "{}: {j}", engine.id);
        // Resumed later: polled again (a fresh budget), never submitted again; still a stall.
        let r = env.run(&["jobs", "resume", &id]);
        assert!(!r.status.success());
        assert!(String::from_utf8_lossy(&r.stdout).contains(&format!("atelier jobs resume {id}")), "{}", String::from_utf8_lossy(&r.stdout));
        assert_eq!(emu.count("GET", engine.poll) - polls, 6, "{}", engine.id);
        assert_eq!(emu.count("POST", engine.submit) - posts, 1, "{}", engine.id);
        assert_eq!(job(&env, &id)["state"], "pending", "{}", engine.id);
    }

    // A lasting 404: the provider no longer knows the video (deleted there). Each poll says "not
    // found (yet)"; after the budget the command stops, the job still pending.
    let jobs = json(&env.ok(&["jobs", "list", "--state", "pending", "--json"]));
    let sora = jobs.as_array().unwrap().iter().find(|j| j["plugin"] == "sora-2").unwrap()["id"].as_str().unwrap().to_string();
    let video = last_sora_video(&emu);
    let addr = emu.emu.base_url.trim_start_matches("http://").to_string();
    let (status, body) = http(&addr, "DELETE", &format!("/v1/videos/{video}"), &[("Authorization", "Bearer emu-openai-key")], b"");
    assert_eq!(status, 200, "{body}");
    let polls = emu.count("GET", SORA.poll);
    let r = env.run(&["jobs", "resume", &sora, "--json"]);
    assert!(!r.status.success());
    let v = json(&String::from_utf8_lossy(&r.stdout));
    let e = v["jobs"][0]["error"].as_str().unwrap_or_default();
    assert!(e.contains("not found (yet)") && e.contains("3 polls of job") && e.contains(&format!("atelier jobs resume {sora}")), "{v}");
    assert_eq!(v["jobs"][0]["state"], "pending", "{v}");
    assert_eq!(emu.count("GET", SORA.poll) - polls, 3);
    assert_eq!(job(&env, &sora)["state"], "pending");
}

#[test]
fn submit_retries_are_logged_and_json_errors_list_no_jobs_when_none_was_made() {
    let emu = Emu::start();
    let env = env_with(&emu, FAST);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let p = a.to_str().unwrap();
    let mut args = VEO.args(&env, p, "dusk [fault:500]", "r");
    args.push("-v".into());
    let o = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let id = v["jobs"][0].as_str().unwrap();
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("submit refused; sending it again after a pause")).unwrap_or_else(|| panic!("no retry line: {err}"));
    assert!(line.contains("INFO") && line.contains(id) && line.contains("attempt=1") && line.contains("delay_ms=") && line.contains("HTTP 500"), "{line}");
    // A hard error before any job: an error object with no jobs.
    let o = env.run(&["filter", p, "--step", "nosuchstep", "-o", env.path("f.png").to_str().unwrap(), "--json"]);
    let v = json_error(&o, "filter");
    assert_eq!((v["error"]["kind"].as_str(), v["jobs"].as_array().map(Vec::len)), (Some("not_started"), Some(0)), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("nosuchstep"), "{v}");
}

/// `atelier animate --model classic` of a big noisy picture, killed while it renders (in its
/// submit call); `jobs resume` runs it again — its engine reaches no host — and it completes.
#[test]
fn an_offline_job_killed_mid_submit_runs_again_on_resume() {
    let env = Env::new(&["classic", "filters"]);
    let input = noise_png(env.dir.path(), 640, 480);
    let out = env.path("clip.gif");
    let mut child = env
        .cmd()
        .args(["animate", input.to_str().unwrap(), "--prompt", "slow zoom", "--model", "classic", "--seconds", "8", "--param", "fps=20", "-o", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = wait_for_submitting(&env, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(job(&env, &id)["state"], "submitting");
    let o = env.ok(&["jobs", "resume", &id, "--json"]);
    let v = json(&o);
    assert_eq!(v["jobs"][0]["state"], "done", "{v}");
    let j = job(&env, &id);
    assert_eq!((j["state"].as_str(), j["submits"].as_u64()), (Some("done"), Some(2)), "{j}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"GIF89a", "the video was written");
    // Nothing left to resume.
    assert!(env.ok(&["jobs", "resume", "--all"]).contains("nothing to resume"));
}

/// Wait until the command has recorded its job and is in the submit call; returns the job id.
fn wait_for_submitting(env: &Env, child: &mut Child) -> String {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(120), "no job was recorded");
        assert!(child.try_wait().unwrap().is_none(), "the command ended before it could be killed");
        let jobs = json(&env.ok(&["jobs", "list", "--json"]));
        if let Some(j) = jobs.as_array().unwrap().iter().find(|j| j["state"] == "submitting" && j["submits"] == 1) {
            // Well inside the render, past the request's being kept.
            std::thread::sleep(Duration::from_millis(300));
            return j["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PNG of random pixels (it compresses badly, so frames made of it are large).
fn noise_png(dir: &std::path::Path, w: u32, h: u32) -> std::path::PathBuf {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let p = dir.join(format!("noise-{w}x{h}.png"));
    img.save(&p).unwrap();
    p
}

/// `atelier serve --listen 127.0.0.1:0 --insecure-no-auth` on `state`, and the address it printed.
fn serve(env: &Env, state: &std::path::Path) -> (Serve, String) {
    let mut cmd = env.cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth", "--state-dir"]).arg(state);
    Serve::start(cmd)
}

/// `POST /v1/videos` with classic, multipart as the OpenAI SDKs send it; returns the video id.
fn create_classic_video(addr: &str, frame: &[u8], i: usize) -> String {
    create_video(addr, frame, i, &[("model", "classic"), ("prompt", "slow zoom"), ("seconds", "10"), ("fps", "30")])
}

/// `POST /v1/videos` with these text fields and `frame` as `input_reference`; returns the video id.
fn create_video(addr: &str, frame: &[u8], i: usize, fields: &[(&str, &str)]) -> String {
    let boundary = "----atelier-billed-jobs";
    let mut body = vec![];
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"f{i}.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend(frame);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (status, text) = http(addr, "POST", "/v1/videos", &[("Content-Type", &ct)], &body);
    assert_eq!(status, 200, "{text}");
    json(&text)["id"].as_str().unwrap().to_string()
}

fn video(addr: &str, id: &str) -> serde_json::Value {
    let (status, text) = http(addr, "GET", &format!("/v1/videos/{id}"), &[], b"");
    assert_eq!(status, 200, "{text}");
    json(&text)
}

#[test]
fn classic_videos_in_flight_when_the_server_is_killed_complete_after_the_restart() {
    let env = Env::new(&["classic", "filters"]);
    let state = env.path("serve-state");
    let frame = std::fs::read(noise_png(env.dir.path(), 640, 480)).unwrap();
    let (mut server, addr) = serve(&env, &state);
    let ids: Vec<String> = (0..3).map(|i| create_classic_video(&addr, &frame, i)).collect();
    // At least one is being made (in its submit call) when the server is killed; the others wait in line.
    let t = Instant::now();
    loop {
        let db = atelier::jobs::JobDb::open(&state).unwrap();
        if db.list(&[atelier::jobs::JobState::Submitting]).unwrap().iter().any(|j| j.submits == 1) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no video started");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill(); // SIGKILL: no cleanup of any kind
    drop(server);
    let jobs = json(&env.ok(&["jobs", "list", "--state", "submitting", "--json", "--state-dir", state.to_str().unwrap()]));
    assert!(!jobs.as_array().unwrap().is_empty(), "a job was cut off mid-submit: {jobs}");

    let (_server, addr) = serve(&env, &state);
    for id in &ids {
        let t = Instant::now();
        loop {
            let v = video(&addr, id);
            match v["status"].as_str().unwrap() {
                "completed" => break,
                "failed" => panic!("video {id} failed after the restart: {v}"),
                _ => {}
            }
            assert!(t.elapsed() < Duration::from_secs(300), "video {id} not completed: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let (status, body) = http(&addr, "GET", &format!("/v1/videos/{id}/content"), &[], b"");
        assert_eq!(status, 200);
        assert!(body.starts_with("GIF8"), "video {id} has its file");
    }
    // The cut-off jobs were run again as themselves: none is left unknown or submitting.
    let all = json(&env.ok(&["jobs", "list", "--json", "--state-dir", state.to_str().unwrap()]));
    for j in all.as_array().unwrap() {
        assert_eq!(j["state"], "done", "{j}");
    }
}

#[test]
fn the_server_keeps_polling_a_stalled_video_instead_of_failing_it() {
    let emu = Emu::start();
    let env = env_with(&emu, FAST);
    let state = env.path("serve-state");
    let frame = std::fs::read(small_photo(env.dir.path(), "coffee.png", 96)).unwrap();
    let (_server, addr) = serve(&env, &state);
    let id = create_video(&addr, &frame, 0, &[("model", "sora-2"), ("prompt", "night [fault:poll-5xx]"), ("seconds", "4"), ("size", "1280x720")]);
    // Three budgets of 3 failed polls: each stall is followed by another round, not a failure.
    let t = Instant::now();
    while emu.count("GET", SORA.poll) < 10 {
        assert!(t.elapsed() < Duration::from_secs(60), "the stalled video was not polled again: {}", video(&addr, &id));
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = video(&addr, &id);
    assert_eq!(v["status"], "in_progress", "{v}");
    assert_eq!(emu.count("POST", SORA.submit), 1, "polled again, never submitted again");
    let jobs = json(&env.ok(&["jobs", "list", "--json", "--state-dir", state.to_str().unwrap()]));
    assert_eq!(jobs[0]["state"], "pending", "{jobs}");
}

#[test]
fn an_output_over_the_default_hostcall_budget_comes_out() {
    // 5 s at 30 fps of 1024 px noisy frames: a GIF over 128 MiB, wasmtime's default copy budget
    // (the issue's 10 s of a photo, made in half the time).
    let env = Env::new(&["classic", "filters"]);
    let input = noise_png(env.dir.path(), 1024, 768);
    let out = env.path("big.gif");
    let o = env.run(&["animate", input.to_str().unwrap(), "--prompt", "slow zoom", "--model", "classic", "--seconds", "5", "--param", "fps=30", "--param", "max_side=1024", "-o", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len > 128 << 20, "the output ({len} bytes) is over the old budget, so the test tests it");
}

#[test]
fn a_manifest_description_is_printed_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::plugin_dirs(&["hello"]).remove(0);
    let dir = tmp.path().join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let manifest: String = manifest
        .lines()
        .map(|l| if l.starts_with("description") { "description = \"evil \\u001b]0;pwned\\u0007 \\u001b[2J text\"".to_string() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    let out = Command::new(common::bin())
        .args(["plugins", "list"])
        .env("ATELIER_PLUGINS", &dir)
        .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
        .env_remove("ATELIER_CONFIG")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("evil") && list.contains("text") && !list.contains('\u{1b}') && !list.contains('\u{7}'), "{list:?}");
    let out = Command::new(common::bin())
        .args(["plugins", "inspect", "hello"])
        .env("ATELIER_PLUGINS", &dir)
        .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
        .env_remove("ATELIER_CONFIG")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains("evil") && !shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown:?}\n{}", String::from_utf8_lossy(&out.stderr));
}
