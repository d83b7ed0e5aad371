//! Slots in shared data, updated with compare-and-swap: one stored value per bucket (per key
//! of a dynamic descriptor), exact across every worker of one Envoy.
//!
//! **Key space.** A table (one bucket of the config) owns `slots` shared-data keys,
//! `<prefix><n>` for n in 0..slots, created at configuration time. A prefix is
//! [`config_prefix`] (`rl:` and the configuration's 64-bit hash in 11 base64url characters)
//! and the table's name (`<bucket>/`, `c/` for L4 concurrency): a key is 17 to 25 bytes, short
//! enough for the host's short-string buffer in the usual case (Envoy's shared data copies
//! every key it is given into a `std::string`; libc++ keeps up to 22 bytes without a heap
//! allocation). Shared data has no delete,
//! so the number of keys never depends on traffic: a dynamic descriptor's request keys (client
//! addresses, API keys) are hashed into its slots. Each key has two candidate slots; the value
//! stores the key's 64-bit fingerprint, so a slot owned by another key is recognised. A new key
//! takes, in order: an empty slot, a slot whose bucket is full again (nothing is lost), or the
//! least recently granted of its two candidates (an eviction: that key's next request starts
//! from a full bucket). Trade-off: with more active keys than slots, evicted keys are
//! admitted more than their budget (a rate limiter fails open); keys never share a bucket, so
//! an innocent key is never limited by another's traffic.
//!
//! **Updates.** Read the value and its CAS, compute the new value, write it with that CAS. A
//! mismatch means another worker wrote in between: re-read and recompute, at most
//! [`MAX_ATTEMPTS`] times; then the request is refused (`Contention`, counted), because a
//! bucket that busy is being drained. A refusal writes nothing.
//!
//! **The sweep.** A slot whose bucket is full again but still names its key (stale) is as
//! good as an empty one to every update; the sweep empties them anyway, a few per tick, so no
//! key's fingerprint outlives its traffic for long. Each worker marks the slots it gave to a
//! key (one bit per slot, in its own memory), and at configuration the slots it found holding
//! a key; the sweep looks at marked slots only, so its cost follows the keys in use, not the
//! table's size (a per-client table of 1024 slots with one client: one slot per tick, not
//! 256). A marked slot found empty, or emptied, is unmarked; one still in use stays marked.
//! Every slot holding a key is marked by some worker: whoever wrote a new key into it did,
//! and a mark is dropped only once the slot was seen empty.
//!
//! **Creation.** Setting shared data with CAS 0 writes unconditionally, so two workers
//! creating the same key could each overwrite the other. Slots are created at configuration
//! time, which Envoy runs on its main thread before the workers serve; a slot found missing
//! later (not expected) is created empty with CAS 0 and then re-read, so a request's token is
//! only ever taken through a CAS write.

use crate::bucket::{Concurrency, Rate, Slot};
use sdk_ext::host::Status;
use std::cell::{Cell, Ref, RefCell};
use std::ops::Deref;

/// CAS attempts per update before giving up.
pub const MAX_ATTEMPTS: u32 = 8;

/// Where slots are stored: the host's shared data, or a map in tests.
pub trait SharedStore {
    /// The value under `key` and its CAS; `Ok(None)`: no such key.
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status>;
    /// Writes `value` if the CAS still is `cas` (0: unconditionally).
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status>;
}

/// The host's shared data.
#[derive(Debug, Default)]
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
        sdk_ext::host::get_shared_data(key)
    }
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        sdk_ext::host::set_shared_data(key, value, cas)
    }
}

/// Why an update did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// [`MAX_ATTEMPTS`] CAS mismatches in a row.
    Contention,
    /// The host refused a call (the filter fails open).
    Host(Status),
}

/// One table of slots.
#[derive(Debug, Clone)]
pub struct Table {
    prefix: String,
    slots: u32,
    /// One bit per slot: this worker gave the slot to a key, or found it holding one, and
    /// has not seen it empty since (what the sweep looks at).
    marked: Vec<Cell<u64>>,
    /// The slot the next sweep starts from.
    cursor: Cell<u32>,
    /// The key of slot `key_slot` (`u32::MAX`: none yet), kept from one request to the next:
    /// a one-slot table's key is built once, and a client's requests name the same slot.
    key_buf: RefCell<String>,
    key_slot: Cell<u32>,
}

