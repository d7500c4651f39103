//! The ModelArk request body, built from an atelier request.

use crate::rules;
use atelier_sdk::{encoding, sniff, Error, Params, Request};
use serde_json::{json, Value};

/// Image formats ModelArk takes as references (4.x).
const INPUT_FORMATS: [&str; 6] = ["image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif"];

/// How results come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResponseFormat {
    /// Base64 in the response body.
    B64Json,
    /// Signed URLs, valid 24 h, that the host downloads.
    Url,
}

impl ResponseFormat {
    fn wire(self) -> &'static str {
        match self {
            ResponseFormat::B64Json => "b64_json",
            ResponseFormat::Url => "url",
        }
    }
}

/// One generation request, ready to serialize.
#[derive(Debug, Clone)]
pub struct Job {
    /// Model or endpoint id.
    pub model: String,
    /// The prompt as sent.
    pub prompt: String,
    /// References as lowercase base64 data URIs.
    pub images: Vec<String>,
    /// `1K`/`2K`/`4K` or `WxH`.
    pub size: Option<String>,
    /// How many images.
    pub n: u32,
    /// Whether ModelArk adds its watermark.
    pub watermark: bool,
    /// How results come back.
    pub response_format: ResponseFormat,
    /// `optimize_prompt_options.mode`, when chosen.
    pub prompt_mode: Option<String>,
}

impl Job {
    /// Build from a checked request.
    pub fn from_request(model: &str, req: &Request) -> Result<Job, Error> {
        let images = req
            .references
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mime = sniff::mime_of(&m.bytes).unwrap_or(m.mime.as_str()).to_ascii_lowercase();
                if !INPUT_FORMATS.contains(&mime.as_str()) {
                    return Err(Error::invalid(format!(
                        "reference {} is {mime}: Seedream takes jpeg, png, webp, bmp, tiff or gif",
                        i + 1
                    )));
                }
                Ok(encoding::data_uri(&mime, &m.bytes))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let size = rules::requested_size(req.size.as_deref(), &req.params)?.map(rules::normalize_size);
        Ok(Job {
            model: model.into(),
            prompt: req.prompt.clone(),
            images,
            size,
            n: req.n.max(1),
            watermark: req.params.boolean("watermark").unwrap_or(true),
            response_format: if req.params.text("response_format") == Some("url") { ResponseFormat::Url } else { ResponseFormat::B64Json },
            prompt_mode: req.params.text("prompt_mode").map(str::to_string),
        })
    }

    /// The JSON body. One image: `sequential_image_generation = "disabled"` (exactly one).
    /// A batch: `"auto"` with `max_images = n`, and the count said in the prompt, since in
    /// `auto` mode the model decides how many images to make up to `max_images`.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "model": self.model,
            "prompt": self.prompt,
            "response_format": self.response_format.wire(),
            "watermark": self.watermark,
            "stream": false,
        });
        if self.n > 1 {
            body["prompt"] = json!(format!("{}\n\nGenerate {} separate images.", self.prompt.trim_end(), self.n));
            body["sequential_image_generation"] = json!("auto");
            body["sequential_image_generation_options"] = json!({ "max_images": self.n });
        } else {
            body["sequential_image_generation"] = json!("disabled");
        }
        match self.images.len() {
            0 => {}
            1 => body["image"] = json!(self.images[0]),
            _ => body["image"] = json!(self.images),
        }
        if let Some(size) = &self.size {
            body["size"] = json!(size);
        }
        if let Some(mode) = &self.prompt_mode {
            body["optimize_prompt_options"] = json!({ "mode": mode });
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_sdk::{Media, Param};

    fn png() -> Vec<u8> {
        let mut p = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        p.extend_from_slice(&64u32.to_be_bytes());
        p.extend_from_slice(&32u32.to_be_bytes());
        p
    }

    fn request(n: u32, refs: usize, params: Vec<Param>) -> Request {
        // `size` stands for the typed `--size` here (contract 0.2).
        let size = params.iter().find(|p| p.name == "size").and_then(|p| match &p.value {
            atelier_sdk::Value::Text(t) => Some(t.clone()),
            _ => None,
        });
        let params = params.into_iter().filter(|p| p.name != "size").collect();
        Request {
            output: atelier_sdk::OutputKind::Image,
            aspect: None,
            size,
            prompt: "make it blue".into(),
            references: (0..refs).map(|_| Media { mime: "image/PNG".into(), bytes: png() }).collect(),
            mask: None,
            n,
            seed: Some(7),
            params,
        }
    }

    #[test]
    fn single_image_body() {
        let params = vec![Param::new("size", "2k"), Param::new("watermark", false), Param::new("response_format", "b64_json")];
        let job = Job::from_request("seedream-4-0-250828", &request(1, 1, params)).unwrap();
        let body = job.body();
        let data_uri = encoding::data_uri("image/png", &png());
        assert_eq!(
            body,
            json!({"model":"seedream-4-0-250828","prompt":"make it blue","response_format":"b64_json","watermark":false,
                   "stream":false,"sequential_image_generation":"disabled","image":data_uri,"size":"2K"})
        );
        assert!(body["image"].as_str().unwrap().starts_with("data:image/png;base64,"));
    }

    #[test]
    fn batch_body_with_references() {
        let params = vec![Param::new("size", "1280x720"), Param::new("response_format", "url"), Param::new("prompt_mode", "fast")];
        let body = Job::from_request("seedream-4-0-250828", &request(3, 2, params)).unwrap().body();
        assert_eq!(body["sequential_image_generation"], "auto");
        assert_eq!(body["sequential_image_generation_options"], json!({"max_images": 3}));
        assert_eq!(body["prompt"], "make it blue\n\nGenerate 3 separate images.");
        assert_eq!(body["image"].as_array().unwrap().len(), 2);
        assert_eq!(body["response_format"], "url");
        assert_eq!(body["watermark"], true);
        assert_eq!(body["size"], "1280x720");
        assert_eq!(body["optimize_prompt_options"], json!({"mode":"fast"}));
        assert!(body.get("seed").is_none(), "4.x ignores seed; we do not send it");
    }

    #[test]
    fn text_only_body_has_no_image() {
        let body = Job::from_request("m", &request(1, 0, vec![])).unwrap().body();
        assert!(body.get("image").is_none());
        assert!(body.get("size").is_none());
    }

    #[test]
    fn rejects_unknown_reference_formats() {
        let mut req = request(1, 1, vec![]);
        req.references[0] = Media { mime: "image/x-foo".into(), bytes: b"nope".to_vec() };
        assert!(matches!(Job::from_request("m", &req), Err(Error::InvalidInput(m)) if m.contains("image/x-foo")));
    }
}
