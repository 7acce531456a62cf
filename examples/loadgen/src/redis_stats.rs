//! Redis's command counts, read from `INFO commandstats` before and after a measured
//! phase (over a plain TCP connection, RESP by hand: one request, one bulk reply), so a
//! run against nodes of a cluster reports the Redis commands each message cost.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// Calls per command (`evalsha`, `spublish`, …), less this module's own `info`, and
/// Redis's CPU time.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedisCounts(BTreeMap<String, u64>, u64);

impl RedisCounts {
    /// Reads the counts from the Redis at `addr` (a quick blocking read on loopback).
    pub(crate) fn read(addr: SocketAddr) -> anyhow::Result<RedisCounts> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("connecting to Redis at {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream);
        let mut counts = RedisCounts::parse(&info(&mut reader, "commandstats")?);
        counts.1 = cpu_us(&info(&mut reader, "cpu")?);
        Ok(counts)
    }

    /// Redis's CPU time (user + system, main thread and children), in microseconds.
    pub(crate) fn cpu_us(&self) -> u64 {
        self.1
    }

    /// `cmdstat_<name>:calls=<n>,…` lines.
    fn parse(text: &str) -> RedisCounts {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse().ok());
            if let Some(calls) = calls
                && name != "info"
            {
                counts.insert(name.to_owned(), calls);
            }
        }
        RedisCounts(counts, 0)
    }

    /// What was called between `before` and `self`, per command, and the CPU time.
    pub(crate) fn since(&self, before: &RedisCounts) -> RedisCounts {
        RedisCounts(
            self.0
                .iter()
                .map(|(name, &n)| {
                    (
                        name.clone(),
                        n.saturating_sub(*before.0.get(name).unwrap_or(&0)),
                    )
                })
                .filter(|&(_, n)| n > 0)
                .collect(),
            self.1.saturating_sub(before.1),
        )
    }

    /// All calls.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The calls of the commands named.
    pub(crate) fn of(&self, names: &[&str]) -> u64 {
        names.iter().filter_map(|n| self.0.get(*n)).sum()
    }

    /// "name calls" for each command, most called first.
    pub(crate) fn listing(&self) -> Vec<String> {
        let mut all: Vec<(&String, &u64)> = self.0.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1));
        all.into_iter().map(|(n, c)| format!("{n} {c}")).collect()
    }
}

/// `INFO <section>` on `reader`'s connection: the bulk reply's text.
fn info(reader: &mut BufReader<TcpStream>, section: &str) -> anyhow::Result<String> {
    reader
        .get_mut()
        .write_all(format!("INFO {section}\r\n").as_bytes())?;
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("not a bulk reply: {header:?}"))?;
    // The text and its CRLF.
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body)?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `used_cpu_sys`, `used_cpu_user` and their `_children` (seconds), summed, in µs.
fn cpu_us(text: &str) -> u64 {
    let seconds: f64 = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("used_cpu_") && !k.contains("main_thread"))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum();
    (seconds * 1e6) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts_command_counts() {
        let before = RedisCounts::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\n\
             cmdstat_info:calls=3,usec=1\r\n",
        );
        let after = RedisCounts::parse(
            "cmdstat_evalsha:calls=25,usec=9\r\ncmdstat_spublish:calls=4,usec=2\r\n\
             cmdstat_info:calls=4,usec=1\r\n",
        );
        let used = after.since(&before);
        assert_eq!(used.total(), 19);
        assert_eq!(used.of(&["publish", "spublish"]), 4);
        assert_eq!(used.listing(), ["evalsha 15", "spublish 4"]);
        assert_eq!(
            cpu_us("used_cpu_sys:1.5\r\nused_cpu_user:2.25\r\nused_cpu_sys_main_thread:1.0\r\n"),
            3_750_000
        );
    }
}
