// Go chat server: the protocol and the design of scripts/examples/chat.lua
// (a goroutine per client reading lines, a bounded channel of outgoing
// lines per client emptied by its own writer goroutine, slow clients
// dropped), run with GOMAXPROCS=1.
//
//	/nick NAME, /join ROOM, /who, /rooms, /quit, /help; a plain line goes
//	to everyone else in the room as "<nick> line".
//
// Usage: chatd PORT
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	queueLen = 100
	sndbuf   = 64 * 1024
	patience = time.Second
)

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	cmdRe  = regexp.MustCompile(`^/([A-Za-z]+)\s*(.*?)\s*$`)
	mu     sync.Mutex // guards rooms, nicks and every client's nick, room, gone, behind
	rooms  = map[string]map[*client]bool{}
	nicks  = map[string]*client{}
)

type client struct {
	conn   *net.TCPConn
	out    chan string
	sent   chan struct{} // signalled by the writer after each send
	nick   string
	room   string
	gone   bool
	behind time.Time
	done   chan struct{} // closed when the writer ends
}

func members(room string, except *client) []string {
	list := []string{}
	for c := range rooms[room] {
		if c != except {
			list = append(list, c.nick)
		}
	}
	sort.Strings(list)
	return list
}

// send queues a line with its newline for c (mu held); false if c's
// queue is full.
func send(c *client, data string) bool {
	if c.gone {
		return true
	}
	select {
	case c.out <- data:
		return true
	default:
		return false
	}
}

func tell(c *client, line string) bool { return send(c, line+"\n") }

// keepup waits, mu not held, while c's queue is half full, for PATIENCE
// at most since c fell behind; then drops it.
func keepup(c *client) {
	for {
		mu.Lock()
		if c.gone || len(c.out)*2 < queueLen {
			mu.Unlock()
			return
		}
		now := time.Now()
		if c.behind.IsZero() {
			c.behind = now
		}
		left := c.behind.Add(patience).Sub(now)
		if left <= 0 {
			drop(c)
			mu.Unlock()
			return
		}
		select {
		case <-c.sent: // drain a stale signal
		default:
		}
		mu.Unlock()
		select {
		case <-c.sent:
		case <-time.After(left):
		}
	}
}

// broadcast tells everyone in room but except (mu held on entry and exit).
func broadcast(room, line string, except *client) {
	var behind []*client
	var full []*client
	data := line + "\n" // made once for all
	for c := range rooms[room] {
		if c != except {
			if !send(c, data) {
				full = append(full, c)
			} else if len(c.out)*2 >= queueLen {
				behind = append(behind, c)
			}
		}
	}
	for _, c := range full {
		drop(c)
	}
	if len(behind) > 0 {
		mu.Unlock()
		for _, c := range behind {
			keepup(c)
		}
		mu.Lock()
	}
}

func enter(c *client, room string) {
	c.room = room
	if rooms[room] == nil {
		rooms[room] = map[*client]bool{}
	}
	rooms[room][c] = true
	others := members(room, c)
	if len(others) == 0 {
		tell(c, fmt.Sprintf("* You are in #%s, alone for now.", room))
	} else {
		tell(c, fmt.Sprintf("* You are in #%s with %s.", room, strings.Join(others, ", ")))
	}
	broadcast(room, fmt.Sprintf("* %s has joined #%s", c.nick, room), c)
}

func leave(c *client, quitting bool) string {
	room := c.room
	if room == "" {
		return ""
	}
	delete(rooms[room], c)
	if len(rooms[room]) == 0 {
		delete(rooms, room)
	}
	c.room = ""
	if quitting && nicks[c.nick] == c {
		delete(nicks, c.nick)
	}
	return room
}

func finish(c *client) {
	if c.gone {
		return
	}
	c.gone = true
	close(c.out) // the writer sends what is left, then ends
}

func drop(c *client) {
	if c.gone {
		return
	}
	finish(c)
	c.conn.Close()
	if room := leave(c, true); room != "" {
		broadcast(room, fmt.Sprintf("* %s was dropped (too slow)", c.nick), nil)
	}
}

func writer(c *client) {
	defer close(c.done)
	for data := range c.out {
		if len(c.out) > 0 {
			batch := []string{data}
		more:
			for {
				select {
				case l, ok := <-c.out:
					if !ok {
						break more
					}
					batch = append(batch, l)
				default:
					break more
				}
			}
			data = strings.Join(batch, "")
		}
		if _, err := c.conn.Write([]byte(data)); err != nil {
			return
		}
		mu.Lock()
		behind := !c.behind.IsZero()
		c.behind = time.Time{}
		mu.Unlock()
		if behind { // a talker may wait in keepup
			select {
			case c.sent <- struct{}{}:
			default:
			}
		}
	}
}

