//! The engine: sessions, command handling, authorisation, routing, fan-out and sync.
//!
//! An [`Engine`] is built from its adapters (storage, presence, broker) and then serves
//! connections from any [`Transport`]. Every command of the protocol is handled here, so
//! transports only move bytes. One file per concern: `connection` (the task that runs a
//! connection), `outbox` (its outbound queue, backpressure and writer), `session` (a
//! logged-in session), `registry` (this node's sessions, by user and by group),
//! `fanout` (every push), `access` (who may do what), `membership` and `contact_cache`
//! (what those checks read), `limits` (rate limits),
//! `device_policy`, `presence` (online status pushed to friends), and one file per
//! command family: `accounts`, `contacts`, `groups`, `messaging`, `receipts`, `typing`,
//! `amend` (recall, edit, delete for me), `calls` (signalling).
//! `docs/architecture.md` walks through them along the path of a message.

mod access;
mod accounts;
mod admin;
mod amend;
mod attachments;
mod calls;
mod config;
mod connection;
mod contact_cache;
mod contacts;
mod device_policy;
mod error;
mod execute;
mod fanout;
mod groups;
mod handler;
mod invites;
mod last_seen;
mod limits;
mod membership;
mod messaging;
mod outbox;
mod pins;
mod presence;
mod reactions;
mod receipts;
mod registry;
mod relay;
mod search;
mod session;
mod typing;
mod validate;

pub use admin::{DELETED_NAME, DeletedUser, SessionInfo};
pub use attachments::{Upload, Uploads};
pub use config::{DevicePolicy, DirectPolicy, EngineConfig, ExcessSessions, millis};
pub use execute::Identity;
pub use invites::{MAX_INVITE_LIFETIME, MAX_INVITE_USES};
pub use limits::RateLimits;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};

use crate::auth::{AuthError, PasswordHasher};
use crate::broker::{Broker, BrokerError, Envelope};
use crate::gate::{Gate, OpenGate};
use crate::hooks::{Hooks, NoHooks};
use crate::memory::{LocalBroker, MemoryPresence, MemoryStorage};
use crate::presence::{NodeId, Presence, PresenceEntry};
use crate::protocol::KickCode;
use crate::storage::Storage;
use crate::transport::{Connection, Transport};
use contact_cache::ContactCache;
use limits::Limiters;
use membership::MemberCache;
use registry::Registry;
use session::SessionHandle;

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The broker subscription failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The password hashing parameters are invalid.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// How many groups the engine keeps cached (membership, and this node's sessions in each).
const GROUP_CACHE: usize = 10_000;

/// How many pairs of users the engine keeps the ties of (friendship, blocks).
const CONTACT_CACHE: usize = 100_000;

/// The messaging engine. Cheap to clone; every clone is the same engine.
///
/// ```
/// use im_core::{Engine, client::Client, transport::duplex};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// // In-memory adapters by default; pass `.storage(..)` etc. for real ones.
/// let engine = Engine::builder().start().await.unwrap();
///
/// // Any transport works; an in-process pair needs no sockets.
/// let (server_end, client_end) = duplex(64);
/// tokio::spawn({
///     let engine = engine.clone();
///     async move { engine.serve_connection(server_end).await }
/// });
/// let (client, _events) = Client::connect(client_end).await.unwrap();
/// client.register("alice", "correct horse", "Alice").await.unwrap();
/// let session = client.login("alice", "correct horse", "laptop").await.unwrap();
/// assert_eq!(session.user.username, "alice");
/// engine.shutdown().await;
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// Everything the connection tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) presence: Arc<dyn Presence>,
    pub(crate) hooks: Arc<dyn Hooks>,
    /// Who may register and log in beyond a password.
    pub(crate) gate: Arc<dyn Gate>,
    /// Who uploaded which file, once a transport that stores uploads says
    /// ([`Engine::set_uploads`]).
    pub(crate) uploads: std::sync::OnceLock<Arc<dyn Uploads>>,
    pub(crate) node: NodeId,
    pub(crate) hasher: PasswordHasher,
    /// Permits for password hashes running at once.
    pub(crate) hashing: Arc<tokio::sync::Semaphore>,
    /// A hash of a random password, verified against when a login names an unknown user,
    /// so that the response time does not tell which usernames exist.
    pub(crate) dummy_hash: String,
    pub(crate) sessions: Registry,
    pub(crate) members: MemberCache,
    pub(crate) contacts: ContactCache,
    pub(crate) limits: Limiters,
    pub(crate) typing: typing::TypingGate,
    pub(crate) offline_timers: presence::OfflineTimers,
    /// Devices whose sessions ended in the shutdown, handed over with `Presence::leave`.
    leaving: std::sync::Mutex<Vec<(crate::model::UserId, crate::model::DeviceId)>>,
    /// Stores last-seen times, many users per transaction.
    pub(crate) last_seen: last_seen::LastSeenWriter,
    /// Publishes envelopes to other nodes, many per broker call.
    pub(crate) relay: relay::Relay,
    /// The engine itself, for tasks that outlive a request (offline timers).
    pub(crate) this: Weak<Shared>,
    pub(crate) shutdown: watch::Sender<bool>,
    next_session: AtomicU64,
    live: AtomicUsize,
    idle: Notify,
}

