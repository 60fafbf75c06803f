//! `--coalesce US`: at a fast device's pace, lines share reads.
//!
//! A device that hands over one line per read (a USB CDC board, a fast UART) costs the
//! bridge a wake-up, a read and a hand-on per line: at 20,000 lines/s that is most of
//! its CPU. [`Coalescing`] wraps a device's read half: after a read that found a little
//! data within the window of asking (the device is sending faster than one line per
//! window), it waits out the window before reading again, so whatever arrived
//! meanwhile comes in one read and goes on together. A read that waited longer for its
//! data (a quiet device, a line now and then, a request and its answer slower than the
//! window) is followed by the next read at once, and so is a read that brought
//! [`ENOUGH`] bytes or more: many lines already share its cost, and waiting would only
//! cap a flood's throughput.
//!
//! The bound: no byte waits in the OS more than the window (plus the OS's timer slack,
//! about 50 µs on Linux; Windows' sleeps are coarser) before it is read. The first line
//! after a quiet spell goes at once, and a quiet device costs nothing: the wait only
//! follows a read that found data. Nothing is held in the bridge: what a read returns
//! goes on at once, before the wait, so a stop or an unplug mid-window loses nothing
//! already read.

use std::io::{self, Read};
use std::thread;
use std::time::{Duration, Instant};

/// The longest window `--coalesce` may name: a second, far past any use (a window is
/// worth a few hundred microseconds), short enough that a mistyped value is caught.
pub const LONGEST: Duration = Duration::from_secs(1);

/// A read this big needs no company: 32 lines of 32 bytes share its wake-up, read and
/// writes, so waiting before the next would save little, and it would cap a flood (a
/// pty hands over at most 4 KiB per read).
pub const ENOUGH: usize = 1024;

/// A read half whose reads wait out `window` while the device is busy (module doc).
pub struct Coalescing {
    inner: Box<dyn Read + Send>,
    window: Duration,
    /// The last read found a little data within the window of asking: wait before the
    /// next.
    busy: bool,
}

impl Coalescing {
    /// `inner`, read with `window`; a zero window leaves `inner` as it is.
    pub fn wrap(inner: Box<dyn Read + Send>, window: Duration) -> Box<dyn Read + Send> {
        if window.is_zero() {
            return inner;
        }
        Box::new(Coalescing {
            inner,
            window,
            busy: false,
        })
    }
}

impl Read for Coalescing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.busy {
            thread::sleep(self.window);
        }
        let asked = Instant::now();
        let read = self.inner.read(buf);
        self.busy = matches!(read, Ok(n) if n > 0 && n < ENOUGH) && asked.elapsed() < self.window;
        read
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// A socket pair: the far end to write, the near one wrapped with `window`.
    fn pair(window: Duration) -> (UnixStream, Box<dyn Read + Send>) {
        let (far, near) = UnixStream::pair().unwrap();
        (far, Coalescing::wrap(Box::new(near), window))
    }

    #[test]
    fn zero_window_reads_as_before() {
        let (mut far, mut near) = pair(Duration::ZERO);
        far.write_all(b"a\n").unwrap();
        let mut buf = [0; 8];
        assert_eq!(near.read(&mut buf).unwrap(), 2);
    }

    #[test]
    fn a_busy_device_shares_a_read_and_a_quiet_one_does_not_wait() {
        let window = Duration::from_millis(300);
        let (mut far, mut near) = pair(window);
        let mut buf = [0; 64];
        // Waiting data: found at once, so the next read waits out the window, and
        // what comes meanwhile is read in one go.
        far.write_all(b"one\n").unwrap();
        assert_eq!(near.read(&mut buf).unwrap(), 4);
        let start = Instant::now();
        far.write_all(b"two\n").unwrap();
        far.write_all(b"three\n").unwrap();
        let n = near.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two\nthree\n");
        assert!(start.elapsed() >= window, "{:?}", start.elapsed());
        // A read that waits longer than the window for its data (a quiet device) is
        // followed by the next read at once.
        let writer = thread::spawn(move || {
            thread::sleep(window * 3);
            far.write_all(b"late\n").unwrap();
            far
        });
        // The last read found data at once: this one waits the window, then for data.
        let n = near.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late\n");
        let mut far = writer.join().unwrap();
        let start = Instant::now();
        far.write_all(b"next\n").unwrap();
        let n = near.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"next\n");
        assert!(start.elapsed() < window, "{:?}", start.elapsed());
    }

    #[test]
    fn a_big_read_is_followed_by_the_next_at_once() {
        let window = Duration::from_millis(300);
        let (mut far, mut near) = pair(window);
        let mut buf = vec![0; 4 * ENOUGH];
        far.write_all(&[b'x'; ENOUGH]).unwrap();
        assert_eq!(near.read(&mut buf).unwrap(), ENOUGH);
        let start = Instant::now();
        far.write_all(b"more\n").unwrap();
        assert_eq!(near.read(&mut buf).unwrap(), 5);
        assert!(start.elapsed() < window, "{:?}", start.elapsed());
    }

    #[test]
    fn end_and_errors_pass_through() {
        let (far, mut near) = pair(Duration::from_millis(1));
        drop(far);
        assert_eq!(near.read(&mut [0; 8]).unwrap(), 0);
    }
}
