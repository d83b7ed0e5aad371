//! [`Slots`]: the stream contexts' storage. Each stream gets a slot (a heap block of its own,
//! whose address never changes) holding its plugin instance and, inline, its filter value; a
//! deleted stream's slot goes back on a spare list and the next stream reuses it. A stream
//! therefore allocates nothing once the module has served as many concurrent streams as it
//! serves now (the filter value was a `Box` of its own, allocated and freed per stream).
//!
//! A phase marks its slot running and uses it with the context table released (a filter may
//! call back into the host, and a host may re-enter the VM). Meanwhile only the slot's state
//! is touched by anyone else: a re-entered phase of the same stream sees it running and does
//! nothing, and a delete of it marks it deleted and leaves it to the running phase, which
//! empties it and hands it back when it returns.

use super::Instances;
use std::any::{Any, TypeId};
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::rc::Rc;

/// Bytes of filter value a slot holds inline (a larger or more aligned value is boxed and
/// the slot holds the box).
const INLINE: usize = 32;

/// A slot's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum State {
    /// Not in a phase.
    Idle,
    /// A phase runs on it.
    Running,
    /// Deleted while a phase ran on it: the phase frees it when it returns.
    Deleted,
}

/// The filter value of a slot: a `C` (or a `Box<C>`) in `bytes`, type-checked by `type_id`.
struct Value {
    /// `None`: no value.
    type_id: Option<TypeId>,
    /// Drops the value in `bytes` (`None`: nothing to drop).
    drop: Option<unsafe fn(*mut u8)>,
    /// The plugin instance the value was created with: a `C::P` inside the slot's `plugin`.
    plugin: *const (),
    bytes: MaybeUninit<[u64; INLINE / 8]>,
}

impl Value {
    const NONE: Value = Value {
        type_id: None,
        drop: None,
        plugin: std::ptr::null(),
        bytes: MaybeUninit::uninit(),
    };
}

