package ui

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login limits. A login costs an argon2id hash (19 MiB, tens of
// milliseconds of a core), known user or not, so logins are limited per
// user name and address, per address, and over the whole server, and at
// most loginHashes hashes run at once: the memory logins can take is
// loginHashes × 19 MiB whatever the callers do.
const (
	loginHashes        = 2
	loginHashWait      = 5 * time.Second
	maxLoginLimiters   = 10000
	defaultIPRate      = rate.Limit(1)
	defaultIPBurst     = 20
	defaultGlobalRate  = rate.Limit(10)
	defaultGlobalBurst = 40
)

// loginLimiter decides which login attempts are hashed. It is safe for
// concurrent use.
type loginLimiter struct {
	now               func() time.Time
	keyRate, ipRate   rate.Limit
	keyBurst, ipBurst int
	global            *rate.Limiter
	hashes            chan struct{}
	mu                sync.Mutex
	byKey, byIP       map[string]*rate.Limiter
	dummyHash         string
	dummyOnce         sync.Once
}

func newLoginLimiter(cfg Config) *loginLimiter {
	return &loginLimiter{now: cfg.Now, keyRate: cfg.LoginRate, keyBurst: cfg.LoginBurst,
		ipRate: defaultIPRate, ipBurst: defaultIPBurst, global: rate.NewLimiter(defaultGlobalRate, defaultGlobalBurst),
		hashes: make(chan struct{}, loginHashes), byKey: map[string]*rate.Limiter{}, byIP: map[string]*rate.Limiter{}}
}

// allow reports whether a login attempt for name from ip may be checked:
// its address, its name and address, and the server are all within their
// rates. An attempt refused by one limit takes nothing from the others.
func (l *loginLimiter) allow(name, ip string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	byIP := l.limiter(l.byIP, ip, l.ipRate, l.ipBurst, now)
	byKey := l.limiter(l.byKey, name+"|"+ip, l.keyRate, l.keyBurst, now)
	if byIP == nil || byKey == nil {
		return false
	}
	rs := []*rate.Reservation{byIP.ReserveN(now, 1), byKey.ReserveN(now, 1), l.global.ReserveN(now, 1)}
	for _, r := range rs {
		if !r.OK() || r.DelayFrom(now) > 0 {
			for _, r := range rs {
				r.CancelAt(now)
			}
			return false
		}
	}
	return true
}

// limiter returns the limiter of key in m, adding one. When m is full it
// first forgets the limiters back to a full bucket (they hold no state);
// if none is, it returns nil: the attempt is refused rather than a
// limiter of someone else forgotten, and the global limit still lets
// through what it lets through.
func (l *loginLimiter) limiter(m map[string]*rate.Limiter, key string, r rate.Limit, burst int, now time.Time) *rate.Limiter {
	if lim, ok := m[key]; ok {
		return lim
	}
	if len(m) >= maxLoginLimiters {
		for k, lim := range m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(m, k)
			}
		}
		if len(m) >= maxLoginLimiters {
			return nil
		}
	}
	lim := rate.NewLimiter(r, burst)
	m[key] = lim
	return lim
}

// hash runs f, a password hash, once one of the loginHashes slots is free;
// it reports false, without running f, when none frees up in time.
func (l *loginLimiter) hash(ctx context.Context, f func()) bool {
	ctx, cancel := context.WithTimeout(ctx, loginHashWait)
	defer cancel()
	select {
	case l.hashes <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-l.hashes }()
	f()
	return true
}

// dummy returns a hash of a random password, checked for unknown users at
// the cost of a real one, so that timing does not tell which names exist.
func (l *loginLimiter) dummy() string {
	l.dummyOnce.Do(func() {
		// HashPassword fails only if crypto/rand does, which it does not
		// (Go 1.24+).
		l.dummyHash, _ = HashPassword(NewPassword())
	})
	return l.dummyHash
}
