//! A device with several peers (a hub), with real peers: TCP sockets, Python's
//! `websockets`, and a real mosquitto with its own clients (tests/integration/hub_peer.py
//! plays them and the device).

use crate::mqtt::broker::have_mosquitto;
use crate::util::{have, scenario};

fn websockets() -> bool {
    have("python3", &["-c", "import websockets.sync.client"])
}

#[test]
fn every_line_reaches_every_peer_and_floods_from_all_reach_the_device_whole() {
    if websockets() && have_mosquitto() {
        scenario("hub_peer.py", "three_peers");
    }
}

#[test]
fn a_stuck_peer_holds_back_neither_the_device_nor_the_other_peer() {
    if websockets() {
        scenario("hub_peer.py", "stuck_peer");
    }
}

#[test]
fn a_peer_that_goes_away_comes_back_with_reconnect_while_the_other_goes_on() {
    if websockets() {
        scenario("hub_peer.py", "peer_comes_back");
    }
}

#[test]
fn a_peer_that_goes_away_without_reconnect_ends_the_bridge_with_exit_1() {
    if websockets() {
        scenario("hub_peer.py", "peer_fails");
    }
}

#[test]
fn threads_and_memory_grow_by_a_fixed_small_amount_per_peer() {
    if websockets() && std::path::Path::new("/proc/self/status").exists() {
        scenario("hub_peer.py", "ten_peers");
    }
}

#[test]
fn raw_bytes_and_partial_lines_reach_every_peer() {
    if websockets() {
        scenario("hub_peer.py", "raw_and_partial_lines");
    }
}

#[test]
fn stuck_peers_delay_neither_a_stop_nor_the_end_of_stdin() {
    if websockets() {
        scenario("hub_peer.py", "stuck_peers_at_the_end");
    }
}

#[test]
fn endpoints_open_at_once_so_a_hanging_connect_delays_no_other_news() {
    if websockets() {
        scenario("hub_peer.py", "opens_at_once");
    }
}
