//! Issue 4's benchmark: 1,000 Veo jobs in flight against the emulator on this machine — peak RSS
//! and polls per second — and memory while downloading a large video.
//! Run: `cargo bench -p atelier-tests --bench jobs`.

use atelier::jobs::{JobDb, Runner};
use atelier::types as wb;
use atelier::types::Media;
use atelier_tests::{plugins_dir, runtime_over};
use std::sync::Arc;
use std::time::Instant;

fn rss_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs: usize = std::env::var("JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let emu = atelier_emulator::Emulator::start().await.unwrap();
    unsafe { std::env::set_var("GEMINI_API_KEY", "emu-gemini-key") };
    let (b, a) = (&emu.base_url, &emu.alt_url);
    let config = format!("[plugins.veo-3]\nbase_url = \"{b}\"\nallow_hosts = [\"{b}\", \"{a}\"]\npoll_interval_ms = 500\n[secrets]\nfrom_env = [\"veo-3\"]\n");
    let rt = runtime_over(vec![plugins_dir().join("veo-3")], &config, std::env::temp_dir().join("atelier-bench-cache"));
    let veo = rt.plugin("veo-3").unwrap();
    let info = veo.describe_model().await.unwrap();
    let params = atelier::params::resolve("veo-3", &info.params, &[]).unwrap();
    let png = {
        let img = image::RgbaImage::from_pixel(1280, 720, image::Rgba([90, 120, 200, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let state = tempfile::tempdir().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let runner = Arc::new(Runner::new(Arc::new(JobDb::open(state.path()).unwrap()), rx));
    let before = rss_kib("VmRSS:");

    // 1,000 jobs, each done on its 6th poll.
    let t = Instant::now();
    let mut tasks = vec![];
    for i in 0..jobs {
        let (runner, veo) = (runner.clone(), veo.clone());
        let req = wb::Request {
            prompt: format!("bench {i} [fault:slow-op:6]"),
            references: vec![Media { mime: "image/png".into(), bytes: png.clone() }],
            mask: None,
            n: 1,
            seed: None,
            output: wb::OutputKind::Video,
            aspect: None,
            size: None,
            params: params.clone(),
        };
        let model = info.model.clone();
        tasks.push(tokio::spawn(async move {
            let job = format!("bench-{i}");
            runner.run(&veo, &job, &model, &serde_json::json!({}), &req).await.map(|o| o.artifacts.len())
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap().is_ok_and(|n| n == 1) {
            ok += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let polls = emu.state.count("GET", "/v1beta/models/");
    let submits = emu.state.count("POST", "/v1beta/models/");
    let peak = rss_kib("VmHWM:");
    println!("{jobs} Veo jobs in flight: {ok} done in {secs:.1} s; {submits} submits, {polls} polls = {:.0} polls/s", polls as f64 / secs);
    println!("  RSS before {} MiB, peak {} MiB (host + in-process emulator)", before / 1024, peak / 1024);

    // One large video: the download streams to disk, so memory stays flat.
    let rss0 = rss_kib("VmRSS:");
    let req = wb::Request {
        prompt: "bench big [size:512MiB]".into(),
        references: vec![Media { mime: "image/png".into(), bytes: png.clone() }],
        mask: None,
        n: 1,
        seed: None,
        output: wb::OutputKind::Video,
        aspect: None,
        size: None,
        params,
    };
    let t = Instant::now();
    let out = runner.run(&veo, "bench-big", &info.model, &serde_json::json!({}), &req).await.unwrap();
    let size = std::fs::metadata(&out.artifacts[0].path).unwrap().len();
    println!(
        "  512 MiB video: downloaded {} MiB in {:.1} s; RSS {} MiB before, {} MiB after (peak so far {} MiB)",
        size >> 20,
        t.elapsed().as_secs_f64(),
        rss0 / 1024,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
}
