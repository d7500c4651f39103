//! Hostile test plugin: every export panics (`describe`, `prepare`, `poll`, `cancel`) or hits
//! `unreachable` (`submit`); `poll("recurse")` overflows the stack instead. The host must report a
//! crash and keep working.

use atelier_sdk::*;

#[derive(Default)]
struct Trap;

impl Model for Trap {
    fn describe(&self) -> ModelInfo {
        panic!("trap plugin: describe always panics")
    }

    fn prepare(&self, _: &Draft) -> Result<InputPlan, Error> {
        panic!("trap plugin: prepare always panics")
    }

    fn submit(&self, _req: Request) -> Result<Submission, Error> {
        // A raw `unreachable` instruction rather than a panic, to cover both ways of dying.
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        unreachable!()
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        if token == "recurse" {
            // Unbounded recursion: the wasm stack overflows (a trap, not a host crash).
            return Err(Error::Internal(format!("depth {}", recurse(std::hint::black_box(1)))));
        }
        panic!("trap plugin: poll always panics")
    }

    fn cancel(&self, _token: &str) -> Result<(), Error> {
        panic!("trap plugin: cancel always panics")
    }
}

/// Recurses forever; the array and black_box keep each frame alive and unoptimised.
#[allow(unconditional_recursion, clippy::only_used_in_recursion)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 32]);
    recurse(frame[7] + 1) + frame[3]
}

register_model!(Trap);
