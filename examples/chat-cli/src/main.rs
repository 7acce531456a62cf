#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - `args`: the command line (clap).
//! - `context`: the global flags, the state file, resuming the saved session.
//! - `state`: the state file itself (session tokens and `sync` cursors, mode 0600).
//! - `connect`: `tcp://` and `ws://` addresses to an [`im_core::client::Client`].
//! - `account`, `contacts`, `groups`, `messages`, `listen`: the commands.
//! - `names`: usernames for the user ids in messages and events.
//! - `output`: text or JSON lines on stdout.
//! - `error`: error codes and exit statuses.

mod account;
mod args;
mod connect;
mod contacts;
mod context;
mod error;
mod groups;
mod listen;
mod messages;
mod names;
mod output;
mod state;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::args::{Args, Command};
use crate::context::Context;
use crate::error::{CliError, EXIT_USAGE};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // Help and version are not failures.
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The library's own warnings (a frame it could not decode, say), on stderr, where
    // they cannot mix with the output scripts parse. RUST_LOG=debug shows more.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // One thread is plenty for one connection (two while `login` runs).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CliError::new("internal", format!("starting tokio: {e}"))),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

async fn run(args: Args) -> Result<(), CliError> {
    let cx = Context::new(args.server, args.state, args.json);
    match args.command {
        Command::Register {
            username,
            password,
            name,
            contact,
            code,
        } => {
            let proof = account::Proof {
                contact: contact.as_deref(),
                code: code.as_deref(),
            };
            account::register(&cx, &username, &password, name.as_deref(), proof).await
        }
        Command::SendCode { contact } => account::send_code(&cx, &contact).await,
        Command::Login {
            username,
            password,
            device,
            code,
        } => account::login(&cx, &username, &password, &device, code.as_deref()).await,
        Command::Whoami => account::whoami(&cx).await,
        Command::Logout => account::logout(&cx).await,
        Command::Friends => contacts::friends(&cx).await,
        Command::AddFriend { username, note } => contacts::add_friend(&cx, &username, &note).await,
        Command::Accept { username } => contacts::accept(&cx, &username).await,
        Command::Requests => contacts::requests(&cx).await,
        Command::Groups => groups::groups(&cx).await,
        Command::CreateGroup { name, members } => groups::create_group(&cx, &name, &members).await,
        Command::Send { to, text } => messages::send(&cx, &to, &text).await,
        Command::History { to, limit, before } => messages::history(&cx, &to, limit, before).await,
        Command::Sync => messages::sync(&cx).await,
        Command::Listen { mark_read } => listen::listen(&cx, mark_read).await,
    }
}
