//! Issue 3's benchmark: the 5-step chain (resize → crop → adjust → sharpen → watermark) on a 12 MP
//! image, through the wasm filters component (one call, as the host runs it) vs the same Rust code
//! compiled natively, vs ImageMagick doing the same chain on the command line. Issue 13 adds the
//! native tier (docs/native.md): the same code as a pinned shared library called through the host.
//! Run: `CARGO_TARGET_DIR=target/bench cargo bench -p atelier-tests --bench filters`; `ATELIER_BENCH_RUNS=n`
//! sets the runs per measurement. Times are wall and CPU (the latter is steadier on a shared machine).

use atelier::types as wf;
use atelier::types as wt;
use atelier_tests::{plugins_dir, runtime_over};
use std::time::Instant;

/// Timed runs per measurement (`ATELIER_BENCH_RUNS` overrides).
fn runs() -> usize {
    std::env::var("ATELIER_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(7)
}

fn to_host_value(v: &atelier_sdk::Value) -> wt::Value {
    match v {
        atelier_sdk::Value::Boolean(b) => wt::Value::Boolean(*b),
        atelier_sdk::Value::Integer(i) => wt::Value::Integer(*i),
        atelier_sdk::Value::Number(n) => wt::Value::Number(*n),
        atelier_sdk::Value::Text(t) => wt::Value::Text(t.clone()),
        atelier_sdk::Value::Media(m) => wt::Value::Media(wt::Media { mime: m.mime.clone(), bytes: m.bytes.clone() }),
    }
}

/// CPU time of this process so far (all threads, page faults included), in ms. Unlike wall time
/// it does not count the time other processes on a busy machine hold the cores, so it is the
/// steadier measure of the work done.
fn cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid timespec (64-bit Linux layout) that clock_gettime fills in.
    if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return f64::NAN;
    }
    ts.sec as f64 * 1e3 + ts.nsec as f64 / 1e6
}

/// Wall and CPU ms of one run.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: f64,
    cpu: f64,
}

/// Start timing; `stop` turns the mark into a [`Sample`].
fn start() -> (Instant, f64) {
    (Instant::now(), cpu_ms())
}

fn stop((t, c): (Instant, f64)) -> Sample {
    Sample { wall: t.elapsed().as_secs_f64() * 1000.0, cpu: cpu_ms() - c }
}

/// Median and best of wall and CPU times.
#[derive(Clone, Copy)]
struct Stats {
    wall_median: f64,
    wall_best: f64,
    cpu_median: f64,
    cpu_best: f64,
}

