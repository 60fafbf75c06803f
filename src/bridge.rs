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
//! **Reconnecting** (`--reconnect`). When an endpoint fails or closes, the dispatcher
//! forwards what it sent last, marks it down and starts a thread that opens its spec
//! again with a growing delay. Lines for it go to a bounded backlog (`--queue`, oldest
//! dropped first) instead of its writer, so the other endpoint keeps being read. When
//! it opens, new reader and writer threads start and the backlog goes out first. A
//! writer's failure carries the generation of the opening it served, so a failure that
//! arrives after a reconnect is recognised as old news.
//!
//! **Shutdown.** On a stop, a failure or a close, the dispatcher forwards everything
//! already read (held batches, batches in flight, partial lines), lets the writers
//! drain for at most [`SHUTDOWN_GRACE`], logs one summary line per direction and
//! returns. Reader threads blocked in `read` are not joined; the process exits around
//! them.

use std::collections::VecDeque;
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
use crate::endpoint::{Endpoint, OpenOptions, Spec};
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
    /// Open a lost endpoint again instead of ending the bridge.
    pub reconnect: bool,
    /// Lines kept for an endpoint that is down; the oldest go first.
    pub queue: usize,
    /// Log a traffic line per direction this often.
    pub stats: Option<Duration>,
}

/// Lines kept for a down endpoint by default: several seconds of a chatty device at
/// 9600 baud (about 30 short lines a second), and at most 1 MiB at the default
/// `--max-line`, so memory stays small however long a board is unplugged.
pub const DEFAULT_QUEUE: usize = 256;

