//! [`Presence`] on Redis, shared by every node of a cluster.
//!
//! Layout (`P` is the prefix):
//! - `P:presence:{u<id>}`: a hash per user, one field per online device; the value is
//!   `<lease end, ms>|<the entry as JSON>`. Leases are timed by Redis's own clock (`TIME`
//!   inside the scripts), so nodes with skewed clocks agree. A lapsed field is ignored by
//!   reads, kept one more ttl (at least [`KEEP_LAPSED`]) for the claim of its node, and
//!   then dropped by the next write; the key expires when its last field would be.
//! - `P:{presence-nodes}`: a sorted set of node ids, scored by when the node's last lease
//!   ends (plus [`NODE_MARGIN`]); `others_online` reads it, and a node whose score is in
//!   the past has lapsed and waits there to be claimed.
//! - `P:{presence-nodes}:<node>`: per node, a sorted set of the users it has had online
//!   within a lease, scored by when it last refreshed them: what a claim of that node
//!   goes through. It shares the nodes' set's hash tag, so one script claims a node and
//!   takes its users atomically, on Redis Cluster too.
//!
//! Every operation on a user is one Lua script on that user's key (one slot, so it runs
//! on Redis Cluster too); a lookup for many users sends their scripts in one pipeline:
//! one round trip for a group's fan-out, however many members.
//!
//! A claim ([`Presence::claim_lapsed`]) is one script on the nodes' slot that removes
//! each lapsed node from the set, which is the lock: of two nodes claiming at once, the
//! second finds nothing. It returns the node's users, and one script per user (in one
//! pipeline) then drops that node's fields and says whether a live one is left.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::{ClusterHash, CustomCommand, Value};
use im_core::model::{DeviceId, Timestamp, UserId};
use im_core::presence::{KEEP_LAPSED, NodeId, Orphan, Presence, PresenceEntry, PresenceError};

use super::{DEFAULT_PREFIX, RECONNECTING, check_prefix, connect, unavailable};

/// How much longer than its devices' leases a node counts as up for `others_online`: it
/// covers the moment between the node's lease and its devices' being written, and may only
/// make `others_online` say `true` a little longer (which the contract allows).
pub(crate) const NODE_MARGIN: Duration = Duration::from_secs(1);

/// Redis time in milliseconds, as a Lua prelude of every script.
const NOW: &str = "local t = redis.call('TIME')\n\
                   local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/// KEYS[1]: the user's hash. ARGV[1]: ttl in ms, ARGV[2]: how long to keep a lapsed
/// field, in ms; then pairs of device, entry JSON.
const SET_ONLINE: &str = r#"
local lease = now + tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], lease .. '|' .. ARGV[i + 1])
end
local last = lease
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ends = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if ends == nil or ends + keep <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif ends > last then
    last = ends
  end
end
redis.call('PEXPIREAT', KEYS[1], last + keep)
return 0
"#;

