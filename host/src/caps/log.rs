//! The `log` import, into `tracing`, tagged with plugin and job.

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

/// Write a plugin's message.
pub fn write(plugin: &str, job: &str, level: Level, message: &str) {
    let message = if message.len() > MAX_LEN { &message[..message.floor_char_boundary(MAX_LEN)] } else { message };
    match level {
        Level::Trace => tracing::trace!(target: "plugin", plugin, job, "{message}"),
        Level::Debug => tracing::debug!(target: "plugin", plugin, job, "{message}"),
        Level::Info => tracing::info!(target: "plugin", plugin, job, "{message}"),
        Level::Warn => tracing::warn!(target: "plugin", plugin, job, "{message}"),
        Level::Error => tracing::error!(target: "plugin", plugin, job, "{message}"),
    }
}
