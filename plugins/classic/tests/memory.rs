//! What a masked edit holds at its peak, per pixel, measured with a counting allocator on every
//! operator: `request::MASKED_BYTES_PER_PIXEL` must cover it, so the size limit derived from the
//! manifest's `memory_mb` is one the plugin can really meet.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use atelier_sdk::Param;
use plugin_classic::raster::Raster;
use plugin_classic::prompt::Style;
use plugin_classic::request::{encode_png, masked_bytes_per_pixel, run, Job, MASKED_BYTES_PER_OUTPUT_PIXEL, MEMORY_MB};
use plugin_classic::settings::InpaintMethod;
use std::collections::BTreeSet;

/// Counts live heap bytes and remembers the high-water mark.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// One measurement at a time (the test harness runs tests on several threads).
static MEASURING: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes above what was live before `f` ran.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// A noisy image (PNG cannot shrink it much: the worst case for encoded outputs), a mask covering
/// its middle third, and one covering all but an 8 px border (the worst case for a fill, whose
/// working set grows with the hole).
fn inputs(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut s: u32 = 12345;
    let img = Raster::from_fn(w, h, |_, _| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let b = s.to_le_bytes();
        [b[1], b[2], b[3], 255]
    });
    let mask = Raster::from_fn(w, h, |x, y| if x > w / 3 && x < 2 * w / 3 && y > h / 3 && y < 2 * h / 3 { [255; 4] } else { [0, 0, 0, 255] });
    let hole = Raster::from_fn(w, h, |x, y| if x >= 8 && x < w - 8 && y >= 8 && y < h - 8 { [255; 4] } else { [0, 0, 0, 255] });
    (encode_png(&img).unwrap(), encode_png(&mask).unwrap(), encode_png(&hole).unwrap())
}

fn styles_of(prompt: &str) -> BTreeSet<Style> {
    plugin_classic::prompt::parse(prompt).unwrap().styles
}

#[test]
fn masked_edits_stay_within_the_bytes_per_pixel_the_size_limit_assumes() {
    let _one = MEASURING.lock().unwrap();
    let (w, h) = (384, 256);
    let pixels = (w * h) as f64;
    let (img, middle, hole) = inputs(w, h);
    let looks = [
        "oil painting", "watercolor", "cartoon", "sketch", "pop art", "posterize", "pixel art", "noir", "sepia",
        "vintage", "warmer", "brighter", "contrast", "vignette", "film grain", "watercolor vintage",
    ];
    // A fill with PatchMatch dominates whatever runs after it; with Telea an operator can.
    let fills = [("remove", "patchmatch"), ("remove", "telea"), ("remove oil painting", "telea"), ("remove sepia", "telea")];
    let cases = looks.iter().map(|p| (*p, "patchmatch")).chain(fills);
    for (prompt, inpaint) in cases {
        let method = if inpaint == "telea" { InpaintMethod::Telea } else { InpaintMethod::PatchMatch };
        let params = [Param::new("inpaint", inpaint)];
        let mask = if prompt.contains("remove") { &hole } else { &middle };
        let job = Job { prompt, first: Some(&img), mask: Some(mask), n: 1, output: plugin_classic::settings::Output::Image, base_seed: 3, params: &params };
        let per_pixel = peak_of(|| drop(run(&job).unwrap())) as f64 / pixels;
        let assumed = masked_bytes_per_pixel(&styles_of(prompt), method) as f64;
        eprintln!("{prompt} ({inpaint}): {per_pixel:.1} B/px, assumed {assumed}");
        assert!(per_pixel <= assumed, "{prompt} ({inpaint}): {per_pixel:.1} B/px at peak, the limit assumes {assumed}");
        // Not wildly over either, or the limit refuses images that would fit.
        assert!(per_pixel + 8.0 >= assumed, "{prompt} ({inpaint}): {per_pixel:.1} B/px at peak, the limit assumes {assumed}");
    }
    // Every further output keeps its encoded PNG until the last is done.
    for prompt in ["oil painting", "film grain"] {
        let job = Job { prompt, first: Some(&img), mask: Some(&middle), n: 1, output: plugin_classic::settings::Output::Image, base_seed: 3, params: &[] };
        let one = peak_of(|| drop(run(&job).unwrap()));
        let three = peak_of(|| drop(run(&Job { n: 3, ..job }).unwrap()));
        let per_output = (three as f64 - one as f64) / 2.0 / pixels;
        assert!(per_output <= MASKED_BYTES_PER_OUTPUT_PIXEL as f64, "{prompt}: {per_output:.2} B/px per output, the limit assumes {MASKED_BYTES_PER_OUTPUT_PIXEL}");
    }
}

#[test]
fn the_memory_the_limit_assumes_is_the_manifests() {
    let manifest = include_str!("../plugin.toml");
    let line = manifest.lines().find(|l| l.starts_with("memory_mb")).expect("plugin.toml sets memory_mb");
    assert!(line.split('#').next().unwrap().trim().ends_with(&format!("= {MEMORY_MB}")), "plugin.toml has `{line}`, request::MEMORY_MB is {MEMORY_MB}");
}

