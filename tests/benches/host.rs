//! Host benchmarks: `cargo bench -p atelier-tests --bench host` (release build).
//!
//! 1. Loading a plugin from a warm compile cache (`Runtime::new` + `plugin(id)`), per plugin.
//!    Goal: ≤ 1 ms per plugin.
//! 2. Per-job cost of a call: fresh store + instantiation + the call, via `cancel` (the smallest
//!    call: `hello` keeps the SDK's default, which returns `Ok(())`) and `describe`. Goal: ≤ 15 µs.
//! 3. The host's overhead on HTTP: K sequential GETs made by the `bench-http` plugin through the
//!    host (allow-list, secrets pass, size cap, copy into wasm) against K sequential GETs made
//!    directly with reqwest, to the same local server. Goal: ≤ 1.1×.

use atelier::caps::http::Outbound;
use atelier::{Runtime, RuntimeOptions, Settings};
use std::sync::atomic::AtomicBool;
use atelier_tests::{TestServer, notes, plugins_dir, request, root};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn runtime(dirs: Vec<PathBuf>, config: &str, cache: &Path) -> Runtime {
    let settings = Settings::parse(config, None).expect("bench config parses");
    Runtime::new(settings, RuntimeOptions { plugin_dirs: dirs, only_given_dirs: true, cache_dir: Some(cache.to_path_buf()), ..Default::default() })
        .expect("runtime starts")
}

/// The ids of every staged plugin that loads (the hostile contract-version ones do not).
fn loadable_ids(cache: &Path) -> Vec<String> {
    let rt = runtime(vec![plugins_dir()], "", cache);
    let failed: Vec<String> = rt.load_all().iter().map(|p| p.dir.file_name().unwrap().to_string_lossy().into_owned()).collect();
    rt.manifests().map(|m| m.id.clone()).filter(|id| !failed.contains(id)).collect()
}