/// KEYS[1]: the user's hash. Returns the live entries' JSON; a malformed value is left
/// out (and dropped by the next `SET_ONLINE`).
const ONLINE: &str = r#"
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = all[i + 1]
  local bar = string.find(v, '|', 1, true)
  local ends = bar and tonumber(string.sub(v, 1, bar - 1))
  if ends and ends > now then
    out[#out + 1] = string.sub(v, bar + 1)
  end
end
return out
"#;

/// Lua: whether a field's value names the node `node`.
const ON_NODE: &str = r#"
local function on_node(v, node)
  local bar = v and string.find(v, '|', 1, true)
  if not bar then
    return false
  end
  local ok, entry = pcall(cjson.decode, string.sub(v, bar + 1))
  return ok and type(entry) == 'table' and entry.node == node
end
"#;

/// KEYS[1]: the user's hash. ARGV[1]: device, ARGV[2]: node. Removes the device's entry
/// if it names that node.
const SET_OFFLINE: &str = r#"
if on_node(redis.call('HGET', KEYS[1], ARGV[1]), ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"#;

/// KEYS[1]: the user's hash. ARGV[1]: node; then devices. Ends the leases of those
/// devices that are on that node now, keeping the fields for the node's claim.
const LAPSE: &str = r#"
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if on_node(v, ARGV[1]) then
    local bar = string.find(v, '|', 1, true)
    redis.call('HSET', KEYS[1], ARGV[i], now .. string.sub(v, bar))
  end
end
return 0
"#;

/// KEYS[1]: the user's hash. ARGV[1]: a claimed node. Drops every field naming it;
/// returns {whether there was one, how many live fields are left}.
const DROP_NODE: &str = r#"
local had, live = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = all[i + 1]
  if on_node(v, ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
    had = 1
  else
    local ends = tonumber(string.match(v, '^(%d+)|'))
    if ends and ends > now then
      live = live + 1
    end
  end
end
return {had, live}
"#;

/// KEYS[1]: the nodes' sorted set, KEYS[2]: the node's users. ARGV[1]: `refresh` (the
/// lease only lengthens) or `leave` (it is set as given); ARGV[2]: the node's lease in
/// ms; ARGV[3]: how long to keep a lapsed node, in ms; ARGV[4]: the node; then user ids,
/// whose score becomes now. Drops nodes lapsed longer ago than that, and the node's
/// users it has not refreshed for a lease.
const NODE_LEASE: &str = r#"
local lease, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - keep))
local ends = now + lease
if ARGV[1] == 'leave' then
  redis.call('ZADD', KEYS[1], ends, ARGV[4])
else
  redis.call('ZADD', KEYS[1], 'GT', ends, ARGV[4])
end
if #ARGV >= 5 then
  local batch = {}
  for i = 5, #ARGV do
    batch[#batch + 1] = now
    batch[#batch + 1] = ARGV[i]
    if #batch >= 1000 then
      redis.call('ZADD', KEYS[2], unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then
    redis.call('ZADD', KEYS[2], unpack(batch))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - lease))
  redis.call('PEXPIREAT', KEYS[2], ends + keep)
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + keep)
return 0
"#;

/// KEYS[1]: the nodes' sorted set. ARGV[1]: the asking node; ARGV[2]: `own` (claim that
/// node) or `lapsed` (claim every lapsed node but it). Removes each claimed node from the
/// set and deletes its users' set; returns {node, {user, score, ...}, ...}. The users'
/// key of a node is built here, from KEYS[1]: it has the same hash tag, so the same slot.
const CLAIM: &str = r#"
local nodes
if ARGV[2] == 'own' then
  nodes = {ARGV[1]}
else
  nodes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
end
local out = {}
for _, node in ipairs(nodes) do
  if ARGV[2] == 'own' or node ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], node)
    local users = KEYS[1] .. ':' .. node
    out[#out + 1] = node
    out[#out + 1] = redis.call('ZRANGE', users, 0, -1, 'WITHSCORES')
    redis.call('DEL', users)
  end
end
return out
"#;

/// KEYS[1]: the nodes' sorted set. ARGV[1]: the asking node. 1 if another node is up.
/// Read-only: the fan-out asks it for every message.
const OTHERS_ONLINE: &str = r#"
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if node ~= ARGV[1] then
    return 1
  end
end
return 0
"#;

/// The scripts, called by SHA-1 (`EVALSHA`); where Redis does not know one (it restarted,
/// or this primary of a cluster never ran it) the call is made again with the text
/// (`EVAL`), which also caches it there.
#[derive(Debug)]
struct Scripts {
    set_online: Script,
    online: Script,
    set_offline: Script,
    lapse: Script,
    drop_node: Script,
    node_lease: Script,
    claim: Script,
    others_online: Script,
}

#[derive(Debug)]
struct Script {
    lua: String,
    sha: std::sync::OnceLock<String>,
}

impl Script {
    fn new(body: &str) -> Script {
        Script {
            lua: format!("{NOW}{body}"),
            sha: std::sync::OnceLock::new(),
        }
    }

    /// A script that needs to know which node a field names.
    fn with_on_node(body: &str) -> Script {
        Script::new(&format!("{ON_NODE}{body}"))
    }

    /// A script that writes nothing (Redis 7 may then run it on a replica, and never
    /// replicates it).
    fn read_only(body: &str) -> Script {
        Script {
            lua: format!("#!lua flags=no-writes\n{NOW}{body}"),
            sha: std::sync::OnceLock::new(),
        }
    }

    /// The script's SHA-1, as Redis computes it (`SCRIPT LOAD`, once).
    async fn sha(&self, client: &Client) -> Result<&str, PresenceError> {
        if let Some(sha) = self.sha.get() {
            return Ok(sha);
        }
        let sha: String = client
            .script_load(self.lua.as_str())
            .await
            .map_err(unavailable)?;
        Ok(self.sha.get_or_init(|| sha))
    }
}

/// One script call: its keys (all in one slot) and arguments.
struct Call {
    keys: Vec<String>,
    args: Vec<String>,
}

impl Call {
    fn new(key: String, args: Vec<String>) -> Call {
        Call {
            keys: vec![key],
            args,
        }
    }
}

/// `EVALSHA` or `EVAL` of one script, routed by the slot of its first key.
fn eval_command(by_sha: bool) -> CustomCommand {
    let name = if by_sha { "EVALSHA" } else { "EVAL" };
    // The arguments are: the script or its SHA-1, the number of keys, the keys.
    CustomCommand::new_static(name, ClusterHash::Offset(2), false)
}

fn eval_args(script: &str, call: &Call) -> Vec<String> {
    let mut all = Vec::with_capacity(2 + call.keys.len() + call.args.len());
    all.push(script.to_owned());
    all.push(call.keys.len().to_string());
    all.extend(call.keys.iter().cloned());
    all.extend(call.args.iter().cloned());
    all
}

fn no_script(e: &fred::error::Error) -> bool {
    e.details().starts_with("NOSCRIPT")
}

/// [`Presence`] on Redis or Redis Cluster; see the module docs for the layout.
///
/// Every node of a cluster gets its own `RedisPresence` on the same Redis (and the same
/// prefix), and its own [`NodeId`](im_core::presence::NodeId):
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use im_core::Engine;
/// use im_store::RedisPresence;
///
/// let presence = RedisPresence::connect("redis://127.0.0.1:6379").await?;
/// let engine = Engine::builder().presence(Arc::new(presence)).start().await?;
/// # engine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisPresence {
    client: Client,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
}

impl RedisPresence {
    /// Connects to `url` (`redis://…` or `redis-cluster://…`, see [`connect`]) with the
    /// default key prefix.
    pub async fn connect(url: &str) -> Result<RedisPresence, PresenceError> {
        RedisPresence::new(connect(url).await?, DEFAULT_PREFIX)
    }

    /// Presence on a client the app connected (and keeps), under `prefix`.
    pub fn new(client: Client, prefix: &str) -> Result<RedisPresence, PresenceError> {
        check_prefix(prefix)?;
        Ok(RedisPresence {
            client,
            prefix: Arc::from(prefix),
            scripts: Arc::new(Scripts {
                set_online: Script::new(SET_ONLINE),
                online: Script::read_only(ONLINE),
                set_offline: Script::with_on_node(SET_OFFLINE),
                lapse: Script::with_on_node(LAPSE),
                drop_node: Script::with_on_node(DROP_NODE),
                node_lease: Script::new(NODE_LEASE),
                claim: Script::new(CLAIM),
                others_online: Script::read_only(OTHERS_ONLINE),
            }),
        })
    }

    fn user_key(&self, user: UserId) -> String {
        format!("{}:presence:{{u{}}}", self.prefix, user.0)
    }

    fn nodes_key(&self) -> String {
        format!("{}:{{presence-nodes}}", self.prefix)
    }

    /// The node's users' set: the nodes' key, `:`, the node (as `CLAIM` builds it).
    fn node_users_key(&self, node: &NodeId) -> String {
        format!("{}:{node}", self.nodes_key())
    }

    /// `NODE_LEASE` for `node` with `users`.
    fn node_lease(&self, mode: &str, lease: Duration, node: &NodeId, users: &[UserId]) -> Call {
        let mut args = Vec::with_capacity(4 + users.len());
        args.push(mode.to_owned());
        args.push(millis(lease));
        args.push(millis(KEEP_LAPSED.max(lease)));
        args.push(node.to_string());
        args.extend(users.iter().map(|u| u.0.to_string()));
        Call {
            keys: vec![self.nodes_key(), self.node_users_key(node)],
            args,
        }
    }

    /// Runs `script` once, returns its result.
    async fn call(&self, script: &Script, call: Call) -> Result<Value, PresenceError> {
        let mut results = self.call_each(script, &[call]).await?;
        Ok(results.pop().unwrap_or(Value::Null))
    }

    /// Runs `script` once per call, all in one pipeline; the results in order.
    async fn call_each(
        &self,
        script: &Script,
        calls: &[Call],
    ) -> Result<Vec<Value>, PresenceError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        if !self.client.is_connected() {
            return Err(PresenceError::Unavailable(RECONNECTING.into()));
        }
        let sha = script.sha(&self.client).await?;
        let pipeline = self.client.pipeline();
        for call in calls {
            let _: () = pipeline
                .custom(eval_command(true), eval_args(sha, call))
                .await
                .map_err(unavailable)?;
        }
        let mut results = pipeline.try_all::<Value>().await;
        // Where the script is unknown, once more with its text.
        let missing: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].as_ref().is_err_and(no_script))
            .collect();
        if !missing.is_empty() {
            let pipeline = self.client.pipeline();
            for &i in &missing {
                let _: () = pipeline
                    .custom(eval_command(false), eval_args(&script.lua, &calls[i]))
                    .await
                    .map_err(unavailable)?;
            }
            for (i, result) in missing.into_iter().zip(pipeline.try_all::<Value>().await) {
                results[i] = result;
            }
        }
        results
            .into_iter()
            .map(|r| r.map_err(unavailable))
            .collect()
    }

    /// Claims nodes (`CLAIM` in `mode`), then drops their fields user by user; the users
    /// left with no live device.
    async fn claim(&self, node: &NodeId, mode: &str) -> Result<Vec<Orphan>, PresenceError> {
        let value = self
            .call(
                &self.scripts.claim,
                Call::new(self.nodes_key(), vec![node.to_string(), mode.to_owned()]),
            )
            .await?;
        let flat: Vec<Value> = value.into_array();
        let mut calls = Vec::new();
        let mut seen = Vec::new();
        for pair in flat.chunks(2) {
            let [claimed, users] = pair else { break };
            let claimed = claimed.as_string().unwrap_or_default();
            let users: Vec<Value> = users.clone().into_array();
            if !users.is_empty() {
                tracing::info!(node = %claimed, users = users.len() / 2, "claimed a lapsed node");
            }
            for user in users.chunks(2) {
                let [id, score] = user else { break };
                let (Some(id), Some(score)) = (
                    id.as_string().and_then(|s| s.parse::<u64>().ok()),
                    score.as_f64(),
                ) else {
                    tracing::warn!(node = %claimed, "a malformed member of a node's users left out");
                    continue;
                };
                calls.push(Call::new(self.user_key(UserId(id)), vec![claimed.clone()]));
                seen.push((UserId(id), Timestamp(score as i64)));
            }
        }
        let mut orphans: Vec<Orphan> = Vec::new();
        // Bounded pipelines: a node may have had many thousands of users.
        for (calls, seen) in calls.chunks(PIPELINE).zip(seen.chunks(PIPELINE)) {
            let results = self.call_each(&self.scripts.drop_node, calls).await?;
            for (result, &(user, last_seen)) in results.into_iter().zip(seen) {
                let counts: Vec<i64> = result
                    .convert()
                    .map_err(|e| PresenceError::Backend(e.to_string()))?;
                if counts.first() == Some(&1) && counts.get(1) == Some(&0) {
                    match orphans.iter_mut().find(|o| o.user == user) {
                        Some(o) => o.last_seen = o.last_seen.max(last_seen),
                        None => orphans.push(Orphan { user, last_seen }),
                    }
                }
            }
        }
        Ok(orphans)
    }
}

