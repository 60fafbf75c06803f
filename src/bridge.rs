//! The running bridge: every thread and channel lives here.
//!
//! ```text
//!  port A ──read──▶ [reader A] ──lines──▶ ┌────────────┐ ──▶ [writer B] ──write──▶ port B
//!                                         │ dispatcher │
//!  port A ◀─write── [writer A] ◀──lines── └────────────┘ ◀──lines── [reader B] ◀──read── port B
//!                                               ▲ stop (Ctrl-C, SIGTERM, SIGHUP)
//! ```
//!
//! - A **reader** thread per endpoint blocks in `read`, feeds its [`Framer`] and sends
//!   every line completed by that read as one [`Batch`] on a bounded channel.
//! - The **dispatcher** (the caller's thread) selects over both reader channels, the
//!   stop channel and writer failures, taking whichever is ready first, and hands each
//!   batch to the writer of the other endpoint. It alone decides when to stop.
//! - A **writer** thread per endpoint writes what it is handed. It exists so that a
//!   port that drains slowly holds back only its own direction: while writer B is busy
//!   the dispatcher stops taking A's lines (A's reader then blocks, and A's kernel
//!   buffer fills: backpressure, not loss) but keeps moving B's lines to A. The
//!   dispatcher's select therefore has a *send* arm for a direction that holds a batch
//!   and a *receive* arm for one that does not; because the set of arms changes with
//!   that state it uses crossbeam's `Select`, the builder that `select!` expands to.
//!
//! **Fast path.** A thread wake-up costs tens of microseconds on a busy machine, and
//! the queued route above has two of them per batch. So when nothing is queued for
//! the destination (the lane's `outstanding` byte count is zero: nothing in the
//! channel, held by the dispatcher or with the writer), the reader writes the batch
//! itself through the endpoint's never-waiting write half, as much as fits. What does
//! not fit takes the queued route and is counted, so later batches queue behind it and
//! order is kept. A slow port thus still holds back only its own direction, and the
//! dispatcher still owns stopping; it simply has nothing to do while lines flow.
//!
//! **Partial lines.** Each reader's framer sits behind a mutex the dispatcher can take.
//! At shutdown, on a source closing, and after `--flush-after` of silence, the
//! dispatcher takes the unfinished line straight from the framer, so a reader blocked
//! in `read` never holds data hostage and never needs waking: an idle bridge does not
//! wake up at all. Order is kept by counting: a reader counts each message under that
//! mutex before sending it, and the dispatcher receives up to that count before it
//! writes the taken partial line. The reader's fast-path writes happen under the same
//! mutex, and a taken partial line counts as outstanding before the mutex is released.
//! Bytes whose `read` returns after the stop signal count as arriving after it and are
//! not forwarded.
//!
//! **Shutdown.** On a stop, a failure or a close, the dispatcher forwards everything
//! already read (held batches, batches in flight, partial lines), lets the writers
//! drain for at most [`SHUTDOWN_GRACE`], logs one summary line per direction and
//! returns. Reader threads blocked in `read` are not joined; the process exits around
//! them.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, Select, SendError, SendTimeoutError, Sender, TryRecvError, bounded,
};
use log::{debug, info, log_enabled, warn};

use crate::cli::Config;
use crate::endpoint::{Endpoint, OpenOptions};
use crate::error::Error;
use crate::framing::{Batch, Framer, Framing};

/// Batches waiting between a reader and the dispatcher. A batch holds a whole read, so
/// a few are enough to keep a port busy; more would only grow memory.
const CHANNEL_CAPACITY: usize = 4;

/// Batches waiting for a writer, for the same reason.
const WRITER_QUEUE: usize = 4;

/// Bytes asked of the OS per read: more than a serial port's driver buffer holds, so
/// one read takes everything that is waiting.
const READ_BUFFER: usize = 16 * 1024;

