// The chat page: one WebSocket to /ws speaking the protocol of docs/protocol.md (JSON
// text frames: `hello` first, requests with ids, replies, events), shared by the tabs of
// one browser (see "Tabs").
//
// Rules this file keeps:
// - Every user-provided string reaches the DOM through textContent (never innerHTML).
// - Styles are classes and `hidden`, never inline styles (the server's CSP forbids them).
// - Attachments are fetched only from same-origin /v1/attachments/… paths, with the token,
//   and shown through blob: URLs; a URL from a message never becomes an src as it is.
// - Storage is the truth: on connect, reconnect and `resync` the page re-reads
//   `conversations` and pages `history` after the last seq it has (protocol.md, "Staying
//   in sync"); a message is identified by (conversation, seq), so duplicates merge.
'use strict';

(() => {
  const TOKEN_KEY = 'im.token';
  const DEVICE_KEY = 'im.device';
  const OPEN_KEY = 'im.open';
  const PAGE = 50; // history page when opening or scrolling back
  const CATCH_UP_PAGE = 200; // history page when catching up (the server's maximum)
  const REQUEST_TIMEOUT_MS = 20000;
  const PING_MS = 30000;
  const TYPING_REPEAT_MS = 3000; // `typing` active=true at most this often while typing
  const TYPING_GAP_MS = 1200; // after a stop, the next start waits this long (the server's typing_interval is 1 s)
  const MAX_BACKOFF_MS = 30000;
  const ATTACHMENT_URL = /^\/v1\/attachments\/[A-Za-z0-9_-][A-Za-z0-9._~-]{0,199}$/;

  const $ = (id) => document.getElementById(id);

  /** A new element with an optional class, text (as textContent) and data-testid. */
  function el(tag, cls, text, testid) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (testid) e.dataset.testid = testid;
    return e;
  }

  function randomHex(n) {
    const bytes = new Uint8Array(Math.ceil(n / 2));
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').slice(0, n);
  }

  /** Like the Rust client's `new_client_id`: 12 hex digits of milliseconds, 20 random. */
  function newClientId() {
    return Date.now().toString(16).padStart(12, '0').slice(-12) + randomHex(20);
  }

  function store(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (_) {
      // Storage may be disabled; the page still works for this tab.
    }
  }
  function load(key) {
    try {
      return localStorage.getItem(key);
    } catch (_) {
      return null;
    }
  }

  function deviceId() {
    let id = load(DEVICE_KEY);
    if (!id || !/^[A-Za-z0-9._:-]{1,64}$/.test(id)) {
      id = 'web-' + randomHex(16);
      store(DEVICE_KEY, id);
    }
    return id;
  }

  function deviceName() {
    const ua = navigator.userAgent;
    const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge'
      : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
    return browser + ' (web)';
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  class ApiError extends Error {
    constructor(code, message, retryAfterMs, proof) {
      super(message || code);
      this.code = code;
      this.retryAfterMs = retryAfterMs;
      this.proof = proof; // for proof_required: 'code', 'invite', … when the server says
    }
  }
  /** Errors that mean "not sent, or unknown whether it was": retry after reconnecting. */
  const isConnectionError = (e) => e && ['disconnected', 'offline', 'timeout'].includes(e.code);

  // ---------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------

  const state = {
    token: load(TOKEN_KEY),
    device: deviceId(),
    me: null, // the logged-in user
    users: new Map(), // id -> public profile
    usersLoading: new Set(),
    friends: new Map(), // id -> since
    incoming: new Map(), // from -> request
    outgoing: new Map(), // to -> request
    presence: new Map(), // id -> {online, last_seen}
    groups: new Map(), // id -> group
    convs: new Map(), // conversation id -> Conv (see getConv)
    open: null, // id of the open conversation
    typing: new Map(), // conversation id -> Map(user -> timeout handle)
    outbox: [], // sends not yet acknowledged: {conversation, client_id, body, tries}
    flushing: false,
    syncing: null, // the running sync, a promise
    syncAgain: false,
    typingSentAt: 0,
    typingStoppedAt: 0,
    typingTimer: null,
    typingConv: null,
    blobs: new Map(), // attachment url?conversation=… -> Promise<blob: URL>
    drafts: new Map(), // conversation id -> text typed and not sent, while another is open
    blocked: new Set(), // users this user blocked
    replyTo: null, // {conversation, seq}: the message the next text sent quotes
  };

  function resetState() {
    document.title = 'Chat';
    $('account').hidden = true;
    state.drafts.clear();
    state.blocked.clear();
    state.me = null;
    state.users.clear();
    state.friends.clear();
    state.incoming.clear();
    state.outgoing.clear();
    state.presence.clear();
    state.groups.clear();
    state.convs.clear();
    state.open = null;
    for (const timers of state.typing.values()) for (const t of timers.values()) clearTimeout(t);
    state.typing.clear();
    state.outbox = [];
    clearTimeout(state.typingTimer);
    state.typingTimer = null;
    state.typingConv = null;
    for (const p of state.blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    state.blobs.clear();
    msgEls.clear();
    $('messages').replaceChildren();
    clearSearch();
  }

  function directId(a, b) {
    return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
  }

  function getConv(id) {
    let c = state.convs.get(id);
    if (!c) {
      const d = /^d:(\d+):(\d+)$/.exec(id);
      const g = /^g:(\d+)$/.exec(id);
      c = {
        id,
        kind: d ? 'direct' : 'group',
        peer: d && state.me ? (Number(d[1]) === state.me.id ? Number(d[2]) : Number(d[1])) : null,
        group: g ? Number(g[1]) : null,
        lastSeq: 0, // newest seq known to exist
        seenSeq: 0, // every seq up to this one is in `messages` (or hidden); valid once loaded
        loaded: false, // a history page was read since the page loaded
        hasOlder: false,
        loadingOlder: false,
        catchingUp: false,
        readSeq: 0,
        deliveredSeq: 0,
        ackedSeq: 0,
        peerReadSeq: 0,
        peerDeliveredSeq: 0,
        readers: new Map(), // groups: user -> read seq, from receipts
        lastMessage: null,
        lastActivity: 0,
        messages: new Map(), // seq -> message
        quoted: new Map(), // seq -> a quoted message read on its own (not in `messages`)
        pins: [], // pinned messages, newest first: {seq, by, at}
        mentionSeq: 0, // the newest seq that mentions this user
        members: null, // a group's member ids, once read (for @mentions)
        quoting: new Set(), // seqs of quoted messages being read
        marking: false,
      };
      state.convs.set(id, c);
    }
    return c;
  }

  const unread = (c) => Math.max(0, c.lastSeq - c.readSeq);

  function name(id) {
    const u = state.users.get(id);
    if (u) return u.display_name || u.username;
    return `User ${id}`;
  }

  function convTitle(c) {
    if (c.kind === 'direct') return c.peer === null ? 'Chat' : name(c.peer);
    const g = state.groups.get(c.group);
    return g ? g.name : `Group ${c.group}`;
  }

  // ---------------------------------------------------------------------------------
  // Connection
  // ---------------------------------------------------------------------------------

  const conn = {
    ws: null,
    ready: false, // `hello` answered
    nextId: 1,
    pending: new Map(), // id -> {resolve, reject, timer}
    backoff: 0,
    retryTimer: null,
    retryAt: 0,
    pingTimer: null,
    noReconnect: false, // after `kicked` with a code that says not to
    readyWaiters: [],
    session: false, // logged in on this connection
  };

  function connect() {
    clearTimeout(conn.retryTimer);
    conn.retryTimer = null;
    conn.noReconnect = false;
    if (conn.ws && conn.ws.readyState <= WebSocket.OPEN) return;
    const url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws';
    let ws;
    try {
      ws = tabs.leader ? new WebSocket(url) : new TabSocket();
    } catch (_) {
      scheduleReconnect();
      return;
    }
    conn.ws = ws;
    conn.ready = false;
    conn.session = false;
    setConnection('connecting');
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (ev) => {
      if (ws === conn.ws) onFrame(ev.data);
    };
    ws.onclose = () => onClose(ws);
    ws.onerror = () => {}; // `close` follows
  }

  async function onOpen(ws) {
    let hello;
    try {
      hello = await send(ws, { type: 'hello', versions: [1], client: 'web/1.0' });
    } catch (e) {
      showBanner(`The server refused the connection: ${e.message}`);
      if (e.code === 'unsupported_version') conn.noReconnect = true;
      ws.close();
      return;
    }
    conn.ready = true;
    conn.backoff = 0;
    if (tabs.leader) tabsReady(hello);
    hideBanner();
    const idle = Number(hello.idle_timeout_ms) || 90000;
    clearInterval(conn.pingTimer);
    conn.pingTimer = setInterval(() => {
      request({ type: 'ping' }).catch(() => {});
    }, Math.min(PING_MS, Math.max(1000, Math.floor(idle / 3))));
    for (const w of conn.readyWaiters.splice(0)) w.resolve();
    setConnection('online');
    if (state.token) await resume();
    else if ($('auth').hidden) showAuth(); // keep what the login screen says
  }

  function onClose(ws) {
    if (ws !== conn.ws) return;
    if (tabs.leader) tabsClosed();
    conn.ws = null;
    conn.ready = false;
    conn.session = false;
    clearInterval(conn.pingTimer);
    for (const [, p] of conn.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError('disconnected', 'the connection closed'));
    }
    conn.pending.clear();
    setConnection('offline');
    if (conn.noReconnect) return;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(conn.retryTimer);
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** conn.backoff);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    conn.backoff = Math.min(conn.backoff + 1, 10);
    conn.retryAt = Date.now() + delay;
    conn.retryTimer = setTimeout(connect, delay);
    showBanner(`Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s…`, 'Reconnect now', connect);
  }

  /** Resolves once a connection has answered `hello`, opening one if needed. */
  function whenReady(timeoutMs = 10000) {
    if (conn.ready) return Promise.resolve();
    if (!conn.ws) connect();
    return new Promise((resolve, reject) => {
      const waiter = { resolve: () => { clearTimeout(timer); resolve(); } };
      const timer = setTimeout(() => {
        conn.readyWaiters = conn.readyWaiters.filter((w) => w !== waiter);
        reject(new ApiError('offline', 'cannot reach the server'));
      }, timeoutMs);
      conn.readyWaiters.push(waiter);
    });
  }

  function send(ws, frame) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new ApiError('offline', 'not connected'));
        return;
      }
      const id = conn.nextId++;
      const timer = setTimeout(() => {
        conn.pending.delete(id);
        reject(new ApiError('timeout', 'the server did not answer'));
      }, REQUEST_TIMEOUT_MS);
      conn.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ id, ...frame }));
    });
  }

  /** Sends a request on the current connection; resolves with the reply's `reply`. */
  function request(frame) {
    if (!conn.ready) return Promise.reject(new ApiError('offline', 'not connected'));
    const sent = send(conn.ws, frame);
    if (CHANGES.has(frame.type)) sent.then(() => post({ kind: 'changed' }), () => {});
    return sent;
  }

  /**
   * Requests whose effects the server pushes to the user's other devices but not to the
   * session that made them, which the tabs share: the other tabs catch up instead.
   * (Sends and reads are told to them exactly, with `tellTabs`.)
   */
  const CHANGES = new Set(['request_friend', 'accept_friend', 'decline_friend', 'remove_friend',
    'block', 'unblock', 'create_group', 'add_members', 'join_group', 'leave_group', 'kick_member',
    'set_role', 'rename_group', 'transfer_group', 'recall', 'edit', 'delete_for_me']);

  function onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return; // not JSON: nothing this page can do with it
    }
    if (!frame || typeof frame !== 'object') return;
    if (tabs.leader && relayed(frame, text)) return;
    if (frame.type === 'reply' || frame.type === 'error') {
      const p = conn.pending.get(frame.id);
      if (p) {
        conn.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.type === 'reply') p.resolve(frame.reply || {});
        else {
          const e = frame.error || {};
          p.reject(new ApiError(e.code || 'internal', e.message, e.retry_after_ms, e.proof));
        }
      } else if (frame.type === 'error' && frame.id === undefined) {
        const e = frame.error || {};
        showBanner(`Server: ${e.message || e.code}`);
      }
      return;
    }
    if (frame.type === 'event' && frame.event) {
      try {
        onEvent(frame.event);
      } catch (err) {
        console.error('event handler failed', err);
      }
    }
  }


  // ---------------------------------------------------------------------------------
  // Tabs: one connection for all the tabs of a browser
  // ---------------------------------------------------------------------------------
  // Every tab of this page is one device (its id is in localStorage), and the server keeps
  // one session per device: a second tab's connection would replace the first tab's, which
  // would stop there. So one tab, the leader (whichever holds the Web Lock `im.leader`),
  // keeps the WebSocket, and the others reach the server through it over a
  // BroadcastChannel, with a socket of the same shape (`TabSocket`): the rest of this file
  // does not know which it has. The leader answers a follower's `hello`, `ping` and
  // `resume` from its own connection and session, passes its other requests on under ids
  // of its own, and passes every event on. When the leader's tab closes, another takes
  // the lock and connects; the followers' sockets close and reconnect to it, and their
  // unanswered sends go again with the same client_id.

  const TAB_ID = randomHex(16);
  const tabs = {
    channel: null, // BroadcastChannel, when the browser has it and Web Locks
    leader: false,
    hello: null, // leader: the `hello` reply of its connection, once answered
    session: null, // leader: the session reply its connection is logged in with
    resuming: false, // leader: its own `resume` is under way
    waiting: [], // leader: follower frames that wait for `hello` or the session
    relays: new Map(), // leader: our request id -> {sock, id} of a follower's request
    sockets: new Map(), // follower: socket id -> TabSocket
  };

  function post(message) {
    if (tabs.channel) tabs.channel.postMessage(message);
  }

  /** A follower's connection: a WebSocket's shape, carried by the leader's. */
  class TabSocket {
    constructor() {
      this.id = randomHex(16);
      this.readyState = 0; // CONNECTING, as a WebSocket's
      tabs.sockets.set(this.id, this);
      post({ kind: 'open', tab: TAB_ID, sock: this.id });
    }

    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      post({ kind: 'frame', tab: TAB_ID, sock: this.id, text });
    }

    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      tabs.sockets.delete(this.id);
      post({ kind: 'close', sock: this.id });
      setTimeout(() => this.onclose && this.onclose(), 0);
    }

    opened() {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      if (this.onopen) this.onopen();
    }

    deliver(text) {
      if (this.readyState === 1 && this.onmessage) this.onmessage({ data: text });
    }
  }

  function startTabs() {
    if (typeof BroadcastChannel !== 'function' || !navigator.locks) {
      tabs.leader = true; // every tab on its own, as before
      connect();
      return;
    }
    tabs.channel = new BroadcastChannel('im.tabs');
    tabs.channel.onmessage = (ev) => onTabMessage(ev.data || {});
    navigator.locks.request('im.leader', () => {
      becomeLeader();
      return new Promise(() => {}); // held until this tab closes
    });
    connect(); // as a follower until the lock is ours
  }

  function becomeLeader() {
    tabs.leader = true;
    const old = conn.ws;
    conn.ws = null;
    if (old) old.close();
    conn.ready = false;
    conn.session = false;
    for (const [, p] of conn.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError('disconnected', 'the connection moved to this tab'));
    }
    conn.pending.clear();
    conn.backoff = 0;
    post({ kind: 'leader', tab: TAB_ID }); // followers reconnect through this tab
    connect();
  }

  /** Tells the other tabs an event this tab's own request caused, as if pushed. */
  function tellTabs(event) {
    post({ kind: 'local', event });
  }

  function onTabMessage(m) {
    // For every tab, leader or not: what another tab did on the shared session.
    if (m.kind === 'local' && m.event && conn.session) {
      onEvent(m.event);
      return;
    }
    if (m.kind === 'changed' && conn.session) {
      sync();
      return;
    }
    if (m.kind === 'flush') {
      if (tabs.leader) flushOutbox();
      return;
    }
    if (tabs.leader) {
      if (m.kind === 'open') answerOpen(m.sock);
      else if (m.kind === 'frame') fromFollower(m.sock, m.text);
      return;
    }
    if (m.kind === 'opened') {
      const sock = tabs.sockets.get(m.sock);
      if (sock) sock.opened();
    } else if (m.kind === 'frame') {
      const sock = tabs.sockets.get(m.sock);
      if (sock) sock.deliver(m.text);
    } else if (m.kind === 'event') {
      for (const sock of tabs.sockets.values()) sock.deliver(m.text);
    } else if (m.kind === 'closed' || m.kind === 'leader') {
      for (const sock of [...tabs.sockets.values()]) sock.close();
    }
  }

  /** Leader: a follower's socket opens once this tab's connection has said hello. */
  function answerOpen(sock) {
    if (tabs.hello) post({ kind: 'opened', sock });
    else tabs.waiting.push({ sock, open: true });
  }

  function toFollower(sock, frame) {
    post({ kind: 'frame', sock, text: JSON.stringify(frame) });
  }

  function fromFollower(sock, text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    const reply = (r) => toFollower(sock, { type: 'reply', id: frame.id, reply: r });
    switch (frame.type) {
      case 'hello':
        if (tabs.hello) reply(tabs.hello);
        else tabs.waiting.push({ sock, text });
        return;
      case 'ping':
        reply({ type: 'pong' });
        return;
      case 'resume':
        // The tabs share one token and one session.
        if (tabs.session && frame.token === state.token) reply(tabs.session);
        else if (tabs.resuming) tabs.waiting.push({ sock, text });
        else relay(sock, frame);
        return;
      default:
        relay(sock, frame);
    }
  }

  /** Leader: sends a follower's request on this tab's connection under an id of ours. */
  function relay(sock, frame) {
    if (!conn.ready || !conn.ws) {
      toFollower(sock, { type: 'error', id: frame.id, error: { code: 'unavailable', message: 'not connected' } });
      return;
    }
    const id = conn.nextId++;
    tabs.relays.set(id, { sock, id: frame.id, type: frame.type });
    conn.ws.send(JSON.stringify({ ...frame, id }));
  }

  /** Leader: handles what the server sent for followers; true if it was only theirs. */
  function relayed(frame, text) {
    if (frame.type === 'event') {
      post({ kind: 'event', text });
      return false; // this tab handles it too
    }
    const r = (frame.type === 'reply' || frame.type === 'error') && tabs.relays.get(frame.id);
    if (!r) return false;
    tabs.relays.delete(frame.id);
    toFollower(r.sock, { ...frame, id: r.id });
    if (frame.type === 'reply') {
      // The session is this connection's: a follower's login or logout changes this tab too.
      if (r.type === 'login' && frame.reply && frame.reply.token) {
        setToken(frame.reply.token);
        enterApp(frame.reply);
      } else if (r.type === 'logout') {
        conn.session = false;
        tabs.session = null;
        setToken(null);
        resetState();
        closeConversation();
        showAuth('Logged out in another tab.');
      }
    }
    return true;
  }

  /** Leader: this tab's connection said hello; followers waiting for it go on. */
  function tabsReady(hello) {
    tabs.hello = hello;
    flushWaiting();
  }

  /** Leader: this tab's connection is logged in; followers waiting to resume go on. */
  function tabsSession(session) {
    tabs.session = { type: 'session', user: session.user, device: session.device };
    flushWaiting();
  }

  function flushWaiting() {
    const waiting = tabs.waiting.splice(0);
    for (const w of waiting) {
      if (w.open) answerOpen(w.sock);
      else fromFollower(w.sock, w.text);
    }
  }

  /** Leader: this tab's connection closed; so do the followers' (they reconnect). */
  function tabsClosed() {
    tabs.hello = null;
    tabs.session = null;
    tabs.waiting = [];
    tabs.relays.clear();
    post({ kind: 'closed' });
  }

  // ---------------------------------------------------------------------------------
  // Session
  // ---------------------------------------------------------------------------------

  async function resume() {
    tabs.resuming = true;
    try {
      const s = await request({ type: 'resume', token: state.token });
      tabs.resuming = false;
      await enterApp(s);
    } catch (e) {
      tabs.resuming = false;
      if (tabs.leader) flushWaiting(); // followers' resumes go to the server now
      if (e.code === 'unauthorized') {
        setToken(null);
        resetState();
        showAuth('Your session has ended. Please log in again.', true);
      } else if (e.code === 'device_limit') {
        showAuth(e.message, true);
      } else if (!isConnectionError(e)) {
        showBanner(`Could not resume: ${e.message}`);
      }
    }
  }

  async function enterApp(session) {
    const user = session.user;
    if (state.me && state.me.id !== user.id) resetState();
    state.me = user;
    state.users.set(user.id, user);
    for (const c of state.convs.values()) {
      if (c.kind === 'direct' && c.peer === null) state.convs.delete(c.id);
    }
    conn.session = true;
    state.outbox = loadOutbox();
    if (tabs.leader) tabsSession(session);
    showApp();
    await sync();
    // The chat this tab had open before a reload, if it is still one of the user's.
    const saved = openBefore();
    if (!state.open && saved && state.convs.has(saved) && (!saved.startsWith('g:') || state.groups.has(Number(saved.slice(2))))) {
      openConversation(saved);
    }
  }

  /** Which chat this tab has open, kept across a reload (per tab: sessionStorage). */
  function rememberOpen(id) {
    try {
      if (id) sessionStorage.setItem(OPEN_KEY, id);
      else sessionStorage.removeItem(OPEN_KEY);
    } catch (_) {
      // Storage may be disabled: the page opens on the list then.
    }
  }

  function openBefore() {
    try {
      return sessionStorage.getItem(OPEN_KEY);
    } catch (_) {
      return null;
    }
  }

  function setToken(token) {
    state.token = token;
    store(TOKEN_KEY, token);
  }

  /**
   * Catches up with storage: contacts, groups, conversations, then for each loaded
   * conversation the history after its last seq. Called on (re)connect and `resync`.
   */
  function sync() {
    if (state.syncing) {
      state.syncAgain = true;
      return state.syncing;
    }
    state.syncing = (async () => {
      try {
        do {
          state.syncAgain = false;
          await syncOnce();
        } while (state.syncAgain && conn.session);
      } catch (e) {
        if (e.code === 'unauthorized') {
          setToken(null);
          resetState();
          showAuth('Your session has ended. Please log in again.', true);
        } else if (!isConnectionError(e)) {
          showBanner(`Sync failed: ${e.message}`);
        }
      } finally {
        state.syncing = null;
      }
    })();
    return state.syncing;
  }

  async function syncOnce() {
    const [friends, requests, groups, convs] = await Promise.all([
      request({ type: 'friends' }),
      request({ type: 'friend_requests' }),
      request({ type: 'my_groups' }),
      request({ type: 'conversations' }),
    ]);
    applyFriends(friends.friends || []);
    applyRequests(requests);
    applyGroups(groups.groups || []);
    for (const c of convs.conversations || []) applyConversation(c);
    const ids = new Set([...state.friends.keys(), ...state.incoming.keys(), ...state.outgoing.keys()]);
    for (const c of state.convs.values()) {
      if (c.peer !== null) ids.add(c.peer);
      if (c.lastMessage) ids.add(c.lastMessage.sender);
    }
    ensureUsers([...ids]);
    refreshPresence([...state.friends.keys()]);
    render();
    const open = state.open && state.convs.get(state.open);
    for (const c of state.convs.values()) {
      if (c.loaded && c.lastSeq > c.seenSeq) await catchUp(c);
    }
    if (open && !open.loaded) await loadLatest(open);
    if (open) markReadIfVisible(open);
    flushOutbox();
  }

  function applyFriends(list) {
    state.friends.clear();
    for (const f of list) state.friends.set(f.user, f.since);
  }

  function applyRequests(r) {
    state.incoming.clear();
    state.outgoing.clear();
    for (const q of r.incoming || []) state.incoming.set(q.from, q);
    for (const q of r.outgoing || []) state.outgoing.set(q.to, q);
  }

  function applyGroups(list) {
    state.groups.clear();
    for (const g of list) {
      state.groups.set(g.id, g);
      const c = getConv(`g:${g.id}`);
      c.lastActivity = Math.max(c.lastActivity, g.created_at || 0);
    }
    if (state.open && state.open.startsWith('g:') && !state.groups.has(Number(state.open.slice(2)))) {
      closeConversation(); // no longer a member
    }
  }

  function applyConversation(s) {
    const c = getConv(s.conversation);
    c.lastSeq = Math.max(c.lastSeq, s.last_seq || 0);
    c.readSeq = Math.max(c.readSeq, s.read_seq || 0);
    c.deliveredSeq = Math.max(c.deliveredSeq, s.delivered_seq || 0, c.readSeq);
    c.ackedSeq = Math.max(c.ackedSeq, c.deliveredSeq);
    c.peerReadSeq = Math.max(c.peerReadSeq, s.peer_read_seq || 0);
    c.peerDeliveredSeq = Math.max(c.peerDeliveredSeq, s.peer_delivered_seq || 0, c.peerReadSeq);
    if (s.last_message) notePreview(c, s.last_message);
    c.mentionSeq = Math.max(c.mentionSeq, s.mentioned || 0);
  }

  function notePreview(c, m) {
    if (!c.lastMessage || m.seq >= c.lastMessage.seq) c.lastMessage = m;
    c.lastActivity = Math.max(c.lastActivity, m.sent_at || 0);
  }

  async function ensureUsers(ids) {
    const missing = [...new Set(ids)].filter(
      (id) => typeof id === 'number' && !state.users.has(id) && !state.usersLoading.has(id));
    if (!missing.length) return;
    for (const id of missing) state.usersLoading.add(id);
    try {
      for (let i = 0; i < missing.length; i += 500) {
        const r = await request({ type: 'users', users: missing.slice(i, i + 500) });
        for (const u of r.users || []) state.users.set(u.id, u);
      }
      namesVersion += 1; // names changed: rebuild the open chat's messages
      render();
    } catch (_) {
      // Shown as "User N" until the next sync.
    } finally {
      for (const id of missing) state.usersLoading.delete(id);
    }
  }

  async function refreshPresence(ids) {
    if (!ids.length) return;
    try {
      for (let i = 0; i < ids.length; i += 500) {
        const r = await request({ type: 'presence', users: ids.slice(i, i + 500) });
        for (const p of r.users || []) state.presence.set(p.user, p);
      }
      render();
    } catch (_) {
      // `unavailable`: the dots stay as they are; events still update them.
    }
  }

  async function refreshGroups() {
    try {
      const r = await request({ type: 'my_groups' });
      applyGroups(r.groups || []);
      render();
    } catch (_) {
      // Next sync.
    }
  }

  async function refreshContacts() {
    try {
      const [f, r, b] = await Promise.all([request({ type: 'friends' }),
        request({ type: 'friend_requests' }), request({ type: 'blocked_users' })]);
      applyFriends(f.friends || []);
      applyRequests(r);
      state.blocked = new Set(b.users || []);
      ensureUsers([...state.friends.keys(), ...state.incoming.keys(), ...state.outgoing.keys()]);
      render();
    } catch (_) {
      // Next sync.
    }
  }

  // ---------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------

  function onEvent(ev) {
    switch (ev.type) {
      case 'message':
        if (ev.message) {
          receiveMessage(ev.message);
          notify(ev.message);
        }
        break;
      case 'receipt':
        onReceipt(ev);
        break;
      case 'typing':
        onTyping(ev);
        break;
      case 'presence':
        state.presence.set(ev.user, ev);
        render();
        break;
      case 'friend_request': {
        const q = ev.request || {};
        if (state.me && q.to === state.me.id) state.incoming.set(q.from, q);
        else if (state.me && q.from === state.me.id) state.outgoing.set(q.to, q);
        ensureUsers([q.from, q.to]);
        render();
        break;
      }
      case 'friend_added':
        if (state.outgoing.has(ev.user)) setHint('friend-status', `${name(ev.user)} accepted your request.`);
        state.friends.set(ev.user, Date.now());
        state.incoming.delete(ev.user);
        state.outgoing.delete(ev.user);
        ensureUsers([ev.user]);
        refreshPresence([ev.user]);
        render();
        break;
      case 'friend_request_declined':
        if (state.outgoing.has(ev.user)) setHint('friend-status', `${name(ev.user)} declined your request.`);
        state.incoming.delete(ev.user);
        state.outgoing.delete(ev.user);
        render();
        break;
      case 'user_updated':
        if (ev.user && typeof ev.user.id === 'number') {
          state.users.set(ev.user.id, ev.user);
          if (state.me && ev.user.id === state.me.id) state.me = ev.user;
          render();
        }
        break;
      case 'friend_removed':
        state.friends.delete(ev.user);
        state.presence.delete(ev.user);
        render();
        break;
      case 'blocked':
      case 'unblocked':
        refreshContacts();
        break;
      case 'reaction':
        onReaction(ev);
        break;
      case 'pinned': {
        const c = state.convs.get(ev.conversation);
        if (c && c.id === state.open) loadPins(c);
        break;
      }
      case 'message_hidden': {
        const c = state.convs.get(ev.conversation);
        if (c && c.messages.delete(ev.seq)) renderIfOpen(c);
        break;
      }
      case 'kicked':
        onKicked(ev);
        break;
      case 'resync':
        sync();
        break;
      default:
        // signal, call_handled and anything newer: not handled by this page.
        break;
    }
  }

  function onKicked(ev) {
    const code = ev.code || 'other';
    const reason = ev.reason || 'signed out by the server';
    conn.session = false;
    if (code === 'shutdown') return; // the close follows; reconnect with backoff
    conn.noReconnect = true;
    // The token is gone with these: back to the login screen, the reason shown.
    if (['revoked', 'password_changed', 'disabled', 'deleted'].includes(code)) {
      setToken(null);
      resetState();
      showAuth(`You were logged out: ${reason}.`, true);
      return;
    }
    // replaced, device_limit, other: not by itself (protocol.md, `kicked`); the user may.
    showBanner(`Disconnected: ${reason}.`, 'Reconnect', () => {
      hideBanner();
      connect();
    });
  }

  /**
   * A desktop notification for a message from someone else while this tab is hidden, if
   * the user allowed them (asked once, at login). One per chat: a newer one replaces it
   * (`tag`), and so do other tabs' for the same chat.
   */
  function notify(m) {
    if (!document.hidden || !state.me || m.sender === state.me.id) return;
    if (typeof Notification !== 'function' || Notification.permission !== 'granted') return;
    if (m.body && m.body.type === 'system') return;
    const c = getConv(m.conversation);
    const title = c.kind === 'group' ? `${name(m.sender)} in ${convTitle(c)}` : name(m.sender);
    try {
      const n = new Notification(title, { body: preview(m), tag: m.conversation });
      n.onclick = () => {
        window.focus();
        openConversation(m.conversation);
        n.close();
      };
    } catch (_) {
      // Some browsers allow notifications only from a service worker: none then.
    }
  }

  /** Asks once whether notifications may be shown (called on a click: browsers want one). */
  function askForNotifications() {
    if (typeof Notification === 'function' && Notification.permission === 'default') {
      Notification.requestPermission().catch(() => {});
    }
  }

  function receiveMessage(m) {
    if (!m || typeof m.seq !== 'number' || typeof m.conversation !== 'string') return;
    const c = getConv(m.conversation);
    const own = state.me && m.sender === state.me.id;
    const gap = c.loaded && m.seq > c.seenSeq + 1;
    insertMessages(c, [m]);
    if (c.loaded && m.seq === c.seenSeq + 1) c.seenSeq = m.seq;
    c.lastSeq = Math.max(c.lastSeq, m.seq);
    notePreview(c, m);
    if (!own && state.me && (m.mentions || []).includes(state.me.id)) c.mentionSeq = Math.max(c.mentionSeq, m.seq);
    if (own || bringsMeIn(m)) {
      // Sending moves the sender's cursors (protocol.md, Receipts); the notice that
      // brings a member into a group starts theirs (it is not unread to them).
      c.readSeq = Math.max(c.readSeq, m.seq);
      c.deliveredSeq = Math.max(c.deliveredSeq, m.seq);
    } else {
      if (c.kind === 'direct') {
        c.peerReadSeq = Math.max(c.peerReadSeq, m.seq);
        c.peerDeliveredSeq = Math.max(c.peerDeliveredSeq, m.seq);
      } else {
        c.readers.set(m.sender, Math.max(c.readers.get(m.sender) || 0, m.seq));
      }
      stopTypingOf(c.id, m.sender);
      if (!markReadIfVisible(c)) ack(c, m.seq);
    }
    const ids = [m.sender, ...systemUsers(m.body)];
    if (c.peer !== null) ids.push(c.peer);
    ensureUsers(ids);
    if (c.kind === 'group' && (m.body && m.body.type === 'system' || !state.groups.has(c.group))) {
      c.members = null; // read again when next needed
      refreshGroups();
    }
    if (gap) catchUp(c);
    render();
  }

  /** Whether `m` is the group notice that made this user a member. */
  function bringsMeIn(m) {
    const e = m.body && m.body.type === 'system' && m.body.event;
    if (!e || !state.me) return false;
    const me = state.me.id;
    switch (e.kind) {
      case 'group_created': return (e.members || []).includes(me);
      case 'members_added': return (e.users || []).includes(me);
      case 'member_joined': return e.user === me;
      default: return false;
    }
  }

  /**
   * The reactions a history page lists, onto its messages: every message of the page gets
   * its list (empty when it has none), and the reader's own reaction.
   */
  function applyReactions(c, list, reactions) {
    const seqs = new Set(list.map((m) => m.seq));
    const by = new Map();
    for (const r of reactions || []) {
      if (!by.has(r.seq)) by.set(r.seq, []);
      by.get(r.seq).push(r);
    }
    for (const seq of seqs) {
      const rs = by.get(seq) || [];
      const mine = rs.find((r) => r.mine);
      setReactions(c, seq, rs, mine ? mine.emoji : null);
    }
  }

  /** Replaces a message's reactions (and the reader's own, unless `mine` is undefined). */
  function setReactions(c, seq, reactions, mine) {
    const m = c.messages.get(seq);
    if (!m) return;
    const next = reactions.map(({ emoji, count, users }) => ({ emoji, count, users }));
    const was = JSON.stringify([m.reactions || [], m.myReaction || null]);
    m.reactions = next;
    if (mine !== undefined) m.myReaction = mine;
    if (JSON.stringify([m.reactions, m.myReaction || null]) !== was) m._v = (m._v || 0) + 1;
  }

  function onReaction(ev) {
    const c = state.convs.get(ev.conversation);
    if (!c) return;
    const own = state.me && ev.user === state.me.id;
    setReactions(c, ev.seq, ev.reactions || [], own ? (ev.emoji || null) : undefined);
    renderIfOpen(c);
  }

  /** Sets (or with null takes back) this user's reaction to `m`. */
  async function react(c, m, emoji) {
    // The reply is the message's reactions after the change (this session gets no push).
    const r = await request({ type: 'react', conversation: c.id, seq: m.seq, emoji });
    applyReactions(c, [m], r.reactions);
    renderIfOpen(c);
  }

  function insertMessages(c, list) {
    for (const m of list) {
      const had = c.messages.get(m.seq);
      if (had && had.body !== m.body && JSON.stringify(had.body) !== JSON.stringify(m.body)) {
        m._v = (had._v || 0) + 1;
      } else if (had) {
        continue;
      }
      c.messages.set(m.seq, m);
      // A recall or an edit is a message of its own that changes the one it names.
      const e = m.body && m.body.type === 'system' && m.body.event;
      if (e && (e.kind === 'message_recalled' || e.kind === 'message_edited') && e.seq !== m.seq) {
        const target = c.messages.get(e.seq);
        if (target) {
          target.body = e.kind === 'message_edited' ? e.body : m.body;
          target.edited_at = m.sent_at;
          target._v = (target._v || 0) + 1;
        }
      }
    }
  }

  function onReceipt(r) {
    const c = getConv(r.conversation);
    const seq = r.seq || 0;
    if (state.me && r.user === state.me.id) {
      if (r.kind === 'read') c.readSeq = Math.max(c.readSeq, seq);
      c.deliveredSeq = Math.max(c.deliveredSeq, seq);
    } else if (c.kind === 'direct') {
      if (r.kind === 'read') c.peerReadSeq = Math.max(c.peerReadSeq, seq);
      c.peerDeliveredSeq = Math.max(c.peerDeliveredSeq, seq);
    } else if (r.kind === 'read') {
      c.readers.set(r.user, Math.max(c.readers.get(r.user) || 0, seq));
    }
    render();
  }

  function onTyping(ev) {
    if (!state.me || ev.user === state.me.id) return;
    let timers = state.typing.get(ev.conversation);
    if (!timers) {
      timers = new Map();
      state.typing.set(ev.conversation, timers);
    }
    clearTimeout(timers.get(ev.user));
    timers.delete(ev.user);
    if (ev.active !== false) {
      const ms = Number(ev.expires_ms) || 6000;
      timers.set(ev.user, setTimeout(() => stopTypingOf(ev.conversation, ev.user), ms));
      ensureUsers([ev.user]);
    }
    renderTyping();
  }

  function stopTypingOf(conversation, user) {
    const timers = state.typing.get(conversation);
    if (timers && timers.has(user)) {
      clearTimeout(timers.get(user));
      timers.delete(user);
      renderTyping();
    }
  }

  // ---------------------------------------------------------------------------------
  // History, receipts
  // ---------------------------------------------------------------------------------

  /** The newest page, when a conversation is first opened. */
  async function loadLatest(c) {
    try {
      const r = await request({ type: 'history', conversation: c.id, limit: PAGE });
      const msgs = r.messages || [];
      insertMessages(c, msgs);
      applyReactions(c, msgs, r.reactions);
      c.loaded = true;
      c.hasOlder = !!r.more;
      for (const m of msgs) {
        c.seenSeq = Math.max(c.seenSeq, m.seq);
        c.lastSeq = Math.max(c.lastSeq, m.seq);
        notePreview(c, m);
      }
      ensureUsers(msgs.flatMap((m) => [m.sender, ...systemUsers(m.body)]));
      renderIfOpen(c, 'bottom');
      if (c.lastSeq > c.seenSeq) await catchUp(c);
      if (c.kind === 'group') loadGroupReceipts(c);
      fillScreen(c);
    } catch (e) {
      if (!isConnectionError(e)) showChatError(`Could not load messages: ${e.message}`);
    }
  }

  /** Pages through `history` after the last seq seen until `more` is false. */
  async function catchUp(c) {
    if (c.catchingUp) return;
    c.catchingUp = true;
    try {
      for (;;) {
        const r = await request({ type: 'history', conversation: c.id, after: c.seenSeq, limit: CATCH_UP_PAGE });
        const msgs = r.messages || [];
        insertMessages(c, msgs);
        applyReactions(c, msgs, r.reactions);
        for (const m of msgs) {
          c.seenSeq = Math.max(c.seenSeq, m.seq);
          c.lastSeq = Math.max(c.lastSeq, m.seq);
          notePreview(c, m);
        }
        ensureUsers(msgs.flatMap((m) => [m.sender, ...systemUsers(m.body)]));
        if (!r.more || !msgs.length) break;
      }
      // Everything up to the newest is here now (hidden messages are left out).
      c.seenSeq = Math.max(c.seenSeq, c.lastSeq);
      render();
      if (!markReadIfVisible(c)) ack(c, c.seenSeq);
    } catch (e) {
      if (!isConnectionError(e)) showChatError(`Could not catch up: ${e.message}`);
    } finally {
      c.catchingUp = false;
    }
  }

  /** Scrolling back: the page before the oldest message shown. */
  async function loadOlder(c) {
    if (c.loadingOlder || !c.hasOlder || !c.messages.size) return;
    c.loadingOlder = true;
    renderIfOpen(c);
    const before = Math.min(...c.messages.keys());
    try {
      const r = await request({ type: 'history', conversation: c.id, before, limit: PAGE });
      const msgs = r.messages || [];
      c.hasOlder = !!r.more && msgs.length > 0;
      insertMessages(c, msgs);
      applyReactions(c, msgs, r.reactions);
      ensureUsers(msgs.flatMap((m) => [m.sender, ...systemUsers(m.body)]));
    } catch (e) {
      if (!isConnectionError(e)) showChatError(`Could not load older messages: ${e.message}`);
    } finally {
      c.loadingOlder = false;
    }
    renderIfOpen(c, 'keep');
    fillScreen(c);
  }

  /** Loads older pages while the list does not fill the pane (nothing to scroll yet). */
  function fillScreen(c) {
    const list = $('messages');
    if (state.open === c.id && c.hasOlder && list.scrollHeight <= list.clientHeight + 4) loadOlder(c);
  }

  function chatVisible() {
    if (document.visibilityState !== 'visible' || $('app').hidden) return false;
    if (window.matchMedia('(max-width: 720px)').matches) return $('app').classList.contains('chat-open');
    return true;
  }

  /** mark_read when the conversation is open and on screen; true if it is. */
  function markReadIfVisible(c) {
    if (state.open !== c.id || !chatVisible()) return false;
    markRead(c);
    return true;
  }

  async function markRead(c) {
    if (c.marking || c.lastSeq <= c.readSeq || !conn.session) return;
    c.marking = true;
    const seq = c.lastSeq;
    try {
      const r = await request({ type: 'mark_read', conversation: c.id, seq });
      tellTabs({ type: 'receipt', conversation: c.id, user: state.me.id, kind: 'read', seq: r.read_seq || seq });
      c.readSeq = Math.max(c.readSeq, r.read_seq || seq);
      c.deliveredSeq = Math.max(c.deliveredSeq, c.readSeq);
      c.ackedSeq = Math.max(c.ackedSeq, c.readSeq);
      render();
    } catch (_) {
      // Next time the conversation is looked at.
    } finally {
      c.marking = false;
    }
    if (c.lastSeq > c.readSeq && state.open === c.id && chatVisible()) markRead(c);
  }

  /** Delivered cursor: one `ack` for the highest seq that reached this device. */
  function ack(c, seq) {
    if (seq <= c.ackedSeq || !conn.session) return;
    c.ackedSeq = seq;
    request({ type: 'ack', conversation: c.id, seq }).then(
      (r) => { c.deliveredSeq = Math.max(c.deliveredSeq, r.delivered_seq || seq); },
      () => { c.ackedSeq = Math.min(c.ackedSeq, c.deliveredSeq); });
  }

  /** Group receipts are pushed only to senders; on opening, ask for the latest own message. */
  async function loadGroupReceipts(c) {
    const own = lastOwnSeq(c);
    if (!own) return;
    try {
      const r = await request({ type: 'receipts', conversation: c.id, seq: own, limit: 500 });
      for (const x of r.receipts || []) {
        c.readers.set(x.user, Math.max(c.readers.get(x.user) || 0, x.read_seq || 0));
      }
      renderIfOpen(c);
    } catch (_) {
      // The marker shows what events told.
    }
  }

  function lastOwnSeq(c) {
    let best = 0;
    for (const m of c.messages.values()) {
      if (m.sender === state.me.id && m.seq > best && isShown(m) && m.body.type !== 'system') best = m.seq;
    }
    return best;
  }

  // ---------------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------------

  // What the user sent and the server has not stored yet is kept in localStorage, one
  // outbox per user shared by the tabs, until the server answers: a reload, a closed
  // tab, a lost connection or a kick loses none of it. It shows in the chat as pending,
  // or as failed with Retry and Discard when the server refused it. One tab sends it
  // (the one with the connection); a retry after an unknown outcome uses the same
  // client_id, so nothing is stored twice.

  const outboxKey = () => state.me && `im.outbox.${state.me.id}`;

  /** The outbox as stored (what other tabs added included). */
  function loadOutbox() {
    const key = outboxKey();
    if (!key) return [];
    try {
      const items = JSON.parse(load(key) || '[]');
      return Array.isArray(items) ? items.filter((i) => i && i.client_id && i.conversation) : [];
    } catch (_) {
      return [];
    }
  }

  /** Changes the stored outbox with `change(items)`, and shows the result. */
  function changeOutbox(change) {
    const items = loadOutbox();
    change(items);
    const key = outboxKey();
    if (key) store(key, items.length ? JSON.stringify(items) : null);
    state.outbox = items;
    const c = state.open && state.convs.get(state.open);
    if (c) renderChat(c);
  }

  function sendBody(conversation, body, replyTo, mentions) {
    const item = { conversation, client_id: newClientId(), body, tries: 0, failed: null };
    if (replyTo) item.reply_to = replyTo;
    if (mentions && mentions.length) item.mentions = mentions;
    changeOutbox((items) => items.push(item));
    requestFlush();
  }

  /** Sends the outbox from the tab with the connection. */
  function requestFlush() {
    if (tabs.leader) flushOutbox();
    else post({ kind: 'flush' });
  }

  /**
   * Sends the outbox in order. A send whose fate is unknown (the connection closed) stays
   * and is sent again after the next resume with the same client_id, which the server
   * answers with the first result (`duplicate: true`) if it had stored it. A refused one
   * stays too, marked failed, until the user retries or discards it.
   */
  async function flushOutbox() {
    if (state.flushing || !conn.session || !tabs.leader) return;
    state.flushing = true;
    try {
      for (;;) {
        const item = loadOutbox().find((i) => !i.failed);
        if (!item || !conn.session) break;
        try {
          const frame = { type: 'send', conversation: item.conversation, client_id: item.client_id, body: item.body };
          if (item.reply_to) frame.reply_to = item.reply_to;
          if (item.mentions) frame.mentions = item.mentions;
          const r = await request(frame);
          const message = {
            id: r.message_id,
            conversation: r.conversation || item.conversation,
            seq: r.seq,
            sender: state.me.id,
            sender_device: state.device,
            client_id: item.client_id,
            body: item.body,
            sent_at: r.sent_at,
          };
          if (item.reply_to) message.reply_to = item.reply_to;
          if (item.mentions) message.mentions = item.mentions;
          changeOutbox((items) => {
            const at = items.findIndex((i) => i.client_id === item.client_id);
            if (at >= 0) items.splice(at, 1);
          });
          tellTabs({ type: 'message', message });
          receiveMessage(message);
        } catch (e) {
          item.tries += 1;
          const retry = (e.code === 'rate_limited' || e.code === 'unavailable' || e.code === 'timeout') && item.tries < 10;
          if (isConnectionError(e) || retry) {
            changeOutbox((items) => {
              const kept = items.find((i) => i.client_id === item.client_id);
              if (kept) kept.tries = item.tries;
            });
          }
          if (retry) {
            await sleep(Math.max(200, Math.min(Number(e.retryAfterMs) || 1000, 30000)));
            continue;
          }
          if (isConnectionError(e)) break; // pending; sent when the connection is back
          changeOutbox((items) => {
            const kept = items.find((i) => i.client_id === item.client_id);
            if (kept) kept.failed = e.message || e.code;
          });
        }
      }
    } finally {
      state.flushing = false;
    }
  }

  function retrySend(clientId) {
    changeOutbox((items) => {
      const item = items.find((i) => i.client_id === clientId);
      if (item) {
        item.failed = null;
        item.tries = 0;
      }
    });
    requestFlush();
  }

  function discardSend(clientId) {
    changeOutbox((items) => {
      const at = items.findIndex((i) => i.client_id === clientId);
      if (at >= 0) items.splice(at, 1);
    });
  }

  /** A line above each day's first message, and one above the first message that was
   * unread when the chat was opened. */
  function renderDividers(c, list, seqs) {
    for (const e of list.querySelectorAll('li.divider')) e.remove();
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    let lastDay = null;
    let newShown = false;
    for (const seq of seqs) {
      const m = c.messages.get(seq);
      const rec = msgEls.get(seq);
      if (!m || !rec) continue;
      const when = new Date(m.sent_at || Date.now());
      const day = when.toDateString();
      if (day !== lastDay) {
        const text = day === today.toDateString() ? 'Today'
          : day === yesterday.toDateString() ? 'Yesterday'
            : when.toLocaleDateString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' });
        list.insertBefore(el('li', 'divider day', text, 'day-separator'), rec.el);
        lastDay = day;
      }
      const fromOther = state.me && m.sender !== state.me.id;
      if (!newShown && c.newFrom !== undefined && seq > c.newFrom && fromOther) {
        list.insertBefore(el('li', 'divider new', 'New messages', 'new-messages'), rec.el);
        newShown = true;
      }
    }
  }

  /** The pending and failed sends of `c`, as the last items of its message list. */
  function renderPending(c, list) {
    for (const e of list.querySelectorAll('li.pending')) e.remove();
    for (const item of state.outbox) {
      if (item.conversation !== c.id) continue;
      const li = el('li', 'message own pending', null, item.failed ? 'message-failed' : 'message-pending');
      li.dataset.clientId = item.client_id;
      const body = item.body || {};
      const text = body.type === 'text' ? body.text : body.type === 'image' ? 'Image' : body.name || 'File';
      const bubble = el('div', 'bubble');
      if (item.reply_to) bubble.append(renderQuote(c, item.reply_to));
      bubble.append(el('span', null, text, 'pending-text'));
      li.append(bubble);
      if (item.failed) {
        const meta = el('span', 'meta error', `Not sent: ${item.failed} `);
        const retry = el('button', 'link', 'Retry', 'message-retry');
        retry.type = 'button';
        retry.addEventListener('click', () => retrySend(item.client_id));
        const discard = el('button', 'link', 'Discard', 'message-discard');
        discard.type = 'button';
        discard.addEventListener('click', () => discardSend(item.client_id));
        meta.append(retry, ' ', discard);
        li.append(meta);
      } else {
        li.append(el('span', 'meta', conn.session ? 'Sending…' : 'Waiting for the connection…', 'message-status'));
      }
      list.append(li);
    }
  }

  function sendTyping(active) {
    const conversation = active ? state.open : state.typingConv;
    if (!conversation || !conn.session) return;
    request({ type: 'typing', conversation, active }).catch(() => {});
  }

  function onComposerInput() {
    const text = $('message-input').value;
    if (!text.trim()) {
      stopTyping();
      return;
    }
    if (state.typingConv && state.typingConv !== state.open) stopTyping();
    if (state.typingConv === state.open && Date.now() - state.typingSentAt < TYPING_REPEAT_MS) return;
    if (state.typingTimer) return; // a start is on its way
    // The server relays one notice per user and conversation per `typing_interval` and
    // swallows the rest (protocol.md, Typing): a start right after a relayed stop (say,
    // typing again just after sending) would be lost, so it waits for the interval.
    const wait = state.typingStoppedAt + TYPING_GAP_MS - Date.now();
    if (wait > 0) {
      state.typingTimer = setTimeout(() => {
        state.typingTimer = null;
        if ($('message-input').value.trim()) startTyping();
      }, wait);
      return;
    }
    startTyping();
  }

  function startTyping() {
    if (!state.open) return;
    state.typingConv = state.open;
    state.typingSentAt = Date.now();
    sendTyping(true);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    state.typingTimer = null;
    if (!state.typingConv) return;
    sendTyping(false);
    state.typingConv = null;
    state.typingSentAt = 0;
    state.typingStoppedAt = Date.now();
  }

  /**
   * Uploads a file for the open chat and sends it: an image as `image` (with its size in
   * pixels), anything else the server accepts as `file` (images and PDF by default; the
   * server sniffs the bytes and answers 415 otherwise). XMLHttpRequest rather than fetch:
   * it reports upload progress, shown beside the message box.
   */
  async function uploadFile(file) {
    const c = state.open && state.convs.get(state.open);
    if (!c || !file) return;
    const attach = $('file').parentElement;
    const progress = $('upload-progress');
    attach.classList.add('busy');
    progress.value = 0;
    progress.hidden = false;
    hideChatError();
    try {
      const form = new FormData();
      form.append('conversation', c.id); // before the file: the server reads it first
      form.append('file', file, file.name);
      let res;
      try {
        res = await new Promise((resolve, reject) => {
          const xhr = new XMLHttpRequest();
          xhr.open('POST', '/v1/attachments');
          xhr.setRequestHeader('Authorization', 'Bearer ' + state.token);
          xhr.upload.onprogress = (e) => {
            if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
          };
          xhr.onload = () => resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, text: xhr.responseText });
          xhr.onerror = () => reject(new Error('network'));
          xhr.send(form);
        });
      } catch (_) {
        showChatError('Upload failed: cannot reach the server.');
        return;
      }
      let data = null;
      try {
        data = JSON.parse(res.text);
      } catch (_) {
        data = null;
      }
      if (!res.ok || !data) {
        const msg = data && typeof data.message === 'string' ? data.message : `HTTP ${res.status}`;
        const err = $('chat-error');
        showChatError(`Upload failed: ${msg}`);
        err.dataset.code = (data && data.code) || String(res.status);
        return;
      }
      if (typeof data.url !== 'string' || !ATTACHMENT_URL.test(data.url)) {
        showChatError('Upload failed: the server answered with an unexpected address.');
        return;
      }
      const mime = String(data.mime || file.type);
      const size = Number(data.size) || file.size;
      let body;
      if (mime.startsWith('image/')) {
        body = { type: 'image', url: data.url, mime, size };
        if (Number.isInteger(data.width)) body.width = data.width;
        if (Number.isInteger(data.height)) body.height = data.height;
      } else {
        body = { type: 'file', url: data.url, mime, size, name: String(file.name || 'file').slice(0, 255) };
      }
      sendBody(c.id, body);
    } finally {
      attach.classList.remove('busy');
      progress.hidden = true;
    }
  }


  /**
   * A same-origin attachment as a blob: URL (fetched once per page and conversation).
   * The server serves it to whoever may read a message showing it in `conversation`
   * (a forward shows it in another conversation than the one it was uploaded for).
   */
  function attachmentUrl(url, conversation) {
    if (typeof url !== 'string' || !ATTACHMENT_URL.test(url)) {
      return Promise.reject(new Error('not an attachment of this server'));
    }
    const where = url + '?conversation=' + encodeURIComponent(conversation);
    let p = state.blobs.get(where);
    if (!p) {
      p = fetch(where, { headers: { Authorization: 'Bearer ' + state.token }, credentials: 'omit' })
        .then((r) => {
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          return r.blob();
        })
        .then((b) => URL.createObjectURL(b));
      p.catch(() => state.blobs.delete(where));
      state.blobs.set(where, p);
    }
    return p;
  }

  // ---------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------

  let renderQueued = false;
  /** Re-renders on the next tick, once however many changes came in. */
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(() => {
      renderQueued = false;
      if ($('app').hidden) return;
      renderSidebar();
      const c = state.open && state.convs.get(state.open);
      if (c) renderChat(c);
      renderTitle();
    }, 0);
  }

  /** The tab's title counts what is unread, so a hidden tab shows it. */
  function renderTitle() {
    let n = 0;
    for (const c of state.convs.values()) {
      if (!(c.id === state.open && chatVisible())) n += unread(c);
    }
    const title = n > 0 ? `(${n}) Chat` : 'Chat';
    if (document.title !== title) document.title = title;
  }

  function renderIfOpen(c, scroll) {
    if (state.open === c.id) renderChat(c, scroll);
  }

  function dot(online, testid) {
    const d = el('span', 'dot ' + (online ? 'online' : 'offline'), null, testid);
    d.setAttribute('aria-label', online ? 'online' : 'offline');
    d.dataset.online = online ? 'true' : 'false';
    return d;
  }

  const isOnline = (id) => !!(state.presence.get(id) || {}).online;

  /**
   * A round badge with a name's initials (the first letters of its first two words), in
   * one of eight colours chosen by id, so the same person looks the same everywhere.
   */
  function avatar(title, id, group) {
    const words = String(title).trim().split(/\s+/).filter(Boolean);
    const initials = words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';
    const hue = Math.abs(Number(id) || 0) % 8;
    const a = el('span', `avatar avatar-${hue}${group ? ' group' : ''}`, initials, 'avatar');
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  function renderSidebar() {
    const me = state.me;
    if (!me) return;
    $('me-name').textContent = `${me.display_name || me.username} (@${me.username})`;

    // Conversations, most recent activity first.
    const convs = [...state.convs.values()].filter((c) =>
      (c.kind === 'direct' ? c.peer !== null && (c.lastSeq > 0 || c.lastMessage) : state.groups.has(c.group)) ||
      c.id === state.open);
    convs.sort((a, b) => b.lastActivity - a.lastActivity || b.lastSeq - a.lastSeq);
    $('conversations').replaceChildren(...convs.map((c) => {
      const li = el('li', 'clickable' + (c.id === state.open ? ' active' : ''), null, 'conversation-item');
      li.dataset.conversation = c.id;
      li.tabIndex = 0;
      li.append(avatar(convTitle(c), c.kind === 'direct' ? c.peer : c.group, c.kind === 'group'));
      if (c.kind === 'direct') li.append(dot(isOnline(c.peer), 'presence-dot'));
      else li.append(el('span', 'dot group-dot', null));
      const text = el('div', 'name');
      text.append(el('span', null, convTitle(c), 'conversation-name'));
      text.append(el('span', 'sub', c.lastMessage ? preview(c.lastMessage) : '', 'conversation-preview'));
      li.append(text);
      if (c.mentionSeq > c.readSeq) li.append(el('span', 'badge mention-badge', '@', 'conversation-mention'));
      const n = unread(c);
      const badge = el('span', 'badge', n, 'conversation-unread');
      badge.hidden = n === 0 || c.id === state.open && chatVisible();
      li.append(badge);
      li.addEventListener('click', () => openConversation(c.id));
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') openConversation(c.id); });
      return li;
    }));
    $('conversations-empty').hidden = convs.length > 0;

    // Friend requests.
    $('requests').replaceChildren(...[...state.incoming.values()].map((q) => {
      const li = el('li', 'request', null, 'friend-request');
      li.dataset.userId = String(q.from);
      const text = el('div', 'name');
      text.append(el('span', null, `${name(q.from)} wants to be friends`, 'friend-request-name'));
      if (q.note) text.append(el('span', 'sub', q.note, 'friend-request-note'));
      const accept = el('button', null, 'Accept', 'friend-accept');
      accept.type = 'button';
      accept.addEventListener('click', () => answerRequest('accept_friend', q.from, accept));
      const decline = el('button', 'secondary', 'Decline', 'friend-decline');
      decline.type = 'button';
      decline.addEventListener('click', () => answerRequest('decline_friend', q.from, decline));
      li.append(text, accept, decline);
      return li;
    }));
    $('outgoing').replaceChildren(...[...state.outgoing.values()].map((q) => {
      const li = el('li', 'request', null, 'friend-request-outgoing');
      li.dataset.userId = String(q.to);
      li.append(el('span', 'name', `Waiting for ${name(q.to)}`));
      const cancel = el('button', 'secondary', 'Cancel', 'friend-cancel');
      cancel.type = 'button';
      cancel.addEventListener('click', () => answerRequest('decline_friend', q.to, cancel));
      li.append(cancel);
      return li;
    }));

    // Friends, online first.
    const friends = [...state.friends.keys()].sort((a, b) =>
      (isOnline(b) - isOnline(a)) || name(a).localeCompare(name(b)));
    $('friends').replaceChildren(...friends.map((id) => {
      const li = el('li', 'clickable', null, 'friend-item');
      li.dataset.userId = String(id);
      li.tabIndex = 0;
      li.title = 'Open the chat';
      const u = state.users.get(id);
      const text = el('div', 'name');
      text.append(el('span', null, name(id), 'friend-name'));
      text.append(el('span', 'sub', (u ? '@' + u.username + ' · ' : '') + presenceText(id)));
      li.append(avatar(name(id), id, false), dot(isOnline(id), 'presence-dot'), text);
      const open = () => openConversation(directId(state.me.id, id));
      li.addEventListener('click', open);
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
      return li;
    }));
    $('friends-empty').hidden = friends.length > 0;

    // Groups.
    const groups = [...state.groups.values()].sort((a, b) => a.name.localeCompare(b.name));
    $('groups').replaceChildren(...groups.map((g) => {
      const li = el('li', 'clickable', null, 'group-item');
      li.dataset.groupId = String(g.id);
      li.tabIndex = 0;
      li.append(el('span', 'name', g.name, 'group-name-label'));
      const open = () => openConversation(`g:${g.id}`);
      li.addEventListener('click', open);
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
      return li;
    }));

    // Member choices for a new group, keeping what is ticked.
    const box = $('group-members');
    const ticked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    box.replaceChildren(...friends.map((id) => {
      const label = el('label');
      const input = el('input', null, null, 'group-member-option');
      input.type = 'checkbox';
      input.value = String(id);
      input.checked = ticked.has(String(id));
      label.append(input, document.createTextNode(name(id)));
      return label;
    }));
    if (!friends.length) box.append(el('span', 'empty', 'Add friends first.'));
  }

  function presenceText(id) {
    const p = state.presence.get(id);
    if (!p) return 'offline';
    if (p.online) return 'online';
    if (p.last_seen) return 'last seen ' + formatTime(p.last_seen, true);
    return 'offline';
  }

  function formatTime(ms, withDay) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (!withDay || d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString() + ' ' + time;
  }

  function preview(m) {
    const b = m.body || {};
    // Who wrote it: "You" for one's own; in a group, the sender's name.
    const who = state.me && m.sender === state.me.id ? 'You: '
      : String(m.conversation).startsWith('g:') ? `${name(m.sender)}: ` : '';
    switch (b.type) {
      case 'text': return who + b.text;
      case 'image': return who + 'Image';
      case 'file': return who + 'File: ' + (b.name || 'attachment');
      case 'system': return systemText(m);
      default: return who + 'Message';
    }
  }

  function systemUsers(body) {
    const e = body && body.type === 'system' && body.event;
    if (!e) return [];
    return [e.by, e.user, e.from, e.to, ...(e.users || []), ...(e.members || [])].filter((x) => typeof x === 'number');
  }

  function systemText(m) {
    const e = (m.body && m.body.event) || {};
    const names = (ids) => (ids || []).map(name).join(', ');
    switch (e.kind) {
      case 'group_created': return `${name(e.by)} created the group “${e.name}”`;
      case 'members_added': return `${name(e.by)} added ${names(e.users)}`;
      case 'member_joined': return `${name(e.user)} joined`;
      case 'member_left': return `${name(e.user)} left`;
      case 'member_kicked': return `${name(e.by)} removed ${name(e.user)}`;
      case 'renamed': return `${name(e.by)} renamed the group to “${e.name}”`;
      case 'role_changed': return `${name(e.by)} made ${name(e.user)} ${e.role === 'admin' ? 'an admin' : 'a member'}`;
      case 'owner_changed': return `${name(e.to)} is now the owner`;
      case 'message_recalled': return `${name(e.by)} recalled a message`;
      case 'message_edited': return `${name(m.sender)} edited a message`;
      default: return 'The conversation changed';
    }
  }

  /** Recall and edit notices are applied to their target and not shown themselves. */
  function isShown(m) {
    const e = m.body && m.body.type === 'system' && m.body.event;
    return !(e && (e.kind === 'message_recalled' || e.kind === 'message_edited') && e.seq !== m.seq);
  }

  const msgEls = new Map(); // seq -> {el, v, m, n} for the open conversation
  let namesVersion = 0; // bumped when user profiles arrive, which changes how messages read
  let olderEl = null;

  function renderChat(c, scroll) {
    $('chat-empty').hidden = true;
    $('chat-view').hidden = false;
    $('chat-title').textContent = convTitle(c);
    const dotEl = $('chat-dot');
    if (c.kind === 'direct') {
      dotEl.hidden = false;
      dotEl.className = 'dot ' + (isOnline(c.peer) ? 'online' : 'offline');
      $('chat-subtitle').textContent = presenceText(c.peer);
    } else {
      dotEl.hidden = true;
      $('chat-subtitle').textContent = 'group';
    }
    const peer = c.kind === 'direct' ? c.peer : null;
    $('chat-unfriend').hidden = peer === null || !state.friends.has(peer);
    $('chat-block').hidden = peer === null || state.blocked.has(peer);
    $('chat-unblock').hidden = peer === null || !state.blocked.has(peer);
    $('group-info').hidden = c.kind !== 'group';
    if (c.kind !== 'group') $('group-panel').hidden = true;

    const list = $('messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    const oldHeight = list.scrollHeight;
    const oldTop = list.scrollTop;

    if (!olderEl || olderEl.parentNode !== list) {
      olderEl = el('li', 'older', null, 'history-start');
      list.prepend(olderEl);
    }
    olderEl.textContent = !c.loaded ? 'Loading…' : c.loadingOlder ? 'Loading earlier messages…'
      : c.hasOlder ? 'Scroll up for earlier messages' : 'Beginning of the conversation';

    const seqs = [...c.messages.keys()].filter((s) => isShown(c.messages.get(s))).sort((a, b) => a - b);
    const keep = new Set(seqs);
    for (const [seq, rec] of msgEls) {
      if (!keep.has(seq)) {
        rec.el.remove();
        msgEls.delete(seq);
      }
    }
    let prev = olderEl;
    for (const seq of seqs) {
      const m = c.messages.get(seq);
      let rec = msgEls.get(seq);
      const q = quoteKey(c, m);
      const p = c.pins.some((x) => x.seq === seq); // the menu offers Pin or Unpin
      if (!rec || rec.v !== (m._v || 0) || rec.m !== m || rec.n !== namesVersion || rec.q !== q || rec.p !== p) {
        const fresh = { el: renderMessage(c, m), v: m._v || 0, m, n: namesVersion, q, p };
        if (rec) rec.el.replaceWith(fresh.el);
        rec = fresh;
        msgEls.set(seq, rec);
      }
      if (prev.nextSibling !== rec.el) list.insertBefore(rec.el, prev.nextSibling);
      prev = rec.el;
    }
    renderDividers(c, list, seqs);
    renderPending(c, list);
    renderReadMarker(c);
    renderTyping();

    if (scroll === 'bottom' || (scroll !== 'keep' && atBottom)) list.scrollTop = list.scrollHeight;
    else if (scroll === 'keep') list.scrollTop = list.scrollHeight - oldHeight + oldTop;
  }

  /** Whether a message can be forwarded: anything a client could send itself. */
  function forwardable(m) {
    return m.body && ['text', 'image', 'file', 'custom'].includes(m.body.type);
  }

  /**
   * The chats a message can be forwarded to, as buttons under it. Choosing one forwards
   * it there and opens that chat.
   */
  function forwardChooser(c, m) {
    for (const open of document.querySelectorAll('.forward-chooser')) open.remove();
    const box = el('div', 'forward-chooser', null, 'forward-chooser');
    box.append(el('span', 'forward-label', 'Forward to:'));
    const targets = [...state.convs.values()].filter((t) =>
      t.kind === 'direct' ? t.peer !== null && state.friends.has(t.peer) : state.groups.has(t.group));
    for (const f of state.friends.keys()) {
      const id = directId(state.me.id, f);
      if (!targets.some((t) => t.id === id)) targets.push(getConv(id));
    }
    for (const t of targets) {
      const b = el('button', 'link', convTitle(t), 'forward-target');
      b.type = 'button';
      b.addEventListener('click', async () => {
        box.remove();
        try {
          const r = await request({ type: 'forward', conversation: c.id, seq: m.seq, to: t.id, client_id: newClientId() });
          t.lastSeq = Math.max(t.lastSeq, r.seq);
          openConversation(t.id);
        } catch (e) {
          showChatError(e.message);
        }
      });
      box.append(b);
    }
    const cancel = el('button', 'link', 'Cancel', 'forward-cancel');
    cancel.type = 'button';
    cancel.addEventListener('click', () => box.remove());
    box.append(cancel);
    return box;
  }

  /** The reactions offered in a message's menu. */
  const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉'];

  function renderMessage(c, m) {
    const own = state.me && m.sender === state.me.id;
    const body = m.body || {};
    const li = el('li', 'message', null, 'message');
    li.dataset.seq = String(m.seq);
    li.dataset.sender = String(m.sender);
    if (body.type === 'system') {
      li.classList.add('system');
      li.append(el('div', 'bubble', systemText(m), 'message-system'));
      return li;
    }
    if (own) li.classList.add('own');
    if (!own && state.me && (m.mentions || []).includes(state.me.id)) li.classList.add('mentions-me');
    if (!own && c.kind === 'group') li.append(el('span', 'sender', name(m.sender), 'message-sender'));
    const bubble = el('div', 'bubble');
    if (m.forwarded) {
      if (!state.users.has(m.forwarded.sender)) ensureUsers([m.forwarded.sender]);
      bubble.append(el('span', 'forwarded', `Forwarded from ${name(m.forwarded.sender)}`, 'message-forwarded'));
    }
    if (m.reply_to) bubble.append(renderQuote(c, m.reply_to));
    switch (body.type) {
      case 'text':
        bubble.append(linked(body.text, m.mentions));
        break;
      case 'image':
        bubble.classList.add('media');
        bubble.append(renderImage(body, c.id));
        break;
      case 'file':
        bubble.append(renderFile(body, c.id));
        break;
      default:
        bubble.append(el('span', 'missing', 'A message this page cannot show', 'message-unsupported'));
    }
    li.append(bubble);
    if (m.reactions && m.reactions.length) li.append(renderReactions(c, m));
    const meta = el('span', 'meta', formatTime(m.sent_at || Date.now(), true));
    meta.title = new Date(m.sent_at || Date.now()).toLocaleString();
    if (m.edited_at) meta.append(el('span', 'edited', ' · edited'));
    meta.append(messageMenu(c, m, own));
    li.append(meta);
    return li;
  }

  /**
   * The message a reply quotes, above the reply's own content: its sender and the start of
   * what it says. Clicking it shows the quoted message when it is loaded. A quoted message
   * that is not loaded (older than the page, or from before a reload) is read from history
   * once and kept aside, so the loaded timeline keeps no gaps.
   */
  function renderQuote(c, seq) {
    const quote = el('button', 'quote', null, 'message-quote');
    quote.type = 'button';
    quote.dataset.seq = String(seq);
    const quoted = c.messages.get(seq) || c.quoted.get(seq);
    if (quoted) {
      const who = state.me && quoted.sender === state.me.id ? 'You' : name(quoted.sender);
      quote.append(el('span', 'quote-who', who, 'quote-sender'));
      quote.append(el('span', 'quote-text', quoteText(quoted), 'quote-text'));
    } else {
      quote.append(el('span', 'quote-text', 'Loading the quoted message…', 'quote-text'));
      loadQuoted(c, seq);
    }
    quote.addEventListener('click', () => {
      const target = $('messages').querySelector(`li.message[data-seq="${seq}"]`);
      if (!target) {
        jumpTo(c.id, seq); // older than the loaded pages: read back to it
        return;
      }
      target.scrollIntoView({ block: 'center', behavior: 'smooth' });
      target.classList.add('flash');
      setTimeout(() => target.classList.remove('flash'), 1200);
    });
    return quote;
  }

  /**
   * A message's reactions as chips: the emoji and its count, with who in the tooltip. The
   * reader's own is marked; clicking it takes it back, clicking another reacts with that.
   */
  function renderReactions(c, m) {
    const row = el('div', 'reactions', null, 'reactions');
    for (const r of m.reactions) {
      const chip = el('button', 'reaction', `${r.emoji} ${r.count}`, 'reaction-chip');
      chip.type = 'button';
      const mine = m.myReaction === r.emoji;
      if (mine) chip.classList.add('mine');
      chip.setAttribute('aria-pressed', String(mine));
      const names = r.users.map((u) => (state.me && u === state.me.id ? 'You' : name(u)));
      const more = r.count - r.users.length;
      chip.title = names.join(', ') + (more > 0 ? ` and ${more} more` : '');
      chip.addEventListener('click', () => {
        react(c, m, mine ? null : r.emoji).catch((e) => showChatError(e.message));
      });
      row.append(chip);
    }
    return row;
  }

  /** What a reply's quote shows depends on: the quoted message, once known, and its changes. */
  function quoteKey(c, m) {
    if (!m.reply_to) return '';
    const q = c.messages.get(m.reply_to) || c.quoted.get(m.reply_to);
    return q ? `${q._v || 0}:${q.body && q.body.type}:${q.edited_at || 0}` : '-';
  }

  function quoteText(m) {
    const b = m.body || {};
    switch (b.type) {
      case 'text': return b.text;
      case 'image': return 'Image';
      case 'file': return 'File: ' + (b.name || 'attachment');
      case 'recalled': return 'Recalled message';
      case 'system': return systemText(m);
      case 'missing': return 'Message not available';
      default: return 'Message';
    }
  }

  /** Reads one quoted message that is not loaded, then shows the chat again. */
  async function loadQuoted(c, seq) {
    if (c.quoting.has(seq)) return;
    c.quoting.add(seq);
    try {
      const r = await request({ type: 'history', conversation: c.id, after: seq - 1, limit: 1 });
      const m = (r.messages || []).find((x) => x.seq === seq);
      c.quoted.set(seq, m || { seq, sender: 0, body: { type: 'missing' } });
      renderIfOpen(c);
    } catch (_) {
      c.quoting.delete(seq); // tried again at the next render
    }
  }

  /** Starts a reply to `m`: the bar above the composer shows what it quotes. */
  function startReply(c, m) {
    state.replyTo = { conversation: c.id, seq: m.seq };
    renderReplyBar();
    $('message-input').focus();
  }

  function cancelReply() {
    state.replyTo = null;
    renderReplyBar();
  }

  function renderReplyBar() {
    const bar = $('reply-bar');
    const r = state.replyTo;
    const c = r && state.open === r.conversation && state.convs.get(r.conversation);
    bar.replaceChildren();
    bar.hidden = !c;
    if (!c) return;
    bar.append(el('span', 'reply-label', 'Replying to'), renderQuote(c, r.seq));
    const cancel = el('button', 'link', '✕', 'reply-cancel');
    cancel.type = 'button';
    cancel.title = 'Cancel the reply';
    cancel.addEventListener('click', cancelReply);
    bar.append(cancel);
  }

  /**
   * The "⋯" after a message's time: Reply, Forward, Pin and the quick reactions for any, Edit and Recall for one's own (the server decides
   * whether it is still allowed: the edit window, the recall rules) and Delete for me for
   * any. Edit asks for the new text; Recall and Delete confirm first.
   */
  function messageMenu(c, m, own) {
    const wrap = el('span', 'message-menu');
    const toggle = el('button', 'link', '⋯', 'message-menu');
    toggle.type = 'button';
    toggle.title = 'More';
    const actions = el('span', 'message-actions', null, 'message-actions');
    actions.hidden = true;
    toggle.addEventListener('click', () => { actions.hidden = !actions.hidden; });
    const action = (label, testid, run) => {
      const b = el('button', 'link', label, testid);
      b.type = 'button';
      b.addEventListener('click', async () => {
        actions.hidden = true;
        try {
          await run();
        } catch (e) {
          showChatError(e.message);
        }
      });
      actions.append(b);
    };
    if (m.body && m.body.type !== 'recalled') {
      action('Reply', 'message-reply', async () => startReply(c, m));
      if (forwardable(m)) {
        action('Forward', 'message-forward', async () => {
          actions.hidden = true;
          (wrap.closest('li') || wrap).append(forwardChooser(c, m));
        });
      }
      const isPinned = c.pins.some((p) => p.seq === m.seq);
      action(isPinned ? 'Unpin' : 'Pin', isPinned ? 'message-unpin' : 'message-pin', async () => togglePin(c, m, !isPinned));
      for (const emoji of QUICK_REACTIONS) {
        action(emoji, 'reaction-pick', async () => react(c, m, m.myReaction === emoji ? null : emoji));
      }
    }
    if (own && m.body && m.body.type === 'text') {
      action('Edit', 'message-edit', async () => {
        const text = window.prompt('Edit the message', m.body.text);
        if (text === null || !text.trim() || text === m.body.text) return;
        await request({ type: 'edit', conversation: c.id, seq: m.seq, client_id: newClientId(), body: { type: 'text', text } });
        await catchUp(c); // the edit is a message of its own, which this session is not sent
      });
    }
    if (own) {
      action('Recall', 'message-recall', async () => {
        if (!window.confirm('Recall this message for everyone?')) return;
        await request({ type: 'recall', conversation: c.id, seq: m.seq, client_id: newClientId() });
        await catchUp(c);
      });
    }
    action('Delete for me', 'message-delete', async () => {
      if (!window.confirm('Delete this message from your history (the others keep it)?')) return;
      await request({ type: 'delete_for_me', conversation: c.id, seq: m.seq });
      if (c.messages.delete(m.seq)) renderIfOpen(c);
    });
    wrap.append(toggle, actions);
    return wrap;
  }

  function renderImage(body, conversation) {
    const img = el('img', null, null, 'message-image');
    img.alt = 'Image';
    const w = Number(body.width);
    const h = Number(body.height);
    if (Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0 && w <= 20000 && h <= 20000) {
      img.width = Math.min(w, 320);
      img.height = Math.round(h * (Math.min(w, 320) / w));
    }
    img.addEventListener('click', () => { if (img.src) openViewer(img.src); });
    attachmentUrl(body.url, conversation).then(
      (src) => { img.src = src; },
      () => { img.replaceWith(el('span', 'missing', 'Image unavailable', 'message-image-missing')); });
    return img;
  }

  /** Shows an image at full size over the page; a click, Esc or × closes it. */
  function openViewer(src) {
    $('viewer-image').src = src; // a blob: URL made by attachmentUrl
    $('viewer').hidden = false;
    $('viewer-close').focus();
  }

  function closeViewer() {
    $('viewer').hidden = true;
    $('viewer-image').removeAttribute('src');
  }

  function renderFile(body, conversation) {
    const wrap = el('span');
    const label = `${body.name || 'File'} (${formatSize(body.size)})`;
    if (typeof body.url === 'string' && ATTACHMENT_URL.test(body.url)) {
      const b = el('button', 'link', label, 'message-file');
      b.type = 'button';
      b.addEventListener('click', async () => {
        try {
          const href = await attachmentUrl(body.url, conversation);
          const a = el('a');
          a.href = href;
          a.download = String(body.name || 'file');
          a.click();
        } catch (e) {
          showChatError(`Download failed: ${e.message}`);
        }
      });
      wrap.append(b);
    } else {
      wrap.append(el('span', null, label, 'message-file'));
    }
    return wrap;
  }

  function formatSize(n) {
    n = Number(n) || 0;
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  /**
   * A message's text, with its http(s) addresses as links that open in a new tab without
   * telling the target where they came from. Text stays text: only an address that
   * parses as an http or https URL becomes an `a`, built with textContent and href.
   */
  /** `text` into `into`, with `@name`s of mentioned users marked. */
  function appendMentions(into, text, names) {
    let at = 0;
    if (names.size) {
      for (const match of text.matchAll(MENTION)) {
        if (!names.has(match[1].toLowerCase())) continue;
        into.append(document.createTextNode(text.slice(at, match.index)));
        into.append(el('span', 'mention', match[0], 'message-mention'));
        at = match.index + match[0].length;
      }
    }
    into.append(document.createTextNode(text.slice(at)));
  }

  function linked(text, mentions) {
    const names = new Set((mentions || []).map((u) => ((state.users.get(u) || {}).username || '').toLowerCase()).filter(Boolean));
    const span = el('span', null, null, 'message-text');
    const urls = /\bhttps?:\/\/[^\s<>"']+/gi;
    let at = 0;
    for (const match of text.matchAll(urls)) {
      // Punctuation that ends a sentence is not part of the address.
      const url = match[0].replace(/[.,;:!?)\]}]+$/, '');
      let href = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === 'http:' || parsed.protocol === 'https:') href = parsed.href;
      } catch (_) {
        href = null;
      }
      if (!href) continue;
      appendMentions(span, text.slice(at, match.index), names);
      const a = el('a', null, url, 'message-link');
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      span.append(a);
      at = match.index + url.length;
    }
    appendMentions(span, text.slice(at), names);
    return span;
  }

  /** "Read" / "Seen by Bob, Carol and 3 others" under the newest own message. */
  function renderReadMarker(c) {
    for (const old of $('messages').querySelectorAll('.read-marker')) old.remove();
    const seq = lastOwnSeq(c);
    const rec = seq && msgEls.get(seq);
    if (!rec) return;
    let text;
    let read = false;
    let who = [];
    if (c.kind === 'direct') {
      read = c.peerReadSeq >= seq;
      text = read ? 'Read' : c.peerDeliveredSeq >= seq ? 'Delivered' : 'Sent';
    } else {
      for (const [user, s] of c.readers) if (user !== state.me.id && s >= seq) who.push(user);
      ensureUsers(who);
      who = who.map(name).sort((a, b) => a.localeCompare(b));
      read = who.length > 0;
      const shown = who.slice(0, 3).join(', ');
      const more = who.length - 3;
      text = !read ? 'Sent' : more > 0 ? `Seen by ${shown} and ${more} other${more > 1 ? 's' : ''}` : `Seen by ${shown}`;
    }
    const marker = el('span', 'read-marker', text, 'read-marker');
    marker.dataset.read = read ? 'true' : 'false';
    if (who.length) marker.title = `Seen by ${who.join(', ')}`;
    rec.el.append(marker);
  }

  function renderTyping() {
    const box = $('typing');
    const timers = state.open && state.typing.get(state.open);
    const who = timers ? [...timers.keys()] : [];
    if (!who.length) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    box.textContent = who.length === 1 ? `${name(who[0])} is typing…`
      : who.length === 2 ? `${name(who[0])} and ${name(who[1])} are typing…`
        : `${who.length} people are typing…`;
    box.hidden = false;
  }

  // ---------------------------------------------------------------------------------
  // Screens and actions
  // ---------------------------------------------------------------------------------

  function showAuth(message, isError) {
    $('app').hidden = true;
    $('auth').hidden = false;
    const status = $('auth-status');
    status.textContent = message || '';
    status.classList.toggle('error', !!isError);
  }

  function showApp() {
    $('auth').hidden = true;
    $('app').hidden = false;
    render();
  }

  function setConnection(text) {
    $('connection').textContent = text;
    $('me-dot').className = 'dot ' + (text === 'online' ? 'online' : 'offline');
  }

  function showBanner(text, actionLabel, action) {
    $('banner-text').textContent = text;
    const b = $('banner-action');
    b.hidden = !action;
    b.textContent = actionLabel || '';
    b.onclick = action || null;
    $('banner').hidden = false;
  }

  function hideBanner() {
    $('banner').hidden = true;
  }

  function setHint(id, text, isError) {
    const e = $(id);
    e.textContent = text;
    e.classList.toggle('error', !!isError);
  }

  function showChatError(text) {
    const e = $('chat-error');
    e.textContent = text;
    delete e.dataset.code;
    e.hidden = false;
  }

  function hideChatError() {
    $('chat-error').hidden = true;
  }

  function openConversation(id) {
    if (!state.me) return;
    const c = getConv(id);
    if (state.open !== id) {
      stopTyping();
      // What was typed and not sent waits for its chat (drafts live as long as the page).
      const input = $('message-input');
      if (state.open) state.drafts.set(state.open, input.value);
      input.value = state.drafts.get(id) || '';
      state.drafts.delete(id);
      fitComposer();
      state.open = id;
      rememberOpen(id);
      $('group-panel').hidden = true;
      // The "new messages" line goes above the first message unread when it was opened.
      c.newFrom = c.readSeq;
      msgEls.clear();
      olderEl = null;
      $('messages').replaceChildren();
      hideChatError();
      renderReplyBar();
      renderPinned(c);
    }
    $('app').classList.add('chat-open');
    renderChat(c, 'bottom');
    render();
    if (!c.loaded) loadLatest(c).then(() => markReadIfVisible(c));
    else {
      if (c.lastSeq > c.seenSeq) catchUp(c);
      markReadIfVisible(c);
      if (c.kind === 'group') loadGroupReceipts(c);
    }
    loadPins(c);
    if (c.kind === 'group' && !c.members) loadMembers(c);
    $('message-input').focus();
  }

  // Search: what was typed, after a pause, as the server's `search`; newest first, a page
  // at a time. `seq` counts the searches so an older answer never replaces a newer one.
  const search = { seq: 0, timer: null, query: '', before: null, hits: [] };

  function onSearchInput() {
    clearTimeout(search.timer);
    const query = $('search-input').value.trim();
    if (!query) {
      clearSearch();
      return;
    }
    search.timer = setTimeout(() => runSearch(query, false), 300);
  }

  function clearSearch() {
    clearTimeout(search.timer);
    search.seq++;
    search.query = '';
    search.hits = [];
    $('search-results').replaceChildren();
    $('search-results').hidden = true;
    $('search-status').hidden = true;
    $('search-more').hidden = true;
  }

  /** One page of results: the first for a new query, or the next when `more`. */
  async function runSearch(query, more) {
    const seq = ++search.seq;
    const frame = { type: 'search', query, limit: 20 };
    if (more && search.before) frame.before = search.before;
    setHint('search-status', 'Searching…');
    $('search-status').hidden = false;
    try {
      const r = await request(frame);
      if (seq !== search.seq) return;
      const msgs = r.messages || [];
      search.query = query;
      search.hits = more ? search.hits.concat(msgs) : msgs;
      search.before = msgs.length ? msgs[msgs.length - 1].id : null;
      $('search-more').hidden = !r.more;
      await ensureUsers(msgs.map((m) => m.sender));
      if (seq !== search.seq) return;
      renderSearch();
    } catch (e) {
      if (seq !== search.seq) return;
      setHint('search-status', e.message, true);
    }
  }

  function renderSearch() {
    const n = search.hits.length;
    setHint('search-status', n ? `${n}${$('search-more').hidden ? '' : '+'} found` : 'Nothing found');
    const words = search.query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
    $('search-results').hidden = !n;
    $('search-results').replaceChildren(...search.hits.map((m) => {
      const c = getConv(m.conversation);
      const li = el('li', 'clickable search-hit', null, 'search-hit');
      li.dataset.conversation = m.conversation;
      li.dataset.seq = String(m.seq);
      li.tabIndex = 0;
      const text = el('div', 'name');
      const head = `${convTitle(c)} · ${formatTime(m.sent_at, true)}`;
      text.append(el('span', null, head, 'search-hit-where'));
      const sub = el('span', 'sub', null, 'search-hit-text');
      highlight(sub, preview(m), words);
      text.append(sub);
      li.append(text);
      const go = () => jumpTo(m.conversation, m.seq);
      li.addEventListener('click', go);
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
      return li;
    }));
  }

  /** `text` into `into`, with the words that start with a searched word marked. */
  function highlight(into, text, words) {
    for (const part of text.split(/([\p{L}\p{N}]+)/u)) {
      const lower = part.toLowerCase();
      const hit = part && words.some((w) => (w.length > 1 ? lower.startsWith(w) : lower === w) || /\p{Script=Han}/u.test(w) && part.includes(w));
      into.append(hit ? el('mark', null, part) : document.createTextNode(part));
    }
  }

  /** Opens a chat at one message: older pages are read until it is there. */
  async function jumpTo(id, seq) {
    if (state.open !== id) openConversation(id);
    const c = getConv(id);
    for (let tries = 0; tries < 100 && state.open === id && !c.messages.has(seq); tries++) {
      if (c.loaded && c.hasOlder && !c.loadingOlder) await loadOlder(c);
      else await new Promise((r) => setTimeout(r, 50));
      if (c.loaded && !c.hasOlder && !c.loadingOlder && !c.messages.has(seq)) break;
    }
    const target = $('messages').querySelector(`li.message[data-seq="${seq}"]`);
    if (!target) return;
    target.scrollIntoView({ block: 'center' });
    target.classList.add('flash');
    setTimeout(() => target.classList.remove('flash'), 1500);
  }

  /** Reads the open chat's pinned messages and shows the newest above the messages. */
  async function loadPins(c) {
    try {
      const r = await request({ type: 'pins', conversation: c.id });
      c.pins = r.pins || [];
    } catch (_) {
      c.pins = [];
    }
    if (state.open === c.id) {
      renderPinned(c);
      renderChat(c);
    }
  }

  /**
   * The pinned bar: one pin at a time, the newest first; with several, the label steps
   * to the next (and round again), and the quote opens the chat at the pinned message.
   */
  function renderPinned(c) {
    const bar = $('pinned-bar');
    bar.replaceChildren();
    bar.hidden = !c.pins.length;
    if (!c.pins.length) return;
    c.pinAt = (c.pinAt || 0) % c.pins.length;
    const several = c.pins.length > 1;
    const label = el(several ? 'button' : 'span', several ? 'pinned-label link' : 'pinned-label',
      several ? `Pinned ${c.pinAt + 1}/${c.pins.length}` : 'Pinned', 'pinned-label');
    if (several) {
      label.type = 'button';
      label.title = 'Next pinned message';
      label.addEventListener('click', () => {
        c.pinAt = (c.pinAt + 1) % c.pins.length;
        renderPinned(c);
      });
    }
    bar.append(label, renderQuote(c, c.pins[c.pinAt].seq));
  }

  /** Pins `m`, or unpins it, then shows the list as the server has it. */
  async function togglePin(c, m, pin) {
    await request({ type: pin ? 'pin' : 'unpin', conversation: c.id, seq: m.seq });
    await loadPins(c);
  }

  function closeConversation() {
    stopTyping();
    if (state.open) state.drafts.set(state.open, $('message-input').value);
    $('message-input').value = '';
    fitComposer();
    rememberOpen(null);
    state.open = null;
    msgEls.clear();
    olderEl = null;
    $('messages').replaceChildren();
    $('chat-view').hidden = true;
    $('chat-empty').hidden = false;
    $('app').classList.remove('chat-open');
    render();
  }

  async function answerRequest(type, user, button) {
    button.disabled = true;
    try {
      await request({ type, user });
      if (type === 'accept_friend') {
        state.friends.set(user, Date.now());
        refreshPresence([user]);
      }
      state.incoming.delete(user);
      state.outgoing.delete(user);
      setHint('friend-status', type === 'accept_friend' ? `You and ${name(user)} are friends now.` : '');
      render();
    } catch (e) {
      button.disabled = false;
      setHint('friend-status', e.message, true);
    }
  }

  async function onFriendSubmit(ev) {
    ev.preventDefault();
    const input = $('friend-username');
    const username = input.value.trim();
    if (!username) return;
    setHint('friend-status', 'Looking up…');
    try {
      const found = await request({ type: 'find_user', username });
      const user = found.user;
      state.users.set(user.id, user);
      if (user.id === state.me.id) {
        setHint('friend-status', 'That is you.', true);
        return;
      }
      await request({ type: 'request_friend', user: user.id });
      input.value = '';
      if (state.incoming.has(user.id)) {
        // They had asked already: this accepted it (protocol.md, Contacts).
        state.incoming.delete(user.id);
        state.friends.set(user.id, Date.now());
        refreshPresence([user.id]);
        setHint('friend-status', `You and ${name(user.id)} are friends now.`);
      } else {
        state.outgoing.set(user.id, { from: state.me.id, to: user.id, created_at: Date.now() });
        setHint('friend-status', `Request sent to ${name(user.id)}.`);
      }
      render();
    } catch (e) {
      const text = e.code === 'not_found' ? 'No user with that name.'
        : e.code === 'conflict' ? 'You are friends already.' : e.message;
      setHint('friend-status', text, true);
    }
  }

  async function onGroupSubmit(ev) {
    ev.preventDefault();
    const groupName = $('group-name').value.trim();
    const members = [...$('group-members').querySelectorAll('input:checked')].map((i) => Number(i.value));
    if (!groupName) return;
    setHint('group-status', 'Creating…');
    try {
      const r = await request({ type: 'create_group', name: groupName, members, open: false });
      state.groups.set(r.group.id, r.group);
      const c = getConv(`g:${r.group.id}`);
      c.lastActivity = Math.max(c.lastActivity, r.group.created_at || Date.now());
      $('group-name').value = '';
      for (const i of $('group-members').querySelectorAll('input:checked')) i.checked = false;
      setHint('group-status', `Created “${r.group.name}” with ${r.member_count} members.`);
      $('group-create').open = false;
      openConversation(c.id);
    } catch (e) {
      setHint('group-status', e.message, true);
    }
  }

  /** The message box grows with its lines, up to six. */
  function fitComposer() {
    const input = $('message-input');
    input.rows = Math.min(6, Math.max(1, input.value.split('\n').length));
  }

  function onComposerSubmit(ev) {
    ev.preventDefault();
    const input = $('message-input');
    const text = input.value;
    if (!text.trim() || !state.open) return;
    input.value = '';
    fitComposer();
    stopTyping();
    hideChatError();
    const r = state.replyTo;
    const replyTo = r && r.conversation === state.open ? r.seq : null;
    cancelReply();
    hideMentionList();
    sendBody(state.open, { type: 'text', text }, replyTo, mentionsIn(getConv(state.open), text));
  }

  // Mentions: `@username` of someone in the chat. Typing `@` offers the members whose
  // name starts with what follows; a sent text mentions each member it names.
  const MENTION = /@([\p{L}\p{N}_]+)/gu;

  /** Who may be mentioned in `c`: a group's members (read once), a direct chat's other user. */
  function mentionable(c) {
    if (c.kind === 'direct') return c.peer === null ? [] : [c.peer];
    if (!c.members) loadMembers(c);
    return (c.members || []).filter((u) => !state.me || u !== state.me.id);
  }

  async function loadMembers(c) {
    if (c.loadingMembers) return;
    c.loadingMembers = true;
    try {
      c.members = (await groupMembers(c.group)).map((m) => m.user);
      await ensureUsers(c.members);
      if (state.open === c.id) onMentionInput();
    } catch (_) {
      c.members = null; // asked again when next needed
    } finally {
      c.loadingMembers = false;
    }
  }

  function mentionsIn(c, text) {
    const byName = new Map(mentionable(c).map((u) => [((state.users.get(u) || {}).username || '').toLowerCase(), u]));
    const ids = [];
    for (const match of text.matchAll(MENTION)) {
      const id = byName.get(match[1].toLowerCase());
      if (id !== undefined && !ids.includes(id)) ids.push(id);
    }
    return ids;
  }

  /** The `@…` being typed before the caret, if any. */
  function typedMention() {
    const input = $('message-input');
    const before = input.value.slice(0, input.selectionStart);
    const match = /(^|\s)@([\p{L}\p{N}_]*)$/u.exec(before);
    return match ? { start: before.length - match[2].length - 1, prefix: match[2].toLowerCase() } : null;
  }

  function onMentionInput() {
    const typed = state.open ? typedMention() : null;
    if (!typed) return hideMentionList();
    const c = getConv(state.open);
    const users = mentionable(c)
      .map((u) => ({ u, user: state.users.get(u) }))
      .filter(({ user }) => user && (user.username.toLowerCase().startsWith(typed.prefix)
        || (user.display_name || '').toLowerCase().startsWith(typed.prefix)))
      .slice(0, 6);
    if (!users.length) return hideMentionList();
    $('mention-list').replaceChildren(...users.map(({ u, user }) => {
      const li = el('li', 'clickable', null, 'mention-option');
      li.append(el('span', 'name', `${user.display_name} @${user.username}`));
      li.addEventListener('mousedown', (e) => {
        e.preventDefault(); // keeps the focus in the message box
        const input = $('message-input');
        const after = input.value.slice(input.selectionStart);
        const head = input.value.slice(0, typed.start) + `@${user.username} `;
        input.value = head + after;
        input.setSelectionRange(head.length, head.length);
        hideMentionList();
        input.focus();
      });
      li.dataset.user = String(u);
      return li;
    }));
    $('mention-list').hidden = false;
  }

  function hideMentionList() {
    $('mention-list').hidden = true;
    $('mention-list').replaceChildren();
  }

  async function onRegister(ev) {
    ev.preventDefault();
    const f = ev.target;
    const button = f.querySelector('button');
    button.disabled = true;
    try {
      await whenReady();
      const asked = !$('register-proof').hidden;
      const r = await request({
        type: 'register',
        username: f.username.value.trim(),
        password: f.password.value,
        display_name: f.display_name.value.trim(),
        ...(asked && f.contact.value.trim() ? { contact: f.contact.value.trim() } : {}),
        ...(asked && f.proof.value.trim() ? { proof: f.proof.value.trim() } : {}),
      });
      showAuth(`Account “${r.user.username}” created. Log in below.`);
      const login = $('login-form');
      login.username.value = r.user.username;
      f.reset();
      $('register-proof').hidden = true;
      login.password.focus();
    } catch (e) {
      if (e.code === 'proof_required') {
        // The server wants a proof: for a code sent to an address, ask for the address
        // and then the code; for an invite (or anything else named), just the proof.
        const byAddress = !e.proof || e.proof === 'code';
        $('register-proof').hidden = false;
        $('register-contact-part').hidden = !byAddress;
        $('register-proof-label').textContent = e.proof === 'invite' ? 'Invite code' : 'Code';
        f.proof.inputMode = byAddress ? 'numeric' : 'text';
        $('register-proof-hint').textContent = e.message;
        showAuth('');
        (byAddress && !f.contact.value.trim() ? f.contact : f.proof).focus();
        return;
      }
      const text = e.code === 'conflict' ? 'That username is taken.'
        : e.code === 'rate_limited' ? `Too many attempts; try again in ${Math.ceil((e.retryAfterMs || 1000) / 1000)} s.`
          : e.message;
      showAuth(text, true);
    } finally {
      button.disabled = false;
    }
  }

  async function onSendCode() {
    const f = $('register-form');
    const contact = f.contact.value.trim();
    const hint = $('register-proof-hint');
    if (!contact) {
      f.contact.focus();
      return;
    }
    const button = $('send-code');
    button.disabled = true;
    try {
      await whenReady();
      await request({ type: 'send_code', contact });
      hint.textContent = `A code is on its way to ${contact}. Enter it below.`;
      hint.classList.remove('error');
      f.proof.focus();
    } catch (e) {
      hint.textContent = e.code === 'rate_limited'
        ? `Wait ${Math.ceil((e.retryAfterMs || 1000) / 1000)} s before asking again.` : e.message;
      hint.classList.add('error');
    } finally {
      button.disabled = false;
    }
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const f = ev.target;
    const button = f.querySelector('button');
    button.disabled = true;
    try {
      await whenReady();
      const r = await request({
        type: 'login',
        username: f.username.value.trim(),
        password: f.password.value,
        device: { id: state.device, name: deviceName(), platform: 'web' },
        ...(f.proof.value.trim() ? { proof: f.proof.value.trim() } : {}),
      });
      setToken(r.token);
      f.proof.value = '';
      $('login-proof').hidden = true;
      askForNotifications();
      f.password.value = '';
      await enterApp(r);
    } catch (e) {
      if (e.code === 'proof_required') {
        // A second factor: the password was right.
        $('login-proof').hidden = false;
        showAuth(e.message);
        f.proof.focus();
        return;
      }
      const text = e.code === 'unauthorized' ? 'Wrong username or password.'
        : e.code === 'rate_limited' ? `Too many attempts; try again in ${Math.ceil((e.retryAfterMs || 1000) / 1000)} s.`
          : e.message;
      showAuth(text, true);
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    stopTyping();
    try {
      await request({ type: 'logout' });
    } catch (_) {
      // Offline: the token is forgotten here all the same.
    }
    conn.session = false;
    setToken(null);
    resetState();
    closeConversation();
    showAuth('Logged out.');
  }

  // ---------------------------------------------------------------------------------
  // The group panel: members with their roles and presence, and what one may do
  // ---------------------------------------------------------------------------------

  const openGroup = () => {
    const c = state.open && state.convs.get(state.open);
    return c && c.kind === 'group' ? c.group : null;
  };

  async function toggleGroupPanel() {
    const panel = $('group-panel');
    panel.hidden = !panel.hidden;
    if (!panel.hidden) await renderGroupPanel();
  }

  /** A group's members: up to 500, in pages of the server's maximum. */
  async function groupMembers(group) {
    let members = [];
    let after;
    do {
      const r = await request({ type: 'group_members', group, after, limit: 200 });
      members = members.concat(r.members || []);
      after = r.more && members.length ? members[members.length - 1].user : undefined;
    } while (after !== undefined && members.length < 500);
    return members;
  }

  /** Reads the open group's members and draws them. */
  async function renderGroupPanel() {
    const group = openGroup();
    if (group === null || $('group-panel').hidden) return;
    let members;
    try {
      members = await groupMembers(group);
    } catch (e) {
      showChatError(e.message);
      return;
    }
    if (openGroup() !== group) return;
    ensureUsers(members.map((m) => m.user));
    refreshPresence(members.map((m) => m.user));
    const rank = { owner: 2, admin: 1, member: 0 };
    const me = members.find((m) => m.user === state.me.id);
    const myRank = me ? rank[me.role] : -1;
    members.sort((a, b) => rank[b.role] - rank[a.role] || name(a.user).localeCompare(name(b.user)));
    $('group-member-list').replaceChildren(...members.map((m) => {
      const li = el('li', null, null, 'group-member');
      li.dataset.userId = String(m.user);
      li.append(avatar(name(m.user), m.user, false), dot(isOnline(m.user), 'presence-dot'));
      const text = el('div', 'name');
      text.append(el('span', null, name(m.user), 'group-member-name'));
      text.append(el('span', 'member-role', m.role, 'group-member-role'));
      li.append(text);
      const button = (label, testid, run) => {
        const b = el('button', 'link', label, testid);
        b.type = 'button';
        b.addEventListener('click', () => groupAction(run));
        li.append(b);
      };
      if (m.user !== state.me.id && myRank > rank[m.role]) {
        button('Remove', 'group-member-kick', () => request({ type: 'kick_member', group, user: m.user }));
      }
      if (me && me.role === 'owner' && m.user !== state.me.id) {
        const role = m.role === 'admin' ? 'member' : 'admin';
        button(role === 'admin' ? 'Make admin' : 'Make member', 'group-member-role-change',
          () => request({ type: 'set_role', group, user: m.user, role }));
      }
      return li;
    }));
    const inGroup = new Set(members.map((m) => m.user));
    const addable = [...state.friends.keys()].filter((id) => !inGroup.has(id));
    $('group-add-user').replaceChildren(...addable.map((id) => {
      const o = el('option', null, name(id));
      o.value = String(id);
      return o;
    }));
    $('group-add-user').hidden = $('group-add').hidden = addable.length === 0;
    $('group-rename').hidden = myRank < 1;
    $('group-leave').hidden = !me || me.role === 'owner';
  }

  /** Runs a group change, then draws the panel and the group again. */
  async function groupAction(run) {
    try {
      await run();
    } catch (e) {
      showChatError(e.message);
    }
    await refreshGroups();
    const c = state.open && state.convs.get(state.open);
    if (c) await catchUp(c); // the change's notice, which this session is not sent
    await renderGroupPanel();
  }

  // ---------------------------------------------------------------------------------
  // Account: devices and the password
  // ---------------------------------------------------------------------------------

  async function toggleAccount() {
    const panel = $('account');
    panel.hidden = !panel.hidden;
    if (!panel.hidden) {
      $('profile-name').value = state.me ? state.me.display_name : '';
      setHint('profile-status', '');
      await renderDevices();
    }
  }

  async function onProfileSubmit(ev) {
    ev.preventDefault();
    setHint('profile-status', 'Saving…');
    try {
      const r = await request({ type: 'update_profile', display_name: $('profile-name').value });
      state.me = r.user;
      state.users.set(r.user.id, r.user);
      setHint('profile-status', 'Saved.');
      render();
    } catch (e) {
      setHint('profile-status', e.message, true);
    }
  }

  /** The user's devices, newest login first; each but this one can be signed out. */
  async function renderDevices() {
    let devices;
    try {
      devices = (await request({ type: 'devices' })).devices || [];
    } catch (e) {
      setHint('password-status', e.message, true);
      return;
    }
    $('devices').replaceChildren(...devices.map((d) => {
      const li = el('li', null, null, 'device-item');
      li.dataset.deviceId = d.id;
      const text = el('div', 'name');
      text.append(el('span', null, d.name || d.id, 'device-name'));
      text.append(el('span', 'sub', `${d.platform || 'device'} · since ${formatTime(d.logged_in_at, true)}`));
      li.append(text);
      if (d.id === state.device) {
        li.append(el('span', 'sub', 'this browser', 'device-this'));
      } else {
        const b = el('button', 'link', 'Sign out', 'device-revoke');
        b.type = 'button';
        b.addEventListener('click', async () => {
          try {
            await request({ type: 'revoke_device', device: d.id });
          } catch (e) {
            setHint('password-status', e.message, true);
          }
          renderDevices();
        });
        li.append(b);
      }
      return li;
    }));
  }

  async function onPasswordSubmit(ev) {
    ev.preventDefault();
    const oldPassword = $('password-old').value;
    const newPassword = $('password-new').value;
    setHint('password-status', 'Changing…');
    try {
      await request({ type: 'change_password', old_password: oldPassword, new_password: newPassword });
      $('password-old').value = '';
      $('password-new').value = '';
      setHint('password-status', 'Password changed; your other devices were signed out.');
      renderDevices();
    } catch (e) {
      setHint('password-status', e.code === 'forbidden' ? 'The current password is wrong.' : e.message, true);
    }
  }

  /** Unfriend, block or unblock the open direct chat's other user (the first two asked). */
  async function onPeerAction(type, question) {
    const c = state.open && state.convs.get(state.open);
    if (!c || c.kind !== 'direct' || c.peer === null) return;
    if (question && !window.confirm(question.replace('{}', name(c.peer)))) return;
    try {
      await request({ type, user: c.peer });
      if (type === 'remove_friend') state.friends.delete(c.peer);
      if (type === 'block') state.blocked.add(c.peer);
      if (type === 'unblock') state.blocked.delete(c.peer);
      render();
      refreshContacts();
    } catch (e) {
      showChatError(e.message);
    }
  }

  function init() {
    $('register-form').addEventListener('submit', onRegister);
    $('send-code').addEventListener('click', onSendCode);
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('account-toggle').addEventListener('click', toggleAccount);
    $('password-form').addEventListener('submit', onPasswordSubmit);
    $('profile-form').addEventListener('submit', onProfileSubmit);
    $('chat-unfriend').addEventListener('click', () => onPeerAction('remove_friend', 'End the friendship with {}?'));
    $('chat-block').addEventListener('click', () => onPeerAction('block', 'Block {}? Neither of you can write to the other until you unblock.'));
    $('chat-unblock').addEventListener('click', () => onPeerAction('unblock', null));
    $('group-info').addEventListener('click', toggleGroupPanel);
    $('group-add').addEventListener('click', () => {
      const group = openGroup();
      const user = Number($('group-add-user').value);
      if (group !== null && user) groupAction(() => request({ type: 'add_members', group, users: [user] }));
    });
    $('group-rename').addEventListener('click', () => {
      const group = openGroup();
      const g = group !== null && state.groups.get(group);
      const newName = g && window.prompt('Rename the group', g.name);
      if (newName && newName.trim() && newName !== g.name) {
        groupAction(() => request({ type: 'rename_group', group, name: newName.trim() }));
      }
    });
    $('group-leave').addEventListener('click', async () => {
      const group = openGroup();
      if (group === null || !window.confirm('Leave this group?')) return;
      try {
        await request({ type: 'leave_group', group });
        $('group-panel').hidden = true;
        closeConversation();
        await refreshGroups();
      } catch (e) {
        showChatError(e.message);
      }
    });
    $('friend-form').addEventListener('submit', onFriendSubmit);
    $('search-input').addEventListener('input', onSearchInput);
    $('search-input').addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        $('search-input').value = '';
        clearSearch();
      }
    });
    $('search-more').addEventListener('click', () => runSearch(search.query, true));
    $('group-form').addEventListener('submit', onGroupSubmit);
    $('composer').addEventListener('submit', onComposerSubmit);
    const input = $('message-input');
    input.addEventListener('input', onComposerInput);
    input.addEventListener('input', onMentionInput);
    input.addEventListener('blur', hideMentionList);
    input.addEventListener('input', fitComposer);
    // Enter sends; Shift+Enter (or Enter while an input method composes) is a new line.
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('composer').requestSubmit();
      }
    });
    input.addEventListener('blur', stopTyping);
    $('file').addEventListener('change', (ev) => {
      const file = ev.target.files && ev.target.files[0];
      ev.target.value = '';
      uploadFile(file);
    });
    $('messages').addEventListener('scroll', () => {
      const c = state.open && state.convs.get(state.open);
      if (c && $('messages').scrollTop < 60) loadOlder(c);
    });
    $('back').addEventListener('click', closeConversation);
    $('viewer').addEventListener('click', closeViewer);
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('viewer').hidden) closeViewer();
    });
    // An image pasted into the message box, or dropped on the chat, is sent.
    input.addEventListener('paste', (e) => {
      const file = [...((e.clipboardData && e.clipboardData.files) || [])].find((f) => f.type.startsWith('image/'));
      if (file) {
        e.preventDefault();
        uploadFile(file);
      }
    });
    const pane = document.querySelector('.chat');
    pane.addEventListener('dragover', (e) => {
      if (!state.open || !e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      pane.classList.add('dropping');
    });
    pane.addEventListener('dragleave', () => pane.classList.remove('dropping'));
    pane.addEventListener('drop', (e) => {
      pane.classList.remove('dropping');
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (!file) return;
      e.preventDefault();
      uploadFile(file);
    });
    document.addEventListener('visibilitychange', () => {
      const c = state.open && state.convs.get(state.open);
      if (c) markReadIfVisible(c);
      render();
    });
    window.addEventListener('focus', () => {
      const c = state.open && state.convs.get(state.open);
      if (c) markReadIfVisible(c);
    });
    window.addEventListener('online', () => {
      if (!conn.ws && !conn.noReconnect) connect();
    });
    // A login or logout in another tab of this browser.
    window.addEventListener('storage', (ev) => {
      if (ev.key && ev.key === outboxKey()) {
        state.outbox = loadOutbox();
        const c = state.open && state.convs.get(state.open);
        if (c) renderChat(c);
        // Another tab's message: the tab with the connection sends it. (Its `flush` over
        // the BroadcastChannel may arrive before localStorage shows the new item here.)
        if (tabs.leader) flushOutbox();
        return;
      }
      if (ev.key !== TOKEN_KEY || ev.newValue === state.token) return;
      state.token = ev.newValue;
      if (!ev.newValue && state.me) {
        conn.session = false;
        resetState();
        closeConversation();
        showAuth('Logged out in another tab.');
      } else if (ev.newValue && !conn.session && conn.ready) {
        resume();
      }
    });
    if (state.token) setConnection('connecting');
    else showAuth();
    startTabs();
  }

  init();
})();
