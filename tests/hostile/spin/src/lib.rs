//! Hostile test plugin: `submit` never returns. The host must stop it at the deadline
//! (`call_timeout_s`) and keep serving other jobs.
//!
//! Kept on the contract-0.1.0 API (`atelier_sdk::v0_1`, manifest contract 0.1.0) so the build proves
//! SDK 0.2 still compiles 0.1 plugins, and the host runs a 0.1 component beside 0.2 ones.

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
