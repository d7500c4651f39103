//! Contract 0.1.0 (`wit/0.1.0`): its generated bindings and their conversions to and from the
//! host's types. What 0.1 left to convention is mapped onto 0.2's typed fields: `task` becomes
//! `outputs`, and parameters named `output`, `aspect` and `size` become the request's typed
//! output kind, aspect ratio and size (the host passes them back as those parameters, so a 0.1
//! plugin sees what it always saw). A 0.1 model says nothing of prompt-only generation (its
//! `prepare` is asked) and its submit always counts as having effects outside the host.

use crate::types::{self, OutputKind, ParamKind};

/// World `model` at 0.1.0.
pub mod model {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "model",
        imports: { default: async },
        exports: { default: async },
    });
}

/// World `filter` at 0.1.0.
pub mod filter {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "filter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "atelier:plugin/types": super::model::atelier::plugin::types,
            "atelier:plugin/config": super::model::atelier::plugin::config,
            "atelier:plugin/log": super::model::atelier::plugin::log,
        },
    });
}

pub(crate) use filter::exports::atelier::plugin::filters as wit_filters;
/// The imports of this version, which `caps` implements.
pub(crate) use model::atelier::plugin as imports;
pub(crate) use model::atelier::plugin::types as wit_types;
pub(crate) use model::exports::atelier::plugin::backend as wit_backend;

super::shared::shared_conversions!(wit_types, wit_backend, wit_filters);

/// What `apply` sends: the image moved (not copied) and the steps.
pub(crate) fn apply_args(image: types::Image, steps: &[types::Step]) -> (wit_types::Image, Vec<wit_filters::Step>) {
    (image.into(), steps.iter().cloned().map(Into::into).collect())
}

impl wit_types::Host for crate::wasm::store::HostState {}

/// Links 0.1's `types` interface (types only: nothing to implement).
pub(crate) fn add_types_to_linker(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    wit_types::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

/// The 0.1 parameters a model declared that the host maps onto typed request fields, with
/// their defaults, so they are passed back as parameters on every call.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Legacy {
    /// The `output` parameter (choices `image`/`video`), with its default.
    pub output: Option<Option<String>>,
    /// The `aspect` parameter, with its default.
    pub aspect: Option<Option<String>>,
    /// The `size` parameter, with its default.
    pub size: Option<Option<String>>,
}

impl Legacy {
    /// `params` plus the legacy parameters for the typed fields (the field when given, else the
    /// parameter's default), unless `params` already names them (a request saved before 0.2).
    fn params(&self, output: OutputKind, aspect: &Option<String>, size: &Option<String>, params: &[types::Param]) -> Vec<wit_types::Param> {
        let mut out: Vec<wit_types::Param> = params.iter().cloned().map(Into::into).collect();
        let typed = [
            ("output", self.output.as_ref(), Some(output.name().to_string())),
            ("aspect", self.aspect.as_ref(), aspect.clone()),
            ("size", self.size.as_ref(), size.clone()),
        ];
        for (name, declared, given) in typed {
            let Some(default) = declared else { continue };
            if out.iter().any(|p| p.name == name) {
                continue;
            }
            if let Some(v) = given.or_else(|| default.clone()) {
                out.push(wit_types::Param { name: name.into(), value: wit_types::Value::Text(v) });
            }
        }
        out
    }
}

/// A 0.1 parameter spec as the host's, checked.
fn param_spec(s: wit_types::ParamSpec) -> Result<types::ParamSpec, String> {
    let kind = match s.kind {
        wit_types::ParamKind::Boolean => ParamKind::Boolean,
        wit_types::ParamKind::Integer => ParamKind::Integer,
        wit_types::ParamKind::Number => ParamKind::Number,
        wit_types::ParamKind::Text => ParamKind::Text,
        wit_types::ParamKind::Choice => ParamKind::Choice,
        wit_types::ParamKind::Media => ParamKind::Media,
    };
    types::ParamSpec::from_flat(s.name, s.description, kind, s.default.map(Into::into), s.min, s.max, s.choices, s.required)
}