/// Configures and starts an [`Engine`].
#[derive(Debug, Default)]
pub struct EngineBuilder {
    storage: Option<Arc<dyn Storage>>,
    presence: Option<Arc<dyn Presence>>,
    broker: Option<Arc<dyn Broker>>,
    hooks: Option<Arc<dyn Hooks>>,
    gate: Option<Arc<dyn Gate>>,
    node: Option<NodeId>,
    config: EngineConfig,
}

impl EngineBuilder {
    /// The storage (default: a fresh [`MemoryStorage`]).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The presence registry (default: a fresh [`MemoryPresence`]).
    pub fn presence(mut self, presence: Arc<dyn Presence>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// The broker (default: a fresh [`LocalBroker`]).
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The gate for registrations and logins (default: [`OpenGate`], everyone in): a
    /// captcha, verification codes, invites, second factors. See [`crate::gate`].
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The app's hooks (default: none).
    pub fn hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// This node's id (default: random). Must be unique among the live nodes.
    pub fn node(mut self, node: NodeId) -> Self {
        self.node = Some(node);
        self
    }

    /// Limits and policies.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Subscribes to the broker, starts the background tasks and returns the engine.
    /// Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<Engine, EngineError> {
        let hasher = PasswordHasher::new(self.config.hash_cost)?;
        let dummy_hash = {
            let hasher = hasher.clone();
            let mut secret = [0u8; 16];
            let _ = getrandom::fill(&mut secret);
            let secret = format!("{secret:02x?}");
            tokio::task::spawn_blocking(move || hasher.hash(&secret))
                .await
                .map_err(|e| AuthError::Hash(e.to_string()))??
        };
        let node = self.node.unwrap_or_else(NodeId::random);
        let broker = self
            .broker
            .unwrap_or_else(|| Arc::new(LocalBroker::new()) as Arc<dyn Broker>);
        let envelopes = broker.subscribe(&node).await?;
        let storage = self
            .storage
            .unwrap_or_else(|| Arc::new(MemoryStorage::new()) as Arc<dyn Storage>);
        let presence = self
            .presence
            .unwrap_or_else(|| Arc::new(MemoryPresence::new()));
        let shared = Arc::new_cyclic(|this| Shared {
            last_seen: last_seen::LastSeenWriter::start(storage.clone()),
            relay: relay::Relay::start(broker, presence.clone(), node.clone()),
            storage,
            presence,
            hooks: self.hooks.unwrap_or_else(|| Arc::new(NoHooks)),
            gate: self.gate.unwrap_or_else(|| Arc::new(OpenGate)),
            uploads: std::sync::OnceLock::new(),
            node,
            hasher,
            hashing: Arc::new(tokio::sync::Semaphore::new(
                self.config.max_concurrent_hashes.max(1),
            )),
            dummy_hash,
            sessions: Registry::new(GROUP_CACHE),
            members: MemberCache::new(GROUP_CACHE),
            contacts: ContactCache::new(CONTACT_CACHE),
            limits: Limiters::new(&self.config.rate_limits),
            typing: typing::TypingGate::default(),
            offline_timers: presence::OfflineTimers::default(),
            leaving: std::sync::Mutex::new(Vec::new()),
            this: this.clone(),
            shutdown: watch::channel(false).0,
            next_session: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            config: self.config,
        });
        tokio::spawn(dispatch_envelopes(
            Arc::downgrade(&shared),
            envelopes,
            shared.shutdown.subscribe(),
        ));
        tokio::spawn(refresh_presence(
            Arc::downgrade(&shared),
            shared.shutdown.subscribe(),
        ));
        // An earlier process under this id may have died with users online: they are
        // taken down before this one serves anyone, and announced in the background.
        match shared.presence.claim_own(&shared.node).await {
            Ok(orphans) if !orphans.is_empty() => {
                let shared = shared.clone();
                tokio::spawn(async move { shared.went_offline(orphans).await });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "clearing this node's earlier presence failed"),
        }
        tokio::spawn(claim_lapsed_nodes(
            Arc::downgrade(&shared),
            shared.shutdown.subscribe(),
        ));
        Ok(Engine { shared })
    }
}

