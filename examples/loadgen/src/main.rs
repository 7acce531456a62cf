//! `loadgen`: a load generator that measures our chat server, the raw WebSocket
//! broadcast ceiling and socket.io, each running as its own process, from outside over
//! loopback. One scenario per run: a table on stderr, one JSON line on stdout.
//!
//! See README.md beside Cargo.toml.

mod ceiling_client;
mod cli;
mod clock;
mod conn;
mod fastrx;
mod frame;
mod handshake;
mod im;
mod net;
mod payload;
mod progress;
mod receiver;
mod redis_stats;
mod report;
mod rss;
mod scenarios;
mod scrape;
mod sender;
mod socketio;
mod stats;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    clock::init();
    let cli = cli::Cli::parse();
    // One thread: the script pins the generator to one core, where a work-stealing pool
    // would only add overhead.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scenarios::run(&cli.scenario)) {
        Ok(Some(report)) => {
            report.print();
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
