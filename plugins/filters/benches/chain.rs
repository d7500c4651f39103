//! The 5-step chain (resize -> crop -> adjust -> sharpen -> watermark) on a 12 MP (4000x3000)
//! image, natively. Plain `Instant` loop: a warm-up run, then timed runs; prints ms per run.
//! Run with `cargo bench -p plugin-filters`.

use plugin_filters::{bench_chain_steps, bench_image, run_chain};
use std::time::Instant;

const RUNS: usize = 10;

fn main() {
    let image = bench_image(4000, 3000);
    let steps = bench_chain_steps();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();

    // Warm-up: page in the allocator and the font, and check the chain works.
    let out = run_chain(image.clone(), &steps).expect("the benchmark chain runs");
    println!("chain {} on {}x{} -> {}x{}", names.join(" -> "), image.width, image.height, out.width, out.height);

    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        // The input copy is made outside the timed region: the host hands the plugin an owned buffer.
        let input = image.clone();
        let start = Instant::now();
        let out = run_chain(input, &steps).expect("the benchmark chain runs");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / RUNS as f64;
    println!(
        "native: {mean:.1} ms per run (mean of {RUNS}; min {:.1}, median {:.1}, max {:.1})",
        times[0],
        times[RUNS / 2],
        times[RUNS - 1]
    );

    // Per step, to see where the time goes.
    let mut current = image.clone();
    for step in &steps {
        let start = Instant::now();
        current = plugin_filters::run_step(current, step).expect("step runs");
        println!("  {:<10} {:>7.1} ms -> {}x{}", step.name, start.elapsed().as_secs_f64() * 1000.0, current.width, current.height);
    }
}