impl Engine {
    /// A builder with in-memory adapters and default config.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.shared.node
    }

    /// The engine's config.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The storage the engine uses.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// How many logged-in sessions this node has.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Accepts connections from `transport` until it closes or the engine shuts down,
    /// serving each on its own task.
    pub async fn serve<T: Transport + ?Sized>(&self, transport: &T) {
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            tokio::select! {
                conn = transport.accept() => match conn {
                    Some(conn) => {
                        let engine = self.clone();
                        tokio::spawn(async move { engine.serve_connection(conn).await });
                    }
                    None => break,
                },
                _ = stopped(&mut shutdown) => break,
            }
        }
    }

    /// Serves one connection until it ends.
    pub async fn serve_connection<C: Connection>(&self, conn: C) {
        struct Live<'a>(&'a Shared);
        impl Drop for Live<'_> {
            fn drop(&mut self) {
                if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.0.idle.notify_waiters();
                }
            }
        }
        self.shared.live.fetch_add(1, Ordering::AcqRel);
        let _live = Live(&self.shared);
        if *self.shared.shutdown.borrow() {
            return;
        }
        connection::run(self.shared.clone(), Box::new(conn)).await;
    }

    /// Stops accepting, tells every session the server is going away, waits (up to the
    /// write timeout) for the connections to close, and hands this node's users over to
    /// the other nodes ([`Presence::leave`]): they lapse after the grace period, and
    /// whoever has not reconnected elsewhere by then is announced offline by another node.
    /// Users whose grace period was already running are announced at once.
    pub async fn shutdown(&self) {
        let first = !self.shared.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + self.shared.config.write_timeout;
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.live.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                tracing::warn!(
                    open = self.shared.live.load(Ordering::Acquire),
                    "shutdown timed out waiting for connections"
                );
                break;
            }
        }
        if !first {
            return;
        }
        let shared = &self.shared;
        let mut devices =
            std::mem::take(&mut *shared.leaving.lock().unwrap_or_else(|p| p.into_inner()));
        // Sessions that outlived the wait are handed over too.
        devices.extend(
            shared
                .sessions
                .all()
                .iter()
                .map(|s| (s.user, s.device.clone())),
        );
        let after = shared.config.presence_grace.min(shared.config.presence_ttl);
        if let Err(e) = shared.presence.leave(&shared.node, &devices, after).await {
            tracing::warn!(error = %e, "handing this node's users over failed");
        }
        shared.flush_offline_timers().await;
    }
}

impl Shared {
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn presence_entry(&self, s: &SessionHandle) -> PresenceEntry {
        PresenceEntry {
            user: s.user,
            device: s.device.clone(),
            platform: s.platform,
            node: self.node.clone(),
            since: s.since,
        }
    }

