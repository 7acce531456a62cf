// A minimal socket.io server for the load generator: every `m` event a client sends is
// broadcast to every other connected client. WebSocket transport only, no compression.
//
//   node server.js --port 0        # prints "socket.io listening on PORT"
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg("--port", "0"));
const host = arg("--host", "127.0.0.1");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  // The load generator holds thousands of sockets; the defaults (ping every 25 s,
  // 20 s to answer) stay as they are.
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("m", (data) => {
    socket.broadcast.emit("m", data);
  });
});

httpServer.listen(port, host, () => {
  process.stdout.write(`socket.io listening on ${httpServer.address().port}\n`);
});

function stop() {
  io.close();
  httpServer.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