/// A 0.1 `describe` as the host's model info and the legacy parameters it declared.
pub(crate) fn model_info(i: wit_backend::ModelInfo) -> Result<(types::ModelInfo, Legacy), String> {
    let mut params = i.params.into_iter().map(param_spec).collect::<Result<Vec<_>, String>>()?;
    let mut legacy = Legacy::default();
    let mut outputs = vec![match i.task {
        wit_backend::Task::ImageEdit => OutputKind::Image,
        wit_backend::Task::ImageToVideo => OutputKind::Video,
    }];
    let (mut aspect_ratios, mut sizes) = (i.aspect_ratios, i.sizes);
    // A choice (its default first) becomes the typed list; a free-text `aspect`/`size` becomes
    // one only when `describe` lists the accepted values too.
    let take = |params: &mut Vec<types::ParamSpec>, name: &str, list: &mut Vec<String>| -> Option<Option<String>> {
        let at = params.iter().position(|p| p.name == name)?;
        let spec = &params[at];
        let default = match spec.default_value() {
            Some(types::Value::Text(t)) => Some(t),
            _ => None,
        };
        match spec.kind() {
            ParamKind::Choice => {
                if list.is_empty() {
                    *list = spec.choices().to_vec();
                }
            }
            ParamKind::Text if !list.is_empty() => {}
            _ => return None,
        }
        if let Some(d) = &default {
            if let Some(pos) = list.iter().position(|x| x == d) {
                let d = list.remove(pos);
                list.insert(0, d);
            }
        }
        params.remove(at);
        Some(default)
    };
    legacy.aspect = take(&mut params, "aspect", &mut aspect_ratios);
    legacy.size = take(&mut params, "size", &mut sizes);
    if let Some(at) = params.iter().position(|p| p.name == "output" && p.kind() == ParamKind::Choice) {
        let spec = &params[at];
        let kinds: Vec<OutputKind> = spec
            .choices()
            .iter()
            .filter_map(|c| match c.as_str() {
                "image" => Some(OutputKind::Image),
                "video" => Some(OutputKind::Video),
                _ => None,
            })
            .collect();
        // Only a choice of exactly image/video is the output kind; anything else stays a parameter.
        if !kinds.is_empty() && kinds.len() == spec.choices().len() {
            let default = match spec.default_value() {
                Some(types::Value::Text(t)) => Some(t),
                _ => None,
            };
            let mut kinds = kinds;
            if let Some(pos) = default.as_deref().and_then(|d| kinds.iter().position(|k| k.name() == d)) {
                let k = kinds.remove(pos);
                kinds.insert(0, k);
            }
            outputs = kinds;
            legacy.output = Some(default);
            params.remove(at);
        }
    }
    Ok((
        types::ModelInfo {
            id: i.id,
            display_name: i.display_name,
            description: i.description,
            model: i.model,
            outputs,
            generates_without_input: None,
            effects_outside_host: true,
            max_references: i.max_references,
            max_outputs: i.max_outputs,
            aspect_ratios,
            sizes,
            supports_mask: i.supports_mask,
            supports_seed: i.supports_seed,
            video_audio: i.supports_audio,
            params,
            input_mime: i.input_mime,
        },
        legacy,
    ))
}

/// `prepare`'s positional arguments for a draft: (prompt, references, has-mask, n, params).
pub(crate) fn draft(d: &types::Draft, legacy: &Legacy) -> (String, Vec<(u32, u32)>, bool, u32, Vec<wit_types::Param>) {
    (d.prompt.clone(), d.references.clone(), d.has_mask, d.n, legacy.params(d.output, &d.aspect, &d.size, &d.params))
}

/// A host request as 0.1's.
pub(crate) fn request(r: &types::Request, legacy: &Legacy) -> wit_backend::Request {
    wit_backend::Request {
        prompt: r.prompt.clone(),
        references: r.references.iter().cloned().map(Into::into).collect(),
        mask: r.mask.clone().map(Into::into),
        n: r.n,
        seed: r.seed,
        params: legacy.params(r.output, &r.aspect, &r.size, &r.params),
    }
}

fn artifact(a: wit_backend::Artifact) -> types::Artifact {
    types::Artifact {
        mime: a.mime,
        body: match a.body {
            wit_backend::Body::Inline(b) => types::Body::Inline(b),
            wit_backend::Body::Download(d) => types::Body::Download(d.into()),
        },
        seed: a.seed,
        has_audio: false,
        notes: a.notes,
    }
}

/// A 0.1 outcome as the host's, checked.
pub(crate) fn outcome(o: wit_backend::Outcome) -> Result<types::Outcome, String> {
    Ok(types::Outcome {
        artifacts: o.artifacts.into_iter().map(artifact).collect(),
        failures: o.failures.into_iter().map(|f| types::ItemFailure { index: f.index, error: f.error.into() }).collect(),
        usage: o.usage.into(),
    })
}

/// A 0.1 submission as the host's, checked.
pub(crate) fn submission(s: wit_backend::Submission) -> Result<types::Submission, String> {
    Ok(match s {
        wit_backend::Submission::Done(o) => types::Submission::Done(outcome(o)?),
        wit_backend::Submission::Pending(p) => types::Submission::Pending(p.into()),
    })
}

/// A 0.1 status as the host's (0.1 reports no partial results), checked.
pub(crate) fn status(s: wit_backend::Status) -> Result<types::Status, String> {
    Ok(match s {
        wit_backend::Status::Running(p) => types::Status::Running(types::Progress {
            fraction: checked_fraction(p.fraction)?,
            retry_after_ms: p.retry_after_ms,
            state: p.state,
            partials: vec![],
        }),
        wit_backend::Status::Done(o) => types::Status::Done(outcome(o)?),
    })
}

