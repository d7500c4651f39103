//! Nano Banana, Nano Banana 2 and Veo 3 end to end: the CLI, the real components, and the strict
//! Gemini/Veo emulator, configured only through `atelier.toml` as an operator would.

mod common;

use common::{Emu, Env, json, small_photo};

const KEY: (&str, &str) = ("GEMINI_API_KEY", "emu-gemini-key");

fn env_for(emu: &Emu, extra: &str) -> Env {
    let mut env = Env::new(&["nano-banana", "nano-banana-2", "veo-3", "filters"]);
    env.config(&emu.config_for(&["nano-banana", "nano-banana-2", "veo-3"], extra));
    env.envs.push((KEY.0.into(), KEY.1.into()));
    env
}

const FAST_VEO: &str = "#veo-3\npoll_interval_ms = 100";

#[test]
fn nano_banana_edits_with_references_and_fans_out_n() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let b = small_photo(env.dir.path(), "chelsea.png", 96);
    let v = json(&env.ok(&["edit", a.to_str().unwrap(), b.to_str().unwrap(), "--prompt", "put the cat in the cup", "--model", "nano-banana",
        "-n", "3", "--seed", "10", "--param", "aspect=16:9", "-o", env.path("out").to_str().unwrap(), "--json"]));
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 3);
    // Gemini 2.5 Flash Image renders 16:9 at 1344x768.
    assert!(outs.iter().all(|o| o["width"] == 1344 && o["height"] == 768), "{outs:?}");
    assert!(v["contact_sheet"].is_string());
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3, "one job per output: candidateCount > 1 is refused by Google");
    assert_eq!(emu.count("POST", ":generateContent"), 3);
    let reqs = emu.emu.state.requests();
    let r = reqs.iter().find(|r| r.path.contains(":generateContent")).unwrap();
    assert!(r.headers.iter().any(|(k, v)| k == "x-goog-api-key" && v == KEY.1), "the key went in the header");
    assert!(!r.path.contains("key="), "no key in the URL");
    assert!(v["usage"][0]["input_tokens"].as_u64().is_some() || v["usage"][0]["images"].is_array());
}

#[test]
fn transient_faults_are_retried_and_fatal_ones_explained() {
    let emu = Emu::start();
    let env = env_for(&emu, "#global\n[limits]\nhttp_timeout_s = 8");
    let a = small_photo(env.dir.path(), "coffee.png", 64);
    let run = |prompt: &str, out: &str| env.run(&["edit", a.to_str().unwrap(), "--prompt", prompt, "--model", "nano-banana", "-o", env.path(out).to_str().unwrap(), "--json"]);
    // Retried and succeeded.
    for (i, fault) in ["[fault:429:0.2s]", "[fault:503]", "[fault:thought]", "[fault:jpeg-as-png]"].iter().enumerate() {
        let o = run(&format!("warmer {fault}"), &format!("ok{i}"));
        assert!(o.status.success(), "{fault}: {}", String::from_utf8_lossy(&o.stderr));
        let v = json(&String::from_utf8_lossy(&o.stdout));
        assert_ne!(v["outputs"][0]["width"], 64, "{fault}: the thought image is not the result");
    }
    assert_eq!(emu.count("POST", ":generateContent"), 6, "429 and 503 cost one retry each");
    // Failed, with engine, provider message and what to do.
    let cases = [
        ("[fault:blocked]", "safety"),
        ("[fault:image-safety]", "safety"),
        ("[fault:text-only]", "nano-banana"),
        ("[fault:malformed]", "malformed"),
        ("[fault:429-always:0.05s]", "rate limited"),
    ];
    for (i, (fault, expect)) in cases.iter().enumerate() {
        let o = run(&format!("warmer {fault}"), &format!("bad{i}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expect) && err.contains("nano-banana"), "{fault}: {err}");
    }
    // A hang times out; the POST may have reached Google, so it is not repeated blindly.
    let before = emu.count("POST", ":generateContent");
    let o = run("warmer [fault:hang]", "hang");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not sent again"), "{err}");
    assert_eq!(emu.count("POST", ":generateContent"), before + 1);
    // Two outcomes the provider may have billed are `unknown`, never re-sent: the hang, and the
    // 200 whose body could not be read (generateContent is synchronous: the work was done).
    let jobs = json(&env.ok(&["jobs", "list", "--state", "unknown", "--json"]));
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
}

#[test]
fn bad_input_is_refused_before_any_request() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 64);
    let p = a.to_str().unwrap();
    let o = env.path("out");
    let o = o.to_str().unwrap();
    // Missing key: names the env var and the config line.
    let mut no_key = env_for(&emu, "");
    no_key.envs.clear();
    let err = no_key.fails(&["edit", p, "--prompt", "x", "--model", "nano-banana", "-o", o]);
    assert!(err.contains("export GEMINI_API_KEY=") && err.contains("[plugins.nano-banana.secrets]"), "{err}");
    // Too many references, an aspect the model lacks, a size the configured model lacks.
    let err = env.fails(&["edit", p, p, p, p, "--prompt", "x", "--model", "nano-banana", "-o", o]);
    assert!(err.contains("at most 3 reference"), "{err}");
    let err = env.fails(&["edit", p, "--prompt", "x", "--model", "nano-banana", "--param", "aspect=8:1", "-o", o]);
    assert!(err.contains("aspect") && err.contains("16:9"), "{err}");
    let pro = env_for(&emu, "#nano-banana-2\nmodel = \"gemini-3-pro-image\"");
    let err = pro.fails(&["edit", p, "--prompt", "x", "--model", "nano-banana-2", "--param", "size=512", "-o", o]);
    assert!(err.contains("512") && err.contains("2K"), "{err}");
    assert_eq!(emu.emu.state.requests().len(), 0, "nothing reached the provider");
}