fn bench_cached_load(cache: &Path) {
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

async fn bench_instantiation(cache: &Path) {
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

async fn bench_http(cache: &Path) {
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
        let cap = plugin.http().expect("a model has the http capability");
        let (mut via_host, mut via_reqwest, mut via_cap) = (vec![], vec![], vec![]);
        for _ in 0..7 {
            // The host's capability alone, called natively: allow-list, secrets pass, size cap.
            let t0 = Instant::now();
            for _ in 0..K {
                let out = Outbound { method: "GET".into(), url: url.clone(), headers: vec![], body: vec![], timeout: None };
                let r = cap.send(out, &AtomicBool::new(false)).await.unwrap();
                assert_eq!(r.body.len(), size);
            }
            via_cap.push(t0.elapsed() / K);

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
        let (h, d, c) = (median(via_host), median(via_reqwest), median(via_cap));
        println!(
            "{:>7} B responses, {K} sequential GETs: via plugin {:>7.1} us/request, direct reqwest {:>7.1} us/request, ratio {:.2}x",
            size,
            us(h),
            us(d),
            h.as_secs_f64() / d.as_secs_f64()
        );
        println!(
            "{:>7} B responses: the host's http capability called natively {:>7.1} us/request ({:.2}x direct); the wasm boundary adds {:.1} us",
            size,
            us(c),
            c.as_secs_f64() / d.as_secs_f64(),
            us(h) - us(c)
        );
    }
    println!();
}

/// Where the time of a cached load goes, for the largest component: the warm path (stamp index,
/// artifact memory-mapped) against what a load costs when every byte is verified (read + BLAKE3
/// of the .wasm for the key, read + BLAKE3 of the .cwasm, deserialize from the bytes), the path
/// taken when a stamp does not match.
fn bench_load_breakdown(cache: &Path) {
    use atelier::wasm::engine::{EngineOptions, WasmEngine};
    println!("== where a cached load goes (largest component) ==");
    let biggest = std::fs::read_dir(plugins_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("plugin.wasm"))
        .filter(|p| p.exists())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let t0 = Instant::now();
    let engine = WasmEngine::new(&EngineOptions::default(), cache.to_path_buf()).unwrap();
    let engine_new = t0.elapsed();
    engine.load_component(&biggest).unwrap(); // warm
    let artifact = std::fs::read_dir(cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let (mut load, mut verified) = (vec![], vec![]);
    for _ in 0..15 {
        let t = Instant::now();
        std::hint::black_box(engine.load_component(&biggest).unwrap());
        load.push(t.elapsed());
        let t = Instant::now();
        let wasm = std::fs::read(&biggest).unwrap();
        std::hint::black_box(blake3::hash(&wasm));
        let art = std::fs::read(&artifact).unwrap();
        std::hint::black_box(blake3::hash(&art));
        // SAFETY: the artifact was written by this engine configuration just above.
        std::hint::black_box(unsafe { wasmtime::component::Component::deserialize(&engine.engine, &art) }.unwrap());
        verified.push(t.elapsed());
    }
    let (warm, full) = (median(load), median(verified));
    println!("component {} ({} KiB), artifact {} KiB", biggest.display(), std::fs::metadata(&biggest).unwrap().len() / 1024, std::fs::metadata(&artifact).unwrap().len() / 1024);
    println!("WasmEngine::new (pooling engine + epoch thread):        {:>8.3} ms", us(engine_new) / 1e3);
    println!("load_component, warm (stamps match, artifact mmapped):  {:>8.3} ms", us(warm) / 1e3);
    println!("every byte verified (hash both files, deserialize):    {:>8.3} ms  ({:.1}x the warm path)", us(full) / 1e3, full.as_secs_f64() / warm.as_secs_f64());
    println!();
}

/// The per-job path of `Plugin::call`, stage by stage, through the host's public pieces.
async fn bench_call_breakdown(cache: &Path) {
    use atelier::plugin::Linkers;
    use atelier::wasm::since_v0_1::model::ModelPre;
    use atelier::wasm::engine::{EngineOptions, WasmEngine};
    use atelier::wasm::store::{PluginCtx, new_store};
    use std::sync::Arc;
    println!("== per-job call, stage by stage (hello, cancel) ==");
    let engine = WasmEngine::new(&EngineOptions::default(), cache.to_path_buf()).unwrap();
    let linkers = Linkers::new(&engine.engine).unwrap();
    // The prebuilt contract-0.1.0 hello: a bare call needs one version's bindings, and this one never changes.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hello-0.1.0/plugin.wasm");
    let component = engine.load_component(&fixture).unwrap();
    let pre = ModelPre::new(linkers.model_v0_1().instantiate_pre(&component).unwrap()).unwrap();
    let ctx = Arc::new(PluginCtx {
        id: "hello".into(),
        config: Default::default(),
        http: None,
        memory_limit: 256 << 20,
        call_timeout: Duration::from_secs(60),
        limits: Default::default(),
        config_path: "atelier.toml".into(),
        log_rate: Default::default(),
    });
    const N: u32 = 3000;
    let (mut store_t, mut inst_t, mut call_t, mut drop_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for i in 0..N + 200 {
        let t0 = Instant::now();
        let mut store = new_store(&engine.engine, ctx.clone(), "job");
        let t1 = Instant::now();
        let inst = pre.instantiate_async(&mut store).await.unwrap();
        let t2 = Instant::now();
        inst.atelier_plugin_backend().call_cancel(&mut store, "").await.unwrap().unwrap();
        let t3 = Instant::now();
        drop(store);
        let t4 = Instant::now();
        if i >= 200 {
            store_t += t1 - t0;
            inst_t += t2 - t1;
            call_t += t3 - t2;
            drop_t += t4 - t3;
        }
    }
    let total = store_t + inst_t + call_t + drop_t;
    println!("new_store (WasiCtx, limiter, epoch deadline): {:>6.1} us", us(store_t / N));
    println!("instantiate_async from the pool:              {:>6.1} us", us(inst_t / N));
    println!("call_cancel (enter, no work, return):         {:>6.1} us", us(call_t / N));
    println!("drop the store (return the pool slot):        {:>6.1} us", us(drop_t / N));
    println!("sum:                                          {:>6.1} us\n", us(total / N));
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, everything runs.
    let cache = root().join("target/bench-cache");
    std::fs::create_dir_all(&cache).expect("creating the bench cache dir");
    println!("atelier host benchmarks (cache {})\n", cache.display());
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        // Measured here: with it, a per-job call costs ~18 us instead of ~13 (wasmtime builds an
        // error value inside every call, and each then walks the stack).
        println!("note: RUST_BACKTRACE is set, so every error wasmtime creates captures a backtrace; per-call figures are slower than a deployed host's (run with `env -u RUST_BACKTRACE`)\n");
    }
    bench_cached_load(&cache);
    bench_load_breakdown(&cache);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(bench_instantiation(&cache));
    rt.block_on(bench_call_breakdown(&cache));
    rt.block_on(bench_http(&cache));
}
