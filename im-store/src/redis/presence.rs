//! [`Presence`] on Redis, shared by every node of a cluster.
//!
//! Layout (`P` is the prefix):
//! - `P:presence:{u<id>}`: a hash per user, one field per online device; the value is
//!   `<lease end, ms>|<the entry as JSON>`. Leases are timed by Redis's own clock (`TIME`
//!   inside the scripts), so nodes with skewed clocks agree. The key expires with its
//!   longest lease; a lapsed field is ignored by reads and dropped by the next write.
//! - `P:presence-nodes`: a sorted set of node ids, scored by when the node's last lease
//!   ends (plus [`NODE_MARGIN`]); `others_online` reads it.
//!
//! Every operation on a user is one Lua script on that user's key (one slot, so it runs
//! on Redis Cluster too); a lookup for many users sends their scripts in one pipeline:
//! one round trip for a group's fan-out, however many members.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::{ClusterHash, CustomCommand, Value};
use im_core::model::{DeviceId, UserId};
use im_core::presence::{NodeId, Presence, PresenceEntry, PresenceError};

use super::{DEFAULT_PREFIX, check_prefix, connect, unavailable};

/// How much longer than its devices' leases a node counts as up for `others_online`: it
/// covers the moment between the node's lease and its devices' being written, and may only
/// make `others_online` say `true` a little longer (which the contract allows).
pub(crate) const NODE_MARGIN: Duration = Duration::from_secs(1);

/// Redis time in milliseconds, as a Lua prelude of every script.
const NOW: &str = "local t = redis.call('TIME')\n\
                   local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/// KEYS[1]: the user's hash. ARGV[1]: ttl in ms; then pairs of device, entry JSON.
const SET_ONLINE: &str = r#"
local lease = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], lease .. '|' .. ARGV[i + 1])
end
local last = lease
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ends = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if ends == nil or ends <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif ends > last then
    last = ends
  end
end
redis.call('PEXPIREAT', KEYS[1], last)
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

/// KEYS[1]: the user's hash. ARGV[1]: device, ARGV[2]: node. Removes the device's entry
/// if it names that node.
const SET_OFFLINE: &str = r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
local bar = v and string.find(v, '|', 1, true)
if bar then
  local ok, entry = pcall(cjson.decode, string.sub(v, bar + 1))
  if ok and type(entry) == 'table' and entry.node == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
return 0
"#;

/// KEYS[1]: the nodes' sorted set. ARGV[1]: lease in ms; then node ids. Only lengthens;
/// drops lapsed nodes; the set expires with its last lease.
const NODE_LEASE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ends = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', ends, ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return 0
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
    node_lease: Script,
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

/// `EVALSHA` or `EVAL` of one script on one key, routed by that key's slot.
fn eval_command(by_sha: bool) -> CustomCommand {
    let name = if by_sha { "EVALSHA" } else { "EVAL" };
    // The arguments are: the script or its SHA-1, the number of keys (1), the key.
    CustomCommand::new_static(name, ClusterHash::Offset(2), false)
}

fn eval_args(script: &str, key: &str, args: &[String]) -> Vec<String> {
    let mut all = Vec::with_capacity(3 + args.len());
    all.push(script.to_owned());
    all.push("1".to_owned());
    all.push(key.to_owned());
    all.extend(args.iter().cloned());
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
                set_offline: Script::new(SET_OFFLINE),
                node_lease: Script::new(NODE_LEASE),
                others_online: Script::read_only(OTHERS_ONLINE),
            }),
        })
    }

    fn user_key(&self, user: UserId) -> String {
        format!("{}:presence:{{u{}}}", self.prefix, user.0)
    }

    fn nodes_key(&self) -> String {
        format!("{}:presence-nodes", self.prefix)
    }

    /// Runs `script` on `key` with `args`.
    async fn call(
        &self,
        script: &Script,
        key: String,
        args: Vec<String>,
    ) -> Result<Value, PresenceError> {
        let mut results = self.call_each(script, &[(key, args)]).await?;
        Ok(results.pop().unwrap_or(Value::Null))
    }

    /// Runs `script` once per `(key, args)`, all in one pipeline; the results in order.
    async fn call_each(
        &self,
        script: &Script,
        calls: &[(String, Vec<String>)],
    ) -> Result<Vec<Value>, PresenceError> {
        let sha = script.sha(&self.client).await?;
        let pipeline = self.client.pipeline();
        for (key, args) in calls {
            let _: () = pipeline
                .custom(eval_command(true), eval_args(sha, key, args))
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
                let (key, args) = &calls[i];
                let _: () = pipeline
                    .custom(eval_command(false), eval_args(&script.lua, key, args))
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
}

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
        // The nodes first: a node must never have a live device while it is not listed.
        let mut nodes: Vec<&str> = entries.iter().map(|e| e.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let mut node_args = vec![millis(ttl.min(MAX_TTL) + NODE_MARGIN)];
        node_args.extend(nodes.iter().map(|n| n.to_string()));
        self.call(
            &self.scripts.node_lease,
            self.nodes_key(),
            node_args.clone(),
        )
        .await?;

        // Then one script per user, all in one pipeline.
        let mut by_user: Vec<(String, Vec<String>)> = Vec::new();
        let mut sorted: Vec<&PresenceEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.user);
        for entry in sorted {
            let key = self.user_key(entry.user);
            if by_user.last().is_none_or(|(k, _)| *k != key) {
                by_user.push((key, vec![millis(ttl)]));
            }
            let json =
                serde_json::to_string(entry).map_err(|e| PresenceError::Backend(e.to_string()))?;
            let args = &mut by_user.last_mut().expect("pushed above").1;
            args.push(entry.device.to_string());
            args.push(json);
        }
        self.call_each(&self.scripts.set_online, &by_user).await?;
        // And the nodes again: however late the devices' leases were written, the
        // nodes' now end after them.
        self.call(&self.scripts.node_lease, self.nodes_key(), node_args)
            .await?;
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
            self.user_key(user),
            vec![device.to_string(), node.to_string()],
        )
        .await?;
        Ok(())
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError> {
        let mut users = users.to_vec();
        users.sort_unstable();
        users.dedup();
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let calls: Vec<(String, Vec<String>)> = users
            .iter()
            .map(|&u| (self.user_key(u), Vec::new()))
            .collect();
        let mut entries = Vec::new();
        for value in self.call_each(&self.scripts.online, &calls).await? {
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
                self.nodes_key(),
                vec![node.to_string()],
            )
            .await?;
        let others: i64 = value
            .convert()
            .map_err(|e| PresenceError::Backend(e.to_string()))?;
        Ok(others == 1)
    }
}
