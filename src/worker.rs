//! Workers: the threads that serve UDP queries, shared-nothing. Each worker
//! is one thread running its own current-thread runtime; it owns one
//! `SO_REUSEPORT` socket of every listen address, runs the tasks of the
//! queries that socket receives, and uses its own share of the upstream
//! sockets, whose reader tasks it also runs. A query therefore never wakes
//! another thread, and adding a worker adds no scheduler bookkeeping to any
//! query (tokio's multi-thread runtime costs ~15% per forwarded query).
//!
//! Worker 0 is the thread that calls [`Workers::start`] (dns64d's main
//! thread, which also serves TCP and the control path).
//!
//! Control path: started once by `app`, stopped after the drain.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::{CancellationToken, DropGuard};

thread_local! {
    /// (index, count) of the worker running on this thread.
    static CURRENT: Cell<(usize, usize)> = const { Cell::new((0, 1)) };
}

/// The worker running on this thread and how many there are: `(0, 1)` on
/// threads that are no worker (a test's runtime, for instance).
pub fn current() -> (usize, usize) {
    CURRENT.get()
}

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<()>>,
    exit: CancellationToken,
    /// Ends the threads if the owner is dropped without [`Workers::stop`].
    _exit_on_drop: DropGuard,
}

impl Workers {
    /// Makes the calling thread's runtime worker 0 and starts `count - 1`
    /// more threads, each with a current-thread runtime. A thread that
    /// cannot start is logged and the others serve without it.
    pub fn start(count: usize) -> Workers {
        let count = count.max(1);
        let exit = CancellationToken::new();
        let mut handles = vec![Handle::current()];
        let mut threads = Vec::new();
        for index in 1..count {
            match spawn(index, count, exit.clone()) {
                Ok((handle, thread)) => {
                    handles.push(handle);
                    threads.push(thread);
                }
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "cannot start a worker thread")
                }
            }
        }
        CURRENT.set((0, handles.len()));
        Workers {
            handles,
            threads,
            _exit_on_drop: exit.clone().drop_guard(),
            exit,
        }
    }

    /// The runtime of worker `i` (modulo the count).
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    /// Every worker's runtime, worker 0 first.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Ends the worker threads (after the drain: tasks left on them are
    /// dropped) and waits for them.
    pub fn stop(self) {
        self.exit.cancel();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts worker thread `index` of `count`; its runtime handle once running.
fn spawn(
    index: usize,
    count: usize,
    exit: CancellationToken,
) -> io::Result<(Handle, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("dns64d-worker-{index}"))
        .spawn(move || {
            CURRENT.set((index, count));
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(exit.cancelled());
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
    // The thread answers as soon as its runtime exists (or failed to).
    let handle = rx
        .recv()
        .map_err(|_| io::Error::other("worker thread ended at start"))??;
    Ok((handle, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_worker_runs_tasks_on_its_own_thread_and_knows_its_index() {
        let workers = Workers::start(3);
        assert_eq!(current(), (0, 3));
        let mut seen = Vec::new();
        for i in 0..3 {
            let (index, thread) = workers
                .handle(i)
                .spawn(async { (current(), std::thread::current().id()) })
                .await
                .unwrap();
            assert_eq!(index, (i, 3));
            seen.push(thread);
        }
        seen.sort_by_key(|t| format!("{t:?}"));
        seen.dedup();
        assert_eq!(seen.len(), 3, "three threads");
        workers.stop();
    }
}
