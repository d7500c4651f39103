//! `atelier worker` processes for the scale-out tests.

use super::Env;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// A worker process, its stderr echoed with its name, SIGKILLed when the test ends however it ends.
pub struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Worker {
    /// `atelier worker ARGS…` under `env`.
    pub fn start<A: AsRef<std::ffi::OsStr>>(env: &Env, name: &str, args: impl IntoIterator<Item = A>) -> Worker {
        let mut child = env.cmd().arg("worker").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("atelier worker starts");
        let stderr = child.stderr.take().unwrap();
        let name = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
        Worker(child)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Wait for it to exit by itself (after a SIGTERM).
    pub fn wait(&mut self) {
        self.0.wait().unwrap();
    }

    /// SIGKILL it now.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}
