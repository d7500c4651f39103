//! `filter` on a JPEG whose chain starts by shrinking it: the JPEG is decoded at a reduced DCT
//! scale (shrink-on-load, issue 13) and the resize step still produces exactly the size asked,
//! with pixels close to those of the full decode (the server's filter endpoint gives the very same
//! pixels); `--quality` sets the JPEG output's quality.

mod common;

use common::{Env, json};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A photo-like `w`×`h` picture (smooth gradients and a soft pattern) as JPEG, and the very
/// pixels the full decoder makes of it as PNG: the same picture with no shrink-on-load path.
fn jpeg_and_its_pixels(env: &Env, name: &str, w: u32, h: u32) -> (PathBuf, PathBuf) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let wave = ((fx * 23.0).sin() * (fy * 17.0).cos() * 40.0) as i32;
        image::Rgb([(40.0 + 180.0 * fx) as i32 + wave, (200.0 - 150.0 * fy) as i32 - wave / 2, (90 + wave).max(0)].map(|v| v.clamp(0, 255) as u8))
    });
    let jpg = env.path(&format!("{name}.jpg"));
    let mut bytes = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&img).unwrap();
    std::fs::write(&jpg, &bytes).unwrap();
    let png = env.path(&format!("{name}.png"));
    image::load_from_memory(&bytes).unwrap().save(&png).unwrap();
    (jpg, png)
}

fn filter(env: &Env, input: &Path, steps: &[&str], out: &Path) -> image::RgbaImage {
    let mut args = vec!["filter", s(input)];
    for st in steps {
        args.extend(["--step", st]);
    }
    args.extend(["-o", s(out), "--force"]);
    env.ok(&args);
    image::open(out).unwrap().into_rgba8()
}

/// Mean absolute difference per channel.
fn mean_diff(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn a_leading_resize_gets_its_exact_size_and_close_pixels_from_a_reduced_scale_decode() {
    let env = Env::new(&["filters"]);
    // Odd sizes, so the reduced-scale decode's aspect ratio differs from the full picture's.
    let (jpg, png) = jpeg_and_its_pixels(&env, "odd", 803, 601);
    for steps in [
        &["resize:width=200"][..],
        &["resize:height=149"],
        &["resize:max=190"],
        &["resize:width=350,height=120"],
        &["resize:width=300,filter=catmull-rom", "grayscale"],
    ] {
        let shrunk = filter(&env, &jpg, steps, &env.path("from-jpg.png"));
        let full = filter(&env, &png, steps, &env.path("from-png.png"));
        assert_eq!(shrunk.dimensions(), full.dimensions(), "{steps:?}: the size the step asks for");
        let d = mean_diff(&shrunk, &full);
        assert!(d > 0.0 && d < 2.0, "{steps:?}: decoded smaller, then resized: close to the full path, mean difference {d:.3}");
    }
    // 1/2 scale gives exactly the size asked: the resize is then the identity.
    let (jpg, png) = jpeg_and_its_pixels(&env, "even", 800, 600);
    let shrunk = filter(&env, &jpg, &["resize:width=400", "flip"], &env.path("e-jpg.png"));
    let full = filter(&env, &png, &["resize:width=400", "flip"], &env.path("e-png.png"));
    assert_eq!(shrunk.dimensions(), (400, 300));
    let d = mean_diff(&shrunk, &full);
    assert!(d < 2.0, "mean difference {d:.3}");
    // `filter=nearest` is never decoded smaller: its blocky pixels are exactly the full path's.
    let near = filter(&env, &jpg, &["resize:width=100,filter=nearest"], &env.path("n-jpg.png"));
    assert_eq!(near, filter(&env, &png, &["resize:width=100,filter=nearest"], &env.path("n-png.png")));
    // Provenance records the steps as written, and that the decoder started smaller.
    let side = json(&std::fs::read_to_string(env.path("e-jpg.png.json")).unwrap());
    assert_eq!(side["steps"][0], "resize:width=400");
    assert_eq!(side["output"]["width"], 400);
    assert_eq!(side["inputs"][0]["decode"]["shrunk_on_load_from"], serde_json::json!([800, 600]), "{side}");
    let side = json(&std::fs::read_to_string(env.path("n-jpg.png.json")).unwrap());
    assert!(side["inputs"][0].get("decode").is_none(), "{side}");
}

#[test]
fn jpeg_output_quality_is_90_unless_set() {
    let env = Env::new(&["filters"]);
    let (jpg, _) = jpeg_and_its_pixels(&env, "q", 320, 240);
    let (default, low) = (env.path("default.jpg"), env.path("low.jpg"));
    env.ok(&["filter", s(&jpg), "--step", "grayscale", "-o", s(&default)]);
    env.ok(&["filter", s(&jpg), "--step", "grayscale", "-o", s(&low), "--quality", "40"]);
    let same = env.path("q90.jpg");
    env.ok(&["filter", s(&jpg), "--step", "grayscale", "-o", s(&same), "--quality", "90"]);
    assert_eq!(std::fs::read(&default).unwrap(), std::fs::read(&same).unwrap(), "90 is the default");
    assert!(std::fs::metadata(&low).unwrap().len() < std::fs::metadata(&default).unwrap().len());
    let e = env.fails(&["filter", s(&jpg), "--step", "grayscale", "-o", s(&env.path("bad.jpg")), "--quality", "0"]);
    assert!(e.contains("quality") && e.contains("1..=100"), "{e}");
}

/// The studio's filter endpoint (`POST /v1/atelier/filter`) shrinks on load as `atelier filter`
/// does: the same JPEG and steps give the very same pixels both ways (a full decode would differ).
#[test]
fn the_servers_filter_endpoint_shrinks_on_load_like_the_cli() {
    use std::io::{Read, Write};
    let env = Env::new(&["filters"]);
    let (jpg, png) = jpeg_and_its_pixels(&env, "odd", 803, 601);
    let cli = filter(&env, &jpg, &["resize:width=200"], &env.path("cli.png"));
    assert_ne!(cli, filter(&env, &png, &["resize:width=200"], &env.path("full.png")), "the CLI shrank on load");
    let mut cmd = env.cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"]);
    let (_srv, addr) = common::Serve::start(cmd);
    let body = std::fs::read(&jpg).unwrap();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "POST /v1/atelier/filter?step=resize:width%3D200 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    s.write_all(&body).unwrap();
    let mut answer = vec![];
    s.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", String::from_utf8_lossy(&answer[split..]));
    let served = image::load_from_memory(&answer[split + 4..]).unwrap().into_rgba8();
    assert_eq!(served.dimensions(), (200, 150));
    assert!(served == cli, "the server's pixels are the CLI's");
}
