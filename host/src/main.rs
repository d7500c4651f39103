//! The `atelier` command.

mod cli;

fn main() -> std::process::ExitCode {
    // A closed stdout (`atelier filters | head -1`) ends the process quietly, like any Unix tool,
    // instead of a panic in `println!` (Rust ignores SIGPIPE by default). `serve` keeps ignoring
    // it: a server must outlive a client that hangs up.
    #[cfg(unix)]
    if !std::env::args_os().skip(1).any(|a| a == "serve") {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli::main()
}
