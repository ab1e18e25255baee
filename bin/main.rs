//! `shmq`: create, feed, read and inspect shmq queues.

mod bench;
mod cli;
mod cmd;
mod parse;

use clap::Parser;

fn main() {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        // --help and --version print as clap formats them; a usage error is one
        // line (clap's first), like every other shmq error.
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("shmq: {}", first.trim_start_matches("error: "));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    // A spill log that hits RLIMIT_FSIZE must fail with EFBIG (back-pressure
    // and an error in `stat`), not kill the process with SIGXFSZ.
    // SAFETY: setting a signal to SIG_IGN installs no handler code; it is done
    // before any thread starts.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if let Err(e) = cmd::run(args) {
        eprintln!("shmq: {e}");
        std::process::exit(1);
    }
}
