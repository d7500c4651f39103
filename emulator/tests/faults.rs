//! The fault markers that billed long-running jobs must survive, on every provider with such jobs
//! (Veo, BFL, OpenAI videos): a submit that fails before anything is made, a 200 submit answer that
//! cannot be read although the job exists, a poll that fails forever with a 5xx, and a first poll
//! that does not find the job yet.

use atelier_emulator::Emulator;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Cursor;

const VEO: &str = "veo-3.0-generate-001";

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([30, 90, 200]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// (status, JSON body or the raw text when it is not JSON).
async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

// ---------------------------------------------------------------- Veo

async fn veo_start(emu: &Emulator, prompt: &str) -> (u16, Value) {
    let body = json!({"instances": [{"prompt": prompt, "image": {"bytesBase64Encoded": STANDARD.encode(png(16, 9)), "mimeType": "image/png"}}],
                      "parameters": {"durationSeconds": 8}});
    read(client().post(format!("{}/v1beta/models/{VEO}:predictLongRunning", emu.base_url)).header("x-goog-api-key", &emu.state.keys.gemini)
        .json(&body).send().await.unwrap()).await
}

async fn veo_poll(emu: &Emulator, name: &str) -> (u16, Value) {
    read(client().get(format!("{}/v1beta/{name}", emu.base_url)).header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap()).await
}

#[tokio::test]
async fn veo_submit_500_and_504_fail_once_and_make_nothing() {
    let emu = Emulator::start().await.unwrap();
    for (marker, status, google) in [("[fault:500]", 500, "INTERNAL"), ("[fault:504]", 504, "DEADLINE_EXCEEDED")] {
        let (code, v) = veo_start(&emu, &format!("waves {marker}")).await;
        assert_eq!((code, v["error"]["status"].as_str()), (status, Some(google)), "{v}");
        assert_eq!(v["error"]["code"], status);
        let (code, v) = veo_start(&emu, &format!("waves {marker}")).await;
        assert_eq!(code, 200, "the retry is taken: {v}");
        assert!(v["name"].as_str().unwrap().contains("/operations/"));
    }
}

#[tokio::test]
async fn veo_malformed_answer_still_starts_the_operation() {
    let emu = Emulator::start().await.unwrap();
    let (code, v) = veo_start(&emu, "waves [fault:malformed]").await;
    assert_eq!(code, 200);
    let text = v.as_str().expect("the answer is not JSON");
    assert!(text.starts_with("{\"name\":\"models/"), "{text}");
    // The operation exists at "Google" and runs to the end, as a billed job would.
    let op = emu.state.job("gemini-op:op00000001").expect("the operation was started");
    let name = op["name"].as_str().unwrap().to_string();
    veo_poll(&emu, &name).await;
    let (code, done) = veo_poll(&emu, &name).await;
    assert_eq!((code, done["done"].as_bool()), (200, Some(true)), "{done}");
}

#[tokio::test]
async fn veo_poll_5xx_never_ends_and_poll_404_once_is_followed_by_the_video() {
    let emu = Emulator::start().await.unwrap();
    let (_, v) = veo_start(&emu, "waves [fault:poll-5xx]").await;
    let name = v["name"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let (code, v) = veo_poll(&emu, &name).await;
        assert_eq!((code, v["error"]["status"].as_str()), (500, Some("INTERNAL")), "{v}");
    }
    let (_, v) = veo_start(&emu, "waves [fault:poll-5xx:503]").await;
    let name = v["name"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (code, v) = veo_poll(&emu, &name).await;
        assert_eq!((code, v["error"]["status"].as_str()), (503, Some("UNAVAILABLE")), "{v}");
    }

    let (_, v) = veo_start(&emu, "waves [fault:poll-404-once]").await;
    let name = v["name"].as_str().unwrap().to_string();
    let (code, v) = veo_poll(&emu, &name).await;
    assert_eq!((code, v["error"]["status"].as_str()), (404, Some("NOT_FOUND")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("not found"));
    // Then normal: the 404 did not count, so `done` comes on the 2nd real poll.
    assert_eq!(veo_poll(&emu, &name).await, (200, json!({"name": name})));
    let (code, done) = veo_poll(&emu, &name).await;
    assert_eq!(code, 200);
    assert!(done["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].is_string(), "{done}");
}

// ---------------------------------------------------------------- BFL

fn kontext(prompt: &str) -> Value {
    json!({"prompt": prompt, "input_image": STANDARD.encode(png(32, 24)), "output_format": "png"})
}

async fn bfl_submit(emu: &Emulator, prompt: &str) -> (u16, Value) {
    read(client().post(format!("{}/v1/flux-kontext-pro", emu.base_url)).header("x-key", &emu.state.keys.bfl).json(&kontext(prompt))
        .send().await.unwrap()).await
}

async fn bfl_poll(emu: &Emulator, url: &str) -> (u16, Value) {
    read(client().get(url).header("x-key", &emu.state.keys.bfl).send().await.unwrap()).await
}

#[tokio::test]
async fn bfl_submit_500_fails_once_before_any_task() {
    let emu = Emulator::start().await.unwrap();
    let (code, v) = bfl_submit(&emu, "night [fault:submit-500]").await;
    assert_eq!((code, v["detail"].as_str()), (500, Some("Internal Server Error")), "{v}");
    assert!(emu.state.job("bfl:active:flux-kontext-pro").is_none(), "no task was made");
    let (code, v) = bfl_submit(&emu, "night [fault:submit-500]").await;
    assert_eq!(code, 200, "{v}");
    assert!(v["polling_url"].is_string());
}

#[tokio::test]
async fn bfl_malformed_answer_still_makes_the_task() {
    let emu = Emulator::start().await.unwrap();
    let (code, v) = bfl_submit(&emu, "night [fault:malformed]").await;
    assert_eq!(code, 200);
    assert!(serde_json::from_str::<Value>(v.as_str().unwrap()).is_err());
    assert!(emu.state.job("bfl:bfl-task-00000001").is_some(), "the task exists");
    let url = format!("{}/v1/get_result?id=bfl-task-00000001", emu.alt_url);
    assert_eq!(bfl_poll(&emu, &url).await.1["status"], "Pending");
}

#[tokio::test]
async fn bfl_poll_5xx_never_ends_and_poll_404_once_is_followed_by_ready() {
    let emu = Emulator::start().await.unwrap();
    let (_, v) = bfl_submit(&emu, "night [fault:poll-5xx]").await;
    let url = v["polling_url"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let (code, v) = bfl_poll(&emu, &url).await;
        assert_eq!((code, v["detail"].as_str()), (500, Some("Internal Server Error")), "{v}");
    }
    let (_, v) = bfl_submit(&emu, "night [fault:poll-5xx:503]").await;
    let url = v["polling_url"].as_str().unwrap().to_string();
    assert_eq!(bfl_poll(&emu, &url).await.0, 503);
    assert_eq!(bfl_poll(&emu, &url).await.0, 503);

    let (_, v) = bfl_submit(&emu, "night [fault:poll-404-once]").await;
    let url = v["polling_url"].as_str().unwrap().to_string();
    let (code, v) = bfl_poll(&emu, &url).await;
    assert_eq!((code, v["status"].as_str()), (404, Some("Task not found")), "{v}");
    let (code, v) = bfl_poll(&emu, &url).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("Pending")), "{v}");
    let (code, v) = bfl_poll(&emu, &url).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("Ready")), "{v}");
}