/// How long shutdown may spend writing out what was already read. Keeps "stop within
/// a second" true even when a port has stopped accepting data.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// How the bridge treats the data: the part of [`Config`] the running bridge needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines or raw.
    pub framing: Framing,
    /// Forward a partial line after this much silence from its source.
    pub flush_after: Option<Duration>,
    /// Log forwarded data as a hex dump rather than an escaped string.
    pub hex: bool,
    /// Clients a listening endpoint serves at once.
    pub max_clients: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            framing: Framing::default(),
            flush_after: None,
            hex: false,
            max_clients: 1,
        }
    }
}

impl Options {
    /// What opening an endpoint needs of these options.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            framing: self.framing.clone(),
            flush_after: self.flush_after,
            max_clients: self.max_clients,
        }
    }
}

/// What went one way through the bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Pieces written: lines, plus pieces of over-long or partial lines (raw: reads).
    pub pieces: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Opens both endpoints of `config` and bridges them until `stop` receives (or its
/// sender is dropped) or an endpoint fails or closes.
pub fn run(config: &Config, stop: Receiver<()>) -> Result<[Traffic; 2], Error> {
    let open = config.bridge.open_options();
    let a = config.a.open(&open)?;
    let b = config.b.open(&open)?;
    bridge(a, b, &config.bridge, stop)
}

/// Bridges two open endpoints; see [`run`]. Returns what went A to B and B to A.
pub fn bridge(
    a: Endpoint,
    b: Endpoint,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    info!("bridging {} <-> {} ({})", a.name, b.name, describe(options));
    let (fail_tx, fail_rx) = bounded(2);
    let (done_tx, done_rx) = bounded::<()>(0);
    let links = Links {
        options,
        fail: &fail_tx,
        done: &done_tx,
    };
    let (a_in, a_out, _a_guard) = split(a);
    let (b_in, b_out, _b_guard) = split(b);
    let a_to_b = links.start(a_in, b_out)?;
    let b_to_a = links.start(b_in, a_out)?;
    drop(done_tx);
    let mut dispatcher = Dispatcher {
        dirs: [a_to_b.0, b_to_a.0],
        rxs: [a_to_b.1, b_to_a.1],
        outs: [Some(a_to_b.2), Some(b_to_a.2)],
        stop,
        fail_rx,
        _fail_tx: fail_tx,
        done_rx,
        options: options.clone(),
    };
    let outcome = dispatcher.forward();
    dispatcher.finish(matches!(outcome, Ok(End::Input)));
    outcome.map(|_| dispatcher.traffic())
}

/// An endpoint's reading side.
struct Input {
    name: String,
    reader: Box<dyn Read + Send>,
    framed: bool,
    eof_is_end: bool,
    leftovers: Option<Box<dyn FnMut() -> Batch + Send>>,
}

/// An endpoint's writing side.
struct Output {
    name: String,
    writer: Box<dyn Write + Send>,
    writer_now: Option<Box<dyn Write + Send>>,
}

/// Splits an endpoint into the parts two directions use, and the guard the bridge
/// keeps until it ends.
fn split(endpoint: Endpoint) -> (Input, Output, Option<Box<dyn Send>>) {
    let input = Input {
        name: endpoint.name.clone(),
        reader: endpoint.reader,
        framed: endpoint.framed,
        eof_is_end: endpoint.eof_is_end,
        leftovers: endpoint.leftovers,
    };
    let output = Output {
        name: endpoint.name,
        writer: endpoint.writer,
        writer_now: endpoint.writer_now,
    };
    (input, output, endpoint.guard)
}

/// What both directions share when they start.
struct Links<'a> {
    options: &'a Options,
    fail: &'a Sender<Error>,
    done: &'a Sender<()>,
}

