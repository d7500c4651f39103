//! The offline path end to end through the CLI: `classic`, the filters, provenance, contact
//! sheets, and bad input.

mod common;

use common::{Env, json, small_photo};

#[test]
fn edit_with_classic_writes_variations_sheet_and_provenance() {
    let env = Env::new(&["classic", "filters"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 160);
    let out = env.path("out");
    let text = env.ok(&[
        "edit", photo.to_str().unwrap(), "--prompt", "posterize, warmer", "--model", "classic", "-n", "3", "--seed", "41",
        "--param", "levels=5", "--pre", "resize:max=120", "--post", "watermark:text=draft,opacity=0.8", "-o", out.to_str().unwrap(), "--json",
    ]);
    let v = json(&text);
    let outputs = v["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 3);
    let seeds: Vec<u64> = outputs.iter().map(|o| o["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, vec![41, 42, 43]);
    for o in outputs {
        assert_eq!((o["width"].as_u64(), o["height"].as_u64()), (Some(120), Some(80)));
        assert_eq!(o["mime"], "image/png");
        let path = std::path::PathBuf::from(o["path"].as_str().unwrap());
        // Provenance: sidecar and PNG text chunk say the same, and round-trip.
        let sidecar: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{}.json", path.display())).unwrap()).unwrap();
        let chunk = atelier::imageio::read_png_provenance(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&chunk).unwrap(), sidecar);
        assert_eq!(sidecar["engine"], "classic");
        assert_eq!(sidecar["prompt"], "posterize, warmer");
        assert_eq!(sidecar["params"]["levels"], 5);
        assert_eq!(sidecar["pre"][0], "resize:max=120");
        assert_eq!(sidecar["post"][0], "watermark:text=draft,opacity=0.8");
        assert_eq!(sidecar["seed"], o["seed"]);
        assert!(sidecar["source_hash"].as_str().unwrap().len() == 64);
        // Posterize with 5 levels: few colours (the watermark adds some anti-aliased ones).
        let img = image::open(&path).unwrap().into_rgba8();
        let colours: std::collections::HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() < 200, "posterized image has {} colours", colours.len());
    }
    let sheet = v["contact_sheet"].as_str().unwrap();
    let s = image::open(sheet).unwrap();
    assert!(s.width() > 256 && s.height() > 256);
    // Different seeds give different images.
    let a = std::fs::read(outputs[0]["path"].as_str().unwrap()).unwrap();
    let b = std::fs::read(outputs[1]["path"].as_str().unwrap()).unwrap();
    assert_ne!(image::load_from_memory(&a).unwrap().into_bytes(), image::load_from_memory(&b).unwrap().into_bytes());

    // Never over an earlier result without --force; nothing is run.
    let err = env.fails(&["edit", photo.to_str().unwrap(), "--prompt", "sepia", "--model", "classic", "-n", "3", "-o", out.to_str().unwrap()]);
    assert!(err.contains("already exist") && err.contains("--force"), "{err}");
    env.ok(&["edit", photo.to_str().unwrap(), "--prompt", "sepia", "--model", "classic", "-n", "3", "-o", out.to_str().unwrap(), "--force"]);

    // The jobs are on record.
    let jobs = json(&env.ok(&["jobs", "list", "--json"]));
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert!(jobs.as_array().unwrap().iter().all(|j| j["state"] == "done" && j["submits"] == 1));
}

#[test]
fn same_seed_reproduces_bit_for_bit() {
    let env = Env::new(&["classic"]);
    let photo = small_photo(env.dir.path(), "chelsea.png", 96);
    let run = |dir: &str| {
        let v = json(&env.ok(&["edit", photo.to_str().unwrap(), "--prompt", "vintage film grain", "--model", "classic", "--seed", "5", "-o", env.path(dir).to_str().unwrap(), "--json"]));
        let p = v["outputs"][0]["path"].as_str().unwrap().to_string();
        image::open(p).unwrap().into_bytes()
    };
    assert_eq!(run("a"), run("b"));
}

#[test]
fn filter_chain_gives_exact_sizes() {
    let env = Env::new(&["filters"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 300);
    let cases: &[(&[&str], (u32, u32))] = &[
        (&["resize:width=100"], (100, 67)),
        (&["fit:aspect=16:9,mode=crop"], (288, 162)),
        (&["fit:width=64,height=64,mode=pad,color=white"], (64, 64)),
        (&["crop:width=50,height=40,x=10,y=10", "rotate:degrees=90"], (40, 50)),
        (&["resize:max=128", "crop:width=100,height=60,gravity=center", "adjust:contrast=1.2,saturation=1.1", "sharpen:amount=0.5", "watermark:text=ok"], (100, 60)),
    ];
    for (i, (steps, (w, h))) in cases.iter().enumerate() {
        let out = env.path(&format!("f{i}.png"));
        let mut args = vec!["filter", photo.to_str().unwrap()];
        for s in *steps {
            args.extend(["--step", s]);
        }
        args.extend(["-o", out.to_str().unwrap(), "--json"]);
        let v = json(&env.ok(&args));
        assert_eq!((v["outputs"][0]["width"].as_u64().unwrap() as u32, v["outputs"][0]["height"].as_u64().unwrap() as u32), (*w, *h), "{steps:?}");
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (*w, *h));
    }
    // Grayscale really is grey; JPEG output by extension.
    let out = env.path("g.jpg");
    env.ok(&["filter", photo.to_str().unwrap(), "--step", "grayscale", "-o", out.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&out).unwrap()[..3], &[0xFF, 0xD8, 0xFF]);
}

#[test]
fn masked_remove_fills_the_hole_and_keeps_the_rest() {
    let env = Env::new(&["classic"]);
    let photo = small_photo(env.dir.path(), "chelsea.png", 120);
    let src = image::open(&photo).unwrap().into_rgba8();
    let (w, h) = src.dimensions();
    // Paint a black square "object" into the photo, and mask it.
    let mut with_object = src.clone();
    let mut mask = image::RgbaImage::from_pixel(w, h, image::Rgba([0, 0, 0, 255]));
    for y in 30..50 {
        for x in 50..70 {
            with_object.put_pixel(x, y, image::Rgba([0, 0, 0, 255]));
            mask.put_pixel(x, y, image::Rgba([255, 255, 255, 255]));
        }
    }
    let (input, mask_path) = (env.path("obj.png"), env.path("mask.png"));
    with_object.save(&input).unwrap();
    mask.save(&mask_path).unwrap();
    let v = json(&env.ok(&[
        "edit", input.to_str().unwrap(), "--mask", mask_path.to_str().unwrap(), "--prompt", "remove", "--model", "classic",
        "--param", "feather=2", "-o", env.path("out").to_str().unwrap(), "--json",
    ]));
    let out = image::open(v["outputs"][0]["path"].as_str().unwrap()).unwrap().into_rgba8();
    // Outside the mask and its feather band: unchanged.
    for y in 0..h {
        for x in 0..w {
            let far = !(46..=74).contains(&x) || !(26..=54).contains(&y);
            if far {
                assert_eq!(out.get_pixel(x, y), with_object.get_pixel(x, y), "pixel {x},{y} changed");
            }
        }
    }
    // Inside: no black hole left; brightness close to the surroundings.
    let inside: Vec<f64> = (32..48).flat_map(|y| (52..68).map(move |x| (x, y))).map(|(x, y)| luma(out.get_pixel(x, y))).collect();
    let ring: Vec<f64> = (22..58).flat_map(|y| (42..78).map(move |x| (x, y)))
        .filter(|(x, y)| !(48..72).contains(x) || !(28..52).contains(y)).map(|(x, y)| luma(out.get_pixel(x, y))).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(inside.iter().all(|&l| l > 10.0), "hole left");
    assert!((mean(&inside) - mean(&ring)).abs() < 40.0, "fill {} vs ring {}", mean(&inside), mean(&ring));
}

fn luma(p: &image::Rgba<u8>) -> f64 {
    0.2126 * p.0[0] as f64 + 0.7152 * p.0[1] as f64 + 0.0722 * p.0[2] as f64
}

#[test]
fn animate_with_classic_writes_a_video_with_provenance() {
    let env = Env::new(&["classic"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 128);
    let v = json(&env.ok(&["animate", photo.to_str().unwrap(), "--prompt", "pan left", "--model", "classic", "--seconds", "1",
        "--param", "fps=6", "-o", env.path("clip.mp4").to_str().unwrap(), "--json"]));
    let o = &v["outputs"][0];
    let path = o["path"].as_str().unwrap();
    assert!(path.ends_with(".gif"), "{path}: the extension follows what the model produced");
    assert_eq!(o["mime"], "image/gif");
    let frames = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    use image::AnimationDecoder;
    assert_eq!(frames.into_frames().count(), 6);
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{path}.json")).unwrap()).unwrap();
    // The output kind is a typed field of the request (contract 0.2), kept as such in provenance.
    assert_eq!(side["output_kind"], "video");
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    let env = Env::new(&["classic", "filters"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let out = env.path("out");
    let o = out.to_str().unwrap();
    let p = photo.to_str().unwrap();
    // Truncated image.
    let bytes = std::fs::read(&photo).unwrap();
    let trunc = env.path("trunc.png");
    std::fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    // A 100k x 100k PNG header (decompression bomb), refused before decoding.
    let bomb = env.path("bomb.png");
    std::fs::write(&bomb, common::png_claiming(&std::fs::read(&photo).unwrap(), 100_000, 100_000)).unwrap();
    let small_mask = env.path("m.png");
    image::RgbaImage::new(8, 8).save(&small_mask).unwrap();
    let crop_out = env.path("c.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["edit", trunc.to_str().unwrap(), "--prompt", "sepia", "--model", "classic", "-o", o], "truncated"),
        (vec!["edit", bomb.to_str().unwrap(), "--prompt", "sepia", "--model", "classic", "-o", o], "refused before decoding"),
        (vec!["edit", p, "--mask", small_mask.to_str().unwrap(), "--prompt", "sepia", "--model", "classic", "-o", o], "must be the same size"),
        (vec!["edit", p, "--prompt", "sepia", "--model", "classic", "--post", "blurr", "-o", o], "unknown filter `blurr`"),
        (vec!["edit", p, "--prompt", "sepia", "--model", "classic", "--post", "blur:radius=3", "-o", o], "no parameter `radius`"),
        (vec!["edit", p, "--prompt", "sepia", "--model", "classic", "--post", "blur:sigma=900", "-o", o], "out of range"),
        (vec!["edit", p, "--prompt", "sepia", "--model", "classic", "--param", "levels=99", "-o", o], "out of range"),
        (vec!["edit", p, "--prompt", "make it look like a dream", "--model", "classic", "-o", o], "watercolor"),
        (vec!["filter", p, "--step", "crop:width=500,height=10", "-o", crop_out.to_str().unwrap()], "crop"),
    ];
    for (args, expect) in cases {
        let err = env.fails(&args);
        assert!(err.contains(expect), "{args:?}: expected `{expect}` in: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written");
    assert!(!env.path("c.png").exists());
}

#[test]
fn each_named_style_changes_the_image_in_the_expected_direction() {
    let env = Env::new(&["classic"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 160);
    let src = image::open(&photo).unwrap().into_rgba8();
    let run = |prompt: &str, extra: &[&str]| -> image::RgbaImage {
        let out = env.path(&format!("s-{}", prompt.replace(' ', "-")));
        let mut args = vec!["edit", photo.to_str().unwrap(), "--prompt", prompt, "--model", "classic", "--seed", "3", "-o", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let v = json(&env.ok(&args));
        image::open(v["outputs"][0]["path"].as_str().unwrap()).unwrap().into_rgba8()
    };
    let n = (src.width() * src.height()) as f64;

    // Pencil sketch: near-grey, mostly paper-white, with dark strokes along edges.
    let sketch = run("pencil sketch", &[]);
    let chroma = sketch.pixels().map(|p| (p.0[0] as f64 - p.0[1] as f64).abs() + (p.0[1] as f64 - p.0[2] as f64).abs()).sum::<f64>() / n;
    assert!(chroma < 8.0, "sketch chroma {chroma}");
    let dark = sketch.pixels().filter(|p| luma(p) < 110.0).count() as f64 / n;
    let mean = sketch.pixels().map(luma).sum::<f64>() / n;
    assert!(mean > 150.0 && dark > 0.01, "sketch mean {mean}, dark fraction {dark}");

    // Posterize: at most `levels` colours.
    let poster = run("posterize", &["--param", "levels=4"]);
    let colours: std::collections::HashSet<[u8; 4]> = poster.pixels().map(|p| p.0).collect();
    assert!(colours.len() <= 4, "{} colours", colours.len());

    // Sepia: warm brown — red over green over blue nearly everywhere.
    let sepia = run("sepia", &[]);
    let warm = sepia.pixels().filter(|p| p.0[0] >= p.0[1] && p.0[1] >= p.0[2]).count() as f64 / n;
    assert!(warm > 0.95, "sepia ordering holds for {warm}");

    // Black and white: R = G = B.
    let bw = run("black and white", &[]);
    assert!(bw.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));

    // Oil painting (Kuwahara) on fur: local variance drops while the image keeps its edges.
    let cat = small_photo(env.dir.path(), "chelsea.png", 256);
    let cat_src = image::open(&cat).unwrap().into_rgba8();
    let out = env.path("s-oil");
    let v = json(&env.ok(&["edit", cat.to_str().unwrap(), "--prompt", "oil painting", "--model", "classic", "--param", "strength=1", "--seed", "3", "-o", out.to_str().unwrap(), "--json"]));
    let oil = image::open(v["outputs"][0]["path"].as_str().unwrap()).unwrap().into_rgba8();
    let (v_src, v_oil) = (local_variance(&cat_src), local_variance(&oil));
    assert!(v_oil < 0.85 * v_src, "local variance {v_src} -> {v_oil}");

    // Warmer / cooler shift the red-blue balance the right way.
    let balance = |img: &image::RgbaImage| img.pixels().map(|p| p.0[0] as f64 - p.0[2] as f64).sum::<f64>() / n;
    assert!(balance(&run("warmer", &[])) > balance(&src) + 3.0);
    assert!(balance(&run("cooler", &[])) < balance(&src) - 3.0);
}

/// Mean over pixels of the variance of luma in the 3x3 neighbourhood.
fn local_variance(img: &image::RgbaImage) -> f64 {
    let (w, h) = img.dimensions();
    let mut total = 0.0;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v: Vec<f64> = (0..9).map(|i| luma(img.get_pixel(x + i % 3 - 1, y + i / 3 - 1))).collect();
            let m = v.iter().sum::<f64>() / 9.0;
            total += v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 9.0;
        }
    }
    total / ((w - 2) * (h - 2)) as f64
}

#[test]
fn masked_edit_over_2048_px_runs_at_full_size_and_changes_only_the_masked_area() {
    // 2100 px on the long side (classic used to refuse masked images over 2048 px); thin, so the
    // debug-built test stays fast.
    let env = Env::new(&["classic"]);
    let (w, h) = (2100u32, 16u32);
    let src = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x % 256) as u8, (y * 15) as u8, 90, 255]));
    let mut mask = image::RgbaImage::from_pixel(w, h, image::Rgba([0, 0, 0, 255]));
    let masked = 2000..2060;
    for y in 0..h {
        for x in masked.clone() {
            mask.put_pixel(x, y, image::Rgba([255, 255, 255, 255]));
        }
    }
    let (input, mask_path) = (env.path("wide.png"), env.path("wide-mask.png"));
    src.save(&input).unwrap();
    mask.save(&mask_path).unwrap();
    let v = json(&env.ok(&[
        "edit", input.to_str().unwrap(), "--mask", mask_path.to_str().unwrap(), "--prompt", "sepia", "--model", "classic",
        "--param", "feather=0", "--seed", "5", "-o", env.path("out").to_str().unwrap(), "--json",
    ]));
    let o = &v["outputs"][0];
    assert_eq!((o["width"].as_u64(), o["height"].as_u64()), (Some(w as u64), Some(h as u64)), "the image must not be shrunk: {o}");
    let out = image::open(o["path"].as_str().unwrap()).unwrap().into_rgba8();
    assert_eq!(out.dimensions(), (w, h));
    let mut changed = 0;
    for y in 0..h {
        for x in 0..w {
            if masked.contains(&x) {
                changed += (out.get_pixel(x, y) != src.get_pixel(x, y)) as usize;
            } else {
                assert_eq!(out.get_pixel(x, y), src.get_pixel(x, y), "pixel {x},{y} outside the mask changed");
            }
        }
    }
    assert!(changed > masked.len() * h as usize * 9 / 10, "only {changed} masked pixels changed");
}
