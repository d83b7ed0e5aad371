//! No-trap proof: `hostile::requests()` (100 000, two halves with different seeds run side by
//! side) generated hostile requests through the built module in the wasm engine, with OPA's
//! Envoy tutorial policy (HTTP Basic users, data lookups, `base64url.decode` of a client-chosen
//! header). Zero traps (a trap fails the run, naming the phase), only the statuses the README
//! documents, and linear memory that stops growing.

use sdk_ext::testing::hostile;
use sdk_ext::testing::Module;

static MODULE: Module = Module::new(&opa_policy::EXPORTS, "dist/opa-policy.wasm");

sdk_ext::hostile_tests!(hostile_half);

#[allow(clippy::unwrap_used)] // the body of the two #[test]s above
fn hostile_half(half: hostile::Half) {
    let Some(mut emu) = MODULE.wasm_emulator() else {
        return;
    };
    emu.set_log_level(sdk_ext::testing::LogLevel::Warn);
    emu.start(include_str!("../examples/envoy-authz.json"))
        .unwrap();
    let run = hostile::run(&mut emu, half.seed(11), half.requests(), |g, _, _| {
        let mut r = g.request();
        // The policy splits and decodes `authorization`: valid users, garbage, huge values.
        match g.below(4) {
            0 => r.header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ="),
            1 => {
                let raw = g.bytes(64);
                r.header("authorization", [b"Basic ".as_slice(), &raw].concat());
            }
            2 => {
                let raw = g.bytes(64);
                r.header("authorization", raw);
            }
            _ => {}
        }
        r
    });
    eprintln!("{}", run.summary(env!("CARGO_PKG_NAME")));
    // README: 403 for a denied request and for no decision (evaluation error, limit); the
    // tutorial policy allows alice's GET /productpage and GET /health.
    assert_eq!(run.undocumented(&[403]), Vec::<u32>::new(), "{run:?}");
    // Linear memory follows the high-water mark of one evaluation (an input document of up to
    // `limits.max_input_bytes`, regorus's working set), reached when the largest requests have
    // arrived: 4544 KiB after 30 000, 100 000 and 300 000 requests alike (HOSTILE_REQUESTS).
    // Past the warm-up it may still grow by a few such peaks, never with the request count.
    assert!(
        run.growth_after_warmup() <= 1024 * 1024,
        "{}",
        run.summary(env!("CARGO_PKG_NAME"))
    );
}
