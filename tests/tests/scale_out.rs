//! Scale-out on PostgreSQL: three `atelier worker` processes share one job table against the
//! provider emulator. Jobs are queued in the store (as a front end queues them) and each is
//! submitted exactly once however the workers die:
//! - 200 mixed image (FLUX Kontext) and video (Veo) jobs all finish, and the emulator saw one
//!   submit per job;
//! - the worker holding the most of 12 pending videos is SIGKILLed mid-poll: the others poll them
//!   to the end once its lease runs out, with no submit sent again;
//! - a worker SIGKILLed in the middle of a submit (the emulator hangs it): the job becomes
//!   `unknown` with one submit, never sent again.

mod common;

use atelier::jobs::store::postgres::PgStore;
use atelier::jobs::store::{JobStore, NewJob};
use atelier::jobs::JobState;
use common::postgres::Postgres;
use common::{Emu, Env, FLUX, VEO};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const IDS: [&str; 2] = ["flux-kontext", "veo-3"];

/// A worker process, SIGKILLed when the test ends however it ends.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Worker {
    fn start(env: &Env, name: &str) -> Worker {
        let mut child = env.cmd().args(["worker", "--metrics", "127.0.0.1:0"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("atelier worker starts");
        let stderr = child.stderr.take().unwrap();
        let name = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
        Worker(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

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

#[test]
fn workers_share_the_jobs_and_never_submit_twice() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("atelier");
    let emu = Emu::start();
    // BFL allows 24 active tasks per key: each of the 3 workers takes 8 at a time (a limit per
    // process, split across the workers as an operator would), so no submit is refused.
    let extra = format!(
        "#global\n[jobs]\ndatabase = \"{url}\"\nlease_s = 4\nmax_backoff_s = 0.5\n---\n#flux-kontext\npoll_interval_ms = \"100\"\nlimits.max_in_flight = 8\n---\n#veo-3\npoll_interval_ms = 100"
    );
    let mut env = Env::new(&IDS);
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

    let mut workers: Vec<Worker> = (0..3).map(|i| Worker::start(&env, &format!("worker{i}"))).collect();

    // 1. A submit that hangs at the provider; its worker is killed in the middle of it.
    queue("j-hung", "veo-3", "dusk [fault:hang]");
    wait_until("the hung job is being submitted", Duration::from_secs(60), || get("j-hung").submits == 1 && emu.count("POST", VEO.submit) == 1);
    let pid = pid_of(&owner("j-hung")).expect("the submitting job has a lease owner");
    let victim = workers.iter().position(|w| w.pid() == pid).expect("the owner is one of ours");
    workers[victim].kill();
    workers[victim] = Worker::start(&env, "worker3");

    // 2. 200 mixed jobs, queued in one go: all finish, each submitted once.
    let t = Instant::now();
    let mut jobs = vec![];
    for i in 0..200 {
        let (engine, prompt) = match i % 2 {
            0 => ("flux-kontext", format!("photo {i} [fault:slow:3]")),
            _ => ("veo-3", format!("clip {i} [fault:slow-op:3]")),
        };
        let id = format!("j-{i:03}");
        queue(&id, engine, &prompt);
        jobs.push((id, engine));
    }
    let unfinished = "SELECT count(*) FROM jobs WHERE id LIKE 'j-%' AND id <> 'j-hung' AND state NOT IN ('done', 'failed', 'cancelled', 'unknown')";
    let mut last = Instant::now();
    wait_until("all 200 jobs end", Duration::from_secs(100), || {
        if last.elapsed() > Duration::from_secs(10) {
            last = Instant::now();
            eprintln!("jobs by state: {}", pg.psql("atelier", "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) AS n FROM jobs GROUP BY state) s"));
        }
        pg.psql("atelier", unfinished) == "0"
    });
    eprintln!("200 jobs over 3 workers in {:.1} s", t.elapsed().as_secs_f64());
    let mut per_engine = std::collections::BTreeMap::<&str, usize>::new();
    for (id, engine) in &jobs {
        let j = get(id);
        assert_eq!((j.state, j.submits), (JobState::Done, 1), "{id} ({engine}): {:?}", j.error);
        *per_engine.entry(engine).or_default() += 1;
    }
    // Exactly once, as the emulator counts: one submit per job (+1 for the hung one).
    assert_eq!(emu.count("POST", FLUX.submit), per_engine["flux-kontext"]);
    assert_eq!(emu.count("POST", VEO.submit), per_engine["veo-3"] + 1);

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

    // The workers' heartbeats are in the store, and each shows its leases in /metrics.
    let seen = io.block_on(store.workers()).unwrap();
    assert!(seen.len() >= 4, "every worker that ran beat: {seen:?}");
}
