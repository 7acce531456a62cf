// Prints compare.sh's table from the generator's JSON lines: rows are scenario figures,
// columns systems; throughput, latency, CPU and RSS cells carry their ratio to the
// ceiling's figure in the same run (x: the system's figure divided by the ceiling's),
// where the ceiling has that row.
//
//   node table.js results.jsonl ceiling socketio im im-mem
"use strict";

const fs = require("node:fs");

const [file, ...systemArgs] = process.argv.slice(2);
const lines = fs
  .readFileSync(file, "utf8")
  .split("\n")
  .filter((l) => l.startsWith("{"))
  .map((l) => JSON.parse(l));
const systems = systemArgs.length ? systemArgs : [...new Set(lines.map((l) => l.system))];

// [figure, shown as, kind]; kinds with a ratio: tput, lat, cpu, rss. "util" is a share
// of one core (server: its core 0; generator: its core 1), shown without a ratio.
const UTIL = [
  ["server_cpu_util", "server CPU util (of 1 core)", "util"],
  ["generator_cpu_util", "generator CPU util (of 1 core)", "util"],
  ["others_cpu_util", "other processes' CPU (cores)", "util"],
];
const FIGURES = {
  idle: [
    ["kib_per_conn", "server KiB per connection", "rss"],
    ["server_rss_settled_kib", "server RSS open (KiB)", "rss"],
    ["server_rss_after_close_kib", "server RSS after close (KiB)", "rss"],
    ["closed_by_server", "closed by the server", "plain"],
  ],
  "group-burst": [
    ["deliveries_per_sec", "deliveries/s", "tput"],
    ["latency_p50_ms", "push p50 ms", "lat"],
    ["latency_p99_ms", "push p99 ms", "lat"],
    ["latency_max_ms", "push max ms", "lat"],
    ["server_cpu_us_per_delivery", "server CPU µs/delivery", "cpu"],
    ...UTIL,
    ["server_rss_peak_kib", "server peak RSS (KiB)", "rss"],
    ["delivered", "delivered", "count"],
    ["resync_events", "resync events", "plain"],
  ],
  "group-paced": [
    ["latency_p50_ms", "push p50 ms (from intended)", "lat"],
    ["latency_p99_ms", "push p99 ms (from intended)", "lat"],
    ["server_cpu_us_per_delivery", "server CPU µs/delivery", "cpu"],
    ...UTIL,
    ["delivered", "delivered", "count"],
  ],
  "slow-consumer": [
    ["deliveries_per_sec", "readers' deliveries/s", "tput"],
    ["latency_p99_ms", "readers' push p99 ms", "lat"],
    ["server_cpu_us_per_delivery", "server CPU µs/delivery", "cpu"],
    ...UTIL,
    ["server_rss_peak_kib", "server peak RSS (KiB)", "rss"],
    ["delivered", "readers' delivered", "count"],
    ["resynced_receivers", "readers resynced", "plain"],
    ["stalled_closed_by_server", "stalled closed by server", "plain"],
    ["stalled_with_resync", "stalled that got resync", "plain"],
    ["stalled_messages_median", "stalled: median msgs buffered", "plain"],
  ],
  "connect-storm": [
    ["login_per_sec", "logins/s", "tput"],
    ["login_p99_ms", "login p99 ms", "lat"],
    ["resume_per_sec", "resumes/s", "tput"],
    ["resume_p99_ms", "resume p99 ms", "lat"],
  ],
  "direct-sends": [
    ["sends_per_sec", "acked sends/s", "tput"],
    ["ack_p50_ms", "ack p50 ms", "lat"],
    ["ack_p99_ms", "ack p99 ms", "lat"],
    ["server_cpu_us_per_send", "server CPU µs/send", "cpu"],
    ["server_cpu_util", "server CPU util (of 1 core)", "util"],
  ],
  "offline-sync": [
    ["sends_per_sec", "sender's acked sends/s", "tput"],
    ["catch_up_ms", "catch-up ms", "lat"],
    ["received", "messages caught up", "plain"],
  ],
  "login-flood": [
    ["login_per_sec", "logins/s", "tput"],
    ["login_p99_ms", "login p99 ms", "lat"],
    ["server_rss_peak_kib", "server peak RSS (KiB)", "rss"],
    ["server_rss_after_kib", "server RSS after (KiB)", "rss"],
  ],
};

function fmt(x, kind) {
  if (typeof x !== "number") return String(x);
  if (kind === "util") return x.toFixed(2);
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 100) return String(Math.round(x));
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

const labels = [...new Set(lines.map((l) => l.label))];
const rows = [];
for (const label of labels) {
  const bySystem = {};
  for (const l of lines) if (l.label === label) bySystem[l.system] = l;
  const any = Object.values(bySystem)[0];
  const figures = FIGURES[any.scenario] || [];
  const ceiling = bySystem.ceiling;
  for (const [key, name, kind] of figures) {
    const cells = systems.map((s) => {
      const l = bySystem[s];
      if (!l) return "";
      if (l.error) return `ERR: ${l.error}`;
      const v = l[key];
      if (v === undefined || v === null) return "—";
      let cell = kind === "count" ? `${v}/${l.expected_deliveries ?? "?"}` : fmt(v, kind);
      const c = ceiling && ceiling[key];
      if (["tput", "lat", "cpu", "rss"].includes(kind) && typeof c === "number" && c > 0 && typeof v === "number") {
        const r = v / c;
        cell += ` (${r >= 100 ? Math.round(r) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}x)`;
      }
      if (l.generator_bound === true && (kind === "tput" || kind === "util")) cell += " G";
      if (l.disturbed === true && kind !== "count" && kind !== "plain") cell += " D";
      if (l.complete === false) cell += " !";
      return cell;
    });
    if (cells.some((c) => c !== "" && c !== "—")) rows.push([label, name, ...cells]);
  }
}

const header = ["scenario", "figure", ...systems];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (r) => "| " + r.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
console.log(line(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
let previous = null;
for (const r of rows) {
  console.log(line([r[0] === previous ? "" : r[0], ...r.slice(1)]));
  previous = r[0];
}
console.log(
  "\n(x) = the system's figure / the ceiling's in this run (throughput: higher is better; " +
    "latency, CPU, RSS: lower is better). ! = the scenario did not complete (see its JSON line). " +
    "G = generator-bound: the generator used >= 90% of its core and the server < 80% of its own, " +
    "so the figure measures the generator, not the server. D = disturbed: other processes " +
    "used > 10% of a core during the measured phase (the machine has two cores), so the " +
    "figures are not comparable."
);
