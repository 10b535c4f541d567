package netsvc

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

type cacheKey struct {
	name          string
	qtype, qclass uint16
	do            bool
}

type cacheEntry struct {
	key     cacheKey
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// answerCache is a small LRU of forwarded answers. An answer lives for its
// smallest TTL (the SOA minimum for negative answers), at most maxCacheTTL; answers
// served from it carry their remaining TTL.
type answerCache struct {
	mu    sync.Mutex
	size  int
	lru   *list.List
	items map[cacheKey]*list.Element
}

func newAnswerCache(size int) *answerCache {
	return &answerCache{size: size, lru: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *answerCache) get(k cacheKey, now time.Time) *dns.Msg {
	if c.size <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		return nil
	}
	c.lru.MoveToFront(el)
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return m
}

func (c *answerCache) put(k cacheKey, m *dns.Msg, now time.Time) {
	if c.size <= 0 || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return
	}
	ttl, ok := minTTL(m)
	if !ok || ttl == 0 {
		return
	}
	d := min(time.Duration(ttl)*time.Second, maxCacheTTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.lru.Remove(el)
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, msg: m.Copy(), stored: now, expires: now.Add(d)})
	for c.lru.Len() > c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

// minTTL is the smallest TTL of the answer and authority records; for a negative
// answer, the SOA's TTL capped by its minimum field (RFC 2308).
func minTTL(m *dns.Msg) (uint32, bool) {
	var ttl uint32
	found := false
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			t := rr.Header().Ttl
			if soa, ok := rr.(*dns.SOA); ok && len(m.Answer) == 0 {
				t = min(t, soa.Minttl)
			}
			if !found || t < ttl {
				ttl, found = t, true
			}
		}
	}
	return ttl, found
}
