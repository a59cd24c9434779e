//! Running closures on worker lcores, with panics caught at the FFI edge.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::error::{call_error, Result};

/// A worker that panicked: the lcore and the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("worker on lcore {lcore} panicked: {message}")]
pub struct WorkerPanic {
    pub lcore: u32,
    pub message: String,
}

type Slot<R> = Arc<Mutex<Option<std::result::Result<R, String>>>>;

/// A closure running on a worker lcore. Waiting (or dropping) joins it.
#[derive(Debug)]
pub struct LcoreHandle<R> {
    lcore: u32,
    result: Slot<R>,
    waited: bool,
}

/// The lcore that called `rte_eal_init`.
pub fn main_lcore() -> u32 {
    // SAFETY: plain query after EAL init.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

/// Every enabled lcore except the main one, in order.
pub fn worker_lcores() -> Vec<u32> {
    let mut out = Vec::new();
    // SAFETY: plain queries; rte_get_next_lcore returns RTE_MAX_LCORE at the end.
    let mut i = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
    while i < dpdk_sys::RTE_MAX_LCORE {
        out.push(i);
        // SAFETY: as above.
        i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
    }
    out
}

/// The CPU's timestamp counter.
#[inline]
pub fn tsc_now() -> u64 {
    // rte_rdtsc is the bare instruction on x86-64: inline, where the call
    // into the C shim showed as 2.5 % of the decap worker's profile.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC only reads the time-stamp counter; every x86-64 has it.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the TSC; no memory is touched.
    unsafe {
        dpdk_sys::sluice_rte_rdtsc()
    }
}

/// Timestamp-counter ticks per second, as EAL measured them.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query after EAL init.
    unsafe { dpdk_sys::sluice_rte_get_tsc_hz() }
}

/// What crosses into C: the boxed closure.
type Job = Box<dyn FnOnce() + Send>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for this one call.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // The job catches its own panic; this second net keeps an unwind from
    // ever crossing into C, whatever happens.
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `f` on worker `lcore`. A panic in `f` is caught there and reported
/// by [`LcoreHandle::wait`] instead of unwinding into DPDK.
pub fn launch<F, R>(lcore: u32, f: F) -> Result<LcoreHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let result: Slot<R> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&result);
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()));
        if let Ok(mut s) = slot.lock() {
            *s = Some(r);
        }
    });
    let arg = Box::into_raw(Box::new(job));
    // SAFETY: trampoline has the lcore_function_t signature and takes back
    // ownership of `arg` exactly once when it runs.
    let ret =
        unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg as *mut c_void, lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline never ran: reclaim.
        drop(unsafe { Box::from_raw(arg) });
        return Err(call_error(format!("launch on lcore {lcore}"), ret));
    }
    Ok(LcoreHandle {
        lcore,
        result,
        waited: false,
    })
}

impl<R> LcoreHandle<R> {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Whether the closure has returned (or panicked) already.
    pub fn is_finished(&self) -> bool {
        // SAFETY: plain query of the lcore's state.
        let state = unsafe { dpdk_sys::rte_eal_get_lcore_state(self.lcore) };
        self.waited || state != dpdk_sys::RUNNING
    }

    fn join(&mut self) {
        if !self.waited {
            // SAFETY: plain call; blocks until the lcore finished our job.
            unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
            self.waited = true;
        }
    }

    /// Waits for the closure to finish and returns its value, or the panic.
    pub fn wait(mut self) -> std::result::Result<R, WorkerPanic> {
        self.join();
        let taken = self.result.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(Ok(r)) => Ok(r),
            Some(Err(message)) => Err(WorkerPanic {
                lcore: self.lcore,
                message,
            }),
            None => Err(WorkerPanic {
                lcore: self.lcore,
                message: "worker ended without a result".into(),
            }),
        }
    }
}

impl<R> Drop for LcoreHandle<R> {
    fn drop(&mut self) {
        // Join: the lcore must be idle again before anything else launches on it.
        self.join();
    }
}

/// `CLOCK_MONOTONIC` in ns: one clock for every thread and process of the
/// machine, so a send time written by one can be read by another.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer;
    // CLOCK_MONOTONIC exists on every Linux.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if ret != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has run, in ns (`CLOCK_THREAD_CPUTIME_ID`):
/// time it was preempted does not count. For benchmarks on shared machines.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer;
    // the thread CPU clock exists on every Linux DPDK supports.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if ret != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
