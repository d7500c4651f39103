//! A hostile plugin cannot hang a job, flood the host, or write to the terminal.
//!
//! `tests/hostile/flood` (a model) and `tests/hostile/garble` (a filter) misbehave on request:
//! delays of `u64::MAX` ms, 100,000 requests or log lines in one call, multi-megabyte job tokens,
//! terminal escapes in every string. Each test checks the contained outcome, the error text (the
//! plugin, the limit, the line that raises it) and that other jobs are still served.

mod common;

use atelier::jobs::runner::RetryPolicy;
use atelier::jobs::{JobDb, JobState, Runner};
use atelier_tests::*;
use common::{Env, small_photo};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a terminal acts on: none of it may reach one raw from a plugin.
const RAW_CONTROLS: [char; 6] = ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}', '\u{2066}'];

fn assert_no_raw_controls(what: &str, text: &str) {
    for c in RAW_CONTROLS {
        assert!(!text.contains(c), "{what} carries a raw {c:?}:\n{text}");
    }
    assert!(!text.lines().any(|l| l.trim_start().starts_with("error: forged line")), "{what} has a forged line:\n{text}");
}

/// A runner over a fresh jobs database, with this policy; `cancel_all` is its global cancel.
struct Jobs {
    _dir: tempfile::TempDir,
    db: Arc<JobDb>,
    runner: Runner,
    cancel_all: tokio::sync::watch::Sender<bool>,
}

fn jobs(policy: RetryPolicy) -> Jobs {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(JobDb::open(dir.path()).unwrap());
    let (cancel_all, rx) = tokio::sync::watch::channel(false);
    let mut runner = Runner::new(db.clone(), rx);
    runner.policy = policy;
    Jobs { _dir: dir, db, runner, cancel_all }
}

/// Quick retries, a short backoff cap and this deadline.
fn short_policy(max_attempts: u32, job_timeout: Duration) -> RetryPolicy {
    RetryPolicy { max_attempts, base: Duration::from_millis(10), max_backoff: Duration::from_millis(200), job_timeout }
}

/// The operator config granting flood the test server, plus `extra` lines for its section.
fn flood_config(server: &TestServer, limits: &str) -> String {
    format!("[plugins.flood]\nallow_hosts = [\"{}\"]\n[plugins.flood.limits]\n{limits}\n", server.origin())
}

/// `f`'s output, failing the test (not hanging it) if it takes more than `secs` seconds.
async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("still running after {secs} s: the job hangs"))
}

/// Load (compile, the first time) the plugins a timed test uses, so the clock measures the job.
fn warm(rt: &atelier::Runtime) {
    for id in ["flood", "hello"] {
        rt.model(id).unwrap_or_else(|e| panic!("{id} loads: {e:#}"));
    }
}

async fn run_job(j: &Jobs, rt: &atelier::Runtime, model: &str, job: &str, prompt: &str) -> anyhow::Result<atelier::jobs::JobOutcome> {
    let plugin = rt.model(model).unwrap();
    j.runner.run(&plugin, job, model, &serde_json::json!({}), &request(prompt)).await
}

