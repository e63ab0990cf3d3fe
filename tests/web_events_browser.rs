//! The phone page follows `GET /api/events` in a real browser: Debian's Chromium,
//! headless, at a 390x844 phone viewport, driven over the DevTools protocol, against the
//! real binary recording the MJPEG test pattern with stills on. Screenshots go to
//! `target/web-screenshots/`.
//!
//! What it proves: the page opens one EventSource; a lock made through the API (not on
//! the page) shows in the footage list and the status card within a second or two, and
//! it came over the event stream (DevTools saw the `locked` message on the EventSource,
//! and the page fetched no status by its fallback poll meanwhile); the stream stays open
//! across record off/on; the footage list shows each segment's still as its thumbnail.

#[path = "common/cdp.rs"]
mod cdp;
mod common;
#[path = "common/web.rs"]
mod web;

use std::time::Instant;

use serde_json::json;

use cdp::Browser;
use common::scaled;
use web::{post, Feed};

const W: u32 = 390;
const H: u32 = 844;

fn shot(b: &mut Browser, name: &str) {
    let path = cdp::screenshot_dir().join(name);
    b.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

/// Status fetches the page made by its fallback poll so far.
fn polls(b: &mut Browser) -> u64 {
    b.eval("window.dashcamEvents.refreshes.poll || 0")
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn the_page_follows_the_events_and_shows_still_thumbnails() {
    if cdp::chromium().is_none() {
        panic!("Debian's chromium is not installed (scripts/test.sh installs it)");
    }
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n[stills]\ninterval = 1\n",
        "",
        &["--segment-seconds", "3"],
    );
    d.wait_closed(3, scaled(30.0));
    let mut b = Browser::launch(W, H);
    b.call("Network.enable", json!({}));
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "window.dashcamEvents && window.dashcamEvents.open === true",
            scaled(10.0)
        ),
        "the event stream did not open: {:?}",
        b.console
    );
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording'",
        scaled(10.0)
    ));
    let streams: Vec<String> = b
        .network
        .iter()
        .filter(|m| {
            m["method"] == "Network.requestWillBeSent" && m["params"]["type"] == "EventSource"
        })
        .filter_map(|m| m["params"]["request"]["url"].as_str().map(String::from))
        .collect();
    assert_eq!(streams, vec![d.url("/api/events")], "one EventSource");

    // The footage list with a still per segment as its thumbnail.
    b.tap(".tab[data-view=footage]");
    assert!(
        b.wait_for(
            "[...document.querySelectorAll('.seg .seg-thumb')].filter(i => i.complete && i.naturalWidth === 320).length >= 3",
            scaled(10.0)
        ),
        "no thumbnails: {}",
        b.eval("JSON.stringify([...document.querySelectorAll('.seg')].map(s => s.dataset.name + ' ' + !!s.querySelector('.seg-thumb')))")
    );
    assert_eq!(
        b.eval("document.querySelector('.seg-thumb').loading"),
        json!("lazy")
    );
    shot(&mut b, "20-footage-thumbnails.png");

    // A lock from elsewhere (the API, as another phone or a hook would): the list and the
    // status card change from the event, without a poll.
    let victim = d
        .segments("?kind=loop")
        .into_iter()
        .filter(|s| s["frames"].is_u64())
        .filter_map(|s| s["name"].as_str().map(String::from))
        .next_back()
        .expect("a closed loop segment");
    let polled = polls(&mut b);
    let seen = b.network.len();
    let t0 = Instant::now();
    let a = post(&d.url("/api/lock"), &json!({ "name": victim }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert!(
        b.wait_for(
            &format!("!!document.querySelector('.seg.locked[data-name=\"{victim}\"]')"),
            scaled(3.0)
        ),
        "the list did not show the lock"
    );
    assert!(
        b.wait_for(
            "document.getElementById('st-storage').textContent.includes('1 locked')",
            scaled(3.0)
        ),
        "status card: {}",
        b.text("#st-storage")
    );
    let took = t0.elapsed();
    eprintln!(
        "the lock showed on the page {} ms after the request",
        took.as_millis()
    );
    let locked_msg = b.network[seen..].iter().any(|m| {
        m["method"] == "Network.eventSourceMessageReceived"
            && m["params"]["eventName"] == "locked"
            && m["params"]["data"]
                .as_str()
                .is_some_and(|t| t.contains(&victim))
    });
    assert!(
        locked_msg,
        "DevTools saw no `locked` event on the EventSource"
    );
    assert_eq!(
        polls(&mut b),
        polled,
        "the page polled the status meanwhile"
    );
    assert!(
        b.eval("window.dashcamEvents.listRefreshes > 0") == json!(true),
        "the list was not refreshed by an event"
    );
    // Between events the status itself comes on the stream (the frame count moves).
    assert!(
        b.wait_for(
            "(window.dashcamEvents.refreshes.stream || 0) >= 2",
            scaled(6.0)
        ),
        "no status on the stream: {}",
        b.eval("JSON.stringify(window.dashcamEvents.refreshes)")
    );
    shot(&mut b, "21-footage-locked-by-event.png");

    // Record off and on: the same stream carries recording_stopped and recording_started.
    b.tap(".tab[data-view=status]");
    b.tap("#record-toggle");
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording is off'",
        scaled(15.0)
    ));
    b.tap("#record-toggle");
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording'",
        scaled(15.0)
    ));
    let kinds: Vec<String> = b.network[seen..]
        .iter()
        .filter(|m| m["method"] == "Network.eventSourceMessageReceived")
        .filter_map(|m| m["params"]["eventName"].as_str().map(String::from))
        .collect();
    assert!(
        kinds.iter().any(|k| k == "recording_stopped")
            && kinds.iter().any(|k| k == "recording_started"),
        "{kinds:?}"
    );
    let reopened = b
        .network
        .iter()
        .filter(|m| {
            m["method"] == "Network.requestWillBeSent" && m["params"]["type"] == "EventSource"
        })
        .count();
    assert_eq!(reopened, 1, "the stream stayed open across record off/on");
    assert_eq!(polls(&mut b), polled, "no poll while the stream is open");
    let errors: Vec<&String> = b
        .console
        .iter()
        .filter(|c| c.starts_with("EXCEPTION"))
        .collect();
    assert!(errors.is_empty(), "page errors: {errors:?}");
    d.stop();
}
