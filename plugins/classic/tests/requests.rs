//! Whole requests through the pure request path (what `submit` runs), on a real photograph
//! (`fixtures/board.jpg`, 192x128) and on procedurally drawn images.

use std::collections::BTreeSet;

use atelier_sdk::{Param, Value};
use plugin_classic::raster::Raster;
use plugin_classic::request::{decode, encode_png, run, Done, Job};
use plugin_classic::settings::Output;

const BOARD: &[u8] = include_bytes!("fixtures/board.jpg");

fn job<'a>(prompt: &'a str, first: &'a [u8], mask: Option<&'a [u8]>, n: u32, seed: u64, params: &'a [Param]) -> Job<'a> {
    // A leading `output=video` stands for the request's typed output kind (contract 0.2).
    let (output, params) = match params.split_first() {
        Some((p, rest)) if p.name == "output" => (if matches!(&p.value, Value::Text(t) if t == "video") { Output::Video } else { Output::Image }, rest),
        _ => (Output::Image, params),
    };
    Job { prompt, first: Some(first), mask, n, output, base_seed: seed, params }
}

fn render(prompt: &str, n: u32, seed: u64, params: &[Param]) -> Done {
    run(&job(prompt, BOARD, None, n, seed, params)).unwrap_or_else(|e| panic!("{prompt}: {e}"))
}

fn png(r: &Raster) -> Vec<u8> {
    encode_png(r).unwrap()
}

