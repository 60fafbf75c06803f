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
    set_blocking_mode(fd, libc::O_NONBLOCK)
}

/// Sets the open file's `O_NONBLOCK` flag to `nonblocking` (the flag or 0).
fn set_blocking_mode(fd: RawFd, nonblocking: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns and keeps open over this call.
    let set = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        let wanted = (flags & !libc::O_NONBLOCK) | nonblocking;
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, wanted) == 0
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

/// Opens the terminal `fd` is open on once more, as an open file of its own in blocking
/// mode: a reader that waits in `read` alone, while `fd` stays non-blocking for the
/// writes that must never wait. Through `/proc/self/fd`, so it is the same device even
/// if its path now names another. A port held exclusively (`TIOCEXCL`, as serialport
/// opens one) is let go for the moment of the open. Only for a terminal that opens
/// again as itself: not a pty's master side, where an open makes a new pty.
#[cfg(target_os = "linux")]
pub fn reopen_blocking(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).map_err(io::Error::other)?;
    // Non-blocking, as serialport opens a port: a port without CLOCAL would otherwise
    // wait for carrier here.
    let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: opens a NUL-terminated path that outlives the call.
    let open = || os_result(unsafe { libc::open(path.as_ptr(), flags) } as isize);
    let opened = match open() {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            // SAFETY: TIOCNXCL and TIOCEXCL take no argument; `fd` is open over the calls.
            os_result(unsafe { libc::ioctl(fd, libc::TIOCNXCL) } as isize)?;
            let opened = open();
            // SAFETY: as above.
            os_result(unsafe { libc::ioctl(fd, libc::TIOCEXCL) } as isize)?;
            opened
        }
        other => other,
    }?;
    // SAFETY: `open` returned a descriptor nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(opened as RawFd) };
    set_blocking_mode(opened as RawFd, 0)?;
    Ok(owned)
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

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn flags(fd: RawFd) -> libc::c_int {
        // SAFETY: F_GETFL on a descriptor the test keeps open.
        unsafe { libc::fcntl(fd, libc::F_GETFL) }
    }

    #[test]
    fn a_terminal_opened_again_reads_blocking_and_stays_exclusive() {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills two descriptors; the rest may be null.
        let made = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(made, 0, "{}", io::Error::last_os_error());
        // SAFETY: openpty made them; nothing else owns them.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        set_nonblocking(slave.as_raw_fd()).unwrap();
        // SAFETY: TIOCEXCL takes no argument.
        assert_eq!(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCEXCL) }, 0);

        let own = reopen_blocking(slave.as_raw_fd()).unwrap();
        assert_eq!(
            flags(own.as_raw_fd()) & libc::O_NONBLOCK,
            0,
            "the new one blocks"
        );
        assert_ne!(
            flags(slave.as_raw_fd()) & libc::O_NONBLOCK,
            0,
            "the old one does not"
        );
        let mut exclusive: libc::c_int = 0;
        // SAFETY: TIOCGEXCL writes one c_int, which lives on this stack.
        let asked = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGEXCL, &mut exclusive) };
        assert_eq!((asked, exclusive), (0, 1), "still held exclusively");

        // Raw, so the line reaches the reader as it is.
        // SAFETY: termios is plain data, filled by tcgetattr before use.
        unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut termios), 0);
            libc::cfmakeraw(&mut termios);
            assert_eq!(
                libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios),
                0
            );
        }
        let sent = b"\x00\xffline\r\n";
        // SAFETY: writes `sent`, valid for its length.
        let n = unsafe { libc::write(master.as_raw_fd(), sent.as_ptr().cast(), sent.len()) };
        assert_eq!(n, sent.len() as isize);
        let (mut buf, mut got) = ([0u8; 64], 0);
        while got < sent.len() {
            // A blocking read: it waits for the rest however the kernel hands it on.
            // SAFETY: reads into `buf` from `got`, valid for the length given.
            let n =
                unsafe { libc::read(own.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 64 - got) };
            assert!(n > 0, "{}", io::Error::last_os_error());
            got += n as usize;
        }
        assert_eq!(&buf[..got], sent);
    }
}
