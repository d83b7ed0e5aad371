//! No-trap proof: `hostile::requests()` (100 000) generated hostile requests through the
//! built module in the wasm engine, with its example config and a different client address
//! for most requests. Zero traps (a trap fails the run, naming the phase), only the statuses
//! the README documents, and linear memory that stops growing.

use sdk_ext::testing::hostile;
use sdk_ext::testing::Module;

static MODULE: Module = Module::new(&ip_filter::EXPORTS, "dist/ip-filter.wasm");

#[test]
fn hostile_traffic_never_traps_and_memory_stays_bounded() {
    let Some(mut emu) = MODULE.wasm_emulator() else {
        return;
    };
    emu.set_log_level(sdk_ext::testing::LogLevel::Warn);
    emu.start(include_str!("../examples/internal-admin.json"))
        .unwrap();
    let run = hostile::run(&mut emu, 5, hostile::requests(), |g, n, emu| {
        let mut r = g.request();
        // Clients from everywhere: IPv4, IPv6, garbage; and forwarded-for chains.
        let source = match g.below(4) {
            0 => format!(
                "10.{}.{}.{}:{}",
                n % 251,
                g.below(256),
                g.below(256),
                g.below(65536)
            ),
            1 => format!("[2001:db8::{:x}]:443", g.next_u64() & 0xffff),
            2 => String::from_utf8_lossy(&g.bytes(40)).into_owned(),
            _ => "203.0.113.7:5000".to_string(),
        };
        emu.set_property(&["source", "address"], source);
        if g.one_in(3) {
            let xff = format!("{}.{}.0.1, {}", g.below(256), g.below(256), g.below(1000));
            r.header("x-forwarded-for", xff);
        }
        if g.one_in(3) {
            let key = g.bytes(32);
            r.header("x-api-key", key);
        }
        if g.one_in(4) {
            let origin = *g
                .pick(&[
                    "https://app.example.com",
                    "null",
                    "https://evil.example",
                    "",
                ])
                .unwrap_or(&"null");
            r.header("origin", origin);
            r.header("access-control-request-method", "PUT");
        }
        r
    });
    eprintln!("{}", run.summary(env!("CARGO_PKG_NAME")));
    // README: 403 for a denied client; otherwise the request goes on.
    assert_eq!(run.undocumented(&[403]), Vec::<u32>::new(), "{run:?}");
    assert!(
        run.growth_after_warmup() <= 256 * 1024,
        "{}",
        run.summary(env!("CARGO_PKG_NAME"))
    );
}
