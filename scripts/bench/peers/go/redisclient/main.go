// Go + redigo (Debian's golang-github-gomodule-redigo-dev): CONC
// goroutines, each with its own connection, alternate SET and GET of
// their own key for SECS seconds against the redis-server on PORT (run
// with GOMAXPROCS=1). Usage: redisclient PORT SECS CONC
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

func main() {
	port := os.Args[1]
	secs, _ := strconv.ParseFloat(os.Args[2], 64)
	conc, _ := strconv.Atoi(os.Args[3])
	var n, errs int64
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	value := "vvvvvvvvvvvvvvvv"
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := redis.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				atomic.AddInt64(&errs, 1)
				return
			}
			defer c.Close()
			key := fmt.Sprintf("key:%d", i)
			for time.Now().Before(deadline) {
				if _, err := c.Do("SET", key, value); err != nil {
					atomic.AddInt64(&errs, 1)
					continue
				}
				v, err := redis.String(c.Do("GET", key))
				if err != nil || v != value {
					atomic.AddInt64(&errs, 1)
					continue
				}
				atomic.AddInt64(&n, 2)
			}
		}(i)
	}
	wg.Wait()
	took := time.Since(start).Seconds()
	fmt.Printf("RESULT bench=redis peer=go ops_per_s=%.1f errors=%d\n",
		float64(n)/took, errs)
}
