package ui

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func TestLoginLimits(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	newLimiter := func() *loginLimiter {
		return newLoginLimiter(Config{Now: func() time.Time { return now }, LoginRate: rate.Every(10 * time.Second), LoginBurst: 5})
	}
	t.Run("per address, whatever the names", func(t *testing.T) {
		l := newLimiter()
		for i := range defaultIPBurst {
			require.True(t, l.allow(fmt.Sprintf("user%d", i), "192.0.2.1"), i)
		}
		require.False(t, l.allow("another", "192.0.2.1"), "distinct names from one address share its limit")
		require.True(t, l.allow("another", "192.0.2.2"))
	})
	t.Run("over the server, whatever the addresses", func(t *testing.T) {
		l := newLimiter()
		for i := range defaultGlobalBurst {
			require.True(t, l.allow("u", fmt.Sprintf("192.0.2.%d", i)), i)
		}
		require.False(t, l.allow("u", "198.51.100.1"))
	})
	t.Run("a refused attempt takes nothing from the other limits", func(t *testing.T) {
		l := newLimiter()
		for range 5 {
			require.True(t, l.allow("vic", "192.0.2.1"))
		}
		for range 30 {
			require.False(t, l.allow("vic", "192.0.2.1"))
		}
		for i := range defaultIPBurst - 5 {
			require.True(t, l.allow(fmt.Sprintf("ed%d", i), "192.0.2.1"), i)
		}
	})
	t.Run("a flood of names does not reset the limits", func(t *testing.T) {
		l := newLimiter()
		for range 5 {
			require.True(t, l.allow("vic", "192.0.2.1"))
		}
		require.False(t, l.allow("vic", "192.0.2.1"))
		for i := range maxLoginLimiters + 10 {
			l.allow(fmt.Sprintf("flood%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
		require.False(t, l.allow("vic", "192.0.2.1"), "vic is still limited")
		require.LessOrEqual(t, len(l.byKey), maxLoginLimiters)
		require.LessOrEqual(t, len(l.byIP), maxLoginLimiters)
		now = now.Add(time.Minute) // Every bucket refills: the limiters go as new ones come.
		require.True(t, l.allow("ana", "203.0.113.1"))
	})
	t.Run("at most loginHashes hashes at once", func(t *testing.T) {
		l := newLimiter()
		var running, peak atomic.Int32
		done := make(chan bool)
		for range 10 {
			go func() {
				done <- l.hash(context.Background(), func() {
					n := running.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
					running.Add(-1)
				})
			}()
		}
		for range 10 {
			require.True(t, <-done)
		}
		require.Equal(t, int32(loginHashes), peak.Load())
	})
}
