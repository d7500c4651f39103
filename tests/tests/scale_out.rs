//! Scale-out on PostgreSQL: two `atelier serve --no-worker` front ends and three `atelier worker`
//! processes share one job table against the provider emulator. Each job is submitted exactly
//! once however the workers die:
//! - 200 mixed image edits (FLUX Kontext, answered when done) and videos (Veo, polled by id) sent
//!   across both front ends all finish, and the emulator saw one submit per job;
//! - the worker holding the most of 12 pending videos is SIGKILLed mid-poll: the others poll them
//!   to the end once its lease runs out, with no submit sent again;
//! - a worker SIGKILLed in the middle of a submit (the emulator hangs it): the job becomes
//!   `unknown` with one submit, never sent again;
//! - a provider's limit on active tasks (`max_in_flight`) holds across the workers.

mod common;

use atelier::jobs::store::postgres::PgStore;
use atelier::jobs::store::{JobStore, NewJob};
use atelier::jobs::JobState;
use common::postgres::Postgres;
use common::{Emu, Env, FLUX, Serve, VEO};
use common::worker::Worker;
use std::time::{Duration, Instant};

const IDS: [&str; 2] = ["flux-kontext", "veo-3"];

/// Each worker serves its metrics on a free port.
const METRICS: [&str; 2] = ["--metrics", "127.0.0.1:0"];

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid in a worker id (`host-pid-rand`).
fn pid_of(owner: &str) -> Option<u32> {
    owner.rsplit('-').nth(1)?.parse().ok()
}

/// One engine against the emulator, with its jobs in a throwaway PostgreSQL: `env`'s config gives
/// `[jobs]` the database plus `jobs` lines and the engine's section `section`; `store` and `rt`
/// (a runtime over the engine, naming its contract and digest) queue jobs as a front end does.
/// `None` where PostgreSQL is not installed (SKIPPED; a failure when CI is set).
struct OneEngine {
    engine: &'static str,
    env: Env,
    io: tokio::runtime::Runtime,
    store: PgStore,
    rt: atelier::Runtime,
    emu: Emu,
    pg: Postgres,
}

impl OneEngine {
    fn start(engine: &'static str, key: (&str, &str), jobs: &str, section: &str) -> Option<OneEngine> {
        let pg = Postgres::start()?;
        let url = pg.database("atelier");
        let emu = Emu::start();
        let extra = format!("#global\n[jobs]\ndatabase = \"{url}\"\n{jobs}\n---\n#{engine}\n{section}");
        let mut env = Env::new(&[engine]);
        env.config(&emu.config_for(&[engine], &extra));
        env.envs.push((key.0.into(), key.1.into()));
        // Compiled once (cached) before any worker starts and the clock runs.
        env.ok(&["models", "--json"]);
        let io = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = io.block_on(PgStore::connect(&url)).unwrap();
        let rt = atelier_tests::runtime_over(common::plugin_dirs(&[engine]), &emu.config_for(&[engine], ""), atelier_tests::cache_dir());
        Some(OneEngine { engine, env, io, store, rt, emu, pg })
    }

    /// Queue job `id` with `request`, as a front end does.
    fn queue(&self, id: &str, request: &atelier::types::Request) {
        let plugin = self.rt.model(self.engine).unwrap();
        let req = atelier::jobs::saved::to_bytes(request).unwrap();
        let plan = serde_json::json!({});
        let new = NewJob { id, plugin: self.engine, model: self.engine, plan: &plan, contract: plugin.contract(), component_digest: plugin.component_digest(), queued_request: Some(&req), lease: None };
        self.io.block_on(self.store.create(&new)).unwrap();
    }

    fn get(&self, id: &str) -> atelier::jobs::JobRecord {
        self.io.block_on(self.store.get(id)).unwrap().unwrap()
    }
}

