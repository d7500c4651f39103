//! The `clock` import: the only time a plugin sees.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the host started (monotonic).
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The WASI clocks a guest's standard library may import read as zero: a plugin gets time only
/// through the `clock` import, which the host can account for.
pub struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl crate::wasm::since_v0_1::imports::clock::Host for crate::wasm::store::HostState {
    async fn monotonic_ms(&mut self) -> u64 {
        monotonic_ms()
    }
    async fn wall_ms(&mut self) -> u64 {
        wall_ms()
    }
}

impl crate::wasm::since_v0_2::imports::clock::Host for crate::wasm::store::HostState {
    async fn monotonic_ms(&mut self) -> u64 {
        monotonic_ms()
    }
    async fn wall_ms(&mut self) -> u64 {
        wall_ms()
    }
}

/// Links contract 0.1's `clock` import.
pub(crate) fn add_to_linker_v0_1(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_1::imports::clock::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

/// Links contract 0.2's `clock` import.
pub(crate) fn add_to_linker_v0_2(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_2::imports::clock::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}
