//! Hostile test plugin: `submit` allocates (and touches) memory in 1 MiB blocks and keeps them all,
//! until the host refuses to grow its linear memory. The host must report the `memory_mb` limit.

use atelier_sdk::*;

#[derive(Default)]
struct MemBomb;

impl Model for MemBomb {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("membomb", "Memory bomb")
    }

    fn submit(&self, _req: Request) -> Result<Submission, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every block so no allocator trick can avoid committing it.
            hoard.push(std::hint::black_box(vec![0xA5u8; 1 << 20]));
        }
    }
}

register_model!(MemBomb);