/// A slot's shared-data key, as [`Table::key`] names it.
#[derive(Debug)]
pub enum Key<'a> {
    /// The table's last key, kept for the next request.
    Kept(Ref<'a, String>),
    /// Built aside.
    Aside(String),
}

impl Deref for Key<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Key::Kept(k) => k.as_str(),
            Key::Aside(k) => k,
        }
    }
}

/// A slot read, with its CAS (0: the key is missing).
#[derive(Debug, Clone, Copy)]
struct Read {
    index: u32,
    slot: Slot,
    cas: u32,
}

/// The outcome of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated<T> {
    /// What the operation answered.
    pub answer: T,
    /// The slot index it was applied to (for a later release).
    pub index: u32,
    /// A slot of another active key was taken over.
    pub evicted: bool,
}

/// What an operation does to one slot: its answer and the slot to store (`None`: nothing).
pub trait Operation {
    /// The operation's answer.
    type Answer: Copy;
    /// Applies the operation to `slot` (owned by `owner` or not).
    fn apply(&self, slot: &Slot, now: u64, owner: u64) -> (Self::Answer, Option<Slot>);
    /// Whether `slot` may be given to another key without losing anything.
    fn idle(&self, slot: &Slot, now: u64) -> bool;
}

impl Operation for Rate {
    type Answer = crate::bucket::Taken;
    fn apply(&self, slot: &Slot, now: u64, owner: u64) -> (Self::Answer, Option<Slot>) {
        let t = self.take(slot, now, owner);
        (t, t.store)
    }
    fn idle(&self, slot: &Slot, now: u64) -> bool {
        self.is_idle(slot, now)
    }
}

impl Operation for Concurrency {
    type Answer = bool;
    fn apply(&self, slot: &Slot, now: u64, owner: u64) -> (bool, Option<Slot>) {
        let s = self.enter(slot, now, owner);
        (s.is_some(), s)
    }
    fn idle(&self, slot: &Slot, _now: u64) -> bool {
        self.is_idle(slot)
    }
}

/// A key's fingerprint: 64-bit SipHash-1-3 of its bytes with the zero key, exactly what
/// std's `DefaultHasher::new()` answers for `write(key)` (a test compares the two), in one
/// pass over the slice (the same in every worker: they run the same module). Never 0, which
/// marks an empty slot. One pass instead of `DefaultHasher`'s incremental `write` (a tail
/// buffer kept across calls): the same work per request, 184 bytes less of the module. The
/// bytes only: `<[u8]>::hash` also writes the length as a `usize`, 4 bytes on wasm32 and 8
/// natively, so the same key would name different slots in the module and in its native
/// tests.
pub fn fingerprint(key: &[u8]) -> u64 {
    let (mut v0, mut v1, mut v2, mut v3) = (
        0x736f_6d65_7073_6575u64,
        0x646f_7261_6e64_6f6du64,
        0x6c79_6765_6e65_7261u64,
        0x7465_6462_7974_6573u64,
    );
    // One SipHash round over the four locals.
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13) ^ v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16) ^ v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21) ^ v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17) ^ v2;
            v2 = v2.rotate_left(32);
        };
    }
    let blocks = key.chunks_exact(8);
    let tail = blocks.remainder();
    for block in blocks {
        let m = block.try_into().map_or(0, u64::from_le_bytes);
        v3 ^= m;
        round!();
        v0 ^= m;
    }
    // The last block: the tail's bytes, and the length's low byte on top.
    let mut last = (key.len() as u64) << 56;
    for (i, &b) in tail.iter().enumerate() {
        last |= u64::from(b) << (8 * i);
    }
    v3 ^= last;
    round!();
    v0 ^= last;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    (v0 ^ v1 ^ v2 ^ v3).max(1)
}

/// The shared-data key prefix of the configuration `config`: `rl:` and its 64-bit
/// [`fingerprint`] in 11 base64url characters (a changed configuration starts with fresh
/// buckets, and two limiters with different configurations never share keys).
pub fn config_prefix(config: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let hash = fingerprint(config);
    let mut out = String::with_capacity(16);
    out.push_str("rl:");
    for shift in (0..11u32).rev() {
        let digit = (hash >> (shift * 6)) & 63;
        if let Some(&d) = DIGITS.get(digit as usize) {
            out.push(char::from(d));
        }
    }
    out
}

