//! A contract-0.1.0 plugin written against `atelier_sdk::v0_1` still compiles and runs natively:
//! the register macros implement the 0.1 guest traits (the wasm exports are compiled for wasm32).

use atelier_sdk::v0_1::*;

#[derive(Default)]
struct Echo;

impl Model for Echo {
    fn describe(&self) -> ModelInfo {
        ModelInfo { params: vec![ParamSpec::integer("max_side", "Longest side", 8, 8192)], ..ModelInfo::image_edit("echo", "Echo") }
    }
    fn prepare(&self, _prompt: &str, _refs: &[(u32, u32)], _mask: bool, _n: u32, params: &[Param]) -> Result<InputPlan, Error> {
        Ok(InputPlan { exact_size: None, max_side: params.integer("max_side").map(|s| s as u32) })
    }
    fn submit(&self, req: Request) -> Result<Submission, Error> {
        Ok(Submission::Done(Outcome::images(req.references)))
    }
}
register_model!(Echo);

#[derive(Default)]
struct Negative;

impl Filter for Negative {
    fn describe(&self) -> Vec<FilterInfo> {
        vec![FilterInfo { name: "negative".into(), description: "Negative".into(), params: vec![] }]
    }
    fn apply_step(&self, mut image: Image, _step: &Step) -> Result<Image, Error> {
        image.pixels.iter_mut().for_each(|p| *p = 255 - *p);
        Ok(image)
    }
}
register_filter!(Negative);

#[test]
fn a_0_1_model_and_filter_go_through_the_0_1_glue() {
    use atelier_sdk::v0_1::__glue::{FilterGuest, ModelGuest};
    let info = <__AtelierModelExport as ModelGuest>::describe();
    assert_eq!((info.id.as_str(), info.task), ("echo", Task::ImageEdit));
    let plan = <__AtelierModelExport as ModelGuest>::prepare("p".into(), vec![(100, 50)], false, 1, vec![Param::new("max_side", 64i64)]).unwrap();
    assert_eq!(plan.max_side, Some(64));
    let req = Request { prompt: "p".into(), references: vec![Media { mime: "image/png".into(), bytes: vec![1] }], mask: None, n: 1, seed: None, params: vec![] };
    assert!(matches!(<__AtelierModelExport as ModelGuest>::submit(req), Ok(Submission::Done(o)) if o.artifacts.len() == 1));
    let out = <__AtelierFilterExport as FilterGuest>::apply(Image { width: 1, height: 1, pixels: vec![0, 10, 255, 255] }, vec![Step { name: "negative".into(), params: vec![] }]).unwrap();
    assert_eq!(out.pixels, [255, 245, 0, 0]);
    assert!(matches!(Error::from_status(&Service { name: "X", plugin_id: "echo", secret: "K" }, 503, None, None, "busy"), Error::Unavailable(_)));
}
