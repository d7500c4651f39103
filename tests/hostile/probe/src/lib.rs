//! Test plugin: report what a plugin can reach through the standard library instead of the
//! contract's imports. Each finding is a note on the artifact: `env_count`, `args_count`,
//! `read_dir_root`, `read_file`, `cwd`, `system_time_ms`, `instant_elapsed_ns`, `tcp_connect`,
//! and for comparison `clock_wall_ms` from the `clock` import.

use atelier_sdk::*;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Probe;

impl Model for Probe {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("probe", "Probe")
    }

    fn submit(&self, _req: Request) -> Result<Submission, Error> {
        let mut notes: Vec<(String, String)> = vec![];
        let mut note = |k: &str, v: String| notes.push((k.to_string(), v));
        note("env_count", std::env::vars_os().count().to_string());
        note("args_count", std::env::args_os().count().to_string());
        note("read_dir_root", match std::fs::read_dir("/") {
            Ok(d) => format!("ok: {} entries", d.count()),
            Err(e) => format!("error: {e}"),
        });
        note("read_file", match std::fs::read("/etc/passwd") {
            Ok(b) => format!("ok: {} bytes", b.len()),
            Err(e) => format!("error: {e}"),
        });
        note("cwd", match std::env::current_dir() {
            Ok(p) => format!("ok: {}", p.display()),
            Err(e) => format!("error: {e}"),
        });
        note("system_time_ms", match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis().to_string(),
            Err(e) => format!("error: {e}"),
        });
        let start = Instant::now();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        note("instant_elapsed_ns", start.elapsed().as_nanos().to_string());
        note("busy_result", x.to_string());
        note("tcp_connect", match std::net::TcpStream::connect("127.0.0.1:80") {
            Ok(_) => "ok: connected".to_string(),
            Err(e) => format!("error: {e}"),
        });
        note("clock_wall_ms", clock::wall_ms().to_string());
        let mut a = Artifact::inline("text/plain", b"probe report".to_vec());
        a.notes = notes;
        Ok(Submission::Done(Outcome::new(vec![a])))
    }
}

register_model!(Probe);
