//! Workflows end to end through the CLI: the offline recipe with classic and filters, the cloud
//! recipe against the provider emulator (pick = "ask" → resume with a pick, a failed stage →
//! resume without repeating finished stages, a budget that stops a run before a stage is sent),
//! `atelier rerun` from provenance, and recipes with many problems reported at once.

mod common;

use common::{Emu, Env, json, root, small_photo};
use std::path::Path;

fn example(name: &str) -> String {
    root().join("examples").join(name).display().to_string()
}

fn pixels(p: &Path) -> Vec<u8> {
    image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).into_rgba8().into_raw()
}

fn job_count(env: &Env) -> usize {
    json(&env.ok(&["jobs", "list", "--json"])).as_array().unwrap().len()
}

#[test]
fn offline_recipe_runs_end_to_end_resumes_as_a_no_op_and_reruns_bit_for_bit() {
    let env = Env::new(&["classic", "filters"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 96);
    let dir = env.path("run");
    let d = dir.to_str().unwrap();
    let v = json(&env.ok(&["run", &example("offline.toml"), photo.to_str().unwrap(), "-o", d, "--set", "looks.pre=resize:width=128", "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.iter().map(|s| s["folder"].as_str().unwrap()).collect::<Vec<_>>(), ["01-looks", "02-finish", "03-animate"]);
    assert!(stages.iter().all(|s| s["status"] == "done"));
    // Stage 1: three candidates, the second picked and fed to stage 2.
    assert_eq!(stages[0]["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(stages[0]["picked"], serde_json::json!([2]));
    assert_eq!(stages[1]["runs"][0]["inputs"][0], stages[0]["candidates"][1]["path"]);
    assert!(dir.join("01-looks/candidates.png").exists());
    assert_eq!(stages[0]["candidates"][0]["width"], 128, "the pre step ran");
    // {prev} is the previous stage's prompt with {input} filled in.
    assert_eq!(stages[1]["prompt"], "watercolor, warmer — a quiet morning, vignette, more contrast");
    // Stage 2's post steps ran (the watermark changes pixels, so compare with a plain edit later).
    let finish = stages[1]["candidates"][0]["path"].as_str().unwrap();
    let prov = json(&std::fs::read_to_string(Path::new(&format!("{finish}.json"))).unwrap());
    assert_eq!(prov["post"], serde_json::json!(["sharpen", "watermark:text=atelier,opacity=0.5"]));
    // Stage 3 animated the finished still.
    let clip = stages[2]["candidates"][0]["path"].as_str().unwrap();
    assert!(clip.ends_with(".gif"), "{clip}");
    assert_eq!(stages[2]["runs"][0]["inputs"][0], stages[1]["candidates"][0]["path"]);
    assert!(stages.iter().all(|s| s["runs"][0]["cost"]["amount"] == 0.0), "classic is offline: free");
    let state = json(&std::fs::read_to_string(dir.join("run.json")).unwrap());
    assert_eq!(state["sets"], serde_json::json!(["looks.pre=resize:width=128"]));

    // Resuming a finished run repeats nothing.
    let jobs = job_count(&env);
    let again = json(&env.ok(&["run", "--resume", d, "--json"]));
    assert_eq!(again["status"], "done");
    assert_eq!(job_count(&env), jobs, "no job was run again");

    // Re-running an output from its provenance reproduces it exactly (same seed, same filters).
    let second = stages[0]["candidates"][1]["path"].as_str().unwrap();
    let side = Path::new(&format!("{second}.json")).to_path_buf();
    let r = json(&env.ok(&["rerun", side.to_str().unwrap(), "-o", env.path("again").to_str().unwrap(), "--json"]));
    let out = r["outputs"][0]["path"].as_str().unwrap();
    assert_eq!(r["outputs"][0]["seed"], 8, "the second output's own seed (base 7 + 1)");
    assert_eq!(pixels(Path::new(out)), pixels(Path::new(second)), "bit for bit");
    // The finished still (post steps included) too.
    let r = json(&env.ok(&["rerun", Path::new(&format!("{finish}.json")).to_str().unwrap(), "-o", env.path("again").to_str().unwrap(), "--json"]));
    assert_eq!(pixels(Path::new(r["outputs"][0]["path"].as_str().unwrap())), pixels(Path::new(finish)));
    // A changed seed changes the result; a changed source is reported.
    let r = json(&env.ok(&["rerun", side.to_str().unwrap(), "--set", "seed=99", "-o", env.path("again").to_str().unwrap(), "--json"]));
    assert_ne!(pixels(Path::new(r["outputs"][0]["path"].as_str().unwrap())), pixels(Path::new(second)));
    image::RgbaImage::from_pixel(96, 64, image::Rgba([1, 2, 3, 255])).save(&photo).unwrap();
    let o = env.run(&["rerun", side.to_str().unwrap(), "-o", env.path("again").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("CHANGED") && err.contains("coffee.png"), "{err}");

    // run.json says which plugin version (and contract) ran each stage.
    assert!(state["stages"].as_array().unwrap().iter().all(|s| s["plugin_version"].is_string() && s["plugin_contract"].is_string()), "{state}");
    // An output made by another version of the plugin is re-run with a warning saying so.
    let mut made = json(&std::fs::read_to_string(&side).unwrap());
    made["plugin_version"] = "0.0.1".into();
    std::fs::write(&side, made.to_string()).unwrap();
    let o = env.run(&["rerun", side.to_str().unwrap(), "-o", env.path("again").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("is now version") && err.contains("made by version 0.0.1"), "{err}");
}

#[test]
fn bad_recipes_report_every_problem_with_its_line() {
    let env = Env::new(&["classic", "filters", "seedream"]);
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let recipe = env.path("bad.toml");
    std::fs::write(
        &recipe,
        r#"name = "bad"
colour = "blue"

[[stage]]
name = "one"
engine = "classic"
prompt = "watercolor"
n = 2
pick = 5
params = { strength = 3.0, wobble = 1 }

[[stage]]
name = "two"
engine = "no-such-engine"
prompt = "x"

[[stage]]
name = "three"
engine = "classic"
prompt = "{nothing}"
from = "four"
post = ["no-such-filter"]
sharpness = 2

[[stage]]
name = "four"
engine = "seedream"
prompt = "x"
from = "ghost"
references = ["missing.png"]
"#,
    )
    .unwrap();
    let o = env.cmd().env_remove("ARK_API_KEY").args(["run", recipe.to_str().unwrap(), photo.to_str().unwrap(), "-o", env.path("out").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let f = recipe.display().to_string();
    for (line, what) in [
        (2, "unknown key `colour`"),
        (9, "pick = 5, but stage `one` makes 2 candidate(s)"),
        (10, "strength"),
        (14, "unknown model `no-such-engine`"),
        (20, "{nothing}"),
        (21, "runs after it"),
        (22, "unknown filter `no-such-filter`"),
        (23, "unknown key `sharpness`"),
        (27, "ARK_API_KEY"),
        (29, "from = \"ghost\""),
        (30, "missing.png"),
    ] {
        assert!(err.lines().any(|l| l.contains(&format!("{f}:{line}:")) && l.contains(what)), "missing line {line} `{what}` in:\n{err}");
    }
    assert!(!env.path("out").exists(), "nothing ran, no folder was made");
    assert!(err.lines().any(|l| l.contains(&format!("{f}:10:")) && l.contains("no parameter `wobble`")), "every bad parameter: {err}");
    // Parameters in a [stage.params] table point at their own lines.
    std::fs::write(&recipe, "[[stage]]\nengine = \"classic\"\nprompt = \"x\"\n[stage.params]\nlevels = 99\nstyle = \"cubist\"\n").unwrap();
    let err = env.fails(&["run", recipe.to_str().unwrap(), photo.to_str().unwrap()]);
    assert!(err.contains(&format!("{f}:5:")) && err.contains(&format!("{f}:6:")) && err.contains("cubist"), "{err}");
    // An empty recipe, and a bad --set.
    std::fs::write(&recipe, "name = \"empty\"\n").unwrap();
    let err = env.fails(&["run", recipe.to_str().unwrap(), photo.to_str().unwrap()]);
    assert!(err.contains("no stages"), "{err}");
    let err = env.fails(&["run", &example("offline.toml"), photo.to_str().unwrap(), "--set", "nosuch.n=2", "--set", "looks.n=0"]);
    assert!(err.contains("--set nosuch.n=2") && err.contains("--set looks.n=0: stage 1: n must"), "{err}");
}

const CLOUD: [&str; 5] = ["seedream", "nano-banana", "flux-kontext", "nano-banana-2", "veo-3"];

fn cloud_env(emu: &Emu) -> Env {
    let mut env = Env::new(&["seedream", "nano-banana", "flux-kontext", "nano-banana-2", "veo-3", "filters"]);
    let extra = "#global\n[prices]\ncurrency = \"USD\"\n[prices.seedream]\nper_image = 0.03\n[prices.nano-banana]\nper_image = 0.039\n\
        [prices.flux-kontext]\nper_image = 0.04\n[prices.nano-banana-2]\nper_image = { \"1K\" = 0.067, \"2K\" = 0.101, \"4K\" = 0.151 }\n\
        [prices.veo-3]\nper_video_second = 0.40\n\n---\n#veo-3\npoll_interval_ms = 100\n---\n#flux-kontext\npoll_interval_ms = \"50\"";
    env.config(&emu.config_for(&CLOUD, extra));
    for (k, v) in [("GEMINI_API_KEY", "emu-gemini-key"), ("ARK_API_KEY", "emu-ark-key"), ("BFL_API_KEY", "emu-bfl-key"), ("OPENAI_API_KEY", "emu-openai-key")] {
        env.envs.push((k.into(), v.into()));
    }
    env
}

/// Submits per stage, as the emulator saw them.
fn submits(emu: &Emu) -> [usize; 5] {
    [
        emu.count("POST", "/api/v3/images/generations"),
        emu.count("POST", "gemini-2.5-flash-image:generateContent"),
        emu.count("POST", "/v1/flux-kontext-pro"),
        emu.count("POST", "gemini-3.1-flash-image:generateContent"),
        emu.count("POST", ":predictLongRunning"),
    ]
}

/// Keep the emulator's images small: 1280x720 explore takes, 1K delivery.
const FAST: [&str; 4] = ["--set", "explore.params.size=1280x720", "--set", "deliver.params.size=1K"];

#[test]
fn cloud_recipe_asks_for_a_pick_then_resumes_and_a_workflow_output_reruns_with_the_same_request() {
    let emu = Emu::start();
    let env = cloud_env(&emu);
    let photo = small_photo(env.dir.path(), "coffee.png", 96);
    let dir = env.path("run");
    let d = dir.to_str().unwrap();
    let recipe = example("explore-refine-edit-animate.toml");
    let mut args = vec!["run", recipe.as_str(), photo.to_str().unwrap(), "-o", d, "--json"];
    args.extend(FAST);
    let v = json(&env.ok(&args));
    assert_eq!(v["status"], "waiting_for_pick", "{v}");
    assert!(v["message"].as_str().unwrap().contains("--pick"), "{v}");
    assert_eq!(v["stages"][0]["candidates"].as_array().unwrap().len(), 4);
    assert!(dir.join("01-explore/candidates.png").exists());
    assert_eq!(submits(&emu), [1, 0, 0, 0, 0], "stopped after explore");
    // Without a pick it keeps waiting and says how to go on.
    let o = env.run(&["run", "--resume", d]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--pick N"), "{}", String::from_utf8_lossy(&o.stderr));
    let err = env.fails(&["run", "--resume", d, "--pick", "9"]);
    assert!(err.contains("beyond the 4 candidate"), "{err}");

    let v = json(&env.ok(&["run", "--resume", d, "--pick", "3", "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    let st = v["stages"].as_array().unwrap();
    assert_eq!(st[0]["picked"], serde_json::json!([3]));
    assert_eq!(st[1]["runs"][0]["inputs"][0], st[0]["candidates"][2]["path"], "refine works on candidate 3");
    assert_eq!(st[1]["runs"][0]["inputs"][1].as_str().unwrap(), photo.to_str().unwrap(), "@input went as a reference");
    assert_eq!(submits(&emu), [1, 1, 1, 1, 1], "each stage sent once; explore was not repeated");
    let video = st[4]["candidates"][0]["path"].as_str().unwrap();
    assert!(video.contains("05-animate") && video.ends_with(".mp4"), "{video}");
    assert_eq!(st[4]["model"], "veo-3.0-generate-001");
    // Costs from the price table and the reported usage.
    let cost = |i: usize| st[i]["runs"][0]["cost"]["amount"].as_f64().unwrap();
    assert!((cost(0) - 0.12).abs() < 1e-9, "4 seedream images × 0.03: {}", st[0]["runs"][0]["cost"]);
    assert!((cost(3) - 0.067).abs() < 1e-9, "a 1K Nano Banana 2 image: {}", st[3]["runs"][0]["cost"]);
    assert!((cost(4) - 3.2).abs() < 1e-9, "8 s of Veo × 0.40: {}", st[4]["runs"][0]["cost"]);
    let total = v["total_cost"].as_f64().unwrap();
    assert!((total - (0.12 + 0.039 + 0.04 + 0.067 + 3.2)).abs() < 1e-9, "{total}");
    // The human summary names engine, model, usage and cost per stage.
    let text = env.ok(&["run", "--resume", d]);
    assert!(text.contains("seedream-4-0-250828") && text.contains("3.20 USD") && text.contains("total cost: 3.466 USD"), "{text}");

    // `rerun` of the FLUX edit sends the very same request again.
    let edit = st[2]["candidates"][0]["path"].as_str().unwrap();
    let bodies = |emu: &Emu| -> Vec<(String, Option<String>)> {
        emu.emu.state.requests().into_iter().filter(|r| r.method == "POST" && r.path.contains("/v1/flux-kontext-pro"))
            .map(|r| (r.body.clone(), r.headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.clone()))).collect()
    };
    let r = json(&env.ok(&["rerun", Path::new(&format!("{edit}.json")).to_str().unwrap(), "--json"]));
    assert_eq!(r["outputs"][0]["seed"], 7);
    let b = bodies(&emu);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0], b[1], "same body (first 4 KiB) and same length");
    let _ = env.ok(&["rerun", Path::new(&format!("{edit}.json")).to_str().unwrap(), "--set", "prompt=make the sky green", "--json"]);
    let b = bodies(&emu);
    assert_eq!(b.len(), 3);
    assert_ne!(b[2], b[0], "a changed prompt changes the request");
}

#[test]
fn a_failed_stage_resumes_without_resubmitting_finished_stages_and_a_budget_stops_before_a_stage() {
    let emu = Emu::start();
    let env = cloud_env(&emu);
    let photo = small_photo(env.dir.path(), "coffee.png", 96);
    let recipe = example("explore-refine-edit-animate.toml");
    let dir = env.path("run");
    let d = dir.to_str().unwrap();
    let mut args = vec!["run", recipe.as_str(), photo.to_str().unwrap(), "-o", d, "--json", "--set", "explore.pick=2", "--set", "stage4.prompt=final quality [fault:blocked]"];
    args.extend(FAST);
    let o = env.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["status"], "failed");
    assert_eq!(v["stages"][3]["status"], "failed");
    assert!(v["message"].as_str().unwrap().contains("--resume"), "{v}");
    assert!(v["stages"][3]["error"].as_str().unwrap().contains("safety"), "{v}");
    assert_eq!(submits(&emu), [1, 1, 1, 1, 0]);
    assert!(dir.join("03-edit").read_dir().unwrap().count() >= 2, "stage 3's results are kept");

    // Fixed prompt: stages 1-3 are kept (the emulator sees no new submit for them).
    let v = json(&env.ok(&["run", "--resume", d, "--set", "stage4.prompt=final quality", "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(submits(&emu), [1, 1, 1, 2, 1], "only stage 4 was sent again, then stage 5");
    assert_eq!(v["stages"][3]["prompt"], "final quality");

    // A budget of 1.00: stages 1-4 cost 0.266, Veo's 8 s are estimated at 3.20 → stop before it.
    let dir2 = env.path("budget");
    let d2 = dir2.to_str().unwrap();
    let mut args = vec!["run", recipe.as_str(), photo.to_str().unwrap(), "-o", d2, "--json", "--set", "explore.pick=1", "--set", "budget=1.00"];
    args.extend(FAST);
    let o = env.run(&args);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["status"], "stopped_by_budget");
    assert_eq!(v["stages"][4]["status"], "stopped_by_budget");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("3.20 USD") && msg.contains("animate") && msg.contains("Nothing was sent"), "{msg}");
    assert_eq!(submits(&emu), [2, 2, 2, 3, 1], "Veo saw nothing for the stopped stage");
    assert!(!dir2.join("05-animate").exists());
    // Raising the budget continues with the last stage only.
    let v = json(&env.ok(&["run", "--resume", d2, "--set", "budget=5", "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(submits(&emu), [2, 2, 2, 3, 2]);
}

#[test]
fn a_run_killed_while_a_job_is_pending_resumes_by_polling_not_resubmitting() {
    let emu = Emu::start();
    let env = cloud_env(&emu);
    let photo = small_photo(env.dir.path(), "coffee.png", 96);
    let recipe = example("explore-refine-edit-animate.toml");
    let dir = env.path("run");
    let d = dir.to_str().unwrap();
    // The example recipes are valid as shipped.
    for r in ["explore-refine-edit-animate.toml", "product-shot.toml"] {
        let out = env.ok(&["run", &example(r), photo.to_str().unwrap(), "--check"]);
        assert!(out.contains("the recipe is valid"), "{r}: {out}");
    }
    let mut args = vec!["run", recipe.as_str(), photo.to_str().unwrap(), "-o", d, "--set", "explore.pick=1", "--set", "animate.prompt=waves [fault:slow-op:40]"];
    args.extend(FAST);
    let mut child = env.cmd().args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    emu.wait_for_operation_polls(3, 300);
    child.kill().unwrap(); // SIGKILL: no chance to record anything more
    child.wait().unwrap();
    let state = json(&std::fs::read_to_string(dir.join("run.json")).unwrap());
    assert_eq!(state["stages"][4]["status"], "running");
    let v = json(&env.ok(&["run", "--resume", d, "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert!(v["stages"][4]["candidates"][0]["path"].as_str().unwrap().ends_with(".mp4"));
    assert_eq!(submits(&emu), [1, 1, 1, 1, 1], "the pending Veo job was polled to the end, not submitted again");
}

#[test]
fn picks_fan_out_the_next_stage_over_several_candidates() {
    let env = Env::new(&["classic", "filters"]);
    let photo = small_photo(env.dir.path(), "chelsea.png", 64);
    let d = env.path("fan");
    let v = json(&env.ok(&["run", &example("offline.toml"), photo.to_str().unwrap(), "-o", d.to_str().unwrap(), "--json",
        "--set", "looks.pre=resize:width=64", "--set", "looks.pick=[1,3]", "--set", "finish.pick=all", "--set", "animate.params.seconds=1"]));
    assert_eq!(v["status"], "done", "{v}");
    let st = v["stages"].as_array().unwrap();
    // finish runs once per picked candidate, named after it; animate once per finish output.
    let runs = st[1]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["inputs"][0], st[0]["candidates"][0]["path"]);
    assert_eq!(runs[1]["inputs"][0], st[0]["candidates"][2]["path"]);
    assert!(st[1]["candidates"][1]["path"].as_str().unwrap().ends_with("02-finish/chelsea-c3-classic-01.png"), "{}", st[1]["candidates"][1]["path"]);
    assert_eq!(st[2]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(st[2]["candidates"].as_array().unwrap().len(), 2);
    assert!(d.join("02-finish/candidates.png").exists(), "a numbered sheet over both runs");

    // A stage waiting on "ask" also continues with a pick given by --set on resume.
    let d = env.path("ask");
    let v = json(&env.ok(&["run", &example("offline.toml"), photo.to_str().unwrap(), "-o", d.to_str().unwrap(), "--json",
        "--set", "looks.pre=resize:width=64", "--set", "looks.pick=ask"]));
    assert_eq!(v["status"], "waiting_for_pick");
    let v = json(&env.ok(&["run", "--resume", d.to_str().unwrap(), "--set", "looks.pick=3", "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["stages"][1]["runs"][0]["inputs"][0], v["stages"][0]["candidates"][2]["path"]);
}

#[test]
fn a_fan_out_runs_its_candidates_concurrently_and_keeps_their_order() {
    let emu = Emu::start();
    let mut env = Env::new(&["classic", "filters", "veo-3"]);
    env.config(&emu.config_for(&["veo-3"], "#veo-3\npoll_interval_ms = 100"));
    env.envs.push(("GEMINI_API_KEY".into(), "emu-gemini-key".into()));
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let recipe = env.path("fan.toml");
    std::fs::write(
        &recipe,
        "name = \"fan\"\n\n[[stage]]\nname = \"looks\"\nengine = \"classic\"\nprompt = \"watercolor\"\nn = 3\npick = \"all\"\n\n\
         [[stage]]\nname = \"animate\"\nengine = \"veo-3\"\nprompt = \"waves [fault:slow-op:15]\"\n",
    )
    .unwrap();
    let d = env.path("run");
    let v = json(&env.ok(&["run", recipe.to_str().unwrap(), photo.to_str().unwrap(), "-o", d.to_str().unwrap(), "--json"]));
    assert_eq!(v["status"], "done", "{v}");

    // Each Veo operation is done only on its 15th poll. Run one after another, the third submit
    // would come after 30 polls; run together, all three are in before any operation can be done.
    let log: Vec<(String, String)> = emu.emu.state.requests().iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    let submits: Vec<usize> = log.iter().enumerate().filter(|(_, (m, p))| m == "POST" && p.contains(":predictLongRunning")).map(|(k, _)| k).collect();
    assert_eq!(submits.len(), 3, "{log:?}");
    let polls_before_last_submit = log[..submits[2]].iter().filter(|(m, p)| m == "GET" && p.contains("/operations/")).count();
    assert!(polls_before_last_submit < 15, "the runs went one after another: {polls_before_last_submit} polls before the third submit");

    // Runs and candidates keep the order of the picked candidates, whatever order they ended in.
    let st = v["stages"].as_array().unwrap();
    let runs = st[1]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for k in 0..3 {
        assert_eq!(runs[k]["inputs"][0], st[0]["candidates"][k]["path"], "run {k}");
        assert_eq!(runs[k]["status"], "done");
        let clip = st[1]["candidates"][k]["path"].as_str().unwrap();
        assert!(clip.contains(&format!("coffee-c{}-", k + 1)) && clip.ends_with(".mp4"), "{clip}");
    }
}

#[test]
fn a_batch_cut_short_sends_on_resume_only_the_outputs_that_never_left() {
    // n = 3 Veo clips, one in flight at a time: the first is pending at the provider while the
    // other two wait for the slot (recorded, never sent) when the process is killed.
    let emu = Emu::start();
    let mut env = Env::new(&["filters", "veo-3"]);
    env.config(&emu.config_for(&["veo-3"], "#veo-3\npoll_interval_ms = 100\n[plugins.veo-3.limits]\nmax_in_flight = 1"));
    env.envs.push(("GEMINI_API_KEY".into(), "emu-gemini-key".into()));
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let recipe = env.path("batch.toml");
    std::fs::write(&recipe, "name = \"batch\"\n\n[[stage]]\nname = \"animate\"\nengine = \"veo-3\"\nprompt = \"waves [fault:slow-op:20]\"\nn = 3\nseed = 40\n").unwrap();
    let d = env.path("run");
    let mut child = env
        .cmd()
        .args(["run", recipe.to_str().unwrap(), photo.to_str().unwrap(), "-o", d.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    emu.wait_for_operation_polls(3, 300);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(emu.count("POST", ":predictLongRunning"), 1, "one clip was sent before the kill");

    let v = json(&env.ok(&["run", "--resume", d.to_str().unwrap(), "--json"]));
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(emu.count("POST", ":predictLongRunning"), 3, "the pending clip was polled, the two never sent were sent once each");
    let clips = v["stages"][0]["candidates"].as_array().unwrap();
    assert_eq!(clips.len(), 3, "{v}");
    for (k, c) in clips.iter().enumerate() {
        let path = c["path"].as_str().unwrap();
        assert!(path.ends_with(&format!("coffee-veo-3-0{}.mp4", k + 1)), "{path}");
    }
    // The clips sent on resume are parts 2 and 3 of the same batch (base seed 40), not a new batch.
    let jobs = json(&env.ok(&["jobs", "list", "--json"]));
    let mut parts: Vec<(u64, u64)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "done")
        .map(|j| (j["plan"]["first_index"].as_u64().unwrap(), j["plan"]["provenance"]["seed"].as_u64().unwrap()))
        .collect();
    parts.sort();
    assert_eq!(parts, [(1, 40), (2, 40), (3, 40)], "{jobs}");
}
