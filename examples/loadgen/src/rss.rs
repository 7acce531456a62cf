//! The server's memory and CPU time, read from /proc: VmRSS from `/proc/PID/status`,
//! utime + stime from `/proc/PID/stat` (also the generator's own, `/proc/self/stat`), and
//! a sampler that keeps the peak RSS.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/PID/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on every
/// Linux this runs on).
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// The processes to observe (the nodes of a cluster count together: RSS and CPU time are
/// summed); all reads give `None` without a PID or once they are all gone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proc {
    /// Leaked once per `Proc::new` (a handful per run), so that `Proc` stays `Copy`.
    pids: &'static [u32],
}

impl Proc {
    /// The processes `pids` (none: nothing is read).
    pub(crate) fn new(pids: &[u32]) -> Self {
        Proc {
            pids: Box::leak(pids.to_vec().into_boxed_slice()),
        }
    }

    /// This process (the generator).
    pub(crate) fn this() -> Self {
        Proc::new(&[std::process::id()])
    }

    /// The PIDs.
    pub(crate) fn pids(&self) -> &'static [u32] {
        self.pids
    }

    /// Whether a PID was given.
    pub(crate) fn known(&self) -> bool {
        !self.pids.is_empty()
    }

    /// Sums `read` over the processes that answer; `None` if none does.
    fn sum(&self, read: impl Fn(u32) -> Option<u64>) -> Option<u64> {
        self.pids
            .iter()
            .filter_map(|&pid| read(pid))
            .fold(None, |acc, v| Some(acc.unwrap_or(0) + v))
    }

    /// Resident set size in KiB (VmRSS).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        self.sum(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
    }

    /// CPU time used so far (user + system), in microseconds.
    pub(crate) fn cpu_us(&self) -> Option<u64> {
        self.sum(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name (field 2) is in parentheses and may hold spaces: count
            // fields from the last ')'. utime and stime are fields 14 and 15.
            let rest = &stat[stat.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) * 1_000_000 / CLOCK_TICKS_PER_SEC)
        })
    }

    /// Starts sampling VmRSS every `every`, keeping the peak, until the sampler is dropped.
    pub(crate) fn sample_peak(&self, every: Duration) -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(self.rss_kib().unwrap_or(0)));
        let proc = *self;
        let task = {
            let peak = peak.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if let Some(rss) = proc.rss_kib() {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                }
            })
        };
        PeakSampler { peak, task }
    }
}

/// A running RSS sampler (see [`Proc::sample_peak`]).
#[derive(Debug)]
pub(crate) struct PeakSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakSampler {
    /// The highest RSS seen so far, in KiB (0 without a PID).
    pub(crate) fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Restarts the peak from the current value.
    pub(crate) fn reset(&self, now: u64) {
        self.peak.store(now, Ordering::Relaxed);
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CPU time a process used over a stretch of the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMeter {
    proc: Proc,
    start: Option<u64>,
    started: Instant,
}

/// CPU time used over a stretch of wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuUse {
    /// CPU microseconds (user + system), if known.
    pub(crate) cpu_us: Option<u64>,
    /// Wall microseconds.
    pub(crate) wall_us: u64,
}

impl CpuUse {
    /// CPU time / wall time: 1.0 is one core busy all the time (10 ms ticks: ±0.01 s
    /// of CPU time, so short stretches are rough).
    pub(crate) fn util(&self) -> Option<f64> {
        (self.wall_us > 0).then(|| self.cpu_us.map(|cpu| cpu as f64 / self.wall_us as f64))?
    }
}

impl CpuMeter {
    /// Starts measuring now.
    pub(crate) fn start(proc: Proc) -> Self {
        CpuMeter {
            proc,
            start: proc.cpu_us(),
            started: Instant::now(),
        }
    }

    /// CPU microseconds used since the start.
    pub(crate) fn used_us(&self) -> Option<u64> {
        Some(self.proc.cpu_us()?.saturating_sub(self.start?))
    }

