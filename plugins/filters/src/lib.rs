//! The `filters` plugin: resize, crop, fit, rotate, flip, adjust, blur, sharpen, grayscale and
//! watermark over 8-bit RGBA.
//!
//! The host hands a run of consecutive steps to [`Filter::apply`] in one call, so the pixels cross
//! the component boundary once; the chain then runs on one buffer, in place wherever the operation
//! allows. The same code is a plain Rust library: [`run_chain`] is the native entry point that
//! benchmarks and tests call, and on the host target the cdylib also exports the native tier's
//! C ABI ([`native`], docs/native.md) over the same functions.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod color;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
pub mod ops;
pub mod params;

use atelier_sdk::*;
use ops::{blur, geometry, resize, tone, watermark};
use params::Args;

/// Run `steps` in order on `image`. Errors name the failing step.
pub fn run_chain(image: Image, steps: &[Step]) -> Result<Image, Error> {
    ops::check_image(&image)?;
    run_steps_from(image, steps, 0)
}

/// [`run_chain`] on a borrowed, packed RGBA buffer (the native tier's input). A leading `resize`
/// reads it where it lies, so the full-size input is never copied; otherwise it is copied once.
pub fn run_chain_borrowed(width: u32, height: u32, pixels: &[u8], steps: &[Step]) -> Result<Image, Error> {
    let packed = width > 0 && height > 0 && pixels.len() as u64 == width as u64 * height as u64 * 4;
    match steps.first() {
        Some(first) if packed && first.name == "resize" => {
            let image = Args::new(&first.name, &first.params)
                .and_then(|args| resize::resize_borrowed(width, height, pixels, &resize::ResizeOptions::from_args(&args)?))
                .map_err(|e| in_step(e, 0, steps.len(), &first.name))?;
            run_steps_from(image, steps, 1)
        }
        _ => run_chain(Image { width, height, pixels: pixels.to_vec() }, steps),
    }
}

/// Run `steps[start..]`, naming a failing step by its place in the whole chain.
fn run_steps_from(mut image: Image, steps: &[Step], start: usize) -> Result<Image, Error> {
    for (index, step) in steps.iter().enumerate().skip(start) {
        image = run_step(image, step).map_err(|e| in_step(e, index, steps.len(), &step.name))?;
    }
    Ok(image)
}

/// Run one step.
pub fn run_step(image: Image, step: &Step) -> Result<Image, Error> {
    let args = Args::new(&step.name, &step.params)?;
    match args.filter() {
        "resize" => resize::resize(image, &resize::ResizeOptions::from_args(&args)?),
        "fit" => resize::fit(image, &resize::FitOptions::from_args(&args)?),
        "crop" => geometry::crop(image, &geometry::CropOptions::from_args(&args)?),
        "rotate" => geometry::rotate(image, &geometry::RotateOptions::from_args(&args)?),
        "flip" => geometry::flip(image, geometry::FlipDirection::from_args(&args)),
        "adjust" => tone::adjust(image, &tone::AdjustOptions::from_args(&args)),
        "grayscale" => tone::grayscale(image),
        "blur" => blur::blur(image, &blur::BlurOptions::from_args(&args)),
        "sharpen" => blur::sharpen(image, &blur::SharpenOptions::from_args(&args)),
        "watermark" => watermark::watermark(image, &watermark::WatermarkOptions::from_args(&args)?),
        other => Err(Error::Internal(format!("filter `{other}` is described but not dispatched"))),
    }
}

/// Prefix an error's message with the step it came from, when the chain has more than one.
fn in_step(error: Error, index: usize, count: usize, name: &str) -> Error {
    if count < 2 {
        return error;
    }
    let tag = |m: String| format!("step {} of {count} (`{name}`): {m}", index + 1);
    match error {
        Error::InvalidInput(m) => Error::InvalidInput(tag(m)),
        Error::Internal(m) => Error::Internal(tag(m)),
        other => other,
    }
}

/// The chain the benchmarks run (natively here, through the host in wasm):
/// resize to 2000 px wide, centre crop 1600x1200, adjust, sharpen, text watermark.
pub fn bench_chain_steps() -> Vec<Step> {
    let step = |name: &str, params: Vec<Param>| Step { name: name.into(), params };
    vec![
        step("resize", vec![Param::new("width", 2000i64)]),
        step(
            "crop",
            vec![Param::new("width", 1600i64), Param::new("height", 1200i64), Param::new("gravity", "center")],
        ),
        step(
            "adjust",
            vec![Param::new("brightness", 1.05), Param::new("contrast", 1.1), Param::new("saturation", 1.2)],
        ),
        step("sharpen", vec![Param::new("amount", 0.8), Param::new("sigma", 1.0)]),
        step("watermark", vec![Param::new("text", "© atelier"), Param::new("opacity", 0.6)]),
    ]
}

