//! `shmq`: create, feed, read and inspect shmq queues.

mod bench;
mod cli;
mod cmd;
mod parse;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cmd::run(args) {
        eprintln!("shmq: {e}");
        std::process::exit(1);
    }
}
