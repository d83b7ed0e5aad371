//! No-trap proof: `hostile::requests()` (100 000, two halves with different seeds run side by
//! side) generated hostile requests through the built module in the wasm engine. Zero traps (a
//! trap fails the run, naming the phase), only the statuses the README documents, and linear
//! memory that stops growing.

use sdk_ext::testing::hostile;
use sdk_ext::testing::Module;

static MODULE: Module = Module::new(&template::EXPORTS, "dist/template.wasm");

sdk_ext::hostile_tests!(hostile_half);

#[allow(clippy::unwrap_used)] // the body of the two #[test]s above
fn hostile_half(half: hostile::Half) {
    let Some(mut emu) = MODULE.wasm_emulator() else {
        return;
    };
    emu.set_log_level(sdk_ext::testing::LogLevel::Warn);
    emu.start(include_str!("../examples/deny-admin.json"))
        .unwrap();
    let run = hostile::run(&mut emu, half.seed(1), half.requests(), |g, _, _| {
        g.request()
    });
    eprintln!("{}", run.summary(env!("CARGO_PKG_NAME")));
    // README: the configured `status` (403 in the example), else the request goes on.
    assert_eq!(run.undocumented(&[403]), Vec::<u32>::new(), "{run:?}");
    assert!(run.statuses.contains_key(&Some(403)) && run.statuses.contains_key(&None));
    assert!(
        run.growth_after_warmup() <= 256 * 1024,
        "{}",
        run.summary(env!("CARGO_PKG_NAME"))
    );
}
