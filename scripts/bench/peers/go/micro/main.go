// Go micro benchmarks, run with GOMAXPROCS=1: switch [N] | spawn [N] | mem [N] | queue [N] | timers
// | process [N]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func status() (rss, hwm int64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			hwm = v * 1024
		}
	}
	return
}

const peer = "go"

func main() {
	bench := os.Args[1]
	n := 0
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	switch bench {
	case "switch":
		N := 1000000
		if n > 0 {
			N = n
		}
		var wg sync.WaitGroup
		wg.Add(2)
		w := func() {
			for i := 0; i < N/2; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}
		t0 := time.Now()
		go w()
		go w()
		wg.Wait()
		dt := time.Since(t0)
		fmt.Printf("RESULT bench=switch peer=%s ns_per_switch=%.3f\n", peer, float64(dt.Nanoseconds())/float64(N))

	case "spawn":
		N := 200000
		if n > 0 {
			N = n
		}
		var wg sync.WaitGroup
		t0 := time.Now()
		wg.Add(N)
		for i := 0; i < N; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		dt := time.Since(t0)
		fmt.Printf("RESULT bench=spawn peer=%s ns_per_task=%.3f\n", peer, float64(dt.Nanoseconds())/float64(N))

	case "mem":
		N := 100000
		if n > 0 {
			N = n
		}
		ev := make(chan struct{}) // the shared event: closed to release everyone
		var parked, done sync.WaitGroup
		runtime.GC()
		base, _ := status()
		t0 := time.Now()
		parked.Add(N)
		done.Add(N)
		for i := 0; i < N; i++ {
			go func() {
				parked.Done()
				<-ev
				done.Done()
			}()
		}
		parked.Wait()
		runtime.Gosched()
		tcreate := time.Since(t0).Seconds()
		rss, hwm := status()
		ng := runtime.NumGoroutine()
		close(ev)
		done.Wait()
		ok := 0
		if ng >= N {
			ok = 1
		}
		fmt.Printf("RESULT bench=mem peer=%s n=%d ok=%d bytes_per_task=%.3f rss_mb=%.3f hwm_mb=%.3f base_mb=%.3f create_s=%.3f\n",
			peer, N, ok, float64(hwm-base)/float64(N), float64(rss)/(1<<20), float64(hwm)/(1<<20), float64(base)/(1<<20), tcreate)

	case "queue":
		N := 1000000
		if n > 0 {
			N = n
		}
		ch := make(chan int, 100)
		fin := make(chan struct{})
		t0 := time.Now()
		go func() {
			for i := 0; i < N; i++ {
				ch <- i
			}
		}()
		go func() {
			for i := 0; i < N; i++ {
				<-ch
			}
			close(fin)
		}()
		<-fin
		dt := time.Since(t0)
		fmt.Printf("RESULT bench=queue peer=%s ns_per_item=%.3f\n", peer, float64(dt.Nanoseconds())/float64(N))

	case "timers":
		const N = 10000
		ds := make([]int, N)
		x := int64(42)
		for i := range ds {
			x = x * 48271 % 2147483647
			ds[i] = int(1 + x%100)
		}
		late := make([]float64, N)
		var wg sync.WaitGroup
		t0 := time.Now()
		wg.Add(N)
		for i := 0; i < N; i++ {
			go func(i int) {
				d := time.Duration(ds[i]) * time.Millisecond
				t := time.Now()
				time.Sleep(d)
				late[i] = float64(time.Since(t)-d) / 1e6
				wg.Done()
			}(i)
		}
		wg.Wait()
		dt := time.Since(t0)
		sum, max := 0.0, 0.0
		for _, l := range late {
			sum += l
			if l > max {
				max = l
			}
		}
		fmt.Printf("RESULT bench=timers peer=%s total_ms=%.3f mean_late_ms=%.3f max_late_ms=%.3f\n",
			peer, float64(dt.Nanoseconds())/1e6, sum/N, max)
	case "process":
		// N runs of /bin/true, 50 at a time, with os/exec
		N := 1000
		if n > 0 {
			N = n
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		errors := 0
		slots := make(chan struct{}, 50)
		t0 := time.Now()
		wg.Add(N)
		for i := 0; i < N; i++ {
			slots <- struct{}{}
			go func() {
				if exec.Command("/bin/true").Run() != nil {
					mu.Lock()
					errors++
					mu.Unlock()
				}
				<-slots
				wg.Done()
			}()
		}
		wg.Wait()
		dt := time.Since(t0)
		fmt.Printf("RESULT bench=process peer=%s n=%d runs_per_s=%.3f errors=%d\n", peer, N,
			float64(N)/dt.Seconds(), errors)
	default:
		fmt.Fprintln(os.Stderr, "unknown bench", bench)
		os.Exit(2)
	}
}
