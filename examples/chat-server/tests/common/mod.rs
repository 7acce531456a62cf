//! Starting the server binary in tests.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The server process, killed when the test ends however it ends.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server binary on loopback ports of its choosing, logging warnings only, with
/// `args` besides; returns it and its TCP address (the first line it prints).
#[allow(dead_code)] // Each test crate uses one of the two.
pub(crate) fn start<I, S>(args: I) -> (Server, SocketAddr)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (server, tcp, _) = start_both(args);
    (server, tcp)
}

/// As [`start`], with the HTTP address (the second line) too.
pub(crate) fn start_both<I, S>(args: I) -> (Server, SocketAddr, SocketAddr)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout);
    let mut address = |scheme: &str| -> SocketAddr {
        let mut line = String::new();
        lines
            .read_line(&mut line)
            .expect("the server prints its addresses");
        line.trim()
            .rsplit(scheme)
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} address in {line:?}"))
    };
    let tcp = address("tcp://");
    let http = address("http://");
    (Server(child), tcp, http)
}
