//! Contract 0.1.0 beside 0.2.0: the prebuilt 0.1.0 components checked in under tests/fixtures
//! (hello, a model; tones, a filter family) load and run beside the in-tree plugins built for
//! 0.2.0, in the CLI, in `atelier serve` and in one filter chain; the host's typed checks
//! (`--aspect`, `--size`, `--seed`) speak in the model's own lists.

mod common;

use atelier_tests::{cache_dir, plugins_dir, runtime_over};
use common::{Env, Serve, json, multipart, small_photo};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The 0.1.0 fixtures first (their ids win over the in-tree `hello`), then the in-tree 0.2 plugins.
fn env() -> Env {
    let mut env = Env::new(&["classic", "filters"]);
    env.plugins.insert(0, fixture("hello-0.1.0"));
    env.plugins.insert(1, fixture("tones-0.1.0"));
    env
}

#[test]
fn each_plugin_speaks_the_contract_it_exports() {
    let rt = runtime_over(vec![fixture("hello-0.1.0"), fixture("tones-0.1.0"), plugins_dir().join("classic"), plugins_dir().join("filters")], "", cache_dir());
    for (id, contract) in [("hello", "0.1.0"), ("tones", "0.1.0"), ("classic", "0.2.0"), ("filters", "0.2.0")] {
        let p = rt.plugin(id).unwrap_or_else(|e| panic!("{id}: {e:#}"));
        assert_eq!(p.contract(), contract, "{id}");
        assert_eq!(p.component_digest().len(), 64, "{id}: a sha256 in hex");
    }
    // The fixture's digest is the sha256 of its bytes (README: fca02b2f… for tones).
    assert!(rt.plugin("tones").unwrap().component_digest().starts_with("fca02b2f"));
    // A 0.1 model's describe comes through as the host's types: `task` became the outputs, it
    // says nothing of prompt-only generation, and its submit counts as reaching outside the host.
    let info = tokio::runtime::Runtime::new().unwrap().block_on(rt.plugin("hello").unwrap().describe_model()).unwrap();
    assert_eq!(info.outputs, vec![atelier::types::OutputKind::Image]);
    assert_eq!((info.generates_without_input, info.effects_outside_host), (None, true));
}

#[test]
fn the_cli_runs_a_0_1_model_and_a_0_1_filter_beside_0_2_plugins() {
    let env = env();
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    // The 0.1 model, then a chain mixing the 0.1 filter family (invert, posterize) with the 0.2 one (resize).
    let v = json(&env.ok(&[
        "edit", photo.to_str().unwrap(), "--prompt", "unchanged", "--model", "hello",
        "--post", "invert", "--post", "resize:width=16", "--post", "posterize:levels=2",
        "-o", env.path("out").to_str().unwrap(), "--json",
    ]));
    let out = v["outputs"][0]["path"].as_str().unwrap().to_string();
    let img = image::open(&out).unwrap().into_rgba8();
    assert_eq!(img.width(), 16, "the 0.2 resize ran");
    assert!(img.pixels().all(|p| p.0[..3].iter().all(|c| *c == 0 || *c == 255)), "the 0.1 posterize:levels=2 ran last");
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{out}.json")).unwrap()).unwrap();
    assert_eq!(side["contract"], "0.1.0");
    assert_eq!(side["engine"], "hello");
    // The same chain through the 0.2 model.
    let v = json(&env.ok(&[
        "edit", photo.to_str().unwrap(), "--prompt", "posterize", "--model", "classic", "--post", "invert",
        "-o", env.path("out2").to_str().unwrap(), "--json",
    ]));
    let out = v["outputs"][0]["path"].as_str().unwrap().to_string();
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{out}.json")).unwrap()).unwrap();
    assert_eq!(side["contract"], "0.2.0");
    // `filter` runs the mixed chain alone too.
    env.ok(&["filter", photo.to_str().unwrap(), "--step", "posterize:levels=2", "--step", "resize:width=8", "-o", env.path("f.png").to_str().unwrap()]);
    assert_eq!(image::open(env.path("f.png")).unwrap().width(), 8);
}

