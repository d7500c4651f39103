//! Pictures as users have them, through the real CLI: EXIF orientation and colour profiles applied
//! on decode and recorded in provenance, every file checked before it is read (sparse giants,
//! `/dev/zero`), truncated files reported; outputs published without clobbering (racing writers,
//! 20 concurrent edits into one folder, sidecars per output name, `jobs resume` to a free name);
//! `-n 0`, `-o` without an extension, a zero cost, a closed stdout; and pixels a caller (the
//! server) already decoded are taken by the pipeline, not decoded again.

mod common;

use common::{Emu, Env, json};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Fixtures, made here.

/// A TIFF block with one IFD entry: Orientation (0x0112) = `o`.
fn exif_tiff(o: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    t.extend_from_slice(&o.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    t
}

/// A `w`×`h` picture, dark, with a white top-left pixel block (so a rotation can be seen).
fn marked(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| if x < 4 && y < 4 { image::Rgb([255, 255, 255]) } else { image::Rgb([30, 30, 30]) })
}

/// A JPEG with an EXIF APP1 segment (Orientation = `o`) spliced in after SOI.
fn jpeg_with_orientation(img: &image::RgbImage, o: u16) -> Vec<u8> {
    let mut jpg = Cursor::new(Vec::new());
    img.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
    let jpg = jpg.into_inner();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif_tiff(o));
    let mut out = jpg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    out
}

/// A PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32fast::hash(&c[4..]).to_be_bytes());
    c
}

/// A PNG with an `eXIf` chunk (Orientation = `o`) before its image data.
fn png_with_orientation(img: &image::RgbImage, o: u16) -> Vec<u8> {
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
    [&png[..idat], &chunk(b"eXIf", &exif_tiff(o)), &png[idat..]].concat()
}

/// An ICC v4 display profile built from Display P3's primaries (D50-adapted colorants, as in the
/// profiles cameras and phones embed) and the sRGB transfer curve.
fn display_p3_icc() -> Vec<u8> {
    let s15 = |v: f64| ((v * 65536.0).round() as i32).to_be_bytes();
    let xyz = |x: f64, y: f64, z: f64| [b"XYZ \0\0\0\0".as_slice(), &s15(x), &s15(y), &s15(z)].concat();
    let mut para = b"para\0\0\0\0\0\x03\0\0".to_vec();
    for v in [2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045] {
        para.extend_from_slice(&s15(v));
    }
    let text: Vec<u8> = "Display P3 (test)".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let mut desc = b"mluc\0\0\0\0\0\0\0\x01\0\0\0\x0cenUS".to_vec();
    desc.extend_from_slice(&(text.len() as u32).to_be_bytes());
    desc.extend_from_slice(&28u32.to_be_bytes());
    desc.extend_from_slice(&text);
    let tags: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.515121, 0.241196, -0.001053)),
        (b"gXYZ", xyz(0.291977, 0.692245, 0.041885)),
        (b"bXYZ", xyz(0.157104, 0.066574, 0.784073)),
        (b"rTRC", para.clone()),
        (b"gTRC", para.clone()),
        (b"bTRC", para),
    ];
    let mut table = (tags.len() as u32).to_be_bytes().to_vec();
    let mut data = vec![];
    let start = 128 + 4 + 12 * tags.len();
    for (sig, body) in &tags {
        table.extend_from_slice(*sig);
        table.extend_from_slice(&((start + data.len()) as u32).to_be_bytes());
        table.extend_from_slice(&(body.len() as u32).to_be_bytes());
        data.extend_from_slice(body);
        while data.len() % 4 != 0 {
            data.push(0);
        }
    }
    let size = (start + data.len()) as u32;
    let mut header = size.to_be_bytes().to_vec();
    header.extend_from_slice(b"\0\0\0\0\x04\x30\0\0mntrRGB XYZ ");
    header.extend_from_slice(&[0; 12]); // date
    header.extend_from_slice(b"acsp");
    header.extend_from_slice(&[0; 24]); // platform, flags, manufacturer, model, attributes
    header.extend_from_slice(&[0; 4]); // rendering intent: perceptual
    header.extend_from_slice(&[s15(0.9642), s15(1.0), s15(0.8249)].concat());
    header.resize(128, 0);
    [header, table, data].concat()
}

