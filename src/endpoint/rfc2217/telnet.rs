//! Telnet (RFC 854) as RFC 2217 uses it, with no I/O: a decoder that splits what a
//! peer sends into data and commands, the escaping of data (0xFF doubled), and option
//! negotiation by the Q method of RFC 1143, which never loops however the peer answers.
//!
//! Data is binary both ways: every byte but IAC is data, whatever was negotiated (a
//! serial port's bytes are not text). Commands other than option negotiation and
//! subnegotiation (NOP, AYT, a telnet BREAK...) are ignored, as RFC 854 allows.

/// Interpret As Command: starts every command; doubled, it is a data byte 0xFF.
pub const IAC: u8 = 255;
/// The sender refuses to do an option (or asks the other side to stop).
pub const DONT: u8 = 254;
/// The sender asks the other side to do an option (or agrees that it does).
pub const DO: u8 = 253;
/// The sender will not do an option.
pub const WONT: u8 = 252;
/// The sender will do an option.
pub const WILL: u8 = 251;
/// Subnegotiation begins.
pub const SB: u8 = 250;
/// Subnegotiation ends.
pub const SE: u8 = 240;

/// 8-bit data both ways (RFC 856).
pub const BINARY: u8 = 0;
/// Echo (RFC 857): refused, a serial port echoes nothing.
pub const ECHO: u8 = 1;
/// Suppress go-ahead (RFC 858): full duplex.
pub const SGA: u8 = 3;
/// COM-PORT-OPTION (RFC 2217).
pub const COM_PORT: u8 = 44;

/// The longest subnegotiation taken: RFC 2217's are a few bytes (a signature a few
/// dozen). A longer one is a peer that lies, and ends the connection.
pub const MAX_SUBNEGOTIATION: usize = 256;

/// A telnet command from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// WILL, WONT, DO or DONT, and the option.
    Negotiate(u8, u8),
    /// A subnegotiation: the option, then its bytes (0xFF undoubled).
    Sub(Vec<u8>),
}

/// What the decoder hands on, in the order the peer sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Data bytes.
    Data(&'a [u8]),
    /// A command.
    Command(Command),
}

/// Where the decoder is between two reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    /// After IAC.
    Iac,
    /// After IAC and WILL, WONT, DO or DONT.
    Option(u8),
    /// Inside IAC SB ... .
    Sub,
    /// Inside a subnegotiation, after IAC.
    SubIac,
}

/// A subnegotiation longer than [`MAX_SUBNEGOTIATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Splits a peer's bytes into data and commands; a command or escape cut between two
/// reads is finished by the next.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    sub: Vec<u8>,
}

impl Decoder {
    /// Decodes `input`, handing each piece to `take` in order. Fails on a
    /// subnegotiation longer than [`MAX_SUBNEGOTIATION`].
    pub fn decode(&mut self, input: &[u8], mut take: impl FnMut(Piece<'_>)) -> Result<(), TooLong> {
        let mut start = 0;
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match self.state {
                State::Data => {
                    if byte == IAC {
                        if start < i {
                            take(Piece::Data(&input[start..i]));
                        }
                        self.state = State::Iac;
                    }
                }
                State::Iac => {
                    self.state = State::Data;
                    match byte {
                        IAC => take(Piece::Data(&[IAC])),
                        WILL | WONT | DO | DONT => self.state = State::Option(byte),
                        SB => {
                            self.sub.clear();
                            self.state = State::Sub;
                        }
                        // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, a stray SE: nothing to do.
                        _ => {}
                    }
                    start = i + 1;
                }
                State::Option(verb) => {
                    take(Piece::Command(Command::Negotiate(verb, byte)));
                    self.state = State::Data;
                    start = i + 1;
                }
                State::Sub => match byte {
                    IAC => self.state = State::SubIac,
                    _ => self.push_sub(byte)?,
                },
                State::SubIac => match byte {
                    IAC => {
                        self.push_sub(IAC)?;
                        self.state = State::Sub;
                    }
                    SE => {
                        take(Piece::Command(Command::Sub(std::mem::take(&mut self.sub))));
                        self.state = State::Data;
                        start = i + 1;
                    }
                    // RFC 854 leaves this open: an IAC inside a subnegotiation followed
                    // by anything but IAC or SE ends it there (a peer that forgot the
                    // SE), and the byte is read as a command.
                    _ => {
                        take(Piece::Command(Command::Sub(std::mem::take(&mut self.sub))));
                        self.state = State::Iac;
                        continue;
                    }
                },
            }
            i += 1;
        }
        if self.state == State::Data && start < input.len() {
            take(Piece::Data(&input[start..]));
        }
        Ok(())
    }

