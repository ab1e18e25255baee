//! `shmq`: create, feed, read and inspect shmq queues.

mod cli;
mod cmd;
mod parse;

use clap::Parser;

fn main() {
    // A usage error prints as clap formats it: what is wrong, the usage line,
    // a suggestion for a misspelt command or option (exit status 2).
    let args = cli::Cli::parse();
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
