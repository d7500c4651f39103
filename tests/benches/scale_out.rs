//! Issue 15's benchmark: jobs/s and p95 claim latency with 1, 2 and 4 `atelier worker` processes
//! sharing one PostgreSQL job table, and each worker's peak RSS, with 1,000 Veo jobs queued at
//! once (all in flight together) against the emulator.
//! Run: `cargo build --release -p atelier && cargo bench -p atelier-tests --bench scale_out`
//! (JOBS=… to change the count; needs Debian's `postgresql`). Jobs/s here is bound by each job's 6 polls 0.5 s
//! apart and by the emulator in this process: the claim latency and the RSS are the scale-out figures.

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use atelier::jobs::store::postgres::PgStore;
use atelier::jobs::store::{JobStore, NewJob};
use atelier::jobs::JobState;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn release_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("atelier");
    assert!(bin.exists(), "{} is missing: run `cargo build --release -p atelier` first", bin.display());
    bin
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

struct Worker {
    child: Child,
    metrics: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_worker(config: &std::path::Path, state: &std::path::Path, jobs: usize) -> Worker {
    let plugins = std::path::Path::new(env!("ATELIER_TEST_PLUGINS"));
    let dirs: Vec<String> = ["veo-3"].iter().map(|id| plugins.join(id).display().to_string()).collect();
    let mut child = Command::new(release_bin())
        .args(["worker", "--metrics", "127.0.0.1:0", "--max-jobs", &jobs.to_string()])
        .env("ATELIER_PLUGINS", dirs.join(":"))
        .env("ATELIER_NO_DEFAULT_PLUGINS", "true")
        .env("ATELIER_CACHE_DIR", std::env::temp_dir().join("atelier-bench-cache"))
        .env("ATELIER_STATE_DIR", state)
        .env("ATELIER_CONFIG", config)
        .env("GEMINI_API_KEY", "emu-gemini-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let metrics = loop {
        let line = lines.next().expect("the worker says where its metrics are").unwrap();
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            break rest.trim().trim_end_matches("/metrics").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Worker { child, metrics: format!("http://{metrics}") }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs: usize = std::env::var("JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let pg = postgres::Postgres::start().expect("PostgreSQL is needed: apt-get install -y postgresql");
    let emu = atelier_emulator::Emulator::start().await.unwrap();
    unsafe { std::env::set_var("GEMINI_API_KEY", "emu-gemini-key") };
    let (b, a) = (&emu.base_url, &emu.alt_url);
    let plugin_config = format!("[plugins.veo-3]\nbase_url = \"{b}\"\nallow_hosts = [\"{b}\", \"{a}\"]\npoll_interval_ms = 500\n[secrets]\nfrom_env = [\"veo-3\"]\n");
    let rt = atelier_tests::runtime_over(vec![atelier_tests::plugins_dir().join("veo-3")], &plugin_config, std::env::temp_dir().join("atelier-bench-cache"));
    let veo = rt.model("veo-3").unwrap();
    let req = atelier::jobs::saved::to_bytes(&atelier_tests::request("bench [fault:slow-op:6]")).unwrap();
    let http = reqwest::Client::new();
    println!("{jobs} Veo jobs queued at once, each done on its 6th poll (poll every 0.5 s), per run:");
    for n in [1usize, 2, 4] {
        let url = pg.database(&format!("bench{n}"));
        let work = tempfile::tempdir().unwrap();
        let config = work.path().join("atelier.toml");
        std::fs::write(&config, format!("[jobs]\ndatabase = \"{url}\"\nlease_s = 30\n{plugin_config}")).unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        let workers: Vec<Worker> = (0..n).map(|_| start_worker(&config, work.path(), jobs)).collect();
        let submits0 = emu.state.count("POST", "/v1beta/models/");
        let polls0 = emu.state.count("GET", "/v1beta/");
        let t = Instant::now();
        let plan = serde_json::json!({});
        for i in 0..jobs {
            let id = format!("b-{i:05}");
            store
                .create(&NewJob {
                    id: &id,
                    plugin: "veo-3",
                    model: "veo-3",
                    plan: &plan,
                    contract: veo.contract(),
                    component_digest: veo.component_digest(),
                    queued_request: Some(&req),
                    lease: None,
                })
                .await
                .unwrap();
        }
        let queued_in = t.elapsed();
        loop {
            let counts = store.count_by_state().await.unwrap();
            let ended: u64 = counts.iter().filter(|(s, _)| s.is_final() || *s == JobState::Unknown).map(|(_, c)| c).sum();
            if ended as usize >= jobs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        let done = store.list(&[JobState::Done]).await.unwrap().len();
        let submits = emu.state.count("POST", "/v1beta/models/") - submits0;
        let polls = emu.state.count("GET", "/v1beta/") - polls0;
        let mut p95 = vec![];
        let mut rss = vec![];
        for w in &workers {
            let text = http.get(format!("{}/metrics", w.metrics)).send().await.unwrap().text().await.unwrap();
            let q = text.lines().find(|l| l.starts_with("atelier_worker_claim_seconds") && l.contains("quantile=\"0.95\"")).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
            p95.push(format!("{:.2}", q * 1000.0));
            rss.push(format!("{}", vm_hwm_kib(w.child.id()) / 1024));
        }
        println!(
            "  {n} worker(s): {done}/{jobs} done in {secs:.1} s = {:.0} jobs/s ({submits} submits, {polls} GETs (6 polls + 1 download a job) = {:.0} GETs/s; queued in {:.1} s); p95 claim ms per worker [{}]; peak RSS MiB per worker [{}]",
            jobs as f64 / secs,
            polls as f64 / secs,
            queued_in.as_secs_f64(),
            p95.join(", "),
            rss.join(", ")
        );
        drop(workers);
    }
}
