//! The in-process shared data of a dynamic module (`proxy_get_shared_data` /
//! `proxy_set_shared_data` in `shim.rs`): one store for every worker and configuration of the
//! module, as Envoy's wasm host keeps one per `vm_id`, with proxy-wasm's CAS semantics (a
//! write with a CAS other than 0 succeeds only if it is still the entry's, else
//! `CasMismatch`; a write to a missing key creates it whatever its CAS, as Envoy's host does).
//!
//! **Entries are atomic slots.** Shared data has no delete, so an entry, once created, lives
//! as long as the process: each is allocated once and never freed, and a thread may keep a
//! plain reference to it. An entry's value is kept in atomic words under a sequence lock
//! (`seq`: even when stable, odd while one writer holds it; each write adds 2): a read copies
//! the words and retries if `seq` moved meanwhile, a write takes the entry with one
//! compare-and-swap of `seq` that also checks the caller's CAS. No lock is taken and nothing
//! is allocated on either path for a value of up to [`INLINE`] bytes (a rate-limit slot is
//! 32); a longer value (a published JWKS) is kept behind the entry's own mutex, under the
//! same sequence. The CAS the guest sees is derived from `seq` (never 0): per key, as only
//! the same key's CAS is ever compared with it.
//!
//! **Finding an entry** by key: each thread remembers the entry it last used (a slot's read
//! is followed by its write) and a small direct-mapped cache of entries by key hash; a key
//! neither holds is looked up in the global index under its read lock (creating an entry
//! takes the write lock).
//!
//! This replaces one locked `HashMap<Vec<u8>, (Vec<u8>, u32)>` with a global CAS counter:
//! each access took the lock, hashed and probed the map, and a write rewrote a byte vector.

use super::hash::SeededHash;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ptr::null;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

/// The longest value kept in an entry's atomic words.
pub(crate) const INLINE: usize = 32;
const WORDS: usize = INLINE / 8;

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetError {
    /// The entry's CAS is not the one given.
    CasMismatch,
    /// A lock was poisoned (a panic while it was held).
    Poisoned,
}

/// One key's value (see the module docs).
pub(crate) struct Entry {
    key: Box<[u8]>,
    hash: u64,
    /// Even: stable; odd: a writer holds the entry. Each write adds 2.
    seq: AtomicU64,
    /// The value's length.
    len: AtomicUsize,
    /// A value of up to [`INLINE`] bytes, little-endian words.
    words: [AtomicU64; WORDS],
    /// A longer value (read and written under this lock, within the sequence).
    big: Mutex<Vec<u8>>,
}

/// The guest's CAS for a stable `seq` (1..=u32::MAX: 0 means "unconditional" to a writer).
fn cas_of(seq: u64) -> u32 {
    ((seq >> 1) % u64::from(u32::MAX)) as u32 + 1
}

/// Waits a little for a writer to finish (it holds an entry for a few stores).
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl Entry {
    fn new(key: &[u8], hash: u64, value: &[u8]) -> Entry {
        let e = Entry {
            key: key.into(),
            hash,
            seq: AtomicU64::new(2),
            len: AtomicUsize::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
            big: Mutex::new(Vec::new()),
        };
        // Not yet shared: no sequence needed.
        e.store(value);
        e
    }

    /// Writes `value` (the caller holds the sequence, or the entry is not shared yet).
    fn store(&self, value: &[u8]) {
        if value.len() <= INLINE {
            let mut padded = [0u8; INLINE];
            if let Some(dst) = padded.get_mut(..value.len()) {
                dst.copy_from_slice(value);
            }
            for (word, bytes) in self.words.iter().zip(padded.chunks_exact(8)) {
                let mut w = [0u8; 8];
                w.copy_from_slice(bytes);
                word.store(u64::from_le_bytes(w), Ordering::Relaxed);
            }
        } else {
            let mut big = self.big.lock().unwrap_or_else(|p| p.into_inner());
            big.clear();
            big.extend_from_slice(value);
        }
        self.len.store(value.len(), Ordering::Relaxed);
    }

    /// The value (handed to `with`, once) and its CAS: a consistent snapshot.
    pub(crate) fn read<R>(&self, with: impl FnOnce(&[u8]) -> R) -> (R, u32) {
        let mut spins = 0;
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                backoff(&mut spins);
                continue;
            }
            let len = self.len.load(Ordering::Relaxed);
            if len <= INLINE {
                let mut bytes = [0u8; INLINE];
                for (word, dst) in self.words.iter().zip(bytes.chunks_exact_mut(8)) {
                    dst.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
                }
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return (with(bytes.get(..len).unwrap_or_default()), cas_of(s1));
                }
            } else {
                let big = self.big.lock().unwrap_or_else(|p| p.into_inner());
                // Still `s1` with the lock held: no write began since `s1` was read, and one
                // beginning now waits for the lock before it touches `big`.
                if self.seq.load(Ordering::Acquire) == s1 {
                    return (with(&big), cas_of(s1));
                }
            }
            backoff(&mut spins);
        }
    }

    /// Writes `value` if the entry's CAS still is `cas` (0: unconditionally).
    pub(crate) fn write(&self, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut spins = 0;
        let held = loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 == 1 {
                backoff(&mut spins);
                continue;
            }
            if cas != 0 && cas_of(s) != cas {
                return Err(SetError::CasMismatch);
            }
            if self
                .seq
                .compare_exchange_weak(s, s | 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break s;
            }
        };
        // The odd `seq` is visible before any of the value's stores.
        fence(Ordering::Release);
        self.store(value);
        self.seq.store(held.wrapping_add(2), Ordering::Release);
        Ok(())
    }
}