/// A hello job on the same runner succeeds, and quickly.
async fn assert_runner_serves_hello(j: &Jobs, rt: &atelier::Runtime, job: &str) {
    let t = Instant::now();
    let out = run_job(j, rt, "hello", job, "hi").await.unwrap_or_else(|e| panic!("hello must still run: {e:#}"));
    assert_eq!(out.artifacts.len(), 1);
    assert!(t.elapsed() < Duration::from_secs(5), "hello took {:?}", t.elapsed());
    assert_eq!(j.db.get(job).unwrap().unwrap().state, JobState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_u64_max_is_clamped_to_the_largest_backoff() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, ""));
    warm(&rt);
    let j = jobs(short_policy(3, Duration::from_secs(600)));
    let started = Instant::now();
    // While flood is refused again and again, hello runs on the same runner.
    let (flooded, ()) = tokio::join!(within(10, run_job(&j, &rt, "flood", "j-forever", "rate-limit-forever")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_runner_serves_hello(&j, &rt, "j-hello").await;
    });
    let elapsed = started.elapsed();
    let msg = format!("{:#}", flooded.expect_err("a job rate-limited forever cannot succeed"));
    assert!(elapsed < Duration::from_secs(5), "three attempts 200 ms apart took {elapsed:?}");
    assert!(msg.starts_with("flood: rate limited by the provider (gave up after 3 attempts): wait forever"), "{msg}");
    assert!(msg.contains("wait forever\\u{1b}[2J"), "the plugin's text is kept, escaped: {msg}");
    assert_no_raw_controls("the error", &msg);
    let rec = j.db.get("j-forever").unwrap().unwrap();
    assert_eq!((rec.state, rec.submits), (JobState::Failed, 3));
    assert_eq!(rec.error.as_deref(), Some(msg.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_refused_again_and_again_ends_at_the_job_deadline() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, ""));
    warm(&rt);
    // Attempts enough for minutes: the deadline must end it.
    let j = jobs(short_policy(100_000, Duration::from_millis(1500)));
    let started = Instant::now();
    let msg = format!("{:#}", within(10, run_job(&j, &rt, "flood", "j-deadline", "rate-limit-forever")).await.unwrap_err());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "ended after {elapsed:?}");
    assert!(msg.starts_with("flood: rate limited by the provider"), "{msg}");
    assert!(msg.ends_with("not tried again, as the next attempt would come after the job's time limit of 1.5 s"), "{msg}");
    let rec = j.db.get("j-deadline").unwrap().unwrap();
    assert_eq!(rec.state, JobState::Failed);
    assert!(rec.submits >= 3, "it was retried until the deadline: {} submits", rec.submits);
    assert_runner_serves_hello(&j, &rt, "j-hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_polled_after_u64_max_ms_ends_at_the_job_deadline() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, ""));
    warm(&rt);
    // `running`: pending and every poll ask for u64::MAX ms; `rate-limited`: every poll is
    // rate-limited with that delay.
    for kind in ["running", "rate-limited"] {
        let j = jobs(short_policy(100_000, Duration::from_millis(1500)));
        let job = format!("j-{kind}");
        let started = Instant::now();
        let prompt = format!("pending-forever {kind} {}", server.origin());
        let (waited, ()) = tokio::join!(within(10, run_job(&j, &rt, "flood", &job, &prompt)), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_runner_serves_hello(&j, &rt, &format!("j-hello-{kind}")).await;
        });
        let elapsed = started.elapsed();
        let msg = format!("{:#}", waited.unwrap_err());
        assert!(elapsed < Duration::from_secs(4), "{kind}: ended after {elapsed:?}");
        assert_eq!(msg, "flood: the job did not finish within 1.5 s; it was cancelled at the provider where possible", "{kind}");
        let rec = j.db.get(&job).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Failed, "{kind}");
        // Clamped to the 200 ms cap (plus jitter), the job was polled several times in 1.5 s.
        assert!(rec.polls >= 3, "{kind}: {} polls", rec.polls);
        assert!(server.paths().contains(&format!("/cancelled/{kind}")), "{kind}: cancelled at the provider: {:?}", server.paths());
    }
}

