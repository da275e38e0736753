//! A future beside a connection that is polled only when its own waker
//! fired: the connection's timer and the edge's stop signal.
//!
//! A connection's task wakes for every request (its socket is readable,
//! its response written). `tokio::select!` over the connection, a `Sleep`
//! and a `watch::changed` polls all three on every wake: some 400
//! instructions a request (measured, `bench/instructions.sh`) for futures
//! that fire once in seconds. A [`Gate`] gives the watchers
//! a waker of their own, which notes that it fired and wakes the task; the
//! watchers are polled on the wakes they caused, and once when armed.
//!
//! Written here because no crate offers this narrow a thing: it is a flag
//! and an [`AtomicWaker`] (from `atomic-waker`, which hyper's stack already
//! uses).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// The waker a gated future is polled with.
struct Flag {
    woken: AtomicBool,
    /// The task the gate was last polled from.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Polls a future only on the wakes it caused (see the module doc).
pub struct Gate {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Gate {
    pub fn new() -> Gate {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Gate {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// The next [`Gate::poll`] polls its future whether or not it woke:
    /// for a new future, which has registered nothing yet.
    pub fn arm(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Polls `future` if its waker fired since it was last polled (or the
    /// gate was armed); else `Pending`, and its waker will wake this task.
    pub fn poll<F: Future>(&self, future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // The task first: a wake after this is seen by the check below or
        // wakes the task registered here.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        future.poll(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A future that counts its polls and is ready once `ready` is set;
    /// it keeps the waker it was last polled with.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: std::sync::Mutex<Option<Waker>>,
    }

    impl Future for &Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_future_is_polled_once_armed_and_then_only_when_it_woke() {
        let task = Arc::new(CountingWaker::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let probe = Probe::default();
        let mut fut = pin!(&probe);
        let gate = Gate::new();
        // New: polled.
        assert!(gate.poll(fut.as_mut(), &mut cx).is_pending());
        // Other wakes of the task: not polled.
        for _ in 0..5 {
            assert!(gate.poll(fut.as_mut(), &mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
        // Its own wake: the task is woken, and the next poll polls it.
        probe.ready.store(true, Ordering::SeqCst);
        let own = probe.waker.lock().unwrap().take().unwrap();
        own.wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(gate.poll(fut.as_mut(), &mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
        // Armed again for a new future: polled at once.
        let second = Probe::default();
        let mut fut = pin!(&second);
        gate.arm();
        assert!(gate.poll(fut.as_mut(), &mut cx).is_pending());
        assert_eq!(second.polls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_gated_timer_fires_while_the_task_is_woken_by_other_things() {
        let gate = Gate::new();
        let mut sleep = pin!(tokio::time::sleep(Duration::from_millis(50)));
        let mut ticks = pin!(tokio::time::interval(Duration::from_millis(1)));
        let mut other_wakes = 0u32;
        std::future::poll_fn(|cx| {
            // The task wakes every millisecond for something else.
            while ticks.as_mut().poll_tick(cx).is_ready() {
                other_wakes += 1;
            }
            gate.poll(sleep.as_mut(), cx)
        })
        .await;
        assert!(other_wakes > 5, "{other_wakes}");
    }
}