#[test]
fn unknown_words_are_refused_with_the_known_words() {
    let err = run(&job("make it look like a Monet", BOARD, None, 1, 1, &[])).err().unwrap();
    for word in ["watercolor", "pencil sketch", "oil painting", "pop art", "vignette", "remove"] {
        assert!(err.contains(word), "{word} missing from: {err}");
    }
    // Camera words alone make sense only for video, and the error says so.
    let err = run(&job("zoom in", BOARD, None, 1, 1, &[])).err().unwrap();
    assert!(err.contains("output=video"), "{err}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_picture() {
    for prompt in ["watercolor", "oil painting", "pencil sketch", "cartoon", "pop art", "posterize", "vintage", "pixel art", "warmer and brighter", "film grain"] {
        let a = render(prompt, 2, 42, &[]);
        let b = render(prompt, 2, 42, &[]);
        assert_eq!(a.outputs[0].bytes, b.outputs[0].bytes, "{prompt}: not reproducible");
        assert_eq!(a.outputs[1].bytes, b.outputs[1].bytes, "{prompt}: not reproducible");
        assert_eq!((a.outputs[0].seed, a.outputs[1].seed), (42, 43));
        let (x, y) = (decode(&a.outputs[0].bytes, "x").unwrap(), decode(&a.outputs[1].bytes, "y").unwrap());
        let differing = x.px.iter().zip(&y.px).filter(|(p, q)| p != q).count();
        assert!(differing > x.px.len() / 20, "{prompt}: seeds 42 and 43 differ in only {differing} samples");
    }
}

#[test]
fn sketch_of_a_photo_is_grey_with_dark_edges_and_light_flats() {
    let out = decode(&render("a pencil sketch", 1, 7, &[]).outputs[0].bytes, "out").unwrap();
    assert!(out.px.chunks(4).all(|p| p[0] == p[1] && p[1] == p[2]));
    let light = out.px.chunks(4).filter(|p| p[0] > 200).count();
    let dark = out.px.chunks(4).filter(|p| p[0] < 100).count();
    assert!(light > out.len() / 2, "mostly paper expected: {light}/{}", out.len());
    assert!(dark > out.len() / 100, "the board's edges should be drawn: {dark}");
}

#[test]
fn posterize_and_pop_art_respect_levels() {
    for prompt in ["posterize", "pop art"] {
        for k in [3i64, 7] {
            let params = [Param::new("levels", k)];
            let out = decode(&render(prompt, 1, 3, &params).outputs[0].bytes, "out").unwrap();
            let colours: BTreeSet<[u8; 3]> = out.px.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
            assert!(colours.len() <= k as usize, "{prompt} levels={k}: {} colours", colours.len());
        }
    }
}

#[test]
fn the_style_param_wins_over_words() {
    let by_param = render("watercolor", 1, 5, &[Param::new("style", "noir")]);
    let out = decode(&by_param.outputs[0].bytes, "out").unwrap();
    assert!(out.px.chunks(4).all(|p| p[0] == p[1] && p[1] == p[2]), "noir should be black and white");
    assert_eq!(by_param.operators, "noir");
}

fn square_mask(w: usize, h: usize, x0: usize, y0: usize, size: usize) -> Raster {
    Raster::from_fn(w, h, |x, y| if (x0..x0 + size).contains(&x) && (y0..y0 + size).contains(&y) { [255, 255, 255, 255] } else { [0, 0, 0, 255] })
}

#[test]
fn masked_edits_leave_everything_beyond_the_feather_byte_identical() {
    let original = decode(BOARD, "board").unwrap();
    let mask = png(&square_mask(192, 128, 60, 30, 40));
    for (prompt, feather) in [("cartoon", 8i64), ("sepia vignette", 0), ("remove", 4)] {
        let params = [Param::new("feather", feather)];
        let done = run(&job(prompt, BOARD, Some(&mask), 1, 9, &params)).unwrap();
        let out = decode(&done.outputs[0].bytes, "out").unwrap();
        let mut changed_inside = 0;
        for y in 0..128 {
            for x in 0..192 {
                let dx = (60i64 - x as i64).max(x as i64 - 99).max(0);
                let dy = (30i64 - y as i64).max(y as i64 - 69).max(0);
                let d = ((dx * dx + dy * dy) as f64).sqrt();
                if d >= feather as f64 && d > 0.0 {
                    assert_eq!(out.get(x, y), original.get(x, y), "{prompt}: ({x},{y}) changed {d:.1} px from the mask");
                } else if d == 0.0 && out.get(x, y) != original.get(x, y) {
                    changed_inside += 1;
                }
            }
        }
        assert!(changed_inside > 1200, "{prompt}: only {changed_inside} of 1600 masked pixels changed");
    }
}

#[test]
fn remove_fills_the_hole_like_its_surroundings() {
    // A smooth two-tone sky gradient with a dark "object" in it.
    let scene = Raster::from_fn(128, 96, |x, y| {
        if (50..80).contains(&x) && (30..60).contains(&y) { [20, 20, 20, 255] } else { [(90 + y) as u8, (140 + y / 2) as u8, (220 - x / 4) as u8, 255] }
    });
    let mask = png(&square_mask(128, 96, 48, 28, 34));
    let scene_png = png(&scene);
    for method in ["patchmatch", "telea"] {
        let params = [Param::new("inpaint", method)];
        let done = run(&job("remove the box", &scene_png, Some(&mask), 1, 1, &params)).unwrap();
        let out = decode(&done.outputs[0].bytes, "out").unwrap();
        for y in 28..62 {
            for x in 48..82 {
                let p = out.get(x, y);
                let expect = [(90 + y) as i32, (140 + y / 2) as i32, (220 - x / 4) as i32];
                for c in 0..3 {
                    assert!((p[c] as i32 - expect[c]).abs() <= 12, "{method} ({x},{y}) {p:?} vs {expect:?}");
                }
            }
        }
    }
}

#[test]
fn remove_needs_a_mask_and_masks_must_match_the_image() {
    let err = run(&job("erase the logo", BOARD, None, 1, 1, &[])).err().unwrap();
    assert!(err.contains("mask"), "{err}");
    let small = png(&square_mask(100, 50, 10, 10, 10));
    let err = run(&job("cartoon", BOARD, Some(&small), 1, 1, &[])).err().unwrap();
    assert!(err.contains("100x50") && err.contains("192x128"), "{err}");
    let black = png(&Raster::filled(192, 128, [0, 0, 0, 255]));
    assert!(run(&job("cartoon", BOARD, Some(&black), 1, 1, &[])).err().unwrap().contains("all black"));
}

#[test]
fn video_is_a_gif_with_seconds_times_fps_frames() {
    use image::AnimationDecoder;
    let params = [Param::new("output", "video"), Param::new("seconds", 1.5), Param::new("fps", 12i64), Param::new("max_side", 96i64)];
    let done = run(&job("slowly pan left, vintage", BOARD, None, 2, 11, &params)).unwrap();
    assert_eq!(done.mime, "image/gif");
    assert_eq!(done.video_seconds, Some(1.5));
    assert!(done.operators.contains("vintage") && done.operators.contains("pan-left"), "{}", done.operators);
    assert_eq!((done.width, done.height), (96, 64));
    for out in &done.outputs {
        let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&out.bytes)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 18);
        assert_eq!(frames[0].buffer().dimensions(), (96, 64));
    }
    assert_ne!(done.outputs[0].bytes, done.outputs[1].bytes);
    // No words at all: still a video (a slow zoom in).
    let plain = run(&job("", BOARD, None, 1, 1, &params)).unwrap();
    assert_eq!(plain.operators, "zoom-in");
}

