//! Load shedding per model: a few requests run at once, a bounded number wait for a turn, and the
//! rest are answered at once with 429 and `Retry-After` (OpenAI's clients retry those by
//! themselves). Work beyond what the model can do therefore waits in the client, not in the
//! server's memory.

use super::errors::{ApiError, ApiResult};
use crate::plugin::Plugin;
use crate::settings::ServerSettings;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests per model that may wait for a turn when `[server] max_queue` is not set.
pub const DEFAULT_MAX_QUEUE: usize = 32;
/// Requests run at once for a model that uses the network, when neither `[server] max_running`
/// nor the plugin's `max_in_flight` says otherwise: such calls mostly wait on the provider.
pub const DEFAULT_NETWORK_RUNNING: usize = 32;
/// The longest `Retry-After` given: the OpenAI SDKs only honour values up to a minute.
const MAX_RETRY_AFTER_S: u64 = 60;

/// Every model's line.
pub(crate) struct Admission {
    max_queue: usize,
    max_running: Option<usize>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// Turns held, all models together; the memory of a burst is handed back when it falls to 0.
    busy: Arc<AtomicUsize>,
}

/// One model's line.
struct Gate {
    /// A place in the line: running or waiting (`running + max_queue` permits).
    places: Arc<Semaphore>,
    /// A turn: running (`running` permits).
    turns: Arc<Semaphore>,
    running: usize,
    /// Smoothed length of a turn, ms (0 until one ended), for `Retry-After`.
    typical_ms: AtomicU64,
}

/// A place in a model's line, taken at once (or refused with 429); [`Place::turn`] waits to run.
pub(crate) struct Place {
    gate: Arc<Gate>,
    busy: Arc<AtomicUsize>,
    place: Option<OwnedSemaphorePermit>,
}

/// The right to run now; dropping it (the request ended, or its client left) lets the next one in.
pub(crate) struct Turn {
    gate: Arc<Gate>,
    busy: Arc<AtomicUsize>,
    started: Instant,
    _turn: OwnedSemaphorePermit,
    _place: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Lines as `[server]` sets them.
    pub(crate) fn new(s: &ServerSettings) -> Admission {
        Admission {
            max_queue: s.max_queue.map_or(DEFAULT_MAX_QUEUE, |n| n as usize),
            max_running: s.max_running.map(|n| n as usize),
            gates: Mutex::default(),
            busy: Arc::default(),
        }
    }

