// Go net/http client: CONC goroutines issue keep-alive GETs for SECS
// seconds (run with GOMAXPROCS=1). Usage: httpclient URL SECS CONC
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := os.Args[1]
	secs, _ := strconv.ParseFloat(os.Args[2], 64)
	conc, _ := strconv.Atoi(os.Args[3])
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: conc, MaxIdleConnsPerHost: conc}}
	var n, errs int64
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := client.Get(url)
				if err != nil {
					atomic.AddInt64(&errs, 1)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || len(body) == 0 {
					atomic.AddInt64(&errs, 1)
				} else {
					atomic.AddInt64(&n, 1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("RESULT bench=http_client peer=go req_per_s=%.1f errors=%d\n",
		float64(n)/el, errs)
}
