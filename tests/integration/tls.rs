//! TLS with real peers: Python's ssl module and socat's OPENSSL addresses for `tls://`
//! and `tls-listen://`, mosquitto's TLS listeners for `mqtts://`, Python's websockets
//! over ssl for `wss://` and `wss-listen://`; certificates made by openssl for each
//! scenario (tests/integration/tls_peer.py plays the peers and the devices on ptys).

use crate::mqtt::broker::have_mosquitto;
use crate::util::{have, scenario};

fn peers() -> bool {
    have("openssl", &["version"]) && have("python3", &["-c", "import ssl, websockets"])
}

#[test]
fn tls_carries_every_byte_both_ways_and_a_close_notify_ends_it() {
    if peers() {
        scenario("tls_peer.py", "stream");
    }
}

#[test]
fn tls_reaches_socats_openssl_listener_byte_exact() {
    if peers() && have("socat", &["-V"]) {
        scenario("tls_peer.py", "socat_server");
    }
}

#[test]
fn tls_listen_serves_python_and_socat_clients_both_ways() {
    if peers() && have("socat", &["-V"]) {
        scenario("tls_peer.py", "listen");
    }
}

#[test]
fn each_failed_tls_start_names_its_cause_and_its_fix() {
    if peers() {
        scenario("tls_peer.py", "refusals");
    }
}

#[test]
fn mutual_tls_as_a_client_and_as_a_listener() {
    if peers() {
        scenario("tls_peer.py", "mutual");
    }
}

#[test]
fn mqtts_with_a_ca_mutual_tls_refusals_and_a_broker_restart() {
    if peers() && have_mosquitto() {
        scenario("tls_peer.py", "mqtts");
    }
}

#[test]
fn wss_and_wss_listen_carry_lines_and_keep_the_origin_check() {
    if peers() {
        scenario("tls_peer.py", "wss");
    }
}

#[test]
fn a_tls_peer_that_reads_nothing_is_still_heard_at_once() {
    if peers() {
        scenario("tls_peer.py", "unread");
    }
}

#[test]
fn rfc2217_over_tls_sets_the_served_port_and_carries_every_byte() {
    if peers() {
        scenario("tls_peer.py", "rfc2217");
    }
}
