//! Issue 11's benchmark: `atelier serve` (classic, no keys) under concurrent `images.edit` calls
//! (multipart, a 512² PNG) at concurrency 1, 4, 16 and 64: requests per second, p50 / p95 latency,
//! how many were shed with 429 (retried after `retry-after-ms`, as the OpenAI SDKs do), and the
//! server's peak and after-burst RSS.
//!
//! The server runs in a child process (this binary again, started with `ATELIER_BENCH_SERVE=1`,
//! calling `atelier::server::start` as `atelier serve --insecure-no-auth` does), so the RSS read
//! from `/proc/<pid>/status` is the server's alone.
//! Then a burst of `BIG` (default 8, 0 skips it) edits of a 10000² PNG at concurrency 4: peak and
//! after-burst RSS again.
//! Run: `cargo bench -p atelier-tests --bench serve` (`REQUESTS=N` per level, default 4 × concurrency, at least 16).

use atelier_tests::{plugins_dir, runtime_over};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    if std::env::var_os("ATELIER_BENCH_SERVE").is_some() {
        return serve();
    }
    // The child: a server on a free loopback port, which prints its address.
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("ATELIER_BENCH_SERVE", "1")
        .env("ATELIER_BENCH_STATE", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().to_string();
    assert!(!addr.is_empty(), "the server did not start");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(drive(&addr, pid));
    let _ = child.kill();
    let _ = child.wait();
}

/// The server side: `atelier serve` over the classic plugin, with no tokens, on loopback.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let state = std::path::PathBuf::from(std::env::var_os("ATELIER_BENCH_STATE").unwrap());
        let runtime = runtime_over(vec![plugins_dir().join("classic")], "", std::env::temp_dir().join("atelier-bench-cache"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = atelier::server::start(runtime, listener, atelier::server::ServeOptions { state_dir: state, insecure_no_auth: true }).await.unwrap();
        println!("{}", running.addr);
        running.wait().await.unwrap();
    });
}

/// KiB of `field` (`VmRSS:`, `VmHWM:`) of process `pid`.
fn kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn multipart(png: &[u8], seed: usize) -> (String, Vec<u8>) {
    let boundary = "----atelier-bench-7d9f";
    let mut body = vec![];
    for (name, value) in [("model", "classic"), ("prompt", "oil painting, warmer, vignette"), ("seed", &seed.to_string())] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One burst: `n` edits of `png` from `concurrency` clients; (latencies, 429s, peak RSS KiB, wall s).
async fn burst(client: &reqwest::Client, url: &str, png: &[u8], pid: u32, concurrency: usize, n: usize) -> (Vec<f64>, u64, u64, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let png = Arc::new(png.to_vec());
    let t = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (client, url, png, next, shed) = (client.clone(), url.to_string(), png.clone(), next.clone(), shed.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return latencies;
                }
                let started = Instant::now();
                // As the OpenAI SDKs do: a 429 is retried after the time it names.
                for _attempt in 0..20 {
                    let (ct, body) = multipart(&png, i + 1);
                    let r = client.post(&url).header("content-type", ct).body(body).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => {
                            r.bytes().await.unwrap();
                            break;
                        }
                        429 => {
                            shed.fetch_add(1, Ordering::Relaxed);
                            // `retry-after-ms` first, as the SDKs read it.
                            let header = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
                            let ms = header("retry-after-ms").or(header("retry-after").map(|s| s * 1000)).unwrap_or(1000);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        s => panic!("HTTP {s}: {}", r.text().await.unwrap()),
                    }
                }
                latencies.push(started.elapsed().as_secs_f64());
            }
        }));
    }
    let mut lat = vec![];
    for w in workers {
        lat.extend(w.await.unwrap());
    }
    let wall = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    lat.sort_by(|a, b| a.total_cmp(b));
    (lat, shed.load(Ordering::Relaxed), peak.load(Ordering::Relaxed), wall)
}

/// A w×h PNG; big ones are smooth gradients, so the upload stays under `max_body_mb`.
fn encode_png(w: u32, h: u32) -> Vec<u8> {
    let img = if w > 4096 {
        image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 120, 255]))
    } else {
        image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x / 2) as u8, (y / 2) as u8, ((x * y) % 251) as u8, 255]))
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn drive(addr: &str, pid: u32) {
    let png = encode_png(512, 512);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/images/edits");
    // Warm up: the first call loads the component and faults in the pool.
    let (ct, body) = multipart(&png, 0);
    let r = client.post(&url).header("content-type", ct).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    println!("server pid {pid}, RSS after one edit: {} MiB", kib(pid, "VmRSS:") / 1024);
    println!("{:>11} {:>8} {:>8} {:>9} {:>9} {:>6} {:>14} {:>16}", "concurrency", "requests", "req/s", "p50 s", "p95 s", "429s", "peak RSS MiB", "after-burst MiB");
    let row = |label: String, lat: &[f64], shed: u64, peak: u64, wall: f64, after: u64| {
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
        println!("{label:>11} {:>8} {:>8.1} {:>9.3} {:>9.3} {shed:>6} {:>14} {:>16}", lat.len(), lat.len() as f64 / wall, pct(0.5), pct(0.95), peak / 1024, after / 1024);
    };
    for concurrency in [1usize, 4, 16, 64] {
        let n: usize = std::env::var("REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or((4 * concurrency).max(16));
        let (lat, shed, peak, wall) = burst(&client, &url, &png, pid, concurrency, n).await;
        // After the burst: give the server a moment to finish its clean-up and hand memory back.
        tokio::time::sleep(Duration::from_secs(3)).await;
        row(concurrency.to_string(), &lat, shed, peak, wall, kib(pid, "VmRSS:"));
    }
    let big: usize = std::env::var("BIG").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    if big > 0 {
        let png = encode_png(10_000, 10_000);
        let (lat, shed, peak, wall) = burst(&client, &url, &png, pid, 4, big).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        row("4 (10000²)".into(), &lat, shed, peak, wall, kib(pid, "VmRSS:"));
    }
    println!("server VmHWM (peak RSS over the whole run): {} MiB", kib(pid, "VmHWM:") / 1024);
}
