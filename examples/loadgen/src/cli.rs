//! Command-line options: one subcommand per scenario, with the options every scenario
//! shares.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::conn::Transport;

/// Load generator for chat-server, the raw WebSocket ceiling and socket.io: runs one
/// scenario against a server running as its own process, prints a table on stderr and
/// one JSON line on stdout.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub(crate) struct Cli {
    /// The scenario.
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum System {
    /// Our chat server (docs/protocol.md).
    Im,
    /// The raw tokio-tungstenite broadcast server (`ceiling` binary).
    Ceiling,
    /// A socket.io 4 server (socketio/server.js).
    Socketio,
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Which system the server at --addr is.
    #[arg(long, value_enum, default_value = "im")]
    pub(crate) system: System,

    /// The server's address (loopback only): for im over WebSocket its HTTP address, over
    /// TCP its TCP address. For the nodes of a cluster, several, comma-separated:
    /// connections go to them in turn (the sender, and the first connection, to the first).
    #[arg(long = "addr", value_delimiter = ',', required = true)]
    pub(crate) addrs: Vec<SocketAddr>,

    /// Transport to the im server (ceiling and socket.io always use WebSocket).
    #[arg(long, value_enum, default_value = "ws")]
    pub(crate) transport: Transport,

    /// The server's PID, to read its RSS and CPU time from /proc; for a cluster, every
    /// node's, comma-separated (their figures are summed).
    #[arg(long, value_delimiter = ',')]
    pub(crate) server_pid: Vec<u32>,

    /// A Redis the im servers use (host:port, cluster mode): its command counts before and
    /// after the measured phase give Redis commands per message.
    #[arg(long)]
    pub(crate) redis: Option<SocketAddr>,

    /// More processes of the system under test (its database server, say), comma-
    /// separated: they and their children do not count as other processes disturbing
    /// the run (`others_cpu_util`). Their CPU time is not in the server figures either.
    #[arg(long, value_delimiter = ',')]
    pub(crate) system_pids: Vec<u32>,

    /// Seconds after which the scenario stops and reports what it saw (non-zero exit if
    /// incomplete) [default: the scenario's].
    #[arg(long)]
    pub(crate) deadline: Option<u64>,

    /// Connections set up at once (connect, hello, register, login, join).
    #[arg(long, default_value_t = 64)]
    pub(crate) setup_concurrency: usize,

    /// Prefix of the usernames this run registers [default: from the clock].
    #[arg(long)]
    pub(crate) run_prefix: Option<String>,

    /// Connections one generator process may hold; above it, `idle` splits itself into
    /// several processes (the open-file limit is 20,000 per process).
    #[arg(long, default_value_t = 16_000)]
    pub(crate) max_conns_per_process: usize,

    /// This process's shard (set by the parent process when it splits itself).
    #[arg(long, hide = true)]
    pub(crate) shard: Option<usize>,

    /// Number of shards (set by the parent process when it splits itself).
    #[arg(long, hide = true)]
    pub(crate) shards: Option<usize>,
}

impl Common {
    /// The first address: the sender's.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The address of the `i`-th connection: the addresses in turn.
    pub(crate) fn addr_for(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Server RSS per idle connection, and after closing them.
    Idle {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: IdleOpts,
    },
    /// im: logins per second, then resumes per second, on fresh connections.
    ConnectStorm {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: StormOpts,
    },
    /// One sender, M receivers in one group: K messages as fast as possible.
    GroupBurst {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: BurstOpts,
    },
    /// One sender, M receivers in one group: R messages per second for S seconds.
    GroupPaced {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: PacedOpts,
    },
    /// im: S senders, each with its own peer, in direct conversations.
    DirectSends {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: DirectOpts,
    },
    /// im: N messages to an offline user, then their catch-up through sync.
    OfflineSync {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: OfflineOpts,
    },
    /// A group burst where some members never read their socket.
    SlowConsumer {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: SlowOpts,
    },
    /// im: many logins at the default password-hash cost; server RSS over time.
    LoginFlood {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: FloodOpts,
    },
    /// im: a bounded soak of steady traffic, logins and resumes; fails unless the
    /// server's RSS, open files, tasks and sessions stay flat.
    Soak {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Scenario options.
        #[command(flatten)]
        opts: SoakOpts,
    },
}

/// `idle` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct IdleOpts {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: usize,
    /// im: open the WebSocket and send nothing (not even `hello`).
    #[arg(long)]
    pub(crate) no_hello: bool,
    /// im: register and log every user in first, on connections closed at once; read the
    /// RSS after that; then open the measured connections with hello + `resume` (so no
    /// password hashing, whose memory the allocator keeps, falls in the measured phase).
    /// One generator process only.
    #[arg(long, conflicts_with = "no_hello")]
    pub(crate) resume: bool,
    /// Seconds to wait after opening, before the settled reading.
    #[arg(long, default_value_t = 5)]
    pub(crate) settle: u64,
}

