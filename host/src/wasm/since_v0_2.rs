//! Contract 0.2.0 (`wit/0.2.0`): its generated bindings and their conversions to and from the
//! host's types. Streamed artifacts (`body::stream`) become files the host already holds.

use crate::caps::artifacts::Streams;
use crate::types::{self, OutputKind};

/// World `model` at 0.2.0.
pub mod model {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "model",
        imports: { default: async },
        exports: { default: async },
    });
}

/// World `filter` at 0.2.0.
pub mod filter {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
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

/// Links 0.2's `types` interface (types only: nothing to implement).
pub(crate) fn add_types_to_linker(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    wit_types::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

/// A 0.2 parameter spec as the host's, checked.
fn param_spec(s: wit_types::ParamSpec) -> Result<types::ParamSpec, String> {
    use wit_types::ParamType as T;
    let ty = match s.type_ {
        T::Boolean(d) => types::ParamType::Boolean(d),
        T::Integer(i) => types::ParamType::Integer { default: i.default, min: i.min, max: i.max },
        T::Number(n) => types::ParamType::Number { default: n.default, min: n.min, max: n.max },
        T::Text(t) => types::ParamType::Text { default: t.default, max_len: t.max_len },
        T::Choice(c) => types::ParamType::Choice { default: c.default, choices: c.choices },
        T::Media => types::ParamType::Media,
    };
    let spec = types::ParamSpec { name: s.name, description: s.description, ty, required: s.required };
    spec.check()?;
    Ok(spec)
}

fn output_kind(k: wit_backend::OutputKind) -> OutputKind {
    match k {
        wit_backend::OutputKind::Image => OutputKind::Image,
        wit_backend::OutputKind::Video => OutputKind::Video,
    }
}

fn wit_output_kind(k: OutputKind) -> wit_backend::OutputKind {
    match k {
        OutputKind::Image => wit_backend::OutputKind::Image,
        OutputKind::Video => wit_backend::OutputKind::Video,
    }
}

/// A 0.2 `describe` as the host's model info, checked: at least one output kind, each once;
/// aspect ratios and sizes without empty or repeated entries.
pub(crate) fn model_info(i: wit_backend::ModelInfo) -> Result<types::ModelInfo, String> {
    let outputs: Vec<OutputKind> = i.outputs.into_iter().map(output_kind).collect();
    if outputs.is_empty() {
        return Err("describes a model with no output kind (outputs is empty)".into());
    }
    if outputs.len() == 2 && outputs[0] == outputs[1] {
        return Err("lists an output kind twice".into());
    }
    for (what, list) in [("aspect ratio", &i.aspect_ratios), ("size", &i.sizes)] {
        if list.iter().any(|x| x.trim().is_empty()) {
            return Err(format!("lists an empty {what}"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(x) = list.iter().find(|x| !seen.insert(x.as_str())) {
            return Err(format!("lists the {what} `{x}` twice"));
        }
    }
    let params = i.params.into_iter().map(param_spec).collect::<Result<Vec<_>, String>>()?;
    Ok(types::ModelInfo {
        id: i.id,
        display_name: i.display_name,
        description: i.description,
        model: i.model,
        outputs,
        generates_without_input: Some(i.generates_without_input),
        effects_outside_host: i.effects_outside_host,
        max_references: i.max_references,
        max_outputs: i.max_outputs,
        aspect_ratios: i.aspect_ratios,
        sizes: i.sizes,
        supports_mask: i.supports_mask,
        supports_seed: i.supports_seed,
        video_audio: i.video_audio,
        params,
        input_mime: i.input_mime,
    })
}

/// A host draft as 0.2's.
pub(crate) fn draft(d: &types::Draft) -> wit_backend::Draft {
    wit_backend::Draft {
        prompt: d.prompt.clone(),
        references: d.references.clone(),
        has_mask: d.has_mask,
        n: d.n,
        output: wit_output_kind(d.output),
        aspect: d.aspect.clone(),
        size: d.size.clone(),
        params: d.params.iter().cloned().map(Into::into).collect(),
    }
}

/// A host request as 0.2's.
pub(crate) fn request(r: &types::Request) -> wit_backend::Request {
    wit_backend::Request {
        prompt: r.prompt.clone(),
        references: r.references.iter().cloned().map(Into::into).collect(),
        mask: r.mask.clone().map(Into::into),
        n: r.n,
        seed: r.seed,
        output: wit_output_kind(r.output),
        aspect: r.aspect.clone(),
        size: r.size.clone(),
        params: r.params.iter().cloned().map(Into::into).collect(),
    }
}

/// An artifact; a streamed one takes its stream's file out of `streams` (an unknown handle, or
/// one two artifacts name, is refused).
fn artifact(a: wit_backend::Artifact, streams: &mut Streams) -> Result<types::Artifact, String> {
    let body = match a.body {
        wit_backend::Body::Inline(b) => types::Body::Inline(b),
        wit_backend::Body::Download(d) => types::Body::Download(d.into()),
        wit_backend::Body::Stream(h) => types::Body::File(streams.take(h)?),
    };
    Ok(types::Artifact { mime: a.mime, body, seed: a.seed, has_audio: a.has_audio, notes: a.notes })
}

/// A 0.2 outcome as the host's, checked.
pub(crate) fn outcome(o: wit_backend::Outcome, streams: &mut Streams) -> Result<types::Outcome, String> {
    Ok(types::Outcome {
        artifacts: o.artifacts.into_iter().map(|a| artifact(a, streams)).collect::<Result<_, _>>()?,
        failures: o.failures.into_iter().map(|f| types::ItemFailure { index: f.index, error: f.error.into() }).collect(),
        usage: o.usage.into(),
    })
}

/// A 0.2 submission as the host's, checked.
pub(crate) fn submission(s: wit_backend::Submission, streams: &mut Streams) -> Result<types::Submission, String> {
    Ok(match s {
        wit_backend::Submission::Done(o) => types::Submission::Done(outcome(o, streams)?),
        wit_backend::Submission::Pending(p) => types::Submission::Pending(p.into()),
    })
}

/// A 0.2 status as the host's, with its partial results, checked.
pub(crate) fn status(s: wit_backend::Status, streams: &mut Streams) -> Result<types::Status, String> {
    Ok(match s {
        wit_backend::Status::Running(p) => types::Status::Running(types::Progress {
            fraction: checked_fraction(p.fraction)?,
            retry_after_ms: p.retry_after_ms,
            state: p.state,
            partials: p
                .partials
                .into_iter()
                .map(|x| Ok(types::Partial { index: x.index, preview: x.preview, artifact: artifact(x.artifact, streams)? }))
                .collect::<Result<_, String>>()?,
        }),
        wit_backend::Status::Done(o) => types::Status::Done(outcome(o, streams)?),
    })
}

/// A 0.2 filter family's `describe`, checked.
pub(crate) fn filters(list: Vec<wit_filters::FilterInfo>) -> Result<Vec<types::FilterInfo>, String> {
    filter_infos(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> wit_backend::ModelInfo {
        wit_backend::ModelInfo {
            id: "m".into(),
            display_name: "M".into(),
            description: String::new(),
            model: "m-2".into(),
            outputs: vec![wit_backend::OutputKind::Video],
            generates_without_input: true,
            effects_outside_host: false,
            max_references: 1,
            max_outputs: 1,
            aspect_ratios: vec!["16:9".into(), "9:16".into()],
            sizes: vec![],
            supports_mask: false,
            supports_seed: false,
            video_audio: true,
            params: vec![],
            input_mime: "image/png".into(),
        }
    }

    #[test]
    fn typed_fields_come_through() {
        let i = model_info(info()).unwrap();
        assert_eq!(i.outputs, vec![OutputKind::Video]);
        assert_eq!((i.generates_without_input, i.effects_outside_host, i.video_audio), (Some(true), false, true));
    }

    #[test]
    fn bad_guest_data_is_refused() {
        assert!(model_info(wit_backend::ModelInfo { outputs: vec![], ..info() }).unwrap_err().contains("no output kind"));
        assert!(model_info(wit_backend::ModelInfo { aspect_ratios: vec!["1:1".into(), "1:1".into()], ..info() }).unwrap_err().contains("twice"));
        let bad = wit_types::ParamSpec {
            name: "n".into(),
            description: String::new(),
            type_: wit_types::ParamType::Integer(wit_types::IntegerSpec { default: Some(20), min: Some(1), max: Some(10) }),
            required: false,
        };
        assert!(model_info(wit_backend::ModelInfo { params: vec![bad], ..info() }).unwrap_err().contains("outside its bounds"));
        // An artifact naming a stream the plugin never opened.
        let mut streams = Streams::default();
        let a = wit_backend::Artifact { mime: "video/mp4".into(), body: wit_backend::Body::Stream(7), seed: None, has_audio: false, notes: vec![] };
        let usage = wit_types::Usage { images: vec![], input_tokens: None, output_tokens: None, video_seconds: None };
        let o = wit_backend::Outcome { artifacts: vec![a], failures: vec![], usage };
        assert!(outcome(o, &mut streams).unwrap_err().contains("stream 7"));
    }
}
