//! [`WriteNow`]: a write half that never waits, for the direct route.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::fd::{os_result, poll};
use crate::endpoint::contract::{Direct, Dropped, Taken};
use crate::framing::Batch;

/// A write half that never waits, on a descriptor of its own: a socket is sent to with
/// `MSG_DONTWAIT` (the socket itself stays blocking for the writer thread); any other
/// descriptor must be non-blocking already. Either way a write takes what fits now,
/// or fails with `WouldBlock`.
#[derive(Debug)]
pub struct WriteNow {
    fd: OwnedFd,
    socket: bool,
}

impl WriteNow {
    /// For a socket: `send` with `MSG_DONTWAIT | MSG_NOSIGNAL`.
    pub fn socket(fd: OwnedFd) -> WriteNow {
        WriteNow { fd, socket: true }
    }

    /// For a descriptor already in non-blocking mode, such as a terminal.
    pub fn nonblocking(fd: OwnedFd) -> WriteNow {
        WriteNow { fd, socket: false }
    }
}

impl Direct for WriteNow {
    /// Writes what fits now; an error ends the attempt quietly (the writer meets it
    /// again and reports it).
    fn try_send(&mut self, batch: &Batch) -> Taken {
        Taken {
            bytes: self.write_what_fits(batch.bytes()),
            dropped: Dropped::default(),
        }
    }

    /// `poll` for room to write. A hang-up or an error on the descriptor is an error.
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        match poll(&mut fds, Some(timeout))? {
            0 => Ok(false),
            _ if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            _ => Ok(true),
        }
    }
}

impl WriteNow {
    /// Writes what fits now (as [`Write::write`] does, from a shared handle).
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let (data, len) = (buf.as_ptr().cast(), buf.len());
        // SAFETY: reads `len` bytes from `buf`, valid for that long, into a descriptor
        // this struct owns.
        os_result(unsafe {
            match self.socket {
                true => libc::send(fd, data, len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL),
                false => libc::write(fd, data, len),
            }
        })
    }

    /// Writes as much of `data` as fits now; how much that was. An error ends the
    /// attempt quietly: whoever writes the rest meets it again and reports it.
    pub fn write_what_fits(&self, mut data: &[u8]) -> usize {
        let total = data.len();
        while !data.is_empty() {
            match self.write_now(data) {
                Ok(0) => break,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        total - data.len()
    }
}

impl Write for WriteNow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_now(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