/// `connect-storm` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct StormOpts {
    /// Users to register, then log in, then resume.
    #[arg(long, default_value_t = 1000)]
    pub(crate) users: usize,
    /// Logins (and resumes) in flight at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
}

/// Group options shared by the group scenarios.
#[derive(Debug, Clone, Args)]
pub(crate) struct GroupOpts {
    /// Receiving members (the sender comes on top).
    #[arg(long, default_value_t = 1000)]
    pub(crate) members: usize,
    /// Seconds with no new delivery, once every send is done, after which the scenario
    /// stops waiting.
    #[arg(long, default_value_t = 10)]
    pub(crate) stall_secs: u64,
    /// Parse one pushed frame in this many fully as JSON, to check it (1: all).
    #[arg(long, default_value_t = 64)]
    pub(crate) sample_every: u64,
}

/// `group-burst` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct BurstOpts {
    /// The group.
    #[command(flatten)]
    pub(crate) group: GroupOpts,
    /// Messages to send [default: 200, or 50 from 5,000 members].
    #[arg(long)]
    pub(crate) messages: Option<usize>,
    /// im: sends awaiting their ack at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
}

/// `group-paced` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PacedOpts {
    /// The group.
    #[command(flatten)]
    pub(crate) group: GroupOpts,
    /// Messages per second.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20)]
    pub(crate) duration: u64,
}

/// `slow-consumer` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct SlowOpts {
    /// The group.
    #[command(flatten)]
    pub(crate) group: GroupOpts,
    /// Messages to send.
    #[arg(long, default_value_t = 200)]
    pub(crate) messages: usize,
    /// im: sends awaiting their ack at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
    /// Percentage of the members that never read their socket.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) stalled_percent: f64,
}

/// `direct-sends` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct DirectOpts {
    /// Senders, each with its own peer.
    #[arg(long, default_value_t = 100)]
    pub(crate) senders: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 100)]
    pub(crate) messages: usize,
    /// Sends per sender awaiting their ack at once (1: closed loop).
    #[arg(long, default_value_t = 1)]
    pub(crate) window: usize,
    /// Open loop instead: this many sends per second in all, spread over the senders.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
}

/// `offline-sync` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct OfflineOpts {
    /// Messages sent while the receiver is offline.
    #[arg(long, default_value_t = 5000)]
    pub(crate) messages: usize,
    /// Sends awaiting their ack at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
}

/// `login-flood` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct FloodOpts {
    /// Users to register, then log in once each.
    #[arg(long, default_value_t = 320)]
    pub(crate) logins: usize,
    /// Registrations and logins in flight at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Seconds to keep sampling RSS after the flood.
    #[arg(long, default_value_t = 10)]
    pub(crate) after: u64,
}

/// `soak` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct SoakOpts {
    /// Seconds the whole soak lasts, set-up included (the disconnect and a 10 s pause
    /// come on top).
    #[arg(long, default_value_t = 1800)]
    pub(crate) seconds: u64,
    /// Users logged in for the whole soak: half send, each to a peer of its own (direct
    /// conversations; the server must allow direct messages to anyone), half receive.
    #[arg(long, default_value_t = 200)]
    pub(crate) users: usize,
    /// Messages per second from the steady senders, in all.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) rate: f64,
    /// Connections per second that log in afresh, send one message and close; as many
    /// again resume with a saved token and close (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) churn: f64,
    /// The server's Prometheus page, read for `im_sessions` and `im_runtime_alive_tasks`
    /// [default: http://ADDR/metrics on the first --addr, over WebSocket].
    #[arg(long)]
    pub(crate) metrics: Option<String>,
}