/// A 0.1 filter family's `describe`, checked.
pub(crate) fn filters(list: Vec<wit_filters::FilterInfo>) -> Result<Vec<types::FilterInfo>, String> {
    filter_infos(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: wit_types::ParamKind, default: Option<&str>, choices: &[&str]) -> wit_types::ParamSpec {
        wit_types::ParamSpec {
            name: name.into(),
            description: String::new(),
            kind,
            default: default.map(|d| wit_types::Value::Text(d.into())),
            min: None,
            max: None,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            required: false,
        }
    }

    fn info(params: Vec<wit_types::ParamSpec>) -> wit_backend::ModelInfo {
        wit_backend::ModelInfo {
            id: "m".into(),
            display_name: "M".into(),
            description: String::new(),
            model: "m-1".into(),
            task: wit_backend::Task::ImageEdit,
            max_references: 1,
            max_outputs: 1,
            aspect_ratios: vec![],
            sizes: vec![],
            supports_mask: false,
            supports_seed: true,
            supports_audio: false,
            params,
            input_mime: "image/png".into(),
        }
    }

    fn request(aspect: Option<&str>, output: OutputKind) -> types::Request {
        types::Request {
            prompt: "p".into(),
            references: vec![],
            mask: None,
            n: 1,
            seed: None,
            output,
            aspect: aspect.map(Into::into),
            size: None,
            params: vec![],
        }
    }

    #[test]
    fn aspect_size_and_output_parameters_become_typed_fields_and_come_back_as_parameters() {
        use wit_types::ParamKind as K;
        let (i, legacy) = model_info(info(vec![
            spec("aspect", K::Choice, Some("16:9"), &["1:1", "16:9"]),
            spec("size", K::Choice, None, &["1K", "2K"]),
            spec("output", K::Choice, Some("image"), &["image", "video"]),
            spec("style", K::Text, None, &[]),
        ]))
        .unwrap();
        assert_eq!(i.aspect_ratios, vec!["16:9", "1:1"], "the default comes first");
        assert_eq!(i.sizes, vec!["1K", "2K"]);
        assert_eq!(i.outputs, vec![OutputKind::Image, OutputKind::Video]);
        assert_eq!(i.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["style"]);
        assert_eq!((i.generates_without_input, i.effects_outside_host), (None, true));
        // Given: passed as the parameter; not given: the parameter's default, as 0.1 always got.
        let r = super::request(&request(Some("1:1"), OutputKind::Video), &legacy);
        let text = |name: &str| r.params.iter().find(|p| p.name == name).map(|p| match &p.value {
            wit_types::Value::Text(t) => t.clone(),
            _ => panic!(),
        });
        assert_eq!(text("aspect").as_deref(), Some("1:1"));
        assert_eq!(text("output").as_deref(), Some("video"));
        assert_eq!(text("size"), None, "no default, not given: not sent");
        let r = super::request(&request(None, OutputKind::Image), &legacy);
        assert!(r.params.iter().any(|p| p.name == "aspect" && matches!(&p.value, wit_types::Value::Text(t) if t == "16:9")));
        // A request saved before 0.2 already carries the parameter: it is not doubled.
        let mut old = request(None, OutputKind::Image);
        old.params.push(types::Param { name: "aspect".into(), value: types::Value::Text("1:1".into()) });
        assert_eq!(super::request(&old, &legacy).params.iter().filter(|p| p.name == "aspect").count(), 1);
    }

    #[test]
    fn a_model_without_legacy_parameters_gets_none_back() {
        let (i, legacy) = model_info(info(vec![])).unwrap();
        assert_eq!(i.outputs, vec![OutputKind::Image]);
        assert!(super::request(&request(None, OutputKind::Image), &legacy).params.is_empty());
    }

    #[test]
    fn bad_guest_data_is_refused() {
        use wit_types::ParamKind as K;
        assert!(model_info(info(vec![spec("mode", K::Choice, Some("z"), &["a", "b"])])).unwrap_err().contains("not one of its choices"));
        let running = wit_backend::Status::Running(wit_backend::Progress { fraction: Some(f32::NAN), retry_after_ms: 1, state: String::new() });
        assert!(status(running).is_err());
        // The usage a provider reports is kept (capped where recorded), never a reason to drop a billed result.
        let usage = wit_types::Usage { images: vec![], input_tokens: None, output_tokens: None, video_seconds: Some(-1.0) };
        let done = wit_backend::Submission::Done(wit_backend::Outcome { artifacts: vec![], failures: vec![], usage });
        assert!(submission(done).is_ok());
    }
}
