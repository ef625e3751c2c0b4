package swarm

import "time"

// Clock is where the engine reads the time and sets its timers. The real
// one is the default; a test or a simulation may give its own (a
// simulation under testing/synctest can keep the real one, whose time is
// then the bubble's). The upload rate is paced on this clock; the download
// limit (Config.DownloadRate) keeps the time package's.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once on its channel after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer of a Clock, as *time.Timer.
type Timer interface {
	// C is the channel the timer fires on; nil for AfterFunc timers.
	C() <-chan time.Time
	// Stop and Reset behave as those of *time.Timer.
	Stop() bool
	Reset(d time.Duration) bool
}

// realClock is the time package's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
