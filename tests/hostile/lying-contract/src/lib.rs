//! Test plugin built against a WIT that is not the real contract 0.2.0: a copy of the 0.1.0 WIT
//! relabelled `atelier:plugin@0.2.0` (under `other-contract/wit/`), with bindings generated directly
//! rather than through the SDK. It exports `backend@0.2.0` in a shape contract 0.2.0 does not define.
//! Its manifest claims `contract = "0.1.0"`, so only the check of the component's exports can catch it.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({ path: "../other-contract/wit", world: "model" });

use exports::atelier::plugin::backend::{Guest, InputPlan, ModelInfo, Request, Status, Submission};
use atelier::plugin::types::{Error, Param};

struct Other;

impl Guest for Other {
    fn describe() -> ModelInfo {
        ModelInfo {
            id: "lying-contract".into(),
            display_name: "Other contract".into(),
            description: String::new(),
            model: "other".into(),
            task: exports::atelier::plugin::backend::Task::ImageEdit,
            max_references: 1,
            max_outputs: 1,
            aspect_ratios: vec![],
            sizes: vec![],
            supports_mask: false,
            supports_seed: false,
            supports_audio: false,
            params: vec![],
            input_mime: "image/png".into(),
        }
    }
    fn prepare(_: String, _: Vec<(u32, u32)>, _: bool, _: u32, _: Vec<Param>) -> Result<InputPlan, Error> {
        Ok(InputPlan { exact_size: None, max_side: None })
    }
    fn submit(_req: Request) -> Result<Submission, Error> {
        Err(Error::Internal("a 0.2.0 plugin must never be called by a 0.1.0 host".into()))
    }
    fn poll(_token: String) -> Result<Status, Error> {
        Err(Error::Internal("no jobs".into()))
    }
    fn cancel(_token: String) -> Result<(), Error> {
        Ok(())
    }
}

// Exported only for wasm: the export names are not valid symbols in a native link.
#[cfg(target_arch = "wasm32")]
export!(Other);