#[test]
fn typed_aspect_size_and_seed_are_checked_against_the_model() {
    let env = env();
    let photo = small_photo(env.dir.path(), "coffee.png", 32);
    let p = photo.to_str().unwrap();
    // hello (0.1) lists no aspect ratios: --aspect is refused, naming the flag to drop.
    let e = env.fails(&["edit", p, "--prompt", "x", "--model", "hello", "--aspect", "16:9", "-o", env.path("a").to_str().unwrap()]);
    assert!(e.contains("hello") && e.contains("takes no --aspect") && e.contains("drop --aspect 16:9"), "{e}");
    let e = env.fails(&["edit", p, "--prompt", "x", "--model", "classic", "--size", "9K", "-o", env.path("b").to_str().unwrap()]);
    assert!(e.contains("--size"), "{e}");
    // A seed for a model that takes none is not silently accepted: the run says it is ignored.
    let models = json(&env.ok(&["models", "--json"]));
    let hello = models.as_array().unwrap().iter().find(|m| m["id"] == "hello").unwrap();
    assert_eq!(hello["supports_seed"], false, "the 0.1.0 hello takes no seed");
    let v = json(&env.ok(&["edit", p, "--prompt", "x", "--model", "hello", "--seed", "7", "-o", env.path("c").to_str().unwrap(), "--json"]));
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("does not take a seed") && warnings.contains("--seed 7"), "{warnings}");
    // The models listing says which contract each speaks and what it makes.
    let hello = models.as_array().unwrap().iter().find(|m| m["id"] == "hello").unwrap();
    assert_eq!((hello["contract"].as_str(), hello["outputs"][0].as_str()), (Some("0.1.0"), Some("image")));
}

#[test]
fn serve_answers_an_edit_with_a_0_1_model_beside_0_2_plugins() {
    let env = env();
    let mut cmd = env.cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth", "--state-dir"]).arg(env.path("serve-state"));
    let (_serve, addr) = Serve::start(cmd);
    let photo = std::fs::read(small_photo(env.dir.path(), "coffee.png", 32)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let post = |model: &'static str, prompt: &'static str| {
        let (ctype, body) = multipart(&[("image", Some("a.png"), &photo), ("prompt", None, prompt.as_bytes()), ("model", None, model.as_bytes())]);
        let url = format!("http://{addr}/v1/images/edits");
        rt.block_on(async move {
            let r = reqwest::Client::new().post(url).header("content-type", ctype).body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        })
    };
    let (s, v) = post("hello", "as it is");
    assert_eq!(s, 200, "{v}");
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(v["data"][0]["b64_json"].as_str().unwrap()).unwrap();
    let (got, want) = (image::load_from_memory(&png).unwrap().into_rgba8(), image::load_from_memory(&photo).unwrap().into_rgba8());
    assert_eq!(got.as_raw(), want.as_raw(), "the 0.1 hello returns its input");
    let (s, v) = post("classic", "posterize");
    assert_eq!(s, 200, "the 0.2 model in the same server: {v}");
}

#[test]
fn a_job_taken_under_0_1_is_refused_with_why_after_the_plugin_moved_to_0_2() {
    // The in-tree hello speaks 0.2.0; a pending job recorded by the 0.1.0 build of `hello`
    // (its token means nothing to the new build) is not polled by it.
    let env = Env::new(&["hello"]);
    let state = env.path("state");
    let old_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(fixture("hello-0.1.0/plugin.wasm")).unwrap()))
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = atelier::jobs::store::open(None, &state).await.unwrap();
        let plan = serde_json::json!({});
        let job = atelier::jobs::store::NewJob {
            id: "j-taken-by-0-1",
            plugin: "hello",
            model: "hello",
            plan: &plan,
            contract: "0.1.0",
            component_digest: &old_digest,
            queued_request: None,
            lease: None,
        };
        store.create(&job).await.unwrap();
        store.set_pending("j-taken-by-0-1", "op/1").await.unwrap();
    });
    let o = env.run(&["jobs", "resume", "j-taken-by-0-1"]);
    let e = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("contract 0.1.0") && e.contains("speaks contract 0.2.0") && e.contains("atelier jobs cancel j-taken-by-0-1"), "{e}");
    // Refused before any call: the job is still pending, for a 0.1 build to finish.
    let shown = env.ok(&["jobs", "show", "j-taken-by-0-1"]);
    assert!(shown.contains("pending"), "{shown}");
}

