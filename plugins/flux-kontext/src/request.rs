//! Request bodies for FLUX.1 Kontext and FLUX.1 Fill, and the checks made before sending them.

use atelier_sdk::{encoding, Error, InputPlan, Param, Params, Request};
#[cfg(test)]
use atelier_sdk::OutputKind;
use serde_json::{json, Map, Value};

/// Longest reference side we send; Kontext works at about one megapixel.
pub const MAX_INPUT_SIDE: u32 = 2048;

/// How the host shapes inputs: large references shrunk to [`MAX_INPUT_SIDE`], except for masked
/// edits, whose mask the host does not resize (FLUX Fill needs image and mask the same size).
pub fn input_plan(has_mask: bool) -> InputPlan {
    InputPlan { exact_size: None, max_side: (!has_mask).then_some(MAX_INPUT_SIDE) }
}

/// Checks shared by `prepare` and `submit`.
pub fn check(prompt: &str, references: usize, has_mask: bool, aspect: Option<&str>, params: &[Param]) -> Result<(), Error> {
    if prompt.trim().is_empty() {
        return Err(Error::invalid("FLUX needs a prompt: say what to change"));
    }
    if has_mask {
        if references != 1 {
            return Err(Error::invalid(format!(
                "a masked edit (FLUX.1 Fill) takes exactly one image and its mask; you gave {references} references"
            )));
        }
        if aspect.is_some() {
            return Err(Error::invalid("--aspect does not apply to masked edits: FLUX.1 Fill keeps the image's size; drop the mask or the aspect"));
        }
    } else if params.value("steps").is_some() || params.value("guidance").is_some() {
        return Err(Error::invalid("`steps` and `guidance` apply only to masked edits (FLUX.1 Fill): add --mask or drop them"));
    }
    Ok(())
}

/// Fields both endpoints share: seed, output format, safety tolerance, prompt upsampling.
fn common(req: &Request, body: &mut Map<String, Value>) {
    body.insert("prompt".into(), json!(req.prompt));
    if let Some(seed) = req.seed {
        body.insert("seed".into(), json!(seed));
    }
    body.insert("output_format".into(), json!(req.params.text("output_format").unwrap_or("png")));
    body.insert("safety_tolerance".into(), json!(req.params.integer("safety_tolerance").unwrap_or(2)));
    body.insert("prompt_upsampling".into(), json!(req.params.boolean("prompt_upsampling").unwrap_or(false)));
}

/// `POST /v1/flux-kontext-{pro,max}`: `input_image` plus `input_image_2..4`, raw base64.
pub fn kontext_body(req: &Request) -> Value {
    let mut body = Map::new();
    common(req, &mut body);
    for (i, m) in req.references.iter().take(4).enumerate() {
        let key = if i == 0 { "input_image".to_string() } else { format!("input_image_{}", i + 1) };
        body.insert(key, json!(encoding::base64_encode(&m.bytes)));
    }
    if let Some(aspect) = req.aspect.as_deref() {
        body.insert("aspect_ratio".into(), json!(aspect));
    }
    Value::Object(body)
}

/// `POST /v1/flux-pro-1.0-fill`: `image` and `mask` (white = repaint), raw base64, same size.
pub fn fill_body(req: &Request) -> Value {
    let mut body = Map::new();
    common(req, &mut body);
    if let Some(image) = req.references.first() {
        body.insert("image".into(), json!(encoding::base64_encode(&image.bytes)));
    }
    if let Some(mask) = &req.mask {
        body.insert("mask".into(), json!(encoding::base64_encode(&mask.bytes)));
    }
    if let Some(steps) = req.params.integer("steps") {
        body.insert("steps".into(), json!(steps));
    }
    if let Some(guidance) = req.params.number("guidance") {
        body.insert("guidance".into(), json!(guidance));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_sdk::Media;

    fn req(refs: usize, mask: bool, params: Vec<Param>) -> Request {
        // `aspect` stands for the request's typed aspect ratio here (contract 0.2).
        let aspect = params.iter().find(|p| p.name == "aspect").and_then(|p| match &p.value {
            atelier_sdk::Value::Text(t) => Some(t.clone()),
            _ => None,
        });
        let params = params.into_iter().filter(|p| p.name != "aspect").collect();
        Request {
            output: OutputKind::Image,
            aspect,
            size: None,
            prompt: "make the car red".into(),
            references: (0..refs).map(|i| Media { mime: "image/png".into(), bytes: vec![i as u8; 3] }).collect(),
            mask: mask.then(|| Media { mime: "image/png".into(), bytes: vec![9; 3] }),
            n: 1,
            seed: Some(42),
            params,
        }
    }

    #[test]
    fn kontext_body_is_exact() {
        let params = vec![
            Param::new("aspect", "16:9"),
            Param::new("output_format", "jpeg"),
            Param::new("safety_tolerance", 4i64),
            Param::new("prompt_upsampling", true),
        ];
        let body = kontext_body(&req(3, false, params));
        assert_eq!(
            body,
            json!({"prompt":"make the car red","seed":42,"output_format":"jpeg","safety_tolerance":4,"prompt_upsampling":true,
                   "input_image":"AAAA","input_image_2":"AQEB","input_image_3":"AgIC","aspect_ratio":"16:9"})
        );
    }

    #[test]
    fn kontext_defaults() {
        let mut r = req(1, false, vec![]);
        r.seed = None;
        assert_eq!(
            kontext_body(&r),
            json!({"prompt":"make the car red","output_format":"png","safety_tolerance":2,"prompt_upsampling":false,"input_image":"AAAA"})
        );
    }

    #[test]
    fn fill_body_is_exact() {
        let body = fill_body(&req(1, true, vec![Param::new("steps", 30i64), Param::new("guidance", 12.5)]));
        assert_eq!(
            body,
            json!({"prompt":"make the car red","seed":42,"output_format":"png","safety_tolerance":2,"prompt_upsampling":false,
                   "image":"AAAA","mask":"CQkJ","steps":30,"guidance":12.5})
        );
    }

    #[test]
    fn masked_edits_are_not_shrunk() {
        assert_eq!(input_plan(true).max_side, None);
        assert_eq!(input_plan(false).max_side, Some(MAX_INPUT_SIDE));
    }

    #[test]
    fn checks_combinations() {
        assert!(check("p", 2, true, None, &[]).is_err());
        assert!(check("p", 1, true, Some("1:1"), &[]).is_err());
        assert!(check("p", 1, false, None, &[Param::new("steps", 20i64)]).is_err());
        assert!(check("p", 1, true, None, &[Param::new("steps", 20i64)]).is_ok());
        assert!(check("", 1, false, None, &[]).is_err());
        assert!(check("p", 4, false, Some("21:9"), &[]).is_ok());
    }
}
