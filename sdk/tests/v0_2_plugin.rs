//! A contract-0.2.0 plugin against the crate root: `prepare` takes the draft record, the typed
//! output/aspect/size reach `submit`, and `poll` reports partial results.

use atelier_sdk::*;

#[derive(Default)]
struct Batch;

impl Model for Batch {
    fn describe(&self) -> ModelInfo {
        ModelInfo::new("batch", "Batch")
            .aspect_ratios(&["1:1", "16:9"])
            .sizes(&["1K", "2K"])
            .max_outputs(4)
            .generates_without_input(true)
            .param(ParamSpec::choice("style", "Look", &["plain", "bold"]).default("plain"))
    }
    fn prepare(&self, draft: &Draft) -> Result<InputPlan, Error> {
        match draft.size.as_deref() {
            Some("2K") => Ok(InputPlan::max_side(2048)),
            _ => Ok(InputPlan::max_side(1024)),
        }
    }
    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let token = format!("{}|{}|{}", req.aspect.unwrap_or_default(), req.size.unwrap_or_default(), req.n);
        Ok(Submission::Pending(Pending { token, retry_after_ms: 10 }))
    }
    fn poll(&self, token: &str) -> Result<Status, Error> {
        let first = Artifact::inline("image/png", vec![0x89]).note("token", token);
        Ok(Status::Running(Progress::running("running", 500).fraction(0.5).partial(Partial::ready(0, first))))
    }
}
register_model!(Batch);

#[test]
fn a_0_2_model_sees_the_draft_the_typed_fields_and_reports_partials() {
    use atelier_sdk::__glue::ModelGuest;
    let info = <__AtelierModelExport as ModelGuest>::describe();
    assert_eq!((info.outputs.as_slice(), info.sizes.len(), info.effects_outside_host), (&[OutputKind::Image][..], 2, true));
    let draft = Draft {
        prompt: "p".into(),
        references: vec![],
        has_mask: false,
        n: 2,
        output: OutputKind::Image,
        aspect: Some("16:9".into()),
        size: Some("2K".into()),
        params: vec![Param::new("style", "bold")],
    };
    assert_eq!(<__AtelierModelExport as ModelGuest>::prepare(draft).unwrap().max_side, Some(2048));
    let req = Request {
        prompt: "p".into(),
        references: vec![],
        mask: None,
        n: 2,
        seed: None,
        output: OutputKind::Image,
        aspect: Some("16:9".into()),
        size: Some("2K".into()),
        params: vec![],
    };
    let Ok(Submission::Pending(p)) = <__AtelierModelExport as ModelGuest>::submit(req) else { panic!("pending") };
    assert_eq!(p.token, "16:9|2K|2");
    match <__AtelierModelExport as ModelGuest>::poll(p.token).unwrap() {
        Status::Running(progress) => {
            assert_eq!((progress.fraction, progress.partials.len()), (Some(0.5), 1));
            let partial = &progress.partials[0];
            assert!(!partial.preview && partial.index == 0 && !partial.artifact.has_audio);
            assert_eq!(partial.artifact.notes, [("token".to_string(), "16:9|2K|2".to_string())]);
        }
        other => panic!("{other:?}"),
    }
}
