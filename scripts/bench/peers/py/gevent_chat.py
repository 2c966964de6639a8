# gevent chat server: the protocol and the design of
# scripts/examples/chat.lua (a greenlet per client reading lines, a
# bounded queue of outgoing lines per client emptied by its own writer
# greenlet, slow clients dropped), on gevent's StreamServer.
#   /nick NAME, /join ROOM, /who, /rooms, /quit, /help; a plain line goes
#   to everyone else in the room as "<nick> line".
# Usage: /usr/bin/python3 gevent_chat.py PORT
import re
import socket
import sys

import gevent
from gevent.event import Event
from gevent.queue import Queue, Full
from gevent.server import StreamServer

QUEUE, SNDBUF, PATIENCE = 100, 64 * 1024, 1.0
NICK = re.compile(r"^[\w-]+$", re.A)
CMD = re.compile(r"^/([A-Za-z]+)\s*(.*?)\s*$", re.S)

rooms = {}   # name -> {client: True}
nicks = {}   # nickname -> client


class Client:
    __slots__ = ("sock", "out", "sent", "nick", "room", "gone", "behind", "writer")

    def __init__(self, sock):
        self.sock, self.out, self.sent = sock, Queue(QUEUE), Event()
        self.nick = self.room = self.behind = self.writer = None
        self.gone = False


def members(room, except_=None):
    return sorted(c.nick for c in rooms.get(room, ()) if c is not except_)


def send(c, data):  # data: a line with its newline
    if c.gone:
        return True
    try:
        c.out.put_nowait(data)
        return True
    except Full:
        return False


def tell(c, line):
    return send(c, (line + "\n").encode())


def keepup(c):
    while not c.gone and c.out.qsize() * 2 >= QUEUE:
        now = gevent.get_hub().loop.now()
        if c.behind is None:
            c.behind = now
        if now - c.behind >= PATIENCE:
            return drop(c)
        c.sent.clear()
        c.sent.wait(c.behind + PATIENCE - now)


def broadcast(room, line, except_=None):
    full, behind = [], []
    data = (line + "\n").encode()  # made once for all
    for c in list(rooms.get(room, ())):
        if c is not except_:
            if not send(c, data):
                full.append(c)
            elif c.out.qsize() * 2 >= QUEUE:
                behind.append(c)
    for c in full:
        drop(c)
    for c in behind:
        keepup(c)


def enter(c, room):
    c.room = room
    rooms.setdefault(room, {})[c] = True
    others = members(room, c)
    tell(c, "* You are in #%s, alone for now." % room if not others
         else "* You are in #%s with %s." % (room, ", ".join(others)))
    broadcast(room, "* %s has joined #%s" % (c.nick, room), c)


def leave(c, quitting=False):
    room = c.room
    if room is None:
        return None
    del rooms[room][c]
    if not rooms[room]:
        del rooms[room]
    c.room = None
    if quitting and nicks.get(c.nick) is c:
        del nicks[c.nick]
    return room


def finish(c):
    if c.gone:
        return
    c.gone = True
    try:  # ends the writer once the rest is sent (gevent's Queue has no close)
        c.out.put_nowait(StopIteration)
    except Full:
        pass  # the writer is busy with a full queue: it sees c.gone


def drop(c):
    if c.gone:
        return
    finish(c)
    c.sock.close()
    room = leave(c, True)
    if room:
        broadcast(room, "* %s was dropped (too slow)" % c.nick)


def writer(c):
    out, sock = c.out, c.sock
    while True:
        data = out.get()
        if data is StopIteration:
            return
        item = data
        if not out.empty():
            batch = [data]
            while not out.empty():
                item = out.get_nowait()
                if item is StopIteration:
                    break
                batch.append(item)
            data = b"".join(batch)
        try:
            sock.sendall(data)
        except OSError:
            return
        if c.behind is not None:  # a talker may wait in keepup
            c.behind = None
            c.sent.set()
        if item is StopIteration or (c.gone and out.empty()):
            return


def validnick(c, nick):
    if not NICK.match(nick) or len(nick) > 16:
        tell(c, "* A nickname is 1 to 16 letters, digits, _ or -.")
    elif nicks.get(nick, c) is not c:
        tell(c, "* %s is taken, pick another." % nick)
    else:
        return True
    return False


def cmd_nick(c, name):
    if name == c.nick or not validnick(c, name):
        return
    old = c.nick
    del nicks[old]
    nicks[name], c.nick = c, name
    tell(c, "* You are now known as %s." % name)
    broadcast(c.room, "* %s is now known as %s" % (old, name), c)


def cmd_join(c, room):
    room = room.lstrip("#")
    if not NICK.match(room) or len(room) > 32:
        tell(c, "* A room name is 1 to 32 letters, digits, _ or -.")
    elif room == c.room:
        tell(c, "* You are in #%s already." % room)
    else:
        old = leave(c)
        broadcast(old, "* %s has left #%s" % (c.nick, old))
        enter(c, room)


def cmd_who(c, _):
    tell(c, "* In #%s: %s" % (c.room, ", ".join(members(c.room))))


def cmd_rooms(c, _):
    tell(c, "* Rooms: " + ", ".join(sorted("#%s (%d)" % (n, len(s)) for n, s in rooms.items())))


def cmd_help(c, _):
    tell(c, "* Commands: /nick NAME, /join ROOM, /who, /rooms, /quit, /help")


COMMANDS = {"nick": cmd_nick, "join": cmd_join, "who": cmd_who, "rooms": cmd_rooms, "help": cmd_help}


def handle(sock, addr):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
    c = Client(sock)
    c.writer = gevent.spawn(writer, c)
    lines = sock.makefile("r", encoding="utf-8", errors="replace", newline="\n")
    try:
        tell(c, "* Welcome to greenlua chat! What is your nickname?")
        while True:
            line = lines.readline()
            if not line:
                return
            line = line.rstrip("\r\n")
            if validnick(c, line):
                break
        c.nick = line
        nicks[line] = c
        tell(c, "* Hello %s! Type /help for the commands." % line)
        enter(c, "lobby")
        while True:
            line = lines.readline()
            if not line or c.gone:
                return
            line = line.rstrip("\r\n")
            m = CMD.match(line)
            cmd, rest = (m.group(1), m.group(2)) if m else (None, None)
            if cmd == "quit":
                tell(c, "* Bye, %s!" % c.nick)
                finish(c)
                c.writer.join(2)
                return
            elif cmd in ("nick", "join") and rest == "":
                tell(c, "* Usage: /%s %s" % (cmd, "NAME" if cmd == "nick" else "ROOM"))
            elif cmd in COMMANDS:
                COMMANDS[cmd](c, rest)
            elif cmd:
                tell(c, "* Unknown command /%s; /help lists them." % cmd)
            elif line != "":
                broadcast(c.room, "<%s> %s" % (c.nick, line), c)
    except OSError:
        pass
    finally:
        room = leave(c, True)
        finish(c)
        if room:
            broadcast(room, "* %s has quit" % c.nick)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 6001
server = StreamServer(("127.0.0.1", port), handle, backlog=1024)
server.start()
print("chat server listening on port %d" % server.server_port, flush=True)
server.serve_forever()