/// A deterministic photo-like test image (smooth gradients plus fine texture), for benchmarks.
pub fn bench_image(width: u32, height: u32) -> Image {
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
            pixels.extend_from_slice(&[
                ((x * 200 / width) + noise) as u8,
                ((y * 200 / height) + noise) as u8,
                (((x + y) * 100 / (width + height)) + 60 + noise) as u8,
                255,
            ]);
        }
    }
    Image { width, height, pixels }
}

/// The component: every filter of [`params::FILTER_NAMES`].
#[derive(Default)]
struct Filters;

impl Filter for Filters {
    fn describe(&self) -> Vec<FilterInfo> {
        params::filter_infos()
    }

    fn apply_step(&self, image: Image, step: &Step) -> Result<Image, Error> {
        run_step(image, step)
    }

    fn apply(&self, image: Image, steps: Vec<Step>) -> Result<Image, Error> {
        run_chain(image, &steps)
    }
}

register_filter!(Filters);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_chain_runs_and_gives_the_expected_size() {
        let out = run_chain(bench_image(240, 180), &scaled_bench_steps()).unwrap();
        assert_eq!((out.width, out.height, out.pixels.len()), (160, 120, 160 * 120 * 4));
    }

    /// The benchmark chain with sizes divided by 12.5, to keep tests small.
    fn scaled_bench_steps() -> Vec<Step> {
        let mut steps = bench_chain_steps();
        steps[0].params = vec![Param::new("width", 200i64)];
        steps[1].params =
            vec![Param::new("width", 160i64), Param::new("height", 120i64), Param::new("gravity", "center")];
        steps
    }

    #[test]
    fn a_borrowed_input_gives_the_same_pixels_and_errors_as_an_owned_one() {
        let mut translucent = bench_image(120, 90);
        translucent.pixels[3] = 40;
        for image in [bench_image(120, 90), translucent] {
            for steps in [
                scaled_bench_steps(),
                vec![Step { name: "resize".into(), params: vec![Param::new("width", 50i64), Param::new("height", 90i64)] }],
                vec![Step { name: "resize".into(), params: vec![Param::new("max", 500i64)] }],
                vec![Step { name: "grayscale".into(), params: vec![] }],
            ] {
                let owned = run_chain(image.clone(), &steps).unwrap();
                let borrowed = run_chain_borrowed(image.width, image.height, &image.pixels, &steps).unwrap();
                assert_eq!((borrowed.width, borrowed.height), (owned.width, owned.height));
                assert!(borrowed.pixels == owned.pixels, "{steps:?}");
            }
        }
        let steps = vec![
            Step { name: "resize".into(), params: vec![] },
            Step { name: "grayscale".into(), params: vec![] },
        ];
        let image = bench_image(10, 10);
        let (a, b) = (run_chain(image.clone(), &steps).unwrap_err(), run_chain_borrowed(10, 10, &image.pixels, &steps).unwrap_err());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn errors_name_the_step() {
        let steps = vec![
            Step { name: "grayscale".into(), params: vec![] },
            Step { name: "crop".into(), params: vec![Param::new("width", 500i64), Param::new("height", 10i64)] },
        ];
        let err = run_chain(bench_image(100, 80), &steps).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.starts_with("step 2 of 2 (`crop`)") && m.contains("100x80 image")),
            "{err:?}"
        );
        let err = run_chain(bench_image(10, 10), &[Step { name: "resize".into(), params: vec![] }]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("needs a target")), "{err:?}");
    }

    #[test]
    fn describe_lists_every_filter_and_each_dispatches() {
        let infos = Filters.describe();
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, params::FILTER_NAMES);
        // Every filter runs with minimal valid params: none reaches the "not dispatched" arm.
        let minimal = |name: &str| -> Vec<Param> {
            match name {
                "resize" => vec![Param::new("max", 16i64)],
                "crop" => vec![Param::new("width", 8i64), Param::new("height", 8i64)],
                "fit" => vec![Param::new("aspect", "1:1")],
                "watermark" => vec![Param::new("text", "x")],
                _ => vec![],
            }
        };
        for name in names {
            let step = Step { name: name.into(), params: minimal(name) };
            Filters.apply(bench_image(32, 24), vec![step]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
