package thinpool

import "github.com/thind-storage/thind/internal/lockorder"

// notifier delivers the pool's events (mode changes, the low-water mark)
// to the Config callbacks on a goroutine of its own, one at a time and in
// the order they happened, with no lock of the pool held: the changes that
// raise them hold a prison cell and the transaction lock, and a callback
// that called back into the pool (Stats, Commit, SetWriteMode) from there
// could deadlock it. Events raised after Close are dropped.
type notifier struct {
	mu      lockorder.Mutex[lockorder.Leaf]
	pending []func()
	stopped bool
	wake    chan struct{} // capacity 1: an event is pending
	stop    chan struct{}
	done    chan struct{}
}

func newNotifier() *notifier {
	n := &notifier{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// post queues fn for delivery and returns at once.
func (n *notifier) post(fn func()) {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.pending = append(n.pending, fn)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.wake:
			n.deliver()
		case <-n.stop:
			n.deliver()
			return
		}
	}
}

// deliver runs the pending events, oldest first.
func (n *notifier) deliver() {
	for {
		n.mu.Lock()
		batch := n.pending
		n.pending = nil
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, fn := range batch {
			fn()
		}
	}
}

// close delivers what is pending, drops later events and waits for the
// delivering goroutine to end.
func (n *notifier) close() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	close(n.stop)
	<-n.done
}
