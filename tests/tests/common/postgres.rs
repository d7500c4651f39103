//! A throwaway PostgreSQL cluster from Debian's `postgresql` package, on a free loopback port,
//! stopped (immediately) when the test ends. `initdb` refuses to run as root, so as root the
//! cluster runs as the `postgres` user. Without PostgreSQL: with CI set the test fails with the
//! install command, otherwise it prints SKIPPED.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect();
    dirs.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Start one, or `None` (SKIPPED printed) where PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is not installed; CI installs it in .ci/run: apt-get update && apt-get install -y postgresql");
            }
            println!("SKIPPED: PostgreSQL is not installed (apt-get install -y postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let st = Command::new("chown").args(["postgres:postgres"]).arg(&data).status().unwrap();
            assert!(st.success(), "chown postgres {}: is there a `postgres` user? (apt-get install -y postgresql makes it)", data.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Postgres { dir, bin, port, as_postgres };
        let d = pg.data();
        pg.run(&pg.bin.join("initdb"), &["-D", &d, "-A", "trust", "-U", "postgres", "--no-sync"]);
        let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        pg.run(&pg.bin.join("pg_ctl"), &["-D", &d, "-o", &opts, "-l", &format!("{d}/log"), "-w", "-t", "60", "start"]);
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("pg").join("data").display().to_string()
    }

    fn run(&self, bin: &Path, args: &[&str]) {
        let out = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(bin).args(args).output()
        } else {
            Command::new(bin).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(out.status.success(), "{} {args:?} failed:\n{}{}", bin.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("createdb")).args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name]).output().unwrap();
        assert!(out.status.success(), "createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
        self.url(name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Run SQL with psql; its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.data();
        let bin = self.bin.join("pg_ctl");
        let args = ["-D", d.as_str(), "stop", "-m", "immediate"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&bin).args(args).output()
        } else {
            Command::new(&bin).args(args).output()
        };
    }
}