    /// Registers a new session: replaces (kicks) the same device's older session here and
    /// on other nodes, and records the device as online.
    pub(crate) async fn begin_session(&self, session: Arc<SessionHandle>) {
        for old in self.sessions.attach(session.clone()) {
            old.kick(KickCode::Replaced);
        }
        self.broadcast(Envelope::Kick {
            user: session.user,
            device: Some(session.device.clone()),
            keep: None,
            started_before: Some(session.since),
            code: KickCode::Replaced,
            origin: self.node.clone(),
        })
        .await;
        let entry = self.presence_entry(&session);
        if let Err(e) = self
            .presence
            .set_online(&[entry], self.config.presence_ttl)
            .await
        {
            tracing::warn!(error = %e, "presence update failed");
        }
    }

    /// Unregisters a session that ended.
    pub(crate) async fn end_session(&self, session: &SessionHandle) {
        self.sessions.detach(session.user, session.id);
        // A newer session of the same device here owns the presence entry now.
        if self.sessions.has_device(session.user, &session.device) {
            return;
        }
        if *self.shutdown.borrow() {
            // Handed over at the end of the shutdown, not taken offline one by one.
            self.leaving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((session.user, session.device.clone()));
            return;
        }
        self.maybe_went_offline(session.user);
        if let Err(e) = self
            .presence
            .set_offline(session.user, &session.device, &self.node)
            .await
        {
            tracing::warn!(error = %e, "presence update failed");
        }
    }
}

/// Resolves once the engine is shutting down or gone. (A unit future, so that no watch
/// guard lives across later awaits in a `select!`.)
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Delivers envelopes from other nodes until the engine is gone.
async fn dispatch_envelopes(
    shared: Weak<Shared>,
    mut envelopes: futures::stream::BoxStream<'static, Envelope>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            envelope = envelopes.next() => {
                let (Some(envelope), Some(shared)) = (envelope, shared.upgrade()) else {
                    return;
                };
                shared.handle_envelope(envelope);
            }
            // Also fires (with an error) when the engine is dropped.
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Ticks at a third of the presence lease (at least every 100 ms), a late tick delaying
/// the next: the pace of the refresh and of the claims. `None` once the engine is gone.
fn presence_ticks(shared: &Weak<Shared>) -> Option<tokio::time::Interval> {
    let period = (shared.upgrade()?.config.presence_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(tick)
}

/// Claims the nodes whose leases lapsed (they died, or shut down and handed their users
/// over), at the same pace as the refresh, and announces their users that are online
/// nowhere else.
async fn claim_lapsed_nodes(shared: Weak<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(mut tick) = presence_ticks(&shared) else {
        return;
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(shared) = shared.upgrade() else { return };
                match shared.presence.claim_lapsed(&shared.node).await {
                    Ok(orphans) if !orphans.is_empty() => {
                        tracing::info!(users = orphans.len(), "took over the users of a lapsed node");
                        metrics::counter!("im_presence_orphans_total").increment(orphans.len() as u64);
                        shared.went_offline(orphans).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming lapsed nodes failed"),
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Renews the presence leases of this node's sessions at a third of their lifetime.
async fn refresh_presence(shared: Weak<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(mut tick) = presence_ticks(&shared) else {
        return;
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(shared) = shared.upgrade() else { return };
                shared.limits.housekeeping();
                shared.typing.housekeeping(shared.config.typing_interval.max(Duration::from_secs(10)));
                let entries: Vec<_> = shared
                    .sessions
                    .all()
                    .iter()
                    .map(|s| shared.presence_entry(s))
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                if let Err(e) = shared.presence.set_online(&entries, shared.config.presence_ttl).await {
                    tracing::warn!(error = %e, "presence refresh failed");
                    continue;
                }
                // A session that ended while the refresh was on its way has already taken
                // its entry down, and the refresh just put it back: take it down again,
                // or the device would look online for a whole lease.
                for e in entries {
                    if !shared.sessions.has_device(e.user, &e.device)
                        && let Err(err) = shared.presence.set_offline(e.user, &e.device, &shared.node).await
                    {
                        tracing::warn!(error = %err, "presence update failed");
                    }
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}
