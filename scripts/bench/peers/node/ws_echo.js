// WebSocket echo server with Node and ws (Debian's node-ws), for the
// ws_echo row of scripts/bench/compare: every message goes back as it
// came.  Usage: node ws_echo.js PORT
'use strict';
let ws;
try { ws = require('ws'); } catch (e) { ws = require('/usr/share/nodejs/ws'); }

const wss = new ws.WebSocketServer({host: '127.0.0.1', port: +process.argv[2],
  perMessageDeflate: false, maxPayload: 16 << 20});
wss.on('connection', c => {
  c.on('message', (data, isBinary) => c.send(data, {binary: isBinary}));
});
wss.on('listening', () => console.log('LISTENING ' + wss.address().port));
