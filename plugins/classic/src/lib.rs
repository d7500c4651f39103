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

use atelier_sdk::v0_1::*;

/// The model.
#[derive(Default)]
struct Classic;

impl Model for Classic {
    fn describe(&self) -> ModelInfo {
        ModelInfo {
            description: request::description(),
            task: Task::ImageEdit,
            model: "classic-operators".into(),
            max_references: request::MAX_REFERENCES,
            max_outputs: request::MAX_OUTPUTS,
            supports_mask: true,
            supports_seed: true,
            params: settings::specs(),
            ..ModelInfo::image_edit("classic", "Classic operators (offline, no neural network)")
        }
    }

    fn prepare(&self, prompt: &str, references: &[(u32, u32)], has_mask: bool, n: u32, params: &[Param]) -> Result<InputPlan, Error> {
        request::check(prompt, references, has_mask, n, params, &request::can_allocate).map_err(Error::InvalidInput)?;
        Ok(InputPlan { exact_size: None, max_side: request::max_side(has_mask) })
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

register_model!(Classic);
