//! Seedream (ModelArk), Flux Kontext (BFL) and Sora 2 (OpenAI videos contract) end to end: the
//! CLI, the real components and the strict emulator, configured only through `atelier.toml`.

mod common;

use common::{Emu, Env, json, small_photo};

fn env_for(emu: &Emu, extra: &str) -> Env {
    let mut env = Env::new(&["seedream", "flux-kontext", "sora-2", "filters"]);
    env.config(&emu.config_for(&["seedream", "flux-kontext", "sora-2"], extra));
    for (k, v) in [("ARK_API_KEY", "emu-ark-key"), ("BFL_API_KEY", "emu-bfl-key"), ("OPENAI_API_KEY", "emu-openai-key")] {
        env.envs.push((k.into(), v.into()));
    }
    env
}

const FAST_FLUX: &str = "#flux-kontext\npoll_interval_ms = \"50\"";

#[test]
fn seedream_batch_gives_n_images_and_keeps_the_good_ones_of_a_partial_batch() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let p = a.to_str().unwrap();
    let v = json(&env.ok(&["edit", p, "--prompt", "a poster", "--model", "seedream", "-n", "3", "--param", "size=1280x720",
        "-o", env.path("out").to_str().unwrap(), "--json"]));
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 3);
    assert!(outs.iter().all(|o| o["width"] == 1280 && o["height"] == 720));
    assert_eq!(emu.count("POST", "/api/v3/images/generations"), 1, "one call for the whole batch");
    let r = emu.emu.state.requests().into_iter().find(|r| r.path.contains("/images/generations")).unwrap();
    assert!(r.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer emu-ark-key"));
    assert!(r.body.contains("data:image/png;base64,"), "lowercase data URI");

    // One image of the batch fails: the others are written and the failure is reported (exit 3).
    let o = env.run(&["edit", p, "--prompt", "a poster [fault:batch-partial]", "--model", "seedream", "-n", "3", "--param", "size=1280x720",
        "-o", env.path("partial").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(v["failures"].as_array().unwrap().len(), 1);
    assert!(v["failures"][0].as_str().unwrap().contains("output 2"), "{v}");
    assert_eq!(std::fs::read_dir(env.path("partial")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "png").count(), 3, "2 images + sheet");
}

#[test]
fn seedream_faults_retry_or_explain_and_never_repeat_blindly() {
    let emu = Emu::start();
    let env = env_for(&emu, "#global\n[limits]\nhttp_timeout_s = 8");
    let a = small_photo(env.dir.path(), "coffee.png", 64);
    let p = a.to_str().unwrap();
    let run = |prompt: &str, out: &str| env.run(&["edit", p, "--prompt", prompt, "--model", "seedream", "--param", "size=1280x720", "-o", env.path(out).to_str().unwrap()]);
    for (i, f) in ["[fault:429]", "[fault:500]"].iter().enumerate() {
        let o = run(&format!("poster {f}"), &format!("ok{i}"));
        assert!(o.status.success(), "{f}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(emu.count("POST", "/images/generations"), 4);
    for (i, (f, expect)) in [("[fault:422]", "not valid"), ("[fault:moderated]", "safety"), ("[fault:malformed]", "malformed"), ("[fault:hang]", "not sent again")].iter().enumerate() {
        let o = run(&format!("poster {f}"), &format!("bad{i}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expect) && err.contains("seedream"), "{f}: {err}");
    }
    assert_eq!(emu.count("POST", "/images/generations"), 8, "no fatal answer was retried");
}

#[test]
fn flux_polls_the_returned_url_on_another_host_and_reports_expiry_and_moderation() {
    let emu = Emu::start();
    let env = env_for(&emu, FAST_FLUX);
    let a = small_photo(env.dir.path(), "chelsea.png", 96);
    let p = a.to_str().unwrap();
    let v = json(&env.ok(&["edit", p, "--prompt", "make it night", "--model", "flux-kontext", "--seed", "5", "--param", "aspect=16:9",
        "-o", env.path("out").to_str().unwrap(), "--json"]));
    assert_eq!(v["outputs"][0]["seed"], 5);
    let w = v["outputs"][0]["width"].as_u64().unwrap() as f64;
    let h = v["outputs"][0]["height"].as_u64().unwrap() as f64;
    assert!((w / h - 16.0 / 9.0).abs() < 0.05, "{w}x{h}");
    let reqs = emu.emu.state.requests();
    assert!(reqs.iter().any(|r| r.path.starts_with("/v1/get_result") && r.host == "alt"), "polled the returned polling_url verbatim");
    let delivery = reqs.iter().find(|r| r.path.starts_with("/bfl-delivery/")).expect("the result was downloaded");
    assert!(!delivery.headers.iter().any(|(k, _)| k == "x-key"), "no key on the delivery URL");
    let err = env.fails(&["edit", p, "--prompt", "night [fault:expired]", "--model", "flux-kontext", "-o", env.path("e").to_str().unwrap()]);
    assert!(err.contains("expired"), "{err}");
    let err = env.fails(&["edit", p, "--prompt", "night [fault:moderated]", "--model", "flux-kontext", "-o", env.path("m").to_str().unwrap()]);
    assert!(err.contains("safety") && err.contains("flux-kontext"), "{err}");
    let err = env.fails(&["edit", p, "--prompt", "night [fault:failed]", "--model", "flux-kontext", "-o", env.path("f").to_str().unwrap()]);
    assert!(err.contains("flux-kontext"), "{err}");
    assert_eq!(emu.count("POST", "/v1/flux-kontext-pro"), 4, "one submit each");
}

#[test]
fn flux_with_a_mask_uses_fill() {
    let emu = Emu::start();
    let env = env_for(&emu, FAST_FLUX);
    let a = small_photo(env.dir.path(), "chelsea.png", 96);
    let img = image::open(&a).unwrap();
    let mut mask = image::GrayImage::new(img.width(), img.height());
    for y in 10..30 {
        for x in 10..40 {
            mask.put_pixel(x, y, image::Luma([255]));
        }
    }
    let m = env.path("mask.png");
    mask.save(&m).unwrap();
    let v = json(&env.ok(&["edit", a.to_str().unwrap(), "--mask", m.to_str().unwrap(), "--prompt", "a red ball", "--model", "flux-kontext",
        "-o", env.path("out").to_str().unwrap(), "--json"]));
    assert_eq!((v["outputs"][0]["width"].as_u64(), v["outputs"][0]["height"].as_u64()), (Some(img.width() as u64), Some(img.height() as u64)));
    assert_eq!(emu.count("POST", "/v1/flux-pro-1.0-fill"), 1);
    assert_eq!(emu.count("POST", "/v1/flux-kontext"), 0);
}

#[test]
fn sora_gets_a_reference_fitted_to_its_size_and_explains_the_retirement() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 120); // 120x80: not 1280x720
    let p = a.to_str().unwrap();
    let v = json(&env.ok(&["animate", p, "--prompt", "the cup spins", "--model", "sora-2", "--seconds", "8", "--param", "size=1280x720",
        "-o", env.path("clip.mp4").to_str().unwrap(), "--json"]));
    let path = v["outputs"][0]["path"].as_str().unwrap();
    assert_eq!(&std::fs::read(path).unwrap()[4..8], b"ftyp");
    let create = emu.emu.state.requests().into_iter().find(|r| r.method == "POST" && r.path == "/v1/videos").unwrap();
    assert!(create.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("multipart/form-data")));
    assert!(create.body.contains("name=\"seconds\"\r\n\r\n8\r\n"), "seconds is a string field");
    let err = env.fails(&["animate", p, "--prompt", "spin [fault:model-not-found]", "--model", "sora-2", "-o", env.path("x.mp4").to_str().unwrap()]);
    assert!(err.contains("2026-09-24") && err.contains("base_url"), "{err}");
}

#[test]
fn bad_input_is_refused_before_any_request_with_the_allowed_values() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 64);
    let p = a.to_str().unwrap();
    let o = env.path("o");
    let o = o.to_str().unwrap();
    let mut no_key = env_for(&emu, "");
    no_key.envs.retain(|(k, _)| k != "BFL_API_KEY");
    let err = no_key.fails(&["edit", p, "--prompt", "x", "--model", "flux-kontext", "-o", o]);
    assert!(err.contains("BFL_API_KEY"), "{err}");
    let err = env.fails(&["edit", p, p, p, p, p, "--prompt", "x", "--model", "flux-kontext", "-o", o]);
    assert!(err.contains("at most 4 reference"), "{err}");
    let err = env.fails(&["edit", p, "--prompt", "x", "--model", "seedream", "--param", "size=100x100", "-o", o]);
    assert!(err.contains("size"), "{err}");
    let err = env.fails(&["animate", p, "--prompt", "x", "--model", "sora-2", "--seconds", "7", "-o", &format!("{o}.mp4")]);
    assert!(err.contains("seconds") && err.contains("8"), "{err}");
    let err = env.fails(&["edit", p, "--prompt", "x", "--model", "seedream", "-n", "15", "--param", "size=1280x720", "-o", o]);
    assert!(err.contains("15"), "{err}");
    let small_mask = env.path("m.png");
    image::GrayImage::new(8, 8).save(&small_mask).unwrap();
    let err = env.fails(&["edit", p, "--mask", small_mask.to_str().unwrap(), "--prompt", "x", "--model", "flux-kontext", "-o", o]);
    assert!(err.contains("same size"), "{err}");
    assert_eq!(emu.emu.state.requests().len(), 0, "nothing reached a provider");
}

#[test]
fn every_describe_matches_what_the_host_enforces() {
    // For each cloud model: what `models --json` declares is exactly what `edit` accepts and refuses.
    let emu = Emu::start();
    let mut env = env_for(&emu, "");
    env.plugins.extend(common::plugin_dirs(&["nano-banana", "nano-banana-2", "veo-3"]));
    let a = small_photo(env.dir.path(), "coffee.png", 32);
    let p = a.to_str().unwrap();
    let models = json(&env.ok(&["models", "--json"]));
    for m in models.as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let cmd = if m["task"] == "image-to-video" { "animate" } else { "edit" };
        let out = env.path(&format!("{id}-x"));
        // One more reference than declared is refused, naming the limit.
        let max = m["max_references"].as_u64().unwrap() as usize;
        if cmd == "edit" {
            let mut args = vec![cmd];
            args.extend(std::iter::repeat_n(p, max + 1));
            args.extend(["--prompt", "x", "--model", id, "-o", out.to_str().unwrap()]);
            let err = env.fails(&args);
            assert!(err.contains(&format!("at most {max} reference")), "{id}: {err}");
        }
        // Every choice parameter refuses a value it does not list, and the message lists the choices.
        for spec in m["params"].as_array().unwrap().iter().filter(|s| s["kind"] == "choice") {
            let name = spec["name"].as_str().unwrap();
            let mut args = vec![cmd, p, "--prompt", "x", "--model", id];
            let kv = format!("{name}=not-a-choice");
            args.extend(["--param", &kv]);
            let o = if cmd == "animate" { format!("{}.mp4", out.display()) } else { out.display().to_string() };
            args.extend(["-o", &o]);
            let err = env.fails(&args);
            let first = spec["choices"][0].as_str().unwrap();
            assert!(err.contains(name) && err.contains(first), "{id} {name}: {err}");
        }
    }
    assert_eq!(emu.emu.state.requests().len(), 0, "refused before any request");
}

#[test]
fn flux_concurrency_is_limited_by_the_host_not_by_collecting_429s() {
    // kontext-max allows 6 active tasks; with the operator's limit of 6, eight outputs go through
    // with exactly eight submits and no 429.
    let emu = Emu::start();
    let env = env_for(&emu, "#flux-kontext\npoll_interval_ms = \"50\"\nmodel = \"flux-kontext-max\"\n[plugins.flux-kontext.limits]\nmax_in_flight = 6");
    let a = small_photo(env.dir.path(), "chelsea.png", 48);
    let v = json(&env.ok(&["edit", a.to_str().unwrap(), "--prompt", "night [fault:slow:4]", "--model", "flux-kontext", "-n", "8",
        "-o", env.path("out").to_str().unwrap(), "--json"]));
    assert_eq!(v["outputs"].as_array().unwrap().len(), 8);
    assert_eq!(emu.count("POST", "/v1/flux-kontext-max"), 8, "no submit was refused and retried");
}