fn stats(samples: &[Sample]) -> Stats {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0])
    };
    let (wall_median, wall_best) = pick(|s| s.wall);
    let (cpu_median, cpu_best) = pick(|s| s.cpu);
    Stats { wall_median, wall_best, cpu_median, cpu_best }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = runs();
    let (w, h) = (4000, 3000);
    let native_img = plugin_filters::bench_image(w, h);
    let native_steps = plugin_filters::bench_chain_steps();

    let rt = runtime_over(vec![plugins_dir().join("filters")], "", std::env::temp_dir().join("atelier-bench-cache"));
    let filters = rt.plugin("filters").unwrap();
    let steps: Vec<wf::Step> = native_steps
        .iter()
        .map(|s| wf::Step { name: s.name.clone(), params: s.params.iter().map(|p| wt::Param { name: p.name.clone(), value: to_host_value(&p.value) }).collect() })
        .collect();
    let img = wt::Image { width: w, height: h, pixels: native_img.pixels.clone() };

    // The native tier: this crate's cdylib (built beside the bench binary for the plugin-filters
    // dev-dependency), staged with plugins/filters/native.toml and pinned, as an operator would.
    let native_dir = tempfile::tempdir().unwrap();
    let native_tier = {
        use sha2::Digest;
        let exe = std::env::current_exe().unwrap();
        let lib = exe.parent().unwrap().join(format!("{}plugin_filters{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
        let dir = native_dir.path().join("filters-native");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(atelier_tests::root().join("plugins/filters/native.toml"), dir.join("plugin.toml")).unwrap();
        let bytes = std::fs::read(&lib).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
        std::fs::write(dir.join("libfilters.so"), &bytes).unwrap();
        let pin = format!("[plugins.filters-native]\nnative_sha256 = \"{}\"\n", hex::encode(sha2::Sha256::digest(&bytes)));
        let rt = runtime_over(vec![dir], &pin, std::env::temp_dir().join("atelier-bench-cache"));
        rt.plugin("filters-native").unwrap()
    };

    // Warm-up, and the check that both compute the same pixels.
    let first = filters.apply("bench", img.clone(), &steps).await.unwrap().unwrap();
    let tier = native_tier.apply("bench", img.clone(), &steps).await.unwrap().unwrap();
    assert!(tier.pixels == first.pixels, "the native tier and wasm compute the same pixels");
    assert_eq!((first.width, first.height), (1600, 1200));
    let native_out = plugin_filters::run_chain(native_img.clone(), &native_steps).unwrap();
    assert_eq!(first.pixels, native_out.pixels, "wasm and native compute the same pixels");

    // More shapes and filters through the resize (wasm has its own row-by-row kernels for
    // shrinking; natively the crate's): the same pixels either way.
    let shapes = [
        (97, 61, 48, 30, "lanczos3"),
        (333, 250, 100, 99, "catmull-rom"),
        (640, 480, 639, 479, "triangle"),
        (1001, 777, 64, 48, "gaussian"),
        (50, 40, 17, 3, "lanczos3"),
        (1000, 10, 999, 9, "lanczos3"),
        (64, 64, 100, 30, "lanczos3"),
    ];
    for (sw, sh, dw, dh, filter) in shapes {
        let image = plugin_filters::bench_image(sw, sh);
        let step = atelier_sdk::Step {
            name: "resize".into(),
            params: vec![
                atelier_sdk::Param::new("width", dw as i64),
                atelier_sdk::Param::new("height", dh as i64),
                atelier_sdk::Param::new("filter", filter),
            ],
        };
        let native = plugin_filters::run_step(image.clone(), &step).unwrap();
        let host_step = wf::Step {
            name: step.name.clone(),
            params: step.params.iter().map(|p| wt::Param { name: p.name.clone(), value: to_host_value(&p.value) }).collect(),
        };
        let input = wt::Image { width: sw, height: sh, pixels: image.pixels };
        let wasm = filters.apply("bench", input.clone(), &[host_step]).await.unwrap().unwrap();
        assert!(wasm.pixels == native.pixels, "resize {sw}x{sh} -> {dw}x{dh} ({filter}): wasm and native differ");
    }

    // The whole chain natively and through the host (one `apply` call, pixels crossing the
    // boundary once), and the boundary alone (fresh instance, 48 MB in and out, no step), the
    // three interleaved so that both see the same machine load.
    let (mut native, mut wasm, mut boundary, mut tier) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let mark = start();
        let out = native_tier.apply("bench", img.clone(), &steps).await.unwrap().unwrap();
        tier.push(stop(mark));
        std::hint::black_box(out);

        let input = native_img.clone();
        let mark = start();
        let out = plugin_filters::run_chain(input, &native_steps).unwrap();
        native.push(stop(mark));
        std::hint::black_box(out);

        let mark = start();
        let out = filters.apply("bench", img.clone(), &steps).await.unwrap().unwrap();
        wasm.push(stop(mark));
        std::hint::black_box(out);

        let mark = start();
        let out = filters.apply("bench", img.clone(), &[]).await.unwrap().unwrap();
        boundary.push(stop(mark));
        std::hint::black_box(out);
    }
    let (n, wa, b, t) = (stats(&native), stats(&wasm), stats(&boundary), stats(&tier));
    println!("5-step chain on {w}x{h} (resize 2000w → crop 1600x1200 → adjust → sharpen → watermark), {runs} runs, ms:");
    println!("                         wall median (best)   cpu median (best)");
    let line = |label: &str, s: &Stats| {
        println!("  {label:<22} {:8.1} ({:6.1})   {:8.1} ({:6.1})", s.wall_median, s.wall_best, s.cpu_median, s.cpu_best)
    };
    line("native Rust", &n);
    line("native tier via host", &t);
    line("wasm via the host", &wa);
    line("  boundary (no steps)", &b);
    println!(
        "  ratio wasm/native: wall median {:.2}x, best {:.2}x; cpu median {:.2}x, best {:.2}x",
        wa.wall_median / n.wall_median,
        wa.wall_best / n.wall_best,
        wa.cpu_median / n.cpu_median,
        wa.cpu_best / n.cpu_best
    );
    println!(
        "  ratio wasm/native tier: wall median {:.2}x, best {:.2}x; cpu median {:.2}x, best {:.2}x (goal ≤ 1.3x)",
        wa.wall_median / t.wall_median,
        wa.wall_best / t.wall_best,
        wa.cpu_median / t.cpu_median,
        wa.cpu_best / t.cpu_best
    );
    println!(
        "  ratio native tier/native Rust: wall median {:.2}x, best {:.2}x (the C ABI's copies and the blocking pool)",
        t.wall_median / n.wall_median,
        t.wall_best / n.wall_best
    );

    // Per step. Natively: each step timed on its own input. In wasm: every prefix of the chain
    // followed by a 1x1 crop (so the result crossing back is one pixel, whatever the prefix made),
    // and a step's cost is the difference between its prefix and the one before; the empty prefix
    // is the fixed cost (fresh instance + 48 MB in). Best of the runs (the least disturbed by load).
    let one_pixel = wf::Step {
        name: "crop".into(),
        params: ["width", "height"].map(|n| wt::Param { name: n.into(), value: wt::Value::Integer(1) }).to_vec(),
    };
    let mut inputs = vec![native_img.clone()];
    for step in &native_steps {
        let next = plugin_filters::run_step(inputs.last().unwrap().clone(), step).unwrap();
        inputs.push(next);
    }
    let mut prefixes = vec![vec![]; steps.len() + 1];
    let mut native_steps_t = vec![vec![]; steps.len()];
    for _ in 0..runs {
        for (k, samples) in prefixes.iter_mut().enumerate() {
            let mut chain = steps[..k].to_vec();
            chain.push(one_pixel.clone());
            let mark = start();
            let out = filters.apply("bench", img.clone(), &chain).await.unwrap().unwrap();
            samples.push(stop(mark));
            std::hint::black_box(out);
        }
        for (k, step) in native_steps.iter().enumerate() {
            let input = inputs[k].clone();
            let mark = start();
            let out = plugin_filters::run_step(input, step).unwrap();
            native_steps_t[k].push(stop(mark));
            std::hint::black_box(out);
        }
    }
    let prefix: Vec<Stats> = prefixes.iter().map(|s| stats(s)).collect();
    println!("  per step, best of {runs} (wasm = difference of chain prefixes ending in a 1x1 crop), ms:");
    println!("    {:<10} {:>8} {:>8} {:>6}   {:>8} {:>8} {:>6}", "step", "wall nat", "wasm", "ratio", "cpu nat", "wasm", "ratio");
    println!("    {:<10} {:>8} {:>8.1} {:>6}   {:>8} {:>8.1}", "(in+inst)", "", prefix[0].wall_best, "", "", prefix[0].cpu_best);
    for (k, step) in native_steps.iter().enumerate() {
        let nat = stats(&native_steps_t[k]);
        let (ww, wc) = (prefix[k + 1].wall_best - prefix[k].wall_best, prefix[k + 1].cpu_best - prefix[k].cpu_best);
        println!(
            "    {:<10} {:>8.1} {:>8.1} {:>5.2}x   {:>8.1} {:>8.1} {:>5.2}x",
            step.name,
            nat.wall_best,
            ww,
            ww / nat.wall_best,
            nat.cpu_best,
            wc,
            wc / nat.cpu_best
        );
    }
    let wm = wa.wall_median;
    let runs_im = runs;

    // ImageMagick, if the real one is installed: same chain on the command line (decode/encode of
    // an uncompressed PPM pair is included, the host's timings above exclude codecs).
    let im = std::process::Command::new("convert").arg("-version").output();
    if im.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ImageMagick")) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.ppm");
        let rgb: Vec<u8> = native_img.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let mut ppm = format!("P6\n{w} {h}\n255\n").into_bytes();
        ppm.extend_from_slice(&rgb);
        std::fs::write(&src, ppm).unwrap();
        let out = dir.path().join("out.ppm");
        let args = [
            src.to_str().unwrap(), "-filter", "Lanczos", "-resize", "2000x", "-gravity", "center", "-crop", "1600x1200+0+0", "+repage",
            "-brightness-contrast", "5x10", "-modulate", "100,120,100", "-unsharp", "0x1+0.8+0", "-gravity", "southeast",
            "-fill", "rgba(255,255,255,0.6)", "-pointsize", "60", "-annotate", "+32+32", "(c) atelier", out.to_str().unwrap(),
        ];
        let mut times = vec![];
        for _ in 0..runs_im.min(3) {
            let t = Instant::now();
            let st = std::process::Command::new("convert").args(args).status().unwrap();
            assert!(st.success());
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let (im_m, im_min) = (times[times.len() / 2], times[0]);
        println!("  ImageMagick convert  {im_m:8.1} ms (best {im_min:.1})   ratio wasm/imagemagick = {:.2}x  (includes PPM read/write)", wm / im_m);
        println!("    convert {}", args.join(" "));
    } else {
        println!("  ImageMagick: not installed (apt-get install imagemagick) — skipped");
    }
}
