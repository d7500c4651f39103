//! `config`: non-secret settings (manifest defaults overridden by the operator), per contract version.

use crate::wasm::store::HostState;
use crate::wasm::{since_v0_1, since_v0_2};
use wasmtime::component::{HasSelf, Linker};

impl HostState {
    /// `config.get`: secrets never reach this map.
    fn config_get(&self, key: &str) -> Option<String> {
        self.plugin.config.get(key).cloned()
    }
}

impl since_v0_1::imports::config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.config_get(&key)
    }
}

impl since_v0_2::imports::config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.config_get(&key)
    }
}

/// Links contract 0.1's `config` import.
pub(crate) fn add_to_linker_v0_1(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    since_v0_1::imports::config::add_to_linker::<_, HasSelf<_>>(l, |s| s)
}

/// Links contract 0.2's `config` import.
pub(crate) fn add_to_linker_v0_2(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    since_v0_2::imports::config::add_to_linker::<_, HasSelf<_>>(l, |s| s)
}
