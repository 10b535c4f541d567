package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gantry.io/gantry/executor/probe"
)

// DefaultInterval is how often a Sampler sweeps all containers.
const DefaultInterval = 10 * time.Second

// Clock is the Sampler's time source (probe.RealClock or probe.FakeClock).
type Clock = probe.Clock

// Source is what the executor core provides: the containers to sample and one
// reading of a container (task.Metrics decoded with DecodeMetric).
type Source interface {
	Containers(ctx context.Context) ([]ContainerID, error)
	Sample(ctx context.Context, id ContainerID) (Sample, error)
}

// SamplerOption configures NewSampler.
type SamplerOption func(*Sampler)

// WithInterval sets the sweep interval. Default DefaultInterval.
func WithInterval(d time.Duration) SamplerOption { return func(s *Sampler) { s.interval = d } }

// WithClock sets the time source: ticks and the Time of samples the Source leaves
// zero. Default probe.RealClock.
func WithClock(c Clock) SamplerOption { return func(s *Sampler) { s.clock = c } }

// Sampler sweeps a Source into a Store: once at Start, then every interval. A
// container whose sample fails is skipped for that sweep (it may have just exited);
// a failed listing leaves the Store as it was. New has no side effects; Close is safe
// before Start and more than once.
type Sampler struct {
	src      Source
	store    *Store
	interval time.Duration
	clock    Clock

	mu      sync.Mutex
	lastErr error
	cancel  context.CancelFunc
	done    chan struct{}

	afterSweep func() // tests
}

// NewSampler returns a Sampler of src into store.
func NewSampler(src Source, store *Store, opts ...SamplerOption) *Sampler {
	s := &Sampler{src: src, store: store}
	for _, o := range opts {
		o(s)
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.clock == nil {
		s.clock = probe.RealClock{}
	}
	return s
}

// Sweep samples every container once, bounded by the interval (a hung runtime call
// cannot stall the sampler past its next tick). It returns the listing error, or the
// per-container errors joined (the successful samples are recorded regardless).
func (s *Sampler) Sweep(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()
	ids, err := s.src.Containers(ctx)
	if err != nil {
		err = fmt.Errorf("list containers to sample: %w", err)
		s.setErr(err)
		return err
	}
	var errs []error
	for _, id := range ids {
		smp, err := s.src.Sample(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("sample %s/%s/%s: %w", id.Namespace, id.Pod, id.Container, err))
			continue
		}
		if smp.Time.IsZero() {
			smp.Time = s.clock.Now()
		}
		s.store.Record(id, smp)
	}
	s.store.Retain(ids)
	err = errors.Join(errs...)
	s.setErr(err)
	return err
}

func (s *Sampler) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// LastError returns the error of the last sweep, nil if it succeeded fully.
func (s *Sampler) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Start sweeps at once and then every interval in a goroutine, until ctx is done or
// Close. A second Start is a no-op.
func (s *Sampler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	ticker := s.clock.NewTicker(s.interval)
	go func() {
		defer close(s.done)
		defer ticker.Stop()
		for {
			_ = s.Sweep(ctx) // kept in LastError
			if s.afterSweep != nil {
				s.afterSweep()
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C():
			}
		}
	}()
}

// Close stops the sweeps and waits for one in flight.
func (s *Sampler) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}
