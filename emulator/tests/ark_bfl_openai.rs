//! The ModelArk, BFL and OpenAI-videos emulators against the real wire protocols: what they
//! accept, what they reject (with each provider's envelope), and every fault marker.

use atelier_emulator::Emulator;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Cursor;
use std::time::Duration;

fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn dims(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

// ---------------------------------------------------------------- ModelArk

async fn ark(emu: &Emulator, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {}", emu.state.keys.ark);
    read(client().post(format!("{}/api/v3/images/generations", emu.base_url)).header("authorization", auth).json(body).send().await.unwrap()).await
}

fn ark_body(prompt: &str, images: usize, extra: Value) -> Value {
    let uri = format!("data:image/png;base64,{}", STANDARD.encode(png(64, 48, [200, 10, 10])));
    let mut b = json!({"model": "seedream-4-0-250828", "prompt": prompt, "size": "1280x720", "response_format": "b64_json", "watermark": false});
    if images == 1 {
        b["image"] = json!(uri);
    } else if images > 1 {
        b["image"] = json!(vec![uri; images]);
    }
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test]
async fn ark_checks_the_key() {
    let emu = Emulator::start().await.unwrap();
    let (status, body) = read(client().post(format!("{}/api/v3/images/generations", emu.base_url))
        .header("authorization", "Bearer wrong").json(&ark_body("x", 0, json!({}))).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AuthenticationError");
    assert_eq!(body["error"]["type"], "Unauthorized");
}

#[tokio::test]
async fn ark_single_edit_returns_a_real_jpeg_of_the_requested_size() {
    let emu = Emulator::start().await.unwrap();
    let (status, body) = ark(&emu, &ark_body("make it blue", 1, json!({"sequential_image_generation": "disabled", "seed": 5}))).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["size"], "1280x720");
    let jpeg = STANDARD.decode(data[0]["b64_json"].as_str().unwrap()).unwrap();
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(dims(&jpeg), (1280, 720));
    assert_eq!(body["usage"], json!({"generated_images": 1, "output_tokens": 3600, "total_tokens": 3600}));
}

#[tokio::test]
async fn ark_rejects_what_modelark_rejects() {
    let emu = Emulator::start().await.unwrap();
    let upper = format!("data:image/PNG;base64,{}", STANDARD.encode(png(64, 48, [1, 2, 3])));
    let (status, body) = ark(&emu, &ark_body("x", 0, json!({"image": upper}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InvalidParameter")));
    assert!(body["error"]["message"].as_str().unwrap().contains("lowercase"), "{body}");
    assert_eq!(body["error"]["param"], "image");

    let (status, body) = ark(&emu, &ark_body("x", 3, json!({"sequential_image_generation": "auto", "sequential_image_generation_options": {"max_images": 13}}))).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("must not exceed 15"), "{body}");

    let (status, body) = ark(&emu, &ark_body("x", 0, json!({"model": "seedream-4-5-251128", "size": "1280x720"}))).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("size")), "{body}");
    let (status, _) = ark(&emu, &ark_body("x", 0, json!({"model": "seedream-4-5-251128", "size": "1K"}))).await;
    assert_eq!(status, 400);
    let (status, _) = ark(&emu, &ark_body("x", 0, json!({"size": "5000x5000"}))).await;
    assert_eq!(status, 400);
    let (status, _) = ark(&emu, &ark_body("x", 0, json!({"watermark": "no"}))).await;
    assert_eq!(status, 400);
    let (status, body) = ark(&emu, &ark_body("x", 0, json!({"model": "seedream-9"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("InvalidEndpointOrModel.NotFound")));
    let tiny = format!("data:image/png;base64,{}", STANDARD.encode(png(10, 10, [1, 2, 3])));
    let (status, _) = ark(&emu, &ark_body("x", 0, json!({"image": tiny}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn ark_batch_urls_point_at_the_other_host_and_partial_failures_are_items() {
    let emu = Emulator::start().await.unwrap();
    let extra = json!({"response_format": "url", "sequential_image_generation": "auto", "sequential_image_generation_options": {"max_images": 3}});
    let (status, body) = ark(&emu, &ark_body("three [fault:batch-partial]", 2, extra)).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[1]["error"]["code"], "OutputImageSensitiveContentDetected");
    assert_eq!(body["usage"]["generated_images"], 2);
    let url = data[0]["url"].as_str().unwrap();
    assert!(url.starts_with(&emu.alt_url), "{url}");
    let jpeg = client().get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(dims(&jpeg), (1280, 720));
}

#[tokio::test]
async fn ark_faults() {
    let emu = Emulator::start().await.unwrap();
    let body = ark_body("a [fault:429]", 0, json!({}));
    let (status, err) = ark(&emu, &body).await;
    assert_eq!((status, err["error"]["code"].as_str()), (429, Some("RateLimitExceeded.EndpointRPMExceeded")));
    assert_eq!(ark(&emu, &body).await.0, 200, "the retry of the same request succeeds");

    let body = ark_body("a [fault:500]", 0, json!({}));
    assert_eq!(ark(&emu, &body).await.0, 500);
    assert_eq!(ark(&emu, &body).await.0, 200);

    let (status, err) = ark(&emu, &ark_body("a [fault:moderated]", 0, json!({}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("InputTextSensitiveContentDetected")));
    let (_, err) = ark(&emu, &ark_body("a [fault:moderated:content]", 0, json!({}))).await;
    assert_eq!(err["error"]["code"], "OutputImageSensitiveContentDetected");
    let (status, err) = ark(&emu, &ark_body("a [fault:422]", 0, json!({}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("InvalidParameter")));
    let (status, text) = ark(&emu, &ark_body("a [fault:malformed]", 0, json!({}))).await;
    assert_eq!(status, 200);
    assert!(text.is_string(), "malformed JSON must not parse: {text}");

    let hung = client().post(format!("{}/api/v3/images/generations", emu.base_url))
        .header("authorization", format!("Bearer {}", emu.state.keys.ark))
        .json(&ark_body("a [fault:hang]", 0, json!({}))).timeout(Duration::from_millis(300)).send().await;
    assert!(hung.unwrap_err().is_timeout());
}

// ---------------------------------------------------------------- BFL

async fn bfl_post(emu: &Emulator, path: &str, body: &Value) -> (u16, Value) {
    read(client().post(format!("{}{path}", emu.base_url)).header("x-key", &emu.state.keys.bfl).json(body).send().await.unwrap()).await
}

async fn bfl_poll(emu: &Emulator, url: &str) -> (u16, Value) {
    read(client().get(url).header("x-key", &emu.state.keys.bfl).send().await.unwrap()).await
}

fn kontext(prompt: &str, extra: Value) -> Value {
    let mut b = json!({"prompt": prompt, "input_image": STANDARD.encode(png(64, 48, [10, 200, 10])), "seed": 42, "output_format": "png", "safety_tolerance": 2, "prompt_upsampling": false});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// Poll until not Pending; returns (polls made, final answer).
async fn bfl_until_done(emu: &Emulator, url: &str) -> (u32, Value) {
    for n in 1..20 {
        let (status, v) = bfl_poll(emu, url).await;
        if status == 200 && v["status"] != "Pending" {
            return (n, v);
        }
    }
    panic!("never finished");
}

#[tokio::test]
async fn bfl_submit_poll_on_other_host_and_download_without_key() {
    let emu = Emulator::start().await.unwrap();
    let (status, sub) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("make it red", json!({}))).await;
    assert_eq!(status, 200, "{sub}");
    let polling_url = sub["polling_url"].as_str().unwrap();
    assert!(polling_url.starts_with(&format!("{}/v1/get_result?id=", emu.alt_url)), "{polling_url}");
    assert_eq!(sub["cost"], 4.0);
    let (_, first) = bfl_poll(&emu, polling_url).await;
    assert_eq!(first["status"], "Pending");
    assert!(first["progress"].as_f64().unwrap() > 0.0);
    let (_, done) = bfl_until_done(&emu, polling_url).await;
    assert_eq!(done["status"], "Ready", "{done}");
    assert_eq!(done["result"]["seed"], 42);
    let sample = done["result"]["sample"].as_str().unwrap();
    assert!(sample.starts_with(&format!("{}/bfl-delivery/", emu.alt_url)));
    let resp = client().get(sample).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(dims(&bytes), (64, 48), "no aspect ratio keeps the input's size");
    // A poll without the key is refused.
    assert_eq!(read(client().get(polling_url).send().await.unwrap()).await.0, 403);
}

#[tokio::test]
async fn bfl_validates_like_fastapi() {
    let emu = Emulator::start().await.unwrap();
    let (status, body) = read(client().post(format!("{}/v1/flux-kontext-pro", emu.base_url)).json(&kontext("x", json!({}))).send().await.unwrap()).await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("Not authenticated")));
    let (status, body) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x", json!({"safety_tolerance": 7, "aspect_ratio": "4:1", "output_format": "gif"}))).await;
    assert_eq!(status, 422);
    let locs: Vec<String> = body["detail"].as_array().unwrap().iter().map(|d| d["loc"][1].as_str().unwrap().to_string()).collect();
    assert_eq!(locs, ["safety_tolerance", "output_format", "aspect_ratio"], "{body}");
    let (status, body) = bfl_post(&emu, "/v1/flux-kontext-pro", &json!({"input_image": null})).await;
    assert_eq!((status, body["detail"][0]["type"].as_str()), (422, Some("missing")));
    let (status, body) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x [fault:422]", json!({}))).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn bfl_aspect_ratio_gives_about_a_megapixel() {
    let emu = Emulator::start().await.unwrap();
    let (_, sub) = bfl_post(&emu, "/v1/flux-kontext-max", &kontext("x", json!({"aspect_ratio": "16:9", "output_format": "jpeg"}))).await;
    assert_eq!(sub["cost"], 8.0);
    let (_, done) = bfl_until_done(&emu, sub["polling_url"].as_str().unwrap()).await;
    let sample = done["result"]["sample"].as_str().unwrap();
    assert!(sample.contains("sample.jpeg"));
    let bytes = client().get(sample).send().await.unwrap().bytes().await.unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    let (w, h) = dims(&bytes);
    assert_eq!((w % 32, h % 32), (0, 0));
    assert!((w as f64 / h as f64 - 16.0 / 9.0).abs() < 0.05, "{w}x{h}");
}

#[tokio::test]
async fn bfl_expired_delivery_answers_like_blob_storage() {
    let emu = Emulator::start().await.unwrap();
    let (_, sub) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x [fault:expired]", json!({}))).await;
    let (_, done) = bfl_until_done(&emu, sub["polling_url"].as_str().unwrap()).await;
    let resp = client().get(done["result"]["sample"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(text.contains("<Code>AuthenticationFailed</Code>") && text.contains("Signed expiry time"), "{text}");

    let (_, sub) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x [fault:expired:300]", json!({}))).await;
    let (_, done) = bfl_until_done(&emu, sub["polling_url"].as_str().unwrap()).await;
    let sample = done["result"]["sample"].as_str().unwrap().to_string();
    assert_eq!(client().get(&sample).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(client().get(&sample).send().await.unwrap().status(), 403);
    // A tampered signature is refused too.
    let forged = sample.replace("&sig=", "&sig=0");
    assert_eq!(client().get(&forged).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn bfl_terminal_states_and_poll_faults() {
    let emu = Emulator::start().await.unwrap();
    for (marker, status) in [("[fault:moderated]", "Request Moderated"), ("[fault:moderated:content]", "Content Moderated"), ("[fault:failed]", "Error")] {
        let (_, sub) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext(&format!("x {marker}"), json!({}))).await;
        let (_, done) = bfl_until_done(&emu, sub["polling_url"].as_str().unwrap()).await;
        assert_eq!(done["status"], status, "{marker}");
    }
    let (_, v) = bfl_poll(&emu, &format!("{}/v1/get_result?id=nope", emu.alt_url)).await;
    assert_eq!(v["status"], "Task not found");

    let (_, sub) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x [fault:500] [fault:slow:3]", json!({}))).await;
    let url = sub["polling_url"].as_str().unwrap();
    assert_eq!(bfl_poll(&emu, url).await.0, 500, "first poll fails once");
    let (polls, done) = bfl_until_done(&emu, url).await;
    assert_eq!((polls, done["status"].as_str()), (3, Some("Ready")));

    let body = kontext("x [fault:429]", json!({}));
    let (status, _) = bfl_post(&emu, "/v1/flux-kontext-pro", &body).await;
    assert_eq!(status, 429);
    assert_eq!(bfl_post(&emu, "/v1/flux-kontext-pro", &body).await.0, 200);
    let (status, text) = bfl_post(&emu, "/v1/flux-kontext-pro", &kontext("x [fault:malformed]", json!({}))).await;
    assert!(status == 200 && text.is_string());
}

#[tokio::test]
async fn bfl_kontext_max_allows_six_active_tasks() {
    let emu = Emulator::start().await.unwrap();
    let mut urls = Vec::new();
    for i in 0..6 {
        let (status, sub) = bfl_post(&emu, "/v1/flux-kontext-max", &kontext(&format!("task {i}"), json!({}))).await;
        assert_eq!(status, 200);
        urls.push(sub["polling_url"].as_str().unwrap().to_string());
    }
    let (status, _) = bfl_post(&emu, "/v1/flux-kontext-max", &kontext("seventh", json!({}))).await;
    assert_eq!(status, 429);
    bfl_until_done(&emu, &urls[0]).await;
    assert_eq!(bfl_post(&emu, "/v1/flux-kontext-max", &kontext("seventh", json!({}))).await.0, 200);
}

#[tokio::test]
async fn bfl_fill_checks_the_mask_and_repaints_only_white() {
    let emu = Emulator::start().await.unwrap();
    let image = STANDARD.encode(png(32, 32, [10, 20, 30]));
    let bad_mask = STANDARD.encode(png(16, 16, [255, 255, 255]));
    let (status, body) = bfl_post(&emu, "/v1/flux-pro-1.0-fill", &json!({"prompt": "x", "image": image, "mask": bad_mask})).await;
    assert_eq!(status, 422);
    assert!(body["detail"][0]["msg"].as_str().unwrap().contains("same dimensions"));
    let (status, _) = bfl_post(&emu, "/v1/flux-pro-1.0-fill", &json!({"prompt": "x", "image": image, "steps": 5})).await;
    assert_eq!(status, 422);

    let mut mask = image::RgbImage::new(32, 32);
    for x in 0..16 {
        for y in 0..32 {
            mask.put_pixel(x, y, image::Rgb([255, 255, 255]));
        }
    }
    let mut m = Cursor::new(Vec::new());
    mask.write_to(&mut m, image::ImageFormat::Png).unwrap();
    let (status, sub) = bfl_post(&emu, "/v1/flux-pro-1.0-fill", &json!({"prompt": "x", "image": image, "mask": STANDARD.encode(m.into_inner()), "output_format": "png", "steps": 20, "guidance": 30})).await;
    assert_eq!(status, 200, "{sub}");
    let (_, done) = bfl_until_done(&emu, sub["polling_url"].as_str().unwrap()).await;
    let bytes = client().get(done["result"]["sample"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let out = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(out.dimensions(), (32, 32));
    assert_eq!(out.get_pixel(0, 0).0, [245, 235, 225], "white mask area repainted");
    assert_eq!(out.get_pixel(31, 0).0, [10, 20, 30], "black mask area kept");
}

// ---------------------------------------------------------------- OpenAI videos

fn form(fields: &[(&str, &str)], file: Option<(&str, Vec<u8>)>) -> (String, Vec<u8>) {
    let b = "test-boundary-123";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"ref.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn create(emu: &Emulator, fields: &[(&str, &str)], file: Option<(&str, Vec<u8>)>) -> (u16, Value, Option<String>) {
    let (ct, body) = form(fields, file);
    let resp = client().post(format!("{}/v1/videos", emu.base_url))
        .header("authorization", format!("Bearer {}", emu.state.keys.openai)).header("content-type", ct).body(body).send().await.unwrap();
    let poll_after = resp.headers().get("openai-poll-after-ms").map(|v| v.to_str().unwrap().to_string());
    let (status, v) = read(resp).await;
    (status, v, poll_after)
}

async fn video_get(emu: &Emulator, path: &str) -> reqwest::Response {
    client().get(format!("{}{path}", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai)).send().await.unwrap()
}

#[tokio::test]
async fn videos_lifecycle_and_streamed_content() {
    let emu = Emulator::start().await.unwrap();
    let fields = [("model", "sora-2"), ("prompt", "a cat at a piano"), ("seconds", "8"), ("size", "1280x720")];
    let (status, v, poll_after) = create(&emu, &fields, Some(("input_reference", png(1280, 720, [1, 2, 3])))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["object"].as_str(), v["seconds"].as_str()), (Some("queued"), Some("video"), Some("8")));
    assert_eq!(poll_after.as_deref(), Some("150"));
    let id = v["id"].as_str().unwrap();
    assert_eq!(video_get(&emu, &format!("/v1/videos/{id}/content")).await.status(), 404, "not ready yet");
    let first = video_get(&emu, &format!("/v1/videos/{id}")).await;
    assert_eq!(first.headers()["openai-poll-after-ms"], "150");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "in_progress");
    let done: Value = video_get(&emu, &format!("/v1/videos/{id}")).await.json().await.unwrap();
    assert_eq!(done["status"], "completed");
    assert!(done["expires_at"].as_u64().is_some());
    let resp = video_get(&emu, &format!("/v1/videos/{id}/content")).await;
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    let del: Value = client().delete(format!("{}/v1/videos/{id}", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(del, json!({"id": id, "object": "video.deleted", "deleted": true}));
    assert_eq!(video_get(&emu, &format!("/v1/videos/{id}")).await.status(), 404);
}

#[tokio::test]
async fn videos_reject_what_openai_rejects() {
    let emu = Emulator::start().await.unwrap();
    let (ct, body) = form(&[("prompt", "x")], None);
    let (status, v) = read(client().post(format!("{}/v1/videos", emu.base_url)).header("content-type", ct).body(body).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let (status, v, _) = create(&emu, &[("prompt", "x"), ("size", "1280x720")], Some(("input_reference", png(720, 1280, [0, 0, 0])))).await;
    assert_eq!(status, 400);
    assert_eq!(v, json!({"error": {"message": "Inpaint image must match the requested width and height", "type": "invalid_request_error", "param": null, "code": null}}));

    let (status, v, _) = create(&emu, &[("prompt", "x"), ("seconds", "5")], None).await;
    assert_eq!((status, v["error"]["param"].as_str(), v["error"]["code"].as_str()), (400, Some("seconds"), Some("invalid_value")));
    let (status, v, _) = create(&emu, &[("prompt", "x"), ("size", "1792x1024")], None).await;
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("size")), "sora-2 has no 1792x1024");
    let (status, _, _) = create(&emu, &[("prompt", "x"), ("model", "sora-2-pro"), ("size", "1792x1024")], None).await;
    assert_eq!(status, 200);
    let (status, v, _) = create(&emu, &[("prompt", "x"), ("input_reference", "not a file")], None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_type")));
    let (status, v, _) = create(&emu, &[("prompt", "x"), ("duration", "4")], None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("unknown_parameter")));

    let (status, v) = read(client().post(format!("{}/v1/videos", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai))
        .json(&json!({"prompt": "x", "seconds": 8})).send().await.unwrap()).await;
    assert_eq!((status, v["error"]["code"].as_str(), v["error"]["param"].as_str()), (400, Some("invalid_type"), Some("seconds")));
}

#[tokio::test]
async fn videos_faults() {
    let emu = Emulator::start().await.unwrap();
    let (status, v, _) = create(&emu, &[("prompt", "x [fault:model-not-found]")], None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("model_not_found")));

    let fields = [("prompt", "x [fault:429]")];
    let (ct, body) = form(&fields, None);
    let resp = client().post(format!("{}/v1/videos", emu.base_url)).header("authorization", format!("Bearer {}", emu.state.keys.openai))
        .header("content-type", ct).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after-ms"], "300");
    assert_eq!(create(&emu, &fields, None).await.0, 200, "the retry succeeds");
    let fields = [("prompt", "x [fault:500]")];
    assert_eq!(create(&emu, &fields, None).await.0, 500);
    assert_eq!(create(&emu, &fields, None).await.0, 200);

    let (status, v, _) = create(&emu, &[("prompt", "x [fault:moderated]")], None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("moderation_blocked")));

    for (marker, code) in [("[fault:failed]", "video_generation_failed"), ("[fault:moderated:content]", "moderation_blocked")] {
        let (_, v, _) = create(&emu, &[("prompt", &format!("x {marker}"))], None).await;
        let id = v["id"].as_str().unwrap();
        video_get(&emu, &format!("/v1/videos/{id}")).await;
        let v: Value = video_get(&emu, &format!("/v1/videos/{id}")).await.json().await.unwrap();
        assert_eq!((v["status"].as_str(), v["error"]["code"].as_str()), (Some("failed"), Some(code)));
    }

    let (_, v, _) = create(&emu, &[("prompt", "x [fault:slow:4]")], None).await;
    let id = v["id"].as_str().unwrap();
    let mut states = Vec::new();
    for _ in 0..4 {
        let v: Value = video_get(&emu, &format!("/v1/videos/{id}")).await.json().await.unwrap();
        states.push(v["status"].as_str().unwrap().to_string());
    }
    assert_eq!(states, ["in_progress", "in_progress", "in_progress", "completed"]);

    let (status, text, _) = create(&emu, &[("prompt", "x [fault:malformed]")], None).await;
    assert!(status == 200 && text.is_string());
}
