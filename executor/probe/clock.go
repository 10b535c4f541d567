package probe

import (
	"sync"
	"time"
)

// Clock is the time source of Workers (and of the metrics Sampler). RealClock is the
// wall clock; FakeClock moves only when a test advances it.
type Clock interface {
	Now() time.Time
	// NewTicker returns a ticker firing every d (d > 0). Like time.Ticker, it drops
	// ticks a slow receiver misses.
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of time.Ticker a Clock hands out.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTicker returns a time.Ticker.
func (RealClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// FakeClock is a Clock for tests: time stands still until Advance. The zero value is
// not usable; use NewFakeClock.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[*fakeTicker]struct{}
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, tickers: map[*fakeTicker]struct{}{}}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns a ticker that fires when Advance passes its next deadline.
func (c *FakeClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		d = time.Nanosecond
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{clock: c, period: d, next: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.tickers[t] = struct{}{}
	return t
}

// Advance moves the clock forward by d and fires every ticker whose deadline passed
// (at most one buffered tick each, like time.Ticker).
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.tickers {
		for !t.next.After(c.now) {
			select {
			case t.ch <- t.next:
			default:
			}
			t.next = t.next.Add(t.period)
		}
	}
}

// Tickers returns how many tickers are live (created and not stopped).
func (c *FakeClock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tickers)
}

type fakeTicker struct {
	clock  *FakeClock
	period time.Duration
	next   time.Time
	ch     chan time.Time
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	delete(t.clock.tickers, t)
}

var (
	_ Clock = RealClock{}
	_ Clock = (*FakeClock)(nil)
)