/// Appends `n` in decimal, as `write!(buf, "{n}")` does, without the formatting machinery
/// (this names a slot twice per request: a few hundred wasm operators less each time).
fn push_decimal(buf: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or(&[]) {
        buf.push(char::from(d));
    }
}

impl Table {
    /// A table of `slots` (at least 1) keys named `<prefix><n>`.
    pub fn new(prefix: String, slots: u32) -> Self {
        let slots = slots.max(1);
        Self {
            prefix,
            slots,
            marked: vec![Cell::new(0); slots.div_ceil(64) as usize],
            cursor: Cell::new(0),
            key_buf: RefCell::new(String::new()),
            key_slot: Cell::new(u32::MAX),
        }
    }

    /// Marks slot `index` for the sweep.
    fn mark(&self, index: u32) {
        if let Some(w) = self.marked.get((index / 64) as usize) {
            w.set(w.get() | 1 << (index % 64));
        }
    }

    /// Whether slot `index` is marked for the sweep.
    pub fn is_marked(&self, index: u32) -> bool {
        self.marked
            .get((index / 64) as usize)
            .is_some_and(|w| w.get() & 1 << (index % 64) != 0)
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The shared-data key of slot `index` (built unless it was the last one named).
    pub fn key(&self, index: u32) -> Key<'_> {
        if self.key_slot.get() != index {
            let Ok(mut buf) = self.key_buf.try_borrow_mut() else {
                return self.key_aside(index);
            };
            buf.clear();
            buf.push_str(&self.prefix);
            push_decimal(&mut buf, index);
            self.key_slot.set(index);
        }
        match self.key_buf.try_borrow() {
            Ok(buf) => Key::Kept(buf),
            Err(_) => self.key_aside(index),
        }
    }

