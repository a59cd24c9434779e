//! Sluice's counters as DPDK telemetry commands, so `dpdk-telemetry.py`
//! (and anything speaking its socket protocol) reads them like ethdev's.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Mutex, OnceLock};

use super::error::{check, DpdkError, Result};

/// A command's answer: named unsigned values (a telemetry dict).
pub type Source = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

fn registry() -> &'static Mutex<HashMap<String, Source>> {
    static R: OnceLock<Mutex<HashMap<String, Source>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The telemetry callback for every command registered here.
///
/// # Safety
/// DPDK's telemetry thread calls it with the command name it registered
/// (a C string) and a data object of its own for the answer.
unsafe extern "C" fn handler(
    cmd: *const c_char,
    _params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    // Never unwind into the telemetry thread's C code.
    let answer = std::panic::catch_unwind(|| {
        // SAFETY: telemetry passes the registered command as a C string.
        let name = unsafe { CStr::from_ptr(cmd) }
            .to_string_lossy()
            .into_owned();
        registry()
            .lock()
            .ok()
            .and_then(|r| r.get(&name).map(|f| f()))
    });
    let Ok(Some(values)) = answer else { return -1 };
    // SAFETY: `d` is the telemetry data object of this call; names are
    // NUL-terminated and shorter than RTE_TEL_MAX_STRING_LEN (checked).
    unsafe {
        dpdk_sys::rte_tel_data_start_dict(d);
        for (k, v) in values
            .iter()
            .take(dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize)
        {
            if k.len() >= dpdk_sys::RTE_TEL_MAX_STRING_LEN as usize {
                continue;
            }
            if let Ok(key) = CString::new(k.as_str()) {
                dpdk_sys::rte_tel_data_add_dict_u64(d, key.as_ptr(), *v);
            }
        }
    }
    0
}

/// Registers telemetry command `cmd` (starting with `/`) answering with
/// what `source` returns at each call. Registering a name twice replaces
/// its source.
pub fn register(cmd: &str, help: &str, source: Source) -> Result<()> {
    if !cmd.starts_with('/') || cmd.len() >= 56 {
        return Err(DpdkError::Invalid {
            what: format!("telemetry command {cmd:?}"),
            reason: "must start with / and be shorter than 56 bytes (DPDK's MAX_CMD_LEN)".into(),
        });
    }
    let (c, h) = match (CString::new(cmd), CString::new(help)) {
        (Ok(c), Ok(h)) => (c, h),
        _ => {
            return Err(DpdkError::Invalid {
                what: format!("telemetry command {cmd:?}"),
                reason: "contains a NUL byte".into(),
            })
        }
    };
    let first = registry()
        .lock()
        .map(|mut r| r.insert(cmd.to_owned(), source).is_none())
        .unwrap_or(false);
    if first {
        // SAFETY: telemetry copies the command name and keeps the help
        // pointer: the help string is leaked so it lives for the process.
        let ret = unsafe {
            dpdk_sys::rte_telemetry_register_cmd(c.as_ptr(), Some(handler), h.into_raw())
        };
        check(&format!("register telemetry command {cmd}"), ret)?;
    }
    Ok(())
}