#[test]
fn a_request_kept_before_contract_0_2_still_reads() {
    // As 0.1-era hosts wrote request.json: no output kind, aspect or size; `aspect` a parameter.
    let old = br#"{"prompt":"p","references":[],"mask":null,"n":1,"seed":3,"params":[{"name":"aspect","value":{"text":"16:9"}}]}"#;
    let req = atelier::jobs::saved::from_bytes(old).unwrap();
    assert_eq!((req.output, req.aspect.as_deref(), req.size.as_deref()), (atelier::types::OutputKind::Image, None, None));
    assert_eq!(req.params[0].name, "aspect", "kept as the parameter it was; a 0.1 plugin gets it back as such");
    // And what this host writes comes back whole.
    let mut now = atelier_tests::request("q");
    now.output = atelier::types::OutputKind::Video;
    now.aspect = Some("9:16".into());
    let back = atelier::jobs::saved::from_bytes(&atelier::jobs::saved::to_bytes(&now).unwrap()).unwrap();
    assert_eq!(back, now);
}

/// `atelier animate` with the `streamer` test plugin (tests/hostile/streamer), its prompt picking the case.
fn animate_streamer(env: &Env, prompt: &str, out: &str) -> std::process::Output {
    let photo = small_photo(env.dir.path(), "coffee.png", 16);
    env.run(&["animate", photo.to_str().unwrap(), "--prompt", prompt, "--model", "streamer", "-o", env.path(out).to_str().unwrap(), "--json"])
}

#[test]
fn a_streamed_video_is_kept_as_written_and_bad_streams_are_refused() {
    let env = Env::new(&["streamer"]);
    // 900 000 bytes in 64 KiB writes (under its max_stream_mb = 1): the file is the bytes written.
    let o = animate_streamer(&env, "video:900000", "big.mp4");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let path = v["outputs"][0]["path"].as_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), 900_000);
    assert_eq!(&bytes[4..8], b"ftyp");
    assert_eq!(bytes[100_000], (100_000 % (64 << 10) % 251) as u8, "the chunks arrive in order");
    // Past the plugin's stream limit: the write is refused, naming the line that raises it.
    let o = animate_streamer(&env, "over", "over.mp4");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("max_stream_mb = 1") && e.contains("[plugins.streamer.limits]"), "{e}");
    // An artifact naming a stream the plugin never opened.
    let o = animate_streamer(&env, "unknown-handle", "u.mp4");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("stream 99") && e.contains("did not open"), "{e}");
    // No stream file outlives its call.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("atelier-streams-"))
        .filter(|e| std::fs::read_dir(e.path()).map(|mut d| d.next().is_some()).unwrap_or(false))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn partial_results_a_poll_reports_are_kept_and_listed() {
    let env = Env::new(&["streamer"]);
    let o = animate_streamer(&env, "pending", "p.mp4");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let job = v["jobs"][0].as_str().unwrap().to_string();
    assert_eq!(std::fs::metadata(v["outputs"][0]["path"].as_str().unwrap()).unwrap().len(), 100_000);
    let shown = env.ok(&["jobs", "show", &job]);
    let partials: Vec<&str> = shown.lines().filter(|l| l.trim_start().starts_with("partial:")).collect();
    assert!(!partials.is_empty(), "{shown}");
    for p in partials {
        let path = p.trim_start().trim_start_matches("partial:").trim();
        assert!(path.contains("00-preview-") && path.ends_with(".png"), "{path}");
        assert_eq!(image::open(path).unwrap().width(), 1);
    }
}
