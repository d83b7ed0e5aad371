//! No-trap proof: `hostile::requests()` (100 000, two halves with different seeds run side by
//! side) generated hostile requests through the built module in the wasm engine, with the
//! example config (every kind of edit, templates copying request values). Zero traps, only the
//! statuses the README documents, and linear memory that stops growing.

use sdk_ext::testing::hostile;
use sdk_ext::testing::Module;

static MODULE: Module = Module::new(&header_rules::EXPORTS, "dist/header-rules.wasm");

sdk_ext::hostile_tests!(hostile_half);

#[allow(clippy::unwrap_used)] // the body of the two #[test]s above
fn hostile_half(half: hostile::Half) {
    let Some(mut emu) = MODULE.wasm_emulator() else {
        return;
    };
    emu.set_log_level(sdk_ext::testing::LogLevel::Warn);
    emu.start(include_str!("../examples/api-gateway.json"))
        .unwrap();
    let run = hostile::run(&mut emu, half.seed(2), half.requests(), |g, _, _| {
        let mut r = g.request();
        if g.one_in(3) {
            // What the example's templates copy: %REQ(x-request-id)%, the client address.
            let id = g.bytes(256);
            r.header("x-request-id", id);
        }
        r
    });
    eprintln!("{}", run.summary(env!("CARGO_PKG_NAME")));
    // README: 500 when a `remove` fails (fail closed); otherwise the request goes on.
    assert_eq!(run.undocumented(&[500]), Vec::<u32>::new(), "{run:?}");
    assert!(
        run.growth_after_warmup() <= 256 * 1024,
        "{}",
        run.summary(env!("CARGO_PKG_NAME"))
    );
}
