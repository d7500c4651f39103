//! Issue 3's benchmark: the 5-step chain (resize → crop → adjust → sharpen → watermark) on a 12 MP
//! image, through the wasm filters component (one call, as the host runs it) vs the same Rust code
//! compiled natively, vs ImageMagick doing the same chain on the command line.
//! Run: `cargo bench -p atelier-tests --bench filters`.

use atelier::wit_filters as wf;
use atelier::wit_types as wt;
use atelier_tests::{plugins_dir, runtime_over};
use std::time::Instant;

const RUNS: usize = 5;

fn to_host_value(v: &atelier_sdk::Value) -> wt::Value {
    match v {
        atelier_sdk::Value::Boolean(b) => wt::Value::Boolean(*b),
        atelier_sdk::Value::Integer(i) => wt::Value::Integer(*i),
        atelier_sdk::Value::Number(n) => wt::Value::Number(*n),
        atelier_sdk::Value::Text(t) => wt::Value::Text(t.clone()),
        atelier_sdk::Value::Media(m) => wt::Value::Media(wt::Media { mime: m.mime.clone(), bytes: m.bytes.clone() }),
    }
}

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[0])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (w, h) = (4000, 3000);
    let native_img = plugin_filters::bench_image(w, h);
    let native_steps = plugin_filters::bench_chain_steps();

    // Native.
    let mut native = vec![];
    let _ = plugin_filters::run_chain(native_img.clone(), &native_steps).unwrap();
    for _ in 0..RUNS {
        let input = native_img.clone();
        let t = Instant::now();
        let out = plugin_filters::run_chain(input, &native_steps).unwrap();
        native.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(out);
    }

    // Wasm, through the host: the steps in one `apply` call, pixels crossing the boundary once.
    let rt = runtime_over(vec![plugins_dir().join("filters")], "", std::env::temp_dir().join("atelier-bench-cache"));
    let filters = rt.plugin("filters").unwrap();
    let steps: Vec<wf::Step> = native_steps
        .iter()
        .map(|s| wf::Step { name: s.name.clone(), params: s.params.iter().map(|p| wt::Param { name: p.name.clone(), value: to_host_value(&p.value) }).collect() })
        .collect();
    let img = wt::Image { width: w, height: h, pixels: native_img.pixels.clone() };
    let first = filters.apply("bench", &img, &steps).await.unwrap().unwrap();
    assert_eq!((first.width, first.height), (1600, 1200));
    let native_out = plugin_filters::run_chain(native_img.clone(), &native_steps).unwrap();
    assert_eq!(first.pixels, native_out.pixels, "wasm and native compute the same pixels");
    let mut wasm = vec![];
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = filters.apply("bench", &img, &steps).await.unwrap().unwrap();
        wasm.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(out);
    }

    // The boundary alone: a fresh instance, the 48 MB image copied in and out, no step run.
    let mut boundary = vec![];
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = filters.apply("bench", &img, &[]).await.unwrap().unwrap();
        boundary.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(out);
    }

    let (nm, nmin) = stats(native);
    let (bm, _) = stats(boundary);
    let (wm, wmin) = stats(wasm);
    println!("5-step chain on {w}x{h} (resize 2000w → crop 1600x1200 → adjust → sharpen → watermark), median of {RUNS}:");
    println!("  native Rust          {nm:8.1} ms (best {nmin:.1})");
    println!("  wasm via the host    {wm:8.1} ms (best {wmin:.1})   ratio wasm/native = {:.2}x", wm / nm);
    println!("    of which the boundary (fresh instance + 48 MB in + result out, no steps): {bm:.1} ms");

    // Per step. Natively: each step timed on its own input. In wasm: every prefix of the chain
    // followed by a 1x1 crop (so the result crossing back is one pixel, whatever the prefix made),
    // and a step's cost is the difference between its prefix and the one before; the empty prefix
    // is the fixed cost (fresh instance + 48 MB in).
    let one_pixel = wf::Step {
        name: "crop".into(),
        params: ["width", "height"].map(|n| wt::Param { name: n.into(), value: wt::Value::Integer(1) }).to_vec(),
    };
    let mut inputs = vec![native_img.clone()];
    for step in &native_steps {
        let next = plugin_filters::run_step(inputs.last().unwrap().clone(), step).unwrap();
        inputs.push(next);
    }
    let mut prefix_ms = vec![];
    for k in 0..=steps.len() {
        let mut chain = steps[..k].to_vec();
        chain.push(one_pixel.clone());
        let _ = filters.apply("bench", &img, &chain).await.unwrap().unwrap();
        let mut times = vec![];
        for _ in 0..RUNS {
            let t = Instant::now();
            let out = filters.apply("bench", &img, &chain).await.unwrap().unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(out);
        }
        prefix_ms.push(stats(times).0);
    }
    println!("  per step, median of {RUNS} (wasm = difference of chain prefixes ending in a 1x1 crop):");
    println!("    {:<10} {:>9} {:>9} {:>7}", "step", "native", "wasm", "ratio");
    println!("    {:<10} {:>9} {:>7.1}ms", "(in+inst)", "", prefix_ms[0]);
    for (k, step) in native_steps.iter().enumerate() {
        let mut times = vec![];
        for _ in 0..RUNS {
            let input = inputs[k].clone();
            let t = Instant::now();
            let out = plugin_filters::run_step(input, step).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(out);
        }
        let native_step = stats(times).0;
        let wasm_step = prefix_ms[k + 1] - prefix_ms[k];
        println!(
            "    {:<10} {:>7.1}ms {:>7.1}ms {:>6.2}x",
            step.name,
            native_step,
            wasm_step,
            wasm_step / native_step
        );
    }

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
        for _ in 0..RUNS {
            let t = Instant::now();
            let st = std::process::Command::new("convert").args(args).status().unwrap();
            assert!(st.success());
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (im_m, im_min) = stats(times);
        println!("  ImageMagick convert  {im_m:8.1} ms (best {im_min:.1})   ratio wasm/imagemagick = {:.2}x  (includes PPM read/write)", wm / im_m);
        println!("    convert {}", args.join(" "));
    } else {
        println!("  ImageMagick: not installed (apt-get install imagemagick) — skipped");
    }
}