impl Value {
    /// Drops the value, if any.
    fn clear(&mut self) {
        if self.type_id.take().is_some() {
            if let Some(drop) = self.drop.take() {
                // SAFETY: `type_id` said `bytes` holds the value `drop` was made for, and it is
                // dropped only here (`type_id` is cleared first).
                unsafe { drop(self.bytes.as_mut_ptr().cast()) };
            }
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Whether a `T` is stored inline.
const fn fits<T>() -> bool {
    std::mem::size_of::<T>() <= INLINE && std::mem::align_of::<T>() <= 8
}

/// # Safety
/// `p` holds a `T` nobody uses again.
unsafe fn drop_as<T>(p: *mut u8) {
    // SAFETY: the caller's.
    unsafe { std::ptr::drop_in_place(p.cast::<T>()) };
}

/// What a slot holds besides its state.
struct Inner {
    /// The plugin instance serving the stream (`None`: not chosen yet, or none applies).
    plugin: Option<Rc<dyn Any>>,
    /// Higress rules to choose the instance from at the stream's first phase.
    select: Option<Rc<Instances>>,
    value: Value,
}

/// One stream's storage.
pub(super) struct Slot {
    state: Cell<State>,
    /// Used by one party at a time: the table's owner while the slot is idle, the running
    /// phase while it runs.
    inner: UnsafeCell<Inner>,
}

/// A slot's address, stable while the slot is in use (the slot is a heap block of its own).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct SlotRef(NonNull<Slot>);

// The hot paths are inlined into every phase's export: out of line at the size-optimised
// level most filters are built at, each of these small functions was a call and spills.
impl SlotRef {
    #[inline(always)]
    fn slot(&self) -> &Slot {
        // SAFETY: a `SlotRef` handed out by `Slots` points to a slot the pool owns and frees
        // only when it is dropped; the pool hands out a slot's `SlotRef` to one stream at a
        // time.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    pub(super) fn state(&self) -> State {
        self.slot().state.get()
    }

    #[inline(always)]
    pub(super) fn set_state(&self, s: State) {
        self.slot().state.set(s);
    }

    /// Drops what the slot holds (its plugin, rules and filter value), in place, and leaves
    /// it idle: ready for [`Slots::put_back`]. Run with the context table released: the
    /// value's drop is the filter's code.
    ///
    /// # Safety
    /// The slot's stream is gone (its entry is out of the table) and no phase runs on it:
    /// the caller is its only user.
    #[inline(never)] // out of `proxy_on_delete`'s path: one copy
    pub(super) unsafe fn empty(&self) {
        self.set_state(State::Idle);
        // SAFETY: the caller's: the slot is ours alone.
        let inner = unsafe { &mut *self.slot().inner.get() };
        inner.value.clear();
        // Tested here, so the drop calls run only when there is something to drop.
        if inner.plugin.is_some() {
            inner.plugin = None;
        }
        if inner.select.is_some() {
            inner.select = None;
        }
    }
}

/// Creates the filter value of an empty slot from its plugin, if that is a `P`; `false`
/// when it is not (or there is none).
#[inline(never)] // the first phase's path only
fn create_value<C: 'static, P: 'static>(inner: &mut Inner, create: fn(&P) -> C) -> bool {
    let Some(p) = inner.plugin.as_ref().and_then(|p| p.downcast_ref::<P>()) else {
        return false;
    };
    let value = create(p);
    let bytes: *mut u8 = inner.value.bytes.as_mut_ptr().cast();
    if fits::<C>() {
        // SAFETY: `bytes` holds a `C` (size and alignment checked by `fits`) and holds
        // nothing now (the slot has no value).
        unsafe { bytes.cast::<C>().write(value) };
        inner.value.drop = std::mem::needs_drop::<C>().then_some(drop_as::<C> as _);
    } else {
        // SAFETY: as above, for the box (a pointer).
        unsafe { bytes.cast::<Box<C>>().write(Box::new(value)) };
        inner.value.drop = Some(drop_as::<Box<C>> as _);
    }
    inner.value.plugin = (p as *const P).cast();
    inner.value.type_id = Some(TypeId::of::<C>());
    true
}

/// The pool of slots: the spare ones; the ones in use are the context table's.
pub(super) struct Slots {
    spare: Vec<SlotRef>,
}

impl Slots {
    pub(super) const fn new() -> Self {
        Slots { spare: Vec::new() }
    }

    /// A slot for a new stream, holding `plugin` and `select`.
    pub(super) fn take(
        &mut self,
        plugin: Option<Rc<dyn Any>>,
        select: Option<Rc<Instances>>,
    ) -> SlotRef {
        if let Some(s) = self.spare.pop() {
            // SAFETY: a spare slot is idle and used by no one; it is empty (emptied before it
            // was put back), so the writes overwrite `None`s, which hold nothing to drop.
            unsafe {
                let inner = s.slot().inner.get();
                std::ptr::addr_of_mut!((*inner).plugin).write(plugin);
                std::ptr::addr_of_mut!((*inner).select).write(select);
            }
            return s;
        }
        let slot = Box::new(Slot {
            state: Cell::new(State::Idle),
            inner: UnsafeCell::new(Inner {
                plugin,
                select,
                value: Value::NONE,
            }),
        });
        SlotRef(NonNull::from(Box::leak(slot)))
    }

    /// Puts an emptied slot back for the next stream.
    ///
    /// # Safety
    /// `s` came from [`take`](Self::take) and was emptied ([`SlotRef::empty`]) since: nobody
    /// uses it until `take` hands it out again.
    pub(super) unsafe fn put_back(&mut self, s: SlotRef) {
        self.spare.push(s);
    }

    /// How many slots are spare.
    pub(super) fn spare(&self) -> usize {
        self.spare.len()
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        for s in self.spare.drain(..) {
            // SAFETY: a spare slot is owned by the pool alone; it came from `Box::leak`.
            drop(unsafe { Box::from_raw(s.0.as_ptr()) });
        }
    }
}

/// A running slot's parts, for the running phase alone.
pub(super) struct Running {
    slot: SlotRef,
}

impl Running {
    /// Starts a phase on `slot`; `None` when one runs on it already (a re-entered phase of
    /// the same stream does nothing).
    #[inline(always)]
    pub(super) fn start(slot: SlotRef) -> Option<Running> {
        if slot.state() != State::Idle {
            return None;
        }
        slot.set_state(State::Running);
        Some(Running { slot })
    }

    #[inline(always)]
    fn inner(&mut self) -> &mut Inner {
        // SAFETY: the slot is running: this phase is its only user (everyone else reads and
        // writes only its `state`, a separate cell), and the pool does not free or reuse it
        // before the phase ends (`Deleted` defers that to the phase).
        unsafe { &mut *self.slot.slot().inner.get() }
    }

    /// The Higress rules to choose the stream's plugin instance from, when it is not chosen
    /// yet (taken: the choice is made once, at the first phase).
    #[inline(always)]
    pub(super) fn rules_to_choose(&mut self) -> Option<Rc<Instances>> {
        let inner = self.inner();
        if inner.plugin.is_none() {
            inner.select.take()
        } else {
            None
        }
    }

    /// Records the plugin instance chosen by the rules.
    pub(super) fn set_plugin(&mut self, plugin: Option<Rc<dyn Any>>) {
        self.inner().plugin = plugin;
    }

    /// The filter value of type `C` and its plugin, creating the value with `create` (from
    /// the stream's plugin, if it is a `P`) when there is none and `create` is given.
    /// `None`: no value of type `C` (none created, no plugin, or another type's).
    #[inline(always)]
    pub(super) fn value<C: 'static, P: 'static>(
        &mut self,
        create: Option<fn(&P) -> C>,
    ) -> Option<(&mut C, &P)> {
        let inner = self.inner();
        if inner.value.type_id != Some(TypeId::of::<C>()) {
            // No value yet (or another type's): the first phase's path, out of line.
            if inner.value.type_id.is_some() || !create_value(inner, create?) {
                return None;
            }
        }
        let bytes: *mut u8 = inner.value.bytes.as_mut_ptr().cast();
        // SAFETY: `type_id` says `bytes` holds a `C` (inline when it fits, else boxed), made
        // from the `P` that `plugin` points to; that `P` is inside `inner.plugin`'s `Rc`,
        // which the slot holds as long as the value (both are emptied together). The
        // references live as long as `self`, the only user of the slot meanwhile.
        unsafe {
            let value: &mut C = if fits::<C>() {
                &mut *bytes.cast::<C>()
            } else {
                &mut *bytes.cast::<Box<C>>()
            };
            Some((value, &*inner.value.plugin.cast::<P>()))
        }
    }

    /// Ends the phase: answers the slot when its stream was deleted meanwhile (the caller
    /// gives it back), else leaves it idle.
    #[inline(always)]
    pub(super) fn finish(self) -> Option<SlotRef> {
        if self.slot.state() == State::Deleted {
            Some(self.slot)
        } else {
            self.slot.set_state(State::Idle);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plug(u32);

    /// Counts its drops in the cell it points to.
    struct Big {
        plug: u32,
        fill: [u64; 8],
        drops: Rc<Cell<u32>>,
    }
    impl Drop for Big {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    fn plugin(n: u32) -> Option<Rc<dyn Any>> {
        Some(Rc::new(Plug(n)))
    }

    #[test]
    fn values_inline_and_boxed_are_kept_checked_and_dropped_once() {
        assert!(fits::<(u64, u32)>());
        assert!(!fits::<Big>());
        let mut slots = Slots::new();
        let drops = Rc::new(Cell::new(0));
        let s = slots.take(plugin(7), None);
        let mut r = Running::start(s).unwrap();
        // A re-entered phase of the same stream gets nothing.
        assert!(Running::start(s).is_none());
        // No value and none to create.
        assert!(r.value::<(u64, u32), Plug>(None).is_none());
        {
            let (v, p) = r.value::<(u64, u32), Plug>(Some(|p| (1, p.0))).unwrap();
            assert_eq!((*v, p.0), ((1, 7), 7));
            v.0 = 5;
        }
        // Another type: refused; the value stays.
        assert!(r.value::<u8, Plug>(Some(|_| 0)).is_none());
        assert_eq!(r.value::<(u64, u32), Plug>(None).unwrap().0 .0, 5);
        assert!(r.finish().is_none());
        assert_eq!(s.state(), State::Idle);
        // SAFETY: idle, and the test forgets `s`.
        unsafe {
            s.empty();
            slots.put_back(s);
        }
        assert_eq!(slots.spare(), 1);

        // The slot is reused, empty; a boxed value is dropped exactly once.
        let t = slots.take(plugin(9), None);
        assert_eq!(t, s);
        let mut r = Running::start(t).unwrap();
        assert!(r.value::<(u64, u32), Plug>(None).is_none());
        let d = Rc::clone(&drops);
        let create: fn(&Plug) -> Big = |p| Big {
            plug: p.0,
            fill: [3; 8],
            drops: Rc::new(Cell::new(0)),
        };
        {
            let (v, _) = r.value::<Big, Plug>(Some(create)).unwrap();
            assert_eq!((v.plug, v.fill[7]), (9, 3));
            v.drops = d;
        }
        // Deleted while running: the phase hands the slot back.
        t.set_state(State::Deleted);
        let back = r.finish().unwrap();
        assert_eq!(drops.get(), 0);
        // SAFETY: the phase has returned; the test forgets `t`.
        unsafe { back.empty() };
        assert_eq!(drops.get(), 1);
        assert_eq!(t.state(), State::Idle);
        // SAFETY: emptied.
        unsafe { slots.put_back(back) };
        // Emptying twice drops nothing twice.
        // SAFETY: still the test's alone.
        unsafe { t.empty() };
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_plugin_of_another_type_makes_no_value() {
        let mut slots = Slots::new();
        let s = slots.take(Some(Rc::new(1u8)), None);
        let mut r = Running::start(s).unwrap();
        assert!(r.value::<u32, Plug>(Some(|p| p.0)).is_none());
        assert!(r.finish().is_none());
        // SAFETY: idle; the test forgets `s`.
        unsafe {
            s.empty();
            slots.put_back(s);
        }
    }
}