/// Every entry by key, for a thread whose caches do not hold the key (workers look keys up
/// together: a read lock); also where entries are created (so one key has one entry).
struct Index {
    hasher: SeededHash,
    entries: RwLock<HashMap<Box<[u8]>, &'static Entry, SeededHash>>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let hasher = SeededHash::new();
        Index {
            hasher,
            entries: RwLock::new(HashMap::with_hasher(hasher)),
        }
    })
}

/// Entries cached per thread (a power of two). Small: a module's thread-locals must fit the
/// static TLS space glibc keeps for modules loaded at run time (512 bytes by default, shared
/// with std's own), else every thread-local access of the module becomes a call to
/// `__tls_get_addr`'s slow path (`_dl_tlsdesc_dynamic`, ~17 instructions, measured).
const CACHED: usize = 8;

thread_local! {
    /// The entry this thread used last (null: none).
    static LAST: Cell<*const Entry> = const { Cell::new(null()) };
    /// Entries this thread used, by key hash (null: none).
    static CACHE: [Cell<*const Entry>; CACHED] = const { [const { Cell::new(null()) }; CACHED] };
}

/// `a == b`, eight bytes at a time (keys are short: a call to `memcmp` cost as much).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last (possibly overlapping) word.
    word(a, n - 8) == word(b, n - 8)
}

/// A pointer from [`LAST`] or [`CACHE`] as the entry it is.
fn entry(p: *const Entry) -> Option<&'static Entry> {
    // SAFETY: the caches hold only null or pointers to leaked entries (`Box::leak` in
    // `set`), never freed.
    unsafe { p.as_ref() }
}

fn remember(e: &'static Entry) {
    let _ = LAST.try_with(|l| l.set(e));
    let _ = CACHE.try_with(|c| {
        if let Some(slot) = c.get(e.hash as usize & (CACHED - 1)) {
            slot.set(e);
        }
    });
}

/// The entry of `key`, if it was ever written. The thread's last entry is checked inline;
/// the rest is out of line, so the common path saves no registers.
#[inline]
pub(crate) fn find(key: &[u8]) -> Option<&'static Entry> {
    if let Some(e) = LAST.try_with(Cell::get).ok().and_then(entry) {
        if same(&e.key, key) {
            return Some(e);
        }
    }
    find_elsewhere(key)
}

/// [`find`] past the thread's last entry: its cache, then the index.
#[cold]
#[inline(never)]
fn find_elsewhere(key: &[u8]) -> Option<&'static Entry> {
    let index = index();
    let hash = index.hasher.hash_one(key);
    let cached = CACHE
        .try_with(|c| c.get(hash as usize & (CACHED - 1)).map(Cell::get))
        .ok()
        .flatten()
        .and_then(entry);
    if let Some(e) = cached {
        if e.hash == hash && same(&e.key, key) {
            let _ = LAST.try_with(|l| l.set(e));
            return Some(e);
        }
    }
    let found = index
        .entries
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .copied();
    if let Some(e) = found {
        remember(e);
    }
    found
}