func validnick(c *client, nick string) bool {
	if !nameRe.MatchString(nick) || len(nick) > 16 {
		tell(c, "* A nickname is 1 to 16 letters, digits, _ or -.")
	} else if o := nicks[nick]; o != nil && o != c {
		tell(c, fmt.Sprintf("* %s is taken, pick another.", nick))
	} else {
		return true
	}
	return false
}

func command(c *client, cmd, rest string) {
	switch cmd {
	case "nick":
		if rest == c.nick || !validnick(c, rest) {
			return
		}
		old := c.nick
		delete(nicks, old)
		nicks[rest], c.nick = c, rest
		tell(c, fmt.Sprintf("* You are now known as %s.", rest))
		broadcast(c.room, fmt.Sprintf("* %s is now known as %s", old, rest), c)
	case "join":
		room := strings.TrimPrefix(rest, "#")
		if !nameRe.MatchString(room) || len(room) > 32 {
			tell(c, "* A room name is 1 to 32 letters, digits, _ or -.")
		} else if room == c.room {
			tell(c, fmt.Sprintf("* You are in #%s already.", room))
		} else {
			old := leave(c, false)
			broadcast(old, fmt.Sprintf("* %s has left #%s", c.nick, old), nil)
			enter(c, room)
		}
	case "who":
		tell(c, fmt.Sprintf("* In #%s: %s", c.room, strings.Join(members(c.room, nil), ", ")))
	case "rooms":
		list := []string{}
		for name, set := range rooms {
			list = append(list, fmt.Sprintf("#%s (%d)", name, len(set)))
		}
		sort.Strings(list)
		tell(c, "* Rooms: "+strings.Join(list, ", "))
	case "help":
		tell(c, "* Commands: /nick NAME, /join ROOM, /who, /rooms, /quit, /help")
	default:
		tell(c, fmt.Sprintf("* Unknown command /%s; /help lists them.", cmd))
	}
}

func handle(conn *net.TCPConn) {
	conn.SetNoDelay(true) // Go's default; said for the others' sake
	conn.SetWriteBuffer(sndbuf)
	c := &client{conn: conn, out: make(chan string, queueLen), sent: make(chan struct{}, 1),
		done: make(chan struct{})}
	go writer(c)
	defer func() {
		mu.Lock()
		room := leave(c, true)
		finish(c)
		if room != "" {
			broadcast(room, fmt.Sprintf("* %s has quit", c.nick), nil)
		}
		mu.Unlock()
		<-c.done
		conn.Close()
	}()
	r := bufio.NewReader(conn)
	readline := func() (string, bool) {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		return strings.TrimRight(line, "\r\n"), true
	}
	mu.Lock()
	tell(c, "* Welcome to greenlua chat! What is your nickname?")
	mu.Unlock()
	var line string
	var ok bool
	for {
		if line, ok = readline(); !ok {
			return
		}
		mu.Lock()
		valid := validnick(c, line)
		if valid {
			c.nick = line
			nicks[line] = c
			tell(c, fmt.Sprintf("* Hello %s! Type /help for the commands.", line))
			enter(c, "lobby")
		}
		mu.Unlock()
		if valid {
			break
		}
	}
	for {
		if line, ok = readline(); !ok {
			return
		}
		mu.Lock()
		if c.gone {
			mu.Unlock()
			return
		}
		m := cmdRe.FindStringSubmatch(line)
		switch {
		case m != nil && m[1] == "quit":
			tell(c, fmt.Sprintf("* Bye, %s!", c.nick))
			finish(c)
			mu.Unlock()
			select {
			case <-c.done:
			case <-time.After(2 * time.Second):
			}
			return
		case m != nil && (m[1] == "nick" || m[1] == "join") && m[2] == "":
			what := "ROOM"
			if m[1] == "nick" {
				what = "NAME"
			}
			tell(c, fmt.Sprintf("* Usage: /%s %s", m[1], what))
		case m != nil:
			command(c, m[1], m[2])
		case line != "":
			broadcast(c.room, fmt.Sprintf("<%s> %s", c.nick, line), c)
		}
		mu.Unlock()
	}
}

func main() {
	port := "6001"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		panic(err)
	}
	fmt.Printf("chat server listening on port %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		go handle(conn.(*net.TCPConn))
	}
}