/// The most script calls one pipeline carries: each of its commands must be answered
/// within the command timeout.
const PIPELINE: usize = 1000;

/// The longest lease written: longer ones would not fit the scripts' arithmetic (and no
/// session refreshes that rarely).
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

fn millis(d: Duration) -> String {
    d.min(MAX_TTL).as_millis().max(1).to_string()
}

fn decode(json: &str) -> Result<PresenceEntry, PresenceError> {
    serde_json::from_str(json)
        .map_err(|e| PresenceError::Backend(format!("a presence entry in Redis: {e}")))
}

/// The distinct nodes of `entries`, each with its distinct users.
fn by_node(entries: &[PresenceEntry]) -> Vec<(&NodeId, Vec<UserId>)> {
    let mut out: Vec<(&NodeId, Vec<UserId>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(n, _)| *n == &e.node) {
            Some((_, users)) => users.push(e.user),
            None => out.push((&e.node, vec![e.user])),
        }
    }
    for (_, users) in &mut out {
        users.sort_unstable();
        users.dedup();
    }
    out
}

#[async_trait]
impl Presence for RedisPresence {
    async fn set_online(
        &self,
        entries: &[PresenceEntry],
        ttl: Duration,
    ) -> Result<(), PresenceError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = ttl.min(MAX_TTL);
        let lease = ttl + NODE_MARGIN;
        // The nodes first, with their users: a node must never have a live device while
        // it is not listed, nor a user its claim would miss.
        let nodes = by_node(entries);
        let calls: Vec<Call> = nodes
            .iter()
            .map(|(node, users)| self.node_lease("refresh", lease, node, users))
            .collect();
        self.call_each(&self.scripts.node_lease, &calls).await?;