// ---------------------------------------------------------------- OpenAI videos

async fn video_create(emu: &Emulator, prompt: &str) -> (u16, Value) {
    read(client().post(format!("{}/v1/videos", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai))
        .json(&json!({"prompt": prompt, "model": "sora-2", "seconds": "4"})).send().await.unwrap()).await
}

async fn video_get(emu: &Emulator, id: &str) -> (u16, Value) {
    read(client().get(format!("{}/v1/videos/{id}", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai))
        .send().await.unwrap()).await
}

#[tokio::test]
async fn videos_malformed_answer_still_makes_the_video() {
    let emu = Emulator::start().await.unwrap();
    let (code, v) = video_create(&emu, "spin [fault:malformed]").await;
    assert_eq!(code, 200);
    assert!(serde_json::from_str::<Value>(v.as_str().unwrap()).is_err());
    let (code, v) = video_get(&emu, "video_00000001").await;
    assert_eq!((code, v["status"].as_str()), (200, Some("in_progress")), "{v}");
}

#[tokio::test]
async fn videos_poll_5xx_never_ends_and_poll_404_once_is_followed_by_completion() {
    let emu = Emulator::start().await.unwrap();
    let (_, v) = video_create(&emu, "spin [fault:poll-5xx]").await;
    let id = v["id"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let (code, v) = video_get(&emu, &id).await;
        assert_eq!((code, v["error"]["type"].as_str()), (500, Some("server_error")), "{v}");
    }
    let (_, v) = video_create(&emu, "spin [fault:poll-5xx:502]").await;
    assert_eq!(video_get(&emu, v["id"].as_str().unwrap()).await.0, 502);

    let (_, v) = video_create(&emu, "spin [fault:poll-404-once]").await;
    let id = v["id"].as_str().unwrap().to_string();
    let (code, v) = video_get(&emu, &id).await;
    assert_eq!(code, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("not found"), "{v}");
    assert_eq!(video_get(&emu, &id).await.1["status"], "in_progress");
    assert_eq!(video_get(&emu, &id).await.1["status"], "completed");
}