    /// CPU and wall time since the start.
    pub(crate) fn reading(&self) -> CpuUse {
        CpuUse {
            cpu_us: self.used_us(),
            wall_us: self.started.elapsed().as_micros() as u64,
        }
    }
}

/// CPU ticks of one process from `/proc/PID/stat`: its parent, and utime + stime +
/// cutime + cstime (children it has reaped count: a compiler that ran and ended under a
/// `cargo` still shows).
fn proc_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Some((ppid, ticks))
}

/// The CPU use of every process on the machine except some, to tell a run disturbed by
/// others (a compiler, another benchmark) on a machine of two cores.
#[derive(Debug)]
pub(crate) struct OthersMeter {
    exclude: Vec<u32>,
    start: HashMap<u32, u64>,
    started: Instant,
}

impl OthersMeter {
    /// Starts measuring every process but `exclude`, their children, and kernel threads
    /// (which mostly carry the measured traffic: softirqs, workqueues).
    pub(crate) fn start(exclude: Vec<u32>) -> Self {
        let mut meter = OthersMeter {
            exclude,
            start: HashMap::new(),
            started: Instant::now(),
        };
        meter.start = meter.snapshot();
        meter
    }

    fn snapshot(&self) -> HashMap<u32, u64> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return HashMap::new();
        };
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != 2 && !self.exclude.contains(pid))
            .filter_map(|pid| {
                let (ppid, ticks) = proc_ticks(pid)?;
                (ppid != 2 && !self.exclude.contains(&ppid)).then_some((pid, ticks))
            })
            .collect()
    }

    /// The CPU the others used since the start.
    pub(crate) fn reading(&self) -> OthersUse {
        let wall_us = self.started.elapsed().as_micros().max(1) as f64;
        let mut used: Vec<(u64, u32)> = self
            .snapshot()
            .into_iter()
            .map(|(pid, ticks)| {
                let before = self.start.get(&pid).copied().unwrap_or(0);
                (ticks.saturating_sub(before), pid)
            })
            .filter(|(ticks, _)| *ticks > 0)
            .collect();
        used.sort_unstable_by(|a, b| b.cmp(a));
        let total: u64 = used.iter().map(|(ticks, _)| ticks).sum();
        let top = used
            .iter()
            .take(3)
            .map(|(ticks, pid)| {
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| pid.to_string(), |c| c.trim().to_string());
                format!("{name} {} ms", ticks * 1000 / CLOCK_TICKS_PER_SEC)
            })
            .collect();
        OthersUse {
            cores: (total * 1_000_000 / CLOCK_TICKS_PER_SEC) as f64 / wall_us,
            top,
        }
    }
}

/// What other processes used over a stretch of the run.
#[derive(Debug, Clone)]
pub(crate) struct OthersUse {
    /// CPU time / wall time, in cores (1.0: one core all the time).
    pub(crate) cores: f64,
    /// The processes that used most ("name N ms").
    pub(crate) top: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = Proc::this();
        assert!(me.rss_kib().is_some_and(|kib| kib > 0));
        let meter = CpuMeter::start(me);
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = meter.reading();
        let util = used.util().unwrap();
        assert!(util > 0.02 && util < 2.1, "{util}");
        assert_eq!(Proc::new(&[]).cpu_us(), None);
        // This process is excluded: its spinning is not "others".
        let others = OthersMeter::start(vec![std::process::id()]);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let use_ = others.reading();
        assert!(use_.cores >= 0.0 && use_.cores.is_finite());
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(
            !use_
                .top
                .iter()
                .any(|t| t.starts_with(&format!("{} ", me.trim()))),
            "{:?}",
            use_.top
        );
        assert_eq!(
            CpuUse {
                cpu_us: Some(5),
                wall_us: 0
            }
            .util(),
            None
        );
    }
}
