//! The smallest model plugin: it hands the first reference back unchanged, with a note.
//! Shown in the README as the template for new plugins.

use atelier_sdk::*;

#[derive(Default)]
struct Hello;

impl Model for Hello {
    fn describe(&self) -> ModelInfo {
        ModelInfo::new("hello", "Hello")
            .description("Returns the first image unchanged; a template for plugin authors.")
            .param(ParamSpec::text("greeting", "Stored in the output's notes").default("hello"))
            // It needs an image to echo, and reaches nothing outside the host.
            .generates_without_input(false)
            .effects_outside_host(false)
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let input = req.references.into_iter().next().ok_or(Error::invalid("give one image"))?;
        let (w, h) = sniff::dimensions(&input.bytes).ok_or(Error::invalid("not an image"))?;
        log::info(&format!("echoing a {w}x{h} image"));
        let greeting = req.params.text("greeting").unwrap_or_default().to_string();
        let mut out = Artifact::inline(&input.mime, input.bytes);
        out.notes.push(("greeting".into(), greeting));
        Ok(Submission::Done(Outcome { usage: Usage::images(w, h, 1), ..Outcome::new(vec![out]) }))
    }
}

register_model!(Hello);
