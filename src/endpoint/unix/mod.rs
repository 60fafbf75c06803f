//! What only Unix offers, in one folder as serialport keeps its `posix/`: descriptors
//! written without waiting ([`WriteNow`]), terminal flags, device numbers.

mod fd;
mod write_now;

pub use fd::{device_of, os_result, poll, read_waiting, set_hupcl, set_nonblocking};
pub use write_now::WriteNow;