    /// Slot `index`'s key in its own string (another key is being named: not expected).
    fn key_aside(&self, index: u32) -> Key<'_> {
        let mut key = self.prefix.clone();
        push_decimal(&mut key, index);
        Key::Aside(key)
    }

    /// The two candidate slots of a key (equal only in a one-slot table).
    fn candidates(&self, owner: u64) -> (u32, u32) {
        if self.slots == 1 {
            return (0, 0); // every bucket without a dynamic descriptor
        }
        let n = u64::from(self.slots);
        let first = owner % n;
        let mut second = (owner.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15) % n;
        if second == first && n > 1 {
            second = (first + 1) % n;
        }
        (
            u32::try_from(first).unwrap_or(0),
            u32::try_from(second).unwrap_or(0),
        )
    }

    /// Creates every missing slot (empty) and marks the ones holding a key (left by another
    /// worker, or by this configuration's previous instance) for the sweep. Run at
    /// configuration time.
    pub fn create(&self, store: &mut impl SharedStore) -> Result<(), Status> {
        for index in 0..self.slots {
            let key = self.key(index);
            match store.get(&key)? {
                Some((bytes, _)) => {
                    if Slot::decode(&bytes).owner != 0 {
                        self.mark(index);
                    }
                }
                None => store.set(&key, &Slot::default().encode(), 0)?,
            }
        }
        Ok(())
    }

    fn read(&self, store: &mut impl SharedStore, index: u32) -> Result<Read, Failure> {
        let key = self.key(index);
        match store.get(&key).map_err(Failure::Host)? {
            Some((bytes, cas)) => Ok(Read {
                index,
                slot: Slot::decode(&bytes),
                cas,
            }),
            None => {
                // Not expected (slots are created at configure): create it empty, then
                // read it back, so the token itself is taken through a CAS write.
                store
                    .set(&key, &Slot::default().encode(), 0)
                    .map_err(Failure::Host)?;
                match store.get(&key).map_err(Failure::Host)? {
                    Some((bytes, cas)) => Ok(Read {
                        index,
                        slot: Slot::decode(&bytes),
                        cas,
                    }),
                    None => Err(Failure::Host(Status::NotFound)),
                }
            }
        }
    }

    /// Applies `op` to the slot of the key with fingerprint `owner`, atomically; a slot given
    /// to `owner` (it held another key, or none) is marked for the sweep.
    pub fn update<O: Operation>(
        &self,
        store: &mut impl SharedStore,
        op: &O,
        owner: u64,
        now: u64,
    ) -> Result<Updated<O::Answer>, Failure> {
        self.update_with(store, op, owner, now, true)
    }

    /// [`update`](Self::update), marking a slot given to `owner` only when `mark`: a table
    /// with one fixed key (a bucket without dynamic descriptor entries) has no other key to
    /// leave a stale slot, so its slot need not be swept.
    pub fn update_with<O: Operation>(
        &self,
        store: &mut impl SharedStore,
        op: &O,
        owner: u64,
        now: u64,
        mark: bool,
    ) -> Result<Updated<O::Answer>, Failure> {
        let (first, second) = self.candidates(owner);
        for _ in 0..MAX_ATTEMPTS {
            let a = self.read(store, first)?;
            let target = if a.slot.owner == owner || first == second {
                a
            } else {
                let b = self.read(store, second)?;
                if b.slot.owner == owner {
                    b
                } else {
                    match (op.idle(&a.slot, now), op.idle(&b.slot, now)) {
                        (true, _) => a,
                        (false, true) => b,
                        // Least recently granted of the two.
                        (false, false) if b.slot.seen < a.slot.seen => b,
                        (false, false) => a,
                    }
                }
            };
            let evicted = target.slot.owner != owner && !op.idle(&target.slot, now);
            let (answer, store_slot) = op.apply(&target.slot, now, owner);
            let Some(new) = store_slot else {
                return Ok(Updated {
                    answer,
                    index: target.index,
                    evicted: false,
                });
            };
            match store.set(&self.key(target.index), &new.encode(), target.cas) {
                Ok(()) => {
                    if mark && target.slot.owner != owner {
                        self.mark(target.index);
                    }
                    return Ok(Updated {
                        answer,
                        index: target.index,
                        evicted,
                    });
                }
                Err(Status::CasMismatch) => continue,
                Err(other) => return Err(Failure::Host(other)),
            }
        }
        Err(Failure::Contention)
    }

    /// Gives back one concurrency unit taken by [`update`](Self::update) at `index`.
    pub fn release(
        &self,
        store: &mut impl SharedStore,
        limit: &Concurrency,
        index: u32,
        owner: u64,
    ) -> Result<(), Failure> {
        for _ in 0..MAX_ATTEMPTS {
            let r = self.read(store, index)?;
            let Some(new) = limit.leave(&r.slot, owner) else {
                return Ok(()); // evicted meanwhile: nothing to give back
            };
            match store.set(&self.key(index), &new.encode(), r.cas) {
                Ok(()) => return Ok(()),
                Err(Status::CasMismatch) => continue,
                Err(other) => return Err(Failure::Host(other)),
            }
        }
        Err(Failure::Contention)
    }

    /// Looks at up to `max` marked slots, from where the last sweep stopped, and empties
    /// the stale ones (idle but still holding a key), each with a CAS write (a slot written
    /// meanwhile is left alone). Returns how many it looked at.
    pub fn sweep<O: Operation>(
        &self,
        store: &mut impl SharedStore,
        op: &O,
        max: u32,
        now: u64,
    ) -> u32 {
        let words = self.marked.len();
        let start = self.cursor.get() % self.slots;
        let (first, shift) = ((start / 64) as usize, start % 64);
        let mut looked = 0;
        // One round over the words from the cursor's: its own word from the cursor on
        // first, the part before the cursor last.
        for step in 0..=words {
            let w = (first + step) % words.max(1);
            let Some(cell) = self.marked.get(w) else {
                break;
            };
            let mut bits = cell.get();
            if step == 0 {
                bits &= u64::MAX << shift;
            }
            if step == words {
                bits &= !(u64::MAX << shift);
            }
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                let index = (w as u32) * 64 + bit;
                if looked == max {
                    self.cursor.set(index);
                    return looked;
                }
                looked += 1;
                if self.sweep_one(store, op, index, now) {
                    cell.set(cell.get() & !(1 << bit));
                }
            }
        }
        looked
    }

    /// Empties slot `index` if it is stale; `true` when it is empty now (unmark it).
    fn sweep_one<O: Operation>(
        &self,
        store: &mut impl SharedStore,
        op: &O,
        index: u32,
        now: u64,
    ) -> bool {
        let Ok(r) = self.read(store, index) else {
            return false;
        };
        if r.slot.owner == 0 {
            return true;
        }
        op.idle(&r.slot, now)
            && store
                .set(&self.key(index), &Slot::default().encode(), r.cas)
                .is_ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bucket::TokenBucket;
    use std::collections::HashMap;

    /// The one-pass SipHash is std's `DefaultHasher` (SipHash-1-3, zero key) at every length
    /// around the block and tail boundaries, on pseudo-random bytes.
    #[test]
    fn fingerprint_is_std_siphash() {
        use std::hash::Hasher;
        let mut next = sdk_ext::testing::xorshift64(0x2545_f491_4f6c_dd1d);
        let mut bytes = Vec::new();
        for len in 0..300usize {
            for _ in 0..3 {
                bytes.clear();
                for _ in 0..len {
                    bytes.push(next() as u8);
                }
                let mut h = std::collections::hash_map::DefaultHasher::new();
                h.write(&bytes);
                assert_eq!(fingerprint(&bytes), h.finish().max(1), "{bytes:?}");
            }
        }
    }

    type Data = HashMap<String, (Vec<u8>, u32)>;

    #[test]
    fn config_prefixes_are_short_and_distinct() {
        let a = config_prefix(b"{}");
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("rl:"));
        assert!(a[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(a, config_prefix(b"{}"));
        assert_ne!(a, config_prefix(b"{ }"));
        // The bench's one-bucket key, and a per-client table's last: within 22 bytes.
        let t = Table::new(format!("{a}0/"), 1024);
        assert_eq!(t.key(0).len(), 17);
        assert_eq!(t.key(1023).len(), 20);
    }

    #[test]
    fn slot_keys_are_decimal() {
        for n in [0u32, 7, 10, 99, 255, 1000, 4_294_967_295] {
            let mut buf = String::from("x");
            push_decimal(&mut buf, n);
            assert_eq!(buf, format!("x{n}"));
        }
        let t = Table::new("p/".into(), 3);
        let key = |i| t.key(i).to_string();
        assert_eq!(key(12345), "p/12345");
        assert_eq!(key(0), "p/0");
        assert_eq!(key(7), "p/7");
        assert_eq!(key(12345), "p/12345", "named again");
    }

    type Hook = Box<dyn FnMut(&mut Data, &mut u32)>;

    /// Shared data as Envoy keeps it (a non-zero CAS must match), with a hook that runs
    /// before each write: another worker acting between our read and our write.
    #[derive(Default)]
    pub struct MemStore {
        pub data: Data,
        next_cas: u32,
        pub before_set: Option<Hook>,
        pub sets: u32,
        pub gets: u32,
    }

    impl MemStore {
        fn write(data: &mut Data, next: &mut u32, key: &str, v: &[u8]) {
            *next += 1;
            data.insert(key.to_string(), (v.to_vec(), *next));
        }
    }

    impl SharedStore for MemStore {
        fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
            self.gets += 1;
            Ok(self.data.get(key).cloned())
        }
        fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
            self.sets += 1;
            if let Some(hook) = self.before_set.as_mut() {
                hook(&mut self.data, &mut self.next_cas);
            }
            if cas != 0 {
                if let Some((_, stored)) = self.data.get(key) {
                    if *stored != cas {
                        return Err(Status::CasMismatch);
                    }
                }
            }
            Self::write(&mut self.data, &mut self.next_cas, key, value);
            Ok(())
        }
    }

    const SEC: u64 = 1_000_000_000;

    fn bucket(max: u32) -> Rate {
        Rate::new(&TokenBucket {
            max_tokens: max,
            tokens_per_fill: max,
            fill_ns: 3600 * u128::from(SEC),
        })
    }

    #[test]
    fn create_makes_every_slot_once() {
        let t = Table::new("rl/x/".into(), 4);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        assert_eq!(s.data.len(), 4);
        let before = s.sets;
        t.create(&mut s).unwrap();
        assert_eq!(s.sets, before, "existing slots are not rewritten");
    }

    #[test]
    fn keys_get_their_own_buckets() {
        let t = Table::new("rl/".into(), 64);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let b = bucket(3);
        let now = 1000 * SEC;
        for key in [b"alice".as_slice(), b"bob"] {
            let fp = fingerprint(key);
            let granted = (0..10)
                .filter(|_| t.update(&mut s, &b, fp, now).unwrap().answer.allowed)
                .count();
            assert_eq!(granted, 3);
        }
    }

    #[test]
    fn a_write_by_another_worker_between_read_and_write_is_retried() {
        let t = Table::new("rl/".into(), 1);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let b = bucket(5);
        let now = 1000 * SEC;
        let fp = fingerprint(b"k");
        // The other worker takes one token (a real CAS update of its own) before our
        // first write, twice in a row.
        let mut other_left = 2;
        s.before_set = Some(Box::new(move |data, next| {
            if other_left > 0 {
                other_left -= 1;
                let (bytes, _) = data.get("rl/0").cloned().unwrap();
                let slot = Slot::decode(&bytes);
                let new = b.take(&slot, now, fp).store.unwrap();
                *next += 1;
                data.insert("rl/0".into(), (new.encode().to_vec(), *next));
            }
        }));
        let granted = (0..10)
            .filter(|_| t.update(&mut s, &b, fp, now).unwrap().answer.allowed)
            .count();
        assert_eq!(
            granted, 3,
            "5 tokens: 2 taken by the other worker, 3 by us, none lost"
        );
    }

    #[test]
    fn endless_contention_gives_up_after_max_attempts() {
        let t = Table::new("rl/".into(), 1);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        s.sets = 0;
        s.before_set = Some(Box::new(|data, next| {
            *next += 1;
            if let Some(v) = data.get_mut("rl/0") {
                v.1 = *next;
            }
        }));
        let r = t.update(&mut s, &bucket(5), 9, 1000 * SEC);
        assert_eq!(r, Err(Failure::Contention));
        assert_eq!(s.sets, MAX_ATTEMPTS);
    }

    #[test]
    fn a_missing_slot_is_created_then_updated_by_cas() {
        let t = Table::new("rl/".into(), 1);
        let mut s = MemStore::default();
        let r = t.update(&mut s, &bucket(2), 9, 1000 * SEC).unwrap();
        assert!(r.answer.allowed);
        assert_eq!(Slot::decode(&s.data["rl/0"].0).owner, 9);
    }

    #[test]
    fn more_keys_than_slots_evict_the_least_recently_granted() {
        let t = Table::new("rl/".into(), 2);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let b = bucket(1);
        let (k1, k2, k3) = (fingerprint(b"1"), fingerprint(b"2"), fingerprint(b"3"));
        assert!(t.update(&mut s, &b, k1, 10 * SEC).unwrap().answer.allowed);
        assert!(t.update(&mut s, &b, k2, 20 * SEC).unwrap().answer.allowed);
        // Both slots hold empty buckets of active keys; k3 evicts the older one (k1).
        let r = t.update(&mut s, &b, k3, 30 * SEC).unwrap();
        assert!(r.answer.allowed && r.evicted);
        // k2 keeps its (empty) bucket; k1 was evicted and starts over.
        assert!(!t.update(&mut s, &b, k2, 31 * SEC).unwrap().answer.allowed);
        assert!(t.update(&mut s, &b, k1, 32 * SEC).unwrap().answer.allowed);
        assert_eq!(s.data.len(), 2, "the key space never grows");
    }

    #[test]
    fn idle_slots_are_reused_without_eviction_and_swept() {
        let t = Table::new("rl/".into(), 1);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let b = per_second();
        assert!(t.update(&mut s, &b, 5, 10 * SEC).unwrap().answer.allowed);
        let r = t.update(&mut s, &b, 6, 12 * SEC).unwrap();
        assert!(
            r.answer.allowed && !r.evicted,
            "key 5's bucket was full again"
        );
        assert_eq!(t.sweep(&mut s, &b, 10, 12 * SEC), 1);
        assert_ne!(Slot::decode(&s.data["rl/0"].0).owner, 0, "not yet idle");
        assert!(t.is_marked(0), "still in use: still marked");
        t.sweep(&mut s, &b, 10, 20 * SEC);
        assert_eq!(Slot::decode(&s.data["rl/0"].0), Slot::default());
        assert!(!t.is_marked(0));
        assert_eq!(t.sweep(&mut s, &b, 10, 30 * SEC), 0, "nothing marked");
    }

    /// A bucket of one token per second.
    fn per_second() -> Rate {
        Rate::new(&TokenBucket {
            max_tokens: 1,
            tokens_per_fill: 1,
            fill_ns: u128::from(SEC),
        })
    }

    fn owner_of(s: &MemStore, key: &str) -> u64 {
        Slot::decode(&s.data[key].0).owner
    }

    #[test]
    fn the_sweep_reads_marked_slots_only_a_bounded_number_per_call() {
        let t = Table::new("rl/".into(), 200);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let b = per_second();
        assert_eq!(t.sweep(&mut s, &b, 256, 10 * SEC), 0, "nothing marked");
        let mut at = Vec::new();
        for k in 1..=5u64 {
            let u = t
                .update(&mut s, &b, fingerprint(&k.to_le_bytes()), 10 * SEC)
                .unwrap();
            assert!(u.answer.allowed && t.is_marked(u.index));
            at.push(u.index);
        }
        at.sort_unstable();
        at.dedup();
        assert_eq!(at.len(), 5, "five keys, five slots");
        // Granted at 10 s: not idle before 11 s, so they stay (and stay marked).
        s.gets = 0;
        assert_eq!(t.sweep(&mut s, &b, 256, 10 * SEC), 5);
        assert_eq!(
            s.gets, 5,
            "one read per marked slot, none for the other 195"
        );
        assert!(at.iter().all(|&i| t.is_marked(i)));
        // Idle now: two per call, continuing where the last call stopped.
        let mut swept = 0;
        for _ in 0..3 {
            s.gets = 0;
            let looked = t.sweep(&mut s, &b, 2, 20 * SEC);
            assert!(looked <= 2 && s.gets == looked);
            swept += looked;
        }
        assert_eq!(swept, 5);
        for &i in &at {
            assert!(!t.is_marked(i));
            assert_eq!(owner_of(&s, &format!("rl/{i}")), 0, "slot {i} emptied");
        }
        assert_eq!(t.sweep(&mut s, &b, 256, 30 * SEC), 0);
        // A fixed-key update marks nothing.
        let u = t.update_with(&mut s, &b, 77, 40 * SEC, false).unwrap();
        assert!(u.answer.allowed && !t.is_marked(u.index));
    }

    #[test]
    fn slots_found_holding_a_key_are_marked_and_a_slot_written_meanwhile_is_kept() {
        let mut s = MemStore::default();
        let b = per_second();
        // Another worker (or this configuration's previous instance) left a key in a slot.
        let other = Table::new("rl/".into(), 8);
        other.create(&mut s).unwrap();
        let u = other.update(&mut s, &b, 42, 10 * SEC).unwrap();
        let key = format!("rl/{}", u.index);
        let t = Table::new("rl/".into(), 8);
        t.create(&mut s).unwrap();
        assert!(t.is_marked(u.index), "found holding a key at configuration");
        assert_eq!((0..8).filter(|&i| t.is_marked(i)).count(), 1);
        // The reset races with a write by another worker: the slot is left alone, marked.
        s.before_set = Some(Box::new(|data, next| {
            *next += 1;
            for v in data.values_mut() {
                v.1 = *next;
            }
        }));
        assert_eq!(t.sweep(&mut s, &b, 256, 20 * SEC), 1);
        assert_eq!(owner_of(&s, &key), 42);
        assert!(t.is_marked(u.index));
        s.before_set = None;
        t.sweep(&mut s, &b, 256, 20 * SEC);
        assert_eq!(owner_of(&s, &key), 0);
        assert!(!t.is_marked(u.index));
        // The other worker still has its mark: it finds the slot empty and drops it.
        assert!(other.is_marked(u.index));
        s.sets = 0;
        assert_eq!(other.sweep(&mut s, &b, 256, 20 * SEC), 1);
        assert!(!other.is_marked(u.index));
        assert_eq!(s.sets, 0, "an empty slot is not rewritten");
    }

    #[test]
    fn concurrency_release_gives_back_once() {
        let t = Table::new("c/".into(), 8);
        let mut s = MemStore::default();
        t.create(&mut s).unwrap();
        let c = Concurrency { max: 1 };
        let fp = fingerprint(b"10.0.0.1");
        let r = t.update(&mut s, &c, fp, 1).unwrap();
        assert!(r.answer);
        assert!(!t.update(&mut s, &c, fp, 2).unwrap().answer);
        t.release(&mut s, &c, r.index, fp).unwrap();
        t.release(&mut s, &c, r.index, fp).unwrap();
        assert!(t.update(&mut s, &c, fp, 3).unwrap().answer);
        assert!(!t.update(&mut s, &c, fp, 4).unwrap().answer);
    }
}