    fn push_sub(&mut self, byte: u8) -> Result<(), TooLong> {
        if self.sub.len() >= MAX_SUBNEGOTIATION {
            return Err(TooLong);
        }
        self.sub.push(byte);
        Ok(())
    }
}

/// Appends `data` to `out` with every 0xFF doubled.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    while let Some(at) = memchr::memchr(IAC, rest) {
        out.extend_from_slice(&rest[..=at]);
        out.push(IAC);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// A subnegotiation of `option` with `payload`, escaped, ready to send.
pub fn subnegotiation(option: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![IAC, SB, option];
    escape(payload, &mut out);
    out.extend_from_slice(&[IAC, SE]);
    out
}

/// One side's state of one option (RFC 1143).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Q {
    #[default]
    No,
    Yes,
    /// Asked for, no answer yet. (RFC 1143's WANTNO is not needed: this side never
    /// turns an option off.)
    WantYes,
}

/// Option negotiation for the options this side agrees to, both ways.
#[derive(Debug)]
pub struct Options {
    /// Options this side does (WILL), by option number.
    us: [Q; 256],
    /// Options the peer does (WILL), by option number.
    them: [Q; 256],
    /// The options this side agrees to, both ways.
    agree: &'static [u8],
}

impl Options {
    /// Negotiation that agrees to `agree`, and refuses every other option.
    pub fn new(agree: &'static [u8]) -> Options {
        Options {
            us: [Q::No; 256],
            them: [Q::No; 256],
            agree,
        }
    }

    /// Asks for `option` both ways (this side WILL, the peer DO): the bytes to send.
    pub fn ask(&mut self, option: u8) -> Vec<u8> {
        let mut out = Vec::new();
        if self.us[usize::from(option)] == Q::No {
            self.us[usize::from(option)] = Q::WantYes;
            out.extend_from_slice(&[IAC, WILL, option]);
        }
        if self.them[usize::from(option)] == Q::No {
            self.them[usize::from(option)] = Q::WantYes;
            out.extend_from_slice(&[IAC, DO, option]);
        }
        out
    }

    /// Asks the peer to do `option` (DO), this side offering nothing: the bytes to send.
    pub fn ask_peer(&mut self, option: u8) -> Vec<u8> {
        if self.them[usize::from(option)] != Q::No {
            return Vec::new();
        }
        self.them[usize::from(option)] = Q::WantYes;
        vec![IAC, DO, option]
    }

    /// Whether this side asked to do `option` and has no answer yet.
    pub fn asking(&self, option: u8) -> bool {
        self.us[usize::from(option)] == Q::WantYes
    }

    /// Whether this side does `option`.
    pub fn ours(&self, option: u8) -> bool {
        self.us[usize::from(option)] == Q::Yes
    }

    /// Whether the peer does `option`.
    pub fn theirs(&self, option: u8) -> bool {
        self.them[usize::from(option)] == Q::Yes
    }

