//! Hostile test plugin: `submit` recurses without bound. The host must say the plugin overflowed
//! its stack (not "out of bounds memory access") and keep serving other jobs.
//!
//! Two ways to overflow, chosen by the prompt:
//! - anything but `native`: each frame holds an array on Rust's shadow stack, which lives in linear
//!   memory; running it below address 0 faults near 4 GiB (a memory trap, not a wasm stack trap);
//! - `native`: frames use no linear memory at all, so the engine's own call stack runs out first
//!   (wasmtime's `Trap::StackOverflow`).

use atelier_sdk::*;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Deep;

impl Model for Deep {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("deep", "Deep")
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let depth = if req.prompt == "native" { native_frames(1) } else { shadow_frames(std::hint::black_box(1)) };
        Err(Error::Internal(format!("returned from unbounded recursion at depth {depth}")))
    }
}

/// Recurses forever with a 256-byte array per frame on the shadow stack; black_box keeps each
/// frame's array alive and stops the optimiser from turning the recursion into a loop.
#[allow(unconditional_recursion)]
fn shadow_frames(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 32]);
    shadow_frames(frame[7] + 1) + frame[3]
}

/// Never reached in practice (u64::MAX frames); read atomically so the compiler cannot know that.
static NATIVE_LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Recurses with scalar frames only (no linear memory): the result is combined after the call in
/// two steps, which tail-call and accumulator elimination cannot turn into a loop.
fn native_frames(n: u64) -> u64 {
    if n >= NATIVE_LIMIT.load(Ordering::Relaxed) {
        return n;
    }
    native_frames(n + 1).wrapping_mul(31).wrapping_add(n)
}

register_model!(Deep);
