//! The Gemini / Veo emulator against the real wire protocol: what it accepts, what it rejects
//! (with Google's envelope), and every fault marker.

use atelier_emulator::Emulator;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Cursor;

const FLASH: &str = "gemini-2.5-flash-image";

fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn edit_body(prompt: &str, images: &[Vec<u8>], config: Value) -> Value {
    let mut parts = vec![json!({"text": prompt})];
    for img in images {
        parts.push(json!({"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(img)}}));
    }
    json!({"contents": [{"role": "user", "parts": parts}], "generationConfig": config})
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn call(emu: &Emulator, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = client().post(format!("{}{path}", emu.base_url)).json(body);
    if let Some(key) = key {
        req = req.header("x-goog-api-key", key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn generate(emu: &Emulator, model: &str, body: &Value) -> (u16, Value) {
    let key = emu.state.keys.gemini.clone();
    call(emu, &format!("/v1beta/models/{model}:generateContent"), body, Some(&key)).await
}

/// The final (non-thought) image of an answer, decoded.
fn final_image(answer: &Value) -> (String, Vec<u8>) {
    let parts = answer["candidates"][0]["content"]["parts"].as_array().unwrap();
    let part = parts.iter().rev().find(|p| p.get("inlineData").is_some() && p.get("thought").is_none()).unwrap();
    let data = STANDARD.decode(part["inlineData"]["data"].as_str().unwrap()).unwrap();
    (part["inlineData"]["mimeType"].as_str().unwrap().to_string(), data)
}

fn assert_error(status: u16, body: &Value, want_status: u16, want: &str, contains: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_status, "{body}");
    assert_eq!(body["error"]["status"], want, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(contains), "`{message}` should contain `{contains}`");
}

#[tokio::test]
async fn edit_returns_the_input_inverted_at_the_model_size() {
    let emu = Emulator::start().await.unwrap();
    let body = edit_body("make it teal", &[png(32, 16, [255, 0, 0])], json!({"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_eq!(status, 200, "{answer}");
    let (declared, bytes) = final_image(&answer);
    assert_eq!(declared, "image/png");
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1344, 768));
    assert_eq!(img.get_pixel(600, 300).0, [0, 255, 255]);
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    assert_eq!(answer["usageMetadata"]["candidatesTokensDetails"][0]["tokenCount"], 1290);
    assert_eq!(answer["modelVersion"], FLASH);
    // snake_case is accepted too, and without a ratio the output follows the input's shape
    let snake = json!({"contents": [{"parts": [{"text": "x"}, {"inline_data": {"mime_type": "image/png", "data": STANDARD.encode(png(16, 32, [0, 0, 0]))}}]}]});
    let (status, answer) = generate(&emu, FLASH, &snake).await;
    assert_eq!(status, 200, "{answer}");
    let img = image::load_from_memory(&final_image(&answer).1).unwrap();
    assert_eq!((img.width(), img.height()), (768, 1344));
}

#[tokio::test]
async fn gemini3_sizes_and_ratios_follow_the_model() {
    let emu = Emulator::start().await.unwrap();
    let input = vec![png(8, 8, [10, 20, 30])];
    let body = edit_body("wide", &input, json!({"imageConfig": {"aspectRatio": "4:1", "imageSize": "512"}, "thinkingConfig": {"thinkingLevel": "HIGH"}}));
    let (status, answer) = generate(&emu, "gemini-3.1-flash-image", &body).await;
    assert_eq!(status, 200, "{answer}");
    let img = image::load_from_memory(&final_image(&answer).1).unwrap();
    assert_eq!((img.width(), img.height()), (1024, 256));

    let (status, answer) = generate(&emu, "gemini-3-pro-image", &body).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unsupported aspect ratio: 4:1");
    let body = edit_body("x", &input, json!({"imageConfig": {"imageSize": "512"}}));
    let (status, answer) = generate(&emu, "gemini-3-pro-image", &body).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unsupported image size: 512");
    let body = edit_body("x", &input, json!({"imageConfig": {"imageSize": "1k"}}));
    let (status, answer) = generate(&emu, "gemini-3.1-flash-image", &body).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unsupported image size: 1k");
    let body = edit_body("x", &input, json!({"imageConfig": {"imageSize": "1K"}}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Image size is not supported");
    let body = edit_body("x", &input, json!({"thinkingConfig": {"thinkingLevel": "HIGH"}}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Thinking level is not supported");
}

#[tokio::test]
async fn keys_are_checked() {
    let emu = Emulator::start().await.unwrap();
    let body = edit_body("x", &[png(8, 8, [0, 0, 0])], json!({}));
    let (status, answer) = call(&emu, &format!("/v1beta/models/{FLASH}:generateContent"), &body, Some("wrong")).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "API key not valid");
    assert_eq!(answer["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let (status, answer) = call(&emu, &format!("/v1beta/models/{FLASH}:generateContent"), &body, None).await;
    assert_error(status, &answer, 403, "PERMISSION_DENIED", "unregistered callers");
    let key = emu.state.keys.gemini.clone();
    let (status, _) = call(&emu, &format!("/v1beta/models/{FLASH}:generateContent?key={key}"), &body, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_requests_are_rejected_like_google() {
    let emu = Emulator::start().await.unwrap();
    let img = png(8, 8, [0, 0, 0]);
    let bare = json!({"contents": [{"parts": [{"text": "x"}, {"inlineData": {"mimeType": "png", "data": STANDARD.encode(&img)}}]}]});
    let (status, answer) = generate(&emu, FLASH, &bare).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unsupported MIME type: png");

    let (status, answer) = generate(&emu, FLASH, &edit_body("x", std::slice::from_ref(&img), json!({"candidateCount": 2}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Multiple candidates is not enabled for models/gemini-2.5-flash-image");

    let (status, answer) = generate(&emu, "gemini-9-image", &edit_body("x", std::slice::from_ref(&img), json!({}))).await;
    assert_error(status, &answer, 404, "NOT_FOUND", "is not found for API version");
    let (status, answer) = generate(&emu, "gemini-2.5-flash-image-preview", &edit_body("x", std::slice::from_ref(&img), json!({}))).await;
    assert_error(status, &answer, 404, "NOT_FOUND", "no longer available");
    let (status, answer) = generate(&emu, "veo-3.0-generate-001", &edit_body("x", std::slice::from_ref(&img), json!({}))).await;
    assert_error(status, &answer, 404, "NOT_FOUND", "not supported for generateContent");

    let (status, answer) = generate(&emu, FLASH, &edit_body("x", std::slice::from_ref(&img), json!({"imageConfig": {"aspectRatio": "7:3"}}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unsupported aspect ratio: 7:3");
    let four = vec![img.clone(), img.clone(), img.clone(), img.clone()];
    let (status, answer) = generate(&emu, FLASH, &edit_body("x", &four, json!({}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "at most 3");
    let (status, _) = generate(&emu, "gemini-3.1-flash-image", &edit_body("x", &four, json!({}))).await;
    assert_eq!(status, 200);
    let (status, answer) = generate(&emu, FLASH, &edit_body("x", std::slice::from_ref(&img), json!({"imageConfig": {"aspect_ratio": "1:1", "size": "1K"}}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unknown name \"size\"");
    let not_image = json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(b"hello")}}]}]});
    let (status, answer) = generate(&emu, FLASH, &not_image).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Unable to process input image");
    // unknown top-level keys are ignored, as Google does
    let mut extra = edit_body("x", &[img], json!({}));
    extra["store"] = json!(false);
    assert_eq!(generate(&emu, FLASH, &extra).await.0, 200);
}

#[tokio::test]
async fn once_faults_fail_then_succeed_and_always_faults_stay() {
    let emu = Emulator::start().await.unwrap();
    let img = vec![png(8, 8, [0, 0, 0])];
    let body = edit_body("cat [fault:429:0.2s]", &img, json!({}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_error(status, &answer, 429, "RESOURCE_EXHAUSTED", "Please retry in 0.2s");
    let retry = answer["error"]["details"].as_array().unwrap().iter().find(|d| d["@type"].as_str().unwrap().ends_with("RetryInfo")).unwrap();
    assert_eq!(retry["retryDelay"], "0.2s");
    assert_eq!(generate(&emu, FLASH, &body).await.0, 200);

    let body = edit_body("cat [fault:503]", &img, json!({}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_error(status, &answer, 503, "UNAVAILABLE", "overloaded");
    assert_eq!(generate(&emu, FLASH, &body).await.0, 200);

    let body = edit_body("cat [fault:429-daily]", &img, json!({}));
    let (status, answer) = generate(&emu, FLASH, &body).await;
    assert_error(status, &answer, 429, "RESOURCE_EXHAUSTED", "exceeded your current quota");
    let details = answer["error"]["details"].as_array().unwrap();
    assert!(details.iter().all(|d| !d["@type"].as_str().unwrap().ends_with("RetryInfo")));
    assert!(details[0]["violations"][0]["quotaId"].as_str().unwrap().contains("PerDay"));

    for marker in ["[fault:429-always]", "[fault:503-always]"] {
        let body = edit_body(&format!("cat {marker}"), &img, json!({}));
        let first = generate(&emu, FLASH, &body).await.0;
        assert!(first == 429 || first == 503);
        assert_eq!(generate(&emu, FLASH, &body).await.0, first);
    }
}

#[tokio::test]
async fn answer_faults_have_googles_shapes() {
    let emu = Emulator::start().await.unwrap();
    let img = vec![png(8, 8, [0, 0, 0])];

    let (status, answer) = generate(&emu, FLASH, &edit_body("[fault:malformed]", &img, json!({}))).await;
    assert_eq!(status, 200);
    assert!(answer.is_string(), "malformed body must not parse as JSON: {answer}");

    let (_, answer) = generate(&emu, FLASH, &edit_body("[fault:blocked]", &img, json!({}))).await;
    assert_eq!(answer["promptFeedback"]["blockReason"], "PROHIBITED_CONTENT");
    assert!(answer.get("candidates").is_none());

    let (_, answer) = generate(&emu, FLASH, &edit_body("[fault:image-safety]", &img, json!({}))).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "IMAGE_SAFETY");

    let (_, answer) = generate(&emu, FLASH, &edit_body("[fault:text-only]", &img, json!({}))).await;
    let parts = answer["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert!(parts.iter().all(|p| p.get("inlineData").is_none()));

    let (_, answer) = generate(&emu, FLASH, &edit_body("[fault:thought]", &img, json!({}))).await;
    let parts = answer["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["thought"], true);
    assert_eq!(parts[1]["thought"], true);
    assert!(parts[1].get("inlineData").is_some());
    let (_, bytes) = final_image(&answer);
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 1024);

    let (_, answer) = generate(&emu, FLASH, &edit_body("[fault:jpeg-as-png]", &img, json!({}))).await;
    let (declared, bytes) = final_image(&answer);
    assert_eq!(declared, "image/png");
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
}

#[tokio::test]
async fn hang_never_answers() {
    let emu = Emulator::start().await.unwrap();
    let body = edit_body("[fault:hang]", &[png(8, 8, [0, 0, 0])], json!({}));
    let req = client()
        .post(format!("{}/v1beta/models/{FLASH}:generateContent", emu.base_url))
        .header("x-goog-api-key", &emu.state.keys.gemini)
        .json(&body)
        .timeout(std::time::Duration::from_millis(300));
    assert!(req.send().await.unwrap_err().is_timeout());
}

fn veo_body(prompt: &str, params: Value) -> Value {
    json!({"instances": [{"prompt": prompt, "image": {"bytesBase64Encoded": STANDARD.encode(png(16, 9, [0, 128, 0])), "mimeType": "image/png"}}],
           "parameters": params})
}

async fn start_video(emu: &Emulator, model: &str, body: &Value) -> (u16, Value) {
    let key = emu.state.keys.gemini.clone();
    call(emu, &format!("/v1beta/models/{model}:predictLongRunning"), body, Some(&key)).await
}

async fn poll(emu: &Emulator, name: &str) -> Value {
    let resp = client().get(format!("{}/v1beta/{name}", emu.base_url)).header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn veo_runs_an_operation_and_serves_the_video_in_two_hops() {
    let emu = Emulator::start().await.unwrap();
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &veo_body("stretch", json!({"durationSeconds": 8, "aspectRatio": "16:9", "resolution": "720p", "negativePrompt": "blur"}))).await;
    assert_eq!(status, 200, "{answer}");
    let name = answer["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("models/veo-3.0-generate-001/operations/"), "{name}");

    let first = poll(&emu, &name).await;
    assert_eq!(first, json!({"name": name}));
    let done = poll(&emu, &name).await;
    assert_eq!(done["done"], true, "{done}");
    let uri = done["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with(&format!("{}/v1beta/files/", emu.base_url)) && uri.ends_with(":download?alt=media"), "{uri}");

    let no_key = client().get(&uri).send().await.unwrap();
    assert_eq!(no_key.status(), 403);
    let hop = client().get(&uri).header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap();
    assert_eq!(hop.status(), 302);
    let location = hop.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&emu.alt_url), "{location}");
    let video = client().get(&location).send().await.unwrap();
    assert_eq!(video.status(), 200);
    assert_eq!(video.headers()["content-type"], "video/mp4");
    let bytes = video.bytes().await.unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    let tampered = location.replace("sig=", "sig=0");
    assert_eq!(client().get(&tampered).send().await.unwrap().status(), 403);
    assert_eq!(emu.state.requests().iter().filter(|r| r.host == "alt").count(), 2);
}

#[tokio::test]
async fn veo_rejects_what_google_rejects() {
    let emu = Emulator::start().await.unwrap();
    let inline = json!({"instances": [{"prompt": "x", "image": {"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(png(4, 4, [0, 0, 0]))}}}]});
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &inline).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "`inlineData` isn't supported by this model.");
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &veo_body("x", json!({"durationSeconds": "8"}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "The value type for durationSeconds needs to be a number.");
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &veo_body("x", json!({"durationSeconds": 4}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "durationSeconds is out of bound");
    let (status, answer) = start_video(&emu, "veo-3.1-generate-preview", &veo_body("x", json!({"durationSeconds": 6, "resolution": "4k"}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "requires durationSeconds 8");
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &veo_body("x", json!({"aspectRatio": "1:1"}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "Aspect ratio 1:1");
    let (status, answer) = start_video(&emu, "veo-3.0-generate-001", &veo_body("x", json!({"seed": 3}))).await;
    assert_error(status, &answer, 400, "INVALID_ARGUMENT", "`seed` isn't supported");
    let (status, answer) = start_video(&emu, "veo-9", &veo_body("x", json!({}))).await;
    assert_error(status, &answer, 404, "NOT_FOUND", "is not found");
    let (status, answer) = start_video(&emu, FLASH, &veo_body("x", json!({}))).await;
    assert_error(status, &answer, 404, "NOT_FOUND", "not supported for predictLongRunning");
    let resp = client().get(format!("{}/v1beta/models/veo-3.0-generate-001/operations/nope", emu.base_url))
        .header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn veo_faults() {
    let emu = Emulator::start().await.unwrap();
    let model = "veo-3.1-fast-generate-preview";
    let run = |prompt: &'static str| {
        let emu = &emu;
        async move {
            let (status, answer) = start_video(emu, model, &veo_body(prompt, json!({"durationSeconds": 4}))).await;
            assert_eq!(status, 200, "{answer}");
            answer["name"].as_str().unwrap().to_string()
        }
    };
    let name = run("[fault:rai]").await;
    poll(&emu, &name).await;
    let done = poll(&emu, &name).await;
    assert_eq!(done["response"]["generateVideoResponse"]["raiMediaFilteredCount"], 1);
    assert!(done["response"]["generateVideoResponse"]["raiMediaFilteredReasons"][0].as_str().unwrap().contains("celebrity"));

    let name = run("[fault:op-error:3]").await;
    poll(&emu, &name).await;
    let done = poll(&emu, &name).await;
    assert_eq!(done["done"], true);
    assert_eq!(done["error"]["code"], 3);

    let name = run("[fault:slow-op:4]").await;
    for _ in 0..3 {
        assert_ne!(poll(&emu, &name).await["done"], true);
    }
    assert_eq!(poll(&emu, &name).await["done"], true);

    let name = run("big [size:3MB]").await;
    poll(&emu, &name).await;
    let uri = poll(&emu, &name).await["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].as_str().unwrap().to_string();
    // Two hops: the key to Google, none to the storage host it redirects to (a key there is refused as a leak).
    let hop = client().get(&uri).header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap();
    assert_eq!(hop.status(), 302);
    let location = hop.headers()["location"].to_str().unwrap().to_string();
    let video = client().get(&location).send().await.unwrap();
    assert_eq!(video.status(), 200);
    assert_eq!(video.bytes().await.unwrap().len(), 3_000_000);

    let name = run("[fault:expired]").await;
    poll(&emu, &name).await;
    let uri = poll(&emu, &name).await["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"].as_str().unwrap().to_string();
    let gone = client().get(&uri).header("x-goog-api-key", &emu.state.keys.gemini).send().await.unwrap();
    assert_eq!(gone.status(), 404);

    let (status, answer) = start_video(&emu, model, &veo_body("[fault:429:0.2s]", json!({}))).await;
    assert_error(status, &answer, 429, "RESOURCE_EXHAUSTED", "retry in 0.2s");
    assert_eq!(start_video(&emu, model, &veo_body("[fault:429:0.2s]", json!({}))).await.0, 200);
}
