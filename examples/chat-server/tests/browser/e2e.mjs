// End-to-end test of the chat page in headless Chromium: two users in two fresh browser
// profiles register, befriend, chat, see typing, read receipts and an image, and an XSS
// attempt stays text; then a group, a second tab of one user sharing its connection, a
// message typed offline, and a refused send.
//
//   node e2e.mjs http://127.0.0.1:PORT /path/to/screenshot.png /path/to/server.log \
//     [http://127.0.0.1:PORT2 INVITE_CODE]
//
// The server runs with `--registration code`: registering asks for a code, which the
// server writes to its log (the log sender), where this script reads it. The second
// server, if given, runs with `--registration invite`, and INVITE_CODE is one of its
// invites: a third user registers there with it.
//
// Exit code 0 on success. On failure it prints the step that failed and saves a
// screenshot of each page next to the screenshot path, with a `-failure` suffix.
// Run by `cargo test -p chat-server --test browser`, which starts the server.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';

const [base, shotPath, serverLog, inviteBase, inviteCode] = process.argv.slice(2);
if (!base || !shotPath || !serverLog) {
  console.error('usage: node e2e.mjs BASE_URL SCREENSHOT_PATH SERVER_LOG');
  process.exit(2);
}

const STEP_TIMEOUT = 15_000; // every wait
const RUN_TIMEOUT = 120_000; // the whole run
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const PASSWORD = 'correct horse battery';
const suffix = Date.now().toString(36).slice(-5) + Math.floor(Math.random() * 1e4).toString(36);
const tmp = mkdtempSync(join(tmpdir(), 'chat-e2e-'));

// ---------------------------------------------------------------------------------------
// A small valid PNG, made here: width x height, one colour, RGB, 8 bits.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(width, height, [r, g, b]) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---------------------------------------------------------------------------------------

let browser;
const pages = {}; // name -> page
const problems = []; // page errors and CSP violations, which fail the run
let step = 'start';

function log(msg) {
  console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
}
const started = Date.now();

async function run(name, fn) {
  step = name;
  log(name);
  await fn();
  if (problems.length) throw new Error(`browser reported: ${problems.join(' | ')}`);
}

async function newUser(who) {
  const context = await browser.newContext({ viewport: { width: 960, height: 640 } });
  // Notifications are allowed, and recorded where the test can read them.
  await context.grantPermissions(['notifications'], { origin: base });
  await context.addInitScript(() => {
    window.__notifications = [];
    const Real = window.Notification;
    if (typeof Real !== 'function') return;
    window.Notification = class extends Real {
      constructor(title, options) {
        super(title, options);
        window.__notifications.push({ title, body: options && options.body });
      }
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`${who}: ${text}`);
    else if (m.type() === 'error') console.log(`[${who} console.error] ${text}`);
  });
  pages[who] = page;
  return page;
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);
const countIn = (page, text) => tid(page, 'message-text').filter({ hasText: text }).count();
// The chat named `title` in the list (a group's preview may name the same person).
const chat = (page, title) => tid(page, 'conversation-item')
  .filter({ has: page.locator('[data-testid="conversation-name"]', { hasText: title }) });

