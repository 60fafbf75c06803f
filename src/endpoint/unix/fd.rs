//! Descriptor helpers: terminal flags, device numbers, reads that never wait.

use std::io;
use std::os::fd::RawFd;

/// A libc `read`, `write` or `send` result as `io::Result`: negative means errno.
pub fn os_result(n: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// The device number of the character device at `path` (following links), if it is one.
pub fn device_of(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_char_device().then(|| meta.rdev())
}

/// Puts the descriptor `fd` in non-blocking mode (`O_NONBLOCK`), shared by every
/// handle on the same open file.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns and keeps open over this call.
    let set = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    match set {
        true => Ok(()),
        false => Err(io::Error::last_os_error()),
    }
}

/// Sets or clears HUPCL on the terminal `fd`: whether the last close drops DTR (and so
/// resets an Arduino).
pub fn set_hupcl(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it from a descriptor the caller
    // owns and keeps open over this call.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut termios) != 0 {
            return Err(io::Error::last_os_error());
        }
        if on {
            termios.c_cflag |= libc::HUPCL;
        } else {
            termios.c_cflag &= !libc::HUPCL;
        }
        if libc::tcsetattr(fd, libc::TCSANOW, &termios) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads what is waiting on the non-blocking descriptor `fd` into `buf`, without
/// waiting: `Ok(0)` means nothing was there (or EOF; the caller's blocking read tells).
pub fn read_waiting(fd: RawFd, buf: &mut [u8]) -> usize {
    // SAFETY: reads into `buf`, valid for its length, from a descriptor the caller owns.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    os_result(n).unwrap_or(0)
}

/// Waits until one of `fds` is ready for its events, for at most `timeout` (`None`:
/// for ever): how many are ready, 0 when the time is up or a signal came.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<std::time::Duration>) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        Some(t) => libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: polls `fds`, valid for its length, which outlives the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    match usize::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            }
        }
    }
}

/// The modem bits of a terminal (`TIOCM_*`): an error where it has none (a pty).
pub fn modem_bits(fd: RawFd) -> io::Result<libc::c_int> {
    let mut bits: libc::c_int = 0;
    // SAFETY: TIOCMGET writes one c_int, which lives on this stack for the call.
    os_result(unsafe { libc::ioctl(fd, libc::TIOCMGET, &mut bits) } as isize)?;
    Ok(bits)
}

/// Sets the modem bits `on` and clears `off`, with one TIOCMSET so that both change at
/// the same moment (a reset circuit on DTR and RTS sees no step between them).
pub fn set_modem_bits(fd: RawFd, on: libc::c_int, off: libc::c_int) -> io::Result<()> {
    let bits = (modem_bits(fd)? | on) & !off;
    // SAFETY: TIOCMSET reads one c_int, which lives on this stack for the call.
    os_result(unsafe { libc::ioctl(fd, libc::TIOCMSET, &bits) } as isize)?;
    Ok(())
}

/// The receive errors a serial driver counted (`TIOCGICOUNT`): overrun (the UART's and
/// the buffer's), parity, framing and BREAKs. An error where the driver counts none.
#[cfg(target_os = "linux")]
pub fn error_counts(fd: RawFd) -> io::Result<[u32; 4]> {
    /// `struct serial_icounter_struct` of linux/serial.h.
    #[repr(C)]
    #[derive(Default)]
    struct Counts {
        cts: libc::c_int,
        dsr: libc::c_int,
        rng: libc::c_int,
        dcd: libc::c_int,
        rx: libc::c_int,
        tx: libc::c_int,
        frame: libc::c_int,
        overrun: libc::c_int,
        parity: libc::c_int,
        brk: libc::c_int,
        buf_overrun: libc::c_int,
        reserved: [libc::c_int; 9],
    }
    /// TIOCGICOUNT, the same number on every Linux architecture we build for.
    const TIOCGICOUNT: libc::c_ulong = 0x545D;
    let mut counts = Counts::default();
    // SAFETY: TIOCGICOUNT fills one serial_icounter_struct, which lives on this stack
    // for the call.
    os_result(unsafe { libc::ioctl(fd, TIOCGICOUNT as _, &mut counts) } as isize)?;
    let n = |v: libc::c_int| v as u32;
    Ok([
        n(counts.overrun).wrapping_add(n(counts.buf_overrun)),
        n(counts.parity),
        n(counts.frame),
        n(counts.brk),
    ])
}
