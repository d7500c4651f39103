//! Issue 13's I/O levers, measured in-process on a 12 MP JPEG that the first step shrinks to
//! 2000 px wide: the full decode (`imageio::decode`: the `image` crate's zune-jpeg, full size, to
//! RGBA) and the resize, against the host's shrink-on-load (`imageio::decode_shrinking`: the JPEG
//! decoded at 1/2 DCT scale by `jpeg-decoder`, which already is the size asked); then the JPEG
//! encoders at quality 90: the `image` crate's against the host's (`imageio::encode`, `jpeg-encoder`).
//! Run: `cargo bench -p atelier-tests --bench jpeg_decode` (`ATELIER_BENCH_RUNS=n`).

use atelier::imageio::{self, DecodeLimits};
use std::time::Instant;

fn runs() -> usize {
    std::env::var("ATELIER_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(7)
}

/// Best and median of `runs` timings of `f`, ms.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let runs = runs();
    // A photo-like 4000x3000 JPEG at quality 90 (the filters crate's bench image plus noise).
    let src = plugin_filters::bench_image(4000, 3000);
    let rgb: Vec<u8> = src.pixels.chunks_exact(4).enumerate().flat_map(|(i, p)| {
        let n = ((i as u32).wrapping_mul(2_654_435_761) >> 28) as u8;
        [p[0].saturating_add(n), p[1].saturating_add(n), p[2].saturating_add(n)]
    }).collect();
    let mut jpeg = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(&rgb, 4000, 3000, image::ExtendedColorType::Rgb8)
        .unwrap();
    let limits = DecodeLimits { max_pixels: 100_000_000, max_dimension: 32_768 };
    let resize = atelier_sdk::Step { name: "resize".into(), params: vec![atelier_sdk::Param::new("width", 2000i64)] };

    let full = time(runs, || {
        let img = imageio::decode(&jpeg, limits, "big.jpg").unwrap();
        let img = atelier_sdk::Image { width: img.width, height: img.height, pixels: img.pixels };
        plugin_filters::run_step(img, &resize).unwrap()
    });
    let decode_only = time(runs, || imageio::decode(&jpeg, limits, "big.jpg").unwrap());
    let scaled = time(runs, || {
        let (img, _) = imageio::decode_shrinking(&jpeg, limits, "big.jpg", |_, _| Some((2000, 1500))).unwrap();
        let img = imageio::to_image(img);
        assert_eq!((img.width, img.height), (2000, 1500), "decoded at 1/2 scale");
        // At exactly 2000 wide the host drops the resize (`steps::after_shrink_on_load`).
        img
    });
    let small = imageio::to_image(imageio::decode_shrinking(&jpeg, limits, "big.jpg", |_, _| Some((2000, 1500))).unwrap().0);
    let image_q90 = time(runs, || {
        let rgb: Vec<u8> = small.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let mut out = vec![];
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode(&rgb, small.width, small.height, image::ExtendedColorType::Rgb8).unwrap();
        out
    });
    let host_q90 = time(runs, || imageio::encode(&small, "image/jpeg").unwrap());
    println!("12 MP JPEG ({} KiB, q90) → 2000 px wide, {runs} runs, ms (best / median):", jpeg.len() >> 10);
    println!("  full decode (zune-jpeg) + resize              {:7.1} / {:7.1}", full.0, full.1);
    println!("    of which the decode                         {:7.1} / {:7.1}", decode_only.0, decode_only.1);
    println!("  shrink-on-load (jpeg-decoder at 1/2 scale)    {:7.1} / {:7.1}", scaled.0, scaled.1);
    println!("  ratio shrink-on-load / full: best {:.2}x, median {:.2}x", scaled.0 / full.0, scaled.1 / full.1);
    println!("2000x1500 → JPEG q90, ms (best / median):");
    println!("  image crate encoder                           {:7.1} / {:7.1}", image_q90.0, image_q90.1);
    println!("  host encoder (jpeg-encoder, AVX2)             {:7.1} / {:7.1}", host_q90.0, host_q90.1);
}