// The code the server's log sender wrote for `contact`, once it is there.
async function codeSentTo(contact) {
  const deadline = Date.now() + STEP_TIMEOUT;
  const pattern = new RegExp(`contact=${contact.replace(/[.+]/g, '\\$&')} code=(\\d{6})`);
  for (;;) {
    const found = readFileSync(serverLog, 'utf8').match(pattern);
    if (found) return found[1];
    if (Date.now() > deadline) throw new Error(`no code for ${contact} in the server log`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function register(page, username, display) {
  await page.goto(base, { timeout: STEP_TIMEOUT });
  await tid(page, 'register-username').fill(username);
  await tid(page, 'register-display-name').fill(display);
  await tid(page, 'register-password').fill(PASSWORD);
  await tid(page, 'register-submit').click();
  // The server asks for a code: the address, Send a code, then the code from the mail.
  await tid(page, 'register-proof').waitFor({ state: 'visible' });
  const contact = `${username}@example.com`;
  await tid(page, 'register-contact').fill(contact);
  await tid(page, 'send-code').click();
  await tid(page, 'register-proof-hint').filter({ hasText: 'on its way' }).waitFor();
  const code = await codeSentTo(contact);
  // A mistyped code first: refused, and the form stays.
  const mistyped = code.slice(0, 5) + String((Number(code[5]) + 1) % 10);
  await tid(page, 'register-code').fill(mistyped);
  await tid(page, 'register-submit').click();
  await tid(page, 'register-proof-hint').filter({ hasText: 'wrong' }).waitFor();
  await tid(page, 'register-code').fill(code);
  await tid(page, 'register-submit').click();
  await tid(page, 'auth-status').filter({ hasText: 'created' }).waitFor();
  // The login form is filled in with the new username.
  const filled = await tid(page, 'login-username').inputValue();
  if (filled !== username) throw new Error(`login username is ${JSON.stringify(filled)}`);
  await tid(page, 'login-password').fill(PASSWORD);
  await tid(page, 'login-submit').click();
  await tid(page, 'app').waitFor({ state: 'visible' });
  await tid(page, 'me').filter({ hasText: display }).waitFor();
}

async function sendText(page, text) {
  await tid(page, 'message-input').fill(text);
  await tid(page, 'message-input').press('Enter');
  await tid(page, 'message-text').filter({ hasText: text }).last().waitFor();
}

async function screenshotBoth(path) {
  // One image with both panes side by side, drawn on a blank page of its own.
  const shots = {};
  for (const [who, page] of Object.entries(pages)) {
    shots[who] = (await page.screenshot({ timeout: STEP_TIMEOUT })).toString('base64');
  }
  const context = await browser.newContext({ viewport: { width: 1940, height: 700 } });
  const page = await context.newPage();
  const figures = Object.entries(shots)
    .map(([who, b64]) => `<figure style="margin:0 10px 0 0"><figcaption style="font:16px sans-serif;margin:4px 0">${who}</figcaption><img src="data:image/png;base64,${b64}"></figure>`)
    .join('');
  await page.setContent(`<body style="margin:10px;display:flex;background:#ccc">${figures}</body>`);
  await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: STEP_TIMEOUT });
  await page.screenshot({ path, fullPage: true, timeout: STEP_TIMEOUT });
  await context.close();
}

async function main() {
  mkdirSync(dirname(shotPath), { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_TIMEOUT,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const aliceName = `alice_${suffix}`;
  const bobName = `bob_${suffix}`;
  const alice = await newUser('alice');
  const bob = await newUser('bob');

  await run('alice registers and logs in', () => register(alice, aliceName, `Alice ${suffix}`));
  await run('bob registers and logs in', () => register(bob, bobName, `Bob ${suffix}`));

  await run('bob sends alice a friend request by username', async () => {
    await tid(bob, 'friend-username').fill(aliceName);
    await tid(bob, 'friend-request-send').click();
    await tid(bob, 'friend-status').filter({ hasText: 'Request sent' }).waitFor();
    await tid(bob, 'friend-request-outgoing').filter({ hasText: `Alice ${suffix}` }).waitFor();
  });

  await run('alice sees the request and accepts it', async () => {
    const req = tid(alice, 'friend-request').filter({ hasText: `Bob ${suffix}` });
    await req.waitFor();
    await req.locator('[data-testid="friend-accept"]').click();
    await tid(alice, 'friend-item').filter({ hasText: `Bob ${suffix}` }).waitFor();
    await tid(bob, 'friend-item').filter({ hasText: `Alice ${suffix}` }).waitFor();
    await tid(bob, 'friend-request-outgoing').waitFor({ state: 'detached' });
  });

  await run('both see each other online', async () => {
    await tid(alice, 'friend-item').filter({ hasText: `Bob ${suffix}` })
      .locator('[data-testid="presence-dot"][data-online="true"]').waitFor();
    await tid(bob, 'friend-item').filter({ hasText: `Alice ${suffix}` })
      .locator('[data-testid="presence-dot"][data-online="true"]').waitFor();
  });

  const hello = `Hello Bob, it's Alice ${suffix}`;
  await run('alice opens the direct chat and sends a message', async () => {
    await tid(alice, 'friend-item').filter({ hasText: `Bob ${suffix}` }).click();
    await tid(alice, 'chat-title').filter({ hasText: `Bob ${suffix}` }).waitFor();
    await sendText(alice, hello);
    await tid(alice, 'read-marker').waitFor();
  });

  await run('bob sees the chat with one unread and opens it', async () => {
    const item = tid(bob, 'conversation-item').filter({ hasText: `Alice ${suffix}` });
    await item.locator('[data-testid="conversation-unread"]').filter({ hasText: '1' }).waitFor();
    await item.click();
    await tid(bob, 'message-text').filter({ hasText: hello }).waitFor();
    // A day line above the first message, and the unread line above Alice's.
    await tid(bob, 'day-separator').filter({ hasText: 'Today' }).waitFor();
    // Polled: a render may replace the line between finding it and reading its neighbour.
    const placed = await bob.waitForFunction((text) => {
      const line = document.querySelector('[data-testid="new-messages"]');
      const next = line && line.nextElementSibling;
      return next && next.textContent.includes(text);
    }, hello, { timeout: STEP_TIMEOUT }).then(() => true, () => false);
    if (!placed) {
      const before = await tid(bob, 'new-messages').evaluate((e) => e.nextElementSibling && e.nextElementSibling.textContent);
      throw new Error(`the unread line is above ${JSON.stringify(before)}`);
    }
  });

  await run('each chat and friend has an avatar with initials', async () => {
    const initials = 'B' + suffix[0].toUpperCase();
    const shown = await chat(alice, `Bob ${suffix}`).locator('[data-testid="avatar"]').textContent();
    if (shown !== initials) throw new Error(`bob's avatar reads ${JSON.stringify(shown)}, not ${initials}`);
    await tid(alice, 'friend-item').filter({ hasText: `Bob ${suffix}` })
      .locator('[data-testid="avatar"]').filter({ hasText: initials }).waitFor();
  });

  await run('alice sees her message read', async () => {
    await tid(alice, 'read-marker').filter({ hasText: /^Read$/ }).waitFor();
  });

  const reply = `Hi Alice! Bob here ${suffix}`;
  await run('bob replies and alice sees it', async () => {
    await sendText(bob, reply);
    await tid(alice, 'message-text').filter({ hasText: reply }).waitFor();
  });

  await run('from the message menu: edit and recall her own, delete one of his for herself', async () => {
    const edited = `${hello} (edited)`;
    const mine = tid(alice, 'message').filter({ hasText: hello });
    alice.once('dialog', (d) => d.accept(edited));
    await mine.locator('[data-testid="message-menu"]').click();
    await mine.locator('[data-testid="message-edit"]').click();
    await tid(bob, 'message-text').filter({ hasText: edited }).waitFor();
    await tid(alice, 'message-text').filter({ hasText: edited }).waitFor();

    const oops = `Sent by mistake ${suffix}`;
    await sendText(alice, oops);
    await tid(bob, 'message-text').filter({ hasText: oops }).waitFor();
    const wrong = tid(alice, 'message').filter({ hasText: oops });
    alice.once('dialog', (d) => d.accept());
    await wrong.locator('[data-testid="message-menu"]').click();
    await wrong.locator('[data-testid="message-recall"]').click();
    await tid(bob, 'message-text').filter({ hasText: oops }).waitFor({ state: 'detached' });
    await tid(alice, 'message-text').filter({ hasText: oops }).waitFor({ state: 'detached' });

    const theirs = tid(alice, 'message').filter({ hasText: reply });
    alice.once('dialog', (d) => d.accept());
    await theirs.locator('[data-testid="message-menu"]').click();
    await theirs.locator('[data-testid="message-delete"]').click();
    await tid(alice, 'message-text').filter({ hasText: reply }).waitFor({ state: 'detached' });
    if (!(await countIn(bob, reply))) throw new Error('bob lost his own message');
  });

  await run('a message to a hidden tab shows a desktop notification', async () => {
    await alice.evaluate(() => {
      Object.defineProperty(document, 'hidden', { value: true, configurable: true });
    });
    const text = `While you were away ${suffix}`;
    await sendText(bob, text);
    await alice.waitForFunction((t) => window.__notifications.some((n) => n.body === t),
      text, { timeout: STEP_TIMEOUT });
    const note = await alice.evaluate(() => window.__notifications[window.__notifications.length - 1]);
    if (note.title !== `Bob ${suffix}`) throw new Error(`notification titled ${JSON.stringify(note.title)}`);
    await alice.evaluate(() => {
      delete document.hidden; // back to the prototype's getter
      document.dispatchEvent(new Event('visibilitychange'));
    });
    // Bob's own page, visible, shows none for what he sent.
    const own = await bob.evaluate(() => window.__notifications.length);
    if (own) throw new Error(`bob got ${own} notifications`);
  });

  await run('alice replies to a question from the message menu; both see what it quotes', async () => {
    const question = `Lunch at noon? ${suffix}`;
    const answer = `Noon works ${suffix}`;
    await sendText(bob, question);
    const asked = tid(alice, 'message').filter({ hasText: question });
    await asked.waitFor();
    await asked.locator('[data-testid="message-menu"]').click();
    await asked.locator('[data-testid="message-reply"]').click();
    await tid(alice, 'reply-bar').filter({ hasText: question }).waitFor();
    await tid(alice, 'message-input').fill(answer);
    await alice.screenshot({ path: shotPath.replace(/\.png$/, '') + '-replying.png', timeout: STEP_TIMEOUT });
    await sendText(alice, answer);
    await tid(alice, 'reply-bar').waitFor({ state: 'hidden' });
    for (const [page, who] of [[alice, `Bob ${suffix}`], [bob, 'You']]) {
      const quote = tid(page, 'message').filter({ hasText: answer }).locator('[data-testid="message-quote"]');
      await quote.filter({ hasText: question }).waitFor();
      const sender = await quote.locator('[data-testid="quote-sender"]').textContent();
      if (sender !== who) throw new Error(`the quote names ${JSON.stringify(sender)}, not ${who}`);
    }
    await alice.screenshot({ path: shotPath.replace(/\.png$/, '') + '-reply.png', timeout: STEP_TIMEOUT });
    // The quote leads to the message it quotes.
    await tid(bob, 'message').filter({ hasText: answer }).locator('[data-testid="message-quote"]').click();
    await bob.waitForFunction((q) => {
      const lit = document.querySelector('li.message.flash [data-testid="message-text"]');
      return lit && lit.textContent === q;
    }, question, { timeout: STEP_TIMEOUT });
  });

  await run('reactions: alice and bob react, see counts and who, and take one back', async () => {
    const answer = `Noon works ${suffix}`;
    const onAlice = tid(alice, 'message').filter({ has: tid(alice, 'message-text').filter({ hasText: answer }) });
    await onAlice.locator('[data-testid="message-menu"]').click();
    await onAlice.locator('[data-testid="reaction-pick"]').filter({ hasText: '🎉' }).click();
    const onBob = tid(bob, 'message').filter({ has: tid(bob, 'message-text').filter({ hasText: answer }) });
    const chipOnBob = onBob.locator('[data-testid="reaction-chip"]');
    await chipOnBob.filter({ hasText: '🎉 1' }).waitFor();
    const who = await chipOnBob.getAttribute('title');
    if (who !== `Alice ${suffix}`) throw new Error(`the reaction says it is from ${JSON.stringify(who)}`);
    // Bob adds his by clicking the chip; both see two, and his is marked as his.
    await chipOnBob.click();
    await chipOnBob.filter({ hasText: '🎉 2' }).and(bob.locator('[aria-pressed="true"]')).waitFor();
    const chipOnAlice = onAlice.locator('[data-testid="reaction-chip"]');
    await chipOnAlice.filter({ hasText: '🎉 2' }).waitFor();
    // Alice takes hers back: one left, Bob's.
    await chipOnAlice.click();
    await chipOnBob.filter({ hasText: '🎉 1' }).waitFor();
    await chipOnAlice.filter({ hasText: '🎉 1' }).and(alice.locator('[aria-pressed="false"]')).waitFor();
    await bob.screenshot({ path: shotPath.replace(/\.png$/, '') + '-reactions.png', timeout: STEP_TIMEOUT });
  });

  await run('bob forwards alice\'s answer back into their chat, marked as forwarded from her', async () => {
    const answer = `Noon works ${suffix}`;
    const onBob = tid(bob, 'message').filter({ has: tid(bob, 'message-text').filter({ hasText: answer }) }).first();
    await onBob.locator('[data-testid="message-menu"]').click();
    await onBob.locator('[data-testid="message-forward"]').click();
    await tid(bob, 'forward-target').filter({ hasText: `Alice ${suffix}` }).click();
    // The forward arrives on both sides with its origin.
    for (const page of [alice, bob]) {
      await tid(page, 'message-forwarded').filter({ hasText: `Forwarded from Alice ${suffix}` }).waitFor();
    }
    const copies = await tid(alice, 'message-text').filter({ hasText: answer }).count();
    if (copies !== 2) throw new Error(`alice sees ${copies} copies of the answer, not 2`);
    await alice.screenshot({ path: shotPath.replace(/\.png$/, '') + '-forwarded.png', timeout: STEP_TIMEOUT });
  });

  await run('alice pins the question; both see it above the chat, and she unpins it', async () => {
    const question = `Lunch at noon? ${suffix}`;
    const asked = tid(alice, 'message').filter({ has: tid(alice, 'message-text').filter({ hasText: question }) }).first();
    await asked.locator('[data-testid="message-menu"]').click();
    await asked.locator('[data-testid="message-pin"]').click();
    for (const page of [alice, bob]) {
      await tid(page, 'pinned-bar').filter({ hasText: question }).waitFor();
    }
    // A second pin: the bar shows the newest, and its label steps to the other one,
    // whose quote leads to the message.
    const answer = `Noon works ${suffix}`;
    const answered = tid(alice, 'message').filter({ has: tid(alice, 'message-text').filter({ hasText: answer }) }).first();
    await answered.locator('[data-testid="message-menu"]').click();
    await answered.locator('[data-testid="message-pin"]').click();
    await tid(bob, 'pinned-label').filter({ hasText: 'Pinned 1/2' }).waitFor();
    await tid(bob, 'pinned-bar').filter({ hasText: answer }).waitFor();
    await tid(bob, 'pinned-label').click();
    await tid(bob, 'pinned-label').filter({ hasText: 'Pinned 2/2' }).waitFor();
    await tid(bob, 'pinned-bar').locator('[data-testid="message-quote"]').filter({ hasText: question }).click();
    await bob.waitForFunction((q) => {
      const lit = document.querySelector('li.message.flash [data-testid="message-text"]');
      return lit && lit.textContent === q;
    }, question, { timeout: STEP_TIMEOUT });
    await alice.screenshot({ path: shotPath.replace(/\.png$/, '') + '-pinned.png', timeout: STEP_TIMEOUT });
    for (const message of [asked, answered]) {
      await message.locator('[data-testid="message-menu"]').click();
      await message.locator('[data-testid="message-unpin"]').click();
    }
    for (const page of [alice, bob]) {
      await tid(page, 'pinned-bar').waitFor({ state: 'hidden' });
    }
  });

  await run('bob searches for the question: the hit is marked and opens the chat at it', async () => {
    const question = `Lunch at noon? ${suffix}`;
    await tid(bob, 'search-input').fill('LUNCH');
    const hit = tid(bob, 'search-hit').filter({ hasText: question });
    await hit.waitFor();
    const marked = await hit.locator('mark').first().textContent();
    if (marked !== 'Lunch') throw new Error(`the hit marks ${JSON.stringify(marked)}`);
    const hits = await tid(bob, 'search-hit').count();
    if (hits !== 1) throw new Error(`${hits} hits for "lunch", not 1`);
    await bob.screenshot({ path: shotPath.replace(/\.png$/, '') + '-search.png', timeout: STEP_TIMEOUT });
    await hit.click();
    await bob.waitForFunction((q) => {
      const lit = document.querySelector('li.message.flash [data-testid="message-text"]');
      return lit && lit.textContent === q;
    }, question, { timeout: STEP_TIMEOUT });
    await tid(bob, 'search-input').fill('nothingcalledthis');
    await tid(bob, 'search-status').filter({ hasText: 'Nothing found' }).waitFor();
    await tid(bob, 'search-input').press('Escape');
    await tid(bob, 'search-results').waitFor({ state: 'hidden' });
    await tid(bob, 'search-status').waitFor({ state: 'hidden' });
  });

  await run('bob types and alice sees the typing indicator', async () => {
    await tid(bob, 'message-input').click();
    await tid(bob, 'message-input').pressSequentially('I am typing', { delay: 40 });
    await tid(alice, 'typing-indicator').filter({ hasText: `Bob ${suffix} is typing` }).waitFor();
  });

  await run('bob leaves the input and the indicator goes away', async () => {
    await tid(bob, 'message-input').fill('');
    await tid(bob, 'message-input').blur();
    await tid(alice, 'typing-indicator').waitFor({ state: 'hidden' });
  });

  await run('alice sends an image and bob sees it', async () => {
    const file = join(tmp, 'square.png');
    writeFileSync(file, png(64, 40, [37, 99, 235]));
    await tid(alice, 'file-input').setInputFiles(file);
    await tid(alice, 'message-image').last().waitFor();
    await tid(bob, 'message-image').last().waitFor();
    await bob.waitForFunction(() => {
      const imgs = document.querySelectorAll('[data-testid="message-image"]');
      const img = imgs[imgs.length - 1];
      return img && img.complete && img.naturalWidth === 64 && img.src.startsWith('blob:');
    }, null, { timeout: STEP_TIMEOUT });
    await alice.waitForFunction(() => {
      const imgs = document.querySelectorAll('[data-testid="message-image"]');
      const img = imgs[imgs.length - 1];
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: STEP_TIMEOUT });
  });

  await run('an image dropped on the chat is sent, and opens full size', async () => {
    const b64 = png(48, 30, [22, 163, 74]).toString('base64');
    const before = await tid(bob, 'message-image').count();
    await alice.evaluate((data) => {
      const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      const pane = document.querySelector('.chat');
      pane.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      pane.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, b64);
    await bob.waitForFunction((n) => {
      const imgs = document.querySelectorAll('[data-testid="message-image"]');
      const img = imgs[imgs.length - 1];
      return imgs.length > n && img.complete && img.naturalWidth === 48;
    }, before, { timeout: STEP_TIMEOUT });
    await tid(bob, 'message-image').last().click();
    await tid(bob, 'image-viewer').waitFor();
    await bob.waitForFunction(() => {
      const img = document.querySelector('[data-testid="image-viewer-image"]');
      return img && img.complete && img.naturalWidth === 48;
    }, null, { timeout: STEP_TIMEOUT });
    await bob.keyboard.press('Escape');
    await tid(bob, 'image-viewer').waitFor({ state: 'hidden' });
  });

  await run('an image pasted into the message box is sent', async () => {
    const b64 = png(36, 20, [190, 24, 93]).toString('base64');
    await alice.evaluate((data) => {
      const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
      const box = document.querySelector('[data-testid="message-input"]');
      box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, b64);
    await bob.waitForFunction(() => {
      const imgs = document.querySelectorAll('[data-testid="message-image"]');
      const img = imgs[imgs.length - 1];
      return img && img.complete && img.naturalWidth === 36;
    }, null, { timeout: STEP_TIMEOUT });
  });

  await run('alice sends a PDF and a script as files; the script arrives as a download', async () => {
    const pdf = join(tmp, 'notes.pdf');
    writeFileSync(pdf, '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    await tid(alice, 'file-input').setInputFiles(pdf);
    await tid(bob, 'message-file').filter({ hasText: 'notes.pdf' }).waitFor();
    await tid(alice, 'upload-progress').waitFor({ state: 'hidden' });
    const script = join(tmp, 'run.sh');
    writeFileSync(script, '#!/bin/sh\necho hi\n');
    await tid(alice, 'file-input').setInputFiles(script);
    await tid(bob, 'message-file').filter({ hasText: 'run.sh' }).waitFor();
  });

  const xss = '<img src=x onerror=window.__xss=1>';
  await run('an XSS attempt shows as text and runs nothing', async () => {
    await sendText(bob, xss);
    const text = tid(alice, 'message-text').filter({ hasText: xss });
    await text.waitFor();
    const shown = await text.last().textContent();
    if (shown !== xss) throw new Error(`alice shows ${JSON.stringify(shown)}`);
    // Give a broken <img> time to fire onerror, were it one.
    await alice.waitForTimeout(500);
    for (const [who, page] of Object.entries(pages)) {
      const flag = await page.evaluate(() => typeof window.__xss);
      if (flag !== 'undefined') throw new Error(`window.__xss is set on ${who}'s page`);
      const injected = await page.locator('[data-testid="message-list"] img:not([data-testid="message-image"])').count();
      if (injected) throw new Error(`${who}'s page has ${injected} injected <img>`);
    }
  });

  await run('addresses in a message are links that open safely; other schemes are text', async () => {
    const text = `docs at https://example.com/docs?x=1. not javascript:alert(1) ${suffix}`;
    await sendText(bob, text);
    const shown = tid(alice, 'message-text').filter({ hasText: text });
    await shown.waitFor();
    const links = shown.locator('[data-testid="message-link"]');
    const n = await links.count();
    if (n !== 1) throw new Error(`${n} links in ${JSON.stringify(text)}`);
    const href = await links.getAttribute('href');
    const rel = await links.getAttribute('rel');
    const target = await links.getAttribute('target');
    if (href !== 'https://example.com/docs?x=1' || target !== '_blank' || !/noopener/.test(rel || '')) {
      throw new Error(`link: href ${href}, target ${target}, rel ${rel}`);
    }
    if ((await shown.textContent()) !== text) throw new Error('the text changed around the link');
  });

  await run('Shift+Enter starts a new line; Enter sends the lines as one message', async () => {
    const input = tid(alice, 'message-input');
    await input.click();
    await input.pressSequentially(`first line ${suffix}`);
    await input.press('Shift+Enter');
    await input.pressSequentially(`second line ${suffix}`);
    await input.press('Enter');
    const both = `first line ${suffix}\nsecond line ${suffix}`;
    await bob.waitForFunction((text) => [...document.querySelectorAll('[data-testid="message-text"]')]
      .some((e) => e.textContent === text), both, { timeout: STEP_TIMEOUT });
    if (await input.inputValue()) throw new Error('the box was not emptied');
  });

  const groupText = `Group hello from Bob ${suffix}`;
  await run('a new group is not unread to those added, and its preview names the writer', async () => {
    await tid(alice, 'group-create-toggle').click();
    await tid(alice, 'group-name').fill(`Team ${suffix}`);
    await tid(alice, 'group-member-option').first().check();
    await tid(alice, 'group-create').click();
    await tid(alice, 'chat-title').filter({ hasText: `Team ${suffix}` }).waitFor();
    // Alice goes back to the direct chat, so the group's preview is what she sees of it.
    await tid(alice, 'conversation-item').filter({ hasText: `Bob ${suffix}` }).click();
    const group = tid(bob, 'conversation-item').filter({ hasText: `Team ${suffix}` });
    await group.waitFor();
    // Being added is not an unread message.
    if (await group.locator('[data-testid="conversation-unread"]').isVisible()) {
      const n = await group.locator('[data-testid="conversation-unread"]').textContent();
      throw new Error(`bob's new group shows ${n} unread`);
    }
    await group.click();
    await sendText(bob, groupText);
    await tid(alice, 'conversation-item').filter({ hasText: `Team ${suffix}` })
      .locator('[data-testid="conversation-preview"]')
      .filter({ hasText: `Bob ${suffix}: ${groupText}` }).waitFor();
    // One unread message, in a chat Alice is not looking at: the tab's title says so.
    await alice.waitForFunction(() => document.title === '(1) Chat', null, { timeout: STEP_TIMEOUT });
    // Alice writes back; Bob has the group open, and Alice sees who read it by name.
    // A draft left in one chat waits there while another is open.
    const draft = `half-written to Bob ${suffix}`;
    await tid(alice, 'message-input').fill(draft);
    await tid(alice, 'conversation-item').filter({ hasText: `Team ${suffix}` }).click();
    if (await tid(alice, 'message-input').inputValue()) throw new Error('the draft followed into the group');
    await sendText(alice, `Group reply from Alice ${suffix}`);
    await tid(alice, 'read-marker').filter({ hasText: `Seen by Bob ${suffix}` }).waitFor();

    // The group's panel: members with roles; the owner promotes, renames, removes, adds.
    await tid(alice, 'group-info').click();
    const member = (who) => tid(alice, 'group-member').filter({ hasText: who });
    await member(`Alice ${suffix}`).locator('[data-testid="group-member-role"]').filter({ hasText: 'owner' }).waitFor();
    await member(`Bob ${suffix}`).locator('[data-testid="group-member-role"]').filter({ hasText: 'member' }).waitFor();
    await member(`Bob ${suffix}`).locator('[data-testid="group-member-role-change"]').click();
    await member(`Bob ${suffix}`).locator('[data-testid="group-member-role"]').filter({ hasText: 'admin' }).waitFor();
    alice.once('dialog', (d) => d.accept(`Team ${suffix} renamed`));
    await tid(alice, 'group-rename').click();
    await chat(bob, `Team ${suffix} renamed`).waitFor();
    await member(`Bob ${suffix}`).locator('[data-testid="group-member-kick"]').click();
    await member(`Bob ${suffix}`).waitFor({ state: 'detached' });
    await tid(alice, 'group-add-user').selectOption({ label: `Bob ${suffix}` });
    await tid(alice, 'group-add').click();
    await member(`Bob ${suffix}`).waitFor();
    await alice.screenshot({ path: shotPath.replace(/\.png$/, '') + '-group.png', timeout: STEP_TIMEOUT });
    await tid(alice, 'group-info').click();
    await tid(alice, 'group-panel').waitFor({ state: 'hidden' });

    await chat(alice, `Bob ${suffix}`).click();
    const back = await tid(alice, 'message-input').inputValue();
    if (back !== draft) throw new Error(`the draft came back as ${JSON.stringify(back)}`);
    await tid(alice, 'message-input').fill('');
  });

  await run('alice mentions bob in the group: picked from suggestions, marked in his list, shown in the message', async () => {
    const team = `Team ${suffix} renamed`;
    await chat(bob, `Alice ${suffix}`).click();
    await chat(alice, team).click();
    const input = tid(alice, 'message-input');
    await input.fill('Lunch? @BO');
    await tid(alice, 'mention-option').filter({ hasText: `@${bobName}` }).click();
    const typed = await input.inputValue();
    if (typed !== `Lunch? @${bobName} `) throw new Error(`the suggestion made ${JSON.stringify(typed)}`);
    await input.press('End');
    await input.pressSequentially('can you book?');
    await input.press('Enter');
    const sent = `Lunch? @${bobName} can you book?`;
    await tid(alice, 'message-text').filter({ hasText: sent }).last().waitFor();
    // Bob, in another chat, sees the group marked with @ until he reads it.
    const mark = chat(bob, team).locator('[data-testid="conversation-mention"]');
    await mark.waitFor();
    await bob.screenshot({ path: shotPath.replace(/\.png$/, '') + '-mentioned.png', timeout: STEP_TIMEOUT });
    await chat(bob, team).click();
    const onBob = tid(bob, 'message').filter({ hasText: sent }).last();
    await onBob.locator('[data-testid="message-mention"]').filter({ hasText: `@${bobName}` }).waitFor();
    if (!(await onBob.evaluate((li) => li.classList.contains('mentions-me')))) throw new Error('not marked as mentioning bob');
    await mark.waitFor({ state: 'detached' });
    // After a reload the mark stays gone: the server knows he read it.
    await bob.reload();
    await chat(bob, team).waitFor();
    if (await chat(bob, team).locator('[data-testid="conversation-mention"]').count()) throw new Error('the @ came back');
    await chat(alice, `Bob ${suffix}`).click();
  });

  await run('alice renames herself in her profile; bob, a friend, sees the new name at once', async () => {
    const renamed = `Alice ${suffix} Liddell`;
    await tid(alice, 'account-toggle').click();
    const nameInput = tid(alice, 'profile-name');
    const current = await nameInput.inputValue();
    if (current !== `Alice ${suffix}`) throw new Error(`the profile form shows ${JSON.stringify(current)}`);
    await nameInput.fill(renamed);
    await tid(alice, 'profile-submit').click();
    await tid(alice, 'profile-status').filter({ hasText: 'Saved.' }).waitFor();
    await tid(alice, 'me').filter({ hasText: renamed }).waitFor();
    await chat(bob, renamed).waitFor();
    await tid(alice, 'account-toggle').click();
    await tid(alice, 'account').waitFor({ state: 'hidden' });
  });

  // Two tabs of one browser are one device: they share the first tab's connection, and
  // neither is kicked by the other (before, the second tab's login replaced the first's
  // session and what was typed in the first was lost).
  let alice2;
  await run('a second tab of alice opens on the same session', async () => {
    alice2 = await alice.context().newPage();
    alice2.setDefaultTimeout(STEP_TIMEOUT);
    alice2.on('pageerror', (e) => problems.push(`alice tab 2: page error: ${e.message}`));
    pages['alice tab 2'] = alice2;
    await alice2.goto(base, { timeout: STEP_TIMEOUT });
    await tid(alice2, 'app').waitFor({ state: 'visible' });
    await chat(alice2, `Bob ${suffix}`).click();
    await tid(alice2, 'message-text').filter({ hasText: hello }).waitFor();
  });

  const fromTab1 = `From Alice's first tab ${suffix}`;
  const fromTab2 = `From Alice's second tab ${suffix}`;
  await run('a message typed in each tab arrives once, and neither tab is kicked', async () => {
    await chat(bob, `Alice ${suffix}`).click();
    await sendText(alice2, fromTab2);
    await sendText(alice, fromTab1);
    for (const text of [fromTab1, fromTab2]) {
      await tid(bob, 'message-text').filter({ hasText: text }).waitFor();
      await tid(alice, 'message-text').filter({ hasText: text }).waitFor();
      await tid(alice2, 'message-text').filter({ hasText: text }).waitFor();
    }
    await bob.waitForTimeout(300);
    for (const [who, page] of [['bob', bob], ['alice', alice], ['alice tab 2', alice2]]) {
      for (const text of [fromTab1, fromTab2]) {
        const n = await countIn(page, text);
        if (n !== 1) throw new Error(`${who} shows ${JSON.stringify(text)} ${n} times`);
      }
      if (await tid(page, 'banner').isVisible()) {
        throw new Error(`${who} shows: ${await tid(page, 'banner-text').textContent()}`);
      }
    }
  });

  const afterClose = `Alice's second tab, alone now ${suffix}`;
  await run('when the first tab closes, the second takes over the connection', async () => {
    delete pages.alice;
    await alice.close();
    await sendText(alice2, afterClose);
    await tid(bob, 'message-text').filter({ hasText: afterClose }).waitFor();
    pages.alice = alice2;
    delete pages['alice tab 2'];
  });

  const offlineText = `Typed while offline ${suffix}`;
  await run('a message typed offline shows as pending, survives a reload, and arrives once', async () => {
    // The page's WebSocket goes through a route the test can cut.
    let cut = false;
    let socket = null;
    await alice2.routeWebSocket(/\/ws$/, (ws) => {
      if (cut) {
        ws.close();
        return;
      }
      socket = ws;
      ws.connectToServer();
    });
    await alice2.reload({ timeout: STEP_TIMEOUT });
    await tid(alice2, 'app').waitFor({ state: 'visible' });
    await chat(alice2, `Bob ${suffix}`).click();
    cut = true;
    socket.close();
    await tid(alice2, 'banner').waitFor({ state: 'visible' });
    await tid(alice2, 'message-input').fill(offlineText);
    await tid(alice2, 'message-input').press('Enter');
    await tid(alice2, 'message-pending').filter({ hasText: offlineText }).waitFor();
    if (await tid(alice2, 'message-input').inputValue()) throw new Error('the text stayed in the box');
    // Nothing reached Bob, and a reload keeps the pending message.
    cut = false;
    await alice2.reload({ timeout: STEP_TIMEOUT });
    await tid(alice2, 'app').waitFor({ state: 'visible' });
    // The chat that was open is open again after the reload.
    await tid(alice2, 'chat-title').filter({ hasText: `Bob ${suffix}` }).waitFor();
    await tid(bob, 'message-text').filter({ hasText: offlineText }).waitFor();
    await tid(alice2, 'message-text').filter({ hasText: offlineText }).waitFor();
    await tid(alice2, 'message-pending').waitFor({ state: 'detached' });
    await bob.waitForTimeout(300);
    const n = await countIn(bob, offlineText);
    if (n !== 1) throw new Error(`bob shows the offline message ${n} times`);
  });

  await run('a refused send stays, marked failed, with retry and discard', async () => {
    // Bob ends the friendship from the chat's header: Alice may no longer write to him.
    bob.once('dialog', (d) => d.accept());
    await tid(bob, 'chat-unfriend').click();
    await tid(bob, 'chat-unfriend').waitFor({ state: 'hidden' });
    const refused = `Written after the friendship ended ${suffix}`;
    await tid(alice2, 'message-input').fill(refused);
    await tid(alice2, 'message-input').press('Enter');
    const failed = tid(alice2, 'message-failed').filter({ hasText: refused });
    await failed.waitFor();
    // Retry asks again (and is refused again); the text is still there until discarded.
    await failed.locator('[data-testid="message-retry"]').click();
    await failed.waitFor();
    await failed.locator('[data-testid="message-discard"]').click();
    await failed.waitFor({ state: 'detached' });
    const n = await countIn(bob, refused);
    if (n !== 0) throw new Error(`bob shows the refused message ${n} times`);
  });

  await run('block and unblock from the chat header', async () => {
    bob.once('dialog', (d) => d.accept());
    await tid(bob, 'chat-block').click();
    await tid(bob, 'chat-unblock').waitFor();
    await tid(bob, 'chat-block').waitFor({ state: 'hidden' });
    await tid(bob, 'chat-unblock').click();
    await tid(bob, 'chat-block').waitFor();
  });

  await run('account: devices with sign-out, and a password change', async () => {
    const login = (password) => fetch(`${base}/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: aliceName, password, device: { id: 'script' } }),
    });
    const first = await login(PASSWORD);
    if (first.status !== 200) throw new Error(`the script's login answered ${first.status}`);
    await tid(alice2, 'account-toggle').click();
    await tid(alice2, 'device-this').waitFor();
    const script = alice2.locator('[data-testid="device-item"][data-device-id="script"]');
    await script.waitFor();
    await script.locator('[data-testid="device-revoke"]').click();
    await script.waitFor({ state: 'detached' });
    await tid(alice2, 'password-old').fill(PASSWORD);
    await tid(alice2, 'password-new').fill('a brand new horse');
    await tid(alice2, 'password-submit').click();
    await tid(alice2, 'password-status').filter({ hasText: 'Password changed' }).waitFor();
    await alice2.screenshot({ path: shotPath.replace(/\.png$/, '') + '-account.png', timeout: STEP_TIMEOUT });
    const again = await login(PASSWORD);
    if (again.status !== 401) throw new Error(`the old password still logs in (${again.status})`);
    await tid(alice2, 'account-toggle').click();
    await tid(alice2, 'app').waitFor({ state: 'visible' });
  });

  await run('screenshot', async () => {
    await screenshotBoth(shotPath);
  });
  log(`screenshot: ${shotPath}`);
  const darkPath = shotPath.replace(/\.png$/, '') + '-dark.png';
  await run('dark mode follows the system', async () => {
    for (const page of Object.values(pages)) await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await alice2.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    if (bg !== 'rgb(13, 17, 23)') throw new Error(`dark background is ${bg}`);
    await screenshotBoth(darkPath);
    for (const page of Object.values(pages)) await page.emulateMedia({ colorScheme: 'light' });
  });
  log(`screenshot: ${darkPath}`);
  const narrowPath = shotPath.replace(/\.png$/, '') + '-375.png';
  if (inviteBase) {
    await run('on a server by invite, the page asks for an invite code, refuses a wrong one, and registers', async () => {
      const context = await browser.newContext({ viewport: { width: 960, height: 700 } });
      const page = await context.newPage();
      await page.goto(inviteBase, { timeout: STEP_TIMEOUT });
      await tid(page, 'register-username').fill(`cid_${suffix}`);
      await tid(page, 'register-display-name').fill('Cid');
      await tid(page, 'register-password').fill(PASSWORD);
      await tid(page, 'register-submit').click();
      await tid(page, 'register-proof').waitFor({ state: 'visible' });
      // No address to give and no code to send: only the invite.
      if (await tid(page, 'register-contact').isVisible()) throw new Error('asked for an address');
      if (await tid(page, 'send-code').isVisible()) throw new Error('offered to send a code');
      await page.locator('#register-proof-label').filter({ hasText: 'Invite code' }).waitFor();
      await tid(page, 'register-code').fill('aaaa-bbbb-cccc-dddd');
      await tid(page, 'register-submit').click();
      await tid(page, 'register-proof-hint').filter({ hasText: 'not valid' }).waitFor();
      // Typed as people do: capitals, spaces for dashes.
      await tid(page, 'register-code').fill(inviteCode.toUpperCase().replaceAll('-', ' '));
      await tid(page, 'register-submit').click();
      await tid(page, 'auth-status').filter({ hasText: 'created' }).waitFor();
      await context.close();
    });
  }

  await run('screenshot at a phone\'s width (375 px)', async () => {
    for (const page of Object.values(pages)) await page.setViewportSize({ width: 375, height: 700 });
    await screenshotBoth(narrowPath);
  });
  log(`screenshot: ${narrowPath}`);
}

async function failureShots() {
  const stem = shotPath.replace(/\.png$/i, '');
  for (const [who, page] of Object.entries(pages)) {
    try {
      const said = await page.evaluate(() =>
        ['connection-status', 'banner-text', 'auth-status', 'friend-status', 'chat-error']
          .map((id) => [id, document.querySelector(`[data-testid="${id}"]`)])
          .filter(([, e]) => e && e.textContent)
          .map(([id, e]) => `${id}: ${e.textContent}`));
      console.error(`${who}'s page says: ${said.join(' | ') || '(nothing)'}`);
    } catch (_) {
      // The page may be gone; the screenshot below says so too.
    }
    const path = `${stem}-${who}-failure.png`;
    try {
      await page.screenshot({ path, timeout: 5000 });
      console.error(`failure screenshot: ${path}`);
    } catch (e) {
      console.error(`no failure screenshot of ${who}: ${e.message}`);
    }
  }
}

let done = false;
const watchdog = setTimeout(async () => {
  if (done) return;
  console.error(`FAILED: the run took over ${RUN_TIMEOUT / 1000} s (at step: ${step})`);
  await Promise.race([failureShots(), new Promise((r) => setTimeout(r, 10_000))]);
  process.exit(1);
}, RUN_TIMEOUT);

let code = 0;
try {
  await main();
  log('all steps passed');
} catch (e) {
  code = 1;
  console.error(`FAILED at step "${step}": ${e && e.stack ? e.stack : e}`);
  if (problems.length) console.error(`browser problems:\n  ${problems.join('\n  ')}`);
  await failureShots();
} finally {
  done = true;
  clearTimeout(watchdog);
  if (browser) await browser.close().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
