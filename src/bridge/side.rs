//! [`Side`] and [`Pair`]: the two endpoints, and one value for each.

use std::ops::{Index, IndexMut};

/// One of the two endpoints, or the direction that reads from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first endpoint on the command line.
    A,
    /// The second.
    B,
}

impl Side {
    /// Both sides, A first.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// The side across the bridge.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One value per side, indexed by [`Side`].
#[derive(Debug, Clone, Default)]
pub struct Pair<T>(pub [T; 2]);

impl<T> Pair<T> {
    /// A pair made by calling `f` for each side.
    pub fn new(mut f: impl FnMut(Side) -> T) -> Pair<T> {
        Pair([f(Side::A), f(Side::B)])
    }
}

impl<T> Index<Side> for Pair<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        &self.0[side as usize]
    }
}

impl<T> IndexMut<Side> for Pair<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        &mut self.0[side as usize]
    }
}
