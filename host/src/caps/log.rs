//! The `log` import, into `tracing`, tagged with plugin and job: each line cut to a length,
//! its control characters escaped, and the plugin's lines rate-limited.

use crate::manifest::Limits;
use crate::text::printable;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Severity as the contract names it.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_LEN: usize = 4096;

/// Whether a line at `level` would be written at all (the operator's log filter): lines nobody
/// sees cost nothing and do not count against the plugin's rate.
pub fn enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
    }
}

/// Write a plugin's message: cut to [`MAX_LEN`] bytes, one line, no terminal controls.
pub fn write(plugin: &str, job: &str, level: Level, message: &str) {
    let message = if message.len() > MAX_LEN { &message[..message.floor_char_boundary(MAX_LEN)] } else { message };
    let message = printable(message);
    match level {
        Level::Trace => tracing::trace!(target: "plugin", plugin, job, "{message}"),
        Level::Debug => tracing::debug!(target: "plugin", plugin, job, "{message}"),
        Level::Info => tracing::info!(target: "plugin", plugin, job, "{message}"),
        Level::Warn => tracing::warn!(target: "plugin", plugin, job, "{message}"),
        Level::Error => tracing::error!(target: "plugin", plugin, job, "{message}"),
    }
}

/// Say, once, how many of a call's lines were dropped for going over `log_lines_per_s`, and
/// the line that raises it.
pub fn report_dropped(plugin: &str, job: &str, dropped: u64, limits: &Limits, config_path: &str) {
    let what = format!("wrote {dropped} log line(s) too fast, which were dropped");
    let message = limits.over_message(plugin, config_path, "log_lines_per_s", &what);
    // The fields go on a line of their own, so the config line can be copied as it is.
    tracing::warn!(target: "plugin", plugin, job, "{message}\n");
}

/// A plugin's log allowance, shared by every call into it: a token bucket refilled at
/// `log_lines_per_s` lines a second and holding twice that, so short bursts pass whole.
#[derive(Debug, Default)]
pub struct LogRate {
    bucket: Mutex<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Lines that may be written now.
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before the first line (a full bucket).
    last: Option<Instant>,
}

impl LogRate {
    /// Take one line's allowance at `per_s` lines a second; `false` when the line must be dropped.
    pub fn take(&self, per_s: u32) -> bool {
        self.take_at(per_s, Instant::now())
    }

    fn take_at(&self, per_s: u32, now: Instant) -> bool {
        // Held for a few arithmetic operations, never across an await.
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = f64::from(per_s.max(1));
        let burst = 2.0 * rate;
        let tokens = match b.last {
            None => burst,
            Some(t) => (b.tokens + now.saturating_duration_since(t).as_secs_f64() * rate).min(burst),
        };
        b.last = Some(now);
        let allowed = tokens >= 1.0;
        b.tokens = if allowed { tokens - 1.0 } else { tokens };
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_the_rate_refills() {
        let r = LogRate::default();
        let t0 = Instant::now();
        let passed = (0..1000).filter(|_| r.take_at(10, t0)).count();
        assert_eq!(passed, 20, "a burst of 2 × 10 lines");
        assert!(!r.take_at(10, t0 + Duration::from_millis(50)), "half a line's allowance is not a line");
        assert!(r.take_at(10, t0 + Duration::from_millis(100)), "one line per 100 ms at 10/s");
        assert!(!r.take_at(10, t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..1000).filter(|_| r.take_at(10, later)).count(), 20);
    }

    #[test]
    fn a_steady_flood_gets_the_rate_and_no_more() {
        let r = LogRate::default();
        let t0 = Instant::now();
        // 100 lines per ms for 3 s at 50 lines/s: the burst (100) plus 3 s × 50.
        let passed = (0..300_000u64).filter(|i| r.take_at(50, t0 + Duration::from_micros(i * 10))).count();
        assert!((249..=251).contains(&passed), "{passed}");
    }
}

impl crate::wasm::store::HostState {
    /// `log.write` from the guest: within the plugin's rate, what was dropped said first.
    fn guest_log(&mut self, level: Level, message: &str) {
        if !enabled(level) {
            return;
        }
        if !self.plugin.log_rate.take(self.plugin.limits.log_lines_per_s) {
            self.log_dropped += 1;
            return;
        }
        // Logging resumes: first say what was dropped before this line.
        self.report_dropped_logs();
        write(&self.plugin.id, &self.job, level, message);
    }
}

/// The log interface of each contract version, as the host's level.
macro_rules! log_host {
    ($v:ident) => {
        impl crate::wasm::$v::imports::log::Host for crate::wasm::store::HostState {
            async fn write(&mut self, level: crate::wasm::$v::imports::log::Level, message: String) {
                use crate::wasm::$v::imports::log::Level as G;
                let level = match level {
                    G::Trace => Level::Trace,
                    G::Debug => Level::Debug,
                    G::Info => Level::Info,
                    G::Warn => Level::Warn,
                    G::Error => Level::Error,
                };
                self.guest_log(level, &message);
            }
        }
    };
}
log_host!(since_v0_1);
log_host!(since_v0_2);

/// Links contract 0.1's `log` import.
pub(crate) fn add_to_linker_v0_1(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_1::imports::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

/// Links contract 0.2's `log` import.
pub(crate) fn add_to_linker_v0_2(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_2::imports::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}
