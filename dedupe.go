package tunehook

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DedupeStore remembers which callbacks a Receiver has processed, so that a
// duplicate delivery is acknowledged without being processed again and a
// stale stage is recognised. Keys are at most MaxDedupeKeyLen bytes.
//
// A key is absent, claimed (being processed, until a lease ends) or done
// (processed, until its TTL ends). Times are passed in, so stores need no
// clock of their own; an entry whose time is not after now counts as
// absent. Methods return only the errors of the underlying storage.
//
// MemoryDedupe is the default; SQLDedupe keeps the keys in a database, for
// receivers that restart or run as several replicas.
type DedupeStore interface {
	// Claim makes key claimed until until and returns true, unless key is
	// done or claimed with an until after now: then it returns false.
	// Concurrent claims of one key, also from several processes sharing
	// the store, return true to one caller at most.
	Claim(ctx context.Context, key string, now, until time.Time) (bool, error)
	// Complete makes key done until until, whether or not it was claimed.
	Complete(ctx context.Context, key string, until time.Time) error
	// Release makes a claimed key absent again, so that a later delivery
	// is processed. A done key stays done.
	Release(ctx context.Context, key string) error
	// Done reports whether any of keys is done at now.
	Done(ctx context.Context, now time.Time, keys ...string) (bool, error)
}

// MaxDedupeKeyLen is the length of the longest key a Receiver gives its
// DedupeStore; longer webhook ids are hashed down to it.
const MaxDedupeKeyLen = 255

// DefaultDedupeSize is the number of keys a MemoryDedupe holds unless told
// otherwise: a callback takes one or two.
const DefaultDedupeSize = 100_000

// MemoryDedupe is a DedupeStore in memory, bounded in size: when full it
// forgets the least recently used key. It forgets everything when the
// process ends; use SQLDedupe to remember across restarts. It is safe for
// concurrent use.
type MemoryDedupe struct {
	mu      sync.Mutex
	size    int
	entries map[string]*list.Element // of *memoryEntry
	lru     *list.List               // most recently used at the front
}

type memoryEntry struct {
	key   string
	done  bool
	until time.Time
}

// NewMemoryDedupe returns an empty MemoryDedupe that holds at most size
// keys; size <= 0 means DefaultDedupeSize. Size it well above the callbacks
// in flight: forgetting a claimed key lets a duplicate run concurrently.
func NewMemoryDedupe(size int) *MemoryDedupe {
	if size <= 0 {
		size = DefaultDedupeSize
	}
	return &MemoryDedupe{size: size, entries: map[string]*list.Element{}, lru: list.New()}
}

// Claim implements DedupeStore.
func (m *MemoryDedupe) Claim(_ context.Context, key string, now, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok {
		m.lru.MoveToFront(e)
		if e.Value.(*memoryEntry).until.After(now) {
			return false, nil
		}
	}
	m.set(key, false, until)
	return true, nil
}

// Complete implements DedupeStore.
func (m *MemoryDedupe) Complete(_ context.Context, key string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(key, true, until)
	return nil
}

// Release implements DedupeStore.
func (m *MemoryDedupe) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok && !e.Value.(*memoryEntry).done {
		m.lru.Remove(e)
		delete(m.entries, key)
	}
	return nil
}

// Done implements DedupeStore.
func (m *MemoryDedupe) Done(_ context.Context, now time.Time, keys ...string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, key := range keys {
		if e, ok := m.entries[key]; ok {
			m.lru.MoveToFront(e)
			if me := e.Value.(*memoryEntry); me.done && me.until.After(now) {
				return true, nil
			}
		}
	}
	return false, nil
}

// set stores key as the most recently used entry and evicts the least
// recently used ones beyond the size bound. The caller holds m.mu.
func (m *MemoryDedupe) set(key string, done bool, until time.Time) {
	if e, ok := m.entries[key]; ok {
		*e.Value.(*memoryEntry) = memoryEntry{key: key, done: done, until: until}
		m.lru.MoveToFront(e)
		return
	}
	m.entries[key] = m.lru.PushFront(&memoryEntry{key: key, done: done, until: until})
	for m.lru.Len() > m.size {
		oldest := m.lru.Back()
		m.lru.Remove(oldest)
		delete(m.entries, oldest.Value.(*memoryEntry).key)
	}
}
