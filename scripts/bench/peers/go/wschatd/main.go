// Go web chat server with gorilla/websocket: the protocol and the design
// of scripts/examples/webchat.lua (the ws_fanout row of
// scripts/bench/compare), run with GOMAXPROCS=1.  A goroutine per client
// reads its messages (the first is its nickname), a bounded channel (100)
// of outgoing messages per client is emptied by its own writer goroutine,
// and a client whose channel is full is dropped.  Messages are the
// example's JSON; joins and leaves are announced while the room has at
// most 200 people; a newcomer gets up to 100 names and the last 50
// messages.
//
// Usage: wschatd PORT
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	queueLen = 100
	history  = 50
	notices  = 200
	maxLine  = 2000
)

var (
	upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096,
		CheckOrigin: func(r *http.Request) bool { return true }}
	nickRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)
	mu      sync.Mutex // guards clients, nicks, past and every client's gone
	clients = map[*client]bool{}
	nicks   = map[string]*client{}
	past    []string
)

type client struct {
	conn *websocket.Conn
	out  chan string
	nick string
	gone bool
}

func jstr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// broadcast queues msg for everyone but except (mu held); those whose
// queue is full are dropped.
func broadcast(msg string, except *client) {
	var full []*client
	for c := range clients {
		if c == except || c.gone {
			continue
		}
		select {
		case c.out <- msg:
		default:
			full = append(full, c)
		}
	}
	for _, c := range full {
		drop(c)
	}
}

func notice(kind string, c *client, reason string) {
	if len(clients) > notices {
		return
	}
	extra := ""
	if reason != "" {
		extra = `,"reason":` + jstr(reason)
	}
	broadcast(fmt.Sprintf(`{"type":"%s","nick":%s,"count":%d%s}`, kind, jstr(c.nick),
		len(clients), extra), c)
}

func leave(c *client, reason string) {
	if !clients[c] {
		return
	}
	delete(clients, c)
	delete(nicks, c.nick)
	notice("leave", c, reason)
}

func finish(c *client) {
	if !c.gone {
		c.gone = true
		close(c.out)
	}
}

func drop(c *client) {
	if c.gone {
		return
	}
	finish(c)
	c.conn.Close()
	leave(c, "too slow")
}

func writer(c *client) {
	for msg := range c.out {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return
		}
	}
}

func badnick(nick string) string {
	if !nickRe.MatchString(nick) {
		return "A nickname is 1 to 16 letters, digits, _ or -."
	}
	if nicks[nick] != nil {
		return nick + " is taken, pick another."
	}
	return ""
}

func tell(c *client, msg string) {
	if c.gone {
		return
	}
	select {
	case c.out <- msg:
	default:
		drop(c)
	}
}

func enter(c *client, nick string) {
	c.nick = nick
	nicks[nick] = c
	clients[c] = true
	names := []string{}
	for o := range clients {
		if o != c && len(names) < 100 {
			names = append(names, jstr(o.nick))
		}
	}
	tell(c, fmt.Sprintf(`{"type":"welcome","nick":%s,"count":%d,"users":[%s],"history":[%s]}`,
		jstr(nick), len(clients), strings.Join(names, ","), strings.Join(past, ",")))
	notice("join", c, "")
}

func speak(c *client, text string) {
	if strings.HasPrefix(text, "/nick ") {
		name := strings.TrimSpace(text[6:])
		if bad := badnick(name); bad != "" {
			tell(c, `{"type":"error","text":`+jstr(bad)+`}`)
			return
		}
		old := c.nick
		delete(nicks, old)
		nicks[name] = c
		c.nick = name
		broadcast(fmt.Sprintf(`{"type":"nick","old":%s,"nick":%s}`, jstr(old), jstr(name)), nil)
		return
	}
	if len(text) > maxLine {
		text = strings.ToValidUTF8(text[:maxLine], "")
	}
	msg := fmt.Sprintf(`{"type":"say","nick":%s,"text":%s,"time":%d}`, jstr(c.nick), jstr(text),
		time.Now().Unix())
	past = append(past, msg)
	if len(past) > history {
		past = past[1:]
	}
	broadcast(msg, nil)
}

func chat(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(4*maxLine + 64)
	c := &client{conn: conn, out: make(chan string, queueLen)}
	go writer(c)
	defer func() {
		mu.Lock()
		finish(c)
		leave(c, "")
		mu.Unlock()
		conn.Close()
	}()
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if kind != websocket.TextMessage {
			continue
		}
		mu.Lock()
		if c.gone {
			mu.Unlock()
			return
		}
		if c.nick != "" {
			speak(c, string(data))
		} else if bad := badnick(string(data)); bad != "" {
			tell(c, `{"type":"error","text":`+jstr(bad)+`}`)
		} else {
			enter(c, string(data))
		}
		mu.Unlock()
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wschatd PORT")
		os.Exit(2)
	}
	http.HandleFunc("/ws", chat)
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