        // Then one script per user, all in one pipeline.
        let keep = millis(KEEP_LAPSED.max(ttl));
        let mut by_user: Vec<Call> = Vec::new();
        let mut sorted: Vec<&PresenceEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.user);
        for entry in sorted {
            let key = self.user_key(entry.user);
            if by_user.last().is_none_or(|c| c.keys[0] != key) {
                by_user.push(Call::new(key, vec![millis(ttl), keep.clone()]));
            }
            let json =
                serde_json::to_string(entry).map_err(|e| PresenceError::Backend(e.to_string()))?;
            let args = &mut by_user.last_mut().expect("pushed above").args;
            args.push(entry.device.to_string());
            args.push(json);
        }
        // In pipelines of a bounded size: a node's refresh names every user it holds.
        for chunk in by_user.chunks(PIPELINE) {
            self.call_each(&self.scripts.set_online, chunk).await?;
        }
        // And the nodes again: however late the devices' leases were written, the
        // nodes' now end after them.
        let calls: Vec<Call> = nodes
            .iter()
            .map(|(node, _)| self.node_lease("refresh", lease, node, &[]))
            .collect();
        self.call_each(&self.scripts.node_lease, &calls).await?;
        Ok(())
    }

    async fn set_offline(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &NodeId,
    ) -> Result<(), PresenceError> {
        self.call(
            &self.scripts.set_offline,
            Call::new(
                self.user_key(user),
                vec![device.to_string(), node.to_string()],
            ),
        )
        .await?;
        Ok(())
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError> {
        let mut users = users.to_vec();
        users.sort_unstable();
        users.dedup();
        let calls: Vec<Call> = users
            .iter()
            .map(|&u| Call::new(self.user_key(u), Vec::new()))
            .collect();
        let mut entries = Vec::new();
        let mut values = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(PIPELINE) {
            values.extend(self.call_each(&self.scripts.online, chunk).await?);
        }
        for value in values {
            let jsons: Vec<String> = value
                .convert()
                .map_err(|e| PresenceError::Backend(e.to_string()))?;
            // One entry this version cannot read must not hide the others.
            for json in jsons {
                match decode(&json) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => tracing::warn!(error = %e, "a presence entry left out"),
                }
            }
        }
        Ok(entries)
    }

    async fn others_online(&self, node: &NodeId) -> Result<bool, PresenceError> {
        let value = self
            .call(
                &self.scripts.others_online,
                Call::new(self.nodes_key(), vec![node.to_string()]),
            )
            .await?;
        let others: i64 = value
            .convert()
            .map_err(|e| PresenceError::Backend(e.to_string()))?;
        Ok(others == 1)
    }

    async fn claim_lapsed(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        self.claim(node, "lapsed").await
    }

    async fn claim_own(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        self.claim(node, "own").await
    }

    async fn leave(
        &self,
        node: &NodeId,
        devices: &[(UserId, DeviceId)],
        after: Duration,
    ) -> Result<(), PresenceError> {
        // The devices' leases end now (their fields stay for the claim)...
        let mut sorted: Vec<&(UserId, DeviceId)> = devices.iter().collect();
        sorted.sort_by_key(|(u, _)| *u);
        let mut calls: Vec<Call> = Vec::new();
        let mut users = Vec::new();
        for (user, device) in sorted {
            let key = self.user_key(*user);
            if calls.last().is_none_or(|c| c.keys[0] != key) {
                calls.push(Call::new(key, vec![node.to_string()]));
                users.push(*user);
            }
            calls
                .last_mut()
                .expect("pushed above")
                .args
                .push(device.to_string());
        }
        for chunk in calls.chunks(PIPELINE) {
            self.call_each(&self.scripts.lapse, chunk).await?;
        }
        // ...and the node's `after` from now, with its users last seen now.
        self.call(
            &self.scripts.node_lease,
            self.node_lease("leave", after, node, &users),
        )
        .await?;
        Ok(())
    }
}