impl Links<'_> {
    /// Starts the reader of `input` and the writer of `output`; returns the direction
    /// with its reader channel and writer queue.
    fn start(
        &self,
        input: Input,
        output: Output,
    ) -> Result<(Direction, Receiver<Message>, Sender<Batch>), Error> {
        let (from, to) = (input.name.as_str(), output.name.as_str());
        let label = format!("{from} -> {to}");
        let spawn_error = |what: &str, source| Error::Setup {
            what: format!("cannot start the {what} thread for {from} -> {to}"),
            source,
        };
        // An endpoint that hands over whole pieces is not framed again.
        let framing = match input.framed {
            true => Framing::Raw,
            false => self.options.framing.clone(),
        };
        let source = Arc::new(Mutex::new(Source::new(Framer::new(&framing))));
        let lane = Arc::new(Lane::default());
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let reading = Reading {
            name: from.to_string(),
            label: label.clone(),
            hex: self.options.hex,
            source: Arc::clone(&source),
            lane: Arc::clone(&lane),
            direct: output.writer_now,
            tx,
            announce_partials: self.options.flush_after.is_some(),
        };
        spawn_reader(input.reader, reading).map_err(|e| spawn_error("reader", e))?;
        let (out_tx, out_rx) = bounded(WRITER_QUEUE);
        let writing = Writing {
            name: to.to_string(),
            rx: out_rx,
            lane: Arc::clone(&lane),
            fail: self.fail.clone(),
            done: self.done.clone(),
        };
        spawn_writer(output.writer, writing).map_err(|e| spawn_error("writer", e))?;
        let direction = Direction {
            label,
            from: from.to_string(),
            source,
            received: 0,
            open: true,
            held: None,
            flush_at: None,
            lane,
            eof_is_end: input.eof_is_end,
            leftovers: input.leftovers,
        };
        Ok((direction, rx, out_tx))
    }
}

fn describe(options: &Options) -> String {
    match &options.framing {
        Framing::Raw => "raw bytes".to_string(),
        Framing::Lines {
            delimiter,
            max_line,
        } => format!(
            "lines ending in \"{}\", at most {max_line} bytes",
            crate::cli::escape(delimiter)
        ),
    }
}

/// A reader's framer and bookkeeping, shared with the dispatcher.
#[derive(Debug)]
struct Source {
    framer: Framer,
    /// Messages counted (under this mutex) and then sent.
    sent: u64,
    /// Set by the dispatcher at shutdown: the reader sends nothing more.
    closed: bool,
    /// When the last read returned data.
    last_read: Instant,
    /// Whether the dispatcher has been told a partial line is pending.
    announced: bool,
}

impl Source {
    fn new(framer: Framer) -> Source {
        Source {
            framer,
            sent: 0,
            closed: false,
            last_read: Instant::now(),
            announced: false,
        }
    }
}

/// Locks a source. A reader thread never panics while holding the lock, but if one
/// did, the framer's state is still whole bytes, so carry on with it.
fn lock(source: &Mutex<Source>) -> MutexGuard<'_, Source> {
    source
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One message from a reader: the lines of one read, or the error that ended it.
/// A closed source sends nothing: its dropped sender says so.
type Message = io::Result<Chunk>;

/// The lines completed by one read.
#[derive(Debug)]
struct Chunk {
    batch: Batch,
    /// A partial line is pending after this read (only reported with `--flush-after`).
    partial: bool,
}

/// What a reader thread owns besides its read half.
struct Reading {
    name: String,
    /// `A -> B`, for logs.
    label: String,
    hex: bool,
    source: Arc<Mutex<Source>>,
    lane: Arc<Lane>,
    /// The other endpoint's write half that never waits, for the fast path.
    direct: Option<Box<dyn Write + Send>>,
    tx: Sender<Message>,
    announce_partials: bool,
}

fn spawn_reader(mut reader: Box<dyn Read + Send>, mut r: Reading) -> io::Result<()> {
    let thread = thread::Builder::new().name(format!("read {}", r.name));
    thread.spawn(move || {
        let mut buf = vec![0; READ_BUFFER];
        let mut warned = false;
        let shared = Arc::clone(&r.source);
        loop {
            let result = read_some(&mut *reader, &mut buf);
            let mut source = lock(&shared);
            if source.closed {
                return;
            }
            let message = match result {
                Ok(0) => return,
                Ok(n) => {
                    source.last_read = Instant::now();
                    let mut batch = Batch::with_capacity(n + source.framer.pending());
                    source.framer.feed(&buf[..n], &mut batch);
                    if !warned && source.framer.cuts() > 0 {
                        warned = true;
                        warn!(
                            "{}: a line is longer than --max-line; forwarding it in pieces",
                            r.name
                        );
                    }
                    if !batch.is_empty() {
                        log_pieces(&r.label, &batch, r.hex);
                        r.forward_now(&mut batch);
                    }
                    let partial = source.framer.pending() > 0;
                    let announce = r.announce_partials && partial && !source.announced;
                    if batch.is_empty() && !announce {
                        continue;
                    }
                    source.announced = partial && r.announce_partials;
                    Ok(Chunk { batch, partial })
                }
                Err(e) => Err(e),
            };
            let last = message.is_err();
            source.sent += 1;
            drop(source);
            if r.tx.send(message).is_err() || last {
                return;
            }
        }
    })?;
    Ok(())
}

