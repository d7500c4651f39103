//! Hostile test plugin: `submit` never returns. The host must stop it at the deadline
//! (`call_timeout_s`) and keep serving other jobs.

use atelier_sdk::v0_1::*;

#[derive(Default)]
struct Spin;

impl Model for Spin {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("spin", "Spin")
    }

    fn submit(&self, _req: Request) -> Result<Submission, Error> {
        // black_box keeps the optimiser from proving anything about the loop.
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

register_model!(Spin);