/// A flat-colour PNG carrying `icc` (iCCP chunk, written by the `image` crate).
fn png_with_icc(rgb: [u8; 3], icc: Vec<u8>) -> Vec<u8> {
    use image::ImageEncoder;
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb(rgb));
    let mut out = vec![];
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_icc_profile(icc).unwrap();
    enc.write_image(&img, 8, 8, image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// A noisy JPEG (so it is long enough to cut meaningfully).
fn noisy_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) as u8;
        image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(90)])
    });
    let mut jpg = Cursor::new(Vec::new());
    img.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
    jpg.into_inner()
}

fn write(env: &Env, name: &str, bytes: &[u8]) -> PathBuf {
    let p = env.path(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sidecar(p: &Path) -> serde_json::Value {
    let mut s = p.as_os_str().to_owned();
    s.push(".json");
    json(&std::fs::read_to_string(PathBuf::from(s)).unwrap_or_else(|e| panic!("{}.json: {e}", p.display())))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Spawn `n` copies of the binary with `args` at once; their outputs.
fn at_once(env: &Env, n: usize, args: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n).map(|_| env.cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Images as users have them.

#[test]
fn exif_orientation_is_applied_and_recorded_in_filter_edit_and_recipes() {
    let env = Env::new(&["classic", "filters"]);
    // Stored 24×12 landscape, Orientation = 6: a portrait 12×24 with the white mark top right.
    let jpg = write(&env, "portrait.jpg", &jpeg_with_orientation(&marked(24, 12), 6));
    let png = write(&env, "portrait.png", &png_with_orientation(&marked(24, 12), 6));
    for input in [&jpg, &png] {
        let out = env.path(&format!("{}-out.png", input.extension().unwrap().to_str().unwrap()));
        let v = json(&env.ok(&["filter", s(input), "--step", "grayscale", "-o", s(&out), "--json"]));
        assert_eq!((v["outputs"][0]["width"].as_u64(), v["outputs"][0]["height"].as_u64()), (Some(12), Some(24)), "{}", input.display());
        let img = image::open(&out).unwrap().into_luma8();
        assert!(img.get_pixel(10, 1).0[0] > 180 && img.get_pixel(1, 1).0[0] < 100, "{}: the mark is top right", input.display());
        assert_eq!(sidecar(&out)["inputs"][0]["decode"]["orientation"], 6, "{}", input.display());
    }
    // The model pipeline (the server's too) decodes the same way.
    let v = json(&env.ok(&["edit", s(&jpg), "--prompt", "sepia", "--model", "classic", "-o", s(&env.path("out")), "--json"]));
    assert_eq!((v["outputs"][0]["width"].as_u64(), v["outputs"][0]["height"].as_u64()), (Some(12), Some(24)));
    let out = PathBuf::from(v["outputs"][0]["path"].as_str().unwrap());
    assert_eq!(sidecar(&out)["inputs"][0]["decode"]["orientation"], 6);
    assert_eq!(sidecar(&out)["inputs"][0]["width"], 12);
    // A recipe stage.
    let recipe = write(&env, "r.toml", b"name = \"r\"\n[[stage]]\nname = \"one\"\nengine = \"classic\"\nprompt = \"sepia\"\n");
    let v = json(&env.ok(&["run", s(&recipe), s(&jpg), "-o", s(&env.path("run")), "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!((v["stages"][0]["candidates"][0]["width"].as_u64(), v["stages"][0]["candidates"][0]["height"].as_u64()), (Some(12), Some(24)));
}

#[test]
fn a_display_p3_photo_is_converted_to_srgb_and_says_so() {
    let env = Env::new(&["classic", "filters"]);
    // A P3 colour inside sRGB's gamut but less saturated in P3 numbers than in sRGB ones.
    let p3 = write(&env, "p3.png", &png_with_icc([200, 100, 100], display_p3_icc()));
    let out = env.path("p3-out.png");
    env.ok(&["filter", s(&p3), "--step", "resize:width=8", "-o", s(&out)]);
    let px = image::open(&out).unwrap().into_rgb8().get_pixel(4, 4).0;
    // Display P3 (200,100,100) is about sRGB (216,93,97): redder, less green.
    assert!(px[0] >= 210 && px[1] <= 96, "converted to sRGB: {px:?}");
    let decode = &sidecar(&out)["inputs"][0]["decode"]["color_profile"];
    assert_eq!(decode["description"], "Display P3 (test)", "{decode}");
    assert_eq!(decode["converted_to_srgb"], true);
    // The same numbers with no profile are taken as sRGB and left alone.
    let plain = write(&env, "plain.png", &{
        let mut b = Cursor::new(vec![]);
        image::RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 100])).write_to(&mut b, image::ImageFormat::Png).unwrap();
        b.into_inner()
    });
    let out2 = env.path("plain-out.png");
    env.ok(&["filter", s(&plain), "--step", "resize:width=8", "-o", s(&out2)]);
    assert_eq!(image::open(&out2).unwrap().into_rgb8().get_pixel(4, 4).0, [200, 100, 100]);
    assert!(sidecar(&out2)["inputs"][0].get("decode").is_none());
    // Through the model pipeline as well.
    let v = json(&env.ok(&["edit", s(&p3), "--prompt", "warmer", "--model", "classic", "-o", s(&env.path("out")), "--json"]));
    let o = PathBuf::from(v["outputs"][0]["path"].as_str().unwrap());
    assert_eq!(sidecar(&o)["inputs"][0]["decode"]["color_profile"]["converted_to_srgb"], true);
}

#[test]
fn every_file_is_checked_before_it_is_read() {
    let mut env = Env::new(&["classic", "filters"]);
    let good = write(&env, "good.png", &png_with_orientation(&marked(16, 16), 1));
    // A 3 GB sparse file (no disk used) named like a picture: refused from its size, at once.
    let huge = env.path("huge.png");
    std::fs::File::create(&huge).unwrap().set_len(3 << 30).unwrap();
    let t = std::time::Instant::now();
    let e = env.fails(&["filter", s(&huge), "--step", "grayscale", "-o", s(&env.path("x.png"))]);
    assert!(e.contains("3072 MiB is more than the 512 MiB input limit") && e.contains("[limits] max_input_mb"), "{e}");
    assert!(t.elapsed().as_secs() < 60, "not read");
    let (o, z, w) = (s(&env.path("o")).to_string(), s(&env.path("z.png")).to_string(), s(&env.path("w.png")).to_string());
    let zero = "/dev/zero";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["filter", zero, "--step", "grayscale", "-o", &z], "not a regular file"),
        (vec!["edit", zero, "--prompt", "x", "--model", "classic", "-o", &o], "not a regular file"),
        (vec!["edit", s(&good), "--mask", zero, "--prompt", "x", "--model", "classic", "-o", &o], "not a regular file"),
        (vec!["edit", s(&good), "--mask", s(&huge), "--prompt", "x", "--model", "classic", "-o", &o], "512 MiB input limit"),
        (vec!["filter", s(&good), "--step", "watermark:image=/dev/zero", "-o", &w], "not a regular file"),
        (vec!["edit", s(&good), "--prompt", "x", "--model", "classic", "--post", "watermark:image=/dev/zero", "-o", &o], "not a regular file"),
        (vec!["run", "/dev/zero", s(&good)], "not a regular file"),
    ];
    for (args, want) in &cases {
        let e = env.fails(args);
        assert!(e.contains(want) && !e.contains("panicked"), "{args:?}: {e}");
    }
    assert!(!env.path("o").exists() || std::fs::read_dir(env.path("o")).unwrap().count() == 0, "no placeholder is left behind");
    // A recipe input: refused by the recipe check, before anything runs.
    let recipe = write(&env, "r.toml", b"name = \"r\"\n[[stage]]\nname = \"one\"\nengine = \"classic\"\nprompt = \"sepia\"\n");
    let e = env.fails(&["run", s(&recipe), zero, "-o", s(&env.path("run"))]);
    assert!(e.contains("not a regular file"), "{e}");
    // Not a picture at all: refused from its first bytes.
    let text = write(&env, "notes.png", b"these are my notes, not a picture");
    let e = env.fails(&["filter", s(&text), "--step", "grayscale", "-o", s(&env.path("t.png"))]);
    assert!(e.contains("not an image atelier can read") && e.contains("refused before reading it"), "{e}");
    // The limit is the operator's.
    let big = env.path("big.png");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.resize(3 << 19, 0); // 1.5 MiB: a PNG with trailing bytes
    std::fs::write(&big, &bytes).unwrap();
    env.ok(&["filter", s(&big), "--step", "grayscale", "-o", s(&env.path("b1.png"))]);
    env.config("[limits]\nmax_input_mb = 1\n");
    let e = env.fails(&["filter", s(&big), "--step", "grayscale", "-o", s(&env.path("b2.png"))]);
    assert!(e.contains("1 MiB is more than the 1 MiB input limit"), "{e}");
}

#[test]
fn a_truncated_jpeg_is_reported_and_recorded() {
    let env = Env::new(&["classic", "filters"]);
    let whole = noisy_jpeg(96, 96);
    let cut = write(&env, "cut.jpg", &whole[..whole.len() / 2]);
    let out = env.path("cut-out.png");
    // The decoder fills the missing half with grey and reports success: the host says so.
    let o = env.run(&["filter", s(&cut), "--step", "grayscale", "-o", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning:") && err.contains("cut.jpg") && err.contains("cut short"), "{err}");
    let t = &sidecar(&out)["inputs"][0]["decode"]["truncated"];
    assert!(t.as_str().unwrap().contains("FFD9"), "{t}");
    // Through the pipeline: a warning in the result and on stderr, recorded with the input.
    let o = env.run(&["edit", s(&cut), "--prompt", "sepia", "--model", "classic", "-o", s(&env.path("out")), "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert!(v["warnings"][0].as_str().unwrap().contains("cut short") && err.contains("warning:"), "{v}");
    let p = PathBuf::from(v["outputs"][0]["path"].as_str().unwrap());
    assert!(sidecar(&p)["inputs"][0]["decode"]["truncated"].is_string());
    // The whole file: no warning.
    let ok = write(&env, "whole.jpg", &whole);
    let o = env.run(&["filter", s(&ok), "--step", "grayscale", "-o", s(&env.path("whole-out.png"))]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("warning"));
}

// ---------------------------------------------------------------------------------------------
// Writing results.

#[test]
fn racing_writers_to_one_output_exactly_one_wins() {
    let env = Env::new(&["filters"]);
    let input = write(&env, "in.png", &png_with_orientation(&marked(32, 32), 1));
    for round in 0..3 {
        let out = env.path(&format!("same-{round}.png"));
        let runs = at_once(&env, 6, &["filter", s(&input), "--step", "grayscale", "-o", s(&out)]);
        let won = runs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {} succeeded", won);
        for o in runs.iter().filter(|o| !o.status.success()) {
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("already exist") && e.contains("--force"), "{e}");
        }
        image::open(&out).unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(env.dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".part")), "no temporary file left: {names:?}");
}

#[test]
fn sidecars_are_named_after_the_whole_output_name() {
    let env = Env::new(&["classic", "filters"]);
    let input = write(&env, "in.png", &png_with_orientation(&marked(16, 16), 1));
    let (png, jpg) = (env.path("pic.png"), env.path("pic.jpg"));
    env.ok(&["filter", s(&input), "--step", "grayscale", "-o", s(&png)]);
    env.ok(&["filter", s(&input), "--step", "blur", "-o", s(&jpg)]);
    assert_eq!(sidecar(&png)["steps"][0], "grayscale");
    assert_eq!(sidecar(&jpg)["steps"][0], "blur");
    env.ok(&["filter", s(&input), "--step", "sharpen", "-o", s(&jpg), "--force"]);
    assert_eq!(sidecar(&png)["steps"][0], "grayscale", "--force on pic.jpg leaves pic.png's provenance alone");
    assert_eq!(sidecar(&jpg)["steps"][0], "sharpen");
    assert!(!env.path("pic.json").exists());

    // A video whose extension follows the model (a GIF for `-o clip.mp4`): the name reserved for
    // it is released, the sidecar follows the real name.
    let v = json(&env.ok(&["animate", s(&input), "--prompt", "pan left", "--model", "classic", "--seconds", "1", "--param", "fps=5", "-o", s(&env.path("clip.mp4")), "--json"]));
    assert!(v["outputs"][0]["path"].as_str().unwrap().ends_with("clip.gif"), "{v}");
    assert!(env.path("clip.gif.json").exists() && !env.path("clip.mp4").exists(), "the placeholder is gone");

    // A sidecar written the old way (`NAME.json`) is still read by rerun.
    let v = json(&env.ok(&["edit", s(&input), "--prompt", "sepia", "--model", "classic", "--seed", "3", "-o", s(&env.path("out")), "--json"]));
    let out = PathBuf::from(v["outputs"][0]["path"].as_str().unwrap());
    assert_eq!(v["outputs"][0]["sidecar"].as_str().unwrap(), format!("{}.json", out.display()));
    let legacy = out.with_extension("json");
    std::fs::rename(format!("{}.json", out.display()), &legacy).unwrap();
    let r = json(&env.ok(&["rerun", s(&legacy), "--json"]));
    let again = r["outputs"][0]["path"].as_str().unwrap();
    assert!(again.ends_with("in-classic-01-rerun.png"), "{again}");
    assert_eq!(image::open(again).unwrap().into_rgba8().into_raw(), image::open(&out).unwrap().into_rgba8().into_raw());
}

#[test]
fn zero_outputs_a_name_without_extension_and_a_zero_cost_are_refused_or_shown_plainly() {
    let env = Env::new(&["classic", "filters"]);
    let input = write(&env, "in.png", &png_with_orientation(&marked(16, 16), 1));
    let e = env.fails(&["edit", s(&input), "--prompt", "x", "--model", "classic", "-n", "0", "-o", s(&env.path("out"))]);
    assert!(e.contains("-n 0 asks for no output; give -n 1 or more"), "{e}");
    assert!(!env.path("out").exists() || std::fs::read_dir(env.path("out")).unwrap().count() == 0);
    let e = env.fails(&["filter", s(&input), "--step", "grayscale", "-o", s(&env.path("noext"))]);
    assert!(e.contains("has no extension") && e.contains(".png, .jpg or .webp"), "{e}");
    assert!(!env.path("noext").exists());
    // A recipe whose only stage fails (its input decodes no further than the header): no cost.
    let mut broken = std::fs::read(&input).unwrap();
    let idat = broken.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut broken[idat + 4..idat + 20] {
        *b = 0x55;
    }
    let bad = write(&env, "bad.png", &broken);
    let recipe = write(&env, "r.toml", b"name = \"r\"\n[[stage]]\nname = \"one\"\nengine = \"classic\"\nprompt = \"sepia\"\n");
    let o = env.run(&["run", s(&recipe), s(&bad), "-o", s(&env.path("run"))]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("total cost: 0.00 ") && !out.contains("-0.00"), "{out}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let env = Env::new(&["classic", "filters"]);
    // The reader is gone before anything is written.
    for args in [vec!["filters"], vec!["models"], vec!["filters", "--json"]] {
        let mut child = env.cmd().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(o.status.success() || o.status.signal() == Some(13), "{args:?}: {:?}", o.status);
    }
    // As users meet it.
    let cmd = format!("\"$0\" filters | head -1; echo status=$?");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(&cmd).arg(common::bin());
    for (k, v) in env.cmd().get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let o = sh.output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(out.lines().count() == 2 && out.contains("status=0"), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn twenty_concurrent_edits_into_one_folder_submit_once() {
    let env = Env::new(&["classic", "filters"]);
    let input = write(&env, "in.png", &png_with_orientation(&marked(32, 32), 1));
    let out = env.path("out");
    let runs = at_once(&env, 20, &["edit", s(&input), "--prompt", "sepia", "--model", "classic", "-o", s(&out)]);
    let won = runs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "{:?}", runs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect::<Vec<_>>());
    for o in runs.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("already exist") && e.contains("nothing was run") && e.contains("--force"), "{e}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["in-classic-01.png", "in-classic-01.png.json"]);
    // Exactly one job was made and submitted, once.
    let jobs = json(&env.ok(&["jobs", "list", "--json"]));
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["submits"], 1);
    image::open(out.join("in-classic-01.png")).unwrap();
}

#[test]
fn jobs_resume_delivers_to_a_free_name_when_the_original_is_taken() {
    let emu = Emu::start();
    let mut env = Env::new(&["veo-3", "filters"]);
    env.config(&emu.config_for(&["veo-3"], "#veo-3\npoll_interval_ms = 100"));
    env.envs.push(("GEMINI_API_KEY".into(), "emu-gemini-key".into()));
    let input = write(&env, "in.png", &png_with_orientation(&marked(32, 32), 1));
    let clip = env.path("clip.mp4");
    let mut child = env
        .cmd()
        .args(["animate", s(&input), "--prompt", "waves [fault:slow-op:40]", "--model", "veo-3", "-o", s(&clip)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    emu.wait_for_operation_polls(3, 120);
    // The name was reserved before the submit: another run cannot take it meanwhile.
    let e = env.fails(&["animate", s(&input), "--prompt", "other", "--model", "veo-3", "-o", s(&clip)]);
    assert!(e.contains("reserved by another run in progress") && e.contains("nothing was run"), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The user puts something else there while the job is still pending.
    std::fs::write(&clip, b"someone else's clip").unwrap();
    let o = env.run(&["jobs", "resume", "--all", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let path = v["jobs"][0]["outputs"][0]["path"].as_str().unwrap();
    assert!(path.ends_with("clip-2.mp4"), "{v}");
    assert!(err.contains("clip.mp4 was taken meanwhile, so output 1 went to") && err.contains("clip-2.mp4"), "{err}");
    assert_eq!(std::fs::read(&clip).unwrap(), b"someone else's clip", "not overwritten");
    assert_eq!(&std::fs::read(path).unwrap()[4..8], b"ftyp");
    assert!(env.path("clip-2.mp4.json").exists());
    assert_eq!(emu.count("POST", ":predictLongRunning"), 1, "exactly one submit");
}

/// The server decodes an upload to refuse it by its field name; the pipeline then takes those
/// pixels rather than decoding the file a second time (here the file and the pixels differ, so the
/// output shows which was used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_the_caller_already_decoded_are_not_decoded_again() {
    use atelier::pipeline::edit::DecodedInputs;
    let dir = tempfile::tempdir().unwrap();
    let rt = atelier_tests::runtime_over(common::plugin_dirs(&["classic"]), "", atelier_tests::cache_dir());
    let db = std::sync::Arc::new(atelier::jobs::JobDb::open(&dir.path().join("state")).unwrap());
    let (_cancel, rx) = tokio::sync::watch::channel(false);
    let runner = atelier::jobs::Runner::new(db, rx);
    let file = dir.path().join("in.png");
    std::fs::write(&file, atelier_tests::tiny_png()).unwrap();
    let mut other = Cursor::new(Vec::new());
    image::RgbaImage::from_pixel(20, 10, image::Rgba([10, 20, 200, 255])).write_to(&mut other, image::ImageFormat::Png).unwrap();
    let limits = atelier::imageio::DecodeLimits { max_pixels: 1 << 20, max_dimension: 4096 };
    let decoded = atelier::imageio::decode_file_bytes(other.into_inner(), limits, "upload").unwrap();
    let edit = |decoded_inputs: DecodedInputs, out: &str| atelier::pipeline::EditRequest {
        inputs: vec![file.clone()],
        prompt: "warm".into(),
        model: "classic".into(),
        n: 1,
        out_dir: dir.path().join(out),
        decoded_inputs,
        ..Default::default()
    };
    let size = |r: &atelier::pipeline::EditResult| image::image_dimensions(&r.outputs[0].path).unwrap();
    let given = atelier::pipeline::edit(&rt, &runner, &edit(DecodedInputs::new(vec![decoded]), "given")).await.unwrap();
    assert_eq!(size(&given), (20, 10), "the pipeline used the pixels it was handed");
    let read = atelier::pipeline::edit(&rt, &runner, &edit(DecodedInputs::default(), "read")).await.unwrap();
    assert_eq!(size(&read), (8, 8), "without them it reads the file");
}
