//! Host benchmarks: `cargo bench -p atelier-tests --bench host` (release build).
//!
//! 1. Loading a plugin from a warm compile cache (`Runtime::new` + `plugin(id)`), per plugin.
//!    Goal: ≤ 1 ms per plugin.
//! 2. Per-job cost of a call: fresh store + instantiation + the call, via `cancel` (the smallest
//!    call: `hello` keeps the SDK's default, which returns `Ok(())`) and `describe`. Goal: ≤ 15 µs.
//! 3. The host's overhead on HTTP: K sequential GETs made by the `bench-http` plugin through the
//!    host (allow-list, secrets pass, size cap, copy into wasm) against K sequential GETs made
//!    directly with reqwest, to the same local server. Goal: ≤ 1.1×.

use atelier::{Runtime, RuntimeOptions, Settings};
use atelier_tests::{TestServer, notes, plugins_dir, request, root};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn runtime(dirs: Vec<PathBuf>, config: &str, cache: &PathBuf) -> Runtime {
    let settings = Settings::parse(config, None).expect("bench config parses");
    Runtime::new(settings, RuntimeOptions { plugin_dirs: dirs, cache_dir: Some(cache.clone()), ..Default::default() })
        .expect("runtime starts")
}

/// The ids of every staged plugin that loads (the hostile contract-version ones do not).
fn loadable_ids(cache: &PathBuf) -> Vec<String> {
    let rt = runtime(vec![plugins_dir()], "", cache);
    let failed: Vec<String> = rt.load_all().iter().map(|p| p.dir.file_name().unwrap().to_string_lossy().into_owned()).collect();
    rt.manifests().map(|m| m.id.clone()).filter(|id| !failed.contains(id)).collect()
}

fn bench_cached_load(cache: &PathBuf) {
    println!("== plugin load from a warm compile cache (goal <= 1 ms per plugin) ==");
    let ids = loadable_ids(cache); // also warms the cache
    const N: usize = 15;
    println!("{:<16} {:>10} {:>14} {:>14} {:>12}", "plugin", "wasm KiB", "Runtime::new", "plugin(id)", "total");
    let mut totals = vec![];
    for id in &ids {
        let dir = plugins_dir().join(id);
        let size = std::fs::metadata(dir.join("plugin.wasm")).map(|m| m.len()).unwrap_or(0);
        let (mut news, mut loads, mut both) = (vec![], vec![], vec![]);
        for _ in 0..N {
            let t0 = Instant::now();
            let rt = runtime(vec![dir.clone()], "", cache);
            let t1 = Instant::now();
            rt.plugin(id).expect("loads");
            let t2 = Instant::now();
            news.push(t1 - t0);
            loads.push(t2 - t1);
            both.push(t2 - t0);
            drop(rt);
        }
        let total = median(both);
        totals.push(total);
        println!(
            "{:<16} {:>10.0} {:>11.3} ms {:>11.3} ms {:>9.3} ms",
            id,
            size as f64 / 1024.0,
            us(median(news)) / 1e3,
            us(median(loads)) / 1e3,
            us(total) / 1e3
        );
    }
    let worst = totals.iter().max().copied().unwrap_or_default();
    println!("worst plugin: {:.3} ms (median of {N} runs each)\n", us(worst) / 1e3);
}

async fn bench_instantiation(cache: &PathBuf) {
    println!("== per-job call cost on a loaded plugin (goal <= 15 us) ==");
    let rt = runtime(vec![plugins_dir().join("hello")], "", cache);
    let hello = rt.model("hello").expect("hello loads");
    for _ in 0..200 {
        hello.cancel("warm", "").await.unwrap().unwrap();
    }
    const N: u32 = 5000;
    let mut rounds = vec![];
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..N {
            hello.cancel("job", "").await.unwrap().unwrap();
        }
        rounds.push(t0.elapsed() / N);
    }
    let cancel = median(rounds);
    let mut rounds = vec![];
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..N / 5 {
            hello.describe_model().await.unwrap();
        }
        rounds.push(t0.elapsed() / (N / 5));
    }
    let describe = median(rounds);
    println!("hello cancel():   {:>8.1} us per call (store + WASI ctx + instantiate from the pool + a call with no work + drop)", us(cancel));
    println!("hello describe(): {:>8.1} us per call (the same plus building and lifting a model-info record)\n", us(describe));
}

async fn bench_http(cache: &PathBuf) {
    println!("== HTTP round trip through a plugin vs reqwest directly (goal <= 1.1x) ==");
    let server = TestServer::start().await;
    let config = format!("[plugins.bench-http]\nallow_hosts = [\"{}\"]\n", server.origin());
    let rt = runtime(vec![plugins_dir().join("bench-http")], &config, cache);
    let plugin = rt.model("bench-http").expect("bench-http loads");
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    const K: u32 = 200;
    for size in [1024usize, 256 * 1024] {
        let url = server.url(&format!("/bytes/{size}"));
        let prompt = format!("{K} {url}");
        // Warm both paths (connections, pool slots).
        plugin.submit("warm", &request(&prompt)).await.unwrap().value.unwrap();
        for _ in 0..20 {
            direct.get(&url).send().await.unwrap().bytes().await.unwrap();
        }
        let (mut via_host, mut via_reqwest) = (vec![], vec![]);
        for _ in 0..7 {
            let t0 = Instant::now();
            let sub = plugin.submit("bench", &request(&prompt)).await.unwrap().value.unwrap();
            via_host.push(t0.elapsed() / K);
            assert_eq!(notes(&sub)["bytes"], (size * K as usize).to_string());

            let t0 = Instant::now();
            let mut bytes = 0;
            for _ in 0..K {
                let r = direct.get(&url).send().await.unwrap();
                assert!(r.status().is_success());
                bytes += r.bytes().await.unwrap().len();
            }
            via_reqwest.push(t0.elapsed() / K);
            assert_eq!(bytes, size * K as usize);
        }
        let (h, d) = (median(via_host), median(via_reqwest));
        println!(
            "{:>7} B responses, {K} sequential GETs: via plugin {:>7.1} us/request, direct reqwest {:>7.1} us/request, ratio {:.2}x",
            size,
            us(h),
            us(d),
            h.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, everything runs.
    let cache = root().join("target/bench-cache");
    std::fs::create_dir_all(&cache).expect("creating the bench cache dir");
    println!("atelier host benchmarks (cache {})\n", cache.display());
    bench_cached_load(&cache);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(bench_instantiation(&cache));
    rt.block_on(bench_http(&cache));
}