    /// How many of `plugin`'s requests run at once: `[server] max_running`, else as many as there
    /// are CPUs for an offline model (its work is CPU-bound: more would only add latency and
    /// memory), else [`DEFAULT_NETWORK_RUNNING`]; never more than the plugin's `max_in_flight`.
    fn running_for(&self, plugin: &Plugin) -> usize {
        let default = if works_in_process(plugin) { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { DEFAULT_NETWORK_RUNNING };
        let n = self.max_running.unwrap_or(default);
        plugin.limits.max_in_flight.map_or(n, |m| n.min(m as usize)).max(1)
    }

    fn gate(&self, plugin: &Plugin) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap();
        gates
            .entry(plugin.id().to_string())
            .or_insert_with(|| {
                let running = self.running_for(plugin);
                Arc::new(Gate {
                    places: Arc::new(Semaphore::new(running + self.max_queue)),
                    turns: Arc::new(Semaphore::new(running)),
                    running,
                    typical_ms: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// A place in `plugin`'s line, or 429 when `max_queue` requests already wait.
    pub(crate) fn enter(&self, plugin: &Plugin) -> ApiResult<Place> {
        let gate = self.gate(plugin);
        match gate.places.clone().try_acquire_owned() {
            Ok(p) => Ok(Place { gate, busy: self.busy.clone(), place: Some(p) }),
            Err(_) => {
                let wait = gate.retry_after_ms(self.max_queue);
                Err(ApiError::busy(
                    format!(
                        "model `{}` is busy on this server: {} request(s) running and {} waiting, which is all it takes; retry in {:.1} s (OpenAI clients do so by themselves). The operator can raise [server] max_queue",
                        plugin.id(),
                        gate.running,
                        self.max_queue,
                        wait as f64 / 1000.0
                    ),
                    wait,
                ))
            }
        }
    }

    /// A place for work accepted before a restart (a resumed video): it is never refused.
    pub(crate) fn enter_resumed(&self, plugin: &Plugin) -> Place {
        Place { gate: self.gate(plugin), busy: self.busy.clone(), place: None }
    }

    /// (model, running now, waiting now), for `/metrics`.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, (usize, usize)> {
        let gates = self.gates.lock().unwrap();
        gates
            .iter()
            .map(|(id, g)| {
                let running = g.running - g.turns.available_permits();
                let placed = g.running + self.max_queue - g.places.available_permits();
                (id.clone(), (running, placed.saturating_sub(running)))
            })
            .collect()
    }
}

/// Whether all of a model's work is done in this process: it may reach no host at all (by its
/// manifest or the operator's grants), like `classic`.
pub(crate) fn works_in_process(plugin: &Plugin) -> bool {
    plugin.reaches_no_host()
}

impl Gate {
    /// When to come back, ms: once the next place is likely free (a turn's typical length over the
    /// turns running at once), plus a random share of the time the whole line takes to move on,
    /// so the requests refused together do not all come back together and be refused again.
    fn retry_after_ms(&self, max_queue: usize) -> u64 {
        let turn = match self.typical_ms.load(Ordering::Relaxed) {
            0 => 1000,
            ms => ms.max(50),
        };
        let next = turn / self.running as u64;
        let line = turn * (self.running + max_queue) as u64 / self.running as u64;
        (next + (rand::random::<f64>() * line as f64) as u64).clamp(100, MAX_RETRY_AFTER_S * 1000)
    }
}

impl Place {
    /// Wait for a turn to run.
    pub(crate) async fn turn(self) -> Turn {
        let turn = self.gate.turns.clone().acquire_owned().await.expect("the semaphore is never closed");
        self.busy.fetch_add(1, Ordering::SeqCst);
        Turn { gate: self.gate, busy: self.busy, started: Instant::now(), _turn: turn, _place: self.place }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let old = self.gate.typical_ms.load(Ordering::Relaxed);
        self.gate.typical_ms.store(if old == 0 { ms } else { (old * 3 + ms) / 4 }, Ordering::Relaxed);
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            give_back_memory();
        }
    }
}

/// After a burst, hand freed heap back to the system. glibc keeps freed memory in its arenas (one
/// per thread that allocated, many after a burst over tokio's blocking pool), so image-sized
/// buffers freed long ago still count in RSS until `malloc_trim` releases them.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        // Off the async workers: trimming walks every arena.
        h.spawn_blocking(|| {
            // SAFETY: malloc_trim only returns free pages of glibc's own heaps to the kernel.
            unsafe { libc::malloc_trim(0) };
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    #[test]
    fn the_load_settings_are_read_and_checked() {
        let s = Settings::parse("[server]\nheader_timeout_s = 2.5\nbody_timeout_s = 60\nmax_connections = 100\nmax_queue = 0\nmax_running = 3\nkeep_results_h = 0.5\n", None).unwrap().server;
        assert_eq!((s.header_timeout_s, s.body_timeout_s, s.keep_results_h), (Some(2.5), Some(60.0), Some(0.5)));
        assert_eq!((s.max_connections, s.max_queue, s.max_running), (Some(100), Some(0), Some(3)));
        for (line, want) in [
            ("max_queue = -1", "max_queue must be a whole number, at least 0"),
            ("max_running = 0", "max_running must be a whole number, at least 1"),
            ("header_timeout_s = \"10\"", "header_timeout_s must be a positive number (seconds)"),
            ("keep_results_h = 0", "keep_results_h must be a positive number (hours)"),
            ("max_conections = 9", "has no setting `max_conections`; the settings are"),
        ] {
            let e = format!("{:#}", Settings::parse(&format!("[server]\n{line}\n"), None).unwrap_err());
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
