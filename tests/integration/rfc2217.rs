//! RFC 2217 with real peers: pyserial's `rfc2217://`, esptool, gensiot and raw telnet
//! sockets that lie as clients of `rfc2217-listen://`; ser2net and our own server for
//! `rfc2217://` (tests/integration/rfc2217_peer.py plays them and the devices on ptys).

use crate::util::{have, scenario};

fn pyserial() -> bool {
    have("python3", &["-c", "import serial.rfc2217"])
}

#[test]
fn pyserial_sets_the_port_and_every_byte_crosses_both_ways() {
    if pyserial() {
        scenario("rfc2217_peer.py", "pyserial");
    }
}

#[test]
fn the_first_client_controls_the_port_and_the_next_takes_over() {
    if pyserial() {
        scenario("rfc2217_peer.py", "two_clients");
    }
}

#[test]
fn lying_telnet_peers_are_refused_or_ignored_and_the_next_is_served() {
    if pyserial() {
        scenario("rfc2217_peer.py", "hostile");
    }
}

#[test]
fn esptool_gets_through_connect_settings_and_resets() {
    if pyserial() && have("esptool", &["version"]) {
        scenario("rfc2217_peer.py", "esptool");
    }
}

#[test]
fn the_client_sets_a_remote_port_on_a_bridge_and_on_ser2net() {
    if pyserial() && have("ser2net", &["-v"]) {
        scenario("rfc2217_peer.py", "client");
    }
}

#[test]
fn a_server_that_refuses_or_goes_away_is_exit_3_or_1_and_reconnect_sets_again() {
    if pyserial() {
        scenario("rfc2217_peer.py", "client_refused");
    }
}

#[test]
fn gensiot_is_served_byte_for_byte() {
    if pyserial() && have("gensiot", &["--version"]) {
        scenario("rfc2217_peer.py", "gensiot");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_pty_passes_its_programs_settings_to_the_remote_port() {
    if pyserial() {
        scenario("rfc2217_peer.py", "pty_settings");
    }
}

#[test]
fn a_client_that_comes_right_after_the_last_one_left_controls_the_port() {
    if pyserial() {
        scenario("rfc2217_peer.py", "handover");
    }
}

#[test]
fn clients_get_every_byte_straight_or_by_their_writer_with_answers_whole_and_suspend_kept() {
    if pyserial() {
        scenario("rfc2217_peer.py", "straight");
    }
}
