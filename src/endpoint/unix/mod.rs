//! What only Unix offers, in one folder as serialport keeps its `posix/`: descriptors
//! written without waiting ([`WriteNow`]), terminal flags, device numbers.

mod fd;
mod write_now;

pub use fd::{
    device_of, modem_bits, os_result, poll, read_waiting, set_hupcl, set_modem_bits,
    set_nonblocking,
};
#[cfg(target_os = "linux")]
pub use fd::{error_counts, reopen_blocking};
pub use write_now::WriteNow;