/// A Veo request for a 1280x720 first frame.
fn veo_request(prompt: &str) -> atelier::types::Request {
    let img = image::RgbaImage::from_pixel(1280, 720, image::Rgba([90, 120, 200, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let mut request = atelier_tests::request(prompt);
    request.references[0].bytes = png.into_inner();
    request.output = atelier::types::OutputKind::Video;
    request
}

#[test]
fn workers_share_the_jobs_and_never_submit_twice() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("atelier");
    let emu = Emu::start();
    // BFL allows 24 active tasks per key (the emulator refuses the 25th with 429): the plugin's
    // `max_in_flight = 24` holds across the 3 workers (claims count the store's jobs in flight), so
    // no submit is refused and retried — 100 edits, 100 submits.
    let extra = format!(
        "#global\n[server]\nmax_queue = 200\n[jobs]\ndatabase = \"{url}\"\nlease_s = 4\nmax_backoff_s = 0.5\n---\n#flux-kontext\npoll_interval_ms = \"100\"\nlimits.max_in_flight = 24\n---\n#veo-3\npoll_interval_ms = 100"
    );
    // The filters plugin for the front ends (Veo's input is fitted to 1280x720 before it is queued).
    let mut env = Env::new(&["flux-kontext", "veo-3", "filters"]);
    env.config(&emu.config_for(&IDS, &extra));
    for (k, v) in [("BFL_API_KEY", "emu-bfl-key"), ("GEMINI_API_KEY", "emu-gemini-key")] {
        env.envs.push((k.into(), v.into()));
    }
    // The components compiled once (cached) before the workers start and the clock runs.
    env.ok(&["models", "--json"]);

    // The front end's part, in process: a runtime over the same plugins names the contract and
    // digest of each engine, and each job is queued with its request.
    let io = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = io.block_on(PgStore::connect(&url)).unwrap();
    let rt = atelier_tests::runtime_over(common::plugin_dirs(&IDS), &emu.config_for(&IDS, ""), atelier_tests::cache_dir());
    let png64 = {
        let img = image::RgbaImage::from_pixel(64, 64, image::Rgba([90, 120, 200, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let queue = |id: &str, engine: &str, prompt: &str| {
        let plugin = rt.model(engine).unwrap();
        let mut request = atelier_tests::request(prompt);
        request.references[0].bytes = png64.clone();
        if engine == "veo-3" {
            request.output = atelier::types::OutputKind::Video;
        }
        let req = atelier::jobs::saved::to_bytes(&request).unwrap();
        let plan = serde_json::json!({});
        io.block_on(store.create(&NewJob {
            id,
            plugin: engine,
            model: engine,
            plan: &plan,
            contract: plugin.contract(),
            component_digest: plugin.component_digest(),
            queued_request: Some(&req),
            lease: None,
        }))
        .unwrap();
    };
    let get = |id: &str| io.block_on(store.get(id)).unwrap().unwrap();
    let owner = |id: &str| pg.psql("atelier", &format!("SELECT COALESCE(lease_owner, '') FROM jobs WHERE id = '{id}'"));

    let mut workers: Vec<Worker> = (0..3).map(|i| Worker::start(&env, &format!("worker{i}"), METRICS)).collect();

    // 1. A submit that hangs at the provider; its worker is killed in the middle of it.
    queue("j-hung", "veo-3", "dusk [fault:hang]");
    wait_until("the hung job is being submitted", Duration::from_secs(60), || get("j-hung").submits == 1 && emu.count("POST", VEO.submit) == 1);
    let pid = pid_of(&owner("j-hung")).expect("the submitting job has a lease owner");
    let victim = workers.iter().position(|w| w.pid() == pid).expect("the owner is one of ours");
    workers[victim].kill();
    workers[victim] = Worker::start(&env, "worker3", METRICS);

    // 2. Two front ends (`serve --no-worker`, each with its own state dir) take 100 image edits
    //    (answered when done) and 100 videos (polled by id), half each: all finish, each
    //    submitted once.
    let front_ends: Vec<(Serve, String)> = (0..2)
        .map(|i| {
            let mut cmd = env.cmd();
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth", "--no-worker", "--state-dir"]).arg(env.path(&format!("fe{i}")));
            Serve::start(cmd)
        })
        .collect();
    let addrs: Vec<String> = front_ends.iter().map(|(_, a)| format!("http://{a}")).collect();
    let t = Instant::now();
    let http = reqwest::Client::new();
    let mut tasks = vec![];
    for i in 0..200usize {
        let (http, base, png) = (http.clone(), addrs[i % 2].clone(), png64.clone());
        tasks.push(io.spawn(async move {
            if i % 2 == 0 {
                let prompt = format!("photo {i} [fault:slow:3]");
                let (ct, form) = common::multipart(&[("image", Some("a.png"), &png), ("prompt", None, prompt.as_bytes()), ("model", None, b"flux-kontext")]);
                let r = http.post(format!("{base}/v1/images/edits")).header("content-type", ct).body(form).send().await.unwrap();
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap();
                assert!(status.is_success() && body["data"].as_array().is_some_and(|d| !d.is_empty()), "image {i}: {status} {body}");
            } else {
                let prompt = format!("clip {i} [fault:slow-op:3]");
                let (ct, form) = common::multipart(&[("input_reference", Some("f.png"), &png), ("prompt", None, prompt.as_bytes()), ("model", None, b"veo-3"), ("seconds", None, b"8")]);
                let r = http.post(format!("{base}/v1/videos")).header("content-type", ct).body(form).send().await.unwrap();
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap();
                assert!(status.is_success(), "video {i}: {status} {body}");
                let id = body["id"].as_str().unwrap().to_string();
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let v: serde_json::Value = http.get(format!("{base}/v1/videos/{id}")).send().await.unwrap().json().await.unwrap();
                    match v["status"].as_str() {
                        Some("completed") => break,
                        Some("failed") => panic!("video {i}: {v}"),
                        _ => {}
                    }
                }
            }
        }));
    }
    let mut last = Instant::now();
    for task in tasks {
        while !task.is_finished() {
            assert!(t.elapsed() < Duration::from_secs(100), "200 jobs through the front ends: not within 100 s");
            if last.elapsed() > Duration::from_secs(10) {
                last = Instant::now();
                eprintln!("jobs by state: {}", pg.psql("atelier", "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) AS n FROM jobs GROUP BY state) s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        io.block_on(task).unwrap();
    }
    eprintln!("200 jobs through 2 front ends and 3 workers in {:.1} s", t.elapsed().as_secs_f64());
    let done = io.block_on(store.list(&[])).unwrap();
    let done: Vec<_> = done.into_iter().filter(|j| j.id != "j-hung").collect();
    assert_eq!(done.len(), 200, "one job per request");
    for j in &done {
        assert_eq!((j.state, j.submits), (JobState::Done, 1), "{}: {:?}", j.id, j.error);
    }
    // Exactly once, as the emulator counts: one submit per job (+1 for the hung one).
    assert_eq!(emu.count("POST", FLUX.submit), 100);
    assert_eq!(emu.count("POST", VEO.submit), 100 + 1);

    // 3. Videos that take a while: once all are pending, the worker holding most is killed in
    //    the middle of its polls; the others poll them to the end after its lease runs out.
    for i in 0..12 {
        queue(&format!("v-{i:02}"), "veo-3", &format!("slow clip {i} [fault:slow-op:40]"));
    }
    let pending = "SELECT count(*) FROM jobs WHERE id LIKE 'v-%' AND state = 'pending'";
    wait_until("the 12 videos are pending", Duration::from_secs(60), || pg.psql("atelier", pending) == "12");
    let busiest = workers
        .iter()
        .enumerate()
        .map(|(i, w)| (pg.psql("atelier", &format!("SELECT count(*) FROM jobs WHERE id LIKE 'v-%' AND lease_owner LIKE '%-{}-%'", w.pid())).parse::<usize>().unwrap(), i))
        .max()
        .unwrap();
    assert!(busiest.0 >= 1, "some worker holds videos");
    let orphans: Vec<String> = pg
        .psql("atelier", &format!("SELECT string_agg(id, ',') FROM jobs WHERE id LIKE 'v-%' AND lease_owner LIKE '%-{}-%'", workers[busiest.1].pid()))
        .split(',')
        .map(String::from)
        .collect();
    let polls_before: Vec<u32> = orphans.iter().map(|id| get(id).polls).collect();
    let videos_submitted = emu.count("POST", VEO.submit);
    workers[busiest.1].kill();
    let killed_at = Instant::now();
    wait_until("the videos end", Duration::from_secs(90), || {
        pg.psql("atelier", "SELECT count(*) FROM jobs WHERE id LIKE 'v-%' AND state NOT IN ('done', 'failed', 'cancelled', 'unknown')") == "0"
    });
    assert!(killed_at.elapsed() > Duration::from_secs(4), "the orphans waited out the lease");
    for (id, before) in orphans.iter().zip(polls_before) {
        let j = get(id);
        assert_eq!((j.state, j.submits), (JobState::Done, 1), "{id} was pending on the killed worker: {j:?}");
        assert!(j.polls > before, "{id} was polled on by another worker ({before} → {})", j.polls);
    }
    for i in 0..12 {
        let j = get(&format!("v-{i:02}"));
        assert_eq!((j.state, j.submits), (JobState::Done, 1), "{j:?}");
    }
    assert_eq!(emu.count("POST", VEO.submit), videos_submitted, "no video was submitted again");

    // 4. The hung submit: unknown, one submit, never sent again.
    let hung = get("j-hung");
    assert_eq!((hung.state, hung.submits), (JobState::Unknown, 1), "{hung:?}");
    assert!(hung.error.as_deref().unwrap_or("").contains("not submitted again"), "{hung:?}");
    let unknown = io.block_on(store.list(&[JobState::Unknown])).unwrap();
    assert_eq!(unknown.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["j-hung"]);

    // The workers' heartbeats are in the store, and a front end's /metrics shows them.
    let seen = io.block_on(store.workers()).unwrap();
    assert!(seen.len() >= 4, "every worker that ran beat (3, and the one replacing the first killed): {seen:?}");
    let metrics = io.block_on(async { http.get(format!("{}/metrics", addrs[0])).send().await.unwrap().text().await.unwrap() });
    let beats = metrics.lines().filter(|l| l.starts_with("atelier_store_worker_heartbeat_age_seconds{")).count();
    assert!(beats >= 4 && metrics.contains("atelier_store_worker_leases{"), "{metrics}");
    assert!(metrics.contains("atelier_jobs{state=\"done\"} 212"), "{metrics}");
    assert!(metrics.contains("atelier_jobs{state=\"unknown\"} 1"), "{metrics}");
}

/// `atelier jobs cancel` on any machine: the worker holding the pending job hears the NOTIFY
/// and cancels it; a queued job is cancelled at once and never sent.
#[test]
fn a_cancel_reaches_the_worker_holding_the_job() {
    // A long lease, so only the NOTIFY (not a heartbeat reading the column) can be that quick.
    let Some(c) = OneEngine::start("veo-3", ("GEMINI_API_KEY", "emu-gemini-key"), "lease_s = 30", "poll_interval_ms = 100") else { return };
    let queue = |id: &str| c.queue(id, &veo_request("forever [fault:slow-op:100000]"));
    // Queued with no worker running: cancelled at once, nothing sent.
    queue("c-queued");
    let out = c.env.ok(&["jobs", "cancel", "c-queued"]);
    assert!(out.contains("nothing was sent"), "{out}");
    let _worker = Worker::start(&c.env, "worker", METRICS);
    queue("c-pending");
    wait_until("the job is polled", Duration::from_secs(60), || c.get("c-pending").polls >= 2);
    let t = Instant::now();
    let out = c.env.ok(&["jobs", "cancel", "c-pending"]);
    assert!(out.contains("the worker holding it cancels it"), "{out}");
    wait_until("the worker cancels it", Duration::from_secs(5), || c.get("c-pending").state == JobState::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(5), "heard by NOTIFY, not a 10 s heartbeat");
    let polls = c.get("c-pending").polls;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.get("c-pending").polls, polls, "no poll after the cancel");
    assert_eq!(c.get("c-queued").state, JobState::Cancelled);
    assert_eq!(c.emu.count("POST", VEO.submit), 1, "the queued job was never sent");
}

/// A worker stopped with SIGTERM hands its pending jobs over at once (no wait for the lease),
/// and another worker polls them to the end.
#[test]
fn a_stopped_worker_hands_its_pending_jobs_over_at_once() {
    let Some(c) = OneEngine::start("veo-3", ("GEMINI_API_KEY", "emu-gemini-key"), "lease_s = 60", "poll_interval_ms = 100") else { return };
    c.queue("h-1", &veo_request("handed over [fault:slow-op:40]"));
    let first = Worker::start(&c.env, "first", METRICS);
    wait_until("the job is polled", Duration::from_secs(60), || c.get("h-1").polls >= 2);
    let st = std::process::Command::new("kill").args(["-TERM", &first.pid().to_string()]).status().unwrap();
    assert!(st.success());
    let mut first = first;
    first.wait();
    let polls = c.get("h-1").polls;
    let _second = Worker::start(&c.env, "second", METRICS);
    let t = Instant::now();
    wait_until("the second worker polls on", Duration::from_secs(30), || c.get("h-1").polls > polls);
    assert!(t.elapsed() < Duration::from_secs(30), "taken well before the 60 s lease ran out");
    wait_until("the job ends", Duration::from_secs(60), || c.get("h-1").state == JobState::Done);
    let j = c.get("h-1");
    assert_eq!((j.state, j.submits), (JobState::Done, 1));
    assert_eq!(c.emu.count("POST", VEO.submit), 1);
}

/// A provider's limit on active tasks holds across workers: flux-kontext-max allows 6 (the
/// emulator refuses a 7th with 429); with the plugin's `max_in_flight = 6` and three workers, 18
/// slow edits go through with 18 submits and no refusal — each worker on its own would take 6.
#[test]
fn a_providers_limit_holds_across_workers() {
    let section = "poll_interval_ms = \"100\"\nmodel = \"flux-kontext-max\"\nlimits.max_in_flight = 6";
    let Some(c) = OneEngine::start("flux-kontext", ("BFL_API_KEY", "emu-bfl-key"), "lease_s = 10", section) else { return };
    let ids: Vec<String> = (0..18).map(|i| format!("f-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        c.queue(id, &atelier_tests::request(&format!("night {i} [fault:slow:10]")));
    }
    let _workers: Vec<Worker> = (0..3).map(|i| Worker::start(&c.env, &format!("worker{i}"), METRICS)).collect();
    // Sent and not ended. (A claim that raced past the cap shows as `submitting` for a moment
    // before it is put back; it never counts a submit.)
    let in_flight = || c.pg.psql("atelier", "SELECT count(*) FROM jobs WHERE state IN ('submitting', 'pending') AND submits > 0").parse::<u32>().unwrap();
    let mut most = 0;
    wait_until("18 edits done", Duration::from_secs(90), || {
        most = most.max(in_flight());
        c.io.block_on(c.store.list(&[JobState::Done])).unwrap().len() == ids.len()
    });
    assert!(most <= 6, "{most} sent and not ended at once, the limit is 6");
    for id in &ids {
        let j = c.get(id);
        assert_eq!((j.state, j.submits), (JobState::Done, 1), "{id}: {:?}", j.error);
    }
    assert_eq!(c.emu.count("POST", "/v1/flux-kontext-max"), 18, "no submit was refused by the provider and sent again");
}
