//! `classic`: an offline "model" made of classical image operators — no neural network. It reads
//! style words from the prompt (watercolor, oil painting, pencil sketch, ...), applies real operators
//! (guided filter, Kuwahara, dodge blend, median cut, Telea inpainting, ...), optionally inside a
//! feathered mask, and can turn the first reference into a Ken Burns animated GIF.
//!
//! This file holds only the contract glue; the work is in the modules below, all pure functions
//! over [`raster::Raster`] buffers so they are tested natively.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
// Pixel code walks several parallel planes by channel index; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

pub mod edit;
pub mod inpaint;
pub mod mask;
pub mod ops;
pub mod patchmatch;
pub mod prompt;
pub mod raster;
pub mod request;
pub mod settings;
pub mod video;

use atelier_sdk::*;

/// The model.
#[derive(Default)]
struct Classic;

impl Model for Classic {
    fn describe(&self) -> ModelInfo {
        ModelInfo::new("classic", "Classic operators (offline, no neural network)")
            .description(&request::description())
            .model("classic-operators")
            // image = styled PNGs; video = a Ken Burns animated GIF of the first reference.
            .outputs(&[OutputKind::Image, OutputKind::Video])
            .max_references(request::MAX_REFERENCES)
            .max_outputs(request::MAX_OUTPUTS)
            .supports_mask(true)
            .supports_seed(true)
            // It edits the first reference; it reaches nothing outside the host, so a cut-off job
            // can be re-run.
            .generates_without_input(false)
            .effects_outside_host(false)
            .params(settings::specs())
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        request::check(&d.prompt, &d.references, d.has_mask, d.n, output(d.output), &d.params, &request::can_allocate)
            .map_err(Error::InvalidInput)?;
        Ok(InputPlan { exact_size: None, max_side: request::max_side(d.has_mask) })
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let (base_seed, seed_source) = match req.seed {
            Some(s) => (s, "request"),
            None => (request::seed_from_clock(clock::wall_ms()), "clock"),
        };
        let masked = req.mask.is_some();
        let job = request::Job {
            prompt: &req.prompt,
            first: req.references.first().map(|m| m.bytes.as_slice()),
            mask: req.mask.as_ref().map(|m| m.bytes.as_slice()),
            n: req.n,
            output: output(req.output),
            base_seed,
            params: &req.params,
        };
        log::debug(&format!("classic: {} output(s), base seed {base_seed} ({seed_source}), mask: {masked}", req.n));
        let done = request::run(&job).map_err(Error::InvalidInput)?;
        let artifacts = done
            .outputs
            .into_iter()
            .map(|o| {
                let mut a = Artifact::inline(done.mime, o.bytes);
                a.seed = Some(o.seed);
                a.notes = vec![
                    ("operators".into(), done.operators.clone()),
                    ("seed_source".into(), seed_source.into()),
                    ("engine".into(), "classical operators, no neural network".into()),
                ];
                a
            })
            .collect::<Vec<_>>();
        let count = artifacts.len() as u32;
        let usage = match done.video_seconds {
            Some(s) => Usage { video_seconds: Some(s * count as f32), ..Usage::none() },
            None => Usage::images(done.width, done.height, count),
        };
        Ok(Submission::Done(Outcome { usage, ..Outcome::new(artifacts) }))
    }
}

/// The contract's output kind as the operators' own.
fn output(kind: OutputKind) -> settings::Output {
    match kind {
        OutputKind::Image => settings::Output::Image,
        OutputKind::Video => settings::Output::Video,
    }
}

register_model!(Classic);
