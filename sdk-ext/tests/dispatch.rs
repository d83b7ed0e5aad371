//! sdk-ext's proxy-wasm dispatch and its stream slots, driven through the exports as a host
//! would call them (the emulator provides the host): a slot reused across many streams with
//! a fresh value each time, interleaved streams of two roots keeping their own values, a
//! stream deleted before its first phase or during one, a phase re-entered for its own
//! stream, a host reusing a live id, and a filter value too big to be held inline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sdk_ext::config::ConfigError;
use sdk_ext::exports::{self, Exports, NoFilter, Phases};
use sdk_ext::testing::{Action, Emulator};
use sdk_ext::{HttpFilter, HttpHost, Plugin};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

const CONTINUE: u32 = Action::Continue.raw();

// Per thread: each test runs on its own thread, with its own host and context table.
thread_local! {
    static CREATED: Cell<u32> = const { Cell::new(0) };
    static DROPPED: Cell<u32> = const { Cell::new(0) };
    /// The stream the test is calling a phase of (the filter does not get its id).
    static STREAM: Cell<u32> = const { Cell::new(0) };
    /// What the request phase does besides recording: 1, deletes its own stream; 2,
    /// re-enters its own stream's response phase (and keeps what that answered).
    static MODE: Cell<u32> = const { Cell::new(0) };
    static NESTED: Cell<Option<u32>> = const { Cell::new(None) };
    /// What each phase saw, in order: (stream, the value's serial, its tag, its phases).
    static SEEN: RefCell<Vec<(u32, u32, u32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Tagged with its configuration's length.
struct Plug {
    tag: u32,
}

impl Plugin for Plug {
    const NAME: &'static str = "dispatch-test";
    fn configure(bytes: &[u8]) -> Result<Self, ConfigError> {
        Ok(Plug {
            tag: u32::try_from(bytes.len()).unwrap(),
        })
    }
}

/// A filter value that knows its serial (its creation's rank), its plugin's tag and how
/// many phases it saw; `PAD` words (each its serial) make it too big to be held inline.
struct Counted<const PAD: usize> {
    serial: u32,
    tag: u32,
    phases: u32,
    pad: [u64; PAD],
}

impl<const PAD: usize> Drop for Counted<PAD> {
    fn drop(&mut self) {
        DROPPED.with(|d| d.set(d.get() + 1));
    }
}

impl<const PAD: usize> Counted<PAD> {
    fn phase(&mut self, p: &Plug) -> Action {
        self.phases += 1;
        assert!(self.pad.iter().all(|w| *w == u64::from(self.serial)));
        assert_eq!(
            self.tag, p.tag,
            "a value sees the plugin it was created with"
        );
        let seen = (STREAM.with(Cell::get), self.serial, self.tag, self.phases);
        SEEN.with(|s| s.borrow_mut().push(seen));
        Action::Continue
    }
}

// By hand (`#[sdk_ext::filter]` takes no generic type): the two phases below.
impl<const PAD: usize> HttpFilter for Counted<PAD> {
    type Plugin = Plug;
    const PHASES: Phases = Phases::__from_bits(Phases::REQUEST_HEADERS | Phases::RESPONSE_HEADERS);
    fn create(p: &Plug) -> Self {
        let serial = CREATED.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        Counted {
            serial,
            tag: p.tag,
            phases: 0,
            pad: [u64::from(serial); PAD],
        }
    }
    fn on_request_headers(&mut self, p: &Plug, _: &mut HttpHost, _: bool) -> Action {
        let stream = STREAM.with(Cell::get);
        match MODE.with(Cell::get) {
            1 => exports::delete(stream),
            2 => {
                let nested = exports::response_headers::<Self>(stream, 0, 0);
                NESTED.with(|n| n.set(Some(nested)));
            }
            _ => {}
        }
        self.phase(p)
    }
    fn on_response_headers(&mut self, p: &Plug, _: &mut HttpHost, _: bool) -> Action {
        self.phase(p)
    }
}

/// Held inline (32 bytes at most).
type Small = Counted<1>;
/// Boxed.
type Big = Counted<16>;

static SMALL: Exports = Exports::of::<Plug, Small, NoFilter<Plug>>();
static BIG: Exports = Exports::of::<Plug, Big, NoFilter<Plug>>();

/// The emulator's host with its root configured (tag 3); answers the root's id.
fn start(exports: &'static Exports) -> (Emulator, u32) {
    let mut emu = Emulator::native(exports);
    emu.start("abc").unwrap();
    let root = emu.root_context_id().unwrap();
    (emu, root)
}

fn request<H: HttpFilter>(stream: u32) -> u32 {
    STREAM.with(|s| s.set(stream));
    exports::request_headers::<H>(stream, 0, 0)
}

fn response<H: HttpFilter>(stream: u32) -> u32 {
    STREAM.with(|s| s.set(stream));
    exports::response_headers::<H>(stream, 0, 1)
}

fn seen() -> Vec<(u32, u32, u32, u32)> {
    SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Values (created, dropped).
fn counts() -> (u32, u32) {
    (CREATED.with(Cell::get), DROPPED.with(Cell::get))
}

fn many_streams_reuse_one_slot<H: HttpFilter<Plugin = Plug>>(exports: &'static Exports) {
    let (_emu, root) = start(exports);
    let spare = exports::__spare_stream_slots();
    for i in 0..1000u32 {
        let id = 1000 + i;
        exports::context_create(id, root);
        assert_eq!(request::<H>(id), CONTINUE);
        assert_eq!(response::<H>(id), CONTINUE);
        exports::delete(id);
        // Each stream got a value of its own, fresh (not the last stream's), which saw its
        // two phases and was dropped with the stream; its slot is the next stream's.
        assert_eq!(seen(), [(id, i + 1, 3, 1), (id, i + 1, 3, 2)]);
        assert_eq!(counts(), (i + 1, i + 1));
        assert_eq!(exports::__spare_stream_slots(), spare.max(1));
    }
}

#[test]
fn many_streams_reuse_one_slot_inline() {
    assert!(std::mem::size_of::<Small>() <= 32);
    many_streams_reuse_one_slot::<Small>(&SMALL);
}

#[test]
fn many_streams_reuse_one_slot_boxed() {
    assert!(std::mem::size_of::<Big>() > 32);
    many_streams_reuse_one_slot::<Big>(&BIG);
}

/// Streams of two roots (tags 3 and 5) created, run and deleted in a random order.
fn interleaved_streams_keep_their_own_values<H: HttpFilter<Plugin = Plug>>(
    exports: &'static Exports,
) {
    let (mut emu, first) = start(exports);
    // A second root, configured with the host's current configuration ("abc": tag 3) ...
    let second = 900;
    exports::context_create(second, 0);
    assert_eq!(exports::configure::<Plug>(second, 3), 1);
    // ... and the first one reconfigured (tag 5).
    emu.start("abcde").unwrap();
    let tag_of = |root: u32| if root == first { 5 } else { 3 };
    let mut rng = sdk_ext::testing::xorshift(0x5eed);
    // Live streams: id -> (root, phases so far, serial once its value exists).
    let mut live: HashMap<u32, (u32, u32, Option<u32>)> = HashMap::new();
    let mut next_id = 1000u32;
    let mut most_live = 0;
    for _ in 0..20_000 {
        let r = rng();
        let mut ids: Vec<u32> = live.keys().copied().collect();
        ids.sort_unstable();
        match r % 8 {
            0 | 1 if live.len() < 64 => {
                let root = if r / 8 % 2 == 0 { first } else { second };
                exports::context_create(next_id, root);
                live.insert(next_id, (root, 0, None));
                next_id += 1;
            }
            2 if !ids.is_empty() => {
                let id = ids[r / 8 % ids.len()];
                exports::delete(id);
                live.remove(&id);
            }
            _ if !ids.is_empty() => {
                let id = ids[r / 8 % ids.len()];
                let next_serial = counts().0 + 1;
                let answer = if r / 8 % 2 == 0 {
                    request::<H>(id)
                } else {
                    response::<H>(id)
                };
                assert_eq!(answer, CONTINUE);
                let entry = live.get_mut(&id).unwrap();
                entry.1 += 1;
                let serial = *entry.2.get_or_insert(next_serial);
                assert_eq!(seen(), [(id, serial, tag_of(entry.0), entry.1)]);
            }
            _ => {}
        }
        most_live = most_live.max(live.len());
        let (created, dropped) = counts();
        let with_values = live.values().filter(|e| e.2.is_some()).count();
        assert_eq!(created - dropped, u32::try_from(with_values).unwrap());
    }
    let ids: Vec<u32> = live.keys().copied().collect();
    for id in ids {
        exports::delete(id);
    }
    let (created, dropped) = counts();
    assert_eq!(created, dropped);
    assert!(created > 1000, "the test ran phases ({created} values)");
    // No more slots than streams were ever live at once.
    let spare = exports::__spare_stream_slots();
    assert!(
        spare > 1 && spare <= most_live,
        "{spare} slots, {most_live} streams"
    );
}

#[test]
fn interleaved_streams_keep_their_own_values_inline() {
    interleaved_streams_keep_their_own_values::<Small>(&SMALL);
}

#[test]
fn interleaved_streams_keep_their_own_values_boxed() {
    interleaved_streams_keep_their_own_values::<Big>(&BIG);
}

#[test]
fn a_stream_deleted_before_its_phases_runs_none() {
    let (_emu, root) = start(&SMALL);
    exports::context_create(1000, root);
    exports::delete(1000);
    let spare = exports::__spare_stream_slots();
    assert!(spare >= 1);
    // The host calls a phase for it anyway: nothing is created, nothing runs.
    assert_eq!(request::<Small>(1000), CONTINUE);
    assert_eq!(seen(), []);
    assert_eq!(counts(), (0, 0));
    // Deleted twice: nothing happens.
    exports::delete(1000);
    assert_eq!(exports::__spare_stream_slots(), spare);
    // The slot serves the next stream, fresh.
    exports::context_create(1001, root);
    assert_eq!(exports::__spare_stream_slots(), spare - 1);
    assert_eq!(request::<Small>(1001), CONTINUE);
    assert_eq!(seen(), [(1001, 1, 3, 1)]);
    exports::delete(1001);
    assert_eq!(counts(), (1, 1));
}

fn deleted_during_its_own_phase<H: HttpFilter<Plugin = Plug>>(exports: &'static Exports) {
    let (_emu, root) = start(exports);
    exports::context_create(1000, root);
    let spare = exports::__spare_stream_slots();
    MODE.with(|m| m.set(1));
    // The phase deletes its stream (as a host may, re-entering the VM): the value lives
    // until the phase returns, then is dropped once and the slot goes back.
    assert_eq!(request::<H>(1000), CONTINUE);
    MODE.with(|m| m.set(0));
    assert_eq!(seen(), [(1000, 1, 3, 1)]);
    assert_eq!(counts(), (1, 1));
    assert_eq!(exports::__spare_stream_slots(), spare + 1);
    // Gone: a later phase creates nothing.
    assert_eq!(response::<H>(1000), CONTINUE);
    assert_eq!(seen(), []);
    assert_eq!(counts(), (1, 1));
    // The slot serves the next stream.
    exports::context_create(1001, root);
    assert_eq!(exports::__spare_stream_slots(), spare);
    assert_eq!(response::<H>(1001), CONTINUE);
    assert_eq!(seen(), [(1001, 2, 3, 1)]);
    exports::delete(1001);
    assert_eq!(counts(), (2, 2));
}

#[test]
fn deleted_during_its_own_phase_inline() {
    deleted_during_its_own_phase::<Small>(&SMALL);
}

#[test]
fn deleted_during_its_own_phase_boxed() {
    deleted_during_its_own_phase::<Big>(&BIG);
}

#[test]
fn a_phase_re_entered_for_its_own_stream_does_nothing() {
    let (_emu, root) = start(&SMALL);
    exports::context_create(1000, root);
    MODE.with(|m| m.set(2));
    assert_eq!(request::<Small>(1000), CONTINUE);
    MODE.with(|m| m.set(0));
    // The nested response phase continued without running the filter; the outer one ran.
    assert_eq!(NESTED.with(Cell::get), Some(CONTINUE));
    assert_eq!(seen(), [(1000, 1, 3, 1)]);
    // The stream is intact afterwards.
    assert_eq!(response::<Small>(1000), CONTINUE);
    assert_eq!(seen(), [(1000, 1, 3, 2)]);
    exports::delete(1000);
    assert_eq!(counts(), (1, 1));
}

#[test]
fn a_host_reusing_a_live_id_gets_a_fresh_stream() {
    let (_emu, root) = start(&BIG);
    let other = 900;
    exports::context_create(other, 0);
    assert_eq!(exports::configure::<Plug>(other, 3), 1);
    exports::context_create(1000, root);
    assert_eq!(request::<Big>(1000), CONTINUE);
    // The same id again, now for the other root: the old stream's value is dropped.
    exports::context_create(1000, other);
    assert_eq!(counts(), (1, 1));
    assert_eq!(request::<Big>(1000), CONTINUE);
    assert_eq!(response::<Big>(1000), CONTINUE);
    assert_eq!(seen(), [(1000, 1, 3, 1), (1000, 2, 3, 1), (1000, 2, 3, 2)]);
    exports::delete(1000);
    assert_eq!(counts(), (2, 2));
}

#[test]
fn a_stream_of_an_unconfigured_or_unknown_root_runs_no_filter() {
    let (_emu, _root) = start(&SMALL);
    exports::context_create(900, 0);
    exports::context_create(1000, 900);
    exports::context_create(1001, 77);
    assert_eq!(request::<Small>(1000), CONTINUE);
    assert_eq!(response::<Small>(1001), CONTINUE);
    assert_eq!(counts(), (0, 0));
    assert_eq!(seen(), []);
    exports::delete(1000);
    exports::delete(1001);
    exports::delete(900);
}

/// Through the emulator, as Envoy delivers them: many streams, each state of its own.
#[test]
fn emulated_streams_each_get_a_fresh_value() {
    let (mut emu, _root) = start(&SMALL);
    for i in 0..200u32 {
        let mut s = emu.http();
        let id = s.id();
        STREAM.with(|c| c.set(id));
        assert_eq!(s.request_headers(&[(":path", "/")], true), Action::Continue);
        s.response_headers(&[(":status", "200")], true);
        s.complete();
        assert_eq!(seen(), [(id, i + 1, 3, 1), (id, i + 1, 3, 2)]);
        assert_eq!(counts(), (i + 1, i + 1));
    }
}
