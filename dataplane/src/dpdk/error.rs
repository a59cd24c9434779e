//! Errors of the DPDK layer, each with DPDK's own explanation.

use std::ffi::CStr;

use thiserror::Error;

/// `Result` of the DPDK layer.
pub type Result<T> = std::result::Result<T, DpdkError>;

/// What went wrong in a DPDK call. `reason` is `rte_strerror`'s text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DpdkError {
    #[error("EAL initialisation failed: {reason} (arguments: {args}); check the EAL arguments, and run `make setup` if hugepages are missing")]
    EalInit { reason: String, args: String },
    #[error("EAL is already initialised in this process; DPDK allows it once")]
    EalAlreadyInitialised,
    #[error("no free hugepages ({detail}): run `make setup` to reserve them, or pass --no-huge")]
    NoHugepages { detail: String },
    #[error("{what}: {reason}")]
    Call { what: String, reason: String },
    #[error("mempool {pool} has no free mbuf")]
    NoMbuf { pool: String },
    #[error("invalid argument {what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// Text of DPDK error number `errnum` (positive), as `rte_strerror` gives it.
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string that stays valid until the next call on this thread;
    // we copy it out at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errnum);
        if p.is_null() {
            return format!("error {errnum}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The current `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads the calling thread's rte_errno through the C shim.
    unsafe { dpdk_sys::sluice_rte_errno() }
}

/// The text for a call that returned `ret` (negative errno, or -1 with rte_errno set).
pub(crate) fn errno_text(ret: i32) -> String {
    strerror(if ret == -1 { rte_errno() } else { -ret })
}

/// Error for a call that returned `ret` (negative errno, or -1 with rte_errno set).
pub(crate) fn call_error(what: impl Into<String>, ret: i32) -> DpdkError {
    DpdkError::Call {
        what: what.into(),
        reason: errno_text(ret),
    }
}

/// Turns a DPDK return code into a `Result`.
pub(crate) fn check(what: &str, ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(call_error(what, ret))
    } else {
        Ok(ret)
    }
}