/// The value under `key` (handed to `with`) and its CAS; `None`: no such key.
pub(crate) fn get<R>(key: &[u8], with: impl FnOnce(&[u8]) -> R) -> Option<(R, u32)> {
    find(key).map(|e| e.read(with))
}

/// Writes `value` under `key` if its CAS still is `cas` (0: unconditionally); a missing key
/// is created whatever `cas` is (as Envoy's wasm host does).
pub(crate) fn set(key: &[u8], value: &[u8], cas: u32) -> Result<(), SetError> {
    if let Some(e) = find(key) {
        return e.write(value, cas);
    }
    let index = index();
    let hash = index.hasher.hash_one(key);
    let Ok(mut entries) = index.entries.write() else {
        return Err(SetError::Poisoned);
    };
    // Another thread may have created it since `find` looked.
    if let Some(&e) = entries.get(key) {
        drop(entries);
        remember(e);
        return e.write(value, cas);
    }
    let e: &'static Entry = Box::leak(Box::new(Entry::new(key, hash, value)));
    entries.insert(key.into(), e);
    drop(entries);
    remember(e);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    fn read(key: &[u8]) -> Option<(Vec<u8>, u32)> {
        get(key, <[u8]>::to_vec)
    }

    /// Keys of their own per test (the store is process-wide, tests run in parallel).
    fn key(test: &str, n: u32) -> Vec<u8> {
        format!("shared-test/{test}/{n}").into_bytes()
    }

    #[test]
    fn missing_keys_are_not_found_and_writes_create_them() {
        let k = key("create", 0);
        assert!(read(&k).is_none());
        // A missing key is created whatever the CAS (as Envoy's host).
        set(&k, b"one", 12345).unwrap();
        let (v, cas) = read(&k).unwrap();
        assert_eq!(v, b"one");
        assert_ne!(cas, 0);
        assert!(read(&key("create", 1)).is_none());
    }

    #[test]
    fn cas_writes_succeed_only_with_the_current_cas() {
        let k = key("cas", 0);
        set(&k, b"a", 0).unwrap();
        let (_, c1) = read(&k).unwrap();
        set(&k, b"b", c1).unwrap();
        let (v, c2) = read(&k).unwrap();
        assert_eq!(v, b"b");
        assert_ne!(c1, c2);
        // The old CAS is stale now.
        assert_eq!(set(&k, b"c", c1), Err(SetError::CasMismatch));
        assert_eq!(read(&k).unwrap(), (b"b".to_vec(), c2));
        // CAS 0 writes unconditionally, and the CAS moves on.
        set(&k, b"d", 0).unwrap();
        let (v, c3) = read(&k).unwrap();
        assert_eq!(v, b"d");
        assert_ne!(c3, c2);
        assert_eq!(set(&k, b"e", c2), Err(SetError::CasMismatch));
    }

    #[test]
    fn values_of_any_length_round_trip_and_shrink_and_grow() {
        let k = key("lengths", 0);
        for len in [0usize, 1, 7, 8, 9, 31, 32, 33, 100, 5000, 32, 3, 0, 64] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            set(&k, &value, 0).unwrap();
            assert_eq!(read(&k).unwrap().0, value, "length {len}");
        }
    }

    #[test]
    fn the_cas_is_never_zero() {
        for seq in [
            0u64,
            2,
            4,
            2 * u64::from(u32::MAX) - 2,
            2 * u64::from(u32::MAX),
            u64::MAX - 1,
        ] {
            assert_ne!(cas_of(seq), 0, "seq {seq}");
        }
        // Consecutive writes give different CAS values across the u32 wrap.
        let w = 2 * (u64::from(u32::MAX) - 1);
        assert_ne!(cas_of(w), cas_of(w + 2));
    }

    #[test]
    fn keys_are_told_apart_through_the_thread_caches() {
        // More keys than the thread cache has slots (so some share one), and keys that
        // differ only in their last byte or length.
        let keys: Vec<Vec<u8>> = (0..3 * CACHED as u32).map(|n| key("many", n)).collect();
        for (n, k) in keys.iter().enumerate() {
            set(k, &(n as u64).to_le_bytes(), 0).unwrap();
        }
        for _ in 0..2 {
            for (n, k) in keys.iter().enumerate().rev() {
                assert_eq!(read(k).unwrap().0, (n as u64).to_le_bytes());
            }
        }
        assert!(read(b"shared-test/many/").is_none());
        assert!(read(b"shared-test/many/1000000").is_none());
        // Another thread sees them all (its caches start empty).
        let keys2 = keys.clone();
        std::thread::spawn(move || {
            for (n, k) in keys2.iter().enumerate() {
                assert_eq!(read(k).unwrap().0, (n as u64).to_le_bytes());
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn same_compares_bytes() {
        assert!(same(b"", b""));
        assert!(same(b"rl:abcdefghijk0/0", b"rl:abcdefghijk0/0"));
        assert!(!same(b"rl:abcdefghijk0/0", b"rl:abcdefghijk0/1"));
        assert!(!same(b"rl:abcdefghijk0/0", b"rl:abcdefghijk0/01"));
        assert!(!same(b"xl:abcdefghijk0/0", b"rl:abcdefghijk0/0"));
        assert!(!same(b"12345678", b"12345679"));
        // Every length to 40, a difference at every position: as `==`.
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert!(same(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same(&a, &b), "length {n}, at {at}");
            }
        }
    }

    /// Takes one token from the counter under `key` (8 bytes, little-endian) as rate-limit
    /// does: read with the CAS, write the decrement with it, retry on a mismatch.
    fn take_one(key: &[u8]) -> bool {
        loop {
            let Some((left, cas)) = get(key, |v| {
                <[u8; 8]>::try_from(v).map(u64::from_le_bytes).unwrap_or(0)
            }) else {
                return false;
            };
            if left == 0 {
                return false;
            }
            match set(key, &(left - 1).to_le_bytes(), cas) {
                Ok(()) => return true,
                Err(SetError::CasMismatch) => continue,
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn concurrent_cas_admits_exactly_the_budget() {
        const BUDGET: u64 = 20_000;
        const THREADS: usize = 4;
        let k = key("budget", 0);
        set(&k, &BUDGET.to_le_bytes(), 0).unwrap();
        let admitted = Arc::new(AtomicU32::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let k = k.clone();
                let admitted = Arc::clone(&admitted);
                std::thread::spawn(move || {
                    let mut mine = 0u32;
                    // Each thread alone would take the whole budget: they contend for it.
                    for _ in 0..BUDGET {
                        if take_one(&k) {
                            mine += 1;
                        }
                    }
                    admitted.fetch_add(mine, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(u64::from(admitted.load(Ordering::Relaxed)), BUDGET);
        assert_eq!(read(&k).unwrap().0, 0u64.to_le_bytes());
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_value() {
        // A writer alternates two 32-byte values (and a long one); readers must only ever
        // see one of them whole.
        let k = key("torn", 0);
        let a = [0xaau8; INLINE];
        let b = [0x55u8; INLINE];
        let long = vec![0x11u8; 100];
        set(&k, &a, 0).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (k, stop, long) = (k.clone(), Arc::clone(&stop), long.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u32;
                    while !stop.load(Ordering::Relaxed) || seen == 0 {
                        let (v, _) = read(&k).unwrap();
                        assert!(v == a || v == b || v == long, "torn: {v:?}");
                        seen += 1;
                    }
                })
            })
            .collect();
        for i in 0..20_000u32 {
            let v: &[u8] = match i % 3 {
                0 => &b,
                1 => &long,
                _ => &a,
            };
            set(&k, v, 0).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn concurrent_creation_of_one_key_makes_one_entry() {
        let k = key("race", 0);
        let handles: Vec<_> = (0..4u64)
            .map(|n| {
                let k = k.clone();
                std::thread::spawn(move || set(&k, &n.to_le_bytes(), 0).unwrap())
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (v, cas) = read(&k).unwrap();
        assert!((0..4u64).any(|n| v == n.to_le_bytes()));
        // One entry: a CAS write with the CAS just read succeeds (a second entry for the
        // same key would have been found by one thread and not another).
        set(&k, b"after", cas).unwrap();
        let found = index()
            .entries
            .read()
            .unwrap()
            .keys()
            .filter(|e| e[..] == k[..])
            .count();
        assert_eq!(found, 1);
    }
}