/// Wait until `job` has been polled `n` times.
async fn polled(db: &JobDb, job: &str, n: u32) {
    let t = Instant::now();
    while db.get(job).unwrap().is_none_or(|r| r.polls < n) {
        assert!(t.elapsed() < Duration::from_secs(10), "{job} was not polled {n} times");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_is_cancelled_by_its_id_while_the_others_go_on() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, ""));
    warm(&rt);
    let j = Arc::new(jobs(short_policy(5, Duration::from_secs(600))));
    let rt = Arc::new(rt);
    let prompt = format!("pending-forever running {}", server.origin());
    let spawn = |job: &'static str| {
        let (j, rt, prompt) = (j.clone(), rt.clone(), prompt.clone());
        tokio::spawn(async move { run_job(&j, &rt, "flood", job, &prompt).await.map(|_| ()).map_err(|e| format!("{e:#}")) })
    };
    let (a, b, c) = (spawn("j-a"), spawn("j-b"), spawn("j-c"));
    polled(&j.db, "j-a", 1).await;
    polled(&j.db, "j-b", 1).await;
    polled(&j.db, "j-c", 1).await;
    assert!(!j.runner.cancel_job("j-nothing"), "a job the runner is not driving");

    let t = Instant::now();
    assert!(j.runner.cancel_job("j-a"));
    let a = within(10, a).await.unwrap().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "cancelling took {:?}", t.elapsed());
    assert_eq!(a, "cancelled by the user");
    assert_eq!(j.db.get("j-a").unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(server.paths().iter().filter(|p| *p == "/cancelled/running").count(), 1, "cancelled at the provider once");
    assert!(!j.runner.cancel_job("j-a"), "a finished job is no longer driven");

    // The others are still being polled, and new jobs still run.
    let before = j.db.get("j-b").unwrap().unwrap().polls;
    polled(&j.db, "j-b", before + 2).await;
    assert_eq!(j.db.get("j-c").unwrap().unwrap().state, JobState::Pending);
    assert_runner_serves_hello(&j, &rt, "j-hello").await;

    // The runner-wide cancel still stops everything it drives.
    j.cancel_all.send(true).unwrap();
    for (job, handle) in [("j-b", b), ("j-c", c)] {
        assert_eq!(within(10, handle).await.unwrap().unwrap_err(), "cancelled by the user", "{job}");
        assert_eq!(j.db.get(job).unwrap().unwrap().state, JobState::Cancelled, "{job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_past_max_http_requests_are_refused_in_each_call() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, "max_http_requests = 10"));
    warm(&rt);
    let flood = rt.model("flood").unwrap();
    let prompt = format!("http 100000 {}", server.url("/ping"));
    let started = Instant::now();
    let n = notes(&flood.submit("j-http", &request(&prompt)).await.unwrap().value.unwrap());
    assert!(started.elapsed() < Duration::from_secs(20), "100,000 refusals took {:?}", started.elapsed());
    assert_eq!((n["ok"].as_str(), n["refused"].as_str()), ("10", "99990"), "{n:?}");
    assert_eq!(server.paths().len(), 10, "only the allowed requests reached the server");
    let err = &n["first_error"];
    assert!(
        err.starts_with("denied: plugin `flood` tried to send HTTP request 11 in one call, over its limit max_http_requests = 10"),
        "{err}"
    );
    assert!(err.contains("raise it in atelier.toml") && err.ends_with("\n    [plugins.flood.limits]\n    max_http_requests = 40"), "{err}");

    // The count is per call: the next call gets its ten again.
    let n = notes(&flood.submit("j-http-2", &request(&prompt)).await.unwrap().value.unwrap());
    assert_eq!(n["ok"], "10", "{n:?}");
    assert_eq!(server.paths().len(), 20);
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_max_token_kb_is_not_stored_and_the_job_ends_unknown() {
    let server = TestServer::start().await;
    let rt = test_runtime(&flood_config(&server, "max_token_kb = 16"));
    let j = jobs(short_policy(3, Duration::from_secs(600)));
    let msg = format!("{:#}", run_job(&j, &rt, "flood", "j-token", &format!("token 2000000 {}", server.origin())).await.unwrap_err());
    assert!(msg.starts_with("plugin `flood` handed back a job token of 1954 KiB, which was not stored, so the job cannot be polled"), "{msg}");
    assert!(msg.contains("the provider may have accepted it and may bill it: check its dashboard"), "{msg}");
    assert!(msg.contains("the provider confirmed its cancellation"), "{msg}");
    assert!(msg.contains("over its limit max_token_kb = 16") && msg.ends_with("\n    [plugins.flood.limits]\n    max_token_kb = 64"), "{msg}");
    assert!(server.paths().contains(&"/cancelled/token-2000000".to_string()), "{:?}", server.paths());
    let rec = j.db.get("j-token").unwrap().unwrap();
    assert_eq!((rec.state, rec.token), (JobState::Unknown, None));
    assert!(msg.len() < 2000, "the message does not carry the token: {} bytes", msg.len());
    assert_runner_serves_hello(&j, &rt, "j-hello").await;
}

#[test]
fn a_log_flood_is_rate_limited_and_the_dropped_lines_are_counted() {
    let mut env = Env::new(&["flood"]);
    env.config("[plugins.flood.limits]\nlog_lines_per_s = 10\n");
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let started = Instant::now();
    let o = env.run(&["edit", photo.to_str().unwrap(), "--prompt", "log 100000", "--model", "flood", "-o", env.path("out").to_str().unwrap()]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "the job itself succeeds:\n{stderr}");
    // 100,000 lines of ~250 bytes were written; a burst of 20 and 10 a second get through.
    let shown = stderr.matches("flood line ").count();
    let allowed = 20 + 10 * (elapsed.as_secs() as usize + 1);
    assert!((20..=allowed).contains(&shown), "{shown} lines shown in {elapsed:?}");
    assert!(stderr.len() < 64 * 1024, "stderr is {} bytes", stderr.len());
    let dropped: usize = stderr
        .lines()
        .filter_map(|l| l.split("plugin `flood` wrote ").nth(1)?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(dropped + shown, 100_000, "every line is either shown or counted as dropped:\n{stderr}");
    assert!(stderr.contains("log line(s) too fast, which were dropped, over its limit log_lines_per_s = 10"), "{stderr}");
    // The line to add stands on its own, ready to copy.
    assert!(stderr.contains("[plugins.flood.limits]\n    log_lines_per_s = 40\n"), "{stderr}");
    assert!(stderr.contains("\\u{1b}[2J"), "the lines are escaped, not removed:\n{stderr}");
    assert_no_raw_controls("stderr", &stderr);
}

#[test]
fn plugin_text_reaches_the_terminal_escaped() {
    let env = Env::new(&["flood", "garble"]);
    // Describe text: `atelier models` and `atelier filters`.
    for cmd in ["models", "filters"] {
        let out = env.ok(&[cmd]);
        assert_no_raw_controls(cmd, &out);
        assert!(out.contains("\\u{1b}[2J\\u{1b}[H\\u{d}error: forged line\\u{a}\\u{202e}gnp.exe\\u{7}"), "{cmd}:\n{out}");
        assert!(out.contains("\\u{1b}]0;pwned\\u{7}"), "{cmd}: the choices are escaped too:\n{out}");
    }
    // `--json` keeps the plugin's text exactly (JSON escapes it).
    let models = common::json(&env.ok(&["models", "--json"]));
    let flood = models.as_array().unwrap().iter().find(|m| m["id"] == "flood").unwrap();
    assert!(flood["description"].as_str().unwrap().starts_with("floods the host\u{1b}[2J\u{1b}[H\r"), "{flood}");

    // An error and a log line from a job: `atelier edit`.
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let err = env.fails(&["edit", photo.to_str().unwrap(), "--prompt", "error", "--model", "flood", "-o", env.path("out").to_str().unwrap()]);
    assert_no_raw_controls("edit's stderr", &err);
    assert!(err.contains("about to fail\\u{1b}[2J"), "{err}");
    assert!(err.contains("flood: invalid request: bad input\\u{1b}[2J\\u{1b}[H\\u{d}error: forged line\\u{a}"), "{err}");

    // `jobs list` and `jobs show`: the stored error and a token too large to print whole.
    let db = JobDb::open(&env.path("state")).unwrap();
    let failed = db.list(&[JobState::Failed]).unwrap();
    assert_eq!(failed.len(), 1, "the failed edit was recorded");
    let list = env.ok(&["jobs", "list"]);
    assert_no_raw_controls("jobs list", &list);
    let show = env.ok(&["jobs", "show", &failed[0].id]);
    assert_no_raw_controls("jobs show", &show);
    assert!(show.contains("  error: flood: invalid request: bad input\\u{1b}[2J"), "{show}");

    let token = format!("op-\u{1b}[2J\r{}", "t".repeat(1 << 20));
    db.create("j-big-token", "flood", "flood-1", &serde_json::json!({})).unwrap();
    db.set_pending("j-big-token", &token).unwrap();
    let show = env.ok(&["jobs", "show", "j-big-token"]);
    assert_no_raw_controls("jobs show", &show);
    assert!(show.len() < 1024, "jobs show printed {} bytes", show.len());
    assert!(show.contains("  token: op-\\u{1b}[2J\\u{d}ttt") && show.contains("more bytes, 1048584 in all)"), "{show}");
    // `--json` has it whole, for scripts.
    let v = common::json(&env.ok(&["jobs", "show", "j-big-token", "--json"]));
    assert_eq!(v["token"].as_str(), Some(token.as_str()));
}