/// Writes every style of the board photo to `$CLASSIC_PREVIEW_DIR` for a person to look at:
/// `CLASSIC_PREVIEW_DIR=/tmp/p cargo test -p plugin-classic --test requests -- --ignored`.
/// `CLASSIC_PREVIEW_SOURCE=photo.jpg` previews another picture instead.
#[test]
#[ignore]
fn preview() {
    let dir = std::env::var("CLASSIC_PREVIEW_DIR").expect("set CLASSIC_PREVIEW_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::env::var("CLASSIC_PREVIEW_SOURCE").map(|p| std::fs::read(p).unwrap()).unwrap_or_else(|_| BOARD.to_vec());
    let render = |prompt: &str, n: u32, seed: u64, params: &[Param]| run(&job(prompt, &source, None, n, seed, params)).unwrap();
    let (w, h) = { let r = decode(&source, "source").unwrap(); (r.width, r.height) };
    for prompt in ["watercolor", "oil painting", "pencil sketch", "cartoon", "pop art", "posterize", "vintage", "noir", "black and white", "sepia", "pixel art", "warmer", "cooler", "brighter", "darker", "more contrast", "vignette", "film grain"] {
        for (i, out) in render(prompt, 2, 1, &[]).outputs.iter().enumerate() {
            std::fs::write(format!("{dir}/{}-{i}.png", prompt.replace(' ', "-")), &out.bytes).unwrap();
        }
    }
    let mask = png(&square_mask(w, h, w * 5 / 16, h / 4, w / 5));
    for method in ["patchmatch", "telea"] {
        let t = std::time::Instant::now();
        let done = run(&job("remove", &source, Some(&mask), 2, 1, &[Param::new("inpaint", method)])).unwrap();
        eprintln!("remove with {method}: {:?} for 2", t.elapsed());
        for (i, out) in done.outputs.iter().enumerate() {
            std::fs::write(format!("{dir}/remove-{method}-{i}.png"), &out.bytes).unwrap();
        }
    }
    let params = [Param::new("output", "video")];
    let done = render("zoom in", 1, 1, &params);
    std::fs::write(format!("{dir}/zoom-in.gif"), &done.outputs[0].bytes).unwrap();
}

#[test]
fn prepare_checks_refuse_what_cannot_work() {
    use plugin_classic::request::{check, max_side};
    // The memory cap as the allocator would report it: the manifest's 1024 MiB.
    let at_1024 = |bytes: u64| bytes <= 1024 << 20;
    let check = |p: &str, refs: &[(u32, u32)], mask: bool, n: u32, params: &[Param]| check(p, refs, mask, n, Output::Image, params, &at_1024);
    assert!(check("watercolor", &[(640, 480)], false, 4, &[]).is_ok());
    assert!(check("watercolor", &[], false, 1, &[]).unwrap_err().contains("give one image"));
    assert!(check("watercolor", &[(640, 480)], false, 17, &[]).unwrap_err().contains("1 to 16"));
    assert!(check("remove the cat", &[(640, 480)], false, 1, &[]).unwrap_err().contains("mask"));
    assert!(plugin_classic::request::check("zoom out", &[(640, 480)], false, 1, Output::Video, &[], &at_1024).is_ok());
    assert_eq!(max_side(false), Some(2048));
    assert_eq!(max_side(true), None);
}

#[test]
fn masked_edits_are_bounded_by_memory_not_by_2048_px() {
    use plugin_classic::request::{check, masked_memory_need};
    use plugin_classic::settings::InpaintMethod;
    let at = |mb: u64| move |bytes: u64| bytes <= mb << 20;
    // Over 2048 px is fine when it fits: a 4000x3000 cartoon, and a thin 8000x100 strip.
    assert!(check("cartoon", &[(4000, 3000)], true, 1, Output::Image, &[], &at(1024)).is_ok());
    assert!(check("remove", &[(8000, 100)], true, 16, Output::Image, &[], &at(1024)).is_ok());
    // Beyond the manifest's 1024 MiB: refused with the line to raise and a size that would fit.
    let styles = plugin_classic::prompt::parse("oil painting").unwrap().styles;
    let need_mb = masked_memory_need(5000, 4000, 1, &styles, InpaintMethod::PatchMatch).div_ceil(1 << 20);
    assert!(need_mb > 1024 && need_mb < 4096, "{need_mb}");
    let raise_to = need_mb.div_ceil(256) * 256;
    let err = check("oil painting", &[(5000, 4000)], true, 1, Output::Image, &[], &at(1024)).unwrap_err();
    assert!(err.contains("5000x4000") && err.contains(&format!("needs about {need_mb} MiB")), "{err}");
    assert!(err.contains(&format!("[plugins.classic.limits]\n    memory_mb = {raise_to}\n")), "{err}");
    assert!(err.contains("shrink the image and the mask together to at most 3"), "{err}");
    // ... unless the operator raised the limit (the allocator says so).
    assert!(check("oil painting", &[(5000, 4000)], true, 1, Output::Image, &[], &at(raise_to)).is_ok());
    // Past what any plugin can have: only shrinking helps.
    let err = check("remove", &[(12000, 9000)], true, 1, Output::Image, &[], &at(4096)).unwrap_err();
    assert!(err.contains("more than any plugin can have (4096 MiB)") && !err.contains("memory_mb ="), "{err}");
    // Without a mask the host shrinks the image first: no memory refusal.
    assert!(check("oil painting", &[(12000, 9000)], false, 1, Output::Image, &[], &at(1024)).is_ok());
}

#[test]
fn tiny_and_thin_images_do_not_break_any_operator() {
    let all = "remove oil painting watercolor cartoon sketch pop art posterize pixel art noir sepia vintage warmer brighter contrast vignette grain";
    for (w, h) in [(1usize, 1usize), (2, 3), (9, 1), (1, 7)] {
        let img = png(&Raster::from_fn(w, h, |x, y| [(x * 40) as u8, (y * 30) as u8, 99, 255]));
        let mask = png(&Raster::from_fn(w, h, |x, _| if x == 0 { [255; 4] } else { [0, 0, 0, 255] }));
        let singles = ["oil painting", "watercolor", "cartoon", "sketch", "pop art", "posterize", "pixel art", "noir", "sepia", "vintage", "warmer", "brighter", "contrast", "vignette", "grain"];
        for prompt in singles.into_iter().chain([all]) {
            let has_remove = prompt.contains("remove");
            if has_remove && w == 1 {
                // The whole image is masked: refused with a message, not a crash.
                assert!(run(&job(prompt, &img, Some(&mask), 1, 1, &[])).is_err());
                continue;
            }
            let m = if has_remove { Some(mask.as_slice()) } else { None };
            let out = run(&job(prompt, &img, m, 2, 1, &[])).unwrap_or_else(|e| panic!("{w}x{h} {prompt}: {e}"));
            assert_eq!(decode(&out.outputs[1].bytes, "o").unwrap().len(), w * h);
        }
        let params = [Param::new("output", "video"), Param::new("seconds", 1.0), Param::new("fps", 5i64)];
        run(&job("zoom out pan up", &img, None, 1, 1, &params)).unwrap_or_else(|e| panic!("{w}x{h} video: {e}"));
    }
}
