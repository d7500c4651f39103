//! Hostile test plugin: every export panics (`describe`, `prepare`, `poll`, `cancel`) or hits
//! `unreachable` (`submit`). The host must report a crash and keep working.

use atelier_sdk::*;

#[derive(Default)]
struct Trap;

impl Model for Trap {
    fn describe(&self) -> ModelInfo {
        panic!("trap plugin: describe always panics")
    }

    fn prepare(&self, _: &str, _: &[(u32, u32)], _: bool, _: u32, _: &[Param]) -> Result<InputPlan, Error> {
        panic!("trap plugin: prepare always panics")
    }

    fn submit(&self, _req: Request) -> Result<Submission, Error> {
        // A raw `unreachable` instruction rather than a panic, to cover both ways of dying.
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        unreachable!()
    }

    fn poll(&self, _token: &str) -> Result<Status, Error> {
        panic!("trap plugin: poll always panics")
    }

    fn cancel(&self, _token: &str) -> Result<(), Error> {
        panic!("trap plugin: cancel always panics")
    }
}

register_model!(Trap);