impl Default for Options {
    fn default() -> Options {
        Options {
            framing: Framing::default(),
            flush_after: None,
            hex: false,
            max_clients: 1,
            reconnect: false,
            queue: DEFAULT_QUEUE,
            stats: None,
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
/// sender is dropped) or an endpoint fails or closes. With `--reconnect`, an endpoint
/// that cannot be opened or goes away is opened again until it is back.
pub fn run(config: &Config, stop: Receiver<()>) -> Result<[Traffic; 2], Error> {
    let open = config.bridge.open_options();
    let specs = [config.a.clone(), config.b.clone()];
    let mut endpoints = Vec::new();
    let mut absent = [false; 2];
    for (i, spec) in specs.iter().enumerate() {
        match spec.open(&open) {
            Ok(endpoint) => endpoints.push(endpoint),
            // A USB selector naming several boards is a mistake to fix, not one to wait out.
            Err(error)
                if config.bridge.reconnect && !crate::endpoint::usb::is_ambiguous(&error) =>
            {
                warn!("{error}; waiting for it (--reconnect)");
                absent[i] = true;
                let name = spec.to_string();
                endpoints.push(Endpoint::new(
                    name,
                    Box::new(io::empty()),
                    Box::new(io::sink()),
                ));
            }
            Err(error) => return Err(error),
        }
    }
    let b = endpoints.pop().expect("two endpoints");
    let a = endpoints.pop().expect("two endpoints");
    let reopen = config.bridge.reconnect.then_some((specs, absent));
    start(a, b, &config.bridge, stop, reopen)
}

/// Bridges two open endpoints; see [`run`]. Returns what went A to B and B to A.
/// An endpoint that fails or closes ends the bridge: reconnecting needs the specs,
/// which only [`run`] has.
pub fn bridge(
    a: Endpoint,
    b: Endpoint,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    start(a, b, options, stop, None)
}

fn start(
    a: Endpoint,
    b: Endpoint,
    options: &Options,
    stop: Receiver<()>,
    reopen: Option<([Spec; 2], [bool; 2])>,
) -> Result<[Traffic; 2], Error> {
    info!("bridging {} <-> {} ({})", a.name, b.name, describe(options));
    let (fail_tx, fail_rx) = bounded(4);
    let (done_tx, done_rx) = bounded::<()>(0);
    let links = Links {
        options: options.clone(),
        fail: fail_tx,
        done: Some(done_tx),
    };
    let settles = [a.settle, b.settle];
    let (a_in, a_out, a_guard) = split(a);
    let (b_in, b_out, b_guard) = split(b);
    let mut dirs = Vec::new();
    let mut rxs = Vec::new();
    let mut outs = Vec::new();
    // Direction 0 is A to B, direction 1 is B to A; endpoint 1's writer serves
    // direction 0.
    for (input, output, to) in [(a_in, b_out, 1), (b_in, a_out, 0)] {
        let label = format!("{} -> {}", input.name, output.name);
        let lane = Arc::new(Lane::default());
        *lane.direct() = output.writer_now;
        let eof_is_end = input.eof_is_end;
        let (from, leftovers) = (input.name.clone(), input.leftovers);
        let (source, rx) =
            links.start_reader(input.name, input.reader, input.framed, &label, &lane)?;
        outs.push(Some(links.start_writer(
            to,
            0,
            output.name,
            output.writer,
            &lane,
        )?));
        rxs.push(rx);
        dirs.push(Direction {
            label,
            from,
            source,
            received: 0,
            open: true,
            held: None,
            flush_at: None,
            lane,
            eof_is_end,
            leftovers,
            backlog: None,
            dropped: 0,
            settling: None,
        });
    }
    let (reopen_tx, reopen_rx) = bounded(2);
    let (specs, absent) = match reopen {
        Some((specs, absent)) => (Some(specs), absent),
        None => (None, [false; 2]),
    };
    let mut dispatcher = Dispatcher {
        dirs: dirs
            .try_into()
            .unwrap_or_else(|_| unreachable!("two directions")),
        rxs: rxs
            .try_into()
            .unwrap_or_else(|_| unreachable!("two directions")),
        outs: outs
            .try_into()
            .unwrap_or_else(|_| unreachable!("two directions")),
        stop,
        fail_rx,
        done_rx,
        links,
        options: options.clone(),
        specs,
        reopen_tx,
        reopen_rx,
        down: [None, None],
        generations: [0, 0],
        reconnects: 0,
        guards: [a_guard, b_guard],
        stats_at: options.stats.map(|every| Instant::now() + every),
    };
    for e in 0..2 {
        if absent[e] {
            dispatcher.go_down(e);
        } else if let Some(settle) = settles[e] {
            let direct = dispatcher.dirs[1 - e].lane.direct().take();
            dispatcher.settle(e, settle, direct);
        }
    }
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

/// The guard a bridge keeps until it ends (or the endpoint is replaced).
type Guard = Option<Box<dyn Send>>;

/// Splits an endpoint into the parts two directions use, and its guard.
fn split(endpoint: Endpoint) -> (Input, Output, Guard) {
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

/// What starting a reader or writer thread needs; kept to start them again when an
/// endpoint comes back.
struct Links {
    options: Options,
    fail: Sender<Failure>,
    /// Cloned into every writer; dropped at shutdown so its receiver can tell when
    /// the last writer has ended.
    done: Option<Sender<()>>,
}

impl Links {
    /// Starts a reader for the source of the direction `label`; returns its shared
    /// state and its channel.
    fn start_reader(
        &self,
        name: String,
        reader: Box<dyn Read + Send>,
        framed: bool,
        label: &str,
        lane: &Arc<Lane>,
    ) -> Result<(Arc<Mutex<Source>>, Receiver<Message>), Error> {
        // An endpoint that hands over whole pieces is not framed again.
        let framing = match framed {
            true => Framing::Raw,
            false => self.options.framing.clone(),
        };
        let source = Arc::new(Mutex::new(Source::new(Framer::new(&framing))));
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let reading = Reading {
            name: name.clone(),
            label: label.to_string(),
            hex: self.options.hex,
            source: Arc::clone(&source),
            lane: Arc::clone(lane),
            tx,
            announce_partials: self.options.flush_after.is_some(),
        };
        spawn_reader(reader, reading).map_err(|source| Error::Setup {
            what: format!("cannot start the reader thread for {name}"),
            source,
        })?;
        Ok((source, rx))
    }

    /// Starts a writer for `endpoint` (opened for the `generation`th time); returns
    /// its queue.
    fn start_writer(
        &self,
        endpoint: usize,
        generation: u64,
        name: String,
        writer: Box<dyn Write + Send>,
        lane: &Arc<Lane>,
    ) -> Result<Sender<Batch>, Error> {
        let (tx, rx) = bounded(WRITER_QUEUE);
        let done = self.done.clone().expect("writers start before shutdown");
        let writing = Writing {
            name: name.clone(),
            endpoint,
            generation,
            rx,
            lane: Arc::clone(lane),
            fail: self.fail.clone(),
            done,
        };
        spawn_writer(writer, writing).map_err(|source| Error::Setup {
            what: format!("cannot start the writer thread for {name}"),
            source,
        })?;
        Ok(tx)
    }
}

/// Opens `spec` again and again, waiting longer each time (up to 2 s), until it
/// opens; then hands it to the dispatcher. The path is resolved afresh each time, so
/// a `/dev/serial/by-id/...` link that moved to a new device node is followed.
fn spawn_reopen(endpoint: usize, spec: Spec, open: OpenOptions, tx: Sender<(usize, Endpoint)>) {
    let spawned = thread::Builder::new()
        .name(format!("reopen {spec}"))
        .spawn(move || {
            let mut delay = RECONNECT_FIRST;
            loop {
                thread::sleep(delay);
                match spec.open(&open) {
                    Ok(opened) => {
                        let _ = tx.send((endpoint, opened));
                        return;
                    }
                    Err(error) => debug!("{error}; trying again in {delay:?}"),
                }
                delay = (delay * 2).min(RECONNECT_MAX);
            }
        });
    if let Err(error) = spawned {
        warn!("cannot start reconnecting: {error}");
    }
}

/// The first wait before opening a lost endpoint again.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between tries: a replugged board is back within 2 s.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Pieces bound for a down endpoint, oldest first, at most `--queue` of them.
#[derive(Default)]
struct Backlog {
    pieces: VecDeque<Vec<u8>>,
    /// Dropped during this outage; the log says so once when it starts, once at the end.
    dropped: u64,
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
    tx: Sender<Message>,
    announce_partials: bool,
}

fn spawn_reader(mut reader: Box<dyn Read + Send>, r: Reading) -> io::Result<()> {
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
    fn forward_now(&self, batch: &mut Batch) {
        if self.lane.outstanding.load(Ordering::Acquire) == 0
            && let Some(direct) = self.lane.direct().as_mut()
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
#[derive(Default)]
struct Lane {
    /// The destination's write half that never waits, for the fast path; `None`
    /// where it has none, or while it is down.
    direct: Mutex<Option<Box<dyn Write + Send>>>,
    /// Pieces lost with a writer that failed (its endpoint went down).
    lost_pieces: AtomicU64,
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

    /// What has been written so far.
    fn traffic(&self) -> Traffic {
        Traffic {
            pieces: self.pieces.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn direct(&self) -> MutexGuard<'_, Option<Box<dyn Write + Send>>> {
        self.direct.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A batch that will never be written: no longer outstanding, counted as lost.
    fn lose(&self, batch: &Batch) {
        let bytes = batch.bytes().len() as u64;
        self.outstanding.fetch_sub(bytes, Ordering::Release);
        self.lost_pieces
            .fetch_add(batch.pieces() as u64, Ordering::Relaxed);
    }
}

/// A writer's failure, tagged so the dispatcher can tell it from an older writer's.
struct Failure {
    /// The endpoint the writer wrote to.
    endpoint: usize,
    /// Which opening of that endpoint.
    generation: u64,
    error: Error,
}

/// What a writer thread owns besides its write half.
struct Writing {
    name: String,
    endpoint: usize,
    generation: u64,
    rx: Receiver<Batch>,
    lane: Arc<Lane>,
    fail: Sender<Failure>,
    /// Dropped when the thread ends; the dispatcher waits for that.
    done: Sender<()>,
}

fn spawn_writer(mut writer: Box<dyn Write + Send>, w: Writing) -> io::Result<()> {
    let thread = thread::Builder::new().name(format!("write {}", w.name));
    thread.spawn(move || {
        let _done = w.done;
        let mut warned = false;
        let mut batches = w.rx.iter();
        for batch in batches.by_ref() {
            if let Err(source) = write_patiently(&mut *writer, batch.bytes(), &w.name, &mut warned)
            {
                let endpoint = w.name;
                let error = match source.kind() {
                    io::ErrorKind::BrokenPipe => Error::Closed { endpoint },
                    _ => Error::Write { endpoint, source },
                };
                let failure = Failure {
                    endpoint: w.endpoint,
                    generation: w.generation,
                    error,
                };
                let _ = w.fail.send(failure);
                // This batch and the rest of the queue will never be written.
                w.lane.lose(&batch);
                batches.for_each(|rest| w.lane.lose(&rest));
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
    /// While the destination is down: the pieces waiting for it.
    backlog: Option<Backlog>,
    /// Pieces dropped because the destination was down and the backlog full.
    dropped: u64,
    /// While the destination settles after opening (`settle=MS`): until when, and
    /// its never-waiting write half, put in place when settling ends.
    settling: Option<(Instant, Option<Box<dyn Write + Send>>)>,
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
    Failed(Failure),
    Received(usize, Option<Message>),
    Sent(usize, Result<(), SendError<Batch>>),
    /// A lost endpoint opened again (`--reconnect`).
    Reopened(usize, Endpoint),
    Timer,
}

struct Dispatcher {
    dirs: [Direction; 2],
    /// Each direction's reader channel.
    rxs: [Receiver<Message>; 2],
    /// Each direction's writer queue; `None` while its destination is down, and once
    /// shutdown lets the writer finish.
    outs: [Option<Sender<Batch>>; 2],
    stop: Receiver<()>,
    fail_rx: Receiver<Failure>,
    done_rx: Receiver<()>,
    /// Starts threads; its failure sender keeps `fail_rx` connected.
    links: Links,
    options: Options,
    /// With `--reconnect`: the endpoints' specs, to open them again.
    specs: Option<[Spec; 2]>,
    reopen_tx: Sender<(usize, Endpoint)>,
    reopen_rx: Receiver<(usize, Endpoint)>,
    /// For each endpoint that is down, since when.
    down: [Option<Instant>; 2],
    /// How many times each endpoint has been opened again; tags writer failures.
    generations: [u64; 2],
    reconnects: u64,
    /// Each endpoint's guard, kept until the bridge ends or the endpoint is replaced.
    guards: [Guard; 2],
    /// When to log the next `--stats` line.
    stats_at: Option<Instant>,
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
                Event::Failed(failure) => {
                    // A writer from before a reconnect is old news.
                    if failure.generation == self.generations[failure.endpoint] {
                        self.lose(failure.endpoint, failure.error)?;
                    }
                }
                Event::Reopened(e, endpoint) => self.restore(e, endpoint)?,
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
                    self.lose(i, Error::Read { endpoint, source })?;
                }
                Event::Received(i, None) => {
                    self.dirs[i].open = false;
                    let endpoint = self.dirs[i].from.clone();
                    if self.dirs[i].eof_is_end {
                        info!("{endpoint}: end of input");
                        return Ok(End::Input);
                    }
                    self.lose(i, Error::Closed { endpoint })?;
                }
                Event::Sent(_, Ok(())) => {}
                Event::Sent(i, Err(SendError(batch))) => {
                    // The writer ended; its failure is on the way. Keep the batch, and
                    // stop offering it to a queue nobody drains.
                    self.dirs[i].held = Some(batch);
                    self.outs[i] = None;
                }
                Event::Timer => {
                    self.flush_partials();
                    self.end_settling();
                    self.log_stats();
                }
            }
        }
    }

    /// Waits for the first ready operation among: stop, a writer failure, and for each
    /// direction either sending its held batch or receiving its next one.
    fn wait(&mut self) -> Event {
        let mut sel = Select::new();
        let stop = sel.recv(&self.stop);
        let fail = sel.recv(&self.fail_rx);
        let reopen = self.specs.as_ref().map(|_| sel.recv(&self.reopen_rx));
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
            .chain(self.stats_at)
            .chain(
                self.dirs
                    .iter()
                    .filter_map(|d| d.settling.as_ref().map(|s| s.0)),
            )
            .min();
        // A due timer goes first, so a busy bridge still flushes, settles and reports.
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return Event::Timer;
        }
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
            let failure = oper.recv(&self.fail_rx);
            return Event::Failed(failure.expect("links keep the fail channel connected"));
        }
        if Some(index) == reopen {
            let (e, endpoint) = oper
                .recv(&self.reopen_rx)
                .expect("the dispatcher keeps the reopen channel connected");
            return Event::Reopened(e, endpoint);
        }
        let i = arms
            .iter()
            .position(|&arm| arm == Some(index))
            .expect("the selected operation is one of the arms");
        match (self.dirs[i].held.take(), &self.outs[i]) {
            (Some(batch), Some(out)) => Event::Sent(i, oper.send(out, batch)),
            _ => Event::Received(i, oper.recv(&self.rxs[i]).ok()),
        }
    }

    /// Holds a batch for its writer, or, while the destination is down, adds its
    /// pieces to the backlog, dropping the oldest beyond `--queue`.
    fn hold(&mut self, i: usize, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let dir = &mut self.dirs[i];
        if let Some(backlog) = &mut dir.backlog {
            let before = backlog.dropped;
            for piece in batch.iter() {
                backlog.pieces.push_back(piece.to_vec());
                while backlog.pieces.len() > self.options.queue {
                    let oldest = backlog.pieces.pop_front().expect("over the limit");
                    let bytes = oldest.len() as u64;
                    dir.lane.outstanding.fetch_sub(bytes, Ordering::Release);
                    backlog.dropped += 1;
                    dir.dropped += 1;
                }
            }
            if before == 0 && backlog.dropped > 0 {
                let (label, to) = (&self.dirs[i].label, &self.dirs[1 - i].from);
                warn!(
                    "{label}: queue full while {to} is down or settling; dropping the oldest \
                     lines (--queue {})",
                    self.options.queue
                );
            }
            return;
        }
        match &mut dir.held {
            Some(held) => held.append(batch),
            None => dir.held = Some(batch),
        }
    }

    /// Endpoint `e` is gone. Without `--reconnect` that ends the bridge with `error`.
    /// With it, what `e` sent last still goes on, lines for it wait in a backlog, and
    /// a thread opens it again.
    fn lose(&mut self, e: usize, error: Error) -> Result<(), Error> {
        if self.specs.is_none() {
            return Err(error);
        }
        if self.down[e].is_none() {
            warn!("{error}; reconnecting");
            self.go_down(e);
        }
        Ok(())
    }

    /// Marks endpoint `e` down and starts opening it again.
    fn go_down(&mut self, e: usize) {
        let Some(specs) = &self.specs else { return };
        spawn_reopen(
            e,
            specs[e].clone(),
            self.options.open_options(),
            self.reopen_tx.clone(),
        );
        self.down[e] = Some(Instant::now());
        // Ignore failures of the writer that served it until now.
        self.generations[e] += 1;
        // What it sent before it went still goes on.
        let rest = self.collect(e, true, Some(Instant::now() + SHUTDOWN_GRACE));
        self.dirs[e].open = false;
        self.hold(e, rest);
        // What is on its way to it waits in a backlog.
        let into = 1 - e;
        self.outs[into] = None;
        *self.dirs[into].lane.direct() = None;
        let held = self.dirs[into].held.take();
        // Lines held while it settled stay in the backlog.
        self.dirs[into].settling = None;
        self.dirs[into].backlog.get_or_insert_with(Backlog::default);
        if let Some(held) = held {
            self.hold(into, held);
        }
    }

    /// Endpoint `e` is open again: new threads, and its backlog goes out first (after
    /// it settles, if it asks to).
    fn restore(&mut self, e: usize, endpoint: Endpoint) -> Result<(), Error> {
        let settle = endpoint.settle;
        let (input, output, guard) = split(endpoint);
        self.guards[e] = guard;
        let into = 1 - e;
        let dir = &self.dirs[e];
        let (source, rx) = self.links.start_reader(
            input.name,
            input.reader,
            input.framed,
            &dir.label,
            &dir.lane,
        )?;
        let generation = self.generations[e];
        let lane = &self.dirs[into].lane;
        let out = self
            .links
            .start_writer(e, generation, output.name, output.writer, lane)?;
        let dir = &mut self.dirs[e];
        (dir.source, dir.received, dir.open) = (source, 0, true);
        dir.eof_is_end = input.eof_is_end;
        dir.leftovers = input.leftovers;
        self.rxs[e] = rx;
        self.outs[into] = Some(out);
        let since = self.down[e].take().map(|t| t.elapsed()).unwrap_or_default();
        self.reconnects += 1;
        info!(
            "{}: back after {:.1} s",
            self.dirs[e].from,
            since.as_secs_f64()
        );
        match settle {
            Some(settle) => self.settle(e, settle, output.writer_now),
            None => self.release(e, output.writer_now),
        }
        Ok(())
    }

    /// Holds lines for endpoint `e` for `time` after it opened; `direct` is its
    /// never-waiting write half, put in place when that time is up.
    fn settle(&mut self, e: usize, time: Duration, direct: Option<Box<dyn Write + Send>>) {
        debug!(
            "{}: holding lines for it {time:?} while it settles",
            self.dirs[e].from
        );
        let dir = &mut self.dirs[1 - e];
        dir.backlog.get_or_insert_with(Backlog::default);
        dir.settling = Some((Instant::now() + time, direct));
    }

    /// Lets lines flow to endpoint `e` again: its backlog goes out first, then the
    /// fast path (`direct`) may resume.
    fn release(&mut self, e: usize, direct: Option<Box<dyn Write + Send>>) {
        let to = self.dirs[e].from.clone();
        let dir = &mut self.dirs[1 - e];
        if let Some(backlog) = dir.backlog.take() {
            if backlog.dropped > 0 {
                let n = backlog.dropped;
                warn!("{}: {n} lines dropped while {to} was down", dir.label);
            }
            let mut batch = Batch::default();
            backlog.pieces.iter().for_each(|piece| batch.push(piece));
            dir.held = (!batch.is_empty()).then_some(batch);
        }
        // The backlog counts as outstanding, so the fast path waits until it is out.
        *dir.lane.direct() = direct;
    }

    /// Ends the settling of every endpoint whose time is up.
    fn end_settling(&mut self) {
        let now = Instant::now();
        for e in 0..2 {
            let into = 1 - e;
            if let Some((until, _)) = &self.dirs[into].settling
                && *until <= now
            {
                let (_, direct) = self.dirs[into].settling.take().expect("settling");
                self.release(e, direct);
            }
        }
    }

    /// `--stats`: one line per direction, and the time of the next.
    fn log_stats(&mut self) {
        let (Some(at), Some(every)) = (self.stats_at, self.options.stats) else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        for dir in &self.dirs {
            info!("{}", self.describe_traffic(dir));
        }
        self.stats_at = Some(Instant::now() + every);
    }

    /// `A -> B: 12 lines, 345 bytes` and whatever else there is to say.
    fn describe_traffic(&self, dir: &Direction) -> String {
        let Traffic { pieces, bytes } = dir.lane.traffic();
        let mut line = match self.options.framing {
            Framing::Raw => format!("{}: {bytes} bytes", dir.label),
            Framing::Lines { .. } => format!("{}: {pieces} lines, {bytes} bytes", dir.label),
        };
        let lost = dir.dropped + dir.lane.lost_pieces.load(Ordering::Relaxed);
        if self.specs.is_some() {
            line += &format!(", {lost} dropped, {} reconnects", self.reconnects);
        }
        let cuts = lock(&dir.source).framer.cuts();
        if cuts > 0 {
            line += &format!(" ({cuts} over-long lines forwarded in pieces)");
        }
        line
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
    /// before that. With `closing`, the reader sends nothing more, and whatever the
    /// source endpoint still holds (its leftovers) comes last.
    fn collect(&mut self, i: usize, closing: bool, deadline: Option<Instant>) -> Batch {
        let dir = &mut self.dirs[i];
        let mut partial = Batch::default();
        let counted = {
            let mut source = lock(&dir.source);
            source.closed |= closing;
            source.announced = false;
            source.framer.take_partial(&mut partial);
            if let (true, Some(leftovers)) = (closing, &mut dir.leftovers) {
                partial.append(leftovers());
            }
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
            let rest = self.collect(i, true, Some(patience.deadline));
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
        self.links.done = None;
        while let Err(RecvTimeoutError::Timeout) = self.done_rx.recv_timeout(TICK) {
            if patience.over(&self.stop) {
                debug!("a writer did not finish in time");
                break;
            }
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            let mut line = self.describe_traffic(dir);
            if let Some(backlog) = &dir.backlog {
                let waiting = backlog.pieces.len();
                if waiting > 0 {
                    let to = &self.dirs[1 - i].from;
                    line +=
                        &format!(" ({waiting} lines were still waiting for {to}, which is down)");
                }
            }
            let unwritten = dir.lane.outstanding.load(Ordering::Acquire);
            if unwritten > 0 && dir.backlog.is_none() {
                line += &format!(
                    " ({unwritten} bytes read but not written: the port did not accept them in time)"
                );
            }
            info!("{line}");
        }
    }

    fn traffic(&self) -> [Traffic; 2] {
        self.dirs.each_ref().map(|dir| dir.lane.traffic())
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