    /// The peer sent `verb` (WILL, WONT, DO, DONT) for `option`: the answer to send, if
    /// any. Each state change answers at most once, so two sides never loop.
    pub fn received(&mut self, verb: u8, option: u8) -> Option<[u8; 3]> {
        let agree = self.agree.contains(&option);
        let (q, yes, no) = match verb {
            WILL | WONT => (&mut self.them[usize::from(option)], DO, DONT),
            DO | DONT => (&mut self.us[usize::from(option)], WILL, WONT),
            _ => return None,
        };
        let positive = matches!(verb, WILL | DO);
        let answer = |verb| Some([IAC, verb, option]);
        match (positive, *q) {
            (true, Q::No) if agree => {
                *q = Q::Yes;
                answer(yes)
            }
            (true, Q::No) => answer(no),
            (true, Q::Yes) => None,
            (true, Q::WantYes) => {
                *q = Q::Yes;
                None
            }
            (false, Q::No) => None,
            (false, Q::Yes) => {
                *q = Q::No;
                answer(no)
            }
            (false, Q::WantYes) => {
                *q = Q::No;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut Decoder, input: &[u8]) -> (Vec<u8>, Vec<Command>) {
        let (mut data, mut commands) = (Vec::new(), Vec::new());
        decoder
            .decode(input, |piece| match piece {
                Piece::Data(d) => data.extend_from_slice(d),
                Piece::Command(c) => commands.push(c),
            })
            .unwrap();
        (data, commands)
    }

    #[test]
    fn data_commands_and_escapes_in_order() {
        let mut d = Decoder::default();
        let input = [
            b'a', IAC, IAC, b'b', IAC, WILL, 44, 0, IAC, SB, 44, 1, IAC, IAC, 2, IAC, SE, 0xFE,
        ];
        let (data, commands) = decode(&mut d, &input);
        assert_eq!(data, [b'a', 0xFF, b'b', 0, 0xFE]);
        assert_eq!(
            commands,
            [
                Command::Negotiate(WILL, 44),
                Command::Sub(vec![44, 1, 0xFF, 2])
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let input = [
            1, IAC, IAC, 2, IAC, DO, 3, IAC, SB, 44, 12, IAC, IAC, IAC, SE, IAC, 241, 4, IAC,
        ];
        let mut whole = Decoder::default();
        let expected = decode(&mut whole, &input);
        for cut in 0..=input.len() {
            let mut d = Decoder::default();
            let (mut data, mut commands) = decode(&mut d, &input[..cut]);
            let (more, rest) = decode(&mut d, &input[cut..]);
            data.extend(more);
            commands.extend(rest);
            assert_eq!((data, commands), expected, "cut at {cut}");
        }
    }

    #[test]
    fn an_endless_subnegotiation_is_refused() {
        let mut d = Decoder::default();
        let mut input = vec![IAC, SB, 44];
        input.extend(std::iter::repeat_n(7, MAX_SUBNEGOTIATION));
        assert_eq!(d.decode(&input, |_| {}), Err(TooLong));
    }

    #[test]
    fn a_subnegotiation_without_se_ends_at_the_next_command() {
        let mut d = Decoder::default();
        let (data, commands) = decode(&mut d, &[IAC, SB, 44, 7, IAC, WILL, 0, b'x']);
        assert_eq!(data, b"x");
        assert_eq!(
            commands,
            [Command::Sub(vec![44, 7]), Command::Negotiate(WILL, 0)]
        );
    }

    #[test]
    fn escape_doubles_every_ff() {
        let mut out = Vec::new();
        escape(&[0xFF, 1, 0xFF, 0xFF], &mut out);
        assert_eq!(out, [0xFF, 0xFF, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
        let all: Vec<u8> = (0..=255).collect();
        let mut escaped = Vec::new();
        escape(&all, &mut escaped);
        let (data, commands) = decode(&mut Decoder::default(), &escaped);
        assert_eq!(data, all);
        assert!(commands.is_empty());
    }

    #[test]
    fn negotiation_agrees_refuses_and_never_loops() {
        let mut o = Options::new(&[BINARY, SGA, COM_PORT]);
        assert_eq!(o.ask(BINARY), [IAC, WILL, 0, IAC, DO, 0]);
        // The peer agrees: no answer, both on.
        assert_eq!(o.received(DO, BINARY), None);
        assert_eq!(o.received(WILL, BINARY), None);
        assert!(o.ours(BINARY) && o.theirs(BINARY));
        // Said again: still no answer.
        assert_eq!(o.received(WILL, BINARY), None);
        // An option asked for by the peer.
        assert_eq!(o.received(WILL, COM_PORT), Some([IAC, DO, 44]));
        assert!(o.theirs(COM_PORT));
        // Refused options are refused each time, and a refusal of one that is off is
        // not answered.
        assert_eq!(o.received(DO, ECHO), Some([IAC, WONT, 1]));
        assert_eq!(o.received(DONT, ECHO), None);
        assert_eq!(o.received(WILL, 200), Some([IAC, DONT, 200]));
        // Turning one off is acknowledged once.
        assert_eq!(o.received(WONT, COM_PORT), Some([IAC, DONT, 44]));
        assert_eq!(o.received(WONT, COM_PORT), None);
        // A refusal of what we asked for: off, no answer.
        assert_eq!(o.ask(SGA), [IAC, WILL, 3, IAC, DO, 3]);
        assert_eq!(o.received(DONT, SGA), None);
        assert_eq!(o.received(WONT, SGA), None);
        assert!(!o.ours(SGA) && !o.theirs(SGA));
    }
}