#[test]
fn nano_banana_2_takes_size_and_many_references() {
    let emu = Emu::start();
    let env = env_for(&emu, "");
    let a = small_photo(env.dir.path(), "coffee.png", 64);
    let p = a.to_str().unwrap();
    let mut args = vec!["edit"];
    args.extend(std::iter::repeat_n(p, 5));
    let out = env.path("out");
    args.extend(["--prompt", "a collage", "--model", "nano-banana-2", "--param", "size=512", "--param", "aspect=4:1", "-o", out.to_str().unwrap(), "--json"]);
    let v = json(&env.ok(&args));
    assert_eq!((v["outputs"][0]["width"].as_u64(), v["outputs"][0]["height"].as_u64()), (Some(1024), Some(256)));
}

#[test]
fn veo_animates_and_typed_failures_say_why() {
    let emu = Emu::start();
    let env = env_for(&emu, FAST_VEO);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let v = json(&env.ok(&["animate", a.to_str().unwrap(), "--prompt", "steam rises", "--model", "veo-3", "--seconds", "8",
        "-o", env.path("clip.mp4").to_str().unwrap(), "--json"]));
    let path = v["outputs"][0]["path"].as_str().unwrap();
    assert!(path.ends_with(".mp4"));
    assert_eq!(&std::fs::read(path).unwrap()[4..8], b"ftyp");
    assert_eq!(emu.count("POST", ":predictLongRunning"), 1);
    assert!(emu.count("GET", "/operations/") >= 2);
    assert_eq!(v["usage"][0]["video_seconds"], 8.0);
    // The first hop carried the key; the delivery hop was on the other host.
    assert!(emu.emu.state.requests().iter().any(|r| r.path.starts_with("/gemini-delivery/") && r.host == "alt"));
    for (fault, expect) in [("[fault:rai]", "safety"), ("[fault:op-error]", "veo-3")] {
        let err = env.fails(&["animate", a.to_str().unwrap(), "--prompt", &format!("steam {fault}"), "--model", "veo-3",
            "-o", env.path(&format!("c{}.mp4", fault.len())).to_str().unwrap()]);
        assert!(err.contains(expect), "{fault}: {err}");
    }
}

#[test]
fn a_killed_veo_job_is_resumed_without_submitting_again() {
    let emu = Emu::start();
    let env = env_for(&emu, FAST_VEO);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let out = env.path("clip.mp4");
    let mut child = env
        .cmd()
        .args(["animate", a.to_str().unwrap(), "--prompt", "waves [fault:slow-op:40]", "--model", "veo-3", "-o", out.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    emu.wait_for_operation_polls(3, 120);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let pending = json(&env.ok(&["jobs", "list", "--state", "pending", "--json"]));
    assert_eq!(pending.as_array().unwrap().len(), 1, "the job is on record as pending");
    let v = json(&env.ok(&["jobs", "resume", "--all", "--json"]));
    assert_eq!(v["jobs"][0]["state"], "done", "{v}");
    assert!(out.with_extension("mp4").exists());
    assert_eq!(emu.count("POST", ":predictLongRunning"), 1, "exactly one submit");
    let job = json(&env.ok(&["jobs", "show", v["jobs"][0]["id"].as_str().unwrap(), "--json"]));
    assert_eq!(job["submits"], 1);
    assert_eq!(job["state"], "done");
}

#[test]
fn ctrl_c_cancels_a_polling_job_cleanly() {
    let emu = Emu::start();
    let env = env_for(&emu, FAST_VEO);
    let a = small_photo(env.dir.path(), "coffee.png", 96);
    let child = env
        .cmd()
        .args(["animate", a.to_str().unwrap(), "--prompt", "waves [fault:slow-op:400]", "--model", "veo-3", "-o", env.path("c.mp4").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    emu.wait_for_operation_polls(2, 120);
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"), "{}", String::from_utf8_lossy(&out.stderr));
    let jobs = json(&env.ok(&["jobs", "list", "--state", "cancelled", "--json"]));
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert!(!env.path("c.mp4").exists());
}

#[test]
fn doctor_finds_each_problem_with_its_fix() {
    let emu = Emu::start();
    // A base_url on a host nobody granted, and no key.
    let mut env = Env::new(&["nano-banana"]);
    env.config("[plugins.nano-banana]\nbase_url = \"https://gemini-proxy.example\"\n");
    let o = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(text.lines().any(|l| l.starts_with("problem:") && l.contains("export GEMINI_API_KEY=")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("problem:") && l.contains("allow_hosts = [\"https://gemini-proxy.example\"]")), "{text}");
    // Fixed: clean bill of health.
    let env = env_for(&emu, "");
    let text = env.ok(&["doctor"]);
    assert!(text.starts_with("ok:"), "{text}");
}
