//! What a plugin hands the host is checked before the host uses or writes it (issue 9, items 4,
//! 6, 8, 9). Two hostile components do the lying: `liar` (a model; the prompt picks the lie) and
//! `bigfilter` (a filter; the step's parameters pick the size it claims). Each test checks the
//! contained outcome (no panic, nothing written, or one output refused), the class of the message
//! (the plugin, the limit, the fix) and that an honest call afterwards still succeeds — in the same
//! process for the embedding API, in the same state directory for the CLI.

mod common;

use atelier::jobs::{JobDb, Runner};
use atelier::pipeline::{self, EditRequest, EditResult};
use atelier_tests::{runtime_over, tiny_png};
use common::{Env, json, plugin_dirs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The host in this process over `liar`, `bigfilter` and `filters`, with its own state and output
/// folders.
struct Host {
    rt: atelier::Runtime,
    runner: Runner,
    dir: tempfile::TempDir,
    _cancel: tokio::sync::watch::Sender<bool>,
}

impl Host {
    fn new(config: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime_over(plugin_dirs(&["liar", "bigfilter", "filters"]), config, atelier_tests::cache_dir());
        let db = Arc::new(JobDb::open(&dir.path().join("state")).unwrap());
        let (tx, rx) = tokio::sync::watch::channel(false);
        Host { rt, runner: Runner::new(db, rx), dir, _cancel: tx }
    }

    fn input(&self) -> PathBuf {
        let p = self.dir.path().join("in.png");
        if !p.exists() {
            std::fs::write(&p, tiny_png()).unwrap();
        }
        p
    }

    /// One `liar` stage into `out/<name>`.
    async fn edit(&self, name: &str, prompt: &str, n: u32, pre: &[&str], post: &[&str]) -> anyhow::Result<EditResult> {
        let req = EditRequest {
            inputs: vec![self.input()],
            prompt: prompt.into(),
            model: "liar".into(),
            n,
            pre: pre.iter().map(|s| s.to_string()).collect(),
            post: post.iter().map(|s| s.to_string()).collect(),
            out_dir: self.out(name),
            ..Default::default()
        };
        pipeline::edit(&self.rt, &self.runner, &req).await
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// The honest control call: two outputs and a contact sheet.
    async fn assert_still_works(&self, name: &str) {
        let r = self.edit(name, "ok", 2, &[], &["resize:width=2"]).await.unwrap_or_else(|e| panic!("the honest call failed: {e:#}"));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.outputs.len(), 2);
        assert!(r.outputs.iter().all(|o| o.path.exists() && (o.width, o.height) == (Some(2), Some(2))), "{:?}", r.outputs);
        assert!(r.contact_sheet.as_ref().is_some_and(|s| s.exists()), "the sheet is written");
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn err(r: anyhow::Result<EditResult>) -> String {
    match r {
        Ok(r) => panic!("the lie must not produce outputs: {:?} / {:?}", r.outputs, r.failures),
        Err(e) => format!("{e:#}"),
    }
}

// ---- item 4: sizes a filter (or a model's `prepare`) returns ------------------------------------

#[test]
fn filter_claiming_2_31_squared_with_no_pixels_is_refused_and_nothing_is_written() {
    let mut env = Env::new(&["bigfilter", "filters"]);
    let input = env.path("in.png");
    std::fs::write(&input, tiny_png()).unwrap();
    let (inp, out) = (input.to_str().unwrap().to_string(), env.path("out.png"));
    let run = |env: &Env, step: &str| env.run(&["filter", &inp, "--step", step, "-o", out.to_str().unwrap()]);

    // 2^31 × 2^31 × 4 wraps to 0 in usize: the size is checked against the limits first.
    let o = run(&env, "lie:width=2147483648,height=2147483648,pixels=none");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a refusal, not a panic: {stderr}");
    assert!(stderr.contains("filter plugin `bigfilter` (step `lie:width=2147483648,height=2147483648,pixels=none`) returned a 2147483648x2147483648 image, which is larger than the 32768 px side limit"), "{stderr}");
    assert!( stderr.contains("raise [limits] max_dimension in atelier.toml"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists() && !out.with_extension("json").exists(), "nothing is written");

    // Within the limits but fewer bytes than the size needs.
    let stderr = String::from_utf8_lossy(&run(&env, "lie:width=4,height=4,pixels=short").stderr).into_owned();
    assert!(stderr.contains("filter plugin `bigfilter`") && stderr.contains("malformed image: 4x4 needs 64 bytes of RGBA but it carries 60"), "{stderr}");
    assert!(stderr.contains("report it to its author") && !out.exists(), "{stderr}");

    // An honest image over the operator's pixel limit.
    env.config("[limits]\nmax_pixels = 100\n");
    let o = run(&env, "lie:width=20,height=20,pixels=full");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("returned a 20x20 image, which is 400 px, more than the 100 px limit") && stderr.contains("raise [limits] max_pixels"), "{stderr}");
    assert!(!out.exists());

    // The same host setup still filters honestly.
    env.ok(&["filter", &inp, "--step", "resize:width=4", "-o", out.to_str().unwrap()]);
    assert_eq!(image::open(&out).unwrap().width(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_pre_and_post_filters_and_prepare_sizes_fail_the_stage_cleanly() {
    let host = Host::new("");
    let huge = "lie:width=2147483648,height=2147483648";
    let e = err(host.edit("pre", "ok", 1, &[huge], &[]).await);
    assert!(e.contains("filter plugin `bigfilter`") && e.contains("[limits] max_dimension"), "{e}");
    let e = err(host.edit("post", "ok", 1, &[], &[huge]).await);
    assert!(e.contains("output 1: filter plugin `bigfilter`") && e.contains("[limits] max_dimension"), "{e}");
    assert!(files_in(&host.out("post")).iter().all(|f| !f.ends_with(".png")), "{:?}", files_in(&host.out("post")));
    // Too few pixels for the size claimed, after the model.
    let e = err(host.edit("post-short", "ok", 1, &[], &["lie:width=3,height=3,pixels=short"]).await);
    assert!(e.contains("malformed image: 3x3 needs 36 bytes of RGBA but it carries 32"), "{e}");
    // `prepare` asking for an input size no buffer could hold.
    let e = err(host.edit("prepare", "prepare-huge", 1, &[], &[]).await);
    assert!(e.contains("model `liar` (in `prepare`) asked for inputs of exactly 2147483648x2147483648, which is larger than the 32768 px side limit; nothing was sent"), "{e}");
    assert!(e.contains("raise [limits] max_dimension") && e.contains("report it to the plugin's author"), "{e}");
    host.assert_still_works("after").await;
}

// ---- item 8: sizes inside what a model returns (GIF screens and frames) ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gif_outputs_claiming_121_mpx_are_refused_before_anything_decodes_them() {
    let host = Host::new("");
    let e = err(host.edit("screen", "gif-screen:11000x11000", 1, &[], &[]).await);
    assert!(e.contains("output 1: plugin `liar`'s file ") && e.contains(": the GIF's logical screen (11000x11000) is 121 Mpx, more than the 100 Mpx limit"), "{e}");
    assert!(e.contains("raise [limits] max_pixels in atelier.toml") && e.contains("the output was not written"), "{e}");
    assert!(files_in(&host.out("screen")).is_empty(), "{:?}", files_in(&host.out("screen")));

    // A small screen whose frame claims the size; and the same lie arriving through `poll`.
    for (name, prompt) in [("frame", "gif-frame:11000x11000"), ("polled", "pending:gif-frame:11000x11000")] {
        let e = err(host.edit(name, prompt, 1, &[], &[]).await);
        assert!(e.contains("plugin `liar`") && e.contains("GIF frame 1 (11000x11000) is 121 Mpx"), "{e}");
        assert!(files_in(&host.out(name)).is_empty());
    }

    // An honest GIF of the same shape is written as it came.
    let r = host.edit("small", "gif-screen:40x30", 1, &[], &[]).await.unwrap();
    assert_eq!((r.outputs[0].mime.as_str(), r.outputs[0].width, r.outputs[0].height), ("image/gif", Some(40), Some(30)));
    host.assert_still_works("after").await;
}

// ---- item 9: bytes that are not what they are labelled -----------------------------------------

#[test]
fn garbage_labelled_gif_or_html_is_refused_and_the_honest_outputs_of_the_batch_are_kept() {
    let env = Env::new(&["liar"]);
    let input = env.path("in.png");
    std::fs::write(&input, tiny_png()).unwrap();
    let inp = input.to_str().unwrap();
    let edit = |prompt: &str, n: &str, out: &str| env.run(&["edit", inp, "--prompt", prompt, "--model", "liar", "-n", n, "-o", env.path(out).to_str().unwrap(), "--json"]);

    let o = edit("garbage-gif", "1", "gif");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("plugin `liar` returned this output labelled `image/gif`, but its bytes are not an image (they start with `<html><body>503 `; atelier writes PNG, JPEG, WebP or GIF); the output was not written"),
        "{stderr}"
    );
    assert!(files_in(&env.path("gif")).is_empty(), "{:?}", files_in(&env.path("gif")));

    let o = edit("html", "1", "html");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("labelled `text/html`, but that is not a media type atelier writes (images: PNG, JPEG, WebP, GIF; videos: MP4, WebM; they start with `<html>"), "{stderr}");
    assert!(files_in(&env.path("html")).is_empty());
    // The raw bytes were not kept in the job folder either.
    let jobs = env.path("state/jobs");
    let raw: Vec<String> = files_in(&jobs).iter().flat_map(|j| files_in(&jobs.join(j))).collect();
    assert!(raw.iter().all(|f| !f.starts_with("raw-")), "{raw:?}");

    // Three outputs, the second a lie: exit 3 (some failed), outputs 1 and 3 written.
    let o = edit("mixed", "3", "mixed");
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let idx: Vec<u64> = v["outputs"].as_array().unwrap().iter().map(|o| o["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![1, 3]);
    let failures: Vec<&str> = v["failures"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("output 2: plugin `liar` returned this output labelled `image/gif`, but its bytes are not an image"), "{failures:?}");
    assert_eq!(files_in(&env.path("mixed")), ["in-liar-01.png", "in-liar-01.png.json", "in-liar-03.png", "in-liar-03.png.json", "in-liar-sheet.png"]);

    // The same state directory serves an honest call.
    let v = json(&env.ok(&["edit", inp, "--prompt", "ok", "--model", "liar", "-o", env.path("ok").to_str().unwrap(), "--json"]));
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_image_labelled_as_video_is_refused() {
    let host = Host::new("");
    let e = err(host.edit("video", "png-as-video", 1, &[], &[]).await);
    assert!(e.contains("plugin `liar` returned this output labelled `video/mp4`, but its bytes are a still image (image/png), not a video"), "{e}");
    assert!(e.contains("the output was not written"), "{e}");
    host.assert_still_works("after").await;
}

// ---- item 6: volume of what a call returns ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_artifacts_fail_the_call_with_the_line_that_raises_max_artifacts() {
    let host = Host::new("");
    for (name, prompt) in [("submit", "artifacts:300000"), ("poll", "pending:artifacts:300000")] {
        let e = err(host.edit(name, prompt, 1, &[], &[]).await);
        assert!(e.contains("plugin `liar` returned 300000 artifacts, over its limit max_artifacts = 64"), "{e}");
        assert!(e.contains("[plugins.liar.limits]") && e.contains("max_artifacts = 256"), "{e}");
        assert!(files_in(&host.out(name)).is_empty());
    }
    // Both jobs are on record as failed, with the same message.
    let failed = host.runner.db.list(&[atelier::jobs::JobState::Failed]).unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|j| j.error.as_deref().is_some_and(|e| e.contains("max_artifacts = 64"))), "{:?}", failed.iter().map(|j| &j.error).collect::<Vec<_>>());
    host.assert_still_works("after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_over_max_notes_kb_are_not_copied_into_outputs() {
    let host = Host::new("");
    let e = err(host.edit("big-note", "note:100", 1, &[], &[]).await);
    assert!(e.contains("plugin `liar` returned an output with 101 KiB of notes (the output was not written), over its limit max_notes_kb = 64"), "{e}");
    assert!(e.contains("[plugins.liar.limits]") && e.contains("max_notes_kb = 256"), "{e}");
    assert!(files_in(&host.out("big-note")).is_empty());
    host.assert_still_works("after").await;

    // The operator's line from the message lets the same note through, into the sidecar.
    let host = Host::new("[plugins.liar.limits]\nmax_notes_kb = 256\n");
    let r = host.edit("allowed", "note:100", 1, &[], &[]).await.unwrap();
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(&r.outputs[0].sidecar).unwrap()).unwrap();
    assert_eq!(side["notes"][0][1].as_str().unwrap().len(), 100 << 10);
}

#[test]
fn usage_at_u64_max_is_capped_not_wrapped() {
    let env = Env::new(&["liar"]);
    let input = env.path("in.png");
    std::fs::write(&input, tiny_png()).unwrap();
    // Adding up u64::MAX tokens would overflow (a panic in a debug build, a wrap in release).
    let text = env.ok(&["edit", input.to_str().unwrap(), "--prompt", "usage-max", "--model", "liar", "-o", env.path("out").to_str().unwrap()]);
    assert!(text.contains("tokens"), "{text}");
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("out/in-liar-01.png.json")).unwrap()).unwrap();
    let u = &side["usage"];
    assert_eq!(u["input_tokens"], 1u64 << 53);
    assert_eq!(u["output_tokens"], 1u64 << 53);
    assert_eq!(u["images"].as_array().unwrap().len(), 1, "one size, merged: {u}");
    assert_eq!(u["images"][0]["count"], 3 * u32::MAX as u64);
    assert!(u["video_seconds"].is_null(), "negative seconds are dropped: {u}");
    let adjusted = u["adjusted"].to_string();
    assert!(adjusted.contains("input_tokens") && adjusted.contains("video_seconds"), "{adjusted}");
}
