//! Checks and input shaping shared by the image plugins' `prepare()` and `submit()`.

use crate::image_models::{ImageModelSpec, list};
use crate::request::{ImageEditRequest, InlineImage};
use atelier_sdk::{Error, InputPlan, Params, Request};

/// Refuse `value` for parameter `name` unless the configured model accepts it; the message lists
/// the allowed values and says which setting decides them.
pub fn check_allowed(name: &str, value: &str, allowed: &[&str], model: &str, plugin_id: &str) -> Result<(), Error> {
    if allowed.is_empty() {
        return Err(Error::invalid(format!(
            "`{name}` is not available on model `{model}`; remove --param {name}, or set `model` under [plugins.{plugin_id}] in atelier.toml to a model that has it"
        )));
    }
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{name} `{value}` is not available on model `{model}`; allowed: {} (the model is set by `model` under [plugins.{plugin_id}] in atelier.toml)",
        list(allowed)
    )))
}

/// Checks common to every image model: reference count, no mask.
pub fn check_references(spec: &ImageModelSpec, references: usize, has_mask: bool, model: &str) -> Result<(), Error> {
    if has_mask {
        return Err(Error::invalid(
            "Gemini image models take no mask; describe the region to change in the prompt instead",
        ));
    }
    if references as u32 > spec.max_references {
        return Err(Error::invalid(format!(
            "{references} reference images given; model `{model}` takes at most {}",
            spec.max_references
        )));
    }
    Ok(())
}

/// How to shrink references: inline data shares one request (~20 MB), so more references get a
/// smaller longest side. Output size does not depend on input size.
pub fn reference_plan(references: usize) -> InputPlan {
    let max_side = match references {
        0..=3 => 2048,
        4..=6 => 1536,
        _ => 1024,
    };
    InputPlan { exact_size: None, max_side: Some(max_side) }
}

/// The `generateContent` request for a contract request and the chosen image settings.
pub fn edit_request<'a>(
    req: &'a Request,
    aspect_ratio: Option<&'a str>,
    image_size: Option<&'a str>,
    thinking_level: Option<&'a str>,
) -> ImageEditRequest<'a> {
    ImageEditRequest {
        prompt: &req.prompt,
        images: req.references.iter().map(|m| InlineImage { mime: &m.mime, bytes: &m.bytes }).collect(),
        aspect_ratio,
        image_size,
        thinking_level,
        seed: req.seed,
    }
}

/// The text value of a parameter, if given (the host has filled in defaults).
pub fn text_param<'a>(params: &'a [atelier_sdk::Param], name: &str) -> Option<&'a str> {
    params.text(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_models::ImageFamily;

    #[test]
    fn refusals_list_allowed_values_and_the_setting() {
        let err = check_allowed("size", "512", &["1K", "2K", "4K"], "gemini-3-pro-image", "nano-banana-2").unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("1K, 2K, 4K") && m.contains("[plugins.nano-banana-2]")), "{err:?}");
        assert!(check_allowed("size", "2K", &["1K", "2K"], "m", "p").is_ok());
        assert!(check_allowed("thinking", "high", &[], "m", "p").is_err());
    }

    #[test]
    fn reference_limits_and_plan() {
        let spec = ImageFamily::Flash25.spec();
        assert!(check_references(&spec, 3, false, "m").is_ok());
        assert!(matches!(check_references(&spec, 4, false, "m"), Err(Error::InvalidInput(m)) if m.contains("at most 3")));
        assert!(check_references(&spec, 1, true, "m").is_err());
        assert_eq!(reference_plan(2).max_side, Some(2048));
        assert_eq!(reference_plan(14).max_side, Some(1024));
    }
}