impl Reading {
    /// The fast path. When nothing is queued for the other endpoint (nothing in the
    /// channel, held by the dispatcher or in its writer), nothing can be written ahead
    /// of this batch, so the reader writes it straight away, as much as fits without
    /// waiting. Whatever does not fit takes the queued path, counted in the lane's
    /// `outstanding` bytes so that later batches follow it. The caller holds the
    /// source lock, which orders this against the dispatcher taking a partial line.
    fn forward_now(&mut self, batch: &mut Batch) {
        if let Some(direct) = &mut self.direct
            && self.lane.outstanding.load(Ordering::Acquire) == 0
        {
            let written = write_now(&mut **direct, batch.bytes());
            let pieces = batch.advance(written);
            self.lane.record(pieces, written);
        }
        let queued = batch.bytes().len() as u64;
        self.lane.outstanding.fetch_add(queued, Ordering::Release);
    }
}

/// Writes what fits now; returns how much that was. Errors end the attempt quietly:
/// the queued path meets them again and reports them.
fn write_now(writer: &mut dyn Write, mut data: &[u8]) -> usize {
    let total = data.len();
    while !data.is_empty() {
        match writer.write(data) {
            Ok(0) => break,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    total - data.len()
}

/// One `read`, retried when a signal interrupts it.
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One direction's accounts, shared by its reader, the dispatcher and its writer.
#[derive(Debug, Default)]
struct Lane {
    /// Pieces written to the destination.
    pieces: AtomicU64,
    /// Bytes written to the destination.
    bytes: AtomicU64,
    /// Bytes read and queued for the destination but not yet written: in the
    /// channel, held by the dispatcher or with the writer. Zero means the reader may
    /// write straight to the destination without overtaking anything.
    outstanding: AtomicU64,
}

impl Lane {
    fn record(&self, pieces: usize, bytes: usize) {
        self.pieces.fetch_add(pieces as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// What a writer thread owns besides its write half.
struct Writing {
    name: String,
    rx: Receiver<Batch>,
    lane: Arc<Lane>,
    fail: Sender<Error>,
    /// Dropped when the thread ends; the dispatcher waits for that.
    done: Sender<()>,
}

fn spawn_writer(mut writer: Box<dyn Write + Send>, w: Writing) -> io::Result<()> {
    let thread = thread::Builder::new().name(format!("write {}", w.name));
    thread.spawn(move || {
        let _done = w.done;
        let mut warned = false;
        for batch in w.rx {
            if let Err(source) = write_patiently(&mut *writer, batch.bytes(), &w.name, &mut warned)
            {
                let endpoint = w.name;
                let _ = w.fail.send(match source.kind() {
                    io::ErrorKind::BrokenPipe => Error::Closed { endpoint },
                    _ => Error::Write { endpoint, source },
                });
                return;
            }
            let bytes = batch.bytes().len();
            w.lane.record(batch.pieces(), bytes);
            w.lane
                .outstanding
                .fetch_sub(bytes as u64, Ordering::Release);
        }
    })?;
    Ok(())
}

/// Writes all of `data`. A write that times out means the port is not accepting data
/// (flow control, or nothing reading a pty): log that once and keep trying, so the
/// bridge slows to the port's pace instead of dropping anything.
fn write_patiently(
    writer: &mut dyn Write,
    mut data: &[u8],
    name: &str,
    warned: &mut bool,
) -> io::Result<()> {
    while !data.is_empty() {
        match writer.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                if !*warned {
                    *warned = true;
                    warn!("{name}: not accepting data; holding lines for it back");
                } else {
                    debug!("{name}: still not accepting data");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction, as the dispatcher sees it.
struct Direction {
    /// `A -> B`, for logs.
    label: String,
    /// The source endpoint's name.
    from: String,
    source: Arc<Mutex<Source>>,
    /// Messages received from the source's reader.
    received: u64,
    /// The reader's channel is still connected.
    open: bool,
    /// A batch waiting for room in the writer's queue.
    held: Option<Batch>,
    /// When to check the partial line for `--flush-after`.
    flush_at: Option<Instant>,
    lane: Arc<Lane>,
    /// EOF from the source ends the bridge normally.
    eof_is_end: bool,
    /// The source's pieces not yet handed to its reader, taken at shutdown.
    leftovers: Option<Box<dyn FnMut() -> Batch + Send>>,
}

/// Why forwarding ended without a failure.
enum End {
    /// A stop signal.
    Stop,
    /// A source whose EOF is a normal end (stdin) reached it.
    Input,
}

/// What woke the dispatcher.
enum Event {
    Stop,
    Failed(Error),
    Received(usize, Option<Message>),
    Sent(Result<(), SendError<Batch>>),
    Timer,
}

struct Dispatcher {
    dirs: [Direction; 2],
    /// Each direction's reader channel.
    rxs: [Receiver<Message>; 2],
    /// Each direction's writer queue; `None` once shutdown lets the writer finish.
    outs: [Option<Sender<Batch>>; 2],
    stop: Receiver<()>,
    fail_rx: Receiver<Error>,
    /// Keeps `fail_rx` connected after both writers end.
    _fail_tx: Sender<Error>,
    done_rx: Receiver<()>,
    options: Options,
}

impl Dispatcher {
    /// Moves lines until a stop or the end of input (`Ok`), or a failure (`Err`).
    fn forward(&mut self) -> Result<End, Error> {
        loop {
            match self.wait() {
                Event::Stop => {
                    info!("stopping");
                    return Ok(End::Stop);
                }
                Event::Failed(error) => return Err(error),
                Event::Received(i, Some(Ok(chunk))) => {
                    self.dirs[i].received += 1;
                    if chunk.partial && self.dirs[i].flush_at.is_none() {
                        self.dirs[i].flush_at =
                            self.options.flush_after.map(|d| Instant::now() + d);
                    }
                    self.hold(i, chunk.batch);
                }
                Event::Received(i, Some(Err(source))) => {
                    self.dirs[i].received += 1;
                    let endpoint = self.dirs[i].from.clone();
                    return Err(Error::Read { endpoint, source });
                }
                Event::Received(i, None) => {
                    self.dirs[i].open = false;
                    let endpoint = self.dirs[i].from.clone();
                    if self.dirs[i].eof_is_end {
                        info!("{endpoint}: end of input");
                        return Ok(End::Input);
                    }
                    return Err(Error::Closed { endpoint });
                }
                Event::Sent(Ok(())) => {}
                Event::Sent(Err(_)) => {
                    // The writer ended; its failure is already on the channel.
                    return Err(self.fail_rx.recv().expect("fail channel stays connected"));
                }
                Event::Timer => self.flush_partials(),
            }
        }
    }

    /// Waits for the first ready operation among: stop, a writer failure, and for each
    /// direction either sending its held batch or receiving its next one.
    fn wait(&mut self) -> Event {
        let mut sel = Select::new();
        let stop = sel.recv(&self.stop);
        let fail = sel.recv(&self.fail_rx);
        let mut arms = [None, None];
        for (i, dir) in self.dirs.iter().enumerate() {
            arms[i] = match (&dir.held, &self.outs[i]) {
                (Some(_), Some(out)) => Some(sel.send(out)),
                (None, _) if dir.open => Some(sel.recv(&self.rxs[i])),
                _ => None,
            };
        }
        let deadline = (0..2)
            .filter(|&i| self.dirs[i].held.is_none())
            .filter_map(|i| self.dirs[i].flush_at)
            .min();
        let oper = match deadline {
            Some(deadline) => match sel.select_deadline(deadline) {
                Ok(oper) => oper,
                Err(_) => return Event::Timer,
            },
            None => sel.select(),
        };
        let index = oper.index();
        if index == stop {
            // A message or a dropped sender: either way, stop.
            let _ = oper.recv(&self.stop);
            return Event::Stop;
        }
        if index == fail {
            let error = oper.recv(&self.fail_rx);
            return Event::Failed(error.expect("fail channel stays connected"));
        }
        let i = arms
            .iter()
            .position(|&arm| arm == Some(index))
            .expect("the selected operation is one of the arms");
        match (self.dirs[i].held.take(), &self.outs[i]) {
            (Some(batch), Some(out)) => Event::Sent(oper.send(out, batch)),
            _ => Event::Received(i, oper.recv(&self.rxs[i]).ok()),
        }
    }

    /// Holds a batch for its writer.
    fn hold(&mut self, i: usize, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let dir = &mut self.dirs[i];
        match &mut dir.held {
            Some(held) => held.append(batch),
            None => dir.held = Some(batch),
        }
    }

    /// `--flush-after`: forwards each partial line whose source has been silent long
    /// enough, and re-arms the timer for the others.
    fn flush_partials(&mut self) {
        let now = Instant::now();
        let Some(after) = self.options.flush_after else {
            return;
        };
        for i in 0..2 {
            let dir = &self.dirs[i];
            match dir.flush_at {
                Some(at) if at <= now && dir.held.is_none() => {}
                _ => continue,
            }
            let due = {
                let source = lock(&dir.source);
                let due = source.last_read + after;
                (source.framer.pending() > 0).then_some(due)
            };
            self.dirs[i].flush_at = match due {
                Some(due) if due > now => Some(due),
                Some(_) => {
                    let rest = self.collect(i, false, None);
                    self.hold(i, rest);
                    None
                }
                None => None,
            };
        }
    }

    /// Takes direction `i`'s partial line, after every message its reader counted
    /// before that. With `closing`, the reader sends nothing more.
    fn collect(&mut self, i: usize, closing: bool, deadline: Option<Instant>) -> Batch {
        let dir = &mut self.dirs[i];
        let mut partial = Batch::default();
        let counted = {
            let mut source = lock(&dir.source);
            source.closed |= closing;
            source.announced = false;
            source.framer.take_partial(&mut partial);
            // Counted under the lock, so the reader's fast path now waits its turn.
            let queued = partial.bytes().len() as u64;
            dir.lane.outstanding.fetch_add(queued, Ordering::Release);
            source.sent
        };
        log_pieces(&dir.label, &partial, self.options.hex);
        let mut rest = Batch::default();
        while dir.received < counted {
            let message = match deadline {
                Some(deadline) => self.rxs[i].recv_deadline(deadline).ok(),
                None => self.rxs[i].recv().ok(),
            };
            let Some(message) = message else { break };
            dir.received += 1;
            match message {
                Ok(chunk) => rest.append(chunk.batch),
                Err(e) => debug!("{}: read error while stopping: {e}", dir.from),
            }
        }
        rest.append(partial);
        rest
    }

    /// Forwards everything already read, lets the writers drain, logs the summary.
    ///
    /// With `patient` (the input ended), everything is written however long the ports
    /// take, unless a stop signal comes meanwhile; then the usual grace applies.
    fn finish(&mut self, patient: bool) {
        let mut patience = Patience {
            patient,
            deadline: Instant::now() + SHUTDOWN_GRACE,
        };
        for i in 0..2 {
            let mut rest = self.collect(i, true, Some(patience.deadline));
            if let Some(leftovers) = &mut self.dirs[i].leftovers {
                let more = leftovers();
                log_pieces(&self.dirs[i].label, &more, self.options.hex);
                let queued = more.bytes().len() as u64;
                self.dirs[i]
                    .lane
                    .outstanding
                    .fetch_add(queued, Ordering::Release);
                rest.append(more);
            }
            self.hold(i, rest);
            if let (Some(mut batch), Some(out)) = (self.dirs[i].held.take(), &self.outs[i]) {
                while let Err(SendTimeoutError::Timeout(back)) = out.send_timeout(batch, TICK) {
                    batch = back;
                    if patience.over(&self.stop) {
                        break;
                    }
                }
            }
        }
        // Dropping the queues lets each writer finish what it has and end.
        self.outs = [None, None];
        while let Err(RecvTimeoutError::Timeout) = self.done_rx.recv_timeout(TICK) {
            if patience.over(&self.stop) {
                debug!("a writer did not finish in time");
                break;
            }
        }
        for (dir, traffic) in self.dirs.iter().zip(self.traffic()) {
            let mut line = match self.options.framing {
                Framing::Raw => format!("{}: {} bytes", dir.label, traffic.bytes),
                Framing::Lines { .. } => format!(
                    "{}: {} lines, {} bytes",
                    dir.label, traffic.pieces, traffic.bytes
                ),
            };
            let cuts = lock(&dir.source).framer.cuts();
            if cuts > 0 {
                line += &format!(" ({cuts} over-long lines forwarded in pieces)");
            }
            let unwritten = dir.lane.outstanding.load(Ordering::Acquire);
            if unwritten > 0 {
                line += &format!(
                    " ({unwritten} bytes read but not written: the port did not accept them in time)"
                );
            }
            info!("{line}");
        }
    }

    fn traffic(&self) -> [Traffic; 2] {
        self.dirs.each_ref().map(|dir| Traffic {
            pieces: dir.lane.pieces.load(Ordering::Relaxed),
            bytes: dir.lane.bytes.load(Ordering::Relaxed),
        })
    }
}

/// How often shutdown checks its deadline and the stop channel while it waits.
const TICK: Duration = Duration::from_millis(20);

/// How long shutdown may still wait.
struct Patience {
    /// No deadline until a stop signal arrives.
    patient: bool,
    deadline: Instant,
}

impl Patience {
    /// Whether to give up waiting now.
    fn over(&mut self, stop: &Receiver<()>) -> bool {
        if self.patient {
            if matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                return false;
            }
            self.patient = false;
            self.deadline = Instant::now() + SHUTDOWN_GRACE;
        }
        Instant::now() >= self.deadline
    }
}

/// Logs each piece of a batch at debug level, as it is formed.
fn log_pieces(label: &str, batch: &Batch, hex: bool) {
    if !log_enabled!(log::Level::Debug) {
        return;
    }
    for piece in batch.iter() {
        if hex {
            debug!("{label} {} bytes\n{}", piece.len(), hex_dump(piece));
        } else {
            debug!("{label} {} bytes \"{}\"", piece.len(), preview(piece));
        }
    }
}

/// A piece as an escaped string for the log, cut short if long.
fn preview(piece: &[u8]) -> String {
    const LIMIT: usize = 80;
    let mut text = crate::cli::escape(&piece[..piece.len().min(LIMIT)]);
    if piece.len() > LIMIT {
        text += "...";
    }
    text
}

/// A piece as `hexdump -C` shows it: offset, 16 bytes in hex, then as ASCII.
fn hex_dump(piece: &[u8]) -> String {
    let mut out = String::new();
    for (row, bytes) in piece.chunks(16).enumerate() {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        if row > 0 {
            out.push('\n');
        }
        out += &format!("  {:08x}  {:<47}  |{ascii}|", row * 16, hex.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_rows() {
        let dump = hex_dump(b"hello\n\x00\xffABCDEFGHIJ");
        let rows: Vec<&str> = dump.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].starts_with("  00000000  68 65 6c 6c 6f 0a 00 ff 41"));
        assert!(rows[0].ends_with("|hello...ABCDEFGH|"));
        assert!(rows[1].ends_with("|IJ|"));
    }

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview(b"hi\r\n\x00\xff\""), "hi\\r\\n\\0\\xff\\\"");
        assert!(preview(&[b'a'; 200]).ends_with("..."));
    }
}
