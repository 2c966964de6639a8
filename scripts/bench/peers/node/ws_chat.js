// Web chat server with Node and ws (Debian's node-ws): the protocol of
// scripts/examples/webchat.lua, for the ws_fanout row of
// scripts/bench/compare.  The first text message of a client is its
// nickname, each later one a line said to everyone; messages are the
// example's JSON; joins and leaves are announced while the room has at
// most 200 people; a newcomer gets up to 100 names and the last 50
// messages.  Node's design: one loop, each send buffered by ws and the
// socket as needed; a client with more than 1 MiB waiting is dropped.
// Usage: node ws_chat.js PORT
'use strict';
let ws;
try { ws = require('ws'); } catch (e) { ws = require('/usr/share/nodejs/ws'); }

const HISTORY = 50, NOTICES = 200, MAXLINE = 2000, MAXBUF = 1 << 20;
const clients = new Set(), nicks = new Map(), past = [];
const NICK = /^[A-Za-z0-9_-]{1,16}$/;

function tell(c, msg) {
  if (c.gone) return;
  if (c.sock.bufferedAmount > MAXBUF) return drop(c);
  c.sock.send(msg);
}

function broadcast(msg, except) {
  for (const c of clients) if (c !== except) tell(c, msg);
}

function notice(kind, c, reason) {
  if (clients.size > NOTICES) return;
  const m = {type: kind, nick: c.nick, count: clients.size};
  if (reason) m.reason = reason;
  broadcast(JSON.stringify(m), c);
}

function leave(c, reason) {
  if (!clients.delete(c)) return;
  nicks.delete(c.nick);
  notice('leave', c, reason);
}

function drop(c) {
  if (c.gone) return;
  c.gone = true;
  c.sock.terminate();
  leave(c, 'too slow');
}

function badnick(nick) {
  if (!NICK.test(nick)) return 'A nickname is 1 to 16 letters, digits, _ or -.';
  if (nicks.has(nick)) return nick + ' is taken, pick another.';
  return null;
}

function enter(c, nick) {
  c.nick = nick;
  nicks.set(nick, c);
  clients.add(c);
  const users = [];
  for (const o of clients) {
    if (users.length === 100) break;
    if (o !== c) users.push(JSON.stringify(o.nick));
  }
  tell(c, `{"type":"welcome","nick":${JSON.stringify(nick)},"count":${clients.size},` +
    `"users":[${users.join(',')}],"history":[${past.join(',')}]}`);
  notice('join', c);
}

function speak(c, text) {
  const m = /^\/nick\s+(.*?)\s*$/.exec(text);
  if (m) {
    const bad = badnick(m[1]);
    if (bad) return tell(c, JSON.stringify({type: 'error', text: bad}));
    const old = c.nick;
    nicks.delete(old);
    nicks.set(m[1], c);
    c.nick = m[1];
    return broadcast(JSON.stringify({type: 'nick', old: old, nick: m[1]}));
  }
  if (text.length > MAXLINE) text = text.slice(0, MAXLINE);
  const msg = JSON.stringify({type: 'say', nick: c.nick, text: text,
    time: Math.floor(Date.now() / 1000)});
  past.push(msg);
  if (past.length > HISTORY) past.shift();
  broadcast(msg);
}

const wss = new ws.WebSocketServer({host: '127.0.0.1', port: +process.argv[2],
  path: '/ws', perMessageDeflate: false, maxPayload: 4 * MAXLINE + 64});
wss.on('connection', sock => {
  const c = {sock: sock, nick: null, gone: false};
  sock.on('message', (data, isBinary) => {
    if (isBinary || c.gone) return;
    const text = data.toString();
    if (c.nick !== null) return speak(c, text);
    const bad = badnick(text);
    if (bad) tell(c, JSON.stringify({type: 'error', text: bad}));
    else enter(c, text);
  });
  sock.on('close', () => { c.gone = true; leave(c); });
  sock.on('error', () => {});
});
wss.on('listening', () => console.log('LISTENING ' + wss.address().port));
